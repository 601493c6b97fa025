/* platform.c: POSIX implementation of platform.h. */
#define _DEFAULT_SOURCE /* madvise(MADV_DONTNEED): glibc's posix_madvise ignores DONTNEED */
#include "platform.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* What a non-regular file is, for messages. */
static const char *kind_name(mode_t m)
{
    return S_ISDIR(m)    ? "a directory"
           : S_ISFIFO(m) ? "a FIFO"
           : S_ISCHR(m)  ? "a character device"
           : S_ISBLK(m)  ? "a block device"
           : S_ISSOCK(m) ? "a socket"
                         : "not a regular file";
}

int plat_map_file(struct plat_map *m, const char *path, char *err, size_t errlen)
{
    m->data = NULL;
    m->size = 0;
    /* O_NONBLOCK: opening a FIFO without a writer would wait for one; the type check after
     * it refuses anything but a regular file (mmap ignores the flag) */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    int fs = fstat(fd, &st);
    if (fs != 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "%s: not a regular file (%s)", path,
                 fs != 0 ? strerror(errno) : kind_name(st.st_mode));
        close(fd);
        return -1;
    }
    if (st.st_size == 0) { /* mmap of 0 bytes fails; an empty file is still a valid mapping */
        close(fd);
        m->data = "";
        return 0;
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (p == MAP_FAILED) {
        snprintf(err, errlen, "%s: mmap failed: %s", path, strerror(errno));
        return -1;
    }
    m->data = p;
    m->size = (size_t)st.st_size;
    return 0;
}

void plat_unmap(struct plat_map *m)
{
    if (m->data && m->size) munmap((void *)m->data, m->size);
    m->data = NULL;
    m->size = 0;
}

void plat_map_release(const struct plat_map *m, size_t off, size_t n)
{
    long pg = sysconf(_SC_PAGESIZE);
    if (!m->size || pg <= 0 || off >= m->size) return;
    size_t start = off / (size_t)pg * (size_t)pg;
    size_t end = off + n > m->size ? m->size : off + n;
    if (end > start) madvise((void *)((const char *)m->data + start), end - start, MADV_DONTNEED);
}

uint64_t plat_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int plat_mkdir_p(const char *path)
{
    char tmp[1024];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof tmp) return -1;
    memcpy(tmp, path, n + 1);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(tmp, 0755) != 0 && errno != EEXIST) return -1;
        *p = '/';
    }
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST) return -1;
    return 0;
}

int plat_cache_dir(char *buf, size_t n)
{
    const char *xdg = getenv("XDG_CACHE_HOME");
    const char *home = getenv("HOME");
    int w;
    if (xdg && *xdg)
        w = snprintf(buf, n, "%s/nibble", xdg);
    else if (home && *home)
        w = snprintf(buf, n, "%s/.cache/nibble", home);
    else
        w = snprintf(buf, n, "/tmp/nibble-cache");
    if (w < 0 || (size_t)w >= n) return -1;
    return plat_mkdir_p(buf);
}

uint64_t plat_peak_rss(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
    return (uint64_t)ru.ru_maxrss * 1024u; /* Linux reports KiB */
}

int plat_read_file(const char *path, size_t max, char **data, size_t *size, char *err,
                   size_t errlen)
{
    *data = NULL;
    *size = 0;
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    int fs = fstat(fd, &st);
    if (fs != 0 || !(S_ISREG(st.st_mode) || S_ISFIFO(st.st_mode))) {
        snprintf(err, errlen, "%s: not a regular file or a pipe (%s)", path,
                 fs != 0 ? strerror(errno) : kind_name(st.st_mode));
        close(fd);
        return -1;
    }
    /* reads block again: a pipe's writer is waited for; a FIFO that no process has open for
     * writing reads as empty (end of file) instead of waiting for one */
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0) fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    size_t cap = S_ISREG(st.st_mode) && st.st_size > 0 ? (size_t)st.st_size + 1 : 1 << 16, n = 0;
    char *buf = NULL;
    for (;;) {
        if (!buf || n + 1 >= cap) {
            if (buf) cap *= 2;
            char *b = realloc(buf, cap);
            if (!b) {
                snprintf(err, errlen, "%s: out of host memory", path);
                goto fail;
            }
            buf = b;
        }
        ssize_t r = read(fd, buf + n, cap - 1 - n);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            snprintf(err, errlen, "%s: %s", path, strerror(errno));
            goto fail;
        }
        if (r == 0) break;
        n += (size_t)r;
        if (n > max) {
            snprintf(err, errlen, "%s: larger than %zu bytes", path, max);
            goto fail;
        }
    }
    close(fd);
    buf[n] = 0;
    *data = buf;
    *size = n;
    return 0;
