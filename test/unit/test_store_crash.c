/* Crash safety of the segment store: simulated power loss at every fdatasync
 * (with and without torn writes), torn and garbled tails, flipped bits,
 * truncate/trim interrupted by a crash, a full disk and failing writes. */
#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/env.h"
#include "lib/store_helpers.h"

#define SEED 0xc0ffee
static struct th_store T;
static uint64_t rng;

static void setup(void)
{
    rl_fs_faults_clear();
    th_init(&T);
    rng = 7;
}

static void teardown(void)
{
    rl_env = NULL;
    rl_fs_faults_clear();
    th_fini(&T);
}

/* Waits for the store's background jobs (spare segment, index files): the
 * store keeps no handle of its own on the loop, so the loop ends when they
 * are done. Makes fault countdowns deterministic. */
static void drain(void)
{
    uv_run(&T.loop, UV_RUN_DEFAULT);
}

static void close_cb_flag(void *arg)
{
    *(bool *)arg = true;
}

static void check_model(const struct th_model *m)
{
    char msg[512];
    ck_assert_msg(th_model_matches(&T, m, true, 0, &rng, msg, sizeof msg), "%s", msg);
}

static void fill(struct th_model *m, unsigned count, uint64_t term, uint64_t seed)
{
    th_fill(&T, m, &rng, count, 12, term, seed);
}

/* After a crash and reopen: the durable end is between what was acknowledged
 * and what was submitted, and everything up to it is what was submitted.
 * The model (holding every submitted entry) is cut to the durable end. */
static void adopt_durable_end(struct th_model *m, uint64_t acked_end, uint64_t sub_end)
{
    uint64_t last = rl_store_last_index(T.s);
    ck_assert_msg(last >= acked_end && last <= sub_end,
                  "durable end %" PRIu64 " outside [acked %" PRIu64 ", submitted %" PRIu64 "]",
                  last, acked_end, sub_end);
    th_model_truncate(m, last + 1);
    check_model(m);
}

/* Entries 1..end read back as the model has them, by index and by offset. */
static void check_reads_up_to(const struct th_model *m, uint64_t end)
{
    for (uint64_t i = m->first; i <= end; i++) {
        const struct th_model_entry *e = &m->e[i];
        th_check_entry(&T, i, e->term, e->seed, e->offset);
        if (e->records == 0)
            continue;
        struct rl_store_entry out;
        int rc = rl_store_read_offset(T.s, e->offset, &out);
        ck_assert_msg(rc == 0, "read of record %" PRIu64 ": %s: %s", e->offset, rlog_errname(rc),
                      rl_store_errmsg(T.s));
        ck_assert_uint_eq(out.index, i);
        free((void *)out.buf);
    }
}

/* ---- power loss at the k-th fdatasync -------------------------------------- */

static void crash_loop(unsigned k, long tear)
{
    struct th_model m;
    th_model_init(&m);
    th_open_ok(&T);
    fill(&m, 40, 1, SEED);
    drain();
    struct rl_fs_faults f = {.crash_at_sync = k, .tear_bytes = tear};
    rl_fs_faults_set(&f);
    uint64_t acked_end = m.last, sub_end = m.last;
    uint64_t term = 1, acked_term = 0;
    bool failed = false;
    for (unsigned round = 0; round < 40 && !failed; round++) {
        enum { NB = 4 };
        struct th_batch b[NB];
        memset(b, 0, sizeof b);
        for (unsigned i = 0; i < NB; i++) {
            unsigned n = (unsigned)th_rand_range(&rng, 1, 10);
            int rc = th_batch_submit(&T, &b[i], sub_end + 1, n, term, SEED);
            if (rc != 0) {
                ck_assert_msg(rc == RLOG_EFATAL, "append: %s", rlog_errname(rc));
                th_batch_free(&b[i]);
                failed = true;
                break;
            }
            th_model_append(&m, sub_end + 1, n, term, SEED);
            sub_end += n;
        }
        for (unsigned i = 0; i < NB; i++) {
            if (b[i].e == NULL)
                continue;
            th_run_until(&T, &b[i].done);
        }
        for (unsigned i = 0; i < NB; i++) {
            if (b[i].e == NULL)
                continue;
            ck_assert_int_eq(b[i].fired, 1);
            if (b[i].status == 0) {
                ck_assert_msg(!failed, "append acknowledged after an earlier one failed");
                acked_end = b[i].first + b[i].n - 1;
            } else {
                failed = true;
            }
            th_batch_free(&b[i]);
        }
        if (!failed && round % 3 == 2) {
            int rc = rl_store_set_term_vote(T.s, acked_term + 1, term % 3);
            if (rc == 0)
                acked_term++;
            else
                failed = true;
        }
    }
    /* 40 rounds make well over 40 fdatasyncs: the crash did happen */
    ck_assert_msg(failed, "no failure in 40 rounds with a crash at sync %u", k);
    if (failed) {
        ck_assert_msg(rl_fs_crashed(), "an append failed without a crash: %s",
                      rl_store_errmsg(T.s));
        ck_assert(rl_store_is_fatal(T.s));
        struct th_batch b;
        ck_assert_int_eq(th_batch_submit(&T, &b, rl_store_next_index(T.s), 1, term, SEED),
                         RLOG_EFATAL);
        th_batch_free(&b);
    }
    th_close(&T);
    rl_fs_faults_clear();
    th_open_ok(&T);
    uint64_t t = rl_store_term(T.s);
    ck_assert_msg(t == acked_term || t == acked_term + 1,
                  "term %" PRIu64 " after crash, acknowledged %" PRIu64, t, acked_term);
    adopt_durable_end(&m, acked_end, sub_end);
    /* the recovered log takes writes, and they survive a reopen */
    fill(&m, 30, term + 1, SEED + 1);
    th_reopen(&T);
    check_model(&m);
    th_model_free(&m);
}

