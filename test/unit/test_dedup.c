/*
 * The pieces of idempotent producers that need no network (issue 12):
 * the runs table of a batch (lib/batch) and the replicated producer table
 * (lib/node/dedup). Everything here is pure: batches are built, sealed and
 * parsed in memory, and tables are fed entries directly, as the commit
 * fence (note/shown) or the replay at open (apply_entry) would.
 */
#include <check.h>
#include <raft.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "batch/batch.h"
#include "common/bytes.h"
#include "liblog.h"
#include "node/dedup.h"

/* ---- helpers ---------------------------------------------------------------------- */

/* A run of `n` records starting at record `first` of a batch. */
struct spec_run {
    uint64_t producer, seq;
    uint32_t first, n;
};

/* Record k of a test batch: its bytes depend on `tag` and k, some are
 * empty, lengths vary. */
static size_t rec_of(unsigned tag, uint32_t k, char *buf, size_t cap)
{
    if (k % 5 == 3)
        return 0;
    int n = snprintf(buf, cap, "r%u.%u%s", tag, k, k % 3 == 0 ? "-longer-tail" : "");
    return (size_t)n;
}

/* A sealed batch of `count` records (rec_of(tag, k)) with the given runs
 * (ascending, not overlapping). Free with raft_free. */
static unsigned char *make_batch(unsigned tag, uint32_t count, const struct spec_run *runs,
                                 uint32_t nruns, size_t *len)
{
    struct rl_batch_builder b;
    rl_batch_builder_init(&b);
    uint32_t r = 0;
    for (uint32_t k = 0; k < count; k++) {
        char rec[64];
        size_t l = rec_of(tag, k, rec, sizeof rec);
        ck_assert_int_eq(rl_batch_add(&b, rec, l), 0);
        if (r < nruns && runs[r].first + runs[r].n == k + 1) {
            ck_assert_int_eq(rl_batch_add_run(&b, runs[r].producer, runs[r].seq, runs[r].n), 0);
            r++;
        }
    }
    ck_assert_uint_eq(r, nruns);
    unsigned char *buf = rl_batch_seal(&b, 1234567, len);
    ck_assert_ptr_nonnull(buf);
    rl_batch_builder_free(&b);
    return buf;
}

/* The hash of records first..first+n-1 of a test batch, in the op form. */
static uint64_t hash_of(unsigned tag, uint32_t first, uint32_t n)
{
    char *data = malloc((size_t)n * 64 + 1);
    size_t *lens = malloc(((size_t)n + 1) * sizeof *lens), bytes = 0;
    for (uint32_t k = 0; k < n; k++) {
        lens[k] = rec_of(tag, first + k, data + bytes, 64);
        bytes += lens[k];
    }
    uint64_t h = rl_batch_hash_lens(data, bytes, lens, n);
    free(data);
    free(lens);
    return h;
}

/* Recomputes a batch's checksum after a test changed its bytes. */
static void reseal(unsigned char *buf, size_t len)
{
    rl_put64(buf + 24,
             XXH3_64bits_withSeed(buf + RL_BATCH_HDR, len - RL_BATCH_HDR, XXH3_64bits(buf, 24)));
}

/* Byte address of run i's field at `field` (0 producer, 8 seq, 16 first,
 * 20 n) in a sealed batch with nruns runs. */
static unsigned char *run_field(unsigned char *buf, size_t len, uint32_t nruns, uint32_t i,
                                size_t field)
{
    size_t at = len - rl_batch_runs_bytes(nruns);
    return buf + at + 8 + (size_t)i * RL_BATCH_RUN_BYTES + field;
}

/* ---- batch runs ------------------------------------------------------------------- */

static const struct spec_run RUNS3[] = {{7, 3, 0, 2}, {9, 1, 3, 2}, {7, 4, 5, 1}};

START_TEST(test_runs_roundtrip)
{
    size_t len;
    unsigned char *buf = make_batch(1, 8, RUNS3, 3, &len);
    struct rl_batch_view v;
    ck_assert(rl_batch_parse(buf, len, &v));
    ck_assert_uint_eq(v.count, 8);
    ck_assert_uint_eq(v.nruns, 3);
    ck_assert_ptr_nonnull(v.runs);
    for (uint32_t i = 0; i < 3; i++) {
        struct rl_batch_run r;
        rl_batch_run(&v, i, &r);
        ck_assert_uint_eq(r.producer, RUNS3[i].producer);
        ck_assert_uint_eq(r.seq, RUNS3[i].seq);
        ck_assert_uint_eq(r.first, RUNS3[i].first);
        ck_assert_uint_eq(r.n, RUNS3[i].n);
    }
    for (uint32_t k = 0; k < 8; k++) {
        char want[64];
        size_t wl = rec_of(1, k, want, sizeof want);
        const void *rec;
        size_t rl;
        rl_batch_record(&v, k, &rec, &rl);
        ck_assert_uint_eq(rl, wl);
        if (wl)
            ck_assert_mem_eq(rec, want, wl);
    }
    raft_free(buf);

    /* Without runs: no table, flags 0. */
    buf = make_batch(1, 4, NULL, 0, &len);
    ck_assert(rl_batch_parse(buf, len, &v));
    ck_assert_uint_eq(v.nruns, 0);
    ck_assert_ptr_null(v.runs);
    ck_assert_uint_eq(buf[6], 0);
    raft_free(buf);
}
END_TEST

/* Each forged runs table, resealed with a valid checksum, is refused; an
 * unchanged one resealed is accepted (the helper is right). */
