/*
 * Named consumer positions without a network (issue 13, item 5): the
 * cursor command's batch (lib/batch) and the replicated cursor table
 * (lib/node/cursors). Tables are fed entries directly, as the commit
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
#include "node/cursors.h"

static uint64_t get(const struct rl_cursors *t, const char *name, int want)
{
    uint64_t off = 12345;
    ck_assert_int_eq(rl_cursors_lookup(t, name, strlen(name), &off), want);
    return off;
}

static void set(struct rl_cursors *t, uint64_t index, const char *name, uint64_t offset)
{
    ck_assert_int_eq(rl_cursors_set(t, index, name, strlen(name), offset), 0);
}

/* A sealed cursor command (raft_free it). */
static void *command(const char *name, uint64_t offset, size_t *len)
{
    void *b = rl_batch_cursor(name, strlen(name), offset, 77, len);
    ck_assert_ptr_nonnull(b);
    return b;
}

START_TEST(test_names)
{
    char why[160], long_name[80];
    ck_assert(rl_cursor_name_ok("a", why, sizeof why));
    ck_assert(rl_cursor_name_ok("projection.orders-v2_~!", why, sizeof why));
    memset(long_name, 'x', 64);
    long_name[64] = '\0';
    ck_assert(rl_cursor_name_ok(long_name, why, sizeof why));
    long_name[64] = 'x';
    long_name[65] = '\0';
    ck_assert(!rl_cursor_name_ok(long_name, why, sizeof why));
    ck_assert_ptr_nonnull(strstr(why, "1..64"));
    ck_assert(!rl_cursor_name_ok("", why, sizeof why));
    ck_assert_ptr_nonnull(strstr(why, "empty"));
    ck_assert(!rl_cursor_name_ok(NULL, why, sizeof why));
    ck_assert(!rl_cursor_name_ok("has space", why, sizeof why));
    ck_assert_ptr_nonnull(strstr(why, "space"));
    ck_assert(!rl_cursor_name_ok("tab\there", why, sizeof why));
    ck_assert(!rl_cursor_name_ok("caf\xc3\xa9", why, sizeof why));
    ck_assert(!rl_cursor_name_ok("del\x7f", why, sizeof why));
}
END_TEST

START_TEST(test_batch_roundtrip)
{
    size_t len;
    unsigned char *b = command("orders", 41, &len);
    ck_assert_uint_eq(len % 8, 0);
    struct rl_batch_view v;
    ck_assert(rl_batch_parse(b, len, &v));
    ck_assert_uint_eq(v.count, 0);
    ck_assert_uint_eq(v.trim_before, 0);
    ck_assert_uint_eq(v.cursor_name_len, 6);
    ck_assert(memcmp(v.cursor_name, "orders", 6) == 0);
    ck_assert_uint_eq(v.cursor_offset, 41);
    /* A flipped byte fails the checksum; a bad name length the layout. */
    b[RL_BATCH_HDR + 9] ^= 1;
    ck_assert(!rl_batch_parse(b, len, &v));
    b[RL_BATCH_HDR + 9] ^= 1;
    rl_put32(b + 12, 8);
    ck_assert(!rl_batch_parse_layout(b, len, &v));
    rl_put32(b + 12, 8 + 65);
    ck_assert(!rl_batch_parse_layout(b, len, &v));
    raft_free(b);
    ck_assert_ptr_null(rl_batch_cursor("x", 0, 1, 1, &len));
    char big[70];
    memset(big, 'y', sizeof big);
    ck_assert_ptr_null(rl_batch_cursor(big, 65, 1, 1, &len));
}
END_TEST

