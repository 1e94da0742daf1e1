#include "node/dedup.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "batch/batch.h"
#include "common/bytes.h"
#include "common/grow.h"
#include "liblog.h"

struct run {
    uint64_t seq, offset, hash;
    uint32_t n;
};

struct rl_producer {
    uint64_t id, last_seq, last_index;
    struct rl_producer *hnext, *older, *newer;
    struct run *ring; /* the last `len` runs, oldest at `head` */
    unsigned cap, head, len;
};

struct noted_run {
    uint64_t producer, seq, offset, hash;
    uint32_t n;
};

struct rl_dedup_note {
    uint64_t index, term;
    struct noted_run *runs;
    uint32_t nruns;
};

static size_t bucket_of(const struct rl_dedup *d, uint64_t id)
{
    return (size_t)(XXH3_64bits(&id, sizeof id) & (d->nbuckets - 1));
}

int rl_dedup_init(struct rl_dedup *d, unsigned max_producers, unsigned window)
{
    memset(d, 0, sizeof *d);
    d->max_producers = max_producers ? max_producers : 1;
    d->window = window ? window : 1;
    d->nbuckets = 16;
    while (d->nbuckets < 2 * (size_t)d->max_producers && d->nbuckets < (1u << 20))
        d->nbuckets *= 2;
    d->buckets = calloc(d->nbuckets, sizeof *d->buckets);
    return d->buckets ? 0 : RLOG_ENOMEM;
}

static void drop_notes(struct rl_dedup *d, size_t from, size_t to)
{
    for (size_t i = from; i < to; i++)
        free(d->notes[i].runs);
}

static void clear_table(struct rl_dedup *d)
{
    for (struct rl_producer *p = d->oldest, *next; p; p = next) {
        next = p->newer;
        free(p->ring);
        free(p);
    }
    memset(d->buckets, 0, d->nbuckets * sizeof *d->buckets);
    d->oldest = d->newest = NULL;
    d->n = 0;
}

void rl_dedup_free(struct rl_dedup *d)
{
    if (d->buckets)
        clear_table(d);
    drop_notes(d, 0, d->nnotes);
    free(d->notes);
    free(d->buckets);
    memset(d, 0, sizeof *d);
}

static struct rl_producer *find(const struct rl_dedup *d, uint64_t id)
{
    for (struct rl_producer *p = d->buckets[bucket_of(d, id)]; p; p = p->hnext)
        if (p->id == id)
            return p;
    return NULL;
}

static void unlink_lru(struct rl_dedup *d, struct rl_producer *p)
{
    if (p->older)
        p->older->newer = p->newer;
    else
        d->oldest = p->newer;
    if (p->newer)
        p->newer->older = p->older;
    else
        d->newest = p->older;
    p->older = p->newer = NULL;
}

static void link_newest(struct rl_dedup *d, struct rl_producer *p)
{
    p->older = d->newest;
    p->newer = NULL;
    if (d->newest)
        d->newest->newer = p;
    else
        d->oldest = p;
    d->newest = p;
}

static void forget(struct rl_dedup *d, struct rl_producer *p)
{
    struct rl_producer **pp = &d->buckets[bucket_of(d, p->id)];
    while (*pp != p)
        pp = &(*pp)->hnext;
    *pp = p->hnext;
    unlink_lru(d, p);
    free(p->ring);
    free(p);
    d->n--;
}

static struct rl_producer *add_producer(struct rl_dedup *d, uint64_t id)
{
    struct rl_producer *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    while (d->n >= d->max_producers)
        forget(d, d->oldest);
    p->id = id;
    size_t b = bucket_of(d, id);
    p->hnext = d->buckets[b];
    d->buckets[b] = p;
    link_newest(d, p);
    d->n++;
    return p;
}

static struct run *run_at(const struct rl_producer *p, unsigned i)
{
    return &p->ring[(p->head + i) % p->cap];
}

/* Appends a run to p's ring, the oldest going beyond the window. */
static int push_run(struct rl_dedup *d, struct rl_producer *p, const struct run *r)
{
    if (p->len == p->cap && p->cap < d->window) {
        unsigned cap = p->cap ? p->cap * 2 : 4;
        if (cap > d->window)
            cap = d->window;
        struct run *ring = malloc(cap * sizeof *ring);
        if (!ring)
            return RLOG_ENOMEM;
        for (unsigned i = 0; i < p->len; i++)
            ring[i] = *run_at(p, i);
        free(p->ring);
        p->ring = ring;
        p->cap = cap;
        p->head = 0;
    }
    if (p->len == p->cap) {
        p->head = (p->head + 1) % p->cap;
        p->len--;
    }
    *run_at(p, p->len) = *r;
    p->len++;
    return 0;
}

/* One committed run, in log order. A sequence at or below the producer's
 * last is ignored: the leader never lets one through, and replay at open
 * may feed an entry twice. */