START_TEST(test_runs_parse_rejects)
{
    struct rl_batch_view v;
    size_t len;
    unsigned char *orig = make_batch(2, 8, RUNS3, 3, &len);
    unsigned char *buf = malloc(len);

    struct {
        const char *what;
        uint32_t run;
        size_t field;
        int width; /* 8 or 4 bytes, or 0 for the table header */
        uint64_t value;
    } cases[] = {
        {"producer 0", 1, 0, 8, 0},
        {"seq 0", 0, 8, 8, 0},
        {"n 0", 2, 20, 4, 0},
        {"overlapping (run 1 starts inside run 0)", 1, 16, 4, 1},
        {"out of order (run 2 before run 1)", 2, 16, 4, 2},
        {"out of range (run 2 past the count)", 2, 16, 4, 8},
        {"out of range (run 2 n past the count)", 2, 20, 4, 4},
        {"count too small", 0, 0, 0, 2},
        {"count too large", 0, 0, 0, 4},
        {"count 0", 0, 0, 0, 0},
        {"reserved word", 0, 4, 0, 1},
    };
    memcpy(buf, orig, len);
    reseal(buf, len);
    ck_assert(rl_batch_parse(buf, len, &v));
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        memcpy(buf, orig, len);
        unsigned char *p;
        if (cases[c].width == 0)
            p = buf + len - rl_batch_runs_bytes(3) + cases[c].field;
        else
            p = run_field(buf, len, 3, cases[c].run, cases[c].field);
        if (cases[c].width == 8)
            rl_put64(p, cases[c].value);
        else
            rl_put32(p, (uint32_t)cases[c].value);
        reseal(buf, len);
        ck_assert_msg(!rl_batch_parse(buf, len, &v), "accepted a runs table with %s",
                      cases[c].what);
    }
    /* A flipped byte anywhere (header, data, ends, runs) breaks the checksum. */
    size_t at[] = {9, RL_BATCH_HDR + 1, len - rl_batch_runs_bytes(3) - 4,
                   (size_t)(run_field(buf, len, 3, 1, 8) - buf), len - 1};
    for (size_t i = 0; i < sizeof at / sizeof at[0]; i++) {
        memcpy(buf, orig, len);
        buf[at[i]] ^= 0x10;
        ck_assert_msg(!rl_batch_parse(buf, len, &v), "accepted a flipped byte at %zu", at[i]);
    }
    /* Cut short: the runs table is part of the length. */
    memcpy(buf, orig, len);
    ck_assert(!rl_batch_parse(buf, len - RL_BATCH_RUN_BYTES, &v));
    /* Flags say runs, but the table is missing. */
    unsigned char *plain;
    size_t plen;
    plain = make_batch(2, 8, NULL, 0, &plen);
    plain[6] = RL_BATCH_RUNS;
    reseal(plain, plen);
    ck_assert(!rl_batch_parse(plain, plen, &v));
    raft_free(plain);
    free(buf);
    raft_free(orig);
}
END_TEST

/* The op form (contiguous bytes + lengths) and the view form (a parsed
 * batch) hash the same records the same, wherever the run starts and
 * across the 64-length chunks. */
START_TEST(test_hash_forms_agree)
{
    uint32_t sizes[] = {1, 2, 5, 63, 64, 65, 128, 129, 200};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        uint32_t n = sizes[s];
        for (uint32_t first = 0; first <= 3; first += 3) {
            uint32_t count = first + n + 2;
            struct spec_run run = {5, 1, first, n};
            size_t len;
            unsigned char *buf = make_batch(3, count, &run, 1, &len);
            struct rl_batch_view v;
            ck_assert(rl_batch_parse(buf, len, &v));
            uint64_t hv = rl_batch_hash_view(&v, first, n);
            uint64_t hl = hash_of(3, first, n);
            ck_assert_msg(hv == hl, "%u records from %u: view %016llx, lens %016llx", n, first,
                          (unsigned long long)hv, (unsigned long long)hl);
            /* A different set of records hashes differently. */
            ck_assert_msg(rl_batch_hash_view(&v, first + 1, n) != hl, "shifted run, same hash");
            raft_free(buf);
        }
    }
    /* Only empty records. */
    size_t lens0[3] = {0, 0, 0};
    struct rl_batch_builder b;
    rl_batch_builder_init(&b);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(rl_batch_add(&b, NULL, 0), 0);
    size_t len;
    unsigned char *buf = rl_batch_seal(&b, 1, &len);
    rl_batch_builder_free(&b);
    struct rl_batch_view v;
    ck_assert(rl_batch_parse(buf, len, &v));
    ck_assert_uint_eq(rl_batch_hash_view(&v, 0, 3), rl_batch_hash_lens("", 0, lens0, 3));
    ck_assert_uint_ne(rl_batch_hash_view(&v, 0, 2), rl_batch_hash_lens("", 0, lens0, 3));
    raft_free(buf);
}
END_TEST

/* The same bytes split into records differently are different calls. */
START_TEST(test_hash_splits_differ)
{
    const char *bytes = "abcdefgh";
    size_t splits[][4] = {{8}, {4, 4}, {3, 5}, {5, 3}, {8, 0}, {0, 8}, {1, 7}, {4, 0, 4}};
    uint32_t ns[] = {1, 2, 2, 2, 2, 2, 2, 3};
    size_t nsplits = sizeof ns / sizeof ns[0];
    uint64_t h[8];
    for (size_t i = 0; i < nsplits; i++) {
        h[i] = rl_batch_hash_lens(bytes, 8, splits[i], ns[i]);
        /* and the view form agrees on each split */
        struct rl_batch_builder b;
        rl_batch_builder_init(&b);
        size_t at = 0;
        for (uint32_t k = 0; k < ns[i]; k++) {
            ck_assert_int_eq(rl_batch_add(&b, bytes + at, splits[i][k]), 0);
            at += splits[i][k];
        }
        size_t len;
        unsigned char *buf = rl_batch_seal(&b, 1, &len);
        rl_batch_builder_free(&b);
        struct rl_batch_view v;
        ck_assert(rl_batch_parse(buf, len, &v));
        ck_assert_uint_eq(rl_batch_hash_view(&v, 0, ns[i]), h[i]);
        raft_free(buf);
    }
    for (size_t i = 0; i < nsplits; i++)
        for (size_t j = i + 1; j < nsplits; j++)
            ck_assert_msg(h[i] != h[j], "splits %zu and %zu hash the same", i, j);
    /* 64 one-byte records vs 65 records (the last empty): chunking keeps them apart. */
    char ones[130];
    memset(ones, 'x', sizeof ones);
    size_t l1[130], l2[130];
    for (int i = 0; i < 130; i++)
        l1[i] = l2[i] = 1;
    l2[64] = 0;
    ck_assert_uint_ne(rl_batch_hash_lens(ones, 64, l1, 64), rl_batch_hash_lens(ones, 64, l2, 65));
    /* 130 records: a different length in the third chunk matters. */
    l2[64] = 1;
    l2[128] = 2;
    l2[129] = 0;
    ck_assert_uint_ne(rl_batch_hash_lens(ones, 130, l1, 130), rl_batch_hash_lens(ones, 130, l2, 130));
}
END_TEST

