/* shader_rt: `nibble profile --shaders DIR`: compiles the GLSL of DIR at run time with libshaderc
 * (linked statically when CMake finds it: NB_HAVE_SHADERC) in place of the embedded SPIR-V.
 * The variant table (name|source|DEFINES) is read from DIR/CMakeLists.txt, so a copy of shaders/
 * can be edited and re-measured without a rebuild; every variant is compiled up front and
 * handed to the host layer through vkx_set_spv_override, matched by its embedded code. */
#include "shader_rt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nb_shaders.h"
#include "vkx.h"

#ifdef NB_HAVE_SHADERC
#include <shaderc/shaderc.h>

static uint32_t *code[NB_SPV_COUNT];
static size_t code_size[NB_SPV_COUNT];
static char dir_[1024];

static char *read_text(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 14, len = 0;
    char *s = malloc(cap);
    while (s) {
        size_t k = fread(s + len, 1, cap - len - 1, f);
        len += k;
        if (len + 1 < cap) break;
        char *t = realloc(s, cap *= 2);
        if (!t) {
            free(s);
            s = NULL;
        } else
            s = t;
    }
    fclose(f);
    if (s) s[len] = 0;
    if (n) *n = len;
    return s;
}

struct inc {
    shaderc_include_result r;
    char name[1100];
    char *text;
};

static shaderc_include_result *resolve(void *user, const char *req, int type, const char *from,
                                       size_t depth)
{
    (void)user;
    (void)type;
    (void)from;
    (void)depth;
    struct inc *i = calloc(1, sizeof *i);
    if (!i) return NULL;
    snprintf(i->name, sizeof i->name, "%s/%s", dir_, req);
    size_t n = 0;
    i->text = read_text(i->name, &n);
    if (i->text) {
        i->r.source_name = i->name;
        i->r.source_name_length = strlen(i->name);
        i->r.content = i->text;
        i->r.content_length = n;
    } else {
        i->r.source_name = "";
        i->r.content = "include file not found";
        i->r.content_length = strlen(i->r.content);
    }
    i->r.user_data = i;
    return &i->r;
}

static void release(void *user, shaderc_include_result *r)
{
    (void)user;
    struct inc *i = r->user_data;
    free(i->text);
    free(i);
}

static const uint32_t *lookup(void *user, const char *name, const uint32_t *spv, size_t spv_size,
                              size_t *size)
{
    (void)user;
    (void)name;
    (void)spv_size;
    for (int i = 0; i < NB_SPV_COUNT; i++)
        if (nb_spv[i].code == spv && code[i]) {
            *size = code_size[i];
            return code[i];
        }
    return NULL;
}

/* One variant: "name|source|DEFINES" from the table. */
static int compile_one(shaderc_compiler_t cc, const char *name, const char *src, char *defs,
                       char *err, size_t errlen)
{
    int id = -1;
    for (int i = 0; i < NB_SPV_COUNT; i++)
        if (!strcmp(nb_spv[i].name, name)) id = i;
    if (id < 0) return 0; /* a variant this build does not know: nothing uses it */
    char path[1400];
    snprintf(path, sizeof path, "%s/%s", dir_, src);
    size_t n;
    char *text = read_text(path, &n);
    if (!text) {
        snprintf(err, errlen, "cannot read %s", path);
        return -1;
    }
    if (!strstr(text, "#version")) { /* glslang would dump its built-ins to stdout */
        snprintf(err, errlen, "%s: no #version line", path);
        free(text);
        return -1;
    }
    shaderc_compile_options_t o = shaderc_compile_options_initialize();
    shaderc_compile_options_set_target_env(o, shaderc_target_env_vulkan,
                                           shaderc_env_version_vulkan_1_1);
    shaderc_compile_options_set_optimization_level(o, shaderc_optimization_level_performance);
    shaderc_compile_options_set_include_callbacks(o, resolve, release, NULL);
    for (char *d = strtok(defs, " \t"); d; d = strtok(NULL, " \t")) {
        char *eq = strchr(d, '=');
        if (eq)
            shaderc_compile_options_add_macro_definition(o, d, (size_t)(eq - d), eq + 1,
                                                         strlen(eq + 1));
        else
            shaderc_compile_options_add_macro_definition(o, d, strlen(d), NULL, 0);
    }
    shaderc_compilation_result_t r =
        shaderc_compile_into_spv(cc, text, n, shaderc_compute_shader, path, "main", o);
    int rc = 0;
    if (shaderc_result_get_compilation_status(r) != shaderc_compilation_status_success) {
        const char *msg = shaderc_result_get_error_message(r);
        const char *nl = msg ? strchr(msg, '\n') : NULL;
        snprintf(err, errlen, "%s (%s): %.*s", name, src, nl ? (int)(nl - msg) : 300,
                 msg ? msg : "compilation failed");
        rc = -1;
    } else {
        size_t len = shaderc_result_get_length(r);
        code[id] = malloc(len);
        if (code[id]) {
            memcpy(code[id], shaderc_result_get_bytes(r), len);
            code_size[id] = len;
        }
    }
    shaderc_result_release(r);
    shaderc_compile_options_release(o);
    free(text);
    return rc;
}

int nb_shaders_from_dir(const char *dir, int *n_compiled, char *err, size_t errlen)
{
    snprintf(dir_, sizeof dir_, "%s", dir);
    char path[1100];
    snprintf(path, sizeof path, "%s/CMakeLists.txt", dir);
    char *table = read_text(path, NULL);
    if (!table) {
        snprintf(err, errlen, "cannot read %s (the variant table)", path);
        return -1;
    }
    shaderc_compiler_t cc = shaderc_compiler_initialize();
    int rc = 0, n = 0;
    /* lines like:   "name|source.comp|DEF1 DEF2"   inside set(NB_SHADER_TABLE ...) */
    for (char *l = table; l && *l && rc == 0;) {
        char *end = strchr(l, '\n');
        if (end) *end = 0;
        char name[128], src[256], defs[512] = "";
        /* the bandwidth probe (bw*) stays built in: it measures the device, not the kernels */
        if (sscanf(l, " \"%127[^|\"]|%255[^|\"]|%511[^\"]\"", name, src, defs) >= 2 &&
            strstr(src, ".comp") && strncmp(name, "bw", 2) != 0) {
            rc = compile_one(cc, name, src, defs, err, errlen);
            n += rc == 0;
        }
        l = end ? end + 1 : NULL;
    }
    shaderc_compiler_release(cc);
    free(table);
    if (rc == 0) vkx_set_spv_override(lookup, NULL);
    if (n_compiled) *n_compiled = n;
    return rc;
}

#else

int nb_shaders_from_dir(const char *dir, int *n_compiled, char *err, size_t errlen)
{
    (void)dir;
    (void)n_compiled;
    snprintf(err, errlen, "this nibble was built without libshaderc (libshaderc_combined.a)");
    return -1;
}

#endif
