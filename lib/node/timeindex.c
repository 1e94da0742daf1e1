#include "node/timeindex.h"

#include <string.h>

#include "common/bytes.h"
#include "common/grow.h"
#include "liblog.h"

void rl_tindex_init(struct rl_tindex *t, unsigned every, uint64_t first)
{
    memset(t, 0, sizeof *t);
    t->every = every ? every : RL_TINDEX_EVERY;
    t->first = t->end = first;
}

void rl_tindex_free(struct rl_tindex *t)
{
    free(t->b);
    t->b = NULL;
    t->n = t->cap = 0;
}

void rl_tindex_reset(struct rl_tindex *t, uint64_t first)
{
    t->n = 0;
    t->fill = 0;
    t->first = t->end = first;
}

static uint64_t max64(uint64_t a, uint64_t b)
{
    return a > b ? a : b;
}

static void recompute_pmax(struct rl_tindex *t, size_t from)
{
    for (size_t i = from; i < t->n; i++)
        t->b[i].pmax = max64(i ? t->b[i - 1].pmax : 0, t->b[i].bmax);
}

int rl_tindex_add(struct rl_tindex *t, uint64_t base, uint32_t records, uint64_t ts,
                  uint64_t bytes)
{
    if (records == 0 || base + records <= t->end)
        return 0;
    if (base > t->end)
        return 1;
    if (t->n == 0 || t->fill >= t->every) {
        struct rl_tindex_block *b = rl_grow(t->b, &t->cap, t->n, sizeof *b, 64);
        if (!b)
            return RLOG_ENOMEM;
        t->b = b;
        /* Block 0 may begin inside a batch (a trim point): at first. */
        t->b[t->n] = (struct rl_tindex_block){.offset = t->end, .bytes = t->bytes, .bmax = ts};
        t->n++;
        t->fill = 0;
    } else if (ts > t->b[t->n - 1].bmax) {
        t->b[t->n - 1].bmax = ts;
    }
    recompute_pmax(t, t->n - 1);
    t->fill++;
    t->bytes += bytes;
    t->end = base + records;
    return 0;
}

/* Reads one batch holding `offset`, checked to hold it. */
static int read_at(const struct rl_tindex_src *src, uint64_t offset, struct rl_tindex_batch *b)
{
    int rv = src->read(src->arg, offset, b);
    if (rv == 0 && (b->records == 0 || b->base > offset || b->base + b->records <= offset)) {
        src->release(src->arg, b);
        rv = RLOG_ECORRUPT;
    }
    return rv;
}

int rl_tindex_catch_up(struct rl_tindex *t, const struct rl_tindex_src *src, uint64_t upto,
                       uint64_t until_ts)
{
    while (t->end < upto &&
           (t->n == 0 || t->b[t->n - 1].pmax < until_ts || until_ts == UINT64_MAX)) {
        struct rl_tindex_batch b;
        int rv = read_at(src, t->end, &b);
        if (rv != 0)
            return rv;
        rv = rl_tindex_add(t, b.base, b.records, b.ts, b.bytes);
        src->release(src->arg, &b);
        if (rv != 0)
            return rv;
    }
    return 0;
}

/* The batches holding records [from, to): their newest time, their bytes
 * and how many. */
static int scan(const struct rl_tindex_src *src, uint64_t from, uint64_t to, uint64_t *bmax,
                uint64_t *bytes, unsigned *batches)
{
    *bmax = *bytes = 0;
    *batches = 0;
    for (uint64_t off = from; off < to;) {
        struct rl_tindex_batch b;
        int rv = read_at(src, off, &b);
        if (rv != 0)
            return rv;
        *bmax = max64(*bmax, b.ts);
        *bytes += b.bytes;
        (*batches)++;
        off = b.base + b.records;
        src->release(src->arg, &b);
    }
    return 0;
}

