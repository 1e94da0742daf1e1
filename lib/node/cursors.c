#include "node/cursors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "batch/batch.h"
#include "common/bytes.h"
#include "common/grow.h"
#include "liblog.h"

struct rl_cursor {
    uint64_t offset, index;
    struct rl_cursor *hnext, *older, *newer;
    uint32_t len;
    char name[RL_CURSOR_NAME_MAX + 1];
};

struct rl_cursor_note {
    uint64_t index, term, offset;
    uint32_t len;
    char name[RL_CURSOR_NAME_MAX];
};

static size_t bucket_of(const struct rl_cursors *t, const char *name, size_t len)
{
    return (size_t)(XXH3_64bits(name, len) & (t->nbuckets - 1));
}

int rl_cursors_init(struct rl_cursors *t, unsigned max)
{
    memset(t, 0, sizeof *t);
    t->max = max ? max : 1;
    t->nbuckets = 16;
    while (t->nbuckets < 2 * (size_t)t->max && t->nbuckets < (1u << 20))
        t->nbuckets *= 2;
    t->buckets = calloc(t->nbuckets, sizeof *t->buckets);
    return t->buckets ? 0 : RLOG_ENOMEM;
}

static void clear_names(struct rl_cursors *t)
{
    for (struct rl_cursor *c = t->oldest, *next; c; c = next) {
        next = c->newer;
        free(c);
    }
    if (t->buckets)
        memset(t->buckets, 0, t->nbuckets * sizeof *t->buckets);
    t->oldest = t->newest = NULL;
    t->n = 0;
}

void rl_cursors_free(struct rl_cursors *t)
{
    clear_names(t);
    free(t->notes);
    free(t->buckets);
    memset(t, 0, sizeof *t);
}

/* Bytes a name may hold: what a shell argument, a file name or a metric
 * label can carry without quoting. */
static bool name_bytes_ok(const char *name, size_t len)
{
    if (len == 0 || len > RL_CURSOR_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)name[i] <= ' ' || (unsigned char)name[i] > '~')
            return false;
    return true;
}

bool rl_cursor_name_ok(const char *name, char *why, size_t whylen)
{
    if (!name) {
        snprintf(why, whylen, "cursor name is NULL");
        return false;
    }
    size_t len = strnlen(name, RL_CURSOR_NAME_MAX + 1);
    if (len == 0 || len > RL_CURSOR_NAME_MAX) {
        snprintf(why, whylen, "cursor name must be 1..%u bytes, not %s", RL_CURSOR_NAME_MAX,
                 len ? "longer" : "empty");
        return false;
    }
    if (!name_bytes_ok(name, len)) {
        snprintf(why, whylen, "cursor name \"%.64s\" holds a space or a byte that is not "
                 "printable ASCII", name);
        return false;
    }
    return true;
}

static struct rl_cursor *find(const struct rl_cursors *t, const char *name, size_t len)
{
    for (struct rl_cursor *c = t->buckets[bucket_of(t, name, len)]; c; c = c->hnext)
        if (c->len == len && memcmp(c->name, name, len) == 0)
            return c;
    return NULL;
}

static void unlink_order(struct rl_cursors *t, struct rl_cursor *c)
{
    if (c->older)
        c->older->newer = c->newer;
    else
        t->oldest = c->newer;
    if (c->newer)
        c->newer->older = c->older;
    else
        t->newest = c->older;
    c->older = c->newer = NULL;
}

static void link_newest(struct rl_cursors *t, struct rl_cursor *c)
{
    c->older = t->newest;
    if (t->newest)
        t->newest->newer = c;
    else
        t->oldest = c;
    t->newest = c;
}

static void evict(struct rl_cursors *t, struct rl_cursor *c)
{
    struct rl_cursor **pp = &t->buckets[bucket_of(t, c->name, c->len)];
    while (*pp != c)
        pp = &(*pp)->hnext;
    *pp = c->hnext;
    unlink_order(t, c);
    free(c);
    t->n--;
}

