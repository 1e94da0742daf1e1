/*
 * read — a snapshot being read (rlog_sm_reader): the whole file is
 * verified when it is opened (header, size, chunk table, trailer, every
 * chunk), so restore never starts on a file that would fail half-way; the
 * stream then reads each chunk again and checks it against the table.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/bytes.h"
#include "fs/fs.h"
#include "sm/smfile.h"

struct rlog_sm_reader {
    int fd;                  /* -1: the empty stream */
    struct rl_smf_header h;
    uint64_t *sums, n;
    unsigned char *chunk;
    size_t chunk_len, pos;   /* the chunk in memory, and what was read of it */
    uint64_t next;           /* index of the next chunk to load */
};

const struct rl_smf_header *rl_smf_reader_header(const rlog_sm_reader *r)
{
    return &r->h;
}

int rl_smf_open_empty(rlog_sm_reader **out)
{
    rlog_sm_reader *r = calloc(1, sizeof *r);
    if (!r)
        return RLOG_ENOMEM;
    r->fd = -1;
    *out = r;
    return 0;
}

void rl_smf_close(rlog_sm_reader *r)
{
    if (!r)
        return;
    if (r->fd >= 0)
        rl_fs_close(r->fd);
    free(r->sums);
    free(r->chunk);
    free(r);
}

/* Reads exactly len bytes at off: RLOG_ECORRUPT if the file is shorter. */
static int read_at(int fd, void *buf, size_t len, uint64_t off)
{
    size_t got = 0;
    int rv = rl_fs_pread(fd, buf, len, off, &got);
    if (rv != 0)
        return rl_errno_to_rlog(rv);
    return got == len ? 0 : RLOG_ECORRUPT;
}

/* Loads chunk i into r->chunk and verifies it. */
static int load_chunk(rlog_sm_reader *r, uint64_t i)
{
    uint64_t off = (uint64_t)r->h.chunk * i;
    size_t len = (size_t)(r->h.length - off < r->h.chunk ? r->h.length - off : r->h.chunk);
    int rv = read_at(r->fd, r->chunk, len, RL_SMF_HEADER + off);
    if (rv == 0 && rl_smf_chunk_sum(r->chunk, len, i) != r->sums[i])
        rv = RLOG_ECORRUPT;
    r->chunk_len = len;
    r->pos = 0;
    return rv;
}

static int verify(rlog_sm_reader *r, const struct rl_smf_id *want, char *err, size_t errlen)
{
    unsigned char header[RL_SMF_HEADER];
    int rv = read_at(r->fd, header, sizeof header, 0);
    if (rv != 0) {
        snprintf(err, errlen, "%s", rv == RLOG_ECORRUPT ? "shorter than a header" : "cannot read the header");
        return rv;
    }
    if ((rv = rl_smf_header_decode(header, &r->h, err, errlen)) != 0)
        return rv;
    uint64_t size = 0;
    if ((rv = rl_fs_file_size(r->fd, &size)) != 0) {
        snprintf(err, errlen, "cannot stat it: %s", strerror(-rv));
        return rl_errno_to_rlog(rv);
    }
    if (size != rl_smf_file_size(&r->h)) {
        snprintf(err, errlen, "%" PRIu64 " bytes, its header says %" PRIu64, size,
                 rl_smf_file_size(&r->h));
        return RLOG_ECORRUPT;
    }
    if (want && want->cluster && r->h.id.cluster && want->cluster != r->h.id.cluster) {
        snprintf(err, errlen, "written by node %" PRIu64 " of another cluster", r->h.id.node);
        return RLOG_EIDENTITY;
    }
    r->n = rl_smf_chunks(r->h.length, r->h.chunk);
    size_t tail_len = (size_t)(8 * r->n + RL_SMF_TRAILER);
    unsigned char *tail = malloc(tail_len);
    r->sums = malloc((size_t)r->n * sizeof *r->sums + 1);
    r->chunk = malloc(r->h.chunk);
    if (!tail || !r->sums || !r->chunk) {
        free(tail);
        snprintf(err, errlen, "out of memory");
        return RLOG_ENOMEM;
    }
    rv = read_at(r->fd, tail, tail_len, RL_SMF_HEADER + r->h.length);
    for (uint64_t i = 0; rv == 0 && i < r->n; i++)
        r->sums[i] = rl_get64(tail + 8 * i);
    if (rv == 0 && !rl_smf_trailer_ok(tail + 8 * r->n, rl_smf_trailer_sum(header, r->sums, r->n)))
        rv = RLOG_ECORRUPT;
    free(tail);
    if (rv != 0) {
        snprintf(err, errlen, "chunk table or trailer %s", rv == RLOG_ECORRUPT ? "damaged" : "unreadable");
        return rv;
    }
    for (uint64_t i = 0; i < r->n; i++)
        if ((rv = load_chunk(r, i)) != 0) {
            snprintf(err, errlen, "chunk %" PRIu64 " (payload bytes from %" PRIu64 ") %s", i,
                     i * r->h.chunk, rv == RLOG_ECORRUPT ? "fails its checksum" : "unreadable");
            return rv;
        }
    r->chunk_len = r->pos = 0;
    return 0;
}

int rl_smf_open(const char *path, const struct rl_smf_id *want, rlog_sm_reader **out,
                char *err, size_t errlen)
{
    rlog_sm_reader *r = calloc(1, sizeof *r);
    if (!r) {
        snprintf(err, errlen, "out of memory");
        return RLOG_ENOMEM;
    }
    int rv = rl_fs_open(path, O_RDONLY | O_CLOEXEC, 0, &r->fd);
    if (rv != 0) {
        free(r);
        snprintf(err, errlen, "snapshot %s: cannot open: %s", path, strerror(-rv));
        return rl_errno_to_rlog(rv);
    }
    char why[256];
    rv = verify(r, want, why, sizeof why);
    if (rv != 0) {
        snprintf(err, errlen, "snapshot %s: %s", path, why);
        rl_smf_close(r);
        return rv;
    }
    *out = r;
    return 0;
}

int rlog_sm_read(rlog_sm_reader *r, void *buf, size_t cap, size_t *got)
{
    if (!r || !got || (!buf && cap))
        return RLOG_EINVAL;
    *got = 0;
    unsigned char *p = buf;
    while (*got < cap) {
        if (r->pos == r->chunk_len) {
            if (r->fd < 0 || r->next >= r->n)
                break;
            int rv = load_chunk(r, r->next);
            if (rv != 0)
                return rv;
            r->next++;
        }
        size_t take = r->chunk_len - r->pos;
        if (take > cap - *got)
            take = cap - *got;
        memcpy(p + *got, r->chunk + r->pos, take);
        r->pos += take;
        *got += take;
    }
    return 0;
}
