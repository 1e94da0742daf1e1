/*
 * Fault injection behind lib/fs's table of operations (see fault_fs.h).
 *
 * Power loss is modelled by an undo log: while a fault plan is armed, every
 * write first saves the bytes it overwrites (its pre-image). A successful
 * fdatasync of a file forgets that file's pre-images (they are durable). At
 * the crash, pre-images are restored newest first, which leaves each file as
 * it was at its last fdatasync; the newest write may keep a torn prefix.
 * The real work is rl_fs_sys's.
 */
#include "lib/fault_fs.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct undo {
    struct undo *prev;
    dev_t dev;
    ino_t ino;
    char *path;         /* to restore after the fd is closed */
    uint64_t off;
    size_t len;
    size_t old_len;     /* bytes that existed before (the rest was beyond EOF) */
    uint64_t old_size;  /* file size before the write */
    unsigned char *old; /* pre-image */
};

/* One machine's disk: its fault plan, counters and undo log. */
struct rl_fs_domain {
    bool armed;
    bool crashed;
    struct rl_fs_faults plan;
    char only_under[512]; /* plan.only_under's copy; "" for every file */
    struct rl_fs_counters counters;
    unsigned n_writes, n_syncs, n_zero_fills;
    struct undo *undo_top;
};

static pthread_mutex_t fault_mu = PTHREAD_MUTEX_INITIALIZER;
static struct rl_fs_domain process_domain;
/* The simulator runs several machines on one thread and enters each one's
 * domain while it acts for it; everyone else uses the process's. */
static __thread struct rl_fs_domain *thread_domain;
#define DOM (thread_domain ? thread_domain : &process_domain)

/* Paths of open fds, so pre-images can be restored after a close. */
#define FD_PATHS 1024
static char *fd_path[FD_PATHS];

/* Whether the fault plan covers fd (its path under only_under). Under
 * fault_mu. */
static bool in_scope(int fd)
{
    const char *under = DOM->only_under;
    if (!under[0])
        return true;
    return fd >= 0 && fd < FD_PATHS && fd_path[fd] && strncmp(fd_path[fd], under, strlen(under)) == 0;
}

static void undo_free(struct undo *u)
{
    free(u->path);
    free(u->old);
    free(u);
}

static void undo_drop_all(void)
{
    while (DOM->undo_top) {
        struct undo *u = DOM->undo_top;
        DOM->undo_top = u->prev;
        undo_free(u);
    }
}

void rl_fs_faults_set(const struct rl_fs_faults *f)
{
    pthread_mutex_lock(&fault_mu);
    DOM->plan = *f;
    snprintf(DOM->only_under, sizeof DOM->only_under, "%s", f->only_under ? f->only_under : "");
    DOM->plan.only_under = NULL;
    DOM->armed = true;
    DOM->crashed = false;
    DOM->n_writes = DOM->n_syncs = DOM->n_zero_fills = 0;
    undo_drop_all();
    pthread_mutex_unlock(&fault_mu);
}

void rl_fs_faults_clear(void)
{
    pthread_mutex_lock(&fault_mu);
    memset(&DOM->plan, 0, sizeof DOM->plan);
    DOM->only_under[0] = '\0';
    DOM->armed = false;
    DOM->crashed = false;
    undo_drop_all();
    pthread_mutex_unlock(&fault_mu);
}

struct rl_fs_domain *rl_fs_domain_new(void)
{
    return calloc(1, sizeof(struct rl_fs_domain));
}

void rl_fs_domain_free(struct rl_fs_domain *d)
{
    if (!d)
        return;
    struct rl_fs_domain *prev = rl_fs_domain_enter(d);
    rl_fs_faults_clear();
    rl_fs_domain_enter(prev);
    free(d);
}

struct rl_fs_domain *rl_fs_domain_enter(struct rl_fs_domain *d)
{
    struct rl_fs_domain *prev = thread_domain;
    thread_domain = d;
    return prev;
}

static void crash_now(void);