START_TEST(test_crash_at_sync)
{
    crash_loop((unsigned)_i, 0);
}
END_TEST

START_TEST(test_crash_at_sync_torn)
{
    static const long tears[] = {1, 7, 8, 55, 56, 57, 100, 1000, 4096, 5000};
    crash_loop((unsigned)(_i / 10) + 1, tears[_i % 10]);
}
END_TEST

/* ---- torn and garbled tails at many byte positions ----------------------- */

struct frame_span {
    uint64_t start, body_end, end; /* body_end: header + payload, before padding */
};

/* Frame spans of entries first..first+n-1 written as one batch at pos. */
static void spans_of(struct frame_span *sp, uint64_t first, unsigned n, uint64_t seed)
{
    uint64_t pos = 0;
    for (unsigned i = 0; i < n; i++) {
        uint32_t len = th_payload_len(first + i, seed);
        sp[i].start = pos;
        sp[i].body_end = pos + RL_STORE_FRAME_HEADER_SIZE + len;
        sp[i].end = pos + RL_STORE_FRAME_HEADER_SIZE + ((len + 7u) & ~7u);
        pos = sp[i].end;
    }
}

/* The store after a cut at byte p of the final batch: frames complete before
 * p survive, frames starting at or after p are gone, the one across p may go
 * either way only if what is missing of it is padding. */
static void check_cut(struct th_model *m, uint64_t base_last, const struct frame_span *sp,
                      unsigned n, uint64_t p)
{
    uint64_t must = base_last, may = base_last;
    for (unsigned i = 0; i < n; i++) {
        if (sp[i].body_end <= p)
            may = base_last + i + 1;
        if (sp[i].end <= p)
            must = base_last + i + 1;
    }
    uint64_t last = rl_store_last_index(T.s);
    ck_assert_msg(last >= must && last <= may,
                  "cut at byte %" PRIu64 " of the batch: last %" PRIu64 ", want %" PRIu64
                  "..%" PRIu64 " (note '%s')",
                  p, last, must, may, rl_store_recovery_note(T.s));
    /* partial bytes of a lost frame were found and cut: say so */
    for (unsigned i = 0; i < n; i++)
        if (base_last + i + 1 == last + 1 && p > sp[i].start)
            ck_assert_msg(rl_store_recovery_note(T.s)[0] != '\0',
                          "cut at byte %" PRIu64 " left no recovery note", p);
    th_model_truncate(m, last + 1);
    check_model(m);
}

/* Positions worth tearing at: every frame boundary and its neighbours, the
 * end of each header and payload, plus a sweep. */
static unsigned tear_positions(const struct frame_span *sp, unsigned n, uint64_t *out,
                               unsigned max)
{
    unsigned k = 0;
    uint64_t total = sp[n - 1].end;
    for (unsigned i = 0; i < n && k + 8 < max; i++) {
        uint64_t c[] = {sp[i].start, sp[i].start + 1, sp[i].start + 8,
                        sp[i].start + RL_STORE_FRAME_HEADER_SIZE - 1,
                        sp[i].start + RL_STORE_FRAME_HEADER_SIZE, sp[i].body_end - 1,
                        sp[i].end - 1};
        for (unsigned j = 0; j < sizeof c / sizeof c[0]; j++)
            if (c[j] < total)
                out[k++] = c[j];
    }
    for (uint64_t p = 3; p < total && k < max; p += total / 24 + 1)
        out[k++] = p;
    return k;
}

enum { TAIL_N = 6 };

/* Opens a fresh store with 1 MiB segments (everything in one segment), 30
 * synced entries, and arms a crash at the sync of the next batch. */
static void tail_setup(struct th_model *m)
{
    th_init(&T);
    T.cfg.segment_size = 1u << 20;
    th_model_init(m);
    th_open_ok(&T);
    fill(m, 30, 1, SEED);
    drain();
}

/* Where the batch after tail_setup's 30 entries starts in its segment. */
static uint64_t tail_batch_pos(void)
{
    uint64_t pos = RL_STORE_SEGMENT_HEADER_SIZE;
    for (uint64_t j = 1; j <= 30; j++)
        pos += RL_STORE_FRAME_HEADER_SIZE + ((th_payload_len(j, SEED) + 7u) & ~7u);
    return pos;
}

/* Bytes the store's next write puts before the batch: a direct write starts
 * at the beginning of the block the batch starts in, rewriting the durable
 * bytes there (writer.c); a buffered one at the batch. */
static uint64_t tail_write_lead(void)
{
    struct rl_store_stats st;
    rl_store_stats(T.s, &st);
    return st.direct_writes ? tail_batch_pos() % 4096 : 0;
}

/* After reopening a store whose final batch was cut at byte p: the cut is
 * right, and the store takes and keeps new entries. Ends the case. */
static void finish_tail_case(struct th_model *m, const struct frame_span *sp, uint64_t p)
{
    check_cut(m, 30, sp, TAIL_N, p);
    th_append_ok(&T, 3, 2, SEED + 10);
    th_model_append(m, m->last + 1, 3, 2, SEED + 10);
    th_reopen(&T);
    check_model(m);
    th_model_free(m);
    th_fini(&T);
}

/* One torn final batch: `tear` bytes of its write survive the crash, which
 * must look like a cut at byte p of the batch. With lead_mode 1 or 2 the tear
 * falls inside the durable bytes a direct write rewrites before the batch
 * (at half of them, then at all but one): the batch is lost whole. */
