/* test_cli_info: runs the built `nibble info` (NB_CLI): without a Vulkan driver it prints one
 * error line and exits non-zero (with the validation layer on or off); with one it prints the
 * device line and the capability list. `info -m MODEL` prints the type mix of the test models. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "gguf.h"
#include "testutil.h"

/* Runs `env NB_CLI args` with stdout and stderr in files; returns the exit status. */
static int run_cli(const char *env, const char *args, char *out, size_t out_n, char *err,
                   size_t err_n)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s '%s' %s > '%s/cli_info.out' 2> '%s/cli_info.err'", env, NB_CLI,
             args, NB_TEST_TMP, NB_TEST_TMP);
    int st = system(cmd);
    assert_true(st != -1 && WIFEXITED(st));
    char path[1024];
    char *bufs[2] = {out, err};
    size_t ns[2] = {out_n, err_n};
    const char *names[2] = {"cli_info.out", "cli_info.err"};
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/%s", NB_TEST_TMP, names[i]);
        FILE *f = fopen(path, "rb");
        assert_non_null(f);
        size_t n = fread(bufs[i], 1, ns[i] - 1, f);
        bufs[i][n] = 0;
        fclose(f);
    }
    return WEXITSTATUS(st);
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

static void no_driver(const char *validate)
{
    char env[256], out[8192], err[8192];
    snprintf(env, sizeof env,
             "VK_ICD_FILENAMES=/nonexistent VK_DRIVER_FILES=/nonexistent NIBBLE_VALIDATE=%s",
             validate);
    int rc = run_cli(env, "info", out, sizeof out, err, sizeof err);
    printf("# NIBBLE_VALIDATE=%s: exit %d, stderr: %s", validate, rc, err);
    assert_int_not_equal(rc, 0);
    assert_int_equal(count_lines(err), 1);
    assert_non_null(strstr(err, "no Vulkan device"));
    assert_string_equal(out, "");
}

static void test_info_no_driver(void **state)
{
    (void)state;
    no_driver("0");
    no_driver("1");
    nb_test_check_validation();
}

static void test_info_device(void **state)
{
    (void)state;
    char out[16384], err[8192];
    int rc = run_cli("", "info", out, sizeof out, err, sizeof err);
    if (rc != 0 && strstr(err, "no Vulkan device")) skip();
    printf("%s", out);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "subgroup:"));
    assert_non_null(strstr(out, "\nmax storage buffer range: "));
    assert_string_equal(err, "");
    rc = run_cli("", "info --all", out, sizeof out, err, sizeof err);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, " 0: "));
    rc = run_cli("", "info --bogus", out, sizeof out, err, sizeof err);
    assert_int_not_equal(rc, 0);
    assert_int_equal(count_lines(err), 1);
    /* kernel shapes: by device type, or forced either way; anything else is one clear error */
    const char *tunes[2] = {"gpu", "cpu"};
    for (int i = 0; i < 2; i++) {
        char env[32], want[64];
        snprintf(env, sizeof env, "NIBBLE_TUNE=%s", tunes[i]);
        snprintf(want, sizeof want, "\nkernel shapes: %s\n", tunes[i]);
        rc = run_cli(env, "info", out, sizeof out, err, sizeof err);
        assert_int_equal(rc, 0);
        assert_non_null(strstr(out, want));
    }
    rc = run_cli("NIBBLE_TUNE=fast", "info", out, sizeof out, err, sizeof err);
    assert_int_not_equal(rc, 0);
    assert_int_equal(count_lines(err), 1);
    assert_non_null(strstr(err, "NIBBLE_TUNE=fast: expected cpu or gpu"));
    nb_test_check_validation();
}

/* `info -m MODEL` on the test models: one "types" line with every type of the file, its tensor
 * count and bytes, largest share first (counted here from the file itself). */