fail:
    free(buf);
    close(fd);
    return -1;
}

int plat_out_open(struct plat_out *o, const char *path, char *err, size_t errlen)
{
    memset(o, 0, sizeof *o);
    size_t len = strlen(path);
    if (len == 0 || len + 32 > sizeof o->tmp) {
        snprintf(err, errlen, "%s: bad output path", path);
        return -1;
    }
    memcpy(o->path, path, len + 1);
    struct stat st;
    int fd;
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
        if (S_ISDIR(st.st_mode)) {
            snprintf(err, errlen, "%s: is a directory", path);
            return -1;
        }
        /* a device or a FIFO is written in place; O_NONBLOCK: a FIFO with no reader is an
         * error (ENXIO) instead of a wait for one */
        fd = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0) {
            snprintf(err, errlen, "%s: %s", path,
                     errno == ENXIO ? "a FIFO that nothing reads" : strerror(errno));
            return -1;
        }
        int fl = fcntl(fd, F_GETFL);
        if (fl >= 0) fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    } else {
        /* a temporary beside the destination, renamed over it when complete */
        for (unsigned k = 0;; k++) {
            snprintf(o->tmp, sizeof o->tmp, "%s.tmp%ld.%u", path, (long)getpid(), k);
            fd = open(o->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
            if (fd >= 0) break;
            if (errno != EEXIST || k == 100) {
                snprintf(err, errlen, "%s: %s", path, strerror(errno));
                o->tmp[0] = 0;
                return -1;
            }
        }
    }
    o->f = fdopen(fd, "wb");
    if (!o->f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        close(fd);
        if (o->tmp[0]) unlink(o->tmp);
        return -1;
    }
    return 0;
}

int plat_out_write(struct plat_out *o, const void *p, size_t n)
{
    if (o->err) return -1;
    errno = 0;
    if (fwrite(p, 1, n, o->f) == n) return 0;
    o->err = errno ? errno : -1;
    return -1;
}

int plat_out_close(struct plat_out *o, bool ok, char *err, size_t errlen)
{
    int e = o->err; /* the first failure's errno (-1: a write failed, errno unknown) */
    if (!o->f) return -1;
    if (ok && fflush(o->f) != 0) e = errno ? errno : -1;
    if (ok && !e && ferror(o->f)) e = -1;
    if (ok && !e && o->tmp[0] && fsync(fileno(o->f)) != 0) e = errno;
    if (fclose(o->f) != 0 && ok && !e) e = errno ? errno : -1;
    o->f = NULL;
    if (o->tmp[0]) {
        if (ok && !e && rename(o->tmp, o->path) != 0) e = errno;
        if (!ok || e) unlink(o->tmp);
        o->tmp[0] = 0;
    }
    if (ok && e) snprintf(err, errlen, "%s: %s", o->path, e > 0 ? strerror(e) : "write failed");
    return ok && !e ? 0 : -1;
}

unsigned plat_std_guard(void)
{
    unsigned closed = 0;
    for (int fd = 0; fd < 3; fd++) {
        if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF) continue;
        closed |= 1u << fd;
        int n = open("/dev/null", O_RDONLY); /* the lowest free descriptor: fd itself */
        if (n >= 0 && n != fd) {
            dup2(n, fd);
            close(n);
        }
    }
    return closed;
}

/* ---- interrupts ---- */
static volatile sig_atomic_t interrupts;

static void on_interrupt(int sig)
{
    (void)sig;
    interrupts++;
}