static void torn_tail_case(const struct frame_span *sp, uint64_t p, int lead_mode)
{
    struct th_model m;
    tail_setup(&m);
    uint64_t lead = tail_write_lead();
    if (lead_mode && lead == 0) { /* a buffered write rewrites nothing */
        th_model_free(&m);
        th_fini(&T);
        return;
    }
    uint64_t tear = lead_mode == 1 ? lead / 2 : lead_mode == 2 ? lead - 1 : lead + p;
    struct rl_fs_faults f = {.crash_at_sync = 1, .tear_bytes = tear ? (long)tear : -1};
    rl_fs_faults_set(&f);
    th_model_append(&m, 31, TAIL_N, 1, SEED + 9);
    int rc = th_append(&T, 31, TAIL_N, 1, SEED + 9);
    ck_assert_msg(rc != 0 && rl_fs_crashed(), "tear at %" PRIu64 ": append %s", tear,
                  rlog_errname(rc));
    th_close(&T);
    rl_fs_faults_clear();
    th_open_ok(&T);
    finish_tail_case(&m, sp, p);
}

START_TEST(test_torn_tail_positions)
{
    struct frame_span sp[TAIL_N];
    spans_of(sp, 31, TAIL_N, SEED + 9);
    uint64_t pos[128];
    unsigned np = tear_positions(sp, TAIL_N, pos, 128);
    th_fini(&T);
    for (unsigned i = 0; i < np; i++)
        torn_tail_case(sp, pos[i], 0);
    torn_tail_case(sp, 0, 1);
    torn_tail_case(sp, 0, 2);
    th_init(&T); /* for teardown */
}
END_TEST

/* The process dies after writing the final batch (not synced, so not
 * acknowledged); the disk then holds garbage from byte p of that batch. */
START_TEST(test_garbled_tail_positions)
{
    struct frame_span sp[TAIL_N];
    spans_of(sp, 31, TAIL_N, SEED + 9);
    uint64_t pos[128];
    unsigned np = tear_positions(sp, TAIL_N, pos, 128);
    th_fini(&T);
    for (unsigned i = 0; i < np; i++) {
        struct th_model m;
        tail_setup(&m);
        uint64_t batch_pos = tail_batch_pos();
        struct rl_fs_faults f = {.crash_at_sync = 1, .tear_bytes = 1L << 30};
        rl_fs_faults_set(&f); /* the whole batch reaches the disk, unsynced */
        th_model_append(&m, 31, TAIL_N, 1, SEED + 9);
        ck_assert_int_ne(th_append(&T, 31, TAIL_N, 1, SEED + 9), 0);
        th_close(&T);
        rl_fs_faults_clear();
        unsigned char n31[16];
        th_payload_fill(n31, 16, 31, SEED + 9);
        char seg[NAME_MAX + 1];
        uint64_t seg_pos;
        ck_assert(th_payload_len(31, SEED + 9) >= 16);
        ck_assert(th_find_in_segments(T.dir, n31, 16, seg, sizeof seg, &seg_pos));
        char path[PATH_MAX];
        th_path_join(path, sizeof path, T.dir, seg);
        size_t len;
        unsigned char *buf = th_read_file(path, &len);
        /* sanity: the batch is where the documented framing puts it */
        unsigned char want[16];
        uint32_t l0 = th_payload_len(31, SEED + 9);
        th_payload_fill(want, l0 < 16 ? l0 : 16, 31, SEED + 9);
        ck_assert_msg(memcmp(buf + batch_pos + RL_STORE_FRAME_HEADER_SIZE, want,
                             l0 < 16 ? l0 : 16) == 0,
                      "entry 31 is not at byte %" PRIu64, batch_pos);
        uint64_t x = pos[i] + 1;
        for (uint64_t b = batch_pos + pos[i]; b < batch_pos + sp[TAIL_N - 1].end; b++)
            buf[b] = (unsigned char)(th_rand(&x) | 1);
        th_write_file(path, buf, len);
        free(buf);
        th_open_ok(&T);
        finish_tail_case(&m, sp, pos[i]);
    }
    th_init(&T);
}
END_TEST

/* Power loss during a write that rolls over into a new segment: the batch is
 * one pwritev per segment, then one fdatasync per segment. If the new
 * segment's part reaches the disk and the old segment's part does not (no
 * order between files before fdatasync), recovery must cut the whole
 * unacknowledged batch, not refuse to open. _i picks how much of the new
 * segment's write survives. */
START_TEST(test_crash_torn_rollover_batch)
{
    static const long tears[] = {200, 1000, 1L << 30};
    struct th_model m;
    th_model_init(&m);
    th_open_ok(&T);
    /* fill the first segment to ~56 KiB with single-batch appends */
    uint64_t used = RL_STORE_SEGMENT_HEADER_SIZE;
    for (;;) {
        uint64_t i = m.last + 1;
        uint64_t fsz = RL_STORE_FRAME_HEADER_SIZE + ((th_payload_len(i, SEED) + 7u) & ~7u);
        if (used + fsz > 56 * 1024)
            break;
        th_append_ok(&T, 1, 1, SEED);
        th_model_append(&m, i, 1, 1, SEED);
        used += fsz;
    }
    struct rl_store_stats st;
    rl_store_stats(T.s, &st);
    ck_assert_uint_eq(st.segments, 1);
    drain(); /* the spare segment is ready */
    uint64_t base_last = m.last;
    struct rl_fs_faults f = {.crash_at_sync = 1, .tear_bytes = tears[_i]};
    rl_fs_faults_set(&f);
    /* ~20 KiB: crosses into the spare */
    int rc = th_append(&T, base_last + 1, 14, 1, SEED);
    ck_assert_msg(rc != 0 && rl_fs_crashed(), "append: %s", rlog_errname(rc));
    th_close(&T);
    rl_fs_faults_clear();
    rc = th_open(&T);
    ck_assert_msg(rc == 0, "open after power loss in a rollover write (tear %ld): %s: %s",
                  tears[_i], rlog_errname(rc), T.err);
    /* unacknowledged: any prefix of the batch may have survived */
    th_model_append(&m, base_last + 1, 14, 1, SEED);
    adopt_durable_end(&m, base_last, base_last + 14);
    th_append_ok(&T, 3, 2, SEED + 1);
    th_model_append(&m, m.last + 1, 3, 2, SEED + 1);
    th_reopen(&T);
    check_model(&m);
    th_model_free(&m);
}
END_TEST

