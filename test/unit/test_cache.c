/* The read cache: lookup by record offset, byte budget, truncation, copies
 * for iterators, and a pool of caches under one budget. */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <raft.h>

#include "batch/batch.h"
#include "common/bytes.h"
#include "node/cache.h"

static void put(struct rl_cache *c, uint64_t index, uint64_t offset, uint32_t records,
                uint32_t len)
{
    unsigned char buf[256];
    memset(buf, (int)index, sizeof buf);
    rl_cache_put(c, index, offset, records, buf, len);
}

/* The cache's copy of the entry holding offset, or NULL; valid until the
 * next call. */
static struct rl_cache_entry found;
static const struct rl_cache_entry *find(struct rl_cache *c, uint64_t offset)
{
    free(found.data);
    found.data = NULL;
    return rl_cache_get(c, offset, &found) == 0 ? &found : NULL;
}

START_TEST(test_find_by_offset)
{
    struct rl_cache c;
    rl_cache_init(&c, 1 << 20);
    put(&c, 1, 0, 0, 10);  /* no records: never cached */
    put(&c, 2, 0, 5, 100);
    put(&c, 3, 5, 0, 10);
    put(&c, 4, 5, 3, 100);
    ck_assert_uint_eq(find(&c, 0)->index, 2);
    ck_assert_uint_eq(find(&c, 4)->index, 2);
    ck_assert_uint_eq(find(&c, 5)->index, 4);
    ck_assert_uint_eq(find(&c, 7)->index, 4);
    ck_assert_ptr_null(find(&c, 8));
    ck_assert_uint_eq(c.hits, 4);
    ck_assert_uint_eq(c.misses, 1);
    ck_assert_uint_eq(find(&c, 5)->data[0], 4);
    rl_cache_free(&c);
}
END_TEST

START_TEST(test_budget_evicts_oldest)
{
    struct rl_cache c;
    rl_cache_init(&c, 250);
    for (uint64_t i = 1; i <= 10; i++)
        put(&c, i, (i - 1) * 2, 2, 100);
    ck_assert_uint_le(c.bytes, 250);
    ck_assert_uint_eq(c.n, 2);
    ck_assert_ptr_null(find(&c, 0));      /* evicted */
    ck_assert_uint_eq(find(&c, 19)->index, 10);
    put(&c, 11, 20, 2, 251);                      /* bigger than the budget */
    ck_assert_ptr_null(find(&c, 20));
    rl_cache_free(&c);
}
END_TEST

START_TEST(test_truncate_and_replace)
{
    struct rl_cache c;
    rl_cache_init(&c, 1 << 20);
    for (uint64_t i = 1; i <= 5; i++)
        put(&c, i, i - 1, 1, 50);
    rl_cache_truncate(&c, 4);
    ck_assert_ptr_null(find(&c, 3));
    put(&c, 4, 3, 1, 60); /* the new entry 4 */
    ck_assert_uint_eq(find(&c, 3)->len, 60);
    put(&c, 3, 2, 1, 70); /* a replaced suffix from an earlier index */
    ck_assert_ptr_null(find(&c, 3));
    ck_assert_uint_eq(find(&c, 2)->len, 70);
    put(&c, 9, 8, 1, 10); /* a gap in the records: starts over */
    ck_assert_uint_eq(c.n, 1);
    rl_cache_free(&c);
}
END_TEST

/* The chunk's entry at byte `pos`: its offset, visible records, length. */
static size_t chunk_entry(const struct rl_chunk *ch, size_t pos, uint64_t *off, uint32_t *count,
                          uint32_t *len)
{
    *off = rl_get64(ch->p + pos);
    *count = rl_get32(ch->p + pos + 8);
    *len = rl_get32(ch->p + pos + 12);
    ck_assert_uint_eq(ch->p[pos + 16], (unsigned char)(*off / 2 + 1)); /* put(): index */
    return pos + 16 + (size_t)rl_pad8(*len);
}

