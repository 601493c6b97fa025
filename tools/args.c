/* args.c: strict number parsing for the command line (see args.h). */
#include "args.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "platform.h"

/* "nibble CMD: FLAG: ..." (no CMD for environment variables) */
static void bad(const char *cmd, const char *flag, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "nibble%s%s: %s: ", *cmd ? " " : "", cmd, flag);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

int args_u64(const char *cmd, const char *flag, const char *s, uint64_t lo, uint64_t hi,
             uint64_t *out)
{
    if (plat_parse_u64(s, lo, hi, out) != 0) {
        bad(cmd, flag, "'%s' is not a whole number from %llu to %llu", s,
            (unsigned long long)lo, (unsigned long long)hi);
        return -1;
    }
    return 0;
}

int args_u32(const char *cmd, const char *flag, const char *s, uint32_t lo, uint32_t hi,
             uint32_t *out)
{
    uint64_t v;
    if (args_u64(cmd, flag, s, lo, hi, &v) != 0) return -1;
    *out = (uint32_t)v;
    return 0;
}

int args_f64(const char *cmd, const char *flag, const char *s, double lo, double hi,
             double *out)
{
    if (plat_parse_f64(s, lo, hi, out) != 0) {
        bad(cmd, flag, "'%s' is not a number from %g to %g", s, lo, hi);
        return -1;
    }
    return 0;
}

const char *args_value(const char *cmd, int argc, char **argv, int *i)
{
    if (*i + 1 >= argc) {
        fprintf(stderr, "nibble %s: %s needs a value\n", cmd, argv[*i]);
        return NULL;
    }
    return argv[++*i];
}

int args_unknown(const char *cmd, const char *arg, const char *usage)
{
    fprintf(stderr, "nibble %s: unknown option '%s' (usage: %s)\n", cmd, arg, usage);
    return 2;
}

const char *args_flag_value(const char *cmd, const char *const *flags, size_t n, int argc,
                            char **argv, int *i, const char *usage)
{
    size_t f = 0;
    while (f < n && strcmp(argv[*i], flags[f])) f++;
    if (f == n) {
        args_unknown(cmd, argv[*i], usage);
        return NULL;
    }
    return args_value(cmd, argc, argv, i);
}

int args_check_env(void)
{
    const char *v = getenv("NIBBLE_DEVICE_MEMORY_MB");
    double mb;
    if (v && (plat_parse_f64(v, 0, 1e12, &mb) != 0 || !(mb > 0))) {
        bad("", "NIBBLE_DEVICE_MEMORY_MB", "'%s' is not a number of MiB above 0 (at most 1e12)",
            v);
        return -1;
    }
    v = getenv("NIBBLE_DEVICE");
    uint64_t d;
    if (v && *v && args_u64("", "NIBBLE_DEVICE", v, 0, 1000, &d) != 0) return -1;
    return 0;
}

uint32_t args_ctx(const char *cmd, uint32_t ctx, uint32_t train)
{
    if (!ctx || !train || ctx <= train) return ctx;
    fprintf(stderr, "nibble %s: -c %u is above the model's trained context of %u tokens: using "
            "%u\n", cmd, ctx, train, train);
    return train;
}
