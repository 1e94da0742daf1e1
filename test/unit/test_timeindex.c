/* The time index (node/timeindex.h): the running maximum with clocks that
 * go backwards, trims, truncation, the lazy rebuild, and every answer
 * against a brute-force model of the log on random inputs. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "common/bytes.h"
#include "liblog.h"
#include "node/timeindex.h"

/* The model log: batches back to back from offset 0, each with its time,
 * its records' lengths (as a batch's end table), and the reads the index
 * made of it. */
#define MAXB 4000
static struct mbatch {
    uint64_t base, ts;
    uint32_t n;
    unsigned char *ends;
    uint64_t bytes;
} mb[MAXB];
static size_t nb;
static uint64_t mend, mfirst;
static unsigned reads, fail_reads_at;

static void model_reset(void)
{
    for (size_t i = 0; i < nb; i++)
        free(mb[i].ends);
    nb = 0;
    mend = mfirst = 0;
    reads = 0;
    fail_reads_at = 0;
}

static void model_push(uint64_t ts, uint32_t n, const uint32_t *lens)
{
    struct mbatch *b = &mb[nb++];
    b->base = mend;
    b->ts = ts;
    b->n = n;
    b->ends = malloc(4 * (size_t)n);
    uint32_t end = 0;
    for (uint32_t i = 0; i < n; i++) {
        end += lens ? lens[i] : 10;
        rl_put32(b->ends + 4 * (size_t)i, end);
    }
    b->bytes = end;
    mend += n;
}

static int mread(void *arg, uint64_t off, struct rl_tindex_batch *out)
{
    (void)arg;
    reads++;
    if (fail_reads_at && reads >= fail_reads_at)
        return RLOG_EIO;
    if (off < mfirst)
        return RLOG_ETRIMMED;
    for (size_t i = 0; i < nb; i++)
        if (off >= mb[i].base && off < mb[i].base + mb[i].n) {
            *out = (struct rl_tindex_batch){.base = mb[i].base, .records = mb[i].n,
                                            .ts = mb[i].ts, .bytes = mb[i].bytes,
                                            .ends = mb[i].ends, .owned = NULL};
            return 0;
        }
    return RLOG_ENOTFOUND;
}

static void mrelease(void *arg, struct rl_tindex_batch *b)
{
    (void)arg;
    (void)b;
}

static const struct rl_tindex_src src = {mread, mrelease, NULL};

static uint64_t ts_of(uint64_t off)
{
    for (size_t i = 0; i < nb; i++)
        if (off >= mb[i].base && off < mb[i].base + mb[i].n)
            return mb[i].ts;
    ck_abort();
    return 0;
}

static uint32_t len_of(uint64_t off)
{
    for (size_t i = 0; i < nb; i++)
        if (off >= mb[i].base && off < mb[i].base + mb[i].n) {
            uint32_t k = (uint32_t)(off - mb[i].base);
            return rl_get32(mb[i].ends + 4 * k) - (k ? rl_get32(mb[i].ends + 4 * (k - 1)) : 0);
        }
    ck_abort();
    return 0;
}

/* The answers by definition, over records [mfirst, end). */
static int model_time(uint64_t end, uint64_t t, uint64_t *off)
{
    uint64_t m = 0;
    for (uint64_t o = mfirst; o < end; o++) {
        uint64_t ts = ts_of(o);
        m = ts > m ? ts : m;
        if (m >= t) {
            *off = o;
            return 0;
        }
    }
    *off = end;
    return RLOG_ENOTFOUND;
}

static uint64_t model_bytes(uint64_t end, uint64_t keep)
{
    uint64_t o = end, sum = 0;
    while (o > mfirst && sum + len_of(o - 1) <= keep)
        sum += len_of(--o);
    return o;
}

/* Feeds every model batch not yet in t (as the fence would). */
static void feed(struct rl_tindex *t, size_t from)
{
    for (size_t i = from; i < nb; i++)
        ck_assert_int_eq(rl_tindex_add(t, mb[i].base, mb[i].n, mb[i].ts, mb[i].bytes), 0);
}

static void check_time(struct rl_tindex *t, uint64_t q)
{
    uint64_t want, got = 12345;
    int wrv = model_time(t->end, q, &want);
    ck_assert_int_eq(rl_tindex_find_time(t, &src, q, &got), wrv);
    ck_assert_uint_eq(got, want);
}