static int apply_run(struct rl_dedup *d, uint64_t index, const struct noted_run *nr)
{
    struct rl_producer *p = find(d, nr->producer);
    if (p && nr->seq <= p->last_seq)
        return 0;
    if (!p && !(p = add_producer(d, nr->producer)))
        return RLOG_ENOMEM;
    struct run r = {nr->seq, nr->offset, nr->hash, nr->n};
    int rv = push_run(d, p, &r);
    if (rv != 0)
        return rv;
    p->last_seq = nr->seq;
    p->last_index = index;
    unlink_lru(d, p);
    link_newest(d, p);
    return 0;
}

/* The runs of a batch payload (malloc'd into *out, *n of them; NULL and 0
 * for none or a payload that is not a batch). */
static int runs_of(uint64_t offset, const void *buf, size_t len, struct noted_run **out,
                   uint32_t *n)
{
    struct rl_batch_view v;
    *out = NULL;
    *n = 0;
    /* The flags byte first: most entries carry no runs. The payload's bytes
     * were verified as the entry was stored or received (its frame
     * checksum), so the layout is checked here, not the checksum again. */
    if (!buf || len < RL_BATCH_HDR || ((const unsigned char *)buf)[6] != RL_BATCH_RUNS ||
        !rl_batch_parse_layout(buf, len, &v) || v.nruns == 0)
        return 0;
    struct noted_run *runs = malloc(v.nruns * sizeof *runs);
    if (!runs)
        return RLOG_ENOMEM;
    for (uint32_t i = 0; i < v.nruns; i++) {
        struct rl_batch_run br;
        rl_batch_run(&v, i, &br);
        runs[i] = (struct noted_run){br.producer, br.seq, offset + br.first,
                                     rl_batch_hash_view(&v, br.first, br.n), br.n};
    }
    *out = runs;
    *n = v.nruns;
    return 0;
}

int rl_dedup_note(struct rl_dedup *d, uint64_t index, uint64_t term, uint64_t offset,
                  const void *buf, size_t len)
{
    rl_dedup_truncate(d, index);
    struct noted_run *runs;
    uint32_t n;
    int rv = runs_of(offset, buf, len, &runs, &n);
    if (rv != 0 || n == 0)
        return rv;
    struct rl_dedup_note *notes =
        rl_grow(d->notes, &d->notes_cap, d->nnotes, sizeof *notes, 16);
    if (!notes) {
        free(runs);
        return RLOG_ENOMEM;
    }
    d->notes = notes;
    d->notes[d->nnotes++] = (struct rl_dedup_note){index, term, runs, n};
    return 0;
}

void rl_dedup_truncate(struct rl_dedup *d, uint64_t index)
{
    size_t keep = d->nnotes;
    while (keep > 0 && d->notes[keep - 1].index >= index)
        keep--;
    drop_notes(d, keep, d->nnotes);
    d->nnotes = keep;
}

/* Drops the notes of entries up to index. */
static void drop_through(struct rl_dedup *d, uint64_t index)
{
    size_t k = 0;
    while (k < d->nnotes && d->notes[k].index <= index)
        k++;
    if (k == 0)
        return; /* notes may be NULL: memmove must not see it */
    drop_notes(d, 0, k);
    memmove(d->notes, d->notes + k, (d->nnotes - k) * sizeof *d->notes);
    d->nnotes -= k;
}

bool rl_dedup_reset(struct rl_dedup *d, uint64_t index)
{
    drop_through(d, index);
    if (d->applied_index >= index)
        return false;
    d->applied_index = index;
    return true;
}

int rl_dedup_shown(struct rl_dedup *d, uint64_t index, uint64_t term)
{
    int rv = 0;
    if (d->nnotes > 0 && d->notes[0].index == index && d->notes[0].term == term &&
        index > d->applied_index)
        for (uint32_t i = 0; i < d->notes[0].nruns && rv == 0; i++)
            rv = apply_run(d, index, &d->notes[0].runs[i]);
    drop_through(d, index);
    if (index > d->applied_index)
        d->applied_index = index;
    return rv;
}

int rl_dedup_apply_entry(struct rl_dedup *d, uint64_t index, uint64_t offset, const void *buf,
                         size_t len)
{
    if (index <= d->applied_index)
        return 0;
    struct noted_run *runs;
    uint32_t n;
    int rv = runs_of(offset, buf, len, &runs, &n);
    for (uint32_t i = 0; i < n && rv == 0; i++)
        rv = apply_run(d, index, &runs[i]);
    free(runs);
    if (rv == 0)
        d->applied_index = index;
    return rv;
}

