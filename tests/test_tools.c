/* test_tools: the speed tools through the built CLI (NB_CLI). `nibble mkmodel` writes small
 * presets that nibble loads and runs; `nibble bench -o json` prints one valid line per test with
 * the llama-bench fields; `nibble profile` prints its table (and a verification batch with -b),
 * also with --shaders (GLSL compiled at run time). Every run must be free of validation
 * messages (the CLI prints them as "vulkan warning/error: ..." on stderr).
 * The CLI's failure paths: strict numbers and named flags, FIFOs as the model and the pipeline
 * cache, output to a full disk or a closed stdout, logits written whole or not at all, the end
 * of the context, a context above the trained one, perplexity from a pipe. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"

static char out[1 << 16], err[1 << 16];

/* The shell command cmd (the CLI as "$NB") or `NB_CLI args`, stdout and stderr into out/err
 * (testutil.h); the exit status. */
static int sh(const char *cmd) { return nb_test_sh("tools", cmd, out, err, sizeof out); }
static int cli(const char *args) { return nb_test_cli("tools", args, out, err, sizeof out); }

/* No Vulkan validation message and no "no Vulkan device" in err; skips without a device. */
static void check_clean(int rc)
{
    if (rc != 0 && strstr(err, "no Vulkan device")) skip();
    if (strstr(err, "vulkan warning") || strstr(err, "vulkan error") ||
        strstr(err, "vulkan performance"))
        fail_msg("validation messages:\n%s", err);
    if (rc != 0) fail_msg("exit %d:\n%s", rc, err);
}

static const char *model_path(const char *preset)
{
    static char path[1024];
    snprintf(path, sizeof path, "%s/mk-%s.gguf", NB_TEST_TMP, preset);
    return path;
}

static void make(const char *preset)
{
    char args[1200];
    snprintf(args, sizeof args, "mkmodel --preset %s -o '%s' --seed 7", preset,
             model_path(preset));
    int rc = cli(args);
    if (rc) fail_msg("mkmodel %s: exit %d: %s", preset, rc, err);
}

static void test_mkmodel_cli(void **state)
{
    (void)state;
    assert_int_equal(cli("mkmodel --help"), 0);
    assert_non_null(strstr(out, "tiny-h1024"));
    assert_non_null(strstr(out, "26b-a4b"));
    assert_int_equal(cli("mkmodel --preset nope -o /dev/null"), 2);
    assert_non_null(strstr(err, "unknown preset"));
    assert_int_equal(cli("mkmodel --preset tiny-h256 -o /dev/null --type q3"), 2);
    /* the same seed gives the same file, another seed another one */
    make("tiny-h256");
    size_t n1, n2;
    void *a = nb_test_read(model_path("tiny-h256"), &n1);
    assert_int_equal(cli("mkmodel --preset tiny-h256 -o '" NB_TEST_TMP "/mk-again.gguf' --seed 7"),
                     0);
    void *b = nb_test_read(NB_TEST_TMP "/mk-again.gguf", &n2);
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(n1, n2);
    assert_memory_equal(a, b, n1);
    free(a);
    free(b);
    /* the model's info: the preset's shapes */
    char args[1200];
    snprintf(args, sizeof args, "info -m '%s'", model_path("tiny-h256"));
    assert_int_equal(cli(args), 0);
    assert_non_null(strstr(out, "n_embd             256"));
}

static void test_mkmodel_runs(void **state)
{
    (void)state;
    const char *presets[] = {"tiny-h256", "tiny-moe"};
    for (int i = 0; i < 2; i++) {
        make(presets[i]);
        char args[1200];
        snprintf(args, sizeof args, "run -m '%s' -p 'the hand' -n 4 --temp 0",
                 model_path(presets[i]));
        check_clean(cli(args));
        assert_non_null(strstr(err, "generated: 4 tokens"));
    }
}