int rl_cursors_set(struct rl_cursors *t, uint64_t index, const char *name, size_t len,
                   uint64_t offset)
{
    struct rl_cursor *c = find(t, name, len);
    if (c) {
        unlink_order(t, c);
    } else {
        if (!(c = calloc(1, sizeof *c)))
            return RLOG_ENOMEM;
        while (t->n >= t->max)
            evict(t, t->oldest);
        memcpy(c->name, name, len);
        c->len = (uint32_t)len;
        size_t b = bucket_of(t, name, len);
        c->hnext = t->buckets[b];
        t->buckets[b] = c;
        t->n++;
    }
    c->offset = offset;
    c->index = index;
    link_newest(t, c);
    /* Full with names committed after the gap: whatever was committed
     * before it is evicted on every node too. */
    if (t->gap_index && t->n == t->max && t->oldest->index > t->gap_index)
        t->gap_index = 0;
    return 0;
}

int rl_cursors_lookup(const struct rl_cursors *t, const char *name, size_t len, uint64_t *offset)
{
    const struct rl_cursor *c = find(t, name, len);
    if (c) {
        *offset = c->offset;
        return 0;
    }
    return t->gap_index ? RLOG_ETRIMMED : RLOG_ENOTFOUND;
}

/* The cursor command of a batch payload, if it is one. */
static bool command_of(const void *buf, size_t len, struct rl_cursor_note *note)
{
    struct rl_batch_view v;
    /* The flags byte first: almost no entry is a cursor command. The bytes
     * were verified as the entry was stored or received. */
    if (!buf || len < RL_BATCH_HDR || ((const unsigned char *)buf)[6] != RL_BATCH_CURSOR ||
        !rl_batch_parse_layout(buf, len, &v) || !v.cursor_name ||
        !name_bytes_ok(v.cursor_name, v.cursor_name_len))
        return false;
    note->offset = v.cursor_offset;
    note->len = v.cursor_name_len;
    memcpy(note->name, v.cursor_name, v.cursor_name_len);
    return true;
}

int rl_cursors_note(struct rl_cursors *t, uint64_t index, uint64_t term, const void *buf,
                    size_t len)
{
    rl_cursors_truncate(t, index);
    struct rl_cursor_note note;
    if (!command_of(buf, len, &note))
        return 0;
    struct rl_cursor_note *notes = rl_grow(t->notes, &t->notes_cap, t->nnotes, sizeof *notes, 8);
    if (!notes)
        return RLOG_ENOMEM;
    t->notes = notes;
    note.index = index;
    note.term = term;
    t->notes[t->nnotes++] = note;
    return 0;
}

void rl_cursors_truncate(struct rl_cursors *t, uint64_t index)
{
    while (t->nnotes > 0 && t->notes[t->nnotes - 1].index >= index)
        t->nnotes--;
}

static void notes_through(struct rl_cursors *t, uint64_t index)
{
    size_t k = 0;
    while (k < t->nnotes && t->notes[k].index <= index)
        k++;
    if (k == 0)
        return;
    memmove(t->notes, t->notes + k, (t->nnotes - k) * sizeof *t->notes);
    t->nnotes -= k;
}

bool rl_cursors_reset(struct rl_cursors *t, uint64_t index)
{
    notes_through(t, index);
    if (t->applied_index >= index)
        return false;
    /* What it held may have been moved in the entries it missed. */
    clear_names(t);
    t->gap_index = index;
    t->applied_index = index;
    return true;
}

int rl_cursors_shown(struct rl_cursors *t, uint64_t index, uint64_t term)
{
    int rv = 0;
    if (t->nnotes > 0 && t->notes[0].index == index && t->notes[0].term == term &&
        index > t->applied_index)
        rv = rl_cursors_set(t, index, t->notes[0].name, t->notes[0].len, t->notes[0].offset);
    notes_through(t, index);
    if (index > t->applied_index)
        t->applied_index = index;
    return rv;
}

int rl_cursors_apply_entry(struct rl_cursors *t, uint64_t index, const void *buf, size_t len)
{
    if (index <= t->applied_index)
        return 0;
    struct rl_cursor_note note;
    int rv = command_of(buf, len, &note) ? rl_cursors_set(t, index, note.name, note.len,
                                                          note.offset)
                                         : 0;
    if (rv == 0)
        t->applied_index = index;
    return rv;
}

void rl_cursors_each(const struct rl_cursors *t,
                     void (*fn)(void *arg, const char *name, uint64_t offset, uint64_t index),
                     void *arg)
{
    for (const struct rl_cursor *c = t->oldest; c; c = c->newer)
        fn(arg, c->name, c->offset, c->index);
}

