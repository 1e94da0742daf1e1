/*
 * catalog — a host's data directory and the logs in it (catalog.h).
 */
#include "host/catalog.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fs/fs.h"
#include "liblog.h"

#define HOST_FILE "HOST"
#define HOST_LOCK "HOST.lock"
#define HOST_MAGIC "liblog host directory 1"
#define CREATING ".creating."
#define DELETING ".deleting."
#define MAX_CLAIMS 64 /* creates, opens and deletes under way at once */
#define PATH_CAP 4200

struct rl_catalog {
    char dir[PATH_CAP];
    char logs[PATH_CAP]; /* dir/logs */
    int lock_fd;
    pthread_mutex_t mu;
    char *claims[MAX_CLAIMS]; /* names being created, opened or deleted */
};

__attribute__((format(printf, 4, 5))) static int fail(char *err, size_t errlen, int code,
                                                      const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return code;
}

/* A negative errno as the RLOG_E* code, with what failed. */
static int fail_errno(char *err, size_t errlen, int neg, const char *what, const char *path)
{
    return fail(err, errlen, rl_errno_to_rlog(neg), "%s %s: %s", what, path, strerror(-neg));
}

int rl_catalog_check_name(const char *name, char *err, size_t errlen)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > RL_LOG_NAME_MAX)
        return fail(err, errlen, RLOG_EINVAL, "a log's name is 1 to %d characters (got %zu)",
                    RL_LOG_NAME_MAX, n);
    if (name[0] == '.')
        return fail(err, errlen, RLOG_EINVAL, "log name \"%.128s\" starts with a dot", name);
    for (size_t i = 0; i < n; i++) {
        char ch = name[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                  ch == '.' || ch == '_' || ch == '-';
        if (!ok)
            return fail(err, errlen, RLOG_EINVAL,
                        "log name \"%.128s\": character %zu is not one of A-Z a-z 0-9 . _ -",
                        name, i + 1);
    }
    return 0;
}

void rl_catalog_log_dir(const struct rl_catalog *c, const char *name, char *path, size_t len)
{
    snprintf(path, len, "%s/%s", c->logs, name);
}

static void marker_path(const struct rl_catalog *c, const char *name, char *path, size_t len)
{
    snprintf(path, len, "%s/" CREATING "%s", c->logs, name);
}

static bool exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

static int make_dir(const char *path, char *err, size_t errlen)
{
    if (mkdir(path, 0700) != 0 && errno != EEXIST)
        return fail_errno(err, errlen, -errno, "cannot create", path);
    return 0;
}

/* ---- the directory's owner and identity ------------------------------------ */

static int take_lock(struct rl_catalog *c, char *err, size_t errlen)
{
    char path[PATH_CAP + 16];
    snprintf(path, sizeof path, "%s/" HOST_LOCK, c->dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return fail_errno(err, errlen, -errno, "cannot open", path);
    /* flock: per open file description, so a second host of this process
     * on the same directory is refused too. */
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        char pid[32] = "";
        ssize_t n = pread(fd, pid, sizeof pid - 1, 0);
        close(fd);
        long holder = n > 0 ? strtol(pid, NULL, 10) : 0;
        if (e == EWOULDBLOCK)
            return fail(err, errlen, RLOG_EBUSY, "host data directory %s: in use by process %ld%s",
                        c->dir, holder, holder == (long)getpid() ? " (this process)" : "");
        return fail_errno(err, errlen, -e, "flock", path);
    }
    char pid[32];
    int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)n, 0) != n) {
        int e = errno;
        close(fd);
        return fail_errno(err, errlen, -e, "cannot write", path);
    }
    c->lock_fd = fd;
    return 0;
}

/* The HOST file's text for this host. */
static int host_text(char *buf, size_t cap, uint64_t id, const char *cluster)
{
    return snprintf(buf, cap, HOST_MAGIC "\nid %" PRIu64 "\ncluster %s\n", id, cluster);
}