static void test_bench_json(void **state)
{
    (void)state;
    make("tiny-h256");
    char args[1200];
    snprintf(args, sizeof args, "bench -m '%s' -p 8 -n 4 -r 1 -o json --probe-mb 4",
             model_path("tiny-h256"));
    check_clean(cli(args));
    printf("# %s", out);
    const char *fields[] = {"\"test\": ", "\"n_prompt\": ", "\"n_gen\": ", "\"avg_ts\": ",
                            "\"stddev_ts\": ", "\"device\": \"", "\"model\": \"",
                            "\"weights_gbs\": ", "\"bw_pct\": "};
    const char *tests[] = {"\"test\": \"pp8\"", "\"test\": \"tg4\""};
    int lines = 0;
    for (char *l = strtok(out, "\n"); l; l = strtok(NULL, "\n"), lines++) {
        assert_true(lines < 2);
        size_t n = strlen(l);
        assert_true(n > 2 && l[0] == '{' && l[n - 1] == '}');
        assert_non_null(strstr(l, tests[lines]));
        for (size_t f = 0; f < sizeof fields / sizeof fields[0]; f++)
            if (!strstr(l, fields[f])) fail_msg("no %s in %s", fields[f], l);
        double ts = atof(strstr(l, "\"avg_ts\": ") + 10);
        assert_true(ts > 0);
    }
    assert_int_equal(lines, 2);
}

static void test_profile_table(void **state)
{
    (void)state;
    make("tiny-moe");
    char args[1200];
    snprintf(args, sizeof args, "profile -m '%s' -p 8 -n 2 -b 3 --probe-mb 4",
             model_path("tiny-moe"));
    check_clean(cli(args));
    assert_non_null(strstr(out, "| step | shape | count |"));
    assert_non_null(strstr(out, "### prefill p8"));
    assert_non_null(strstr(out, "### decode"));
    assert_non_null(strstr(out, "### verification of 3 tokens"));
    assert_non_null(strstr(out, "wall time of one verification of 3 tokens"));
    assert_non_null(strstr(out, "| attn_qkv | 256x512 q4_0 |")); /* q|k|v in one product */
    assert_non_null(strstr(out, "| ffn_gate_up |"));
    assert_non_null(strstr(out, "| moe_gate_up |"));
    assert_non_null(strstr(out, "matrix steps:"));
    snprintf(args, sizeof args, "profile -m '%s' -p 4 -n 1 --probe-mb 4 --csv",
             model_path("tiny-moe"));
    check_clean(cli(args));
    assert_true(!strncmp(out, "phase,index,label,layer,shape,first,ns,bytes,flops\n", 51));
    assert_non_null(strstr(out, "decode,"));
}

/* --shaders: the source tree's own shaders compiled at run time give a working profile. */
static void test_profile_shaders(void **state)
{
    (void)state;
    make("tiny-h256");
    char args[1400];
    snprintf(args, sizeof args, "profile -m '%s' -p 4 -n 1 --probe-mb 4 --shaders '%s/../../shaders'",
             model_path("tiny-h256"), NB_TEST_DATA);
    int rc = cli(args);
    if (rc != 0 && strstr(err, "without libshaderc")) skip();
    check_clean(rc);
    assert_non_null(strstr(out, "variants compiled from"));
    assert_non_null(strstr(out, "### decode"));
    snprintf(args, sizeof args, "profile -m '%s' --shaders '%s'", model_path("tiny-h256"),
             NB_TEST_TMP);
    assert_int_equal(cli(args), 1);
    assert_non_null(strstr(err, "CMakeLists.txt"));
}

#define DEFAULT_MODEL NB_TEST_DATA "/../../models/default.gguf"
#define HELDOUT NB_TEST_DATA "/../../models/kjv-heldout.txt"

