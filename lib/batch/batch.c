#include "batch/batch.h"

#include <raft.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "common/bytes.h"

static const unsigned char MAGIC[4] = {'R', 'L', 'B', '1'};

void rl_batch_builder_init(struct rl_batch_builder *b)
{
    memset(b, 0, sizeof *b);
}

void rl_batch_builder_free(struct rl_batch_builder *b)
{
    raft_free(b->buf);
    free(b->ends);
    free(b->runs);
    memset(b, 0, sizeof *b);
}

static size_t sealed_size(size_t data_len, uint32_t count)
{
    size_t table = (RL_BATCH_HDR + data_len + 3) & ~(size_t)3;
    return (size_t)rl_pad8(table + (size_t)count * 4);
}

size_t rl_batch_runs_bytes(uint32_t nruns)
{
    return nruns ? 8 + (size_t)nruns * RL_BATCH_RUN_BYTES : 0;
}

size_t rl_batch_size_with(const struct rl_batch_builder *b, size_t len)
{
    size_t data = b->len ? b->len - RL_BATCH_HDR : 0;
    return sealed_size(data + len, b->count + 1) + rl_batch_runs_bytes(b->nruns);
}

int rl_batch_add_run(struct rl_batch_builder *b, uint64_t producer, uint64_t seq, uint32_t n)
{
    if (b->nruns == b->runs_cap) {
        uint32_t cap = b->runs_cap ? b->runs_cap * 2 : 16;
        struct rl_batch_run *r = realloc(b->runs, cap * sizeof *r);
        if (!r)
            return -1;
        b->runs = r;
        b->runs_cap = cap;
    }
    b->runs[b->nruns++] = (struct rl_batch_run){producer, seq, b->count - n, n};
    return 0;
}

int rl_batch_add(struct rl_batch_builder *b, const void *rec, size_t len)
{
    if (!b->len)
        b->len = RL_BATCH_HDR;
    size_t need = sealed_size(b->len - RL_BATCH_HDR + len, b->count + 1);
    if (need > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < need)
            cap *= 2;
        unsigned char *p = raft_realloc(b->buf, cap);
        if (!p)
            return -1;
        b->buf = p;
        b->cap = cap;
    }
    if (b->count == b->ends_cap) {
        uint32_t cap = b->ends_cap ? b->ends_cap * 2 : 64;
        uint32_t *e = realloc(b->ends, cap * sizeof *e);
        if (!e)
            return -1;
        b->ends = e;
        b->ends_cap = cap;
    }
    if (len)
        memcpy(b->buf + b->len, rec, len);
    b->len += len;
    b->ends[b->count++] = (uint32_t)(b->len - RL_BATCH_HDR);
    return 0;
}

static void seal_header(unsigned char *buf, uint16_t flags, uint32_t count, uint32_t data_len,
                        uint64_t ts, size_t total)
{
    memcpy(buf, MAGIC, 4);
    buf[4] = 1;
    buf[5] = 0;
    buf[6] = (unsigned char)flags;
    buf[7] = (unsigned char)(flags >> 8);
    rl_put32(buf + 8, count);
    rl_put32(buf + 12, data_len);
    rl_put64(buf + 16, ts);
    rl_put64(buf + 24, XXH3_64bits_withSeed(buf + RL_BATCH_HDR, total - RL_BATCH_HDR,
                                            XXH3_64bits(buf, 24)));
}

void *rl_batch_trim(uint64_t before, uint64_t ts, size_t *len)
{
    size_t total = sealed_size(8, 0);
    unsigned char *buf = raft_calloc(1, total);
    if (!buf)
        return NULL;
    rl_put64(buf + RL_BATCH_HDR, before);
    seal_header(buf, RL_BATCH_TRIM, 0, 8, ts, total);
    *len = total;
    return buf;
}

void *rl_batch_cursor(const char *name, size_t name_len, uint64_t offset, uint64_t ts,
                      size_t *len)
{
    if (name_len == 0 || name_len > RL_BATCH_CURSOR_NAME_MAX)
        return NULL;
    uint32_t data_len = (uint32_t)(8 + name_len);
    size_t total = sealed_size(data_len, 0);
    unsigned char *buf = raft_calloc(1, total);
    if (!buf)
        return NULL;
    rl_put64(buf + RL_BATCH_HDR, offset);
    memcpy(buf + RL_BATCH_HDR + 8, name, name_len);
    seal_header(buf, RL_BATCH_CURSOR, 0, data_len, ts, total);
    *len = total;
    return buf;
}