START_TEST(test_set_get)
{
    struct rl_cursors t;
    ck_assert_int_eq(rl_cursors_init(&t, 8), 0);
    get(&t, "a", RLOG_ENOTFOUND);
    set(&t, 3, "a", 10);
    set(&t, 5, "b", 20);
    ck_assert_uint_eq(get(&t, "a", 0), 10);
    set(&t, 9, "a", 4); /* a later commit wins, even backwards */
    ck_assert_uint_eq(get(&t, "a", 0), 4);
    ck_assert_uint_eq(get(&t, "b", 0), 20);
    ck_assert_uint_eq(t.n, 2);
    rl_cursors_free(&t);
}
END_TEST

static void collect(void *arg, const char *name, uint64_t offset, uint64_t index)
{
    char *out = arg;
    char one[96];
    snprintf(one, sizeof one, "%s=%llu@%llu ", name, (unsigned long long)offset,
             (unsigned long long)index);
    strcat(out, one);
}

START_TEST(test_eviction_order)
{
    struct rl_cursors t;
    ck_assert_int_eq(rl_cursors_init(&t, 3), 0);
    set(&t, 1, "a", 1);
    set(&t, 2, "b", 2);
    set(&t, 3, "c", 3);
    set(&t, 4, "a", 4); /* a is now the newest: b goes first */
    set(&t, 5, "d", 5);
    get(&t, "b", RLOG_ENOTFOUND);
    ck_assert_uint_eq(get(&t, "a", 0), 4);
    set(&t, 6, "e", 6);
    get(&t, "c", RLOG_ENOTFOUND);
    char order[256] = "";
    rl_cursors_each(&t, collect, order);
    ck_assert_str_eq(order, "a=4@4 d=5@5 e=6@6 ");
    ck_assert_uint_eq(t.n, 3);
    rl_cursors_free(&t);
}
END_TEST

START_TEST(test_notes_and_truncate)
{
    struct rl_cursors t;
    ck_assert_int_eq(rl_cursors_init(&t, 8), 0);
    size_t l1, l2, l3;
    void *c1 = command("x", 1, &l1), *c2 = command("x", 2, &l2), *c3 = command("y", 3, &l3);
    unsigned char plain[64] = {0};
    ck_assert_int_eq(rl_cursors_note(&t, 4, 1, c1, l1), 0);
    ck_assert_int_eq(rl_cursors_note(&t, 5, 1, plain, sizeof plain), 0); /* not a batch */
    ck_assert_int_eq(rl_cursors_note(&t, 6, 1, c2, l2), 0);
    /* A new leader replaced entry 6 with another term's. */
    rl_cursors_truncate(&t, 6);
    ck_assert_int_eq(rl_cursors_note(&t, 6, 2, c3, l3), 0);
    ck_assert_int_eq(rl_cursors_shown(&t, 4, 1), 0);
    ck_assert_uint_eq(get(&t, "x", 0), 1);
    ck_assert_int_eq(rl_cursors_shown(&t, 5, 1), 0);
    /* Shown with a term other than the one noted: not applied. */
    ck_assert_int_eq(rl_cursors_shown(&t, 6, 1), 0);
    get(&t, "y", RLOG_ENOTFOUND);
    ck_assert_uint_eq(t.applied_index, 6);
    /* Replay at open skips what is applied. */
    ck_assert_int_eq(rl_cursors_apply_entry(&t, 6, c3, l3), 0);
    get(&t, "y", RLOG_ENOTFOUND);
    ck_assert_int_eq(rl_cursors_apply_entry(&t, 7, c3, l3), 0);
    ck_assert_uint_eq(get(&t, "y", 0), 3);
    raft_free(c1);
    raft_free(c2);
    raft_free(c3);
    rl_cursors_free(&t);
}
END_TEST

