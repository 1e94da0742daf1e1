/*
 * The data directory: its identity (FORMAT), its owner (LOCK) and its
 * metadata (meta-a / meta-b).
 *
 * Opening checks for a foreign directory before creating anything in it, then
 * takes the lock, then re-reads FORMAT under the lock, so two processes that
 * race to initialise an empty directory cannot both do it.
 *
 * Metadata is two alternating fixed-size copies in separate files, each with a
 * sequence number and checksum; a write goes to the copy not holding the
 * newest state and is fdatasync'd, so a torn write can only damage the copy
 * being replaced.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "common/env.h"
#include "fs/fs.h"
#include "store/internal.h"

#define FORMAT_FILE "FORMAT"
#define LOCK_FILE "LOCK"
#define FORMAT_TITLE "liblog data directory"

static const char *meta_name[2] = {"meta-a", "meta-b"};

static int meta_write(struct rl_store *s, struct rl_meta *m);

void rl_seg_path(const struct rl_store *s, char *buf, size_t len, uint64_t seq,
                 const char *ext)
{
    snprintf(buf, len, "%s/seg-%016" PRIx64 ".%s", s->dir, seq, ext);
}

static void path_of(const struct rl_store *s, char *buf, size_t len, const char *name)
{
    snprintf(buf, len, "%s/%s", s->dir, name);
}

/* The first directory entry that is not ours to ignore, or NULL. */
static int first_foreign_entry(const char *dir, char *name, size_t len)
{
    DIR *d = opendir(dir);
    if (!d)
        return -errno;
    struct dirent *e;
    name[0] = '\0';
    while ((e = readdir(d)) != NULL) {
        /* What an interrupted initialisation leaves (FORMAT comes last). */
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") ||
            !strcmp(e->d_name, LOCK_FILE) || !strcmp(e->d_name, "meta-a") ||
            !strcmp(e->d_name, "meta-b") || !strcmp(e->d_name, FORMAT_FILE ".tmp"))
            continue;
        snprintf(name, len, "%s", e->d_name);
        break;
    }
    closedir(d);
    return 0;
}

static int write_format(struct rl_store *s)
{
    char body[256], text[320], path[4200];
    int n = snprintf(body, sizeof body, FORMAT_TITLE "\nformat %u\ndir-id %016" PRIx64 "\n",
                     RL_FORMAT_VERSION, s->dir_id);
    snprintf(text, sizeof text, "%schecksum %016" PRIx64 "\n", body,
             (uint64_t)XXH3_64bits(body, (size_t)n));
    int rv = rl_fs_replace(s->dir, FORMAT_FILE, text, strlen(text));
    if (rv != 0) {
        path_of(s, path, sizeof path, FORMAT_FILE);
        return rl_store_fail(s, rl_errno_to_rlog(rv), "%s: cannot write: %s", path,
                             strerror(-rv));
    }
    return 0;
}

/* 1 if FORMAT is absent, 0 if valid (sets dir_id), or an error. */
static int read_format(struct rl_store *s)
{
    char path[4200], buf[512];
    path_of(s, path, sizeof path, FORMAT_FILE);
    int fd, rv = rl_fs_open(path, O_RDONLY, 0, &fd);
    if (rv == -ENOENT)
        return 1;
    if (rv != 0)
        return rl_store_fail(s, rl_errno_to_rlog(rv), "%s: %s", path, strerror(-rv));
    size_t n = 0;
    rv = rl_fs_pread(fd, buf, sizeof buf - 1, 0, &n);
    rl_fs_close(fd);
    if (rv != 0)
        return rl_store_fail(s, RLOG_EIO, "%s: %s", path, strerror(-rv));
    buf[n] = '\0';
    if (strncmp(buf, FORMAT_TITLE "\n", sizeof FORMAT_TITLE) != 0)
        return rl_store_fail(s, RLOG_EFOREIGN,
                             "%s: not a liblog data directory (FORMAT does not start with \"%s\")",
                             s->dir, FORMAT_TITLE);
    unsigned version = 0;
    uint64_t id = 0, sum = 0;
    char *body_end = strstr(buf, "checksum ");
    if (sscanf(buf, FORMAT_TITLE "\nformat %u\n", &version) != 1)
        return rl_store_fail(s, RLOG_ECORRUPT, "%s: no format line", path);
    if (version > RL_FORMAT_VERSION)
        return rl_store_fail(s, RLOG_EVERSION,
                             "%s: format %u is newer than this liblog supports (%u); upgrade liblog",
                             path, version, RL_FORMAT_VERSION);
    if (!body_end || sscanf(body_end, "checksum %" SCNx64, &sum) != 1 ||
        sum != XXH3_64bits(buf, (size_t)(body_end - buf)))
        return rl_store_fail(s, RLOG_ECORRUPT, "%s: checksum mismatch or missing", path);
    const char *idl = strstr(buf, "\ndir-id ");
    if (version != RL_FORMAT_VERSION || !idl || sscanf(idl, "\ndir-id %" SCNx64, &id) != 1)
        return rl_store_fail(s, RLOG_EVERSION, "%s: unsupported format %u", path, version);
    s->dir_id = id;
    return 0;
}

