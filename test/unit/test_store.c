/* The segment store (lib/store): round trips through segment rollovers, reads
 * by index and by record offset, group commit, request validation, data
 * directory guards, damaged metadata, term/vote, truncate and trim. */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xxhash.h>

#include "lib/store_helpers.h"

#define SEED 0x5eed
static struct th_store T;
static uint64_t rng;

static void setup(void)
{
    rl_fs_faults_clear();
    th_init(&T);
    rng = 42;
}

static void teardown(void)
{
    th_fini(&T);
}

static void check_model(const struct th_model *m, bool full)
{
    char msg[512];
    ck_assert_msg(th_model_matches(&T, m, full, 16, &rng, msg, sizeof msg), "%s", msg);
}

/* Appends `count` entries in batches of 1..16 to both store and model. */
static void fill(struct th_model *m, unsigned count, uint64_t term, uint64_t seed)
{
    th_fill(&T, m, &rng, count, 16, term, seed);
}

static void segment_path(char *buf, size_t len, const char *name)
{
    th_path_join(buf, len, T.dir, name);
}

static unsigned count_segments(void)
{
    static char names[512][NAME_MAX + 1];
    return th_list_segments(T.dir, names, 512);
}

/* ---- basic -------------------------------------------------------------- */

START_TEST(test_fresh_store_is_empty)
{
    th_open_ok(&T);
    ck_assert_uint_eq(rl_store_first_index(T.s), 1);
    ck_assert_uint_eq(rl_store_last_index(T.s), 0);
    ck_assert_uint_eq(rl_store_next_index(T.s), 1);
    ck_assert_uint_eq(rl_store_first_offset(T.s), 0);
    ck_assert_uint_eq(rl_store_next_offset(T.s), 0);
    ck_assert_uint_eq(rl_store_term(T.s), 0);
    ck_assert_uint_eq(rl_store_vote(T.s), 0);
    ck_assert(!rl_store_is_fatal(T.s));
    ck_assert_str_eq(rl_store_recovery_note(T.s), "");
    struct rl_store_entry e;
    ck_assert_int_eq(rl_store_read(T.s, 1, &e), RLOG_ENOTFOUND);
    ck_assert_int_eq(rl_store_read_offset(T.s, 0, &e), RLOG_ENOTFOUND);
    char p[PATH_MAX];
    th_path_join(p, sizeof p, T.dir, "FORMAT");
    ck_assert_msg(th_file_exists(p), "no FORMAT written");
    th_reopen(&T);
    ck_assert_uint_eq(rl_store_last_index(T.s), 0);
    ck_assert_uint_eq(rl_store_next_index(T.s), 1);
    ck_assert_str_eq(rl_store_recovery_note(T.s), "");
}
END_TEST

START_TEST(test_creates_missing_dir)
{
    char sub[PATH_MAX];
    th_path_join(sub, sizeof sub, T.dir, "a-new-dir");
    T.cfg.dir = sub;
    th_open_ok(&T);
    th_append_ok(&T, 3, 1, SEED);
    th_reopen(&T);
    ck_assert_uint_eq(rl_store_last_index(T.s), 3);
    th_check_entry(&T, 2, 1, SEED, th_records(1, SEED));
}
END_TEST

START_TEST(test_round_trip_many_rollovers)
{
    struct th_model m;
    th_model_init(&m);
    th_open_ok(&T);
    fill(&m, 3000, 7, SEED);
    check_model(&m, true);
    struct rl_store_stats st;
    rl_store_stats(T.s, &st);
    ck_assert_uint_ge(st.rollovers, 10);
    ck_assert_uint_eq(st.entries, 3000);
    ck_assert_uint_ge(st.segments, 10);
    ck_assert_uint_ge(count_segments(), 10);
    th_reopen(&T);
    ck_assert_str_eq(rl_store_recovery_note(T.s), "");
    check_model(&m, true);
    /* and the reopened store keeps accepting writes */
    fill(&m, 300, 8, SEED + 1);
    th_reopen(&T);
    check_model(&m, true);
    th_model_free(&m);
}
END_TEST

/* Size in bytes of each segment file of T.dir, in sequence order. */
static unsigned segment_sizes(uint64_t *sizes, unsigned max)
{
    static char names[512][NAME_MAX + 1];
    unsigned n = th_list_segments(T.dir, names, 512);
    for (unsigned i = 0; i < n && i < max; i++) {
        char p[PATH_MAX];
        struct stat sb;
        segment_path(p, sizeof p, names[i]);
        ck_assert_int_eq(stat(p, &sb), 0);
        sizes[i] = (uint64_t)sb.st_size;
    }
    return n < max ? n : max;
}

/* Disk use grows with the data: the first file is first_segment_size and
 * each next one doubles up to segment_size; the spare made last is kept
 * across a reopen (not dropped and made again). */
START_TEST(test_segments_grow)
{
    struct th_model m;
    th_model_init(&m);
    T.cfg.segment_size = 1u << 20;
    T.cfg.first_segment_size = 64u << 10;
    th_open_ok(&T);
    uint64_t sizes[64];
    fill(&m, 6000, 3, SEED);
    unsigned n = segment_sizes(sizes, 64);
    ck_assert_uint_ge(n, 7);
    uint64_t want = 64u << 10;
    for (unsigned i = 0; i < n; i++) {
        ck_assert_msg(sizes[i] == want, "segment %u is %" PRIu64 " bytes, want %" PRIu64, i,
                      sizes[i], want);
        if (want < (1u << 20))
            want *= 2;
    }
    th_reopen(&T);
    ck_assert_str_eq(rl_store_recovery_note(T.s), "");
    ck_assert_uint_eq(segment_sizes(sizes, 64), n);
    check_model(&m, true);
    fill(&m, 300, 4, SEED + 1);
    check_model(&m, true);
    th_model_free(&m);
}
END_TEST

/* An entry larger than the next segment file has the spare made again,
 * larger; it is written whole and reads back, also after a reopen. */
START_TEST(test_large_entry_regrows_spare)
{
    T.cfg.segment_size = 1u << 20;
    T.cfg.first_segment_size = 64u << 10;
    th_open_ok(&T);
    uint32_t len = 600u << 10;
    unsigned char *big = malloc(len);
    th_payload_fill(big, len, 1, SEED);
    struct rl_store_entry e = {.index = 1, .term = 1, .records = 1, .type = 1, .buf = big,
                               .len = len};
    ck_assert_int_eq(th_append_entries(&T, &e, 1), 0);
    struct rl_store_stats st;
    rl_store_stats(T.s, &st);
    ck_assert_uint_ge(st.spare_regrown + st.spare_waits, 1);
    th_append_ok(&T, 5, 1, SEED);
    e.index = rl_store_next_index(T.s);
    ck_assert_int_eq(th_append_entries(&T, &e, 1), 0);
    th_reopen(&T);
    ck_assert_str_eq(rl_store_recovery_note(T.s), "");
    struct rl_store_entry out;
    for (uint64_t i = 1; i <= 7; i += 6) {
        ck_assert_int_eq(rl_store_read(T.s, i, &out), 0);
        ck_assert_uint_eq(out.len, len);
        ck_assert(memcmp(out.buf, big, len) == 0);
        free((void *)out.buf);
    }
    free(big);
}
END_TEST

