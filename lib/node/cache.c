#include "node/cache.h"

#include <stdlib.h>
#include <string.h>

#include "batch/batch.h"
#include "common/bytes.h"
#include "liblog.h"

#define AT(c, i) (&(c)->ring[((c)->head + (i)) % (c)->cap])

int rl_chunk_add(struct rl_chunk *ch, uint64_t offset, uint32_t visible, const void *buf,
                 uint32_t len)
{
    size_t need = ch->len + 16 + (size_t)rl_pad8(len);
    if (need > ch->cap) {
        size_t cap = ch->cap ? ch->cap * 2 : 64 * 1024;
        while (cap < need)
            cap *= 2;
        unsigned char *p = realloc(ch->p, cap);
        if (!p)
            return RLOG_ENOMEM;
        ch->p = p;
        ch->cap = cap;
    }
    unsigned char *at = ch->p + ch->len;
    rl_put64(at, offset);
    rl_put32(at + 8, visible);
    rl_put32(at + 12, len);
    memcpy(at + 16, buf, len);
    memset(at + 16 + len, 0, (size_t)rl_pad8(len) - len);
    ch->len = need;
    return 0;
}

bool rl_chunk_next(const unsigned char *p, size_t len, size_t *pos, struct rl_chunk_entry *e)
{
    if (!p || *pos + 16 > len)
        return false;
    const unsigned char *h = p + *pos;
    e->offset = rl_get64(h);
    e->visible = rl_get32(h + 8);
    e->len = rl_get32(h + 12);
    e->buf = h + 16;
    *pos += 16 + (size_t)rl_pad8(e->len);
    return true;
}

void rl_cache_pool_init(struct rl_cache_pool *p, uint64_t budget, uint64_t floor)
{
    memset(p, 0, sizeof *p);
    pthread_mutex_init(&p->mu, NULL);
    p->budget = budget;
    p->floor = floor;
}

void rl_cache_pool_free(struct rl_cache_pool *p)
{
    pthread_mutex_destroy(&p->mu);
}

uint64_t rl_cache_pool_total(struct rl_cache_pool *p)
{
    return p->total;
}

void rl_cache_init(struct rl_cache *c, uint64_t budget)
{
    memset(c, 0, sizeof *c);
    pthread_mutex_init(&c->mu, NULL);
    c->budget = budget;
}

void rl_cache_join(struct rl_cache *c, struct rl_cache_pool *pool)
{
    pthread_mutex_lock(&pool->mu);
    c->pool = pool;
    c->pool_prev = NULL;
    c->pool_next = pool->members;
    if (pool->members)
        pool->members->pool_prev = c;
    pool->members = c;
    pthread_mutex_unlock(&pool->mu);
}

/* c->bytes changes by delta (under c->mu): so does what the pool sees. */
static void account(struct rl_cache *c, int64_t delta)
{
    c->bytes += (uint64_t)delta;
    if (c->pool) {
        c->held += (uint64_t)delta;
        c->pool->total += (uint64_t)delta;
    }
}

void rl_cache_clear(struct rl_cache *c)
{
    pthread_mutex_lock(&c->mu);
    for (size_t i = 0; i < c->n; i++)
        free(AT(c, i)->data);
    free(c->ring);
    c->ring = NULL;
    c->cap = c->head = c->n = 0;
    account(c, -(int64_t)c->bytes);
    pthread_mutex_unlock(&c->mu);
}

void rl_cache_free(struct rl_cache *c)
{
    struct rl_cache_pool *pool = c->pool;
    if (pool) {
        pthread_mutex_lock(&pool->mu); /* no trim looks at c after this */
        if (c->pool_prev)
            c->pool_prev->pool_next = c->pool_next;
        else
            pool->members = c->pool_next;
        if (c->pool_next)
            c->pool_next->pool_prev = c->pool_prev;
        pthread_mutex_unlock(&pool->mu);
    }
    rl_cache_clear(c);
    pthread_mutex_destroy(&c->mu);
    memset(c, 0, sizeof *c);
}

static void drop_oldest(struct rl_cache *c)
{
    struct rl_cache_entry *e = AT(c, 0);
    account(c, -(int64_t)e->len);
    free(e->data);
    c->head = (c->head + 1) % c->cap;
    c->n--;
}

static void truncate_locked(struct rl_cache *c, uint64_t index)
{
    while (c->n && AT(c, c->n - 1)->index >= index) {
        struct rl_cache_entry *e = AT(c, c->n - 1);
        account(c, -(int64_t)e->len);
        free(e->data);
        c->n--;
    }
}

void rl_cache_truncate(struct rl_cache *c, uint64_t index)
{
    pthread_mutex_lock(&c->mu);
    truncate_locked(c, index);
    pthread_mutex_unlock(&c->mu);
}

/* Evicts, oldest first, from the caches holding the most above the floor
 * until the pool is within its budget or every cache is at its floor. */
static void pool_trim(struct rl_cache_pool *p)
{
    pthread_mutex_lock(&p->mu);
    while (p->total > p->budget) {
        struct rl_cache *victim = NULL;
        uint64_t most = p->floor;
        for (struct rl_cache *c = p->members; c; c = c->pool_next) {
            uint64_t held = c->held;
            if (held > most) {
                most = held;
                victim = c;
            }
        }
        if (!victim)
            break;
        pthread_mutex_lock(&victim->mu);
        bool dropped = victim->n > 0;
        if (dropped)
            drop_oldest(victim);
        pthread_mutex_unlock(&victim->mu);
        if (!dropped)
            break; /* held said otherwise: a put in between; the next trim sees it */
    }
    pthread_mutex_unlock(&p->mu);
}