START_TEST(test_copy_for_iterators)
{
    struct rl_cache c;
    rl_cache_init(&c, 1 << 20);
    for (uint64_t i = 1; i <= 4; i++)
        put(&c, i, (i - 1) * 2, 2, 100); /* entry i: records 2i-2, 2i-1 */
    struct rl_chunk ch = {0};
    /* from record 3, visible below 7: entry 2 whole, 3 whole, 4 with one */
    ck_assert_uint_eq(rl_cache_copy(&c, 3, 7, 1 << 20, &ch), 3);
    uint64_t off;
    uint32_t count, len;
    size_t pos = chunk_entry(&ch, 0, &off, &count, &len);
    ck_assert(off == 2 && count == 2 && len == 100);
    pos = chunk_entry(&ch, pos, &off, &count, &len);
    ck_assert(off == 4 && count == 2);
    pos = chunk_entry(&ch, pos, &off, &count, &len);
    ck_assert(off == 6 && count == 1);
    ck_assert_uint_eq(pos, ch.len);
    ck_assert_uint_eq(c.hits, 3);
    /* the budget stops it after the entry that crosses it */
    ch.len = 0;
    ck_assert_uint_eq(rl_cache_copy(&c, 0, 8, 1, &ch), 1);
    /* nothing visible there yet, or not cached: 0, and not counted as a miss */
    ch.len = 0;
    ck_assert_uint_eq(rl_cache_copy(&c, 7, 7, 1 << 20, &ch), 0);
    ck_assert_uint_eq(rl_cache_copy(&c, 8, 20, 1 << 20, &ch), 0);
    ck_assert_uint_eq(ch.len, 0);
    ck_assert_uint_eq(c.misses, 0);
    /* cleared at close: still usable, and empty */
    rl_cache_clear(&c);
    ck_assert_uint_eq(rl_cache_copy(&c, 0, 8, 1 << 20, &ch), 0);
    free(ch.p);
    rl_cache_free(&c);
}
END_TEST

/* rl_chunk_next walks what rl_chunk_add wrote: each entry's offset, visible
 * records and payload, then the end (also of an empty chunk). */
START_TEST(test_chunk_walk)
{
    struct rl_chunk ch = {0};
    struct rl_chunk_entry e;
    size_t pos = 0;
    ck_assert(!rl_chunk_next(ch.p, ch.len, &pos, &e));
    ck_assert_int_eq(rl_chunk_add(&ch, 10, 3, "abcde", 5), 0);
    ck_assert_int_eq(rl_chunk_add(&ch, 13, 0, "", 0), 0);
    ck_assert_int_eq(rl_chunk_add(&ch, 13, 2, "12345678", 8), 0);
    ck_assert(rl_chunk_next(ch.p, ch.len, &pos, &e));
    ck_assert(e.offset == 10 && e.visible == 3 && e.len == 5 && !memcmp(e.buf, "abcde", 5));
    ck_assert(rl_chunk_next(ch.p, ch.len, &pos, &e));
    ck_assert(e.offset == 13 && e.visible == 0 && e.len == 0);
    ck_assert(rl_chunk_next(ch.p, ch.len, &pos, &e));
    ck_assert(e.offset == 13 && e.visible == 2 && e.len == 8 && !memcmp(e.buf, "12345678", 8));
    ck_assert_uint_eq(pos, ch.len);
    ck_assert(!rl_chunk_next(ch.p, ch.len, &pos, &e));
    free(ch.p);
}
END_TEST

/* Puts entry `index` holding records "r<offset>" for offsets [offset, offset+n). */
static void put_batch(struct rl_cache *c, uint64_t index, uint64_t offset, uint32_t n)
{
    struct rl_batch_builder b;
    rl_batch_builder_init(&b);
    for (uint32_t i = 0; i < n; i++) {
        char rec[32];
        int len = snprintf(rec, sizeof rec, "r%llu", (unsigned long long)(offset + i));
        ck_assert_int_eq(rl_batch_add(&b, rec, (size_t)len), 0);
    }
    size_t len;
    void *buf = rl_batch_seal(&b, 0, &len);
    ck_assert_ptr_nonnull(buf);
    rl_cache_put(c, index, offset, n, buf, (uint32_t)len);
    raft_free(buf);
    rl_batch_builder_free(&b);
}

START_TEST(test_read_one_record)
{
    struct rl_cache c;
    rl_cache_init(&c, 1 << 20);
    put_batch(&c, 1, 0, 3);
    put_batch(&c, 2, 3, 4);
    void *buf = NULL;
    size_t len = 0;
    ck_assert_int_eq(rl_cache_read(&c, 4, 7, &buf, &len), 0);
    ck_assert(len == 2 && memcmp(buf, "r4", 2) == 0);
    free(buf);
    ck_assert_int_eq(rl_cache_read(&c, 0, 7, &buf, &len), 0);
    ck_assert(len == 2 && memcmp(buf, "r0", 2) == 0);
    free(buf);
    ck_assert_uint_eq(c.hits, 2);
    /* not visible yet, or not cached: 1, so the caller asks the loop thread */
    ck_assert_int_eq(rl_cache_read(&c, 5, 5, &buf, &len), 1);
    ck_assert_int_eq(rl_cache_read(&c, 7, 100, &buf, &len), 1);
    /* an entry that is not a valid batch is never returned as a record */
    put(&c, 3, 7, 2, 100);
    ck_assert_int_eq(rl_cache_read(&c, 7, 9, &buf, &len), 1);
    ck_assert_uint_eq(c.hits, 2);
    rl_cache_free(&c);
}
END_TEST