/* ---- flipped bits ---------------------------------------------------------- */

/* Flips one bit in the middle of entry idx's payload; returns the file and
 * the byte position of the flip. */
static void flip_payload_bit(uint64_t idx, uint64_t seed, char *file, size_t flen,
                             uint64_t *at)
{
    uint32_t len = th_payload_len(idx, seed);
    ck_assert_uint_ge(len, 64);
    unsigned char needle[32];
    th_payload_fill(needle, 32, idx, seed);
    uint64_t pos;
    ck_assert_msg(th_find_in_segments(T.dir, needle, 32, file, flen, &pos),
                  "payload of %" PRIu64 " not found", idx);
    char path[PATH_MAX];
    th_path_join(path, sizeof path, T.dir, file);
    size_t n;
    unsigned char *buf = th_read_file(path, &n);
    *at = pos + len / 2;
    buf[*at] ^= 0x10;
    th_write_file(path, buf, n);
    free(buf);
}

/* An entry with a payload of at least 64 bytes in [lo, hi]. */
static uint64_t pick_entry(uint64_t lo, uint64_t hi, uint64_t seed)
{
    for (uint64_t i = lo; i <= hi; i++)
        if (th_payload_len(i, seed) >= 64)
            return i;
    ck_abort_msg("no entry with a payload in [%" PRIu64 ", %" PRIu64 "]", lo, hi);
    return 0;
}

START_TEST(test_flipped_bit_sealed_segment)
{
    struct th_model m;
    th_model_init(&m);
    th_open_ok(&T);
    fill(&m, 600, 1, SEED);
    th_close(&T);
    uint64_t victim = pick_entry(300, 320, SEED);
    char file[NAME_MAX + 1];
    uint64_t at;
    flip_payload_bit(victim, SEED, file, sizeof file, &at);
    static char names[64][NAME_MAX + 1];
    unsigned ns = th_list_segments(T.dir, names, 64);
    ck_assert_msg(strcmp(file, names[ns - 1]) != 0, "victim is in the last segment");
    int rc = th_open(&T);
    if (rc != 0) {
        ck_assert_msg(rc == RLOG_ECORRUPT, "%s: %s", rlog_errname(rc), T.err);
        ck_assert_msg(th_msg_names_position(T.err, file), "errmsg '%s'", T.err);
        return;
    }
    ck_assert_uint_eq(rl_store_last_index(T.s), 600);
    struct rl_store_entry out;
    rc = rl_store_read(T.s, victim, &out);
    ck_assert_msg(rc == RLOG_ECORRUPT, "read of damaged %" PRIu64 ": %s", victim,
                  rlog_errname(rc));
    ck_assert_msg(th_msg_names_position(rl_store_errmsg(T.s), file),
                  "errmsg '%s' does not name %s and a byte", rl_store_errmsg(T.s), file);
    if (m.e[victim].records > 0) {
        rc = rl_store_read_offset(T.s, m.e[victim].offset, &out);
        ck_assert_msg(rc == RLOG_ECORRUPT, "read_offset: %s", rlog_errname(rc));
    }
    ck_assert(!rl_store_is_fatal(T.s));
    th_check_entry(&T, victim - 1, 1, SEED, m.e[victim - 1].offset);
    th_check_entry(&T, victim + 1, 1, SEED, m.e[victim + 1].offset);
    th_check_entry(&T, 600, 1, SEED, m.e[600].offset);
    th_model_free(&m);
}
END_TEST

/* Builds a log whose last segment holds several separately synced writes and
 * returns the entry of an early one (a later write follows it in the same
 * segment). */
static uint64_t last_segment_with_later_writes(struct th_model *m, char *file, size_t flen)
{
    th_open_ok(&T);
    fill(m, 200, 1, SEED);
    /* six separately synced single-entry writes */
    uint64_t first_new = m->last + 1;
    for (unsigned i = 0; i < 6; i++) {
        th_append_ok(&T, 1, 1, SEED);
        th_model_append(m, m->last + 1, 1, 1, SEED);
    }
    th_close(&T);
    uint64_t victim = pick_entry(first_new, m->last - 2, SEED);
    /* is a later write in the same file? */
    unsigned char needle[32];
    uint64_t later = pick_entry(victim + 1, m->last, SEED);
    th_payload_fill(needle, 32, later, SEED);
    char lf[NAME_MAX + 1];
    uint64_t lpos;
    ck_assert(th_find_in_segments(T.dir, needle, 32, lf, sizeof lf, &lpos));
    uint64_t at;
    flip_payload_bit(victim, SEED, file, flen, &at);
    ck_assert_msg(strcmp(lf, file) == 0, "victim %" PRIu64 " (%s) and later %" PRIu64
                  " (%s) in different segments", victim, file, later, lf);
    return victim;
}

/* A later write proves the damaged entry was durable: not a torn tail. The
 * store opens with the entries after it, and that one entry is unreadable
 * (RLOG_ECORRUPT naming the file and byte) until repaired. */
