/* bench_spec: `nibble bench` with --lookup or --draft (tools/bench_spec.c): speculative decoding
 * against plain decoding in one run. */
#ifndef NB_BENCH_SPEC_H
#define NB_BENCH_SPEC_H

#include <stdbool.h>

/* True when argv asks for the speculative benchmark (--lookup or --draft). */
bool bench_spec_wanted(int argc, char **argv);
/* The benchmark; the process exit status. */
int bench_spec(int argc, char **argv);

#endif