START_TEST(test_read_by_offset)
{
    static const uint32_t recs[] = {2, 0, 0, 3, 1, 0, 5, 0};
    enum { N = sizeof recs / sizeof recs[0] };
    struct rl_store_entry e[N];
    char payload[N][16];
    for (unsigned i = 0; i < N; i++) {
        snprintf(payload[i], sizeof payload[i], "entry-%u", i + 1);
        e[i] = (struct rl_store_entry){.index = i + 1, .term = 3, .records = recs[i],
                                       .type = recs[i] ? 1 : 2, .buf = payload[i],
                                       .len = (uint32_t)strlen(payload[i])};
    }
    th_open_ok(&T);
    ck_assert_int_eq(th_append_entries(&T, e, N), 0);
    for (int pass = 0; pass < 2; pass++) {
        ck_assert_uint_eq(rl_store_first_offset(T.s), 0);
        ck_assert_uint_eq(rl_store_next_offset(T.s), 11);
        /* offset -> index: 0,1 -> 1; 2,3,4 -> 4; 5 -> 5; 6..10 -> 7 */
        static const uint64_t want[] = {1, 1, 4, 4, 4, 5, 7, 7, 7, 7, 7};
        for (uint64_t o = 0; o < 11; o++) {
            struct rl_store_entry out;
            int rc = rl_store_read_offset(T.s, o, &out);
            ck_assert_msg(rc == 0, "read_offset %" PRIu64 ": %s", o, rlog_errname(rc));
            ck_assert_uint_eq(out.index, want[o]);
            ck_assert_uint_eq(out.records, recs[want[o] - 1]);
            ck_assert_uint_eq(out.len, strlen(payload[want[o] - 1]));
            ck_assert(memcmp(out.buf, payload[want[o] - 1], out.len) == 0);
            free((void *)out.buf);
        }
        static const uint64_t base[] = {0, 2, 2, 2, 5, 6, 6, 11};
        for (unsigned i = 0; i < N; i++) {
            struct rl_store_entry out;
            ck_assert_int_eq(rl_store_read(T.s, i + 1, &out), 0);
            ck_assert_uint_eq(out.offset, base[i]);
            ck_assert_uint_eq(out.term, 3);
            ck_assert_uint_eq(out.type, e[i].type);
            free((void *)out.buf);
        }
        struct rl_store_entry out;
        ck_assert_int_eq(rl_store_read_offset(T.s, 11, &out), RLOG_ENOTFOUND);
        ck_assert_int_eq(rl_store_read_offset(T.s, 1000, &out), RLOG_ENOTFOUND);
        ck_assert_int_eq(rl_store_read(T.s, N + 1, &out), RLOG_ENOTFOUND);
        th_reopen(&T);
    }
}
END_TEST

/* A host thread reads by offset (rl_store_read_offset_shared) while the
 * loop thread appends across many segment rollovers and trims whole
 * segments away: every read it is served is the entry that holds the
 * offset, byte for byte; it is declined (1) only for what was trimmed. */
enum { SHARED_SEED = 11 };
struct shared_reader {
    struct rl_store *s;
    _Atomic uint64_t floor, end; /* readable offsets [floor, end) */
    atomic_bool stop;
    uint64_t served, declined, wrong, rng;
    char why[256];
};

static void *shared_reader_main(void *arg)
{
    struct shared_reader *r = arg;
    unsigned char *want = malloc(1 << 16);
    while (!atomic_load(&r->stop)) {
        uint64_t lo = atomic_load(&r->floor), hi = atomic_load(&r->end);
        if (hi <= lo)
            continue;
        uint64_t o = th_rand_range(&r->rng, lo, hi - 1);
        struct rl_store_entry e;
        int rc = rl_store_read_offset_shared(r->s, o, &e);
        if (rc == 1) {
            /* Only a trim may take a readable offset away. */
            if (o >= atomic_load(&r->floor) && r->wrong++ == 0)
                snprintf(r->why, sizeof r->why, "offset %" PRIu64 " declined, not trimmed", o);
            r->declined++;
            continue;
        }
        bool ok = rc == 0 && e.offset <= o && o < e.offset + e.records &&
                  e.records == th_records(e.index, SHARED_SEED) &&
                  e.len == th_payload_len(e.index, SHARED_SEED) && e.len <= (1 << 16);
        if (ok && e.len) {
            th_payload_fill(want, e.len, e.index, SHARED_SEED);
            ok = memcmp(want, e.buf, e.len) == 0;
        }
        if (!ok && r->wrong++ == 0)
            snprintf(r->why, sizeof r->why, "offset %" PRIu64 ": %s (entry %" PRIu64 ")", o,
                     rc ? rlog_errname(rc) : "another entry or other bytes", e.index);
        if (rc == 0)
            free((void *)e.buf);
        r->served++;
    }
    free(want);
    return NULL;
}

START_TEST(test_shared_reads_beside_the_writer)
{
    th_open_ok(&T);
    static struct shared_reader r;
    memset(&r, 0, sizeof r);
    r.s = T.s;
    r.rng = 42;
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, shared_reader_main, &r), 0);
    uint64_t sizes = 7;
    for (int round = 0; round < 400; round++) {
        th_append_ok(&T, (unsigned)th_rand_range(&sizes, 1, 8), 1, SHARED_SEED);
        atomic_store(&r.end, rl_store_next_offset(T.s));
        if (round % 50 == 49) {
            /* Readers first stop being offered what goes, as rlog does. */
            uint64_t to = rl_store_last_index(T.s) - 20;
            uint64_t floor_after = 0;
            struct rl_store_entry e;
            ck_assert_int_eq(rl_store_read(T.s, to, &e), 0);
            floor_after = e.offset;
            free((void *)e.buf);
            atomic_store(&r.floor, floor_after);
            ck_assert_int_eq(th_trim(&T, to), 0);
        }
    }
    atomic_store(&r.stop, true);
    pthread_join(th, NULL);
    ck_assert_msg(r.wrong == 0, "%" PRIu64 " wrong shared reads; first: %s", r.wrong, r.why);
    ck_assert_uint_gt(r.served, 100);
    struct rl_store_stats st;
    rl_store_stats(T.s, &st);
    ck_assert_uint_gt(st.rollovers, 3);
}
END_TEST

