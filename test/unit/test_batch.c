/* The batch layout of one raft entry (lib/batch/batch.c): build, seal and
 * parse round trips; every truncation and every flipped header byte
 * refused by the full check; the layout-only check trusting the checksum
 * but still refusing a bad layout; each record read back. */
#include <check.h>
#include <raft.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch/batch.h"
#include "common/bytes.h"

#define TS 1234567890123ull

/* Record i of a test batch: i % 13 bytes (record 0 empty), never all
 * zero padding, different for every i. */
static size_t rec_len(uint32_t i)
{
    return i % 13;
}

static void rec_fill(unsigned char *buf, uint32_t i)
{
    for (size_t k = 0; k < rec_len(i); k++)
        buf[k] = (unsigned char)(i * 31 + k + 1);
}

/* A sealed batch of n records; with `runs`, one run per 3 records (the
 * last possibly shorter), producer p = run number + 1, sequence 10 * p. */
static unsigned char *build(uint32_t n, bool runs, size_t *len)
{
    struct rl_batch_builder b;
    rl_batch_builder_init(&b);
    unsigned char rec[16];
    uint32_t in_run = 0, run = 0;
    for (uint32_t i = 0; i < n; i++) {
        rec_fill(rec, i);
        ck_assert_int_eq(rl_batch_add(&b, rec, rec_len(i)), 0);
        in_run++;
        if (runs && (in_run == 3 || i + 1 == n)) {
            run++;
            ck_assert_int_eq(rl_batch_add_run(&b, run, 10 * run, in_run), 0);
            in_run = 0;
        }
    }
    size_t want = n ? rl_batch_size_with(&b, 0) : 0;
    unsigned char *buf = rl_batch_seal(&b, TS, len);
    ck_assert_ptr_nonnull(buf);
    ck_assert_uint_eq(*len % 8, 0);
    /* size_with(0) counts one more (empty) record: 4 bytes of table more,
     * at most, than the sealed batch. */
    if (n)
        ck_assert_uint_le(*len, want);
    rl_batch_builder_free(&b);
    return buf;
}

/* Checks every record and run of a parsed view of build(n, runs). */
static void check_view(const struct rl_batch_view *v, uint32_t n, bool runs)
{
    ck_assert_uint_eq(v->count, n);
    ck_assert_uint_eq(v->timestamp, TS);
    ck_assert_uint_eq(v->trim_before, 0);
    unsigned char want[16];
    size_t data = 0;
    for (uint32_t i = 0; i < n; i++) {
        const void *rec;
        size_t len;
        rl_batch_record(v, i, &rec, &len);
        rec_fill(want, i);
        ck_assert_uint_eq(len, rec_len(i));
        ck_assert_mem_eq(rec, want, len);
        data += len;
    }
    ck_assert_uint_eq(v->data_len, data);
    uint32_t nruns = runs ? (n + 2) / 3 : 0;
    ck_assert_uint_eq(v->nruns, nruns);
    if (!runs)
        ck_assert_ptr_null(v->runs);
    for (uint32_t r = 0; r < nruns; r++) {
        struct rl_batch_run run;
        rl_batch_run(v, r, &run);
        ck_assert_uint_eq(run.producer, r + 1);
        ck_assert_uint_eq(run.seq, 10 * (r + 1));
        ck_assert_uint_eq(run.first, 3 * r);
        ck_assert_uint_eq(run.n, r + 1 < nruns ? 3 : n - 3 * r);
    }
}

static void round_trip(uint32_t n, bool runs)
{
    size_t len;
    unsigned char *buf = build(n, runs, &len);
    struct rl_batch_view v;
    ck_assert_msg(rl_batch_parse(buf, len, &v), "%u records%s refused", n, runs ? " with runs" : "");
    check_view(&v, n, runs);
    memset(&v, 0, sizeof v);
    ck_assert(rl_batch_parse_layout(buf, len, &v));
    check_view(&v, n, runs);
    raft_free(buf);
}

START_TEST(test_round_trip_empty)
{
    round_trip(0, false);
}
END_TEST

