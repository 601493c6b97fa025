/* api.h: what the files of the public API (nibble.c, spec.c) share inside the engine. */
#ifndef NB_API_H
#define NB_API_H

#include <stddef.h>

/* Writes a message to err (which may be NULL; then errlen is ignored), as snprintf. Every message
 * of the public API goes through here. */
void nb_seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The start of every public create or load function: 0 when `from`, what the new object is made
 * from, is given; else "no <what>" in err and -1. (Each caller takes its default parameters
 * for a NULL params pointer first: nibble_*_default_params.) */
int nb_api_need(const void *from, const char *what, char *err, size_t errlen);

#endif