START_TEST(test_flipped_bit_last_segment_then_valid_entries)
{
    struct th_model m;
    th_model_init(&m);
    char file[NAME_MAX + 1];
    uint64_t victim = last_segment_with_later_writes(&m, file, sizeof file);
    int rc = th_open(&T);
    ck_assert_msg(rc == 0, "%s: %s", rlog_errname(rc), T.err);
    ck_assert_uint_eq(rl_store_last_index(T.s), m.last);
    ck_assert_msg(strstr(rl_store_recovery_note(T.s), "damaged"), "note '%s'",
                  rl_store_recovery_note(T.s));
    ck_assert_uint_eq(rl_store_unreadable(T.s), 1);
    struct rl_store_entry out;
    rc = rl_store_read(T.s, victim, &out);
    ck_assert_msg(rc == RLOG_ECORRUPT, "read of damaged %" PRIu64 ": %s", victim,
                  rlog_errname(rc));
    ck_assert_msg(th_msg_names_position(rl_store_errmsg(T.s), file),
                  "errmsg '%s' does not name %s and a byte", rl_store_errmsg(T.s), file);
    th_check_entry(&T, victim - 1, 1, SEED, m.e[victim - 1].offset);
    for (uint64_t i = victim + 1; i <= m.last; i++)
        th_check_entry(&T, i, 1, SEED, m.e[i].offset);
    th_model_free(&m);
}
END_TEST

/* A flipped bit in the very last write cannot be told from a torn write: the
 * store cuts it and says so (documented limit, lib/store/segment.c). */
START_TEST(test_flipped_bit_in_last_write)
{
    struct th_model m;
    th_model_init(&m);
    T.cfg.segment_size = 1u << 20;
    th_open_ok(&T);
    fill(&m, 20, 1, SEED);
    uint64_t victim = pick_entry(21, 60, SEED);
    th_append_ok(&T, (unsigned)(victim - 20), 1, SEED);
    th_model_append(&m, 21, (unsigned)(victim - 20), 1, SEED);
    th_close(&T);
    char file[NAME_MAX + 1];
    uint64_t at;
    flip_payload_bit(victim, SEED, file, sizeof file, &at);
    th_open_ok(&T);
    ck_assert_uint_eq(rl_store_last_index(T.s), victim - 1);
    ck_assert_msg(rl_store_recovery_note(T.s)[0] != '\0', "no recovery note");
    th_model_truncate(&m, victim);
    check_model(&m);
    th_model_free(&m);
}
END_TEST

/* ---- truncate and trim with crashes ----------------------------------------- */

enum op_kind { OP_APPEND, OP_TRUNCATE, OP_TRIM, OP_RESET };
struct plan_op {
    enum op_kind kind;
    uint64_t index; /* append: first index; truncate/trim/reset: the index */
    unsigned n;
    uint64_t term, seed; /* reset: seed is the new first offset */
};

/* The states the log may be in after ops[0..k) completed, with op k (if an
 * append) possibly applied in part: is the store in one of them, for some
 * k >= acked? */
static void check_one_of(const struct th_model *base, const struct plan_op *ops, unsigned nops,
                         unsigned acked)
{
    struct th_model cur;
    memset(&cur, 0, sizeof cur);
    th_model_copy(&cur, base);
    char msg[512], all[4096] = "";
    size_t used = 0;
    for (unsigned k = 0; k <= nops; k++) {
        if (k >= acked) {
            if (th_model_matches(&T, &cur, true, 0, &rng, msg, sizeof msg)) {
                th_model_free(&cur);
                return;
            }
            used += (size_t)snprintf(all + used, used < sizeof all ? sizeof all - used : 0,
                                     "\n after %u ops: %s", k, msg);
            if (k < nops && ops[k].kind == OP_APPEND) {
                for (unsigned part = 1; part < ops[k].n; part++) {
                    struct th_model p;
                    memset(&p, 0, sizeof p);
                    th_model_copy(&p, &cur);
                    th_model_append(&p, ops[k].index, part, ops[k].term, ops[k].seed);
                    bool ok = th_model_matches(&T, &p, true, 0, &rng, msg, sizeof msg);
                    th_model_free(&p);
                    if (ok) {
                        th_model_free(&cur);
                        return;
                    }
                }
            }
        }
        if (k == nops)
            break;
        const struct plan_op *o = &ops[k];
        if (o->kind == OP_APPEND)
            th_model_append(&cur, o->index, o->n, o->term, o->seed);
        else if (o->kind == OP_TRUNCATE)
            th_model_truncate(&cur, o->index);
        else if (o->kind == OP_RESET)
            th_model_reset(&cur, o->index, o->seed);
        else
            th_model_trim(&cur, o->index);
    }
    th_model_free(&cur);
    ck_abort_msg("store [%" PRIu64 ", %" PRIu64 "] matches no allowed state (%u acked):%s",
                 rl_store_first_index(T.s), rl_store_last_index(T.s), acked, all);
}