/* Every number is parsed strictly and a bad one names its flag (exit 2, before any loading). */
static void test_cli_numbers(void **state)
{
    (void)state;
    static const struct { const char *args, *flag; } cases[] = {
        {"run -p hi -c 256x", "-c: '256x'"},
        {"run -p hi -c abc", "-c: 'abc'"},
        {"run -p hi -c -1", "-c: '-1'"},
        {"run -p hi -c ' 5'", "-c: ' 5'"},
        {"run -p hi --seed -1", "--seed: '-1'"},
        {"run -p hi --seed 18446744073709551616", "--seed"},
        {"run -p hi -n 5.7", "-n: '5.7'"},
        {"run -p hi --temp nan", "--temp: 'nan'"},
        {"run -p hi --temp 0x1p3", "--temp"},
        {"run -p hi --top-p 1.5", "--top-p: '1.5'"},
        {"run -p hi --top-k -2", "--top-k"},
        {"run -p hi -b 0", "-b: '0'"},
        {"run -p hi --bogus", "unknown option '--bogus'"},
        {"run -p hi -n", "-n needs a value"},
        {"logits -m x --ids 2 -o /dev/null -c 12x", "-c: '12x'"},
        {"logits -m x --ids 2 -o /dev/null --kv f8", "--kv: 'f8'"},
        {"logits -m x --ids 2 -o /dev/null --bogus", "unknown option '--bogus'"},
        {"perplexity -f x -c abc", "-c: 'abc'"},
        {"perplexity -f x -c 2", "-c: '2'"},
        {"perplexity -f x -b 5", "unknown option '-b'"},
        {"profile -m x -p 5x", "-p: '5x'"},
        {"profile -m x -n -1", "-n: '-1'"},
        {"bench -m x -p 5x", "-p: '5x'"},
        {"bench -m x -r ' 3'", "-r: ' 3'"},
        {"bench -m x --probe-mb -1", "--probe-mb: '-1'"},
        {"mkmodel --preset tiny-h256 -o /dev/null --seed -1", "--seed: '-1'"},
        {"mkmodel --preset tiny-h256 -o /dev/null --seed 7x", "--seed: '7x'"},
    };
    char cmd[512];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(cmd, sizeof cmd, "\"$NB\" %s", cases[i].args);
        int rc = sh(cmd);
        if (rc != 2 || !strstr(err, cases[i].flag))
            fail_msg("%s: exit %d, want 2 and \"%s\": %s", cases[i].args, rc, cases[i].flag, err);
    }
    assert_int_equal(sh("NIBBLE_DEVICE_MEMORY_MB=abc \"$NB\" run -p hi"), 2);
    assert_non_null(strstr(err, "NIBBLE_DEVICE_MEMORY_MB: 'abc'"));
    assert_int_equal(sh("NIBBLE_DEVICE=1x \"$NB\" info"), 2);
    assert_non_null(strstr(err, "NIBBLE_DEVICE: '1x'"));
}

/* A FIFO as the model is refused at once; a FIFO at the pipeline cache's path is skipped. */
static void test_cli_fifo(void **state)
{
    (void)state;
    const char *fifo = NB_TEST_TMP "/cli-fifo.gguf";
    unlink(fifo);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "timeout 120 \"$NB\" run -m '%s' -p hi", fifo);
    assert_int_equal(sh(cmd), 1);
    assert_non_null(strstr(err, "not a regular file (a FIFO)"));
    snprintf(cmd, sizeof cmd, "timeout 120 \"$NB\" tokenize -m '%s' hi", fifo);
    assert_int_equal(sh(cmd), 1);
    assert_non_null(strstr(err, "FIFO"));
    unlink(fifo);

    const char *dir = NB_TEST_TMP "/cli-pcache";
    mkdir(dir, 0755);
    snprintf(cmd, sizeof cmd, "NIBBLE_CACHE_DIR='%s' timeout 300 \"$NB\" run -m '%s' -p hi -n 1",
             dir, DEFAULT_MODEL);
    check_clean(sh(cmd));
    DIR *d = opendir(dir);
    assert_non_null(d);
    char cache[1400] = "";
    for (struct dirent *e; (e = readdir(d));)
        if (!strncmp(e->d_name, "pipelines-", 10))
            snprintf(cache, sizeof cache, "%s/%s", dir, e->d_name);
    closedir(d);
    assert_true(cache[0] != 0);
    unlink(cache);
    assert_int_equal(mkfifo(cache, 0600), 0);
    int rc = sh(cmd);
    assert_int_not_equal(rc, 124); /* timeout: it waited on the FIFO */
    check_clean(rc);
    unlink(cache);
}