void *rl_batch_seal(struct rl_batch_builder *b, uint64_t ts, size_t *len)
{
    if (!b->len)
        b->len = RL_BATCH_HDR;
    size_t data_len = b->len - RL_BATCH_HDR;
    size_t total = sealed_size(data_len, b->count);
    size_t runs_at = total;
    total += rl_batch_runs_bytes(b->nruns);
    if (total > b->cap) {
        unsigned char *p = raft_realloc(b->buf, total);
        if (!p)
            return NULL;
        b->buf = p;
        b->cap = total;
    }
    unsigned char *buf = b->buf;
    size_t table = (RL_BATCH_HDR + data_len + 3) & ~(size_t)3;
    memset(buf + b->len, 0, total - b->len);
    for (uint32_t i = 0; i < b->count; i++)
        rl_put32(buf + table + (size_t)i * 4, b->ends[i]);
    if (b->nruns) {
        rl_put32(buf + runs_at, b->nruns);
        for (uint32_t i = 0; i < b->nruns; i++) {
            unsigned char *r = buf + runs_at + 8 + (size_t)i * RL_BATCH_RUN_BYTES;
            rl_put64(r, b->runs[i].producer);
            rl_put64(r + 8, b->runs[i].seq);
            rl_put32(r + 16, b->runs[i].first);
            rl_put32(r + 20, b->runs[i].n);
        }
    }
    seal_header(buf, b->nruns ? RL_BATCH_RUNS : 0, b->count, (uint32_t)data_len, ts, total);
    *len = total;
    b->buf = NULL;
    b->cap = b->len = 0;
    b->count = 0;
    b->nruns = 0;
    return buf;
}

/* The runs table at `at` of a batch of `len` bytes and `count` records:
 * true if it fills the rest exactly and its runs are well formed. */
static bool parse_runs(const unsigned char *buf, size_t at, size_t len, uint32_t count,
                       struct rl_batch_view *v)
{
    if (len - at < 8)
        return false;
    uint32_t nruns = rl_get32(buf + at);
    if (nruns == 0 || rl_get32(buf + at + 4) != 0 || nruns > (len - at - 8) / RL_BATCH_RUN_BYTES ||
        rl_batch_runs_bytes(nruns) != len - at)
        return false;
    uint64_t next_first = 0;
    for (uint32_t i = 0; i < nruns; i++) {
        const unsigned char *r = buf + at + 8 + (size_t)i * RL_BATCH_RUN_BYTES;
        uint64_t first = rl_get32(r + 16), n = rl_get32(r + 20);
        if (rl_get64(r) == 0 || rl_get64(r + 8) == 0 || n == 0 || first < next_first ||
            first + n > count)
            return false;
        next_first = first + n;
    }
    v->runs = buf + at + 8;
    v->nruns = nruns;
    return true;
}

static bool parse(const void *p, size_t len, struct rl_batch_view *v, bool verify);

bool rl_batch_parse(const void *p, size_t len, struct rl_batch_view *v)
{
    return parse(p, len, v, true);
}

bool rl_batch_parse_layout(const void *p, size_t len, struct rl_batch_view *v)
{
    return parse(p, len, v, false);
}