static void run_plan_with_crash(unsigned k, const struct plan_op *ops, unsigned nops,
                                unsigned base_entries)
{
    struct th_model base;
    th_model_init(&base);
    th_open_ok(&T);
    fill(&base, base_entries, 1, SEED);
    drain();
    struct rl_fs_faults f = {.crash_at_sync = k};
    rl_fs_faults_set(&f);
    struct th_batch b[16];
    struct th_op op[16];
    ck_assert_uint_le(nops, 16);
    unsigned submitted = 0;
    for (unsigned i = 0; i < nops; i++) {
        int rc;
        if (ops[i].kind == OP_APPEND)
            rc = th_batch_submit(&T, &b[i], ops[i].index, ops[i].n, ops[i].term, ops[i].seed);
        else if (ops[i].kind == OP_TRUNCATE)
            rc = th_truncate_submit(&T, &op[i], ops[i].index);
        else if (ops[i].kind == OP_RESET)
            rc = th_reset_submit(&T, &op[i], ops[i].index, ops[i].seed);
        else
            rc = th_trim_submit(&T, &op[i], ops[i].index);
        ck_assert_msg(rc == 0, "op %u: %s", i, rlog_errname(rc));
        submitted++;
    }
    unsigned acked = 0;
    bool failed = false;
    for (unsigned i = 0; i < submitted; i++) {
        bool *done = ops[i].kind == OP_APPEND ? &b[i].done : &op[i].done;
        th_run_until(&T, done);
        int st = ops[i].kind == OP_APPEND ? b[i].status : op[i].status;
        if (st == 0) {
            ck_assert_msg(!failed, "op %u acknowledged after an earlier failure", i);
            acked = i + 1;
        } else {
            failed = true;
        }
    }
    for (unsigned i = 0; i < submitted; i++)
        if (ops[i].kind == OP_APPEND)
            th_batch_free(&b[i]);
    drain();
    ck_assert_msg(!failed || rl_fs_crashed(), "failure without a crash: %s",
                  rl_store_errmsg(T.s));
    th_close(&T);
    rl_fs_faults_clear();
    th_open_ok(&T);
    check_one_of(&base, ops, nops, acked);
    /* the store takes writes after recovery */
    uint64_t next = rl_store_next_index(T.s);
    ck_assert_uint_eq(next, rl_store_last_index(T.s) + 1);
    th_append_ok(&T, 4, 9, SEED + 99);
    th_reopen(&T);
    ck_assert_uint_eq(rl_store_last_index(T.s), next + 3);
    th_check_entry(&T, next + 3, 9, SEED + 99, rl_store_next_offset(T.s) -
                   th_records(next + 3, SEED + 99));
    th_model_free(&base);
}

START_TEST(test_crash_during_truncate_and_trim)
{
    const struct plan_op ops[] = {
        {OP_TRUNCATE, 200, 0, 0, 0},
        {OP_APPEND, 200, 15, 2, SEED + 1},
        {OP_APPEND, 215, 25, 2, SEED + 1},
        {OP_TRIM, 150, 0, 0, 0},
        {OP_APPEND, 240, 10, 2, SEED + 1},
        {OP_TRUNCATE, 230, 0, 0, 0},
        {OP_APPEND, 230, 12, 3, SEED + 2},
    };
    run_plan_with_crash((unsigned)_i + 1, ops, sizeof ops / sizeof ops[0], 300);
}
END_TEST

START_TEST(test_crash_during_trim_alone)
{
    const struct plan_op ops[] = {{OP_TRIM, 450, 0, 0, 0}};
    run_plan_with_crash((unsigned)_i + 1, ops, 1, 600);
}
END_TEST

START_TEST(test_crash_during_truncate_into_sealed_segment)
{
    const struct plan_op ops[] = {
        {OP_TRUNCATE, 100, 0, 0, 0},
        {OP_APPEND, 100, 30, 2, SEED + 5},
    };
    run_plan_with_crash((unsigned)_i + 1, ops, 2, 600);
}
END_TEST

/* A reset interrupted at every sync leaves the old log or the new one, and
 * appends after it are there or not, in order. */
START_TEST(test_crash_during_reset)
{
    const struct plan_op ops[] = {
        {OP_APPEND, 601, 20, 1, SEED + 1},
        {OP_RESET, 2000, 0, 0, 50000},
        {OP_APPEND, 2000, 30, 5, SEED + 3},
        {OP_TRIM, 2010, 0, 0, 0},
    };
    run_plan_with_crash((unsigned)_i + 1, ops, sizeof ops / sizeof ops[0], 600);
}
END_TEST

/* ---- full disk and failing writes ------------------------------------------ */

START_TEST(test_disk_full_at_new_segment)
{
    struct th_model m;
    th_model_init(&m);
    th_open_ok(&T);
    drain();
    struct rl_fs_faults f = {.zero_fill_fail_at = 1, .zero_fill_errno = ENOSPC};
    int rc = 0;
    unsigned i;
    for (i = 0; i < 400; i++) {
        /* every new segment fails, the disk stays full; drain() lets the
         * background spare job (which fails too) finish under this plan */
        rl_fs_faults_set(&f);
        uint64_t first = rl_store_next_index(T.s);
        rc = th_append(&T, first, 4, 1, SEED);
        drain();
        if (rc != 0)
            break;
        th_model_append(&m, first, 4, 1, SEED);
    }
    ck_assert_msg(rc == RLOG_ENOSPC, "after %u appends: %s", i, rlog_errname(rc));
    ck_assert(!rl_store_is_fatal(T.s));
    ck_assert_msg(strstr(rl_store_errmsg(T.s), "seg") != NULL, "errmsg '%s'",
                  rl_store_errmsg(T.s));
    /* nothing stored was lost, the next index is back at the durable end */
    check_model(&m);
    /* still full: still refused, still not fatal */
    rl_fs_faults_set(&f);
    rc = th_append(&T, rl_store_next_index(T.s), 4, 1, SEED);
    ck_assert_int_eq(rc, RLOG_ENOSPC);
    ck_assert(!rl_store_is_fatal(T.s));
    check_model(&m);
    /* room again */
    rl_fs_faults_clear();
    fill(&m, 100, 2, SEED + 1);
    check_model(&m);
    th_reopen(&T);
    check_model(&m);
    th_model_free(&m);
}
END_TEST

/* _i selects the fault: 0..2 the k-th write fails with EIO, 3 a short write,
 * 4..6 the k-th fdatasync fails. */
