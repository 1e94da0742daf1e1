/*
 * The file-I/O layer: each call is the plain syscall with EINTR and
 * short-transfer handling, reached through the installed table of operations
 * (rl_fs_sys unless a test installed its own, see fs.h).
 */
#include "fs/fs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "liblog.h"

static int sys_open(const char *path, int flags, int mode, int *fd_out)
{
    /* Every file liblog creates holds the host's records or what decides
     * over them: readable and writable by this user only, whatever mode a
     * caller passes. */
    if (flags & O_CREAT)
        mode &= 0600;
    int fd;
    do {
        fd = open(path, flags | O_CLOEXEC, mode);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0)
        return -errno;
    *fd_out = fd;
    return 0;
}

static int sys_close(int fd)
{
    return close(fd) == 0 ? 0 : -errno;
}

static int sys_pread(int fd, void *buf, size_t len, uint64_t off, size_t *nread)
{
    size_t got = 0;
    *nread = 0;
    while (got < len) {
        ssize_t r = pread(fd, (char *)buf + got, len - got, (off_t)(off + got));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -errno;
        if (r == 0)
            break;
        got += (size_t)r;
    }
    *nread = got;
    return 0;
}

/* Writes the whole of iov_in, 64 iovecs at a time (below IOV_MAX), each
 * group retried until fully written. */
static int sys_pwritev(int fd, const struct iovec *iov_in, int iovcnt, uint64_t off)
{
    struct iovec iov[64];
    const struct iovec *src = iov_in;
    int left = iovcnt;
    while (left > 0) {
        int k = left < 64 ? left : 64;
        size_t group = 0;
        for (int i = 0; i < k; i++) {
            iov[i] = src[i];
            group += iov[i].iov_len;
        }
        struct iovec *cur = iov;
        int cnt = k;
        while (group > 0) {
            ssize_t w = pwritev(fd, cur, cnt, (off_t)off);
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0)
                return -errno;
            if (w == 0)
                return -EIO;
            off += (uint64_t)w;
            group -= (size_t)w;
            size_t adv = (size_t)w;
            while (cnt > 0 && adv >= cur->iov_len) {
                adv -= cur->iov_len;
                cur++;
                cnt--;
            }
            if (cnt > 0) {
                cur->iov_base = (char *)cur->iov_base + adv;
                cur->iov_len -= adv;
            }
        }
        src += k;
        left -= k;
    }
    return 0;
}

static int sys_fdatasync(int fd)
{
    int rv;
    do {
        rv = fdatasync(fd);
    } while (rv != 0 && errno == EINTR);
    return rv == 0 ? 0 : -errno;
}

#define ZERO_FILL_CHUNK (256u << 10)

/* A zeroed buffer for O_DIRECT writes: aligned for any logical block. */
static const unsigned char direct_zeros[1 << 16] __attribute__((aligned(4096)));

/* A second descriptor of fd's file opened O_DIRECT, or -1 where the file
 * system refuses it (the zeros then go through the page cache). */
static int reopen_direct(int fd)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    return open(path, O_WRONLY | O_DIRECT | O_CLOEXEC);
}

static int sys_zero_fill(int fd, uint64_t size)
{
    /* Reserve first so ENOSPC shows before any byte is written, then write
     * real zeros so later overwrites need no extent conversion at sync. */
    int rv = posix_fallocate(fd, 0, (off_t)size);
    if (rv != 0 && rv != EOPNOTSUPP && rv != EINVAL)
        return -rv;
    /* The zeros go around the page cache where they can: copying a
     * segment's worth of zeros into it took half the CPU of a batched
     * workload over 16 logs (perf: copy_folio_from_iter under pwrite), and
     * filled the cache with pages nobody reads. */
    int dfd = size % 4096 == 0 ? reopen_direct(fd) : -1;
    for (uint64_t off = 0; off < size;) {
        size_t n = size - off < sizeof direct_zeros ? (size_t)(size - off) : sizeof direct_zeros;
        ssize_t w = pwrite(dfd >= 0 ? dfd : fd, direct_zeros, n, (off_t)off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && dfd >= 0 && errno == EINVAL) { /* O_DIRECT refused after all */
            close(dfd);
            dfd = -1;
            continue;
        }
        if (w <= 0) {
            int e = w < 0 ? -errno : -EIO;
            if (dfd >= 0)
                close(dfd);
            return e;
        }
        off += (uint64_t)w;
        /* Synced a chunk at a time. One fdatasync of a whole segment's
         * zeros held the disk for ~120 ms and every append's fdatasync
         * waited behind it: W2 max latency 121-138 ms, 15-38 ms when no
         * segment was made during the run, 4.6-11.6 ms with 256 KiB
         * chunks (same W2 throughput, p99 +7-10%). 1 MiB chunks doubled
         * bench_store's p99 while a spare was being made; 256 KiB less. */
        if (off % ZERO_FILL_CHUNK == 0 || off == size) {
            rv = sys_fdatasync(fd);
            if (rv != 0) {
                if (dfd >= 0)
                    close(dfd);
                return rv;
            }
        }
    }
    if (dfd >= 0)
        close(dfd);
    return 0;
}

