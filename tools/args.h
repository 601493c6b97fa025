/* args: the command line's strict number parsing, shared by every subcommand and by the
 * environment variables the CLI reads.
 *
 * A number is the whole string: decimal digits only for the integer parsers (no sign, no spaces,
 * no suffix, no hex), a plain decimal (digits, '.', an exponent) for args_f64, and within
 * [lo, hi]. On failure each parser prints one line naming the command and the flag, e.g.
 *     nibble run: -c: '256x' is not a whole number from 1 to 16777216
 * and returns -1; on success it stores the value and returns 0. */
#ifndef NB_ARGS_H
#define NB_ARGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

int args_u64(const char *cmd, const char *flag, const char *s, uint64_t lo, uint64_t hi,
             uint64_t *out);
int args_u32(const char *cmd, const char *flag, const char *s, uint32_t lo, uint32_t hi,
             uint32_t *out);
int args_f64(const char *cmd, const char *flag, const char *s, double lo, double hi,
             double *out);

/* The value after flag argv[*i]: advances *i and returns argv[*i]; NULL after printing
 * "nibble CMD: FLAG needs a value". */
const char *args_value(const char *cmd, int argc, char **argv, int *i);
/* Prints "nibble CMD: unknown option 'ARG' (usage: ...)" and returns 2 (the exit status). */
int args_unknown(const char *cmd, const char *arg, const char *usage);
/* The value of flag argv[*i], which must be one of the n flags that take a value: advances *i
 * and returns argv[*i]; NULL after printing args_unknown's line (not one of them) or
 * args_value's (no value): exit with status 2. */
const char *args_flag_value(const char *cmd, const char *const *flags, size_t n, int argc,
                            char **argv, int *i, const char *usage);
#define ARGS_COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* Checks the numeric environment variables nibble reads (NIBBLE_DEVICE, NIBBLE_DEVICE_MEMORY_MB):
 * 0, or -1 after printing which one is malformed. */
int args_check_env(void);

/* The context length to use for -c CTX (0: not given) with a model trained on `train` tokens
 * (0: unknown): CTX, or `train` with a note on stderr when CTX is larger (positions past the
 * trained context are outside what the model has learned; llama.cpp warns, nibble clamps). */
uint32_t args_ctx(const char *cmd, uint32_t ctx, uint32_t train);

#endif