/* ---- the producer table ----------------------------------------------------------- */

/* Feeds one committed entry at `index` (records start at `offset`) holding
 * one run: `n` records of `tag` for (producer, seq). */
static void feed1(struct rl_dedup *d, uint64_t index, uint64_t offset, uint64_t producer,
                  uint64_t seq, unsigned tag, uint32_t n)
{
    struct spec_run r = {producer, seq, 0, n};
    size_t len;
    unsigned char *buf = make_batch(tag, n, &r, 1, &len);
    ck_assert_int_eq(rl_dedup_apply_entry(d, index, offset, buf, len), 0);
    raft_free(buf);
}

static enum rl_dedup_verdict check(const struct rl_dedup *d, uint64_t producer, uint64_t seq,
                                   uint64_t hash, uint64_t *offset, uint64_t *last)
{
    uint64_t o = UINT64_MAX, l = UINT64_MAX;
    enum rl_dedup_verdict v = rl_dedup_check(d, producer, seq, hash, &o, &l);
    if (offset)
        *offset = o;
    if (last)
        *last = l;
    return v;
}

START_TEST(test_verdicts)
{
    struct rl_dedup d;
    ck_assert_int_eq(rl_dedup_init(&d, 16, 8), 0);
    uint64_t off, last;
    /* Unknown producer: any sequence is new. */
    ck_assert_int_eq(check(&d, 42, 1, 0, NULL, &last), RL_DEDUP_NEW);
    ck_assert_uint_eq(last, 0);
    ck_assert_int_eq(check(&d, 42, 77, 0, NULL, &last), RL_DEDUP_NEW);

    /* Producer 42 starts at seq 10 (any start is allowed). */
    feed1(&d, 1, 0, 42, 10, 1, 3);   /* offsets 0..2 */
    feed1(&d, 2, 3, 42, 11, 2, 2);   /* offsets 3..4 */
    ck_assert_uint_eq(d.applied_index, 2);
    ck_assert_int_eq(check(&d, 42, 12, 0, NULL, &last), RL_DEDUP_NEW);
    ck_assert_uint_eq(last, 11);
    ck_assert_int_eq(check(&d, 42, 10, hash_of(1, 0, 3), &off, &last), RL_DEDUP_DUP);
    ck_assert_uint_eq(off, 0);
    ck_assert_int_eq(check(&d, 42, 11, hash_of(2, 0, 2), &off, NULL), RL_DEDUP_DUP);
    ck_assert_uint_eq(off, 3);
    ck_assert_int_eq(check(&d, 42, 11, hash_of(1, 0, 2), NULL, NULL), RL_DEDUP_REUSED);
    ck_assert_int_eq(check(&d, 42, 10, hash_of(1, 0, 2), NULL, NULL), RL_DEDUP_REUSED);
    ck_assert_int_eq(check(&d, 42, 13, 0, NULL, &last), RL_DEDUP_GAP);
    ck_assert_uint_eq(last, 11);
    ck_assert_int_eq(check(&d, 42, 1000, 0, NULL, NULL), RL_DEDUP_GAP);
    /* Below its first sequence: not in the window, so too old. */
    ck_assert_int_eq(check(&d, 42, 9, 0, NULL, &last), RL_DEDUP_TOO_OLD);
    ck_assert_uint_eq(last, 11);
    /* Other producers are independent. */
    ck_assert_int_eq(check(&d, 43, 10, hash_of(1, 0, 3), NULL, &last), RL_DEDUP_NEW);
    ck_assert_uint_eq(last, 0);

    /* Several runs in one entry, after other records: offsets are the
     * entry's offset plus the run's first record. */
    struct spec_run runs[] = {{42, 12, 1, 2}, {50, 1, 4, 3}};
    size_t len;
    unsigned char *buf = make_batch(9, 8, runs, 2, &len);
    ck_assert_int_eq(rl_dedup_apply_entry(&d, 3, 100, buf, len), 0);
    raft_free(buf);
    ck_assert_int_eq(check(&d, 42, 12, hash_of(9, 1, 2), &off, NULL), RL_DEDUP_DUP);
    ck_assert_uint_eq(off, 101);
    ck_assert_int_eq(check(&d, 50, 1, hash_of(9, 4, 3), &off, NULL), RL_DEDUP_DUP);
    ck_assert_uint_eq(off, 104);
    ck_assert_int_eq(check(&d, 50, 2, 0, NULL, &last), RL_DEDUP_NEW);
    ck_assert_uint_eq(last, 1);
    /* A committed sequence at or below the last is ignored (never let
     * through by a leader; a replay may feed it). */
    feed1(&d, 4, 200, 42, 11, 7, 1);
    ck_assert_int_eq(check(&d, 42, 11, hash_of(2, 0, 2), &off, &last), RL_DEDUP_DUP);
    ck_assert_uint_eq(off, 3);
    ck_assert_uint_eq(last, 12);
    /* Entries that are not batches, or batches without runs, change nothing but applied_index. */
    uint64_t before = rl_dedup_digest(&d);
    buf = make_batch(1, 3, NULL, 0, &len);
    ck_assert_int_eq(rl_dedup_apply_entry(&d, 5, 300, buf, len), 0);
    raft_free(buf);
    ck_assert_int_eq(rl_dedup_apply_entry(&d, 6, 303, "not a batch", 11), 0);
    ck_assert_int_eq(rl_dedup_apply_entry(&d, 7, 303, NULL, 0), 0);
    ck_assert_uint_eq(d.applied_index, 7);
    ck_assert_uint_eq(d.n, 2);
    ck_assert_uint_ne(rl_dedup_digest(&d), before); /* the digest covers applied_index */
    rl_dedup_free(&d);
}
END_TEST