START_TEST(test_io_error_is_fatal)
{
    struct th_model m;
    th_model_init(&m);
    th_open_ok(&T);
    fill(&m, 20, 1, SEED);
    drain();
    struct rl_fs_faults f = {0};
    if (_i <= 2) {
        f.write_fail_at = (unsigned)_i + 1;
        f.write_errno = EIO;
    } else if (_i == 3) {
        f.write_fail_at = 2;
        f.write_errno = EIO;
        f.write_short_bytes = 100;
    } else {
        f.sync_fail_at = (unsigned)_i - 3;
        f.sync_errno = EIO;
    }
    rl_fs_faults_set(&f);
    enum { NB = 6 };
    struct th_batch b[NB];
    uint64_t sub_end = m.last, acked_end = m.last;
    memset(b, 0, sizeof b);
    unsigned nsub = 0;
    for (unsigned i = 0; i < NB; i++) {
        int rc = th_batch_submit(&T, &b[i], sub_end + 1, 2, 1, SEED);
        if (rc != 0) {
            ck_assert_msg(rc == RLOG_EFATAL, "append: %s", rlog_errname(rc));
            th_batch_free(&b[i]);
            break;
        }
        nsub++;
        th_model_append(&m, sub_end + 1, 2, 1, SEED);
        sub_end += 2;
        if (i % 2 == 1)
            th_run_until(&T, &b[i].done); /* several writes */
    }
    th_run_until(&T, &b[nsub - 1].done);
    bool failed = false;
    int first_err = 0;
    for (unsigned i = 0; i < nsub; i++) {
        ck_assert_int_eq(b[i].fired, 1);
        if (b[i].status == 0) {
            ck_assert_msg(!failed, "batch %u acknowledged after a failure", i);
            acked_end = b[i].first + 1;
        } else if (!failed) {
            failed = true;
            first_err = b[i].status;
        }
        th_batch_free(&b[i]);
    }
    ck_assert_msg(failed, "no append failed");
    ck_assert_msg(first_err == RLOG_EIO, "first failure %s", rlog_errname(first_err));
    ck_assert(rl_store_is_fatal(T.s));
    char cause[512];
    snprintf(cause, sizeof cause, "%s", rl_store_errmsg(T.s));
    ck_assert_msg(cause[0] != '\0', "no errmsg");
    /* every later write says fatal, and the first cause stays; what was
     * durable before the failure stays readable */
    struct th_batch x;
    ck_assert_int_eq(th_batch_submit(&T, &x, rl_store_next_index(T.s), 1, 1, SEED),
                     RLOG_EFATAL);
    th_batch_free(&x);
    struct th_op op;
    ck_assert_int_eq(th_truncate_submit(&T, &op, rl_store_last_index(T.s)), RLOG_EFATAL);
    ck_assert_int_eq(th_trim_submit(&T, &op, 2), RLOG_EFATAL);
    ck_assert_int_eq(rl_store_set_term_vote(T.s, 5, 5), RLOG_EFATAL);
    ck_assert_uint_ge(rl_store_last_index(T.s), acked_end);
    check_reads_up_to(&m, acked_end);
    ck_assert_str_eq(rl_store_errmsg(T.s), cause);
    th_close(&T);
    rl_fs_faults_clear();
    th_open_ok(&T);
    adopt_durable_end(&m, acked_end, sub_end);
    ck_assert_uint_eq(rl_store_term(T.s), 0);
    fill(&m, 10, 2, SEED + 1);
    th_reopen(&T);
    check_model(&m);
    th_model_free(&m);
}
END_TEST

/* ---- a request's job still running when the store fails or closes -------
 *
 * A failed term/vote write makes the store fatal, and a close cancels what
 * is queued; either can land while a truncate, trim or reset runs on the
 * threadpool, or while an append waits for its write on the loop. The
 * request of that job belongs to the store until the job completes, and
 * its owner frees it in the callback (as node.c and io.c do): a callback
 * fired early lets the job write into freed memory (issue 17, found by the
 * simulator). The test holds the store's deferred work through rl_env, the
 * simulator's seam, so the failure or close lands mid-job every time. */

enum { HELD_MAX = 16 };
static struct held_job {
    uv_work_t *req;
    uv_work_cb work;
    uv_after_work_cb after;
} held[HELD_MAX];
static unsigned nheld;
static bool jobs_released; /* the test has let the store's jobs run */

static int hold_work(uv_loop_t *loop, uv_work_t *req, uv_work_cb work, uv_after_work_cb after)
{
    (void)loop;
    ck_assert_uint_lt(nheld, HELD_MAX);
    held[nheld++] = (struct held_job){req, work, after};
    return 0;
}

static const struct rl_env hold_env = {.queue_work = hold_work};

/* Runs every held job and the jobs their completions queue, in order, then
 * one turn of the loop (an append's write runs there). */
static void release_jobs(void)
{
    jobs_released = true;
    for (unsigned i = 0; i < nheld; i++) {
        held[i].work(held[i].req);
        held[i].after(held[i].req, 0);
    }
    nheld = 0;
    uv_run(&T.loop, UV_RUN_NOWAIT);
}

/* What each callback saw. The request itself is gone by then. */
enum { PROBE_MAX = 4 };
static struct probe_seen {
    int tag, status;
    bool after_release;
} seen[PROBE_MAX];
static unsigned nseen;

struct probe {
    struct rl_store_req req;
    int tag;
};

static void probe_cb(struct rl_store_req *req, int status)
{
    struct probe *p = req->data;
    ck_assert_uint_lt(nseen, PROBE_MAX);
    seen[nseen++] = (struct probe_seen){p->tag, status, jobs_released};
    memset(p, 0xa5, sizeof *p); /* a store still using it reads garbage */
    free(p);
}

static struct probe *probe_new(int tag)
{
    struct probe *p = calloc(1, sizeof *p);
    ck_assert_ptr_nonnull(p);
    p->tag = tag;
    p->req.data = p;
    return p;
}