/* A pool of three caches: budget 1000, floor 200. Whoever puts, the
 * caches together never hold more than budget + 3 x floor, the largest
 * gives way first, and a cache at its floor keeps it. */
START_TEST(test_pool_bounds_all)
{
    struct rl_cache_pool p;
    rl_cache_pool_init(&p, 1000, 200);
    struct rl_cache c[3];
    for (int i = 0; i < 3; i++) {
        rl_cache_init(&c[i], 1 << 20); /* each alone: far above the pool */
        rl_cache_join(&c[i], &p);
    }
    /* c[0] alone fills the pool: it is evicted down to the budget. */
    for (uint64_t i = 1; i <= 20; i++)
        put(&c[0], i, i - 1, 1, 100);
    ck_assert_uint_le(rl_cache_pool_total(&p), 1000);
    ck_assert_uint_eq(c[0].bytes, 1000);
    ck_assert_ptr_null(find(&c[0], 0)); /* the oldest went */
    ck_assert_ptr_nonnull(find(&c[0], 19));
    /* c[1] puts: c[0], the largest, gives way until c[1] has as much. */
    for (uint64_t i = 1; i <= 10; i++) {
        put(&c[1], i, i - 1, 1, 100);
        uint64_t total = rl_cache_pool_total(&p);
        ck_assert_uint_eq(total, c[0].bytes + c[1].bytes + c[2].bytes);
        ck_assert_uint_le(total, 1000 + 3 * 200);
    }
    ck_assert_uint_le(c[0].bytes, 600);
    ck_assert_uint_ge(c[1].bytes, 400);
    /* Many small puts into c[2] never take the others below the floor. */
    for (uint64_t i = 1; i <= 200; i++)
        put(&c[2], i, i - 1, 1, 50);
    ck_assert_uint_le(rl_cache_pool_total(&p), 1000 + 3 * 200);
    ck_assert_uint_ge(c[0].bytes, 200);
    ck_assert_uint_ge(c[1].bytes, 200);
    /* A cache that leaves takes its bytes with it. */
    uint64_t before = rl_cache_pool_total(&p), gone = c[1].bytes;
    rl_cache_free(&c[1]);
    ck_assert_uint_eq(rl_cache_pool_total(&p), before - gone);
    put(&c[0], 21, 20, 1, 100); /* the pool's list still walks */
    rl_cache_truncate(&c[0], 1);
    rl_cache_clear(&c[2]);
    ck_assert_uint_eq(rl_cache_pool_total(&p), 0);
    rl_cache_free(&c[0]);
    rl_cache_free(&c[2]);
    rl_cache_pool_free(&p);
    free(found.data);
    found.data = NULL;
}
END_TEST

static void *put_many(void *arg)
{
    struct rl_cache *c = arg;
    for (uint64_t i = 1; i <= 5000; i++) {
        put(c, i, i - 1, 1, 64 + (uint32_t)(i % 100));
        if (i % 7 == 0) {
            struct rl_cache_entry e;
            if (rl_cache_get(c, i - 3, &e) == 0)
                free(e.data);
        }
    }
    return NULL;
}

/* Four threads each putting into its own cache of one pool, evicting from
 * each other's (run it under TSan too): the pool's total stays exact. */
START_TEST(test_pool_threads)
{
    struct rl_cache_pool p;
    rl_cache_pool_init(&p, 4096, 256);
    struct rl_cache c[4];
    pthread_t t[4];
    for (int i = 0; i < 4; i++) {
        rl_cache_init(&c[i], 1 << 20);
        rl_cache_join(&c[i], &p);
    }
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, put_many, &c[i]);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    uint64_t sum = 0;
    for (int i = 0; i < 4; i++)
        sum += c[i].bytes;
    ck_assert_uint_eq(rl_cache_pool_total(&p), sum);
    ck_assert_uint_le(sum, 4096 + 4 * 256);
    for (int i = 0; i < 4; i++)
        rl_cache_free(&c[i]);
    ck_assert_uint_eq(rl_cache_pool_total(&p), 0);
    rl_cache_pool_free(&p);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("cache");
    TCase *tc = tcase_create("cache");
    tcase_add_test(tc, test_find_by_offset);
    tcase_add_test(tc, test_pool_bounds_all);
    tcase_add_test(tc, test_pool_threads);
    tcase_add_test(tc, test_budget_evicts_oldest);
    tcase_add_test(tc, test_truncate_and_replace);
    tcase_add_test(tc, test_copy_for_iterators);
    tcase_add_test(tc, test_chunk_walk);
    tcase_add_test(tc, test_read_one_record);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