/* The last `window` sequences of a producer are remembered, no more. */
START_TEST(test_window_eviction)
{
    unsigned windows[] = {1, 4, 5, 9};
    for (size_t w = 0; w < sizeof windows / sizeof windows[0]; w++) {
        unsigned window = windows[w];
        struct rl_dedup d;
        ck_assert_int_eq(rl_dedup_init(&d, 4, window), 0);
        uint64_t total = 23;
        for (uint64_t s = 1; s <= total; s++) {
            feed1(&d, 2 * s - 1, 10 * s, 7, s, (unsigned)s, 2);
            feed1(&d, 2 * s, 10 * s + 2, 8, s, 0, 1); /* another producer interleaved */
        }
        for (uint64_t s = 1; s <= total; s++) {
            uint64_t off;
            enum rl_dedup_verdict v = check(&d, 7, s, hash_of((unsigned)s, 0, 2), &off, NULL);
            if (s + window > total) {
                ck_assert_msg(v == RL_DEDUP_DUP, "window %u: seq %llu not remembered (%d)", window,
                              (unsigned long long)s, v);
                ck_assert_uint_eq(off, 10 * s);
            } else {
                ck_assert_msg(v == RL_DEDUP_TOO_OLD, "window %u: seq %llu still remembered (%d)",
                              window, (unsigned long long)s, v);
            }
        }
        ck_assert_int_eq(check(&d, 7, total + 1, 0, NULL, NULL), RL_DEDUP_NEW);
        rl_dedup_free(&d);
    }
}
END_TEST

/* Producers are forgotten least recent in log order first. */
START_TEST(test_producer_eviction)
{
    struct rl_dedup d;
    ck_assert_int_eq(rl_dedup_init(&d, 3, 4), 0);
    feed1(&d, 1, 0, 100, 1, 1, 1); /* A */
    feed1(&d, 2, 1, 200, 1, 2, 1); /* B */
    feed1(&d, 3, 2, 300, 1, 3, 1); /* C */
    feed1(&d, 4, 3, 100, 2, 4, 1); /* A again: now B is the least recent */
    feed1(&d, 5, 4, 400, 1, 5, 1); /* D: B goes */
    ck_assert_uint_eq(d.n, 3);
    uint64_t last;
    ck_assert_int_eq(check(&d, 200, 1, hash_of(2, 0, 1), NULL, &last), RL_DEDUP_NEW);
    ck_assert_uint_eq(last, 0);
    ck_assert_int_eq(check(&d, 100, 2, hash_of(4, 0, 1), NULL, NULL), RL_DEDUP_DUP);
    ck_assert_int_eq(check(&d, 300, 1, hash_of(3, 0, 1), NULL, NULL), RL_DEDUP_DUP);
    ck_assert_int_eq(check(&d, 400, 1, hash_of(5, 0, 1), NULL, NULL), RL_DEDUP_DUP);
    /* Next: C is the least recent. A replayed old sequence of C does not
     * refresh it. */
    feed1(&d, 6, 5, 300, 1, 3, 1);
    feed1(&d, 7, 6, 500, 1, 6, 1);
    ck_assert_int_eq(check(&d, 300, 2, 0, NULL, &last), RL_DEDUP_NEW);
    ck_assert_uint_eq(last, 0);
    ck_assert_int_eq(check(&d, 100, 2, hash_of(4, 0, 1), NULL, NULL), RL_DEDUP_DUP);
    /* Several producers in one entry: their order in the entry is the log order. */
    struct spec_run runs[] = {{600, 1, 0, 1}, {700, 1, 1, 1}, {800, 1, 2, 1}};
    size_t len;
    unsigned char *buf = make_batch(7, 3, runs, 3, &len);
    ck_assert_int_eq(rl_dedup_apply_entry(&d, 8, 7, buf, len), 0);
    raft_free(buf);
    ck_assert_uint_eq(d.n, 3);
    ck_assert_int_eq(check(&d, 600, 1, hash_of(7, 0, 1), NULL, NULL), RL_DEDUP_DUP);
    ck_assert_int_eq(check(&d, 800, 1, hash_of(7, 2, 1), NULL, NULL), RL_DEDUP_DUP);
    ck_assert_int_eq(check(&d, 100, 3, 0, NULL, &last), RL_DEDUP_NEW);
    ck_assert_uint_eq(last, 0);
    rl_dedup_free(&d);
}
END_TEST

/* A log of `n` entries over `np` producers, each entry with 1..3 runs
 * (random but fixed by `seed`), as sealed batches. */
struct tlog {
    unsigned char *buf[64];
    size_t len[64];
    uint64_t offset[64];
    unsigned n;
};

static void tlog_make(struct tlog *l, unsigned n, unsigned np, unsigned seed, const uint64_t *ids)
{
    uint64_t next[16] = {0};
    uint64_t off = 0;
    uint32_t x = seed * 2654435761u + 1;
    l->n = n;
    for (unsigned e = 0; e < n; e++) {
        x = x * 1103515245u + 12345u;
        uint32_t nruns = 1 + (x >> 16) % 3;
        struct spec_run runs[3];
        uint32_t at = (x >> 8) % 2; /* sometimes a record without a producer first */
        for (uint32_t r = 0; r < nruns; r++) {
            x = x * 1103515245u + 12345u;
            unsigned p = (x >> 16) % np;
            /* one run per producer per entry (np > 3) */
            for (uint32_t q = 0; q < r; q++)
                if (runs[q].producer == ids[p]) {
                    p = (p + 1) % np;
                    q = (uint32_t)-1;
                }
            runs[r] = (struct spec_run){ids[p], ++next[p], at, 1 + (x >> 4) % 3};
            at += runs[r].n;
        }
        l->buf[e] = make_batch(e, at + 1, runs, nruns, &l->len[e]);
        l->offset[e] = off;
        off += at + 1;
    }
}

static void tlog_free(struct tlog *l)
{
    for (unsigned e = 0; e < l->n; e++)
        raft_free(l->buf[e]);
}

/* Feeds entries [from, to) (index = position + 1) as a replay would. */
static void tlog_apply(const struct tlog *l, struct rl_dedup *d, unsigned from, unsigned to)
{
    for (unsigned e = from; e < to; e++)
        ck_assert_int_eq(rl_dedup_apply_entry(d, e + 1, l->offset[e], l->buf[e], l->len[e]), 0);
}

