/* Model test of the segment store: random appends (concurrent batches),
 * truncates, trims, reopens and crashes, each checked against an in-memory
 * model of the log. Fixed seeds plus one from RLOG_SEED or the clock; a
 * failure prints the seed (rerun with RLOG_SEED=<seed>). */
#include <check.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/store_helpers.h"

static const uint64_t fixed_seeds[] = {1, 0xdeadbeef, 20261122, 77};
enum { N_FIXED = sizeof fixed_seeds / sizeof fixed_seeds[0], STEPS = 500 };

static struct th_store T;
static struct th_model M;
static uint64_t rng, seed, step;

#define MCHECK(cond, ...)                                                         \
    do {                                                                          \
        if (!(cond)) {                                                            \
            char _m[2048];                                                         \
            snprintf(_m, sizeof _m, __VA_ARGS__);                                 \
            ck_abort_msg("seed %" PRIu64 " (RLOG_SEED=%" PRIu64 "), step %" PRIu64 \
                         ": %s", seed, seed, step, _m);                           \
        }                                                                         \
    } while (0)

static void check(bool full)
{
    char msg[512];
    bool ok = th_model_matches(&T, &M, full, 8, &rng, msg, sizeof msg);
    MCHECK(ok, "%s", msg);
}

static void open_ok(void)
{
    int rc = th_open(&T);
    MCHECK(rc == 0, "open: %s: %s", rlog_errname(rc), T.err);
}

/* Submits nb batches at the next index; returns how many were accepted. */
static unsigned submit(struct th_batch *b, unsigned nb, uint64_t term, uint64_t *sub_end)
{
    unsigned k;
    for (k = 0; k < nb; k++) {
        unsigned n = (unsigned)th_rand_range(&rng, 1, 12);
        uint64_t es = th_rand(&rng) % 4; /* entry seed: content per index */
        int rc = th_batch_submit(&T, &b[k], *sub_end + 1, n, term, es);
        if (rc != 0) {
            MCHECK(rc == RLOG_EFATAL, "append: %s: %s", rlog_errname(rc), rl_store_errmsg(T.s));
            th_batch_free(&b[k]);
            break;
        }
        *sub_end += n;
    }
    return k;
}

static void op_append(void)
{
    struct th_batch b[4];
    uint64_t sub_end = M.last;
    unsigned nb = submit(b, (unsigned)th_rand_range(&rng, 1, 4), 1 + step / 50, &sub_end);
    MCHECK(nb > 0, "append refused");
    th_run_until(&T, &b[nb - 1].done);
    for (unsigned i = 0; i < nb; i++) {
        MCHECK(b[i].fired == 1 && b[i].status == 0, "batch %u: fired %d, %s: %s", i,
               b[i].fired, rlog_errname(b[i].status), rl_store_errmsg(T.s));
        MCHECK(b[i].order == th_completions - nb + i + 1, "out of order");
        th_model_append(&M, b[i].first, b[i].n, b[i].term, b[i].seed);
        th_batch_free(&b[i]);
    }
    check(false);
}