START_TEST(test_gap)
{
    struct rl_cursors t;
    ck_assert_int_eq(rl_cursors_init(&t, 2), 0);
    set(&t, 2, "old", 5);
    t.applied_index = 2;
    ck_assert(!rl_cursors_reset(&t, 2)); /* nothing missed */
    ck_assert_uint_eq(get(&t, "old", 0), 5);
    ck_assert(rl_cursors_reset(&t, 10)); /* caught up past a trim */
    /* "old" may have moved in 3..10: not answered from the stale copy. */
    get(&t, "old", RLOG_ETRIMMED);
    get(&t, "never", RLOG_ETRIMMED);
    ck_assert_int_eq(rl_cursors_shown(&t, 11, 1), 0);
    set(&t, 12, "p", 1);
    ck_assert_uint_eq(get(&t, "p", 0), 1);
    get(&t, "old", RLOG_ETRIMMED);
    ck_assert_uint_eq(t.gap_index, 10);
    set(&t, 13, "q", 2); /* full of names after the gap: whole again */
    ck_assert_uint_eq(t.gap_index, 0);
    get(&t, "old", RLOG_ENOTFOUND);
    rl_cursors_free(&t);
}
END_TEST

START_TEST(test_encode_decode)
{
    struct rl_cursors a, b;
    ck_assert_int_eq(rl_cursors_init(&a, 3), 0);
    ck_assert_int_eq(rl_cursors_init(&b, 3), 0);
    set(&a, 1, "one", 11);
    set(&a, 3, "three", 33);
    set(&a, 4, "one", 44);
    a.applied_index = 7;
    unsigned char *bytes;
    size_t len;
    ck_assert_int_eq(rl_cursors_encode(&a, &bytes, &len), 0);
    char err[160] = "";
    ck_assert_int_eq(rl_cursors_decode(&b, bytes, len, err, sizeof err), 0);
    ck_assert_uint_eq(rl_cursors_digest(&a), rl_cursors_digest(&b));
    ck_assert_uint_eq(get(&b, "one", 0), 44);
    ck_assert_uint_eq(get(&b, "three", 0), 33);
    ck_assert_uint_eq(b.applied_index, 7);
    /* Eviction order survives the round trip. */
    set(&a, 8, "x", 1);
    set(&a, 9, "y", 1);
    set(&b, 8, "x", 1);
    set(&b, 9, "y", 1);
    get(&b, "three", RLOG_ENOTFOUND);
    ck_assert_uint_eq(rl_cursors_digest(&a), rl_cursors_digest(&b));
    /* Every flipped byte is caught (checksum, or the layout). */
    for (size_t i = 0; i < len; i++) {
        bytes[i] ^= 0x20;
        ck_assert_int_eq(rl_cursors_decode(&b, bytes, len, err, sizeof err), RLOG_ECORRUPT);
        ck_assert_uint_eq(b.n, 0);
        bytes[i] ^= 0x20;
    }
    ck_assert_int_eq(rl_cursors_decode(&b, bytes, len - 8, err, sizeof err), RLOG_ECORRUPT);
    ck_assert_int_eq(rl_cursors_decode(&b, bytes, 4, err, sizeof err), RLOG_ECORRUPT);
    ck_assert_ptr_nonnull(strstr(err, "cursor table"));
    free(bytes);
    rl_cursors_free(&a);
    rl_cursors_free(&b);
}
END_TEST