/* ... and as the commit fence does: noted when stored, then shown. */
static void tlog_note_show(const struct tlog *l, struct rl_dedup *d, unsigned from, unsigned to)
{
    for (unsigned e = from; e < to; e++)
        ck_assert_int_eq(rl_dedup_note(d, e + 1, 3, l->offset[e], l->buf[e], l->len[e]), 0);
    for (unsigned e = from; e < to; e++)
        ck_assert_int_eq(rl_dedup_shown(d, e + 1, 3), 0);
}

/* Eviction depends only on the log: tables fed the same log by any path
 * hold the same bytes. */
START_TEST(test_deterministic)
{
    const uint64_t ids[] = {11, 22, 33, 44, 55, 66, 77};
    const uint64_t rev[] = {77, 66, 55, 44, 33, 22, 11};
    struct tlog l;
    tlog_make(&l, 60, 7, 1, ids);
    struct rl_dedup a, b, c;
    ck_assert_int_eq(rl_dedup_init(&a, 4, 3), 0);
    ck_assert_int_eq(rl_dedup_init(&b, 4, 3), 0);
    ck_assert_int_eq(rl_dedup_init(&c, 4, 3), 0);
    tlog_apply(&l, &a, 0, 60);
    tlog_note_show(&l, &b, 0, 60);
    ck_assert_uint_eq(a.n, 4);
    ck_assert_uint_eq(rl_dedup_digest(&a), rl_dedup_digest(&b));
    /* The same log through a saved table halfway (as at open). */
    tlog_apply(&l, &c, 0, 25);
    unsigned char *bytes;
    size_t len;
    ck_assert_int_eq(rl_dedup_encode(&c, &bytes, &len), 0);
    rl_dedup_free(&c);
    ck_assert_int_eq(rl_dedup_init(&c, 4, 3), 0);
    char why[128] = "";
    ck_assert_int_eq(rl_dedup_decode(&c, bytes, len, why, sizeof why), 0);
    free(bytes);
    tlog_apply(&l, &c, 20, 60); /* overlapping replay: skipped up to 25 */
    ck_assert_uint_eq(rl_dedup_digest(&a), rl_dedup_digest(&c));

    /* Every verdict agrees between a and b. */
    for (unsigned p = 0; p < 7; p++)
        for (uint64_t s = 0; s < 25; s++)
            for (unsigned h = 0; h < 2; h++) {
                uint64_t oa, la, ob, lb;
                uint64_t hash = h ? hash_of(1, 0, 1) : 0;
                ck_assert_int_eq(check(&a, ids[p], s, hash, &oa, &la),
                                 check(&b, ids[p], s, hash, &ob, &lb));
                ck_assert_uint_eq(la, lb);
            }
    /* The same log with other producer ids (so another order in the hash
     * buckets): the same evictions, producer for producer. */
    struct tlog l3;
    tlog_make(&l3, 60, 7, 1, rev);
    struct rl_dedup f;
    ck_assert_int_eq(rl_dedup_init(&f, 4, 3), 0);
    tlog_apply(&l3, &f, 0, 60);
    ck_assert_uint_ne(rl_dedup_digest(&a), rl_dedup_digest(&f));
    for (unsigned p = 0; p < 7; p++)
        for (uint64_t s = 0; s < 25; s++) {
            uint64_t oa, la, of, lf;
            ck_assert_int_eq(check(&a, ids[p], s, 0, &oa, &la), check(&f, rev[p], s, 0, &of, &lf));
            ck_assert_uint_eq(la, lf);
        }
    rl_dedup_free(&f);
    tlog_free(&l3);
    rl_dedup_free(&a);
    rl_dedup_free(&b);
    rl_dedup_free(&c);
    tlog_free(&l);
}
END_TEST