START_TEST(test_round_trip_one)
{
    round_trip(1, false);
    round_trip(1, true);
}
END_TEST

START_TEST(test_round_trip_many)
{
    round_trip(1000, false);
    round_trip(1000, true);
    round_trip(7, true); /* a last run shorter than the others */
}
END_TEST

/* The builder is reset by a seal: the next batch starts empty. */
START_TEST(test_builder_reused_after_seal)
{
    struct rl_batch_builder b;
    rl_batch_builder_init(&b);
    ck_assert_int_eq(rl_batch_add(&b, "abc", 3), 0);
    ck_assert_int_eq(rl_batch_add_run(&b, 5, 6, 1), 0);
    size_t len;
    void *first = rl_batch_seal(&b, 1, &len);
    ck_assert_ptr_nonnull(first);
    ck_assert_int_eq(rl_batch_add(&b, "xy", 2), 0);
    void *second = rl_batch_seal(&b, 2, &len);
    ck_assert_ptr_nonnull(second);
    struct rl_batch_view v;
    ck_assert(rl_batch_parse(second, len, &v));
    ck_assert_uint_eq(v.count, 1);
    ck_assert_uint_eq(v.nruns, 0);
    const void *rec;
    size_t rlen;
    rl_batch_record(&v, 0, &rec, &rlen);
    ck_assert_uint_eq(rlen, 2);
    ck_assert_mem_eq(rec, "xy", 2);
    raft_free(first);
    raft_free(second);
    rl_batch_builder_free(&b);
}
END_TEST

START_TEST(test_trim_batch)
{
    size_t len;
    unsigned char *buf = rl_batch_trim(4242, TS, &len);
    ck_assert_ptr_nonnull(buf);
    struct rl_batch_view v;
    ck_assert(rl_batch_parse(buf, len, &v));
    ck_assert_uint_eq(v.count, 0);
    ck_assert_uint_eq(v.trim_before, 4242);
    ck_assert_uint_eq(v.timestamp, TS);
    ck_assert_uint_eq(v.nruns, 0);
    /* A trim command carries exactly its u64: other sizes are refused. */
    unsigned char *bad = malloc(len);
    memcpy(bad, buf, len);
    rl_put32(bad + 12, 16);
    ck_assert(!rl_batch_parse_layout(bad, len, &v));
    memcpy(bad, buf, len);
    rl_put32(bad + 8, 1);
    ck_assert(!rl_batch_parse_layout(bad, len, &v));
    free(bad);
    raft_free(buf);
}
END_TEST

/* Every proper prefix of a valid batch is refused, by both checks. */
static void truncations_refused(unsigned char *buf, size_t len)
{
    struct rl_batch_view v;
    for (size_t cut = 0; cut < len; cut++) {
        unsigned char *copy = malloc(cut ? cut : 1);
        memcpy(copy, buf, cut);
        ck_assert_msg(!rl_batch_parse(copy, cut, &v), "prefix of %zu of %zu bytes accepted", cut,
                      len);
        ck_assert_msg(!rl_batch_parse_layout(copy, cut, &v),
                      "layout: prefix of %zu of %zu bytes accepted", cut, len);
        free(copy);
    }
}

/* Runs check on each sample batch: empty, 20 records with and without
 * runs, a trim command. */
static void each_sample(void (*check)(unsigned char *buf, size_t len))
{
    size_t len;
    unsigned char *bufs[4] = {build(0, false, &len), NULL, NULL, NULL};
    size_t lens[4] = {len};
    bufs[1] = build(20, false, &lens[1]);
    bufs[2] = build(20, true, &lens[2]);
    bufs[3] = rl_batch_trim(7, TS, &lens[3]);
    for (int i = 0; i < 4; i++) {
        ck_assert_ptr_nonnull(bufs[i]);
        check(bufs[i], lens[i]);
        raft_free(bufs[i]);
    }
}

START_TEST(test_every_truncation_refused)
{
    each_sample(truncations_refused);
}
END_TEST

/* Every bit of every header byte (magic, version, flags, count, data_len,
 * timestamp, checksum): the full check refuses each flip. */