START_TEST(test_zero_length_payload)
{
    struct rl_store_entry e[2] = {
        {.index = 1, .term = 1, .records = 0, .type = 2, .buf = NULL, .len = 0},
        {.index = 2, .term = 1, .records = 1, .type = 1, .buf = "x", .len = 1},
    };
    th_open_ok(&T);
    ck_assert_int_eq(th_append_entries(&T, e, 2), 0);
    th_reopen(&T);
    struct rl_store_entry out;
    ck_assert_int_eq(rl_store_read(T.s, 1, &out), 0);
    ck_assert_uint_eq(out.len, 0);
    ck_assert_ptr_null(out.buf);
    ck_assert_int_eq(rl_store_read(T.s, 2, &out), 0);
    ck_assert_uint_eq(out.len, 1);
    ck_assert_int_eq(((const char *)out.buf)[0], 'x');
    free((void *)out.buf);
}
END_TEST

START_TEST(test_request_fields_and_durable_bounds)
{
    th_open_ok(&T);
    th_append_ok(&T, 5, 1, SEED);
    uint64_t next_off = rl_store_next_offset(T.s);
    struct th_batch a, b;
    ck_assert_int_eq(th_batch_submit(&T, &a, 6, 4, 1, SEED), 0);
    ck_assert_int_eq(th_batch_submit(&T, &b, 10, 2, 1, SEED), 0);
    ck_assert_uint_eq(a.req.first_index, 6);
    ck_assert_uint_eq(a.req.first_offset, next_off);
    ck_assert_uint_eq(b.req.first_index, 10);
    uint64_t recs = 0;
    for (uint64_t i = 6; i < 10; i++)
        recs += th_records(i, SEED);
    ck_assert_uint_eq(b.req.first_offset, next_off + recs);
    /* queued, not durable: next_index counts them, the bounds do not */
    ck_assert_uint_eq(rl_store_next_index(T.s), 12);
    ck_assert_uint_eq(rl_store_last_index(T.s), 5);
    ck_assert_uint_eq(rl_store_next_offset(T.s), next_off);
    struct rl_store_entry out;
    ck_assert_int_eq(rl_store_read(T.s, 6, &out), RLOG_ENOTFOUND);
    th_run_until(&T, &b.done);
    ck_assert(a.done);
    ck_assert_int_eq(a.status, 0);
    ck_assert_int_eq(b.status, 0);
    ck_assert_uint_eq(rl_store_last_index(T.s), 11);
    th_check_entry(&T, 10, 1, SEED, next_off + recs);
    th_batch_free(&a);
    th_batch_free(&b);
}
END_TEST

/* A truncate queued behind a replaced suffix: the queue holds entry 7
 * twice (the stale append and its replacement), and the cut at 8 must take
 * its offset from the replacement, the append that stands (the oldest one
 * gave the log a jump in its offsets: simulator, paused-leader-catchup). */
START_TEST(test_truncate_behind_replaced_suffix)
{
    th_open_ok(&T);
    th_append_ok(&T, 5, 1, SEED);
    uint64_t base = rl_store_next_offset(T.s);
    uint64_t stale = SEED + 1, fresh = SEED + 2;
    while (th_records(6, fresh) + th_records(7, fresh) == th_records(6, stale) + th_records(7, stale))
        fresh++;
    struct th_batch a, b, c;
    struct th_op cut1, cut2;
    ck_assert_int_eq(th_batch_submit(&T, &a, 6, 4, 1, stale), 0);
    ck_assert_int_eq(th_truncate_submit(&T, &cut1, 6), 0);
    ck_assert_int_eq(th_batch_submit(&T, &b, 6, 4, 2, fresh), 0);
    ck_assert_int_eq(th_truncate_submit(&T, &cut2, 8), 0);
    uint64_t want = base + th_records(6, fresh) + th_records(7, fresh);
    ck_assert_int_eq(th_batch_submit(&T, &c, 8, 3, 3, fresh), 0);
    ck_assert_uint_eq(c.req.first_offset, want);
    th_run_until(&T, &c.done);
    ck_assert_int_eq(c.status, 0);
    th_check_entry(&T, 7, 2, fresh, base + th_records(6, fresh));
    th_check_entry(&T, 8, 3, fresh, want);
    th_reopen(&T);
    th_check_entry(&T, 8, 3, fresh, want);
    th_batch_free(&a);
    th_batch_free(&b);
    th_batch_free(&c);
}
END_TEST

/* ---- group commit ------------------------------------------------------- */

START_TEST(test_group_commit)
{
    enum { NB = 200 };
    static struct th_batch b[NB];
    struct th_model m;
    th_model_init(&m);
    th_open_ok(&T);
    struct rl_store_stats st0, st1;
    rl_store_stats(T.s, &st0);
    uint64_t next = 1;
    for (unsigned i = 0; i < NB; i++) {
        unsigned n = 1 + i % 5;
        ck_assert_int_eq(th_batch_submit(&T, &b[i], next, n, 2, SEED), 0);
        th_model_append(&m, next, n, 2, SEED);
        next += n;
    }
    th_run_until(&T, &b[NB - 1].done);
    uv_run(&T.loop, UV_RUN_NOWAIT);
    for (unsigned i = 0; i < NB; i++) {
        ck_assert_msg(b[i].fired == 1, "batch %u fired %d times", i, b[i].fired);
        ck_assert_int_eq(b[i].status, 0);
        ck_assert_msg(b[i].order == i + 1, "batch %u completed as #%u", i, b[i].order);
        th_batch_free(&b[i]);
    }
    rl_store_stats(T.s, &st1);
    ck_assert_uint_eq(st1.entries - st0.entries, next - 1);
    ck_assert_msg(st1.syncs - st0.syncs < NB / 4, "%" PRIu64 " syncs for %d requests",
                  st1.syncs - st0.syncs, NB);
    ck_assert_msg(st1.batches - st0.batches < NB / 4, "%" PRIu64 " batches for %d requests",
                  st1.batches - st0.batches, NB);
    check_model(&m, true);
    th_reopen(&T);
    check_model(&m, true);
    th_model_free(&m);
}
END_TEST

START_TEST(test_max_batch_bytes_splits_writes)
{
    enum { NB = 60 };
    static struct th_batch b[NB];
    struct th_model m;
    th_model_init(&m);
    T.cfg.max_batch_bytes = 8192;
    th_open_ok(&T);
    uint64_t next = 1;
    for (unsigned i = 0; i < NB; i++) {
        ck_assert_int_eq(th_batch_submit(&T, &b[i], next, 4, 2, SEED), 0);
        th_model_append(&m, next, 4, 2, SEED);
        next += 4;
    }
    th_run_until(&T, &b[NB - 1].done);
    struct rl_store_stats st;
    rl_store_stats(T.s, &st);
    for (unsigned i = 0; i < NB; i++) {
        ck_assert_int_eq(b[i].status, 0);
        ck_assert_uint_eq(b[i].order, i + 1);
        th_batch_free(&b[i]);
    }
    /* ~6 KiB per request, so no two requests fit one 8 KiB write */
    ck_assert_msg(st.batches >= NB / 2, "%" PRIu64 " batches", st.batches);
    check_model(&m, true);
    th_model_free(&m);
}
END_TEST