START_TEST(test_notes)
{
    struct rl_dedup d;
    ck_assert_int_eq(rl_dedup_init(&d, 8, 8), 0);
    struct spec_run r = {5, 1, 0, 2};
    size_t len;
    unsigned char *buf = make_batch(1, 2, &r, 1, &len);
    uint64_t off, last, h = hash_of(1, 0, 2);

    /* Shown and reset on a table that never had a note. */
    struct rl_dedup fresh;
    ck_assert_int_eq(rl_dedup_init(&fresh, 8, 8), 0);
    ck_assert_int_eq(rl_dedup_shown(&fresh, 1, 1), 0);
    ck_assert_uint_eq(fresh.applied_index, 1);
    ck_assert(rl_dedup_reset(&fresh, 4));
    ck_assert_uint_eq(fresh.applied_index, 4);
    rl_dedup_free(&fresh);

    /* Noted, then truncated away: shown later applies nothing. */
    ck_assert_int_eq(rl_dedup_note(&d, 5, 2, 10, buf, len), 0);
    ck_assert_uint_eq(d.nnotes, 1);
    rl_dedup_truncate(&d, 6); /* after it: kept */
    ck_assert_uint_eq(d.nnotes, 1);
    rl_dedup_truncate(&d, 5);
    ck_assert_uint_eq(d.nnotes, 0);
    ck_assert_int_eq(rl_dedup_shown(&d, 5, 2), 0);
    ck_assert_int_eq(check(&d, 5, 1, h, NULL, &last), RL_DEDUP_NEW);
    ck_assert_uint_eq(last, 0);
    ck_assert_uint_eq(d.applied_index, 5);

    /* Noted in term 2, the entry shown at that index is of term 3 (another
     * leader's): nothing applied. */
    ck_assert_int_eq(rl_dedup_note(&d, 6, 2, 10, buf, len), 0);
    ck_assert_int_eq(rl_dedup_shown(&d, 6, 3), 0);
    ck_assert_int_eq(check(&d, 5, 1, h, NULL, &last), RL_DEDUP_NEW);
    ck_assert_uint_eq(last, 0);
    ck_assert_uint_eq(d.nnotes, 0);

    /* Noted and shown with the same term: applied. */
    ck_assert_int_eq(rl_dedup_note(&d, 7, 3, 20, buf, len), 0);
    ck_assert_int_eq(check(&d, 5, 1, h, NULL, NULL), RL_DEDUP_NEW); /* not before shown */
    ck_assert_int_eq(rl_dedup_shown(&d, 7, 3), 0);
    ck_assert_int_eq(check(&d, 5, 1, h, &off, NULL), RL_DEDUP_DUP);
    ck_assert_uint_eq(off, 20);

    /* A later note at an index replaces the notes from there on. */
    struct spec_run r2 = {5, 2, 0, 2};
    unsigned char *buf2 = make_batch(2, 2, &r2, 1, &len);
    ck_assert_int_eq(rl_dedup_note(&d, 8, 3, 22, buf2, len), 0);
    ck_assert_int_eq(rl_dedup_note(&d, 9, 3, 24, buf2, len), 0);
    ck_assert_int_eq(rl_dedup_note(&d, 8, 4, 30, buf2, len), 0); /* new leader's entry 8 */
    ck_assert_uint_eq(d.nnotes, 1);
    ck_assert_int_eq(rl_dedup_shown(&d, 8, 4), 0);
    ck_assert_int_eq(check(&d, 5, 2, hash_of(2, 0, 2), &off, NULL), RL_DEDUP_DUP);
    ck_assert_uint_eq(off, 30);

    /* reset: the log now starts after entry 12; notes up to it go, later ones stay. */
    struct spec_run r3 = {6, 1, 0, 2};
    unsigned char *buf3 = make_batch(3, 2, &r3, 1, &len);
    ck_assert_int_eq(rl_dedup_note(&d, 11, 4, 40, buf3, len), 0);
    ck_assert_int_eq(rl_dedup_note(&d, 13, 4, 50, buf3, len), 0);
    ck_assert(rl_dedup_reset(&d, 12));
    ck_assert_uint_eq(d.applied_index, 12);
    ck_assert_uint_eq(d.nnotes, 1);
    ck_assert(!rl_dedup_reset(&d, 12));
    ck_assert(!rl_dedup_reset(&d, 3));
    ck_assert_uint_eq(d.applied_index, 12);
    ck_assert_int_eq(rl_dedup_shown(&d, 11, 4), 0); /* gone, and behind applied_index */
    ck_assert_int_eq(check(&d, 6, 1, hash_of(3, 0, 2), NULL, NULL), RL_DEDUP_NEW);
    ck_assert_int_eq(rl_dedup_shown(&d, 13, 4), 0);
    ck_assert_int_eq(check(&d, 6, 1, hash_of(3, 0, 2), &off, NULL), RL_DEDUP_DUP);
    ck_assert_uint_eq(off, 50);
    /* The table itself survives a reset: producer 5 is still known. */
    ck_assert_int_eq(check(&d, 5, 2, hash_of(2, 0, 2), &off, NULL), RL_DEDUP_DUP);
    /* Shown at or below applied_index applies nothing even if noted. */
    struct spec_run r4 = {9, 1, 0, 2};
    unsigned char *buf4 = make_batch(4, 2, &r4, 1, &len);
    ck_assert_int_eq(rl_dedup_note(&d, 13, 4, 60, buf4, len), 0);
    ck_assert_int_eq(rl_dedup_shown(&d, 13, 4), 0);
    ck_assert_int_eq(check(&d, 9, 1, hash_of(4, 0, 2), NULL, NULL), RL_DEDUP_NEW);

    raft_free(buf);
    raft_free(buf2);
    raft_free(buf3);
    raft_free(buf4);
    rl_dedup_free(&d);
}
END_TEST

/* Replay at open may feed entries the table has: they are skipped. */
START_TEST(test_replay_twice)
{
    /* One producer slot: replaying an old entry of A without the index
     * check would bring A back and drop B. */
    struct rl_dedup d;
    ck_assert_int_eq(rl_dedup_init(&d, 1, 4), 0);
    feed1(&d, 1, 0, 1, 1, 1, 1);
    feed1(&d, 2, 1, 2, 1, 2, 1);
    uint64_t dig = rl_dedup_digest(&d);
    feed1(&d, 1, 0, 1, 1, 1, 1);
    ck_assert_uint_eq(rl_dedup_digest(&d), dig);
    feed1(&d, 2, 1, 2, 1, 2, 1);
    ck_assert_uint_eq(rl_dedup_digest(&d), dig);
    ck_assert_uint_eq(d.applied_index, 2);
    ck_assert_int_eq(check(&d, 2, 1, hash_of(2, 0, 1), NULL, NULL), RL_DEDUP_DUP);
    ck_assert_int_eq(check(&d, 1, 1, hash_of(1, 0, 1), NULL, NULL), RL_DEDUP_NEW);
    rl_dedup_free(&d);

    /* A whole log replayed twice. */
    const uint64_t ids[] = {3, 4, 5, 6, 7};
    struct tlog l;
    tlog_make(&l, 40, 5, 9, ids);
    ck_assert_int_eq(rl_dedup_init(&d, 3, 2), 0);
    tlog_apply(&l, &d, 0, 40);
    dig = rl_dedup_digest(&d);
    tlog_apply(&l, &d, 0, 40);
    ck_assert_uint_eq(rl_dedup_digest(&d), dig);
    for (unsigned from = 0; from < 40; from += 7) { /* and any part of it */
        tlog_apply(&l, &d, from, from + 5);
        ck_assert_uint_eq(rl_dedup_digest(&d), dig);
        ck_assert_uint_eq(d.applied_index, 40);
    }
    rl_dedup_free(&d);
    tlog_free(&l);
}
END_TEST

/* The verdicts of every (producer, seq) in ranges, with and without the
 * right hash, folded into one value. */
static uint64_t verdicts(const struct rl_dedup *d, const uint64_t *ids, unsigned np,
                         uint64_t maxseq)
{
    uint64_t acc = 0;
    for (unsigned p = 0; p < np; p++)
        for (uint64_t s = 0; s <= maxseq; s++) {
            uint64_t off, last;
            enum rl_dedup_verdict v = check(d, ids[p], s, 0, &off, &last);
            acc = acc * 31 + (uint64_t)v * 7 + last;
            if (v == RL_DEDUP_REUSED)
                acc = acc * 31 + off;
        }
    return acc;
}