/* Checks the HOST file against (id, cluster), or writes it the first time. */
static int check_identity(struct rl_catalog *c, uint64_t id, const char *cluster, char *err,
                          size_t errlen)
{
    char want[256 + 64];
    int wlen = host_text(want, sizeof want, id, cluster);
    if (wlen < 0 || (size_t)wlen >= sizeof want)
        return fail(err, errlen, RLOG_EINVAL, "cluster_name: too long for the HOST file");
    unsigned char *have = NULL;
    size_t len = 0;
    int rv = rl_fs_read_all(c->dir, HOST_FILE, &have, &len);
    if (rv == -ENOENT) {
        rv = rl_fs_replace(c->dir, HOST_FILE, want, (size_t)wlen);
        return rv ? fail_errno(err, errlen, rv, "cannot write the HOST file of", c->dir) : 0;
    }
    if (rv != 0)
        return fail_errno(err, errlen, rv, "cannot read the HOST file of", c->dir);
    int code = 0;
    if (len < sizeof HOST_MAGIC || memcmp(have, HOST_MAGIC "\n", sizeof HOST_MAGIC) != 0) {
        code = fail(err, errlen, RLOG_EFOREIGN, "%s/" HOST_FILE " is not a liblog host file",
                    c->dir);
    } else if (len != (size_t)wlen || memcmp(have, want, len) != 0) {
        /* Show what it says, one line at a time, without the magic. */
        char said[256];
        size_t n = len - sizeof HOST_MAGIC < sizeof said - 1 ? len - sizeof HOST_MAGIC
                                                             : sizeof said - 1;
        memcpy(said, have + sizeof HOST_MAGIC, n);
        said[n] = '\0';
        for (char *p = said; *p; p++)
            if (*p == '\n')
                *p = p[1] ? ',' : '\0';
        code = fail(err, errlen, RLOG_EIDENTITY,
                    "host data directory %s belongs to another host (%s), not to host id %" PRIu64
                    " of cluster \"%s\"",
                    c->dir, said, id, cluster);
    }
    free(have);
    return code;
}

/* A log's own data directory is not a host's. */
static int check_not_a_store(const char *dir, char *err, size_t errlen)
{
    static const char *const theirs[] = {"FORMAT", "IDENTITY", "meta-a"};
    for (size_t i = 0; i < sizeof theirs / sizeof theirs[0]; i++) {
        char path[PATH_CAP + 16];
        snprintf(path, sizeof path, "%s/%s", dir, theirs[i]);
        if (exists(path))
            return fail(err, errlen, RLOG_EFOREIGN,
                        "%s is a log's data directory (it holds %s), not a host's", dir, theirs[i]);
    }
    return 0;
}

/* ---- removing trees --------------------------------------------------------- */

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path) != 0 && errno != ENOENT ? -1 : 0;
}

static int remove_tree(const char *path, char *err, size_t errlen)
{
    if (!exists(path))
        return 0;
    if (nftw(path, remove_one, 16, FTW_DEPTH | FTW_PHYS) != 0)
        return fail_errno(err, errlen, -errno, "cannot remove", path);
    return 0;
}

/* Finishes the deletions a crash cut short, as far as it can. */
static int sweep_deleted(struct rl_catalog *c, char *err, size_t errlen)
{
    DIR *d = opendir(c->logs);
    if (!d)
        return fail_errno(err, errlen, -errno, "cannot read", c->logs);
    int rv = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, DELETING, strlen(DELETING)) != 0)
            continue;
        char path[PATH_CAP + 300], ignored[256];
        snprintf(path, sizeof path, "%s/%s", c->logs, e->d_name);
        /* What cannot go now stays for the next open: it holds no log's
         * name, and failing the host for it would stop every log. */
        remove_tree(path, ignored, sizeof ignored);
    }
    closedir(d);
    return rv;
}

int rl_catalog_open(const char *dir, uint64_t id, const char *cluster, struct rl_catalog **out,
                    char *err, size_t errlen)
{
    *out = NULL;
    if (!dir || !*dir || strlen(dir) > 4000)
        return fail(err, errlen, RLOG_EINVAL, "data_dir: a path of 1 to 4000 bytes");
    struct rl_catalog *c = calloc(1, sizeof *c);
    if (!c)
        return fail(err, errlen, RLOG_ENOMEM, "out of memory");
    c->lock_fd = -1;
    pthread_mutex_init(&c->mu, NULL);
    snprintf(c->dir, sizeof c->dir, "%s", dir);
    snprintf(c->logs, sizeof c->logs, "%s/logs", dir);
    int rv = make_dir(c->dir, err, errlen);
    if (rv == 0)
        rv = check_not_a_store(c->dir, err, errlen);
    if (rv == 0)
        rv = take_lock(c, err, errlen);
    if (rv == 0)
        rv = check_identity(c, id, cluster ? cluster : "", err, errlen);
    if (rv == 0 && !exists(c->logs)) {
        rv = make_dir(c->logs, err, errlen);
        int s = rv ? 0 : rl_fs_fsync_dir(c->dir);
        if (s)
            rv = fail_errno(err, errlen, s, "cannot fsync", c->dir);
    }
    if (rv == 0)
        rv = sweep_deleted(c, err, errlen);
    if (rv != 0) {
        rl_catalog_close(c);
        return rv;
    }
    *out = c;
    return 0;
}