/* ---- bytes ----------------------------------------------------------------------- */

/* "RLCT", version 1, applied_index, gap_index, names; per name (oldest
 * commit first) index, offset, length, the name padded to 8; then xxh3-64
 * of everything before. All u64 little-endian but the version (u32). */
static const unsigned char MAGIC[4] = {'R', 'L', 'C', 'T'};
#define HDR 32u

int rl_cursors_encode(const struct rl_cursors *t, unsigned char **out, size_t *outlen)
{
    size_t len = HDR + 8;
    for (const struct rl_cursor *c = t->oldest; c; c = c->newer)
        len += 24 + rl_pad8(c->len);
    unsigned char *b = calloc(1, len), *w = b;
    if (!b)
        return RLOG_ENOMEM;
    memcpy(w, MAGIC, 4);
    rl_put32(w + 4, 1);
    rl_put64(w + 8, t->applied_index);
    rl_put64(w + 16, t->gap_index);
    rl_put64(w + 24, t->n);
    w += HDR;
    for (const struct rl_cursor *c = t->oldest; c; c = c->newer) {
        rl_put64(w, c->index);
        rl_put64(w + 8, c->offset);
        rl_put64(w + 16, c->len);
        memcpy(w + 24, c->name, c->len);
        w += 24 + rl_pad8(c->len);
    }
    rl_put64(w, XXH3_64bits(b, len - 8));
    *out = b;
    *outlen = len;
    return 0;
}

static int bad(struct rl_cursors *t, char *errmsg, size_t errlen, const char *why)
{
    clear_names(t);
    t->applied_index = t->gap_index = 0;
    snprintf(errmsg, errlen, "%s", why);
    return RLOG_ECORRUPT;
}

int rl_cursors_decode(struct rl_cursors *t, const unsigned char *b, size_t len, char *errmsg,
                      size_t errlen)
{
    clear_names(t);
    t->applied_index = t->gap_index = 0;
    if (len < HDR + 8 || memcmp(b, MAGIC, 4) != 0)
        return bad(t, errmsg, errlen, "not a cursor table");
    if (rl_get32(b + 4) != 1)
        return bad(t, errmsg, errlen, "cursor table of an unknown version");
    if (rl_get64(b + len - 8) != XXH3_64bits(b, len - 8))
        return bad(t, errmsg, errlen, "cursor table checksum mismatch");
    uint64_t n = rl_get64(b + 24), last = 0;
    const unsigned char *r = b + HDR, *end = b + len - 8;
    for (uint64_t k = 0; k < n; k++) {
        if ((size_t)(end - r) < 24)
            return bad(t, errmsg, errlen, "cursor table length does not match its contents");
        uint64_t index = rl_get64(r), offset = rl_get64(r + 8), nlen = rl_get64(r + 16);
        if (nlen > RL_CURSOR_NAME_MAX || rl_pad8(nlen) > (size_t)(end - r) - 24)
            return bad(t, errmsg, errlen, "cursor table length does not match its contents");
        const char *name = (const char *)r + 24;
        if (!name_bytes_ok(name, nlen) || index <= last || find(t, name, nlen))
            return bad(t, errmsg, errlen, "cursor table holds a bad name, a name twice, or "
                       "commits out of log order");
        if (rl_cursors_set(t, index, name, nlen, offset) != 0) {
            clear_names(t);
            return RLOG_ENOMEM;
        }
        last = index;
        r += 24 + rl_pad8(nlen);
    }
    if (r != end)
        return bad(t, errmsg, errlen, "cursor table length does not match its contents");
    /* Set after the names: rl_cursors_set may close a gap it sees filled. */
    t->applied_index = rl_get64(b + 8);
    t->gap_index = rl_get64(b + 16);
    if (t->gap_index && t->n == t->max && t->oldest->index > t->gap_index)
        t->gap_index = 0;
    if (last > t->applied_index || t->gap_index > t->applied_index)
        return bad(t, errmsg, errlen, "cursor table names a commit after its applied index");
    return 0;
}

uint64_t rl_cursors_digest(const struct rl_cursors *t)
{
    unsigned char *b;
    size_t len;
    if (rl_cursors_encode(t, &b, &len) != 0)
        return 0;
    uint64_t h = rl_get64(b + len - 8);
    free(b);
    return h;
}