START_TEST(test_encode_decode)
{
    const uint64_t ids[] = {21, 22, 23, 24, 25, 26};
    struct tlog l;
    tlog_make(&l, 50, 6, 3, ids);
    struct rl_dedup a, b;
    ck_assert_int_eq(rl_dedup_init(&a, 5, 4), 0);
    tlog_apply(&l, &a, 0, 50);
    unsigned char *bytes;
    size_t len;
    ck_assert_int_eq(rl_dedup_encode(&a, &bytes, &len), 0);
    ck_assert_int_eq(rl_dedup_init(&b, 5, 4), 0);
    char why[128] = "";
    ck_assert_int_eq(rl_dedup_decode(&b, bytes, len, why, sizeof why), 0);
    ck_assert_uint_eq(rl_dedup_digest(&a), rl_dedup_digest(&b));
    ck_assert_uint_eq(b.applied_index, 50);
    ck_assert_uint_eq(b.n, a.n);
    ck_assert_uint_eq(verdicts(&a, ids, 6, 30), verdicts(&b, ids, 6, 30));
    /* DUP with the right records, per run of the log. */
    for (unsigned e = 0; e < 50; e++) {
        struct rl_batch_view v;
        ck_assert(rl_batch_parse(l.buf[e], l.len[e], &v));
        for (uint32_t i = 0; i < v.nruns; i++) {
            struct rl_batch_run r;
            rl_batch_run(&v, i, &r);
            uint64_t h = rl_batch_hash_view(&v, r.first, r.n), oa, ob, la, lb;
            enum rl_dedup_verdict va = check(&a, r.producer, r.seq, h, &oa, &la);
            ck_assert_int_eq(va, check(&b, r.producer, r.seq, h, &ob, &lb));
            ck_assert_uint_eq(la, lb);
            if (va == RL_DEDUP_DUP) {
                ck_assert_uint_eq(oa, l.offset[e] + r.first);
                ck_assert_uint_eq(ob, oa);
            }
        }
    }
    /* Both go on the same way. */
    tlog_apply(&l, &a, 0, 50);
    struct tlog more;
    tlog_make(&more, 10, 6, 4, ids); /* new seqs restart at 1: ignored if known, new producers otherwise */
    for (unsigned e = 0; e < 10; e++) {
        ck_assert_int_eq(rl_dedup_apply_entry(&a, 51 + e, 1000 + e, more.buf[e], more.len[e]), 0);
        ck_assert_int_eq(rl_dedup_apply_entry(&b, 51 + e, 1000 + e, more.buf[e], more.len[e]), 0);
    }
    ck_assert_uint_eq(rl_dedup_digest(&a), rl_dedup_digest(&b));
    tlog_free(&more);
    /* An empty table round-trips too. */
    struct rl_dedup z;
    ck_assert_int_eq(rl_dedup_init(&z, 5, 4), 0);
    unsigned char *zb;
    size_t zl;
    ck_assert_int_eq(rl_dedup_encode(&z, &zb, &zl), 0);
    ck_assert_int_eq(rl_dedup_decode(&b, zb, zl, why, sizeof why), 0);
    ck_assert_uint_eq(b.n, 0);
    ck_assert_uint_eq(rl_dedup_digest(&b), rl_dedup_digest(&z));
    free(zb);
    rl_dedup_free(&z);
    free(bytes);
    rl_dedup_free(&a);
    rl_dedup_free(&b);
    tlog_free(&l);
}
END_TEST

/* Decoding forged bytes: RLOG_ECORRUPT with a message containing `want`,
 * and the table left empty. */
static void expect_corrupt(const unsigned char *bytes, size_t len, const char *want)
{
    struct rl_dedup d, empty;
    ck_assert_int_eq(rl_dedup_init(&d, 16, 16), 0);
    ck_assert_int_eq(rl_dedup_init(&empty, 16, 16), 0);
    feed1(&d, 1, 0, 99, 1, 1, 1); /* something to clear */
    char why[128] = "";
    int rv = rl_dedup_decode(&d, bytes, len, why, sizeof why);
    ck_assert_msg(rv == RLOG_ECORRUPT, "decode (%s): %s", want, rlog_errname(rv));
    ck_assert_msg(strstr(why, want) != NULL, "message '%s' lacks '%s'", why, want);
    ck_assert_uint_eq(d.n, 0);
    ck_assert_uint_eq(d.applied_index, 0);
    ck_assert_uint_eq(rl_dedup_digest(&d), rl_dedup_digest(&empty));
    uint64_t last;
    ck_assert_int_eq(check(&d, 99, 1, hash_of(1, 0, 1), NULL, &last), RL_DEDUP_NEW);
    /* the table is usable afterwards */
    feed1(&d, 2, 0, 99, 1, 1, 1);
    ck_assert_int_eq(check(&d, 99, 1, hash_of(1, 0, 1), NULL, NULL), RL_DEDUP_DUP);
    rl_dedup_free(&d);
    rl_dedup_free(&empty);
}

static void fix_sum(unsigned char *b, size_t len)
{
    rl_put64(b + len - 8, XXH3_64bits(b, len - 8));
}

