/* platform: every OS call nibble makes (file mapping, clocks, paths, folders).
 * POSIX here (Linux, Android); another system gets another platform.c. */
#ifndef NB_PLATFORM_H
#define NB_PLATFORM_H

#include <stddef.h>
#include <stdint.h>

struct plat_map {
    const void *data; /* read-only view of the whole file */
    size_t size;
};

/* Maps a file read-only. Returns 0, or -1 with a message naming the path and the reason. */
int plat_map_file(struct plat_map *m, const char *path, char *err, size_t errlen);
void plat_unmap(struct plat_map *m);
/* Tells the OS the mapped range [off, off+n) will not be read again soon (frees page cache). */
void plat_map_release(const struct plat_map *m, size_t off, size_t n);

/* Monotonic clock in nanoseconds. */
uint64_t plat_now_ns(void);

/* Per-user cache folder for nibble (e.g. $XDG_CACHE_HOME/nibble or ~/.cache/nibble), created if
 * missing. Returns 0, or -1 when none can be made. */
int plat_cache_dir(char *buf, size_t n);
/* Creates a folder and its parents; returns 0 or -1. */
int plat_mkdir_p(const char *path);

/* Peak resident set size of this process in bytes (0 if unknown). */
uint64_t plat_peak_rss(void);

#endif
