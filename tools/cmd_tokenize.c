/* nibble tokenize -m MODEL [--] TEXT: prints the token ids of TEXT on one line, separated by
 * single spaces, as llama.cpp gives them (BOS as the model says, special tokens parsed). Without
 * -m it reads the default model. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmds.h"
#include "gguf.h"
#include "tokenizer.h"

static int usage(const char *why)
{
    fprintf(stderr, "nibble tokenize: %s (usage: nibble tokenize -m MODEL [--] TEXT)\n", why);
    return 2;
}

int cmd_tokenize(int argc, char **argv)
{
    const char *model = NULL, *text = NULL;
    bool options = true; /* until "--": then a TEXT may start with '-' */
    for (int i = 1; i < argc; i++) {
        if (options && !strcmp(argv[i], "--")) {
            options = false;
        } else if (options && (!strcmp(argv[i], "-m") || !strcmp(argv[i], "--model"))) {
            if (++i >= argc) return usage("-m needs a file");
            model = argv[i];
        } else if (options && (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help"))) {
            printf("usage: nibble tokenize -m MODEL [--] TEXT\n");
            return 0;
        } else if (options && argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "nibble tokenize: unknown option '%s'\n", argv[i]);
            return 2;
        } else if (text) {
            return usage("more than one TEXT given (quote it)");
        } else {
            text = argv[i];
        }
    }
    if (!model) model = NB_DEFAULT_MODEL;
    if (!text) return usage("missing TEXT");

    char err[512];
    struct gguf *g = gguf_open(model, err, sizeof err);
    if (!g) {
        fprintf(stderr, "nibble tokenize: %s\n", err);
        return 1;
    }
    struct nb_tok *t = nb_tok_from_gguf(g, err, sizeof err);
    gguf_close(g);
    if (!t) {
        fprintf(stderr, "nibble tokenize: %s: %s\n", model, err);
        return 1;
    }
    size_t len = strlen(text), cap = nb_tok_max_ids(len);
    int32_t *ids = malloc(sizeof *ids * cap);
    int64_t n = ids ? nb_tok_encode(t, text, len, NB_TOK_ADD_SPECIAL | NB_TOK_PARSE_SPECIAL, ids,
                                    cap)
                    : -1;
    if (n < 0) {
        fprintf(stderr, "nibble tokenize: out of memory\n");
        free(ids);
        nb_tok_destroy(t);
        return 1;
    }
    for (int64_t i = 0; i < n; i++) printf("%d%c", ids[i], i + 1 < n ? ' ' : '\n');
    if (n == 0) printf("\n");
    free(ids);
    nb_tok_destroy(t);
    return 0;
}