START_TEST(test_close_cancels_queued)
{
    enum { NB = 50 };
    static struct th_batch b[NB];
    th_open_ok(&T);
    uint64_t next = 1;
    for (unsigned i = 0; i < NB; i++) {
        ck_assert_int_eq(th_batch_submit(&T, &b[i], next, 3, 1, SEED), 0);
        next += 3;
    }
    th_close(&T);
    uint64_t acked_end = 0;
    bool seen_cancel = false;
    for (unsigned i = 0; i < NB; i++) {
        ck_assert_msg(b[i].fired == 1, "batch %u fired %d times", i, b[i].fired);
        ck_assert_msg(b[i].status == 0 || b[i].status == RLOG_ECANCELED,
                      "batch %u: %s", i, rlog_errname(b[i].status));
        ck_assert_uint_eq(b[i].order, i + 1);
        if (b[i].status == 0) {
            ck_assert_msg(!seen_cancel, "batch %u succeeded after a canceled one", i);
            acked_end = b[i].first + b[i].n - 1;
        } else {
            seen_cancel = true;
        }
        th_batch_free(&b[i]);
    }
    th_open_ok(&T);
    ck_assert_uint_eq(rl_store_last_index(T.s), acked_end);
    struct th_model m;
    th_model_init(&m);
    if (acked_end)
        th_model_append(&m, 1, (unsigned)acked_end, 1, SEED);
    check_model(&m, true);
    th_model_free(&m);
}
END_TEST

/* ---- validation --------------------------------------------------------- */

START_TEST(test_append_index_gap)
{
    th_open_ok(&T);
    th_append_ok(&T, 3, 1, SEED);
    struct rl_store_entry *e = th_entries_make(5, 2, 1, SEED);
    ck_assert_int_eq(th_append_entries(&T, e, 2), RLOG_EINVAL); /* gap */
    th_entries_free(e, 2);
    e = th_entries_make(3, 2, 1, SEED);
    ck_assert_int_eq(th_append_entries(&T, e, 2), RLOG_EINVAL); /* overlap */
    th_entries_free(e, 2);
    e = th_entries_make(4, 3, 1, SEED);
    e[2].index = 7; /* not consecutive inside the request */
    ck_assert_int_eq(th_append_entries(&T, e, 3), RLOG_EINVAL);
    ck_assert_int_eq(th_append_entries(&T, e, 0), RLOG_EINVAL); /* n == 0 */
    th_entries_free(e, 3);
    uv_run(&T.loop, UV_RUN_NOWAIT);
    ck_assert_uint_eq(rl_store_next_index(T.s), 4);
    ck_assert(!rl_store_is_fatal(T.s));
    th_append_ok(&T, 2, 1, SEED);
    ck_assert_uint_eq(rl_store_last_index(T.s), 5);
}
END_TEST

START_TEST(test_append_too_big)
{
    th_open_ok(&T);
    th_append_ok(&T, 1, 1, SEED);
    uint64_t seg = T.cfg.segment_size;
    /* the largest payload a segment holds: header + one frame */
    uint32_t fit = (uint32_t)(seg - RL_STORE_SEGMENT_HEADER_SIZE - RL_STORE_FRAME_HEADER_SIZE);
    unsigned char *big = malloc(seg + 8);
    memset(big, 0x5a, seg + 8);
    struct rl_store_entry e[2] = {
        {.index = 2, .term = 1, .records = 1, .type = 1, .buf = big, .len = (uint32_t)seg},
        {.index = 3, .term = 1, .records = 1, .type = 1, .buf = big, .len = 10},
    };
    ck_assert_int_eq(th_append_entries(&T, e, 1), RLOG_ETOOBIG);
    e[0].len = fit + 1;
    ck_assert_int_eq(th_append_entries(&T, e, 1), RLOG_ETOOBIG);
    /* a too-big entry anywhere in the request rejects all of it */
    e[0].len = 10;
    e[1].len = (uint32_t)seg;
    ck_assert_int_eq(th_append_entries(&T, e, 2), RLOG_ETOOBIG);
    ck_assert_uint_eq(rl_store_next_index(T.s), 2);
    ck_assert(!rl_store_is_fatal(T.s));
    e[0].len = fit;
    ck_assert_int_eq(th_append_entries(&T, e, 1), 0);
    e[1].len = 10;
    ck_assert_int_eq(th_append_entries(&T, &e[1], 1), 0);
    th_reopen(&T);
    ck_assert_uint_eq(rl_store_last_index(T.s), 3);
    struct rl_store_entry out;
    ck_assert_int_eq(rl_store_read(T.s, 2, &out), 0);
    ck_assert_uint_eq(out.len, fit);
    ck_assert(memcmp(out.buf, big, fit) == 0);
    free((void *)out.buf);
    free(big);
}
END_TEST

START_TEST(test_truncate_trim_validation)
{
    th_open_ok(&T);
    th_append_ok(&T, 20, 1, SEED);
    ck_assert_int_eq(th_trim(&T, 5), 0);
    ck_assert_int_eq(th_truncate(&T, 4), RLOG_EINVAL);  /* below first */
    ck_assert_int_eq(th_truncate(&T, 22), RLOG_EINVAL); /* above next */
    ck_assert_int_eq(th_trim(&T, 22), RLOG_EINVAL);     /* beyond end + 1 */
    ck_assert_uint_eq(rl_store_first_index(T.s), 5);
    ck_assert_uint_eq(rl_store_last_index(T.s), 20);
    ck_assert(!rl_store_is_fatal(T.s));
    ck_assert_int_eq(th_truncate(&T, 21), 0); /* at next: nothing to drop */
    ck_assert_uint_eq(rl_store_last_index(T.s), 20);
}
END_TEST

START_TEST(test_bad_config)
{
    struct rl_store *s = (struct rl_store *)0x1;
    char err[256] = "";
    struct rl_store_config cfg = {.dir = T.dir, .segment_size = RL_STORE_MIN_SEGMENT_SIZE - 8};
    ck_assert_int_eq(rl_store_open(&T.loop, &cfg, &s, err, sizeof err), RLOG_EINVAL);
    ck_assert_ptr_null(s);
    ck_assert_msg(err[0] != '\0', "no error message");
    cfg.segment_size = 0;
    cfg.dir = NULL;
    s = (struct rl_store *)0x1;
    ck_assert_int_eq(rl_store_open(&T.loop, &cfg, &s, err, sizeof err), RLOG_EINVAL);
    ck_assert_ptr_null(s);
}
END_TEST

/* ---- data directory guards ------------------------------------------------ */