void rl_tindex_trim(struct rl_tindex *t, const struct rl_tindex_src *src, uint64_t first)
{
    if (first <= t->first)
        return;
    if (first >= t->end) {
        rl_tindex_reset(t, first);
        return;
    }
    size_t k = 0;
    while (k + 1 < t->n && t->b[k + 1].offset <= first)
        k++;
    memmove(t->b, t->b + k, (t->n - k) * sizeof *t->b);
    t->n -= k;
    t->first = first;
    uint64_t to = t->n > 1 ? t->b[1].offset : t->end;
    uint64_t after = t->n > 1 ? t->b[1].bytes : t->bytes;
    uint64_t bmax, bytes;
    unsigned batches;
    if (scan(src, first, to, &bmax, &bytes, &batches) != 0 || bytes > after) {
        rl_tindex_reset(t, first);
        return;
    }
    t->b[0] = (struct rl_tindex_block){.offset = first, .bytes = after - bytes, .bmax = bmax};
    if (t->n == 1)
        t->fill = batches;
    recompute_pmax(t, 0);
}

void rl_tindex_truncate(struct rl_tindex *t, const struct rl_tindex_src *src, uint64_t end)
{
    if (end >= t->end)
        return;
    while (t->n > 1 && t->b[t->n - 1].offset >= end)
        t->n--;
    uint64_t bmax, bytes;
    unsigned batches;
    if (end <= t->first || scan(src, t->b[t->n - 1].offset, end, &bmax, &bytes, &batches) != 0) {
        rl_tindex_reset(t, end < t->first ? end : t->first);
        return;
    }
    struct rl_tindex_block *last = &t->b[t->n - 1];
    last->bmax = bmax;
    t->bytes = last->bytes + bytes;
    t->end = end;
    t->fill = batches;
    recompute_pmax(t, t->n - 1);
}

int rl_tindex_find_time(const struct rl_tindex *t, const struct rl_tindex_src *src, uint64_t ts,
                        uint64_t *offset)
{
    *offset = t->end;
    if (t->n == 0 || t->b[t->n - 1].pmax < ts)
        return RLOG_ENOTFOUND;
    size_t lo = 0, hi = t->n - 1; /* the first block whose running maximum reaches ts */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (t->b[mid].pmax >= ts)
            hi = mid;
        else
            lo = mid + 1;
    }
    uint64_t cur = lo ? t->b[lo - 1].pmax : 0;
    for (uint64_t off = t->b[lo].offset; off < t->end;) {
        struct rl_tindex_batch b;
        int rv = read_at(src, off, &b);
        if (rv != 0)
            return rv;
        cur = max64(cur, b.ts);
        uint64_t next = b.base + b.records;
        src->release(src->arg, &b);
        if (cur >= ts) {
            *offset = off;
            return 0;
        }
        off = next;
    }
    return RLOG_ENOTFOUND; /* a block's maximum said otherwise: the log changed under it */
}

/* The first record i of a batch (0..records) with at least `need` of its
 * bytes before it. */
static uint32_t record_with_bytes_before(const struct rl_tindex_batch *b, uint64_t need)
{
    uint32_t lo = 0, hi = b->records;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        uint64_t before = mid ? rl_get32(b->ends + 4 * (size_t)(mid - 1)) : 0;
        if (before >= need)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

int rl_tindex_find_bytes(const struct rl_tindex *t, const struct rl_tindex_src *src,
                         uint64_t keep, uint64_t *offset)
{
    *offset = t->first;
    if (t->n == 0 || t->bytes - t->b[0].bytes <= keep)
        return 0;
    uint64_t target = t->bytes - keep; /* the bytes that must be before the answer */
    size_t lo = 0, hi = t->n - 1;      /* the last block starting at or before target */
    while (lo < hi) {
        size_t mid = lo + (hi - lo + 1) / 2;
        if (t->b[mid].bytes <= target)
            lo = mid;
        else
            hi = mid - 1;
    }
    uint64_t before = t->b[lo].bytes;
    for (uint64_t off = t->b[lo].offset; off < t->end;) {
        struct rl_tindex_batch b;
        int rv = read_at(src, off, &b);
        if (rv != 0)
            return rv;
        uint64_t next = b.base + b.records;
        if (before + b.bytes >= target) {
            uint64_t o = b.base + record_with_bytes_before(&b, target - before);
            src->release(src->arg, &b);
            *offset = max64(o, t->first);
            return 0;
        }
        before += b.bytes;
        src->release(src->arg, &b);
        off = next;
    }
    *offset = t->end;
    return 0;
}
