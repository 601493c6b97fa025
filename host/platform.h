/* platform: every OS call nibble makes (file mapping, clocks, paths, folders).
 * POSIX here (Linux, Android); another system gets another platform.c. */
#ifndef NB_PLATFORM_H
#define NB_PLATFORM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct plat_map {
    const void *data; /* read-only view of the whole file */
    size_t size;
};

/* Maps a file read-only. Returns 0, or -1 with a message naming the path and the reason; anything
 * but a regular file (FIFO, device, directory) is refused without blocking. */
int plat_map_file(struct plat_map *m, const char *path, char *err, size_t errlen);
void plat_unmap(struct plat_map *m);
/* Tells the OS the mapped range [off, off+n) will not be read again soon (frees page cache). */
void plat_map_release(const struct plat_map *m, size_t off, size_t n);

/* Reads a regular file or a pipe/FIFO whole (until end of file) into *data, malloc'd and
 * NUL-terminated, its length in *size. A FIFO that no process has open for writing reads as
 * empty instead of blocking; devices and directories are refused. Returns 0, or -1 with a
 * message (also when the file holds more than max bytes). */
int plat_read_file(const char *path, size_t max, char **data, size_t *size, char *err,
                   size_t errlen);

/* An output file written whole or not at all. */
struct plat_out {
    FILE *f;         /* the open file (write through plat_out_write) */
    char path[1024]; /* the destination */
    char tmp[1056];  /* the temporary beside it, renamed over path at the end; "" when path is a
                        device or FIFO, written in place */
    int err;         /* errno of the first failed plat_out_write (-1: unknown), else 0 */
};
/* Opens path for writing: a regular (or new) file through a temporary in the same folder, a
 * device or FIFO in place (a FIFO that nothing reads is an error, not a wait). 0, or -1 with a
 * message. */
int plat_out_open(struct plat_out *o, const char *path, char *err, size_t errlen);
/* Writes n bytes to o->f; 0, or -1 (and every later write fails too) with the reason kept for
 * plat_out_close's message. */
int plat_out_write(struct plat_out *o, const void *p, size_t n);
/* ok: flushes, syncs and closes the file, checking each, and renames the temporary over the
 * destination; returns 0, or -1 with a message (the temporary removed, the destination as it
 * was). !ok: closes and removes the temporary; returns -1. */
int plat_out_close(struct plat_out *o, bool ok, char *err, size_t errlen);

/* Makes sure descriptors 0, 1 and 2 are open, so no file opened later takes their place: a
 * closed one is opened on /dev/null read-only, so writes to it still fail (EBADF) and a closed
 * stdout stays an error. Returns the closed ones as bits (1 << fd). */
unsigned plat_std_guard(void);

/* Monotonic clock in nanoseconds. */
uint64_t plat_now_ns(void);

/* Per-user cache folder for nibble (e.g. $XDG_CACHE_HOME/nibble or ~/.cache/nibble), created if
 * missing. Returns 0, or -1 when none can be made. */
int plat_cache_dir(char *buf, size_t n);
/* Creates a folder and its parents; returns 0 or -1. */
int plat_mkdir_p(const char *path);

/* Peak resident set size of this process in bytes (0 if unknown). */
uint64_t plat_peak_rss(void);

/* Strict numbers (environment variables, the CLI's flags through tools/args.c): the whole
 * string, within [lo, hi]. plat_parse_u64: decimal digits only (no sign, space, suffix or hex).
 * plat_parse_f64: a plain decimal (digits, at most one '.', an optional exponent; no sign but
 * the exponent's, so "nan", "inf", hex floats and leading spaces are refused). 0 with the value
 * in *out, or -1 (*out unchanged). */
int plat_parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out);
int plat_parse_f64(const char *s, double lo, double hi, double *out);

/* Interrupts (for nibble chat and serve): after plat_interrupt_catch(), SIGINT and SIGTERM no
 * longer end the process but count up what plat_interrupts() returns (any thread may read it),
 * and a blocking read they interrupt returns with EINTR instead of being restarted; SIGPIPE is
 * ignored, so a write to a closed pipe or socket fails with EPIPE. 0, or -1 if not installed. */
int plat_interrupt_catch(void);
unsigned plat_interrupts(void);
/* 1 when descriptor fd is a terminal (nibble chat prompts only then). */
bool plat_is_terminal(int fd);
/* Sleeps about ms milliseconds (less when a signal arrives). */
void plat_sleep_ms(unsigned ms);

/* A socket address for host (a numeric IPv4/IPv6 address or a name such as localhost) and
 * port, written to sa (at least 128 bytes) with its length in *len; returns the address family
 * (4 or 6), or -1 with a message. */
int plat_sockaddr(const char *host, uint16_t port, void *sa, size_t *len, char *err,
                  size_t errlen);
/* The local port a bound socket listens on (0 if unknown). */
uint16_t plat_socket_port(int fd);
/* 1 when the peer of connected socket fd has closed or reset it (never blocks; data waiting to
 * be read does not count as closed). */
bool plat_socket_gone(int fd);
void plat_socket_close(int fd);

#endif