START_TEST(test_busy_same_process)
{
    th_open_ok(&T);
    struct rl_store *s2 = (struct rl_store *)0x1;
    char err[512] = "";
    int rc = rl_store_open(&T.loop, &T.cfg, &s2, err, sizeof err);
    ck_assert_int_eq(rc, RLOG_EBUSY);
    ck_assert_ptr_null(s2);
    char pid[32];
    snprintf(pid, sizeof pid, "%ld", (long)getpid());
    ck_assert_msg(strstr(err, pid) != NULL, "errmsg '%s' does not name pid %s", err, pid);
    /* the first handle is unaffected */
    th_append_ok(&T, 2, 1, SEED);
    th_close(&T);
    th_open_ok(&T); /* and the lock was released by close */
    ck_assert_uint_eq(rl_store_last_index(T.s), 2);
}
END_TEST

static void child_append_cb(struct rl_store_req *req, int status)
{
    *(int *)req->data = status == 0 ? 1 : -1;
}

/* In a forked child (no Check asserts there): opens the store, appends 10
 * entries, reports on `up` and holds the store until killed. */
static void child_hold_store(int up)
{
    uv_loop_t loop;
    struct rl_store *s = NULL;
    char err[256];
    if (uv_loop_init(&loop) != 0 || rl_store_open(&loop, &T.cfg, &s, err, sizeof err) != 0)
        _exit(2);
    struct rl_store_entry *e = th_entries_make(1, 10, 1, SEED);
    struct rl_store_req req;
    int done = 0;
    req.data = &done;
    if (rl_store_append(s, &req, e, 10, child_append_cb) != 0)
        _exit(3);
    while (done == 0)
        uv_run(&loop, UV_RUN_ONCE);
    if (done != 1)
        _exit(4);
    if (write(up, "k", 1) != 1)
        _exit(5);
    for (;;)
        pause();
}

START_TEST(test_busy_other_process)
{
    int up[2];
    ck_assert_int_eq(pipe(up), 0);
    pid_t child = fork();
    ck_assert_int_ge(child, 0);
    if (child == 0) {
        close(up[0]);
        child_hold_store(up[1]);
    }
    close(up[1]);
    char c;
    ssize_t r = read(up[0], &c, 1);
    int wst = 0;
    if (r != 1) {
        waitpid(child, &wst, 0);
        ck_abort_msg("child failed to open/append: exit %d", WEXITSTATUS(wst));
    }
    int rc = th_open(&T);
    char pid[32];
    snprintf(pid, sizeof pid, "%ld", (long)child);
    if (rc != RLOG_EBUSY || strstr(T.err, pid) == NULL) {
        kill(child, SIGKILL);
        waitpid(child, &wst, 0);
        ck_abort_msg("open while pid %s holds the dir: %s: %s", pid, rlog_errname(rc), T.err);
    }
    /* the holder dies without closing (kill -9): the lock goes with it, and
     * what it had acknowledged is there */
    ck_assert_int_eq(kill(child, SIGKILL), 0);
    ck_assert_int_eq(waitpid(child, &wst, 0), child);
    close(up[0]);
    th_open_ok(&T);
    ck_assert_uint_eq(rl_store_last_index(T.s), 10);
    uint64_t off = 0;
    for (uint64_t i = 1; i <= 10; i++) {
        th_check_entry(&T, i, 1, SEED, off);
        off += th_records(i, SEED);
    }
}
END_TEST

START_TEST(test_foreign_dir)
{
    char p[PATH_MAX];
    th_path_join(p, sizeof p, T.dir, "notes.txt");
    th_write_file(p, "hello", 5);
    int rc = th_open(&T);
    ck_assert_msg(rc == RLOG_EFOREIGN, "%s: %s", rlog_errname(rc), T.err);
    ck_assert_msg(strstr(T.err, "notes.txt") != NULL, "errmsg '%s'", T.err);
    /* nothing was created in someone else's directory */
    th_path_join(p, sizeof p, T.dir, "FORMAT");
    ck_assert(!th_file_exists(p));
    th_path_join(p, sizeof p, T.dir, "meta-a");
    ck_assert(!th_file_exists(p));
    th_path_join(p, sizeof p, T.dir, "LOCK");
    ck_assert(!th_file_exists(p));
}
END_TEST

START_TEST(test_foreign_format_file)
{
    char p[PATH_MAX];
    th_path_join(p, sizeof p, T.dir, "FORMAT");
    th_write_file(p, "some other program\nformat 1\n", 28);
    int rc = th_open(&T);
    ck_assert_msg(rc == RLOG_EFOREIGN, "%s: %s", rlog_errname(rc), T.err);
}
END_TEST

/* Rewrites FORMAT with `version`, keeping it internally consistent. */
static void write_format_version(unsigned version, bool good_sum)
{
    char p[PATH_MAX];
    th_path_join(p, sizeof p, T.dir, "FORMAT");
    size_t len;
    char *text = (char *)th_read_file(p, &len);
    text[len] = '\0';
    const char *id = strstr(text, "dir-id ");
    ck_assert_msg(id != NULL, "FORMAT has no dir-id line: %s", text);
    uint64_t dir_id = strtoull(id + 7, NULL, 16);
    char body[256], out[320];
    int n = snprintf(body, sizeof body, "liblog data directory\nformat %u\ndir-id %016" PRIx64 "\n",
                     version, dir_id);
    uint64_t sum = XXH3_64bits(body, (size_t)n) ^ (good_sum ? 0 : 1);
    int m = snprintf(out, sizeof out, "%schecksum %016" PRIx64 "\n", body, sum);
    th_write_file(p, out, (size_t)m);
    free(text);
}

START_TEST(test_newer_format_version)
{
    th_open_ok(&T);
    th_append_ok(&T, 3, 1, SEED);
    th_close(&T);
    write_format_version(1, true); /* sanity: our rewrite is accepted */
    th_open_ok(&T);
    th_close(&T);
    write_format_version(2, true);
    int rc = th_open(&T);
    ck_assert_msg(rc == RLOG_EVERSION, "%s: %s", rlog_errname(rc), T.err);
    ck_assert_msg(strstr(T.err, "FORMAT") != NULL, "errmsg '%s'", T.err);
}
END_TEST

START_TEST(test_damaged_format)
{
    th_open_ok(&T);
    th_append_ok(&T, 3, 1, SEED);
    th_close(&T);
    write_format_version(1, false);
    int rc = th_open(&T);
    ck_assert_msg(rc == RLOG_ECORRUPT, "%s: %s", rlog_errname(rc), T.err);
    ck_assert_msg(strstr(T.err, "FORMAT") != NULL, "errmsg '%s'", T.err);
}
END_TEST

static void damage_file(const char *name, long keep, bool garbage)
{
    char p[PATH_MAX];
    th_path_join(p, sizeof p, T.dir, name);
    size_t len;
    unsigned char *buf = th_read_file(p, &len);
    if (garbage)
        for (size_t i = 0; i < len; i++)
            buf[i] = (unsigned char)(i * 131 + 7);
    th_write_file(p, buf, keep >= 0 && (size_t)keep < len ? (size_t)keep : len);
    free(buf);
}