static int sys_unlink(const char *path)
{
    return unlink(path) == 0 ? 0 : -errno;
}

static int sys_rename(const char *from, const char *to)
{
    return rename(from, to) == 0 ? 0 : -errno;
}

static int sys_fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rv = fsync(fd) == 0 ? 0 : -errno;
    close(fd);
    return rv;
}

const struct rl_fs_ops rl_fs_sys = {
    .open = sys_open,
    .close = sys_close,
    .pread = sys_pread,
    .pwritev = sys_pwritev,
    .fdatasync = sys_fdatasync,
    .zero_fill = sys_zero_fill,
    .unlink = sys_unlink,
    .rename = sys_rename,
    .fsync_dir = sys_fsync_dir,
};

static const struct rl_fs_ops *ops = &rl_fs_sys;

const struct rl_fs_ops *rl_fs_set_ops(const struct rl_fs_ops *next)
{
    const struct rl_fs_ops *prev = ops;
    ops = next ? next : &rl_fs_sys;
    return prev;
}

int rl_fs_open(const char *path, int flags, int mode, int *fd_out)
{
    return ops->open(path, flags, mode, fd_out);
}

int rl_fs_close(int fd)
{
    return ops->close(fd);
}

int rl_fs_pread(int fd, void *buf, size_t len, uint64_t off, size_t *nread)
{
    return ops->pread(fd, buf, len, off, nread);
}

int rl_fs_pwritev(int fd, const struct iovec *iov, int iovcnt, uint64_t off)
{
    return ops->pwritev(fd, iov, iovcnt, off);
}

int rl_fs_pwrite(int fd, const void *buf, size_t len, uint64_t off)
{
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
    return ops->pwritev(fd, &iov, 1, off);
}

int rl_fs_fdatasync(int fd)
{
    return ops->fdatasync(fd);
}

int rl_fs_zero_fill(int fd, uint64_t size)
{
    return ops->zero_fill(fd, size);
}

int rl_fs_unlink(const char *path)
{
    return ops->unlink(path);
}

int rl_fs_rename(const char *from, const char *to)
{
    return ops->rename(from, to);
}

int rl_fs_fsync_dir(const char *dir)
{
    return ops->fsync_dir(dir);
}

int rl_fs_file_size(int fd, uint64_t *size)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return -errno;
    *size = (uint64_t)st.st_size;
    return 0;
}

int rl_fs_read_all(const char *dir, const char *name, unsigned char **buf, size_t *len)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    *buf = NULL;
    *len = 0;
    int fd = -1, rv = rl_fs_open(path, O_RDONLY, 0, &fd);
    if (rv != 0)
        return rv;
    uint64_t size = 0;
    size_t got = 0;
    unsigned char *b = NULL;
    if ((rv = rl_fs_file_size(fd, &size)) == 0 && !(b = malloc(size ? size : 1)))
        rv = -ENOMEM;
    if (rv == 0 && (rv = rl_fs_pread(fd, b, size, 0, &got)) == 0 && got != size)
        rv = -EIO;
    rl_fs_close(fd);
    if (rv != 0) {
        free(b);
        return rv;
    }
    *buf = b;
    *len = (size_t)size;
    return 0;
}

int rl_fs_replace(const char *dir, const char *name, const void *buf, size_t len)
{
    char tmp[4200], path[4200];
    snprintf(tmp, sizeof tmp, "%s/%s.tmp", dir, name);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd, rv = rl_fs_open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600, &fd);
    if (rv != 0)
        return rv;
    rv = rl_fs_pwrite(fd, buf, len, 0);
    if (rv == 0)
        rv = rl_fs_fdatasync(fd);
    rl_fs_close(fd);
    if (rv == 0)
        rv = rl_fs_rename(tmp, path);
    /* The rename is durable only once the directory is. */
    if (rv == 0)
        rv = rl_fs_fsync_dir(dir);
    return rv;
}

int rl_errno_to_rlog(int neg_errno)
{
    switch (-neg_errno) {
    case 0:
        return 0;
    case ENOSPC:
    case EDQUOT:
        return RLOG_ENOSPC;
    case ENOMEM:
        return RLOG_ENOMEM;
    default:
        return RLOG_EIO;
    }
}