enum race_kind { RACE_APPEND, RACE_TRUNCATE, RACE_TRIM, RACE_TRIM_RECORDS, RACE_RESET };
static const char *const race_names[] = {"append", "truncate", "trim", "trim_records", "reset"};

/* Submits the request whose job will be running: it starts at once, since
 * nothing else is queued or in flight. */
static void submit_running(enum race_kind kind, const struct th_model *m, struct rl_store_entry *e)
{
    struct probe *p = probe_new(1);
    uint64_t next = rl_store_next_index(T.s);
    int rc = 0;
    switch (kind) {
    case RACE_APPEND:
        rc = rl_store_append(T.s, &p->req, e, 3, probe_cb);
        break;
    case RACE_TRUNCATE:
        rc = rl_store_truncate(T.s, &p->req, m->last - 50, probe_cb);
        break;
    case RACE_TRIM:
        rc = rl_store_trim(T.s, &p->req, 150, probe_cb);
        break;
    case RACE_TRIM_RECORDS:
        rc = rl_store_trim_records(T.s, &p->req, 150, m->e[200].offset, probe_cb);
        break;
    case RACE_RESET:
        rc = rl_store_reset(T.s, &p->req, next + 1000, th_model_next_offset(m) + 5000, probe_cb);
        break;
    }
    ck_assert_msg(rc == 0, "%s: %s", race_names[kind], rl_store_errmsg(T.s));
}

/* _i: the running request's kind (_i / 2); the term/vote write fails
 * (even _i) or the store closes (odd _i) while its job runs. Behind it
 * waits an append that no job has started. */
START_TEST(test_request_outlives_failure_while_its_job_runs)
{
    enum race_kind kind = (enum race_kind)(_i / 2);
    bool close_it = _i % 2;
    struct th_model m;
    th_model_init(&m);
    th_open_ok(&T);
    fill(&m, 300, 1, SEED);
    drain();
    rl_env = &hold_env;
    struct rl_store_entry *first = th_entries_make(rl_store_next_index(T.s), 3, 2, SEED + 1);
    submit_running(kind, &m, first);
    uint64_t behind_at = rl_store_next_index(T.s);
    struct rl_store_entry *behind = th_entries_make(behind_at, 2, 2, SEED + 2);
    struct probe *p = probe_new(2);
    ck_assert_int_eq(rl_store_append(T.s, &p->req, behind, 2, probe_cb), 0);

    bool closed = false;
    if (close_it) {
        rl_store_close(T.s, close_cb_flag, &closed);
        T.s = NULL;
    } else {
        struct rl_fs_faults f = {.sync_fail_at = 1, .sync_errno = EIO};
        rl_fs_faults_set(&f);
        ck_assert_int_eq(rl_store_set_term_vote(T.s, 7, 1), RLOG_EFATAL);
        rl_fs_faults_clear();
    }
    ck_assert_msg(nseen == 0, "%s: request %d completed (%s) while its job was running",
                  race_names[kind], seen[0].tag, rlog_errname(seen[0].status));

    for (unsigned turn = 0; turn < 100 && (nseen < 2 || (close_it && !closed)); turn++)
        release_jobs();
    ck_assert_uint_eq(nseen, 2);
    /* In submission order, each once, the running one with the outcome. */
    ck_assert_int_eq(seen[0].tag, 1);
    ck_assert_int_eq(seen[1].tag, 2);
    ck_assert_msg(seen[0].after_release, "%s completed before its job ran", race_names[kind]);
    ck_assert_int_eq(seen[0].status, close_it ? 0 : RLOG_EFATAL);
    ck_assert_int_eq(seen[1].status, close_it ? RLOG_ECANCELED : RLOG_EFATAL);
    if (close_it)
        ck_assert(closed);

    rl_env = NULL;
    th_close(&T);
    th_entries_free(first, 3);
    th_entries_free(behind, 2);
    th_model_free(&m);
}
END_TEST

static Suite *crash_suite(void)
{
    Suite *s = suite_create("store_crash");
    TCase *tc = tcase_create("power_loss");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_loop_test(tc, test_crash_at_sync, 1, 41);
    tcase_add_loop_test(tc, test_crash_at_sync_torn, 0, 60);
    suite_add_tcase(s, tc);

    tc = tcase_create("tails");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_torn_tail_positions);
    tcase_add_test(tc, test_garbled_tail_positions);
    tcase_add_loop_test(tc, test_crash_torn_rollover_batch, 0, 3);
    suite_add_tcase(s, tc);

    tc = tcase_create("bitflips");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_flipped_bit_sealed_segment);
    tcase_add_test(tc, test_flipped_bit_last_segment_then_valid_entries);
    tcase_add_test(tc, test_flipped_bit_in_last_write);
    suite_add_tcase(s, tc);

    tc = tcase_create("truncate_trim");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_loop_test(tc, test_crash_during_truncate_and_trim, 0, 16);
    tcase_add_loop_test(tc, test_crash_during_trim_alone, 0, 4);
    tcase_add_loop_test(tc, test_crash_during_truncate_into_sealed_segment, 0, 6);
    tcase_add_loop_test(tc, test_crash_during_reset, 0, 10);
    suite_add_tcase(s, tc);

    tc = tcase_create("errors");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_disk_full_at_new_segment);
    tcase_add_loop_test(tc, test_io_error_is_fatal, 0, 7);
    suite_add_tcase(s, tc);

    tc = tcase_create("job_races");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_loop_test(tc, test_request_outlives_failure_while_its_job_runs, 0, 10);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    th_tmp_begin();
    SRunner *sr = srunner_create(crash_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    th_tmp_end();
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
