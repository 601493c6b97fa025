/* test_tools: the speed tools through the built CLI (NB_CLI). `nibble mkmodel` writes small
 * presets that nibble loads and runs; `nibble bench -o json` prints one valid line per test with
 * the llama-bench fields; `nibble profile` prints its table, also with --shaders (GLSL compiled
 * at run time). Every run must be free of validation
 * messages (the CLI prints them as "vulkan warning/error: ..." on stderr). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "testutil.h"

static char out[1 << 16], err[1 << 16];

/* Runs `NB_CLI args`, stdout and stderr into out/err; returns the exit status. */
static int cli(const char *args)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "'%s' %s > '%s/tools.out' 2> '%s/tools.err'", NB_CLI, args,
             NB_TEST_TMP, NB_TEST_TMP);
    int st = system(cmd);
    assert_true(st != -1 && WIFEXITED(st));
    char path[1024];
    char *bufs[2] = {out, err};
    const char *names[2] = {"tools.out", "tools.err"};
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/%s", NB_TEST_TMP, names[i]);
        FILE *f = fopen(path, "rb");
        assert_non_null(f);
        size_t n = fread(bufs[i], 1, sizeof out - 1, f);
        bufs[i][n] = 0;
        fclose(f);
    }
    return WEXITSTATUS(st);
}

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
    snprintf(args, sizeof args, "profile -m '%s' -p 8 -n 2 --probe-mb 4", model_path("tiny-moe"));
    check_clean(cli(args));
    assert_non_null(strstr(out, "| step | shape | count |"));
    assert_non_null(strstr(out, "### prefill p8"));
    assert_non_null(strstr(out, "### decode"));
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mkmodel_cli),
        cmocka_unit_test(test_mkmodel_runs),
        cmocka_unit_test(test_bench_json),
        cmocka_unit_test(test_profile_table),
        cmocka_unit_test(test_profile_shaders),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