/* A well-checksummed table whose content is wrong is refused too. */
START_TEST(test_decode_rejects)
{
    struct rl_cursors a, b;
    ck_assert_int_eq(rl_cursors_init(&a, 4), 0);
    ck_assert_int_eq(rl_cursors_init(&b, 4), 0);
    set(&a, 1, "aa", 1);
    set(&a, 2, "bb", 2);
    a.applied_index = 2;
    unsigned char *bytes;
    size_t len;
    char err[160];
    ck_assert_int_eq(rl_cursors_encode(&a, &bytes, &len), 0);
    /* the second name made equal to the first; then an index out of order;
     * then a commit after the applied index */
    unsigned char *second = bytes + 32 + 24 + 8;
    second[24] = 'a';
    second[25] = 'a';
    rl_put64(bytes + len - 8, XXH3_64bits(bytes, len - 8));
    ck_assert_int_eq(rl_cursors_decode(&b, bytes, len, err, sizeof err), RLOG_ECORRUPT);
    ck_assert_ptr_nonnull(strstr(err, "twice"));
    second[24] = 'b';
    second[25] = 'b';
    rl_put64(second, 1);
    rl_put64(bytes + len - 8, XXH3_64bits(bytes, len - 8));
    ck_assert_int_eq(rl_cursors_decode(&b, bytes, len, err, sizeof err), RLOG_ECORRUPT);
    rl_put64(second, 9);
    rl_put64(bytes + len - 8, XXH3_64bits(bytes, len - 8));
    ck_assert_int_eq(rl_cursors_decode(&b, bytes, len, err, sizeof err), RLOG_ECORRUPT);
    ck_assert_ptr_nonnull(strstr(err, "applied"));
    rl_put64(second, 2);
    rl_put64(bytes + len - 8, XXH3_64bits(bytes, len - 8));
    ck_assert_int_eq(rl_cursors_decode(&b, bytes, len, err, sizeof err), 0);
    free(bytes);
    rl_cursors_free(&a);
    rl_cursors_free(&b);
}
END_TEST

/* A table saved with more names than this node's max keeps the newest. */
START_TEST(test_decode_smaller_bound)
{
    struct rl_cursors a, b;
    ck_assert_int_eq(rl_cursors_init(&a, 8), 0);
    ck_assert_int_eq(rl_cursors_init(&b, 2), 0);
    for (unsigned i = 1; i <= 5; i++) {
        char name[8];
        snprintf(name, sizeof name, "n%u", i);
        set(&a, i, name, i * 10);
    }
    a.applied_index = 5;
    unsigned char *bytes;
    size_t len;
    char err[160];
    ck_assert_int_eq(rl_cursors_encode(&a, &bytes, &len), 0);
    ck_assert_int_eq(rl_cursors_decode(&b, bytes, len, err, sizeof err), 0);
    ck_assert_uint_eq(b.n, 2);
    get(&b, "n3", RLOG_ENOTFOUND);
    ck_assert_uint_eq(get(&b, "n5", 0), 50);
    free(bytes);
    rl_cursors_free(&a);
    rl_cursors_free(&b);
}
END_TEST

/* The public calls' own checks, before any node is involved. */
START_TEST(test_api_checks)
{
    struct rlog_config c;
    rlog_config_init(&c);
    ck_assert_uint_eq(c.max_cursors, 0);
    struct rlog_peer p = {1, "127.0.0.1:1"};
    c.id = 1;
    c.address = p.address;
    c.peers = &p;
    c.n_peers = 1;
    c.data_dir = "/nonexistent/never-created";
    c.max_cursors = (1u << 20) + 1;
    rlog *log;
    char err[256];
    ck_assert_int_eq(rlog_open(&c, &log, err, sizeof err), RLOG_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "max_cursors"));
    uint64_t off;
    ck_assert_int_eq(rlog_cursor_commit(NULL, "a", 1), RLOG_EINVAL);
    ck_assert_int_eq(rlog_cursor_get(NULL, "a", &off), RLOG_EINVAL);
    ck_assert_int_eq(rlog_subscribe_cursor(NULL, "a", 0, NULL, NULL, NULL), RLOG_EINVAL);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("cursors");
    TCase *tc = tcase_create("cursors");
    tcase_add_test(tc, test_names);
    tcase_add_test(tc, test_batch_roundtrip);
    tcase_add_test(tc, test_set_get);
    tcase_add_test(tc, test_eviction_order);
    tcase_add_test(tc, test_notes_and_truncate);
    tcase_add_test(tc, test_gap);
    tcase_add_test(tc, test_encode_decode);
    tcase_add_test(tc, test_decode_rejects);
    tcase_add_test(tc, test_decode_smaller_bound);
    tcase_add_test(tc, test_api_checks);
    suite_add_tcase(s, tc);
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