/* _i: 0 truncates meta-a, 1 garbles meta-a, 2 truncates meta-b, 3 garbles
 * meta-b, 4 deletes meta-a. */
START_TEST(test_one_meta_copy_damaged)
{
    th_open_ok(&T);
    th_append_ok(&T, 10, 1, SEED);
    ck_assert_int_eq(rl_store_set_term_vote(T.s, 5, 1), 0);
    ck_assert_int_eq(rl_store_set_term_vote(T.s, 6, 2), 0);
    th_close(&T);
    const char *name = _i < 2 || _i == 4 ? "meta-a" : "meta-b";
    if (_i == 4) {
        char p[PATH_MAX];
        th_path_join(p, sizeof p, T.dir, name);
        ck_assert_int_eq(unlink(p), 0);
    } else {
        damage_file(name, _i % 2 == 0 ? 10 : -1, _i % 2 == 1);
    }
    th_open_ok(&T);
    uint64_t term = rl_store_term(T.s), vote = rl_store_vote(T.s);
    ck_assert_msg((term == 6 && vote == 2) || (term == 5 && vote == 1),
                  "term %" PRIu64 " vote %" PRIu64, term, vote);
    ck_assert_msg(strstr(rl_store_recovery_note(T.s), name) != NULL,
                  "recovery note '%s' does not mention %s", rl_store_recovery_note(T.s), name);
    ck_assert_uint_eq(rl_store_last_index(T.s), 10);
    for (uint64_t i = 1; i <= 10; i++) {
        struct rl_store_entry out;
        ck_assert_int_eq(rl_store_read(T.s, i, &out), 0);
        free((void *)out.buf);
    }
    /* the store heals: after more metadata writes and a reopen, no note */
    ck_assert_int_eq(rl_store_set_term_vote(T.s, 9, 3), 0);
    ck_assert_int_eq(rl_store_set_term_vote(T.s, 10, 3), 0);
    th_reopen(&T);
    ck_assert_uint_eq(rl_store_term(T.s), 10);
    ck_assert_uint_eq(rl_store_vote(T.s), 3);
}
END_TEST

START_TEST(test_both_meta_copies_damaged)
{
    th_open_ok(&T);
    th_append_ok(&T, 10, 1, SEED);
    th_close(&T);
    if (_i == 0) {
        damage_file("meta-a", 0, false);
        damage_file("meta-b", -1, true);
    } else {
        char p[PATH_MAX];
        th_path_join(p, sizeof p, T.dir, "meta-a");
        unlink(p);
        th_path_join(p, sizeof p, T.dir, "meta-b");
        unlink(p);
    }
    int rc = th_open(&T);
    ck_assert_msg(rc == RLOG_ECORRUPT, "%s: %s", rlog_errname(rc), T.err);
    ck_assert_msg(strstr(T.err, "meta") != NULL, "errmsg '%s'", T.err);
}
END_TEST

/* A file named like a segment but holding garbage is refused, never a crash
 * and never silently dropped. _i: 0 garbage after the last segment, 1 garbage
 * replacing a middle segment, 2 short garbage after the last segment, 3
 * garbage replacing the highest-numbered segment file. */
START_TEST(test_garbage_segment)
{
    struct th_model m;
    th_model_init(&m);
    th_open_ok(&T);
    fill(&m, 400, 1, SEED);
    th_close(&T);
    static char names[256][NAME_MAX + 1];
    unsigned n = th_list_segments(T.dir, names, 256);
    ck_assert_uint_ge(n, 3);
    char victim[NAME_MAX + 1];
    size_t glen = RL_STORE_MIN_SEGMENT_SIZE;
    if (_i == 1) {
        snprintf(victim, sizeof victim, "%s", names[n / 2]);
    } else if (_i == 3) {
        snprintf(victim, sizeof victim, "%s", names[n - 1]);
    } else {
        unsigned long long seq = strtoull(names[n - 1] + 4, NULL, 16);
        snprintf(victim, sizeof victim, "seg-%016llx.log", seq + 5);
        if (_i == 2)
            glen = 40;
    }
    unsigned char *g = malloc(glen);
    uint64_t x = 99;
    for (size_t i = 0; i < glen; i++)
        g[i] = (unsigned char)th_rand(&x);
    char p[PATH_MAX];
    segment_path(p, sizeof p, victim);
    th_write_file(p, g, glen);
    free(g);
    int rc = th_open(&T);
    if (_i == 3 && rc == 0) {
        /* the newest file may be read as a torn first write into a new
         * segment: then it is cut, reported, and nothing before it is lost */
        ck_assert_msg(rl_store_recovery_note(T.s)[0] != '\0',
                      "garbage %s accepted silently", victim);
        check_model(&m, true);
        th_model_free(&m);
        return;
    }
    ck_assert_msg(rc == RLOG_ECORRUPT, "%s: %s (garbage in %s)", rlog_errname(rc), T.err, victim);
    ck_assert_msg(strstr(T.err, victim) != NULL, "errmsg '%s' does not name %s", T.err, victim);
    th_model_free(&m);
}
END_TEST

/* The sparse index files are a cache: damaged or missing, they are rebuilt. */
START_TEST(test_damaged_index_files)
{
    struct th_model m;
    th_model_init(&m);
    th_open_ok(&T);
    fill(&m, 600, 1, SEED);
    th_close(&T);
    DIR *d = opendir(T.dir);
    ck_assert_ptr_nonnull(d);
    struct dirent *de;
    unsigned k = 0, found = 0;
    while ((de = readdir(d)) != NULL) {
        size_t l = strlen(de->d_name);
        if (l < 5 || strcmp(de->d_name + l - 4, ".idx") != 0)
            continue;
        found++;
        char p[PATH_MAX];
        th_path_join(p, sizeof p, T.dir, de->d_name);
        switch (k++ % 3) {
        case 0: unlink(p); break;
        case 1: damage_file(de->d_name, 30, false); break;
        default: damage_file(de->d_name, -1, true); break;
        }
    }
    closedir(d);
    ck_assert_msg(found >= 3, "only %u index files for sealed segments", found);
    th_open_ok(&T);
    check_model(&m, true);
    th_model_free(&m);
}
END_TEST

/* ---- term / vote -------------------------------------------------------- */

START_TEST(test_term_vote)
{
    th_open_ok(&T);
    ck_assert_int_eq(rl_store_set_term_vote(T.s, 3, 2), 0);
    ck_assert_uint_eq(rl_store_term(T.s), 3);
    ck_assert_uint_eq(rl_store_vote(T.s), 2);
    th_reopen(&T);
    ck_assert_uint_eq(rl_store_term(T.s), 3);
    ck_assert_uint_eq(rl_store_vote(T.s), 2);
    th_append_ok(&T, 5, 3, SEED);
    for (uint64_t t = 4; t < 60; t++)
        ck_assert_int_eq(rl_store_set_term_vote(T.s, t, t % 3), 0);
    ck_assert_int_eq(rl_store_set_term_vote(T.s, 60, 0), 0);
    th_append_ok(&T, 5, 60, SEED);
    th_reopen(&T);
    ck_assert_uint_eq(rl_store_term(T.s), 60);
    ck_assert_uint_eq(rl_store_vote(T.s), 0);
    ck_assert_uint_eq(rl_store_last_index(T.s), 10);
    th_check_entry(&T, 7, 60, SEED, th_records(1, SEED) + th_records(2, SEED) + th_records(3, SEED) +
                   th_records(4, SEED) + th_records(5, SEED) + th_records(6, SEED));
}
END_TEST

