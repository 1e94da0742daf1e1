#include "node/cache.h"

#include <stdlib.h>
#include <string.h>

#define AT(c, i) (&(c)->ring[((c)->head + (i)) % (c)->cap])

void rl_cache_init(struct rl_cache *c, uint64_t budget)
{
    memset(c, 0, sizeof *c);
    c->budget = budget;
}

void rl_cache_free(struct rl_cache *c)
{
    for (size_t i = 0; i < c->n; i++)
        free(AT(c, i)->data);
    free(c->ring);
    memset(c, 0, sizeof *c);
}

static void drop_oldest(struct rl_cache *c)
{
    struct rl_cache_entry *e = AT(c, 0);
    c->bytes -= e->len;
    free(e->data);
    c->head = (c->head + 1) % c->cap;
    c->n--;
}

void rl_cache_truncate(struct rl_cache *c, uint64_t index)
{
    while (c->n && AT(c, c->n - 1)->index >= index) {
        struct rl_cache_entry *e = AT(c, c->n - 1);
        c->bytes -= e->len;
        free(e->data);
        c->n--;
    }
}

void rl_cache_put(struct rl_cache *c, uint64_t index, uint64_t offset, uint32_t records,
                  const void *buf, uint32_t len)
{
    rl_cache_truncate(c, index); /* a replaced suffix */
    if (records == 0 || len > c->budget)
        return;
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
        if (!r)
            return;
        for (size_t i = 0; i < c->n; i++)
            r[i] = *AT(c, i);
        free(c->ring);
        c->ring = r;
        c->cap = cap;
        c->head = 0;
    }
    unsigned char *data = malloc(len ? len : 1);
    if (!data)
        return;
    memcpy(data, buf, len);
    *AT(c, c->n) = (struct rl_cache_entry){index, offset, records, len, data};
    c->n++;
    c->bytes += len;
}

const struct rl_cache_entry *rl_cache_find(struct rl_cache *c, uint64_t offset)
{
    size_t lo = 0, hi = c->n;
    while (lo < hi) { /* first entry ending after offset */
        size_t mid = lo + (hi - lo) / 2;
        const struct rl_cache_entry *e = AT(c, mid);
        if (e->offset + e->records <= offset)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < c->n && AT(c, lo)->offset <= offset) {
        c->hits++;
        return AT(c, lo);
    }
    c->misses++;
    return NULL;
}