/* Output that cannot be written fails the command; logits are written whole or not at all. */
static void test_cli_outputs(void **state)
{
    (void)state;
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "\"$NB\" run -m '%s' -p hi -n 3 > /dev/full", DEFAULT_MODEL);
    assert_int_equal(sh(cmd), 1);
    assert_non_null(strstr(err, "No space left on device"));
    snprintf(cmd, sizeof cmd, "\"$NB\" run -m '%s' -p hi -n 3 >&-", DEFAULT_MODEL);
    assert_int_equal(sh(cmd), 1);
    assert_non_null(strstr(err, "writing the output failed"));
    assert_int_equal(sh("\"$NB\" --help > /dev/full"), 1);
    assert_int_equal(sh("\"$NB\" mkmodel --preset tiny-h256 -o /dev/full"), 1);
    assert_non_null(strstr(err, "No space left on device"));
    snprintf(cmd, sizeof cmd, "\"$NB\" tokenize -m '%s' hi > /dev/full", DEFAULT_MODEL);
    assert_int_equal(sh(cmd), 1);

    snprintf(cmd, sizeof cmd, "\"$NB\" logits -m '%s' --ids '2 17 99' -o /dev/full",
             DEFAULT_MODEL);
    assert_int_equal(sh(cmd), 1);
    assert_non_null(strstr(err, "/dev/full: No space left on device"));
    /* a file limit (SIGXFSZ ignored: the write fails with EFBIG) leaves the old file as it was */
    const char *dst = NB_TEST_TMP "/cli-logits.f32";
    FILE *f = fopen(dst, "wb");
    assert_non_null(f);
    fputs("old", f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "trap '' XFSZ; ulimit -f 8; \"$NB\" logits -m '%s' "
             "--ids '2 17 99 100 101' -o '%s'", DEFAULT_MODEL, dst);
    assert_int_equal(sh(cmd), 1);
    assert_non_null(strstr(err, "File too large"));
    size_t n;
    char *old = nb_test_read(dst, &n);
    assert_non_null(old);
    assert_int_equal(n, 3);
    free(old);
    snprintf(cmd, sizeof cmd, "ls '%s' | grep -c 'cli-logits.f32.tmp'", NB_TEST_TMP);
    sh(cmd);
    assert_string_equal(out, "0\n");
    /* a whole one replaces it */
    snprintf(cmd, sizeof cmd, "\"$NB\" logits -m '%s' --ids '2 17 99' -o '%s'", DEFAULT_MODEL, dst);
    check_clean(sh(cmd));
    free(nb_test_read(dst, &n));
    assert_int_equal(n, 3 * 4096 * sizeof(float));
    /* a bad id is reported at its index in --ids, also with --decode */
    snprintf(cmd, sizeof cmd, "\"$NB\" logits -m '%s' --ids '2 17 99999' -o '%s' --decode",
             DEFAULT_MODEL, dst);
    assert_int_equal(sh(cmd), 1);
    assert_non_null(strstr(err, "id 99999 at index 2"));
}

/* The end of the context is said; -c above the trained context is clamped with a note. */
static void test_cli_context(void **state)
{
    (void)state;
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "\"$NB\" run -m '%s' -p 'And God said' -n 100 -c 16 --temp 0",
             DEFAULT_MODEL);
    check_clean(sh(cmd));
    assert_non_null(strstr(err, "stopped at the end of the context (16 tokens)"));
    assert_non_null(strstr(err, "-c raises the context"));
    snprintf(cmd, sizeof cmd, "\"$NB\" run -m '%s' -p 'And God said' -n 2 -c 100000",
             DEFAULT_MODEL);
    check_clean(sh(cmd));
    assert_non_null(strstr(err, "-c 100000 is above the model's trained context of 1024 tokens: "
                                "using 1024"));
    assert_null(strstr(err, "stopped at the end"));
}

/* perplexity reads a pipe to its end: the same result as from the file. */
static void test_cli_perplexity_pipe(void **state)
{
    (void)state;
    const char *txt = NB_TEST_TMP "/cli-ppl.txt";
    char cmd[2048], first[256];
    snprintf(cmd, sizeof cmd, "head -c 3000 '%s' > '%s'", HELDOUT, txt);
    assert_int_equal(sh(cmd), 0);
    snprintf(cmd, sizeof cmd, "\"$NB\" perplexity -m '%s' -f '%s' -c 128", DEFAULT_MODEL, txt);
    check_clean(sh(cmd));
    char *fin = strstr(out, "Final estimate");
    assert_non_null(fin);
    snprintf(first, sizeof first, "%s", fin);
    snprintf(cmd, sizeof cmd, "cat '%s' | \"$NB\" perplexity -m '%s' -f /dev/stdin -c 128", txt,
             DEFAULT_MODEL);
    check_clean(sh(cmd));
    assert_non_null(strstr(out, first));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mkmodel_cli),
        cmocka_unit_test(test_mkmodel_runs),
        cmocka_unit_test(test_bench_json),
        cmocka_unit_test(test_profile_table),
        cmocka_unit_test(test_profile_shaders),
        cmocka_unit_test(test_cli_numbers),
        cmocka_unit_test(test_cli_fifo),
        cmocka_unit_test(test_cli_outputs),
        cmocka_unit_test(test_cli_context),
        cmocka_unit_test(test_cli_perplexity_pipe),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