/* ---- truncate and trim ----------------------------------------------------- */

/* 600 entries, a truncate into a sealed segment, 100 different entries. */
static void truncate_into_sealed(struct th_model *m)
{
    fill(m, 600, 1, SEED);
    ck_assert_int_eq(th_truncate(&T, 300), 0);
    th_model_truncate(m, 300);
    check_model(m, false);
    ck_assert_uint_eq(rl_store_next_index(T.s), 300);
    fill(m, 100, 2, SEED + 1);
    check_model(m, true);
}

START_TEST(test_truncate_suffix)
{
    struct th_model m;
    th_model_init(&m);
    th_open_ok(&T);
    truncate_into_sealed(&m);
    th_reopen(&T);
    check_model(&m, true);
    /* within the last segment */
    ck_assert_int_eq(th_truncate(&T, m.last - 2), 0);
    th_model_truncate(&m, m.last - 2);
    fill(&m, 5, 3, SEED + 2);
    th_reopen(&T);
    check_model(&m, true);
    /* everything */
    ck_assert_int_eq(th_truncate(&T, 1), 0);
    th_model_truncate(&m, 1);
    check_model(&m, true);
    th_reopen(&T);
    check_model(&m, true);
    fill(&m, 50, 4, SEED + 3);
    th_reopen(&T);
    check_model(&m, true);
    th_model_free(&m);
}
END_TEST

START_TEST(test_trim_prefix)
{
    struct th_model m;
    th_model_init(&m);
    th_open_ok(&T);
    fill(&m, 800, 1, SEED);
    unsigned before = count_segments();
    ck_assert_int_eq(th_trim(&T, 500), 0);
    th_model_trim(&m, 500);
    check_model(&m, true);
    ck_assert_msg(count_segments() < before, "trim deleted no segment (%u)", before);
    th_reopen(&T);
    check_model(&m, true);
    /* trim everything: the log is empty but keeps its place */
    ck_assert_int_eq(th_trim(&T, m.last + 1), 0);
    th_model_trim(&m, m.last + 1);
    check_model(&m, true);
    th_reopen(&T);
    check_model(&m, true);
    fill(&m, 40, 2, SEED + 1);
    th_reopen(&T);
    check_model(&m, true);
    th_model_free(&m);
}
END_TEST

/* Retention by record: records before the offset are gone even inside the
 * first kept entry, entries stay readable by index, and the point only moves
 * forward, across a reopen too. */
START_TEST(test_trim_records)
{
    struct th_model m;
    th_model_init(&m);
    th_open_ok(&T);
    fill(&m, 300, 1, SEED);
    uint64_t idx = 100;
    while (m.e[idx].records < 2)
        idx++;
    uint64_t off = m.e[idx].offset + 1; /* inside entry idx */
    ck_assert_int_eq(th_trim_records(&T, idx - 10, off), 0);
    for (int round = 0; round < 2; round++) {
        ck_assert_uint_eq(rl_store_first_index(T.s), idx - 10);
        ck_assert_uint_eq(rl_store_first_offset(T.s), off);
        struct rl_store_entry e;
        ck_assert_int_eq(rl_store_read_offset(T.s, off - 1, &e), RLOG_ETRIMMED);
        ck_assert_int_eq(rl_store_read_offset(T.s, off, &e), 0);
        ck_assert_uint_eq(e.index, idx);
        free((void *)e.buf);
        th_check_entry(&T, idx - 10, 1, SEED, m.e[idx - 10].offset); /* by index */
        th_reopen(&T);
    }
    /* never back: an older offset or index changes nothing */
    ck_assert_int_eq(th_trim_records(&T, 5, 3), 0);
    ck_assert_uint_eq(rl_store_first_index(T.s), idx - 10);
    ck_assert_uint_eq(rl_store_first_offset(T.s), off);
    ck_assert_int_eq(th_trim_records(&T, 1, th_model_next_offset(&m) + 1), RLOG_EINVAL);
    /* a truncation may not cut into hidden (hence committed) records */
    ck_assert_int_eq(th_truncate(&T, idx), RLOG_EINVAL);
    /* everything hidden: the log keeps its entries, reads all trimmed */
    ck_assert_int_eq(th_trim_records(&T, idx, th_model_next_offset(&m)), 0);
    th_reopen(&T);
    ck_assert_uint_eq(rl_store_first_offset(T.s), th_model_next_offset(&m));
    ck_assert_uint_eq(rl_store_first_index(T.s), idx);
    ck_assert_uint_eq(rl_store_last_index(T.s), m.last);
    fill(&m, 20, 2, SEED + 1);
    th_reopen(&T);
    th_check_entry(&T, m.last, 2, SEED + 1, m.e[m.last].offset);
    th_model_free(&m);
}
END_TEST

/* Reset: the whole log is replaced by an empty one starting elsewhere (a
 * replica catching up past a peer's trim point), and appends go on there. */
START_TEST(test_reset)
{
    struct th_model m;
    th_model_init(&m);
    th_open_ok(&T);
    fill(&m, 400, 1, SEED);
    unsigned before = count_segments();
    ck_assert_uint_ge(before, 2);
    ck_assert_int_eq(th_reset(&T, 5000, 77777), 0);
    th_model_reset(&m, 5000, 77777);
    check_model(&m, true);
    ck_assert_uint_le(count_segments(), 1); /* at most the spare */
    ck_assert_uint_eq(rl_store_next_index(T.s), 5000);
    th_reopen(&T);
    check_model(&m, true);
    fill(&m, 300, 3, SEED + 1);
    check_model(&m, true);
    th_reopen(&T);
    check_model(&m, true);
    ck_assert_uint_eq(rl_store_first_offset(T.s), 77777);
    /* backwards works the same way, and appends queued after a reset
     * continue from it */
    struct th_op op;
    struct th_batch b;
    ck_assert_int_eq(th_reset_submit(&T, &op, 10, 20), 0);
    ck_assert_int_eq(th_batch_submit(&T, &b, 10, 5, 4, SEED + 2), 0);
    th_run_until(&T, &b.done);
    ck_assert_int_eq(op.status, 0);
    ck_assert_int_eq(b.status, 0);
    ck_assert(op.order < b.order);
    th_batch_free(&b);
    th_model_reset(&m, 10, 20);
    th_model_append(&m, 10, 5, 4, SEED + 2);
    check_model(&m, true);
    th_reopen(&T);
    check_model(&m, true);
    ck_assert_int_eq(th_reset(&T, 0, 0), RLOG_EINVAL);
    th_model_free(&m);
}
END_TEST

