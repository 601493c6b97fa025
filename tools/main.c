/* nibble: command-line front end. Dispatches to tools/cmd_*.c. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "args.h"
#include "cmds.h"
#include "platform.h"

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *help;
} cmds[] = {
    {"run", cmd_run, "generate text: -m MODEL -p PROMPT [-n N] [--temp T] [--chat] ..."},
    {"info", cmd_info, "the Vulkan device and its capabilities [--all]; a model with -m MODEL"},
    {"tokenize", cmd_tokenize, "-m MODEL TEXT: token ids, as llama.cpp gives them"},
    {"logits", cmd_logits, "-m MODEL --ids \"2 17 ...\" -o OUT.f32 [--decode]"},
    {"perplexity", cmd_perplexity, "-m MODEL -f TEXT [-c CTX]"},
    {"bench", cmd_bench, "-m MODEL [-p 512] [-n 128] [-r REPS] [-o md|json]"},
    {"profile", cmd_profile, "-m MODEL [-p N] [-n N] [-b N] [--csv] [--shaders DIR]"},
    {"chat", cmd_chat, "interactive chat, the KV cache kept across turns [-m MODEL] [--system T]"},
    {"serve", cmd_serve, "OpenAI-compatible HTTP server [-m MODEL] [--port 8080] [--parallel N]"},
    {"mkmodel", cmd_mkmodel, "--preset NAME -o FILE [--seed S] [--type q4_0|q8_0|f16]"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: nibble COMMAND [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        fprintf(f, "  %-11s %s\n", cmds[i].name, cmds[i].help);
}

/* A command that succeeded but whose output did not all reach stdout (a full disk, a closed
 * stdout) fails: every write to stdout is checked here once, at the end. */
static int finish(int rc)
{
    errno = 0;
    if (fflush(stdout) == 0 && !ferror(stdout)) return rc;
    if (rc) return rc; /* the command has said what went wrong */
    int e = errno;
    fprintf(stderr, "nibble: writing the output failed%s%s\n", e ? ": " : "",
            e ? strerror(e) : "");
    return 1;
}

int main(int argc, char **argv)
{
    plat_std_guard(); /* a closed stdout stays closed: no file opened later takes its place */
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return finish(0);
    }
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        if (!strcmp(argv[1], cmds[i].name)) {
            if (args_check_env() != 0) return 2;
            return finish(cmds[i].fn(argc - 1, argv + 1));
        }
    fprintf(stderr, "nibble: unknown command '%s' (try nibble --help)\n", argv[1]);
    return 2;
}