START_TEST(test_decode_rejects)
{
    struct rl_dedup a;
    ck_assert_int_eq(rl_dedup_init(&a, 8, 4), 0);
    feed1(&a, 1, 0, 31, 1, 1, 2);
    feed1(&a, 2, 2, 32, 1, 2, 1);
    feed1(&a, 3, 3, 31, 2, 3, 1);
    unsigned char *orig, *b;
    size_t len;
    ck_assert_int_eq(rl_dedup_encode(&a, &orig, &len), 0);
    b = malloc(len + 64);
    /* layout: 24 header; producer 32 (id 32): 32 + 1 run x 32; producer 31: 32 + 2 x 32; 8 sum */
    ck_assert_uint_eq(len, 24 + 32 + 32 + 32 + 64 + 8);

    /* sanity: the helper's copy decodes */
    memcpy(b, orig, len);
    fix_sum(b, len);
    struct rl_dedup ok;
    ck_assert_int_eq(rl_dedup_init(&ok, 8, 4), 0);
    char why[128];
    ck_assert_int_eq(rl_dedup_decode(&ok, b, len, why, sizeof why), 0);
    ck_assert_uint_eq(rl_dedup_digest(&ok), rl_dedup_digest(&a));
    rl_dedup_free(&ok);

    /* truncated, at several points (the checksum no longer matches, or too short) */
    size_t cuts[] = {0, 4, 31, 40, len - 40, len - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++)
        expect_corrupt(orig, cuts[i], "producer table");
    /* a flipped byte anywhere after the magic and version */
    size_t flips[] = {8, 16, 30, 60, 100, len - 9, len - 1};
    for (size_t i = 0; i < sizeof flips / sizeof flips[0]; i++) {
        memcpy(b, orig, len);
        b[flips[i]] ^= 1;
        expect_corrupt(b, len, "checksum");
    }
    /* bad magic, bad version (checksum made right) */
    memcpy(b, orig, len);
    b[0] = 'X';
    fix_sum(b, len);
    expect_corrupt(b, len, "not a producer table");
    memcpy(b, orig, len);
    rl_put32(b + 4, 2);
    fix_sum(b, len);
    expect_corrupt(b, len, "version");
    /* a producer twice: the second (31) renamed 32 */
    memcpy(b, orig, len);
    ck_assert_uint_eq(rl_get64(b + 24), 32);
    ck_assert_uint_eq(rl_get64(b + 24 + 64), 31);
    rl_put64(b + 24 + 64, 32);
    fix_sum(b, len);
    expect_corrupt(b, len, "twice");
    /* producer 0 */
    memcpy(b, orig, len);
    rl_put64(b + 24, 0);
    fix_sum(b, len);
    expect_corrupt(b, len, "producer 0");
    /* counts that do not match the length */
    memcpy(b, orig, len);
    rl_put64(b + 16, 3);
    fix_sum(b, len);
    expect_corrupt(b, len, "length");
    memcpy(b, orig, len);
    rl_put64(b + 16, 1);
    fix_sum(b, len);
    expect_corrupt(b, len, "length");
    memcpy(b, orig, len);
    rl_put64(b + 24 + 24, 1000000); /* runs of producer 32 */
    fix_sum(b, len);
    expect_corrupt(b, len, "length");
    memcpy(b, orig, len);
    rl_put64(b + 24 + 24, 2);
    fix_sum(b, len);
    expect_corrupt(b, len, "length");
    /* trailing bytes */
    memcpy(b, orig, len - 8);
    memset(b + len - 8, 0, 32);
    fix_sum(b, len + 32);
    expect_corrupt(b, len + 32, "length");
    free(b);
    free(orig);
    rl_dedup_free(&a);
}
END_TEST

/* A table saved with larger bounds, loaded with smaller ones, keeps the
 * newest producers and the newest sequences of each. */
START_TEST(test_decode_smaller_bounds)
{
    struct rl_dedup a, b;
    ck_assert_int_eq(rl_dedup_init(&a, 8, 8), 0);
    uint64_t index = 0;
    /* producers 1..5, in that order, each with seqs 1..6 (interleaved) */
    for (uint64_t s = 1; s <= 6; s++)
        for (uint64_t p = 1; p <= 5; p++) {
            index++;
            feed1(&a, index, 100 * index, p, s, (unsigned)(10 * p + s), 1);
        }
    unsigned char *bytes;
    size_t len;
    ck_assert_int_eq(rl_dedup_encode(&a, &bytes, &len), 0);
    ck_assert_int_eq(rl_dedup_init(&b, 3, 2), 0);
    char why[128] = "";
    ck_assert_int_eq(rl_dedup_decode(&b, bytes, len, why, sizeof why), 0);
    ck_assert_uint_eq(b.n, 3);
    ck_assert_uint_eq(b.applied_index, 30);
    for (uint64_t p = 1; p <= 5; p++) {
        uint64_t last;
        if (p <= 2) {
            ck_assert_int_eq(check(&b, p, 6, hash_of((unsigned)(10 * p + 6), 0, 1), NULL, &last),
                             RL_DEDUP_NEW);
            ck_assert_uint_eq(last, 0);
            continue;
        }
        for (uint64_t s = 1; s <= 6; s++) {
            uint64_t off;
            enum rl_dedup_verdict v =
                check(&b, p, s, hash_of((unsigned)(10 * p + s), 0, 1), &off, &last);
            ck_assert_uint_eq(last, 6);
            if (s >= 5) {
                ck_assert_int_eq(v, RL_DEDUP_DUP);
                ck_assert_uint_eq(off, 100 * ((s - 1) * 5 + p));
            } else {
                ck_assert_int_eq(v, RL_DEDUP_TOO_OLD);
            }
        }
        ck_assert_int_eq(check(&b, p, 7, 0, NULL, NULL), RL_DEDUP_NEW);
    }
    /* Producer 3 is now the least recent: the next new producer evicts it. */
    feed1(&b, 31, 5000, 9, 1, 1, 1);
    ck_assert_int_eq(check(&b, 3, 7, 0, NULL, NULL), RL_DEDUP_NEW);
    uint64_t last;
    check(&b, 3, 7, 0, NULL, &last);
    ck_assert_uint_eq(last, 0);
    check(&b, 4, 7, 0, NULL, &last);
    ck_assert_uint_eq(last, 6);
    free(bytes);
    rl_dedup_free(&a);
    rl_dedup_free(&b);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("dedup");
    TCase *tb = tcase_create("batch_runs");
    tcase_add_test(tb, test_runs_roundtrip);
    tcase_add_test(tb, test_runs_parse_rejects);
    tcase_add_test(tb, test_hash_forms_agree);
    tcase_add_test(tb, test_hash_splits_differ);
    suite_add_tcase(s, tb);
    TCase *tt = tcase_create("table");
    tcase_add_test(tt, test_verdicts);
    tcase_add_test(tt, test_window_eviction);
    tcase_add_test(tt, test_producer_eviction);
    tcase_add_test(tt, test_deterministic);
    tcase_add_test(tt, test_notes);
    tcase_add_test(tt, test_replay_twice);
    tcase_add_test(tt, test_encode_decode);
    tcase_add_test(tt, test_decode_rejects);
    tcase_add_test(tt, test_decode_smaller_bounds);
    suite_add_tcase(s, tt);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
