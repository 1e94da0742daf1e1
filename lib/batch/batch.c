#include "batch/batch.h"

#include <raft.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "store/format.h"

static const unsigned char MAGIC[4] = {'R', 'L', 'B', '1'};

void rl_batch_builder_init(struct rl_batch_builder *b)
{
    memset(b, 0, sizeof *b);
}

void rl_batch_builder_free(struct rl_batch_builder *b)
{
    raft_free(b->buf);
    free(b->ends);
    memset(b, 0, sizeof *b);
}

static size_t sealed_size(size_t data_len, uint32_t count)
{
    size_t table = (RL_BATCH_HDR + data_len + 3) & ~(size_t)3;
    return (size_t)rl_pad8(table + (size_t)count * 4);
}

size_t rl_batch_size_with(const struct rl_batch_builder *b, size_t len)
{
    size_t data = b->len ? b->len - RL_BATCH_HDR : 0;
    return sealed_size(data + len, b->count + 1);
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

void *rl_batch_seal(struct rl_batch_builder *b, uint64_t ts, size_t *len)
{
    if (!b->len)
        b->len = RL_BATCH_HDR;
    size_t data_len = b->len - RL_BATCH_HDR;
    size_t total = sealed_size(data_len, b->count);
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
    seal_header(buf, 0, b->count, (uint32_t)data_len, ts, total);
    *len = total;
    b->buf = NULL;
    b->cap = b->len = 0;
    b->count = 0;
    return buf;
}

bool rl_batch_parse(const void *p, size_t len, struct rl_batch_view *v)
{
    const unsigned char *buf = p;
    if (len < RL_BATCH_HDR || memcmp(buf, MAGIC, 4) != 0 || buf[4] != 1 || buf[5] ||
        buf[6] > RL_BATCH_TRIM || buf[7])
        return false;
    uint32_t count = rl_get32(buf + 8), data_len = rl_get32(buf + 12);
    if (data_len > len || count > len / 4 || sealed_size(data_len, count) != len)
        return false;
    bool trim = buf[6] == RL_BATCH_TRIM;
    if (trim && (count != 0 || data_len != 8))
        return false;
    if (rl_get64(buf + 24) !=
        XXH3_64bits_withSeed(buf + RL_BATCH_HDR, len - RL_BATCH_HDR, XXH3_64bits(buf, 24)))
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
    v->data = buf + RL_BATCH_HDR;
    v->ends = buf + table;
    v->count = count;
    v->data_len = data_len;
    v->timestamp = rl_get64(buf + 16);
    v->trim_before = trim ? rl_get64(buf + RL_BATCH_HDR) : 0;
    return true;
}

void rl_batch_record(const struct rl_batch_view *v, uint32_t i, const void **rec, size_t *len)
{
    uint32_t start = i ? rl_get32(v->ends + (size_t)(i - 1) * 4) : 0;
    uint32_t end = rl_get32(v->ends + (size_t)i * 4);
    *rec = v->data + start;
    *len = end - start;
}
