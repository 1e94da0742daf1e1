/*
 * write — a snapshot being written (rlog_sm_writer): the payload goes to
 * the .tmp file a chunk at a time, so persist's memory stays one chunk
 * whatever the state's size; commit adds the chunk table, the trailer and
 * the header (last, so a file cut short never has a valid header for a
 * length it does not hold), then syncs and renames it into place.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/bytes.h"
#include "fs/fs.h"
#include "sm/smfile.h"

struct rlog_sm_writer {
    int fd;
    char dir[4096];
    char tmp[4096], path[4096];
    struct rl_smf_header h;     /* length: payload bytes on disk so far */
    unsigned char *chunk;
    size_t fill;
    uint64_t *sums;
    size_t n, cap;
    int err;                    /* sticky: the first failure */
};

int rl_smf_create(const char *dir, uint64_t next_offset, const struct rl_smf_id *id,
                  uint32_t chunk, rlog_sm_writer **out, char *err, size_t errlen)
{
    rlog_sm_writer *w = calloc(1, sizeof *w);
    if (w)
        w->chunk = malloc(chunk);
    if (!w || !w->chunk) {
        free(w);
        snprintf(err, errlen, "out of memory");
        return RLOG_ENOMEM;
    }
    snprintf(w->dir, sizeof w->dir, "%s", dir);
    if (!rl_smf_path(w->tmp, sizeof w->tmp, dir, next_offset, true) ||
        !rl_smf_path(w->path, sizeof w->path, dir, next_offset, false)) {
        free(w->chunk);
        free(w);
        snprintf(err, errlen, "snapshot directory path too long");
        return RLOG_EINVAL;
    }
    w->h = (struct rl_smf_header){.version = RL_SMF_VERSION, .chunk = chunk,
                                  .next_offset = next_offset, .id = *id};
    int rv = rl_fs_open(w->tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600, &w->fd);
    if (rv != 0) {
        snprintf(err, errlen, "cannot create %s: %s", w->tmp, strerror(-rv));
        free(w->chunk);
        free(w);
        return rl_errno_to_rlog(rv);
    }
    *out = w;
    return 0;
}

/* Writes the buffered chunk and records its checksum. */
static int flush_chunk(rlog_sm_writer *w)
{
    if (w->fill == 0)
        return 0;
    if (w->n == w->cap) {
        size_t cap = w->cap ? 2 * w->cap : 64;
        uint64_t *s = realloc(w->sums, cap * sizeof *s);
        if (!s)
            return RLOG_ENOMEM;
        w->sums = s;
        w->cap = cap;
    }
    int rv = rl_fs_pwrite(w->fd, w->chunk, w->fill, RL_SMF_HEADER + w->h.length);
    if (rv != 0)
        return rl_errno_to_rlog(rv);
    w->sums[w->n] = rl_smf_chunk_sum(w->chunk, w->fill, w->n);
    w->n++;
    w->h.length += w->fill;
    w->fill = 0;
    return 0;
}

int rlog_sm_write(rlog_sm_writer *w, const void *buf, size_t len)
{
    if (!w || (!buf && len))
        return RLOG_EINVAL;
    const unsigned char *p = buf;
    while (len > 0 && w->err == 0) {
        size_t take = w->h.chunk - w->fill;
        if (take > len)
            take = len;
        memcpy(w->chunk + w->fill, p, take);
        w->fill += take;
        p += take;
        len -= take;
        if (w->fill == w->h.chunk)
            w->err = flush_chunk(w);
    }
    return w->err;
}

int rl_smf_writer_error(const rlog_sm_writer *w)
{
    return w->err;
}

static void free_writer(rlog_sm_writer *w)
{
    free(w->chunk);
    free(w->sums);
    free(w);
}

void rl_smf_abandon(rlog_sm_writer *w)
{
    if (!w)
        return;
    rl_fs_close(w->fd);
    rl_fs_unlink(w->tmp);
    free_writer(w);
}

/* Everything after the payload, then the header; sync; into place.
 * *sys: the system error of a failed call (0: none). */
static int finish(rlog_sm_writer *w, const char **what, int *sys)
{
    *what = "write";
    int rv = flush_chunk(w);
    if (rv != 0)
        return rv;
    unsigned char header[RL_SMF_HEADER];
    rl_smf_header_encode(&w->h, header);
    size_t tail_len = 8 * w->n + RL_SMF_TRAILER;
    unsigned char *tail = malloc(tail_len);
    if (!tail)
        return RLOG_ENOMEM;
    for (size_t i = 0; i < w->n; i++)
        rl_put64(tail + 8 * i, w->sums[i]);
    rl_smf_trailer_encode(rl_smf_trailer_sum(header, w->sums, w->n), tail + 8 * w->n);
    rv = rl_fs_pwrite(w->fd, tail, tail_len, RL_SMF_HEADER + w->h.length);
    free(tail);
    if (rv == 0)
        rv = rl_fs_pwrite(w->fd, header, sizeof header, 0);
    if (rv == 0) {
        *what = "fdatasync";
        rv = rl_fs_fdatasync(w->fd);
    }
    if (rv == 0) {
        *what = "rename";
        rv = rl_fs_rename(w->tmp, w->path);
    }
    if (rv == 0) {
        *what = "fsync of the directory after renaming";
        rv = rl_fs_fsync_dir(w->dir);
    }
    *sys = -rv;
    return rl_errno_to_rlog(rv);
}

int rl_smf_commit(rlog_sm_writer *w, char *err, size_t errlen)
{
    const char *what = "write";
    int sys = 0;
    int rv = w->err ? w->err : finish(w, &what, &sys);
    if (rv != 0) {
        snprintf(err, errlen, "snapshot %s: %s failed: %s", w->path, what,
                 sys > 0 ? strerror(sys) : rlog_strerror(rv));
        rl_smf_abandon(w);
        return rv;
    }
    rl_fs_close(w->fd);
    free_writer(w);
    return 0;
}