void rl_fs_crash(long tear_bytes)
{
    pthread_mutex_lock(&fault_mu);
    if (DOM->armed && !DOM->crashed) {
        DOM->plan.tear_bytes = tear_bytes;
        crash_now();
    }
    pthread_mutex_unlock(&fault_mu);
}

int rl_fs_crashed(void)
{
    pthread_mutex_lock(&fault_mu);
    int c = DOM->crashed;
    pthread_mutex_unlock(&fault_mu);
    return c;
}

void rl_fs_counters(struct rl_fs_counters *out)
{
    pthread_mutex_lock(&fault_mu);
    *out = DOM->counters;
    pthread_mutex_unlock(&fault_mu);
}

/* Puts back the bytes one write replaced (and the size it extended). */
static void restore_one(const struct undo *u)
{
    int fd = open(u->path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return; /* deleted since: nothing to restore */
    struct stat st;
    if (fstat(fd, &st) == 0 && st.st_dev == u->dev && st.st_ino == u->ino) {
        if (u->old_len > 0) {
            ssize_t w = pwrite(fd, u->old, u->old_len, (off_t)u->off);
            (void)w; /* best effort in a test-only path */
        }
        if (u->off + u->len > u->old_size && ftruncate(fd, (off_t)u->old_size) != 0) {
            /* best effort in a test-only path */
        }
    }
    close(fd);
}

/* Called with fault_mu held. Rolls every file back to its last sync; the
 * newest write may then keep a torn prefix (read before the rollback, put
 * back after it, so older rolled-back writes cannot erase it). */
static void crash_now(void)
{
    struct undo *newest = DOM->undo_top;
    size_t keep = 0;
    unsigned char *kept = NULL;
    char *kept_path = NULL;
    if (newest && DOM->plan.tear_bytes > 0) {
        keep = (size_t)DOM->plan.tear_bytes < newest->len ? (size_t)DOM->plan.tear_bytes : newest->len;
        kept = malloc(keep ? keep : 1);
        kept_path = strdup(newest->path);
        int fd = open(newest->path, O_RDONLY | O_CLOEXEC);
        ssize_t r = fd >= 0 ? pread(fd, kept, keep, (off_t)newest->off) : -1;
        if (fd >= 0)
            close(fd);
        if (r != (ssize_t)keep)
            keep = 0;
    }
    uint64_t kept_off = newest ? newest->off : 0;
    while (DOM->undo_top) {
        struct undo *u = DOM->undo_top;
        restore_one(u);
        DOM->undo_top = u->prev;
        undo_free(u);
    }
    if (keep) {
        int fd = open(kept_path, O_WRONLY | O_CLOEXEC);
        if (fd >= 0) {
            ssize_t w = pwrite(fd, kept, keep, (off_t)kept_off);
            (void)w;
            close(fd);
        }
    }
    free(kept);
    free(kept_path);
    DOM->crashed = true;
}

static bool is_direct(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    return fl >= 0 && (fl & O_DIRECT);
}

/* Saves the pre-image of [off, off+len) of fd. Called with fault_mu held. */
static void undo_record(int fd, uint64_t off, size_t len)
{
    struct stat st;
    if (fstat(fd, &st) != 0 || fd < 0 || fd >= FD_PATHS || fd_path[fd] == NULL)
        return;
    struct undo *u = calloc(1, sizeof *u);
    if (!u)
        abort(); /* test-only path: an OOM here would silently weaken tests */
    u->dev = st.st_dev;
    u->ino = st.st_ino;
    u->path = strdup(fd_path[fd]);
    u->off = off;
    u->len = len;
    u->old_size = (uint64_t)st.st_size;
    u->old_len = off >= u->old_size ? 0
               : (u->old_size - off < len ? (size_t)(u->old_size - off) : len);
    u->old = malloc(u->old_len ? u->old_len : 1);
    if (!u->path || !u->old)
        abort();
    /* An O_DIRECT fd refuses this unaligned read: use a buffered one. */
    int rfd = is_direct(fd) ? open(u->path, O_RDONLY | O_CLOEXEC) : fd;
    size_t got = 0;
    while (rfd >= 0 && got < u->old_len) {
        ssize_t r = pread(rfd, u->old + got, u->old_len - got, (off_t)(off + got));
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    if (rfd != fd && rfd >= 0)
        close(rfd);
    u->old_len = got;
    u->prev = DOM->undo_top;
    DOM->undo_top = u;
}

/* Forgets pre-images of the file behind fd: its data is now durable. */
static void undo_forget(int fd)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return;
    struct undo **pp = &DOM->undo_top;
    while (*pp) {
        struct undo *u = *pp;
        if (u->dev == st.st_dev && u->ino == st.st_ino) {
            *pp = u->prev;
            undo_free(u);
        } else {
            pp = &u->prev;
        }
    }
}

static int fault_open(const char *path, int flags, int mode, int *fd_out)
{
    if (rl_fs_crashed())
        return -EIO;
    if (flags & O_DIRECT) {
        pthread_mutex_lock(&fault_mu);
        bool refuse = DOM->armed && DOM->plan.no_direct;
        pthread_mutex_unlock(&fault_mu);
        if (refuse)
            return -EINVAL;
    }
    int fd, rv = rl_fs_sys.open(path, flags, mode, &fd);
    if (rv != 0)
        return rv;
    pthread_mutex_lock(&fault_mu);
    if (fd < FD_PATHS) {
        free(fd_path[fd]);
        fd_path[fd] = strdup(path);
    }
    pthread_mutex_unlock(&fault_mu);
    *fd_out = fd;
    return 0;
}

static int fault_close(int fd)
{
    pthread_mutex_lock(&fault_mu);
    if (fd >= 0 && fd < FD_PATHS) {
        free(fd_path[fd]);
        fd_path[fd] = NULL;
    }
    pthread_mutex_unlock(&fault_mu);
    return rl_fs_sys.close(fd);
}

static int fault_pread(int fd, void *buf, size_t len, uint64_t off, size_t *nread)
{
    *nread = 0;
    if (rl_fs_crashed())
        return -EIO;
    return rl_fs_sys.pread(fd, buf, len, off, nread);
}

/* Decides the fate of one write under the fault plan: 0 to go ahead, or a
 * negative errno with *partial bytes to write before failing. */
static int write_fault(int fd, uint64_t off, size_t len, size_t *partial)
{
    int rv = 0;
    *partial = len;
    pthread_mutex_lock(&fault_mu);
    if (DOM->armed && in_scope(fd)) {
        if (DOM->crashed) {
            rv = -EIO;
            *partial = 0;
        } else {
            DOM->n_writes++;
            if (DOM->plan.write_fail_at && DOM->n_writes == DOM->plan.write_fail_at) {
                rv = -(DOM->plan.write_errno ? DOM->plan.write_errno : EIO);
                *partial = DOM->plan.write_short_bytes < len ? DOM->plan.write_short_bytes : len;
            }
            if (*partial)
                undo_record(fd, off, *partial);
        }
    }
    DOM->counters.writes++;
    DOM->counters.bytes_written += *partial;
    pthread_mutex_unlock(&fault_mu);
    return rv;
}

/* The first `partial` bytes of a failing write (a short write). They are
 * not aligned, so an O_DIRECT fd's go through a buffered fd of the file. */
static void write_prefix(int fd, const struct iovec *iov, int iovcnt, uint64_t off,
                         size_t partial)
{
    struct iovec *cut = calloc((size_t)iovcnt, sizeof *cut);
    if (!cut)
        abort(); /* test-only path: an OOM here would silently weaken tests */
    int n = 0;
    for (size_t left = partial; n < iovcnt && left > 0; n++) {
        cut[n] = iov[n];
        if (cut[n].iov_len > left)
            cut[n].iov_len = left;
        left -= cut[n].iov_len;
    }
    int wfd = fd;
    if (is_direct(fd)) {
        pthread_mutex_lock(&fault_mu);
        char *path = fd < FD_PATHS && fd_path[fd] ? strdup(fd_path[fd]) : NULL;
        pthread_mutex_unlock(&fault_mu);
        wfd = path ? open(path, O_WRONLY | O_CLOEXEC) : -1;
        free(path);
    }
    if (wfd >= 0)
        rl_fs_sys.pwritev(wfd, cut, n, off); /* the fault is the outcome */
    if (wfd >= 0 && wfd != fd)
        close(wfd);
    free(cut);
}

static int fault_pwritev(int fd, const struct iovec *iov, int iovcnt, uint64_t off)
{
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;
    size_t partial;
    int fault = write_fault(fd, off, total, &partial);
    if (!fault)
        return rl_fs_sys.pwritev(fd, iov, iovcnt, off);
    if (partial > 0)
        write_prefix(fd, iov, iovcnt, off, partial);
    return fault;
}

static int fault_fdatasync(int fd)
{
    pthread_mutex_lock(&fault_mu);
    DOM->counters.syncs++;
    if (DOM->armed && in_scope(fd)) {
        if (DOM->crashed) {
            pthread_mutex_unlock(&fault_mu);
            return -EIO;
        }
        DOM->n_syncs++;
        if (DOM->plan.crash_at_sync && DOM->n_syncs == DOM->plan.crash_at_sync) {
            crash_now();
            pthread_mutex_unlock(&fault_mu);
            return -EIO;
        }
        if (DOM->plan.sync_fail_at && DOM->n_syncs == DOM->plan.sync_fail_at) {
            pthread_mutex_unlock(&fault_mu);
            return -(DOM->plan.sync_errno ? DOM->plan.sync_errno : EIO);
        }
    }
    pthread_mutex_unlock(&fault_mu);
    int rv = rl_fs_sys.fdatasync(fd);
    if (rv != 0)
        return rv;
    pthread_mutex_lock(&fault_mu);
    if (DOM->armed)
        undo_forget(fd);
    pthread_mutex_unlock(&fault_mu);
    return 0;
}

static int fault_zero_fill(int fd, uint64_t size)
{
    pthread_mutex_lock(&fault_mu);
    DOM->counters.zero_fills++;
    if (DOM->armed && in_scope(fd)) {
        DOM->n_zero_fills++;
        if (DOM->crashed || DOM->plan.disk_full ||
            (DOM->plan.zero_fill_fail_at && DOM->n_zero_fills == DOM->plan.zero_fill_fail_at)) {
            int e = DOM->crashed ? EIO
                  : DOM->plan.disk_full ? ENOSPC
                  : (DOM->plan.zero_fill_errno ? DOM->plan.zero_fill_errno : ENOSPC);
            pthread_mutex_unlock(&fault_mu);
            return -e;
        }
    }
    pthread_mutex_unlock(&fault_mu);
    return rl_fs_sys.zero_fill(fd, size);
}

/* Directory operations are durable at once: they fail only after a crash. */
static int fault_unlink(const char *path)
{
    return rl_fs_crashed() ? -EIO : rl_fs_sys.unlink(path);
}

static int fault_rename(const char *from, const char *to)
{
    return rl_fs_crashed() ? -EIO : rl_fs_sys.rename(from, to);
}

static int fault_fsync_dir(const char *dir)
{
    return rl_fs_crashed() ? -EIO : rl_fs_sys.fsync_dir(dir);
}

static const struct rl_fs_ops fault_ops = {
    .open = fault_open,
    .close = fault_close,
    .pread = fault_pread,
    .pwritev = fault_pwritev,
    .fdatasync = fault_fdatasync,
    .zero_fill = fault_zero_fill,
    .unlink = fault_unlink,
    .rename = fault_rename,
    .fsync_dir = fault_fsync_dir,
};

/* Installed before main, while the program has one thread and no file open:
 * every file opened later has its path known here (its pre-images can be
 * put back after it is closed), whether or not a plan is armed yet. */
__attribute__((constructor)) static void fault_fs_install(void)
{
    rl_fs_set_ops(&fault_ops);
}