static void test_info_model_types(void **state)
{
    (void)state;
    const char *names[] = {"dense.gguf", "dense-q8.gguf", "moe.gguf", "ple.gguf",
                           "dense-f32.gguf"};
    int ran = 0;
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        const char *p = nb_test_file(names[k]);
        if (!p) continue;
        char path[2048], args[2200], out[16384], err[8192], gerr[256];
        snprintf(path, sizeof path, "%s", p);
        snprintf(args, sizeof args, "info -m '%s'", path);
        assert_int_equal(run_cli("", args, out, sizeof out, err, sizeof err), 0);
        const char *line = strstr(out, "\ntypes                ");
        assert_non_null(line);
        char types[1024];
        line += 1;
        size_t len = strcspn(line, "\n");
        assert_true(len < sizeof types);
        memcpy(types, line, len);
        types[len] = 0;
        printf("# %s: %s\n", names[k], types);

        struct gguf *g = gguf_open(path, gerr, sizeof gerr);
        assert_non_null(g);
        uint64_t count[GGML_TYPE_MAX] = {0}, bytes[GGML_TYPE_MAX] = {0};
        for (uint64_t i = 0; i < g->n_tensors; i++) {
            count[g->tensors[i].type]++;
            bytes[g->tensors[i].type] += g->tensors[i].nbytes;
        }
        gguf_close(g);
        int n_types = 0;
        const char *at[GGML_TYPE_MAX] = {0};
        for (int t = 0; t < GGML_TYPE_MAX; t++) {
            if (!count[t]) continue;
            char want[64];
            snprintf(want, sizeof want, " %s %llu tensor%s ", ggml_type_name((enum ggml_type)t),
                     (unsigned long long)count[t], count[t] == 1 ? "" : "s");
            at[t] = strstr(types, want);
            if (!at[t]) fail_msg("%s: '%s' lacks '%s'", names[k], types, want);
            n_types++;
        }
        /* larger shares come first */
        for (int a = 0; a < GGML_TYPE_MAX; a++)
            for (int b = 0; b < GGML_TYPE_MAX; b++)
                if (at[a] && at[b] && bytes[a] > bytes[b]) assert_true(at[a] < at[b]);
        /* one entry per type, comma-separated, sizes in decimal units */
        int commas = 0;
        for (const char *c = types; *c; c++) commas += *c == ',';
        assert_int_equal(commas, n_types - 1);
        assert_true(strstr(types, " MB") || strstr(types, " kB") || strstr(types, " GB"));
        ran++;
    }
    if (!ran) skip();
}

/* `info --pipelines -m MODEL`: the compiler statistics of the model's pipelines where the driver
 * offers them (RADV: a table ending with the count of spilling pipelines), else one line saying
 * the driver does not (lavapipe); exit 0 either way. --csv alone is a usage error. */
static void test_info_pipelines(void **state)
{
    (void)state;
    const char *p = nb_test_file("dense.gguf");
    if (!p) skip();
    char args[2200], out[32768], err[8192];
    snprintf(args, sizeof args, "info --pipelines -m '%s'", p);
    int rc = run_cli("", args, out, sizeof out, err, sizeof err);
    if (rc != 0 && strstr(err, "no Vulkan device")) skip();
    printf("%s", out);
    assert_int_equal(rc, 0);
    assert_true(strstr(out, "pipeline statistics: not offered by this driver") ||
                (strstr(out, "| matvec_q4_0 |") && strstr(out, " pipelines spill registers")));
    snprintf(args, sizeof args, "info --pipelines --csv -m '%s'", p);
    assert_int_equal(run_cli("", args, out, sizeof out, err, sizeof err), 0);
    assert_true(strstr(out, "not offered") || !strncmp(out, "pipeline,spec,", 14));
    assert_int_equal(run_cli("", "info --csv", out, sizeof out, err, sizeof err), 2);
    assert_int_equal(count_lines(err), 1);
    snprintf(args, sizeof args, "info --pipelines -m '%s/nonexistent.gguf'", NB_TEST_TMP);
    assert_int_equal(run_cli("", args, out, sizeof out, err, sizeof err), 1);
    assert_int_equal(count_lines(err), 1);
    nb_test_check_validation();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_info_no_driver),
        cmocka_unit_test(test_info_device),
        cmocka_unit_test(test_info_model_types),
        cmocka_unit_test(test_info_pipelines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