static void op_crash(void)
{
    struct rl_fs_faults f = {.crash_at_sync = (unsigned)th_rand_range(&rng, 1, 6)};
    switch (th_rand(&rng) % 3) {
    case 0: f.tear_bytes = -1; break;
    case 1: f.tear_bytes = (long)th_rand_range(&rng, 1, 64); break;
    default: f.tear_bytes = (long)th_rand_range(&rng, 65, 20000); break;
    }
    uv_run(&T.loop, UV_RUN_DEFAULT); /* background jobs first */
    rl_fs_faults_set(&f);
    struct th_model sub;
    memset(&sub, 0, sizeof sub);
    th_model_copy(&sub, &M);
    uint64_t acked_end = M.last, sub_end = M.last;
    bool failed = false;
    for (unsigned round = 0; round < 3 && !failed; round++) {
        struct th_batch b[3];
        unsigned nb = submit(b, 3, 1 + step / 50, &sub_end);
        if (nb == 0)
            break;
        th_run_until(&T, &b[nb - 1].done);
        for (unsigned i = 0; i < nb; i++) {
            th_model_append(&sub, b[i].first, b[i].n, b[i].term, b[i].seed);
            if (b[i].status == 0) {
                MCHECK(!failed, "acknowledged after a failure");
                acked_end = b[i].first + b[i].n - 1;
            } else {
                failed = true;
            }
            th_batch_free(&b[i]);
        }
    }
    MCHECK(!failed || rl_fs_crashed(), "failure without a crash: %s", rl_store_errmsg(T.s));
    th_close(&T);
    rl_fs_faults_clear();
    open_ok();
    uint64_t last = rl_store_last_index(T.s);
    MCHECK(last >= acked_end && last <= sub_end,
           "durable end %" PRIu64 " outside [acked %" PRIu64 ", submitted %" PRIu64 "]", last,
           acked_end, sub_end);
    th_model_truncate(&sub, last + 1);
    th_model_copy(&M, &sub);
    th_model_free(&sub);
    check(true);
}

static void run_seed(uint64_t s)
{
    seed = s;
    rng = s;
    rl_fs_faults_clear();
    th_init(&T);
    th_model_init(&M);
    open_ok();
    for (step = 0; step < STEPS; step++) {
        unsigned r = (unsigned)(th_rand(&rng) % 100);
        if (r < 55) {
            op_append();
        } else if (r < 67) {
            uint64_t lo = M.last > 40 ? M.last - 40 : 1;
            if (lo < M.first)
                lo = M.first;
            uint64_t idx = th_rand_range(&rng, lo, M.last + 1);
            int rc = th_truncate(&T, idx);
            MCHECK(rc == 0, "truncate %" PRIu64 ": %s: %s", idx, rlog_errname(rc),
                   rl_store_errmsg(T.s));
            th_model_truncate(&M, idx);
            check(false);
        } else if (r < 73 || M.last - M.first > 1200) {
            uint64_t hi = M.first + 60 < M.last + 1 ? M.first + 60 : M.last + 1;
            if (M.last > M.first + 1200)
                hi = M.last - 400;
            uint64_t idx = th_rand_range(&rng, M.first, hi);
            int rc = th_trim(&T, idx);
            MCHECK(rc == 0, "trim %" PRIu64 ": %s: %s", idx, rlog_errname(rc),
                   rl_store_errmsg(T.s));
            th_model_trim(&M, idx);
            check(false);
        } else if (r < 81) {
            th_close(&T);
            open_ok();
            check(true);
        } else if (r < 88) {
            op_crash();
        } else {
            uint64_t term = rl_store_term(T.s) + 1;
            MCHECK(rl_store_set_term_vote(T.s, term, step % 5) == 0, "set_term_vote");
            MCHECK(rl_store_term(T.s) == term, "term");
        }
        MCHECK(!rl_store_is_fatal(T.s), "fatal: %s", rl_store_errmsg(T.s));
    }
    th_close(&T);
    open_ok();
    check(true);
    th_model_free(&M);
    th_fini(&T);
}

START_TEST(test_model_fixed_seed)
{
    run_seed(fixed_seeds[_i]);
}
END_TEST

START_TEST(test_model_env_or_time_seed)
{
    const char *env = getenv("RLOG_SEED");
    uint64_t s = env ? strtoull(env, NULL, 0) : (uint64_t)time(NULL);
    fprintf(stderr, "test_store_model: seed %" PRIu64 "\n", s);
    run_seed(s);
}
END_TEST

static Suite *model_suite(void)
{
    Suite *s = suite_create("store_model");
    TCase *tc = tcase_create("model");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_model_fixed_seed, 0, N_FIXED);
    tcase_add_test(tc, test_model_env_or_time_seed);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    th_tmp_begin();
    SRunner *sr = srunner_create(model_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    th_tmp_end();
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