enum rl_dedup_verdict rl_dedup_check(const struct rl_dedup *d, uint64_t producer, uint64_t seq,
                                     uint64_t hash, uint64_t *offset, uint64_t *last_seq)
{
    const struct rl_producer *p = find(d, producer);
    *last_seq = p ? p->last_seq : 0;
    if (!p || seq == p->last_seq + 1)
        return RL_DEDUP_NEW;
    if (seq > p->last_seq)
        return RL_DEDUP_GAP;
    for (unsigned i = p->len; i-- > 0;) {
        const struct run *r = run_at(p, i);
        if (r->seq == seq) {
            *offset = r->offset;
            return r->hash == hash ? RL_DEDUP_DUP : RL_DEDUP_REUSED;
        }
    }
    return RL_DEDUP_TOO_OLD;
}

/* ---- bytes ----------------------------------------------------------------------- */

/* "RLPT", version 1, applied_index, producers; per producer (oldest first)
 * id, last_seq, last_index, runs; per run (oldest first) seq, offset, hash,
 * records; then xxh3-64 of everything before. All u64 little-endian. */
static const unsigned char MAGIC[4] = {'R', 'L', 'P', 'T'};
#define HDR 24u

int rl_dedup_encode(const struct rl_dedup *d, unsigned char **out, size_t *outlen)
{
    size_t len = HDR + 8;
    for (const struct rl_producer *p = d->oldest; p; p = p->newer)
        len += 32 + (size_t)p->len * 32;
    unsigned char *b = malloc(len), *w = b;
    if (!b)
        return RLOG_ENOMEM;
    memcpy(w, MAGIC, 4);
    rl_put32(w + 4, 1);
    rl_put64(w + 8, d->applied_index);
    rl_put64(w + 16, d->n);
    w += HDR;
    for (const struct rl_producer *p = d->oldest; p; p = p->newer) {
        rl_put64(w, p->id);
        rl_put64(w + 8, p->last_seq);
        rl_put64(w + 16, p->last_index);
        rl_put64(w + 24, p->len);
        w += 32;
        for (unsigned i = 0; i < p->len; i++, w += 32) {
            const struct run *r = run_at(p, i);
            rl_put64(w, r->seq);
            rl_put64(w + 8, r->offset);
            rl_put64(w + 16, r->hash);
            rl_put64(w + 24, r->n);
        }
    }
    rl_put64(w, XXH3_64bits(b, len - 8));
    *out = b;
    *outlen = len;
    return 0;
}

static int corrupt(char *errmsg, size_t errlen, const char *why)
{
    snprintf(errmsg, errlen, "%s", why);
    return RLOG_ECORRUPT;
}

int rl_dedup_decode(struct rl_dedup *d, const unsigned char *b, size_t len, char *errmsg,
                    size_t errlen)
{
    clear_table(d);
    d->applied_index = 0;
    if (len < HDR + 8 || memcmp(b, MAGIC, 4) != 0)
        return corrupt(errmsg, errlen, "not a producer table");
    if (rl_get32(b + 4) != 1)
        return corrupt(errmsg, errlen, "producer table of an unknown version");
    if (rl_get64(b + len - 8) != XXH3_64bits(b, len - 8))
        return corrupt(errmsg, errlen, "producer table checksum mismatch");
    uint64_t n = rl_get64(b + 16);
    const unsigned char *r = b + HDR, *end = b + len - 8;
    for (uint64_t k = 0; k < n; k++) {
        if ((size_t)(end - r) < 32)
            goto truncated;
        uint64_t id = rl_get64(r), last_seq = rl_get64(r + 8), last_index = rl_get64(r + 16);
        uint64_t runs = rl_get64(r + 24);
        r += 32;
        if (runs > (size_t)(end - r) / 32)
            goto truncated;
        if (id == 0 || find(d, id)) {
            clear_table(d);
            return corrupt(errmsg, errlen, "producer table names a producer twice, or producer 0");
        }
        struct rl_producer *p = add_producer(d, id);
        if (!p) {
            clear_table(d);
            return RLOG_ENOMEM;
        }
        for (uint64_t i = 0; i < runs; i++, r += 32) {
            struct run run = {rl_get64(r), rl_get64(r + 8), rl_get64(r + 16), (uint32_t)rl_get64(r + 24)};
            if (push_run(d, p, &run) != 0) {
                clear_table(d);
                return RLOG_ENOMEM;
            }
        }
        p->last_seq = last_seq;
        p->last_index = last_index;
    }
    if (r != end)
        goto truncated;
    d->applied_index = rl_get64(b + 8);
    return 0;
truncated:
    clear_table(d);
    return corrupt(errmsg, errlen, "producer table length does not match its contents");
}

uint64_t rl_dedup_digest(const struct rl_dedup *d)
{
    unsigned char *b;
    size_t len;
    if (rl_dedup_encode(d, &b, &len) != 0)
        return 0;
    uint64_t h = rl_get64(b + len - 8);
    free(b);
    return h;
}