int plat_interrupt_catch(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_interrupt;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: a blocking read returns EINTR */
    struct sigaction ign;
    memset(&ign, 0, sizeof ign);
    ign.sa_handler = SIG_IGN;
    sigemptyset(&ign.sa_mask);
    if (sigaction(SIGINT, &sa, NULL) != 0 || sigaction(SIGTERM, &sa, NULL) != 0 ||
        sigaction(SIGPIPE, &ign, NULL) != 0)
        return -1;
    return 0;
}

unsigned plat_interrupts(void) { return (unsigned)interrupts; }

bool plat_is_terminal(int fd) { return isatty(fd) == 1; }

void plat_sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- sockets (nibble serve binds through libmicrohttpd) ---- */
int plat_sockaddr(const char *host, uint16_t port, void *sa, size_t *len, char *err,
                  size_t errlen)
{
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    char serv[8];
    snprintf(serv, sizeof serv, "%u", (unsigned)port);
    int rc = getaddrinfo(host, serv, &hints, &res);
    if (rc != 0 || !res) {
        snprintf(err, errlen, "cannot resolve host '%s': %s", host,
                 rc ? gai_strerror(rc) : "no address");
        return -1;
    }
    int fam = res->ai_family == AF_INET6 ? 6 : 4;
    if (res->ai_addrlen > sizeof(struct sockaddr_storage)) {
        snprintf(err, errlen, "host '%s': address too long", host);
        freeaddrinfo(res);
        return -1;
    }
    memcpy(sa, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    return fam;
}

uint16_t plat_socket_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t n = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &n) != 0) return 0;
    if (ss.ss_family == AF_INET) return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6) return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return 0;
}

/* ---- strict numbers -------------------------------------------------------------------------- */

int plat_parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
    if (!s || !*s || strspn(s, "0123456789") != strlen(s)) return -1;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

int plat_parse_f64(const char *s, double lo, double hi, double *out)
{
    if (!s) return -1;
    const char *p = s;
    int digits = 0;
    while (*p >= '0' && *p <= '9') p++, digits++;
    if (*p == '.') p++;
    while (*p >= '0' && *p <= '9') p++, digits++;
    if (digits && (*p == 'e' || *p == 'E')) {
        p++;
        if (*p == '+' || *p == '-') p++;
        if (!(*p >= '0' && *p <= '9')) digits = 0;
        while (*p >= '0' && *p <= '9') p++;
    }
    if (!digits || *p) return -1;
    char *end;
    double v = strtod(s, &end);
    if (*end || !isfinite(v) || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

bool plat_socket_gone(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, 0) != 1) return false;
    if (p.revents & (POLLHUP | POLLERR | POLLNVAL)) return true;
    char c;
    return (p.revents & POLLIN) && recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) == 0;
}

void plat_socket_close(int fd) { close(fd); }

#ifdef __SANITIZE_ADDRESS__
#include <dlfcn.h>
/* AddressSanitizer builds only (.ci/sanitize; every program linked with this file: the CLI and
 * the tests): the shared libraries named in NB_TEST_KEEP_LIBS (':'-separated paths, the Vulkan
 * drivers of the ICD files) are loaded before main and never unloaded. The loader unloads a
 * driver at vkDestroyInstance, and lavapipe keeps a 128-byte block in a global for the life of
 * the library: unloaded, LeakSanitizer reports it from "<unknown module>", which no suppression
 * can name without hiding every other leak with an unwound-out frame. Kept loaded, the block
 * stays reachable, and nibble's own leaks are reported as before (tests/sanitize/lsan.supp). */
__attribute__((constructor)) static void keep_libs(void)
{
    const char *v = getenv("NB_TEST_KEEP_LIBS");
    char path[1024];
    while (v && *v) {
        size_t n = strcspn(v, ":");
        if (n && n < sizeof path) {
            memcpy(path, v, n);
            path[n] = 0;
            if (!dlopen(path, RTLD_NOW | RTLD_LOCAL))
                fprintf(stderr, "nibble: NB_TEST_KEEP_LIBS: %s\n", dlerror());
        }
        v += n + (v[n] == ':');
    }
}
#endif