void rl_cache_put(struct rl_cache *c, uint64_t index, uint64_t offset, uint32_t records,
                  const void *buf, uint32_t len)
{
    /* Copied before taking the lock, so readers never wait on it. */
    unsigned char *data = records && len <= c->budget ? malloc(len ? len : 1) : NULL;
    if (data)
        memcpy(data, buf, len);
    pthread_mutex_lock(&c->mu);
    truncate_locked(c, index); /* a replaced suffix */
    if (!data)
        goto out;
    const struct rl_cache_entry *last = c->n ? AT(c, c->n - 1) : NULL;
    if (last && last->offset + last->records != offset) {
        while (c->n) /* records not contiguous (catch-up after a gap): start over */
            drop_oldest(c);
    }
    while (c->n && c->bytes + len > c->budget)
        drop_oldest(c);
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 1024;
        struct rl_cache_entry *r = malloc(cap * sizeof *r);
        if (!r) {
            free(data);
            goto out;
        }
        for (size_t i = 0; i < c->n; i++)
            r[i] = *AT(c, i);
        free(c->ring);
        c->ring = r;
        c->cap = cap;
        c->head = 0;
    }
    *AT(c, c->n) = (struct rl_cache_entry){index, offset, records, len, data};
    c->n++;
    account(c, len);
out:
    pthread_mutex_unlock(&c->mu);
    if (c->pool && c->pool->total > c->pool->budget)
        pool_trim(c->pool);
}

/* Position of the first entry ending after record `offset`. Under the lock. */
static size_t find_pos(const struct rl_cache *c, uint64_t offset)
{
    size_t lo = 0, hi = c->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct rl_cache_entry *e = AT(c, mid);
        if (e->offset + e->records <= offset)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

int rl_cache_get(struct rl_cache *c, uint64_t offset, struct rl_cache_entry *copy)
{
    int rv = 1;
    pthread_mutex_lock(&c->mu);
    size_t i = find_pos(c, offset);
    const struct rl_cache_entry *e = i < c->n && AT(c, i)->offset <= offset ? AT(c, i) : NULL;
    if (e) {
        *copy = *e;
        copy->data = malloc(e->len ? e->len : 1);
        rv = copy->data ? 0 : RLOG_ENOMEM;
        if (copy->data)
            memcpy(copy->data, e->data, e->len);
    }
    if (rv == 0)
        c->hits++;
    else if (rv == 1)
        c->misses++;
    pthread_mutex_unlock(&c->mu);
    return rv;
}

size_t rl_cache_copy(struct rl_cache *c, uint64_t offset, uint64_t visible, size_t budget,
                     struct rl_chunk *out)
{
    size_t n = 0;
    pthread_mutex_lock(&c->mu);
    for (size_t i = find_pos(c, offset); i < c->n && out->len < budget; i++) {
        const struct rl_cache_entry *e = AT(c, i);
        if (e->offset > offset || offset >= visible)
            break;
        uint64_t shown = visible - e->offset;
        uint32_t count = (uint32_t)(shown < e->records ? shown : e->records);
        if (rl_chunk_add(out, e->offset, count, e->data, e->len) != 0)
            break;
        n++;
        c->hits++;
        offset = e->offset + count;
        if (count < e->records)
            break; /* the rest is not committed yet */
    }
    pthread_mutex_unlock(&c->mu);
    return n;
}

int rl_cache_read(struct rl_cache *c, uint64_t offset, uint64_t visible, void **buf, size_t *len)
{
    int rv = 1;
    pthread_mutex_lock(&c->mu);
    size_t i = find_pos(c, offset);
    const struct rl_cache_entry *e = i < c->n ? AT(c, i) : NULL;
    struct rl_batch_view v;
    /* Cached entries were verified on their way in (built here, or a
     * checked frame): a read walks the layout, never hashes the batch. */
    if (e && e->offset <= offset && offset < visible && rl_batch_parse_layout(e->data, e->len, &v) &&
        v.count == e->records) {
        const void *rec;
        size_t n;
        rl_batch_record(&v, (uint32_t)(offset - e->offset), &rec, &n);
        void *copy = malloc(n ? n : 1);
        rv = copy ? 0 : RLOG_ENOMEM; /* *buf, *len untouched on failure */
        if (copy) {
            memcpy(copy, rec, n);
            *buf = copy;
            *len = n;
            c->hits++;
        }
    }
    pthread_mutex_unlock(&c->mu);
    return rv;
}

void rl_cache_note_miss(struct rl_cache *c)
{
    pthread_mutex_lock(&c->mu);
    c->misses++;
    pthread_mutex_unlock(&c->mu);
}

void rl_cache_stats(struct rl_cache *c, uint64_t *bytes, uint64_t *hits, uint64_t *misses)
{
    pthread_mutex_lock(&c->mu);
    *bytes = c->bytes;
    *hits = c->hits;
    *misses = c->misses;
    pthread_mutex_unlock(&c->mu);
}