/* Every answer that can differ: at each batch time and either side. */
static void check_all(struct rl_tindex *t, uint64_t tmax)
{
    check_time(t, 0);
    check_time(t, tmax + 1);
    for (size_t i = 0; i < nb; i++)
        for (uint64_t q = mb[i].ts ? mb[i].ts - 1 : 0; q <= mb[i].ts + 1; q++)
            check_time(t, q);
    uint64_t total = 0;
    for (uint64_t o = mfirst; o < t->end; o++)
        total += len_of(o);
    for (uint64_t keep = 0; keep <= total + 1; keep += 1 + keep / 7) {
        uint64_t got = 12345;
        ck_assert_int_eq(rl_tindex_find_bytes(t, &src, keep, &got), 0);
        ck_assert_uint_eq(got, model_bytes(t->end, keep));
    }
}

START_TEST(test_clock_goes_backwards)
{
    model_reset();
    struct rl_tindex t;
    rl_tindex_init(&t, 2, 0);
    model_push(100, 3, NULL); /* offsets 0..2 */
    model_push(200, 2, NULL); /* 3..4 */
    model_push(150, 4, NULL); /* 5..8: a new leader's clock is behind */
    model_push(180, 1, NULL); /* 9 */
    model_push(250, 2, NULL); /* 10..11 */
    feed(&t, 0);
    uint64_t off;
    ck_assert_int_eq(rl_tindex_find_time(&t, &src, 0, &off), 0);
    ck_assert_uint_eq(off, 0);
    ck_assert_int_eq(rl_tindex_find_time(&t, &src, 100, &off), 0);
    ck_assert_uint_eq(off, 0);
    ck_assert_int_eq(rl_tindex_find_time(&t, &src, 101, &off), 0);
    ck_assert_uint_eq(off, 3);
    /* 150 and 180 are behind 200 already: the answer never moves back */
    ck_assert_int_eq(rl_tindex_find_time(&t, &src, 160, &off), 0);
    ck_assert_uint_eq(off, 3);
    ck_assert_int_eq(rl_tindex_find_time(&t, &src, 201, &off), 0);
    ck_assert_uint_eq(off, 10);
    ck_assert_int_eq(rl_tindex_find_time(&t, &src, 251, &off), RLOG_ENOTFOUND);
    ck_assert_uint_eq(off, 12);
    check_all(&t, 260);
    rl_tindex_free(&t);
    model_reset();
}
END_TEST

START_TEST(test_empty_and_gap)
{
    model_reset();
    struct rl_tindex t;
    rl_tindex_init(&t, 4, 0);
    uint64_t off = 7;
    ck_assert_int_eq(rl_tindex_find_time(&t, &src, 0, &off), RLOG_ENOTFOUND);
    ck_assert_uint_eq(off, 0);
    ck_assert_int_eq(rl_tindex_find_bytes(&t, &src, 0, &off), 0);
    ck_assert_uint_eq(off, 0);
    /* zero-record entries are nothing; a batch after a gap waits for the
     * catch-up, which reads it */
    ck_assert_int_eq(rl_tindex_add(&t, 0, 0, 5, 0), 0);
    model_push(10, 2, NULL);
    model_push(20, 2, NULL);
    ck_assert_int_eq(rl_tindex_add(&t, 2, 2, 20, 20), 1);
    ck_assert_uint_eq(t.end, 0);
    ck_assert_int_eq(rl_tindex_catch_up(&t, &src, mend, 15), 0);
    ck_assert_uint_eq(t.end, 4); /* the first batch was not late enough */
    check_all(&t, 25);
    /* a batch already indexed is not indexed twice */
    ck_assert_int_eq(rl_tindex_add(&t, 2, 2, 20, 20), 0);
    ck_assert_uint_eq(t.bytes, 40);
    rl_tindex_free(&t);
    model_reset();
}
END_TEST

START_TEST(test_lazy_rebuild_reads_only_what_it_needs)
{
    model_reset();
    for (unsigned i = 0; i < 1000; i++)
        model_push(1000 + i, 3, NULL);
    struct rl_tindex t;
    rl_tindex_init(&t, 32, 0);
    reads = 0;
    ck_assert_int_eq(rl_tindex_catch_up(&t, &src, mend, 1010), 0);
    ck_assert_uint_eq(reads, 11);
    uint64_t off;
    ck_assert_int_eq(rl_tindex_find_time(&t, &src, 1010, &off), 0);
    ck_assert_uint_eq(off, 30);
    ck_assert_int_eq(rl_tindex_catch_up(&t, &src, mend, UINT64_MAX), 0);
    /* then a lookup is a binary search and at most one block */
    reads = 0;
    ck_assert_int_eq(rl_tindex_find_time(&t, &src, 1700, &off), 0);
    ck_assert_uint_eq(off, 2100);
    ck_assert_uint_le(reads, 32);
    reads = 0;
    ck_assert_int_eq(rl_tindex_find_bytes(&t, &src, 300, &off), 0);
    ck_assert_uint_eq(off, 2970);
    ck_assert_uint_le(reads, 32);
    ck_assert_uint_eq(t.n, (1000 + 31) / 32); /* sparse: one block per 32 batches */
    rl_tindex_free(&t);
    model_reset();
}
END_TEST