void rl_catalog_close(struct rl_catalog *c)
{
    if (!c)
        return;
    if (c->lock_fd >= 0)
        close(c->lock_fd);
    for (int i = 0; i < MAX_CLAIMS; i++)
        free(c->claims[i]);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

/* ---- one operation per name at a time -------------------------------------- */

int rl_catalog_claim(struct rl_catalog *c, const char *name, char *err, size_t errlen)
{
    pthread_mutex_lock(&c->mu);
    int free_slot = -1, rv = 0;
    for (int i = 0; i < MAX_CLAIMS && rv == 0; i++) {
        if (!c->claims[i])
            free_slot = free_slot < 0 ? i : free_slot;
        else if (!strcmp(c->claims[i], name))
            rv = fail(err, errlen, RLOG_EBUSY,
                      "log %s: another create, open or delete of it is under way", name);
    }
    if (rv == 0 && free_slot < 0)
        rv = fail(err, errlen, RLOG_EBUSY, "%d creates, opens and deletes of logs are under way",
                  MAX_CLAIMS);
    if (rv == 0 && !(c->claims[free_slot] = strdup(name)))
        rv = fail(err, errlen, RLOG_ENOMEM, "out of memory");
    pthread_mutex_unlock(&c->mu);
    return rv;
}

void rl_catalog_release(struct rl_catalog *c, const char *name)
{
    pthread_mutex_lock(&c->mu);
    for (int i = 0; i < MAX_CLAIMS; i++) {
        if (c->claims[i] && !strcmp(c->claims[i], name)) {
            free(c->claims[i]);
            c->claims[i] = NULL;
            break;
        }
    }
    pthread_mutex_unlock(&c->mu);
}

/* ---- create, open, delete ---------------------------------------------------- */

int rl_catalog_begin_create(struct rl_catalog *c, const char *name, bool *resumed, char *err,
                            size_t errlen)
{
    char dir[PATH_CAP + 200], marker[PATH_CAP + 220];
    rl_catalog_log_dir(c, name, dir, sizeof dir);
    marker_path(c, name, marker, sizeof marker);
    *resumed = exists(marker);
    if (!*resumed && exists(dir))
        return fail(err, errlen, RLOG_EEXISTS, "log %s already exists in %s", name, c->logs);
    if (!*resumed) {
        int fd = -1;
        int rv = rl_fs_open(marker, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600, &fd);
        if (rv == 0)
            rl_fs_close(fd);
        if (rv != 0)
            return fail_errno(err, errlen, rv, "cannot create", marker);
    }
    /* The marker is durable before the directory it vouches for exists. */
    int rv = rl_fs_fsync_dir(c->logs);
    if (rv != 0)
        rv = fail_errno(err, errlen, rv, "cannot fsync", c->logs);
    else if ((rv = make_dir(dir, err, errlen)) == 0 && (rv = rl_fs_fsync_dir(c->logs)) != 0)
        rv = fail_errno(err, errlen, rv, "cannot fsync", c->logs);
    if (rv != 0 && !*resumed) { /* nothing of this create stays */
        rmdir(dir);
        rl_fs_unlink(marker);
    }
    return rv;
}

/* Renames dir out of the way (logs/.deleting.NAME.T), in one step: no
 * half-removed store is ever found under the name. */
static int rename_away(struct rl_catalog *c, const char *name, const char *dir, char *gone,
                       size_t len, char *err, size_t errlen)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(gone, len, "%s/" DELETING "%s.%lld%09ld", c->logs, name, (long long)ts.tv_sec,
             ts.tv_nsec);
    int r = rl_fs_rename(dir, gone);
    return r ? fail_errno(err, errlen, r, "cannot rename", dir) : 0;
}

int rl_catalog_end_create(struct rl_catalog *c, const char *name, bool ok, bool resumed,
                          char *err, size_t errlen)
{
    char dir[PATH_CAP + 200], marker[PATH_CAP + 220], gone[PATH_CAP + 300];
    rl_catalog_log_dir(c, name, dir, sizeof dir);
    marker_path(c, name, marker, sizeof marker);
    if (!ok && resumed)
        return 0; /* a store an earlier try opened may have voted: it stays, marked */
    /* A failed create's directory goes before its marker: a crash between
     * the two leaves a create to finish, never a log without its marker. */
    bool away = !ok && exists(dir);
    int rv = away ? rename_away(c, name, dir, gone, sizeof gone, err, errlen) : 0;
    if (rv != 0)
        return rv;
    if (away) {
        int s = rl_fs_fsync_dir(c->logs);
        if (s != 0)
            return fail_errno(err, errlen, s, "cannot fsync", c->logs);
        char ignored[256]; /* what stays is swept at the next open */
        remove_tree(gone, ignored, sizeof ignored);
    }
    int u = rl_fs_unlink(marker);
    if (u != 0 && u != -ENOENT)
        return fail_errno(err, errlen, u, "cannot remove", marker);
    u = rl_fs_fsync_dir(c->logs);
    return u ? fail_errno(err, errlen, u, "cannot fsync", c->logs) : 0;
}

