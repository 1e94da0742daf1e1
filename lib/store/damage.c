/*
 * damage — the store's table of damaged ranges (struct rl_damage, store.h
 * "Damage"): ranges are added where a scan or a read finds them
 * (segment.c), looked up by reads and requests, listed for the node's
 * repair, and forgotten when they leave the log or are repaired.
 */
#include <string.h>

#include "common/grow.h"
#include "store/internal.h"

int rl_store_add_damage(struct rl_store *s, const struct rl_damage *d)
{
    size_t at = s->ndamage;
    for (size_t i = 0; i < s->ndamage; i++) {
        if (s->damage[i].first_index == d->first_index)
            return 0; /* known already */
        if (s->damage[i].first_index > d->first_index && at == s->ndamage)
            at = i;
    }
    struct rl_damage *p = rl_grow(s->damage, &s->damagecap, s->ndamage, sizeof *p, 4);
    if (!p)
        return RLOG_ENOMEM;
    s->damage = p;
    memmove(p + at + 1, p + at, (s->ndamage - at) * sizeof *p);
    p[at] = *d;
    s->ndamage++;
    s->stats.damaged_ranges++;
    return 0;
}

const struct rl_damage *rl_store_damage_at(const struct rl_store *s, uint64_t key, bool by_offset)
{
    for (size_t i = 0; i < s->ndamage; i++) {
        const struct rl_damage *d = &s->damage[i];
        if (by_offset ? key >= d->first_offset && key < d->end_offset
                      : key >= d->first_index && key <= d->last_index)
            return d;
    }
    return NULL;
}

void rl_store_prune_damage(struct rl_store *s)
{
    size_t k = 0;
    for (size_t i = 0; i < s->ndamage; i++) {
        struct rl_damage *d = &s->damage[i];
        bool kept = false;
        for (size_t j = 0; j < s->nsegs && !kept; j++)
            kept = s->segs[j]->seq == d->seq;
        if (kept && d->last_index >= s->first_index && d->first_index <= s->last_index)
            s->damage[k++] = *d;
    }
    s->ndamage = k;
}

size_t rl_store_damaged(const struct rl_store *s, struct rl_store_damage *out, size_t max)
{
    for (size_t i = 0; i < s->ndamage && i < max; i++) {
        const struct rl_damage *d = &s->damage[i];
        bool sealed = false;
        for (size_t j = 0; j + 1 < s->nsegs; j++)
            sealed |= s->segs[j]->seq == d->seq;
        out[i] = (struct rl_store_damage){.seq = d->seq, .first_index = d->first_index,
                                          .last_index = d->last_index,
                                          .first_offset = d->first_offset,
                                          .end_offset = d->end_offset, .sealed = sealed,
                                          .repairing = d->repairing};
    }
    return s->ndamage;
}

uint64_t rl_store_unreadable(const struct rl_store *s)
{
    uint64_t n = 0;
    for (size_t i = 0; i < s->ndamage; i++)
        n += s->damage[i].last_index - s->damage[i].first_index + 1;
    return n;
}
