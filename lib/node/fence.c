#include "node/fence.h"

#include <stdlib.h>
#include <string.h>

#include "common/grow.h"
#include "liblog.h"

void rl_fence_init(struct rl_fence *f, uint64_t visible_index, uint64_t visible_offset)
{
    memset(f, 0, sizeof *f);
    f->visible_index = visible_index;
    f->visible_offset = visible_offset;
}

void rl_fence_free(struct rl_fence *f)
{
    free(f->tail);
    memset(f, 0, sizeof *f);
}

void rl_fence_truncate(struct rl_fence *f, uint64_t index)
{
    while (f->n && f->tail[f->n - 1].index >= index)
        f->n--;
}

int rl_fence_push(struct rl_fence *f, const struct rl_fence_entry *e)
{
    rl_fence_truncate(f, e->index);
    if (e->index <= f->visible_index)
        return 0; /* already shown (a replayed append of the same entry) */
    struct rl_fence_entry *t = rl_grow(f->tail, &f->cap, f->n, sizeof *t, 256);
    if (!t)
        return RLOG_ENOMEM;
    f->tail = t;
    f->tail[f->n++] = *e;
    return 0;
}

/* How many entries of the tail rl_fence_advance would pass. */
static size_t reach(const struct rl_fence *f, uint64_t commit, uint64_t term, uint64_t durable)
{
    uint64_t limit = commit < durable ? commit : durable;
    size_t k = f->n;
    while (k > 0 && (f->tail[k - 1].index > limit || f->tail[k - 1].term != term))
        k--;
    return k;
}

uint64_t rl_fence_reach(const struct rl_fence *f, uint64_t commit, uint64_t term,
                        uint64_t durable)
{
    size_t k = reach(f, commit, term, durable);
    return k ? f->tail[k - 1].index : 0;
}

size_t rl_fence_advance(struct rl_fence *f, uint64_t commit, uint64_t term, uint64_t durable,
                        void (*passed)(void *arg, const struct rl_fence_entry *e), void *arg)
{
    size_t k = reach(f, commit, term, durable);
    for (size_t i = 0; i < k; i++) {
        const struct rl_fence_entry *e = &f->tail[i];
        f->visible_index = e->index;
        f->visible_offset = e->offset + e->records;
        if (passed)
            passed(arg, e);
    }
    if (k) {
        memmove(f->tail, f->tail + k, (f->n - k) * sizeof *f->tail);
        f->n -= k;
    }
    return k;
}

size_t rl_fence_follow(struct rl_fence *f, uint64_t durable,
                       void (*passed)(void *arg, const struct rl_fence_entry *e), void *arg)
{
    if (f->notice_index <= f->visible_index)
        return 0;
    return rl_fence_advance(f, f->notice_index, f->notice_term, durable, passed, arg);
}

size_t rl_fence_notice(struct rl_fence *f, uint64_t index, uint64_t term, uint64_t durable,
                       void (*passed)(void *arg, const struct rl_fence_entry *e), void *arg)
{
    if (term > f->notice_term || (term == f->notice_term && index > f->notice_index)) {
        f->notice_index = index;
        f->notice_term = term;
    }
    return rl_fence_follow(f, durable, passed, arg);
}