int rl_catalog_check_open(struct rl_catalog *c, const char *name, char *err, size_t errlen)
{
    char dir[PATH_CAP + 200], marker[PATH_CAP + 220];
    rl_catalog_log_dir(c, name, dir, sizeof dir);
    marker_path(c, name, marker, sizeof marker);
    if (exists(marker))
        return fail(err, errlen, RLOG_ENOTFOUND,
                    "log %s: its create did not finish (rlog_create_on finishes it, "
                    "rlog_host_delete_log removes it)", name);
    if (!exists(dir))
        return fail(err, errlen, RLOG_ENOTFOUND, "no log %s in %s (rlog_create_on creates one)",
                    name, c->logs);
    return 0;
}

int rl_catalog_delete(struct rl_catalog *c, const char *name, char *err, size_t errlen)
{
    char dir[PATH_CAP + 200], marker[PATH_CAP + 220], lock[PATH_CAP + 220];
    rl_catalog_log_dir(c, name, dir, sizeof dir);
    marker_path(c, name, marker, sizeof marker);
    if (!exists(dir) && !exists(marker))
        return fail(err, errlen, RLOG_ENOTFOUND, "no log %s in %s", name, c->logs);
    /* Held through the rename, so no store opens under the deletion. */
    snprintf(lock, sizeof lock, "%s/LOCK", dir);
    int fd = open(lock, O_RDWR | O_CLOEXEC);
    if (fd < 0 && errno != ENOENT) /* unlocked is no proof of closed */
        return fail_errno(err, errlen, -errno, "cannot open", lock);
    if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        close(fd);
        if (e == EWOULDBLOCK)
            return fail(err, errlen, RLOG_EBUSY, "log %s is open (close it first)", name);
        return fail_errno(err, errlen, -e, "flock", lock);
    }
    int rv = 0;
    bool renamed = false;
    char gone[PATH_CAP + 300];
    if (exists(dir)) {
        rv = rename_away(c, name, dir, gone, sizeof gone, err, errlen);
        renamed = rv == 0;
    }
    if (fd >= 0)
        close(fd);
    if (rv == 0) { /* the name is free once this is durable */
        int u = rl_fs_unlink(marker);
        if (u != 0 && u != -ENOENT)
            rv = fail_errno(err, errlen, u, "cannot remove", marker);
        else if ((u = rl_fs_fsync_dir(c->logs)) != 0)
            rv = fail_errno(err, errlen, u, "cannot fsync", c->logs);
    }
    if (rv == 0 && renamed) { /* deleted now: what cannot go yet is swept at the next open */
        char ignored[256];
        remove_tree(gone, ignored, sizeof ignored);
    }
    return rv;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Names in logs/: the log directories and the creates under way. */
static int read_names(struct rl_catalog *c, char ***names, size_t *n, char *err, size_t errlen)
{
    DIR *d = opendir(c->logs);
    if (!d)
        return fail_errno(err, errlen, -errno, "cannot read", c->logs);
    size_t cap = 0;
    int rv = 0;
    struct dirent *e;
    while (rv == 0 && (e = readdir(d)) != NULL) {
        const char *name = e->d_name;
        if (!strncmp(name, CREATING, strlen(CREATING)))
            name += strlen(CREATING);
        else if (name[0] == '.')
            continue; /* ., .., deletions, temporaries */
        if (rl_catalog_check_name(name, NULL, 0) != 0)
            continue;
        bool dup = false; /* a create under way has its marker and often its directory */
        for (size_t i = 0; i < *n && !dup; i++)
            dup = !strcmp((*names)[i], name);
        if (dup)
            continue;
        if (*n == cap) {
            size_t ncap = cap ? 2 * cap : 16;
            char **grown = realloc(*names, ncap * sizeof *grown);
            if (!grown) {
                rv = fail(err, errlen, RLOG_ENOMEM, "out of memory");
                break;
            }
            *names = grown, cap = ncap;
        }
        if (!((*names)[*n] = strdup(name)))
            rv = fail(err, errlen, RLOG_ENOMEM, "out of memory");
        else
            (*n)++;
    }
    closedir(d);
    return rv;
}

int rl_catalog_list(struct rl_catalog *c, int (*fn)(void *arg, const char *name), void *arg,
                    char *err, size_t errlen)
{
    char **names = NULL;
    size_t n = 0;
    int rv = read_names(c, &names, &n, err, errlen);
    if (rv == 0 && n > 1)
        qsort(names, n, sizeof *names, by_name);
    for (size_t i = 0; i < n; i++) {
        if (rv == 0 && fn(arg, names[i]) != 0)
            rv = 1; /* stopped: not an error */
        free(names[i]);
    }
    free(names);
    return rv == 1 ? 0 : rv;
}