static int take_lock(struct rl_store *s)
{
    char path[4200];
    path_of(s, path, sizeof path, LOCK_FILE);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return rl_store_fail(s, rl_errno_to_rlog(-errno), "%s: %s", path, strerror(errno));
    /* flock locks belong to the open file description, so a second open in
     * this same process conflicts too (fcntl locks would not). */
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        char pid[32] = "";
        ssize_t n = pread(fd, pid, sizeof pid - 1, 0);
        close(fd);
        if (e == EWOULDBLOCK) {
            long holder = n > 0 ? strtol(pid, NULL, 10) : 0;
            return rl_store_fail(s, RLOG_EBUSY,
                                 "%s: in use by process %ld%s", s->dir, holder,
                                 holder == (long)getpid() ? " (this process)" : "");
        }
        return rl_store_fail(s, RLOG_EIO, "%s: flock: %s", path, strerror(e));
    }
    char pid[32];
    int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)n, 0) != n) {
        int e = errno;
        close(fd);
        return rl_store_fail(s, rl_errno_to_rlog(-e), "%s: %s", path, strerror(e));
    }
    s->lock_fd = fd;
    return 0;
}

static int read_meta_copy(struct rl_store *s, int i, struct rl_meta *m, bool *exists)
{
    char path[4200];
    unsigned char buf[RL_META_SIZE];
    path_of(s, path, sizeof path, meta_name[i]);
    int fd, rv = rl_fs_open(path, O_RDONLY, 0, &fd);
    *exists = rv != -ENOENT;
    if (rv != 0)
        return rv == -ENOENT ? RLOG_ENOTFOUND : RLOG_EIO;
    size_t n = 0;
    rv = rl_fs_pread(fd, buf, sizeof buf, 0, &n);
    rl_fs_close(fd);
    if (rv != 0)
        return RLOG_EIO;
    return rl_meta_decode(buf, n, m);
}

int rl_meta_update(struct rl_store *s, void (*edit)(struct rl_meta *, const void *),
                   const void *arg)
{
    pthread_mutex_lock(&s->meta_mu);
    struct rl_meta m = s->meta;
    edit(&m, arg);
    int rv = meta_write(s, &m);
    pthread_mutex_unlock(&s->meta_mu);
    return rv;
}

/* Writes m (seq bumped) over the older copy; caller holds meta_mu. */
static int meta_write(struct rl_store *s, struct rl_meta *m)
{
    char path[4200];
    unsigned char buf[RL_META_SIZE];
    m->seq = s->meta.seq + 1;
    m->dir_id = s->dir_id;
    rl_meta_encode(buf, m);
    path_of(s, path, sizeof path, meta_name[m->seq % 2]);
    int fd, rv = rl_fs_open(path, O_WRONLY | O_CREAT, 0600, &fd);
    if (rv == 0) {
        rv = rl_fs_pwrite(fd, buf, sizeof buf, 0);
        if (rv == 0)
            rv = rl_fs_fdatasync(fd);
        rl_fs_close(fd);
    }
    if (rv == 0) {
        pthread_mutex_lock(&s->meta_pub_mu);
        s->meta = *m;
        pthread_mutex_unlock(&s->meta_pub_mu);
    }
    return rv;
}

struct rl_meta rl_meta_now(struct rl_store *s)
{
    pthread_mutex_lock(&s->meta_pub_mu);
    struct rl_meta m = s->meta;
    pthread_mutex_unlock(&s->meta_pub_mu);
    return m;
}