static void header_flips_refused(unsigned char *buf, size_t len)
{
    struct rl_batch_view v;
    for (size_t at = 0; at < RL_BATCH_HDR; at++)
        for (unsigned bit = 0; bit < 8; bit++) {
            buf[at] ^= (unsigned char)(1u << bit);
            ck_assert_msg(!rl_batch_parse(buf, len, &v), "byte %zu bit %u flipped: accepted", at,
                          bit);
            buf[at] ^= (unsigned char)(1u << bit);
        }
    ck_assert(rl_batch_parse(buf, len, &v));
}

START_TEST(test_every_flipped_header_byte_refused)
{
    each_sample(header_flips_refused);
}
END_TEST

/* A flipped record byte breaks only the checksum: the full check refuses
 * it, the layout check (bytes verified elsewhere) takes it. */
START_TEST(test_layout_ignores_the_checksum)
{
    size_t len;
    unsigned char *buf = build(20, true, &len);
    struct rl_batch_view v;
    buf[RL_BATCH_HDR + 3] ^= 0x40;
    ck_assert(!rl_batch_parse(buf, len, &v));
    ck_assert(rl_batch_parse_layout(buf, len, &v));
    ck_assert_uint_eq(v.count, 20);
    buf[24] ^= 0xff; /* the checksum itself */
    ck_assert(!rl_batch_parse(buf, len, &v));
    ck_assert(rl_batch_parse_layout(buf, len, &v));
    raft_free(buf);
}
END_TEST

/* The byte position of end-table entry i of a batch without runs. */
static size_t end_at(const unsigned char *buf, uint32_t i)
{
    uint32_t data_len = rl_get32(buf + 12);
    return ((RL_BATCH_HDR + data_len + 3) & ~(size_t)3) + (size_t)i * 4;
}

START_TEST(test_layout_refuses_a_bad_layout)
{
    size_t len;
    unsigned char *good = build(20, false, &len);
    unsigned char *buf = malloc(len);
    struct rl_batch_view v;
    ck_assert(rl_batch_parse_layout(good, len, &v));

    /* Lengths out of order: end 5 before end 4. */
    memcpy(buf, good, len);
    uint32_t e4 = rl_get32(buf + end_at(buf, 4)), e5 = rl_get32(buf + end_at(buf, 5));
    ck_assert_uint_lt(e4, e5);
    rl_put32(buf + end_at(buf, 4), e5);
    rl_put32(buf + end_at(buf, 5), e4);
    ck_assert(!rl_batch_parse_layout(buf, len, &v));

    /* An end past data_len. */
    memcpy(buf, good, len);
    rl_put32(buf + end_at(buf, 3), rl_get32(buf + 12) + 1);
    ck_assert(!rl_batch_parse_layout(buf, len, &v));

    /* The last end short of data_len. */
    memcpy(buf, good, len);
    rl_put32(buf + end_at(buf, 19), rl_get32(buf + 12) - 1);
    ck_assert(!rl_batch_parse_layout(buf, len, &v));

    /* Count too large: more than the bytes could hold, and one more. */
    memcpy(buf, good, len);
    rl_put32(buf + 8, (uint32_t)(len / 4 + 1));
    ck_assert(!rl_batch_parse_layout(buf, len, &v));
    memcpy(buf, good, len);
    rl_put32(buf + 8, 21);
    ck_assert(!rl_batch_parse_layout(buf, len, &v));
    memcpy(buf, good, len);
    rl_put32(buf + 8, UINT32_MAX);
    ck_assert(!rl_batch_parse_layout(buf, len, &v));

    /* data_len past the end of the buffer, and merely wrong. */
    memcpy(buf, good, len);
    rl_put32(buf + 12, (uint32_t)len + 1);
    ck_assert(!rl_batch_parse_layout(buf, len, &v));
    memcpy(buf, good, len);
    rl_put32(buf + 12, UINT32_MAX);
    ck_assert(!rl_batch_parse_layout(buf, len, &v));
    memcpy(buf, good, len);
    rl_put32(buf + 12, rl_get32(good + 12) + 8);
    ck_assert(!rl_batch_parse_layout(buf, len, &v));

    /* Unknown flags, version, magic. */
    memcpy(buf, good, len);
    buf[6] = 8;
    ck_assert(!rl_batch_parse_layout(buf, len, &v));
    memcpy(buf, good, len);
    buf[4] = 2;
    ck_assert(!rl_batch_parse_layout(buf, len, &v));
    memcpy(buf, good, len);
    buf[0] = 'X';
    ck_assert(!rl_batch_parse_layout(buf, len, &v));
    free(buf);
    raft_free(good);
}
END_TEST