/* Requests complete in submission order: append, truncate, append, trim. */
START_TEST(test_queued_mixed_requests)
{
    struct th_model m;
    th_model_init(&m);
    th_open_ok(&T);
    fill(&m, 100, 1, SEED);
    struct th_batch a, b;
    struct th_op tr, tm;
    ck_assert_int_eq(th_batch_submit(&T, &a, 101, 20, 1, SEED), 0);
    ck_assert_int_eq(th_truncate_submit(&T, &tr, 90), 0);
    ck_assert_uint_eq(rl_store_next_index(T.s), 90);
    ck_assert_int_eq(th_batch_submit(&T, &b, 90, 30, 2, SEED + 1), 0);
    ck_assert_int_eq(th_trim_submit(&T, &tm, 50), 0);
    th_run_until(&T, &tm.done);
    ck_assert_int_eq(a.status, 0);
    ck_assert_int_eq(tr.status, 0);
    ck_assert_int_eq(b.status, 0);
    ck_assert_int_eq(tm.status, 0);
    ck_assert(a.order < tr.order && tr.order < b.order && b.order < tm.order);
    th_model_append(&m, 101, 20, 1, SEED);
    th_model_truncate(&m, 90);
    th_model_append(&m, 90, 30, 2, SEED + 1);
    th_model_trim(&m, 50);
    check_model(&m, true);
    th_reopen(&T);
    check_model(&m, true);
    th_batch_free(&a);
    th_batch_free(&b);
    th_model_free(&m);
}
END_TEST

/* ---- direct and buffered writes ----------------------------------------- */

/* Appends across rollovers, truncates into a sealed and into the active
 * segment (the writer's copy of the tail block must follow each), appends
 * again and reopens; every write was direct, or none was. */
static void exercise_writes(bool want_direct)
{
    struct th_model m;
    th_model_init(&m);
    th_open_ok(&T);
    truncate_into_sealed(&m);
    ck_assert_int_eq(th_truncate(&T, m.last - 2), 0);
    th_model_truncate(&m, m.last - 2);
    fill(&m, 5, 3, SEED + 2);
    check_model(&m, true);
    struct rl_store_stats st;
    rl_store_stats(T.s, &st);
    ck_assert_uint_ge(st.rollovers, 2);
    ck_assert_uint_eq(st.direct_writes, want_direct ? st.syncs : 0);
    th_reopen(&T);
    check_model(&m, true);
    fill(&m, 20, 4, SEED + 3); /* the tail block is loaded after recovery */
    rl_store_stats(T.s, &st);
    ck_assert_uint_eq(st.direct_writes, want_direct ? st.syncs : 0);
    th_reopen(&T);
    check_model(&m, true);
    ck_assert_str_eq(rl_store_recovery_note(T.s), "");
    th_model_free(&m);
}

/* T.dir is on /tmp (ext4 here), which takes O_DIRECT. */
START_TEST(test_direct_writes)
{
    exercise_writes(true);
}
END_TEST

/* A file system that refuses O_DIRECT: the same, with buffered writes. */
START_TEST(test_buffered_fallback)
{
    struct rl_fs_faults f = {.no_direct = 1};
    rl_fs_faults_set(&f);
    exercise_writes(false);
    rl_fs_faults_clear();
}
END_TEST

/* tmpfs (/dev/shm) refused O_DIRECT before Linux 6.6 and takes it since;
 * either way the data round-trips. */
START_TEST(test_tmpfs_round_trip)
{
    struct stat st;
    if (stat("/dev/shm", &st) != 0 || !S_ISDIR(st.st_mode) || access("/dev/shm", W_OK) != 0)
        return;
    th_rmrf(T.dir);
    snprintf(T.dir, sizeof T.dir, "/dev/shm/rlog-test-XXXXXX");
    ck_assert_msg(mkdtemp(T.dir) != NULL, "mkdtemp: %s", strerror(errno));
    struct th_model m;
    th_model_init(&m);
    th_open_ok(&T);
    fill(&m, 400, 1, SEED);
    th_reopen(&T);
    check_model(&m, true);
    th_model_free(&m);
}
END_TEST

static Suite *store_suite(void)
{
    Suite *s = suite_create("store");
    TCase *tc = tcase_create("basic");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_fresh_store_is_empty);
    tcase_add_test(tc, test_creates_missing_dir);
    tcase_add_test(tc, test_round_trip_many_rollovers);
    tcase_add_test(tc, test_segments_grow);
    tcase_add_test(tc, test_large_entry_regrows_spare);
    tcase_add_test(tc, test_read_by_offset);
    tcase_add_test(tc, test_shared_reads_beside_the_writer);
    tcase_add_test(tc, test_zero_length_payload);
    tcase_add_test(tc, test_truncate_behind_replaced_suffix);
    tcase_add_test(tc, test_request_fields_and_durable_bounds);
    suite_add_tcase(s, tc);

    tc = tcase_create("group_commit");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_group_commit);
    tcase_add_test(tc, test_max_batch_bytes_splits_writes);
    tcase_add_test(tc, test_close_cancels_queued);
    suite_add_tcase(s, tc);

    tc = tcase_create("validation");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_append_index_gap);
    tcase_add_test(tc, test_append_too_big);
    tcase_add_test(tc, test_truncate_trim_validation);
    tcase_add_test(tc, test_bad_config);
    suite_add_tcase(s, tc);

    tc = tcase_create("dir");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_busy_same_process);
    tcase_add_test(tc, test_busy_other_process);
    tcase_add_test(tc, test_foreign_dir);
    tcase_add_test(tc, test_foreign_format_file);
    tcase_add_test(tc, test_newer_format_version);
    tcase_add_test(tc, test_damaged_format);
    tcase_add_loop_test(tc, test_one_meta_copy_damaged, 0, 5);
    tcase_add_loop_test(tc, test_both_meta_copies_damaged, 0, 2);
    tcase_add_loop_test(tc, test_garbage_segment, 0, 4);
    tcase_add_test(tc, test_damaged_index_files);
    suite_add_tcase(s, tc);

    tc = tcase_create("meta");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_term_vote);
    suite_add_tcase(s, tc);

    tc = tcase_create("truncate_trim");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_truncate_suffix);
    tcase_add_test(tc, test_trim_prefix);
    tcase_add_test(tc, test_trim_records);
    tcase_add_test(tc, test_reset);
    tcase_add_test(tc, test_direct_writes);
    tcase_add_test(tc, test_buffered_fallback);
    tcase_add_test(tc, test_tmpfs_round_trip);
    tcase_add_test(tc, test_queued_mixed_requests);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    th_tmp_begin();
    SRunner *sr = srunner_create(store_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    th_tmp_end();
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
