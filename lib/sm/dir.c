/*
 * dir — the snapshot directory: creating it, listing its snapshots newest
 * first (and deleting the .tmp a crash left), keeping the newest few.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fs/fs.h"
#include "sm/smfile.h"

int rl_smf_mkdir(const char *dir, char *err, size_t errlen)
{
    if (mkdir(dir, 0700) == 0 || errno == EEXIST) {
        int rv = rl_fs_fsync_dir(dir);
        if (rv == 0)
            return 0;
        snprintf(err, errlen, "cannot sync %s: %s", dir, strerror(-rv));
        return rl_errno_to_rlog(rv);
    }
    snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
    return rl_errno_to_rlog(-errno);
}

/* "snap-<20 digits>.sm" (tmp: with ".tmp"): its offset. */
static bool parse_name(const char *name, uint64_t *off, bool *tmp)
{
    if (strncmp(name, "snap-", 5) != 0 || strlen(name) < 28)
        return false;
    uint64_t v = 0;
    for (int i = 5; i < 25; i++) {
        if (name[i] < '0' || name[i] > '9')
            return false;
        uint64_t d = (uint64_t)(name[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    if (strcmp(name + 25, ".sm") == 0)
        *tmp = false;
    else if (strcmp(name + 25, ".sm.tmp") == 0)
        *tmp = true;
    else
        return false;
    *off = v;
    return true;
}

static int cmp_desc(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

int rl_smf_list(const char *dir, uint64_t **offs, size_t *n, char *err, size_t errlen)
{
    *offs = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(err, errlen, "cannot list %s: %s", dir, strerror(errno));
        return rl_errno_to_rlog(-errno);
    }
    uint64_t *v = NULL;
    size_t cnt = 0, cap = 0;
    int rv = 0;
    struct dirent *e;
    while (rv == 0 && (e = readdir(d))) {
        uint64_t off;
        bool tmp;
        if (!parse_name(e->d_name, &off, &tmp))
            continue;
        if (tmp) { /* a write a crash cut short */
            char path[4096];
            if (rl_smf_path(path, sizeof path, dir, off, true))
                rl_fs_unlink(path);
            continue;
        }
        if (cnt == cap) {
            cap = cap ? 2 * cap : 8;
            uint64_t *nv = realloc(v, cap * sizeof *nv);
            if (!nv) {
                snprintf(err, errlen, "out of memory");
                rv = RLOG_ENOMEM;
                break;
            }
            v = nv;
        }
        v[cnt++] = off;
    }
    closedir(d);
    if (rv != 0) {
        free(v);
        return rv;
    }
    if (cnt)
        qsort(v, cnt, sizeof *v, cmp_desc);
    *offs = v;
    *n = cnt;
    return 0;
}

int rl_smf_prune(const char *dir, unsigned keep, char *err, size_t errlen)
{
    uint64_t *offs;
    size_t n;
    int rv = rl_smf_list(dir, &offs, &n, err, errlen);
    if (rv != 0)
        return rv;
    bool removed = false;
    for (size_t i = keep; i < n; i++) {
        char path[4096];
        if (rl_smf_path(path, sizeof path, dir, offs[i], false) && rl_fs_unlink(path) == 0)
            removed = true;
    }
    free(offs);
    if (removed && (rv = rl_fs_fsync_dir(dir)) != 0) {
        snprintf(err, errlen, "cannot sync %s: %s", dir, strerror(-rv));
        return rl_errno_to_rlog(rv);
    }
    return 0;
}

int rl_smf_adopt(const char *dir, const char *path, const struct rl_smf_id *want,
                 uint64_t expect_next, uint64_t *next_out, char *err, size_t errlen)
{
    rlog_sm_reader *r;
    int rv = rl_smf_open(path, want, &r, err, errlen);
    if (rv != 0)
        return rv;
    uint64_t next = rl_smf_reader_header(r)->next_offset;
    rl_smf_close(r);
    if (expect_next && next != expect_next) {
        snprintf(err, errlen, "the file covers the records before %" PRIu64 ", not %" PRIu64,
                 next, expect_next);
        return RLOG_ECORRUPT;
    }
    if ((rv = rl_smf_mkdir(dir, err, errlen)) != 0)
        return rv;
    char dst[4096];
    if (!rl_smf_path(dst, sizeof dst, dir, next, false)) {
        snprintf(err, errlen, "snapshot path too long");
        return RLOG_EINVAL;
    }
    if ((rv = rl_fs_rename(path, dst)) == 0)
        rv = rl_fs_fsync_dir(dir);
    if (rv != 0) {
        snprintf(err, errlen, "cannot move %.1000s to %.1000s: %s", path, dst, strerror(-rv));
        return rl_errno_to_rlog(rv);
    }
    *next_out = next;
    return 0;
}