/* The runs table: it must fill the rest exactly, its runs ascend within
 * the records, no zero producer, sequence or length. */
START_TEST(test_layout_refuses_bad_runs)
{
    size_t len;
    unsigned char *good = build(9, true, &len); /* 3 runs of 3 */
    size_t runs_at = len - rl_batch_runs_bytes(3);
    unsigned char *buf = malloc(len + 8);
    struct rl_batch_view v;
    ck_assert(rl_batch_parse_layout(good, len, &v));
    ck_assert_uint_eq(rl_get32(good + runs_at), 3);
    struct {
        size_t at;
        uint32_t value;
        const char *what;
    } bad[] = {
        {runs_at, 2, "run count short of the table"},
        {runs_at, 4, "run count past the table"},
        {runs_at, 0, "no runs with the runs flag"},
        {runs_at + 4, 1, "reserved word set"},
        {runs_at + 8 + 16, 7, "first run past the records"},
        {runs_at + 8 + 20, 0, "an empty run"},
        {runs_at + 8 + 24 + 16, 1, "runs overlap"},
        {runs_at + 8, 0, "producer 0"},
        {runs_at + 8 + 8, 0, "sequence 0"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        memcpy(buf, good, len);
        rl_put32(buf + bad[k].at, bad[k].value);
        if (bad[k].at == runs_at + 8 || bad[k].at == runs_at + 8 + 8)
            rl_put64(buf + bad[k].at, 0);
        ck_assert_msg(!rl_batch_parse_layout(buf, len, &v), "%s: accepted", bad[k].what);
    }
    /* Bytes after the table. */
    memcpy(buf, good, len);
    memset(buf + len, 0, 8);
    ck_assert(!rl_batch_parse_layout(buf, len + 8, &v));
    free(buf);
    raft_free(good);
}
END_TEST

/* Records of every size around the padding boundaries come back whole. */
START_TEST(test_record_returns_each_record)
{
    struct rl_batch_builder b;
    rl_batch_builder_init(&b);
    unsigned char rec[40];
    for (uint32_t i = 0; i < 40; i++) {
        memset(rec, (int)(i + 1), i);
        ck_assert_int_eq(rl_batch_add(&b, rec, i), 0);
    }
    size_t len;
    unsigned char *buf = rl_batch_seal(&b, TS, &len);
    struct rl_batch_view v;
    ck_assert(rl_batch_parse(buf, len, &v));
    ck_assert_uint_eq(v.count, 40);
    for (uint32_t i = 0; i < 40; i++) {
        const void *p;
        size_t n;
        rl_batch_record(&v, i, &p, &n);
        ck_assert_uint_eq(n, i);
        memset(rec, (int)(i + 1), i);
        ck_assert_mem_eq(p, rec, n);
    }
    raft_free(buf);
    rl_batch_builder_free(&b);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("batch");
    TCase *tc = tcase_create("layout");
    tcase_add_test(tc, test_round_trip_empty);
    tcase_add_test(tc, test_round_trip_one);
    tcase_add_test(tc, test_round_trip_many);
    tcase_add_test(tc, test_builder_reused_after_seal);
    tcase_add_test(tc, test_trim_batch);
    tcase_add_test(tc, test_every_truncation_refused);
    tcase_add_test(tc, test_every_flipped_header_byte_refused);
    tcase_add_test(tc, test_layout_ignores_the_checksum);
    tcase_add_test(tc, test_layout_refuses_a_bad_layout);
    tcase_add_test(tc, test_layout_refuses_bad_runs);
    tcase_add_test(tc, test_record_returns_each_record);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