static bool parse(const void *p, size_t len, struct rl_batch_view *v, bool verify)
{
    const unsigned char *buf = p;
    if (len < RL_BATCH_HDR || memcmp(buf, MAGIC, 4) != 0 || buf[4] != 1 || buf[5] ||
        (buf[6] != 0 && buf[6] != RL_BATCH_TRIM && buf[6] != RL_BATCH_RUNS &&
         buf[6] != RL_BATCH_CURSOR) || buf[7])
        return false;
    uint32_t count = rl_get32(buf + 8), data_len = rl_get32(buf + 12);
    bool with_runs = buf[6] == RL_BATCH_RUNS;
    if (data_len > len || count > len / 4)
        return false;
    size_t runs_at = sealed_size(data_len, count);
    if (with_runs ? runs_at >= len : runs_at != len)
        return false;
    bool trim = buf[6] == RL_BATCH_TRIM;
    if (trim && (count != 0 || data_len != 8))
        return false;
    bool cursor = buf[6] == RL_BATCH_CURSOR;
    if (cursor && (count != 0 || data_len <= 8 || data_len > 8 + RL_BATCH_CURSOR_NAME_MAX))
        return false;
    if (verify && rl_get64(buf + 24) != XXH3_64bits_withSeed(buf + RL_BATCH_HDR, len - RL_BATCH_HDR,
                                                              XXH3_64bits(buf, 24)))
        return false;
    size_t table = (RL_BATCH_HDR + data_len + 3) & ~(size_t)3;
    uint32_t prev = 0;
    for (uint32_t i = 0; i < count; i++) {
        uint32_t e = rl_get32(buf + table + (size_t)i * 4);
        if (e < prev || e > data_len)
            return false;
        prev = e;
    }
    if (count && prev != data_len)
        return false;
    v->runs = NULL;
    v->nruns = 0;
    if (with_runs && !parse_runs(buf, runs_at, len, count, v))
        return false;
    v->data = buf + RL_BATCH_HDR;
    v->ends = buf + table;
    v->count = count;
    v->data_len = data_len;
    v->timestamp = rl_get64(buf + 16);
    v->trim_before = trim ? rl_get64(buf + RL_BATCH_HDR) : 0;
    v->cursor_name = cursor ? (const char *)buf + RL_BATCH_HDR + 8 : NULL;
    v->cursor_name_len = cursor ? data_len - 8 : 0;
    v->cursor_offset = cursor ? rl_get64(buf + RL_BATCH_HDR) : 0;
    return true;
}

void rl_batch_record(const struct rl_batch_view *v, uint32_t i, const void **rec, size_t *len)
{
    uint32_t start = i ? rl_get32(v->ends + (size_t)(i - 1) * 4) : 0;
    uint32_t end = rl_get32(v->ends + (size_t)i * 4);
    *rec = v->data + start;
    *len = end - start;
}

void rl_batch_run(const struct rl_batch_view *v, uint32_t i, struct rl_batch_run *run)
{
    const unsigned char *r = v->runs + (size_t)i * RL_BATCH_RUN_BYTES;
    *run = (struct rl_batch_run){rl_get64(r), rl_get64(r + 8), rl_get32(r + 16), rl_get32(r + 20)};
}

/* Lengths are folded 64 at a time (the same chunks in both forms). */
#define LEN_CHUNK 64

uint64_t rl_batch_hash_lens(const void *data, size_t bytes, const size_t *lens, uint32_t n)
{
    unsigned char le[LEN_CHUNK * 4];
    uint64_t h = n;
    for (uint32_t i = 0; i < n; i += LEN_CHUNK) {
        uint32_t k = n - i < LEN_CHUNK ? n - i : LEN_CHUNK;
        for (uint32_t j = 0; j < k; j++)
            rl_put32(le + j * 4, (uint32_t)lens[i + j]);
        h = XXH3_64bits_withSeed(le, (size_t)k * 4, h);
    }
    return XXH3_64bits_withSeed(data, bytes, h);
}

uint64_t rl_batch_hash_view(const struct rl_batch_view *v, uint32_t first, uint32_t n)
{
    unsigned char le[LEN_CHUNK * 4];
    uint64_t h = n;
    uint32_t start = first ? rl_get32(v->ends + (size_t)(first - 1) * 4) : 0, prev = start;
    for (uint32_t i = 0; i < n; i += LEN_CHUNK) {
        uint32_t k = n - i < LEN_CHUNK ? n - i : LEN_CHUNK;
        for (uint32_t j = 0; j < k; j++) {
            uint32_t end = rl_get32(v->ends + (size_t)(first + i + j) * 4);
            rl_put32(le + j * 4, end - prev);
            prev = end;
        }
        h = XXH3_64bits_withSeed(le, (size_t)k * 4, h);
    }
    return XXH3_64bits_withSeed(v->data + start, prev - start, h);
}