START_TEST(test_trim_and_truncate)
{
    model_reset();
    struct rl_tindex t;
    rl_tindex_init(&t, 3, 0);
    uint64_t times[] = {50, 40, 90, 10, 60, 70, 20, 95, 30, 80};
    for (unsigned i = 0; i < 10; i++)
        model_push(times[i], 2, NULL);
    feed(&t, 0);
    check_all(&t, 100);
    /* a trim inside the batch holding the maximum of the first block */
    mfirst = 5;
    rl_tindex_trim(&t, &src, 5);
    ck_assert_uint_eq(t.first, 5);
    check_all(&t, 100);
    mfirst = 13;
    rl_tindex_trim(&t, &src, 13);
    check_all(&t, 100);
    /* an uncommitted suffix cut (never fed in the node, but kept exact) */
    rl_tindex_truncate(&t, &src, 16);
    ck_assert_uint_eq(t.end, 16);
    check_all(&t, 100);
    /* it grows again from there */
    free(mb[8].ends);
    free(mb[9].ends);
    nb = 8;
    mend = 16;
    model_push(99, 1, NULL);
    feed(&t, 8);
    check_all(&t, 100);
    /* a failed read while trimming: it starts over, and catches up */
    mfirst = 15;
    fail_reads_at = reads + 1;
    rl_tindex_trim(&t, &src, 15);
    ck_assert_uint_eq(t.end, 15);
    ck_assert_uint_eq(t.n, 0);
    fail_reads_at = 0;
    ck_assert_int_eq(rl_tindex_catch_up(&t, &src, mend, UINT64_MAX), 0);
    check_all(&t, 100);
    /* everything trimmed */
    mfirst = mend;
    rl_tindex_trim(&t, &src, mend);
    uint64_t off;
    ck_assert_int_eq(rl_tindex_find_time(&t, &src, 0, &off), RLOG_ENOTFOUND);
    ck_assert_uint_eq(off, mend);
    rl_tindex_free(&t);
    model_reset();
}
END_TEST

START_TEST(test_random_against_model)
{
    srand(1234);
    for (int round = 0; round < 200; round++) {
        model_reset();
        struct rl_tindex t;
        unsigned every = 1 + (unsigned)(rand() % 6);
        rl_tindex_init(&t, every, 0);
        unsigned n = 1 + (unsigned)(rand() % 40); /* the clock stays above 0 */
        uint64_t clock = 2500;
        for (unsigned i = 0; i < n; i++) {
            /* a new leader's clock may be behind */
            clock = rand() % 4 == 0 ? clock - (uint64_t)(rand() % 50) : clock + (uint64_t)(rand() % 20);
            uint32_t lens[8], k = 1 + (uint32_t)(rand() % 8);
            for (uint32_t j = 0; j < k; j++)
                lens[j] = (uint32_t)(rand() % 30);
            model_push(clock, k, lens);
            if (rand() % 3)
                feed(&t, nb - 1);
            else
                ck_assert_int_eq(rl_tindex_catch_up(&t, &src, mend, UINT64_MAX), 0);
            if (rand() % 10 == 0 && mend > mfirst) {
                mfirst += (uint64_t)(rand() % (int)(mend - mfirst + 1));
                rl_tindex_trim(&t, &src, mfirst);
            }
        }
        ck_assert_int_eq(rl_tindex_catch_up(&t, &src, mend, UINT64_MAX), 0);
        check_all(&t, clock + 60);
        rl_tindex_free(&t);
    }
    model_reset();
}
END_TEST

int main(void)
{
    Suite *s = suite_create("timeindex");
    TCase *tc = tcase_create("timeindex");
    tcase_add_test(tc, test_clock_goes_backwards);
    tcase_add_test(tc, test_empty_and_gap);
    tcase_add_test(tc, test_lazy_rebuild_reads_only_what_it_needs);
    tcase_add_test(tc, test_trim_and_truncate);
    tcase_add_test(tc, test_random_against_model);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