static int load_meta(struct rl_store *s, bool fresh)
{
    struct rl_meta m[2];
    bool exists[2];
    int rv[2];
    for (int i = 0; i < 2; i++)
        rv[i] = read_meta_copy(s, i, &m[i], &exists[i]);
    if (!exists[0] && !exists[1]) {
        if (!fresh)
            return rl_store_fail(s, RLOG_ECORRUPT, "%s: meta-a and meta-b are missing", s->dir);
        struct rl_meta init = {.first_index = 1, .first_offset = 0, .gen = 0};
        s->meta.seq = 0;
        int w = meta_write(s, &init); /* seq 1 -> meta-b */
        if (w == 0)
            w = meta_write(s, &init); /* seq 2 -> meta-a */
        if (w == 0)
            w = rl_fs_fsync_dir(s->dir);
        if (w != 0)
            return rl_store_fail(s, rl_errno_to_rlog(w), "%s: cannot write metadata: %s",
                                 s->dir, strerror(-w));
        return 0;
    }
    int best = -1;
    for (int i = 0; i < 2; i++) {
        if (rv[i] == RLOG_EVERSION)
            return rl_store_fail(s, RLOG_EVERSION, "%s/%s: unsupported metadata version",
                                 s->dir, meta_name[i]);
        if (rv[i] == 0 && m[i].dir_id != s->dir_id)
            return rl_store_fail(s, RLOG_EFOREIGN, "%s/%s: belongs to another data directory",
                                 s->dir, meta_name[i]);
        if (rv[i] == 0 && (best < 0 || m[i].seq > m[best].seq))
            best = i;
    }
    if (best < 0)
        return rl_store_fail(s, RLOG_ECORRUPT,
                             "%s: both metadata copies (meta-a, meta-b) are damaged", s->dir);
    for (int i = 0; i < 2; i++)
        if (i != best && rv[i] != 0)
            rl_store_add_note(s, "%s damaged or missing; using %s", meta_name[i],
                              meta_name[best]);
    if (m[best].first_index == 0)
        return rl_store_fail(s, RLOG_ECORRUPT, "%s/%s: first index 0 (entries start at 1)",
                             s->dir, meta_name[best]);
    s->meta = m[best];
    return 0;
}

/* mkdir -p; what it creates is private to this user (0700): the records
 * are the host's data, not the machine's. */
static int make_dirs(const char *dir)
{
    char path[4200];
    snprintf(path, sizeof path, "%s", dir);
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(path, 0700) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return mkdir(path, 0700) != 0 && errno != EEXIST ? -1 : 0;
}

int rl_dir_open(struct rl_store *s)
{
    if (make_dirs(s->dir) != 0)
        return rl_store_fail(s, rl_errno_to_rlog(-errno), "%s: cannot create: %s", s->dir,
                             strerror(errno));
    struct stat st;
    if (stat(s->dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return rl_store_fail(s, RLOG_EINVAL, "%s: not a directory", s->dir);
    /* A directory made before liblog kept it private (or by hand) may be
     * open to other users: it is tightened to 0700, which makes every file
     * in it unreachable to them whatever its own mode, and the node logs
     * the change (rl_store_dir_mode_was). Not refused: the host asked for
     * this directory, and refusing would only leave the records readable. */
    if (st.st_mode & 077) {
        s->dir_mode_was = (unsigned)(st.st_mode & 07777) | RL_DIR_MODE_SEEN;
        if (chmod(s->dir, 0700) != 0)
            s->dir_mode_was |= RL_DIR_MODE_KEPT;
    }

    int rv = read_format(s);
    if (rv < 0)
        return rv;
    if (rv == 1) {
        char other[256];
        int e = first_foreign_entry(s->dir, other, sizeof other);
        if (e != 0)
            return rl_store_fail(s, RLOG_EIO, "%s: %s", s->dir, strerror(-e));
        if (other[0])
            return rl_store_fail(s, RLOG_EFOREIGN,
                                 "%s: not a liblog data directory (no FORMAT file, but holds \"%s\")",
                                 s->dir, other);
    }
    if ((rv = take_lock(s)) != 0)
        return rv;
    int fmt = read_format(s); /* again, now that we own the directory */
    if (fmt < 0)
        return fmt;
    bool fresh = fmt == 1;
    if (fresh) {
        char other[256];
        if (first_foreign_entry(s->dir, other, sizeof other) == 0 && other[0])
            return rl_store_fail(s, RLOG_EFOREIGN,
                                 "%s: not a liblog data directory (holds \"%s\")", s->dir, other);
        if (rl_random(&s->dir_id, sizeof s->dir_id) != 0)
            return rl_store_fail(s, RLOG_EIO, "getrandom: %s", strerror(errno));
        /* FORMAT last: until it exists the directory holds no log, and an
         * interrupted initialisation is simply done again. */
        if ((rv = load_meta(s, true)) != 0 || (rv = write_format(s)) != 0)
            return rv;
        return 0;
    }
    return load_meta(s, false);
}

unsigned rl_store_dir_mode_was(const struct rl_store *s, bool *kept)
{
    *kept = (s->dir_mode_was & RL_DIR_MODE_KEPT) != 0;
    return s->dir_mode_was & RL_DIR_MODE_SEEN ? s->dir_mode_was & 07777 : 0;
}

void rl_dir_close(struct rl_store *s)
{
    if (s->lock_fd >= 0) {
        close(s->lock_fd); /* releases the flock */
        s->lock_fd = -1;
    }
}
