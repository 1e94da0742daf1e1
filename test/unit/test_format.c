/* The store's on-disk encodings: round trips, and every flipped bit of a
 * frame, segment header, metadata copy or index file is detected. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "liblog.h"
#include "store/format.h"

static void make_frame(unsigned char *hdr, unsigned char *payload, uint32_t len)
{
    for (uint32_t i = 0; i < len; i++)
        payload[i] = (unsigned char)(i * 7 + 3);
    struct rl_frame f = {.index = 42, .term = 7, .offset = 1000, .batch_first = 40,
                         .length = len, .records = 5, .gen = 3, .type = 1, .flags = 0};
    rl_frame_encode(hdr, &f);
    rl_frame_seal(hdr, payload, len);
}

START_TEST(test_frame_round_trip)
{
    unsigned char hdr[RL_FRAME_HDR], payload[100];
    make_frame(hdr, payload, sizeof payload);
    struct rl_frame f;
    rl_frame_decode(hdr, &f);
    ck_assert_uint_eq(f.index, 42);
    ck_assert_uint_eq(f.term, 7);
    ck_assert_uint_eq(f.offset, 1000);
    ck_assert_uint_eq(f.batch_first, 40);
    ck_assert_uint_eq(f.length, 100);
    ck_assert_uint_eq(f.records, 5);
    ck_assert_uint_eq(f.gen, 3);
    ck_assert_uint_eq(f.type, 1);
    ck_assert(rl_frame_verify(hdr, payload, sizeof payload));
}
END_TEST

START_TEST(test_frame_every_bit_flip_detected)
{
    unsigned char hdr[RL_FRAME_HDR], payload[64];
    make_frame(hdr, payload, sizeof payload);
    for (size_t bit = 0; bit < (RL_FRAME_HDR + sizeof payload) * 8; bit++) {
        unsigned char *p = bit / 8 < RL_FRAME_HDR ? hdr + bit / 8 : payload + bit / 8 - RL_FRAME_HDR;
        *p ^= (unsigned char)(1u << (bit % 8));
        ck_assert_msg(!rl_frame_verify(hdr, payload, sizeof payload), "bit %zu flip not detected",
                      bit);
        *p ^= (unsigned char)(1u << (bit % 8));
    }
    ck_assert(rl_frame_verify(hdr, payload, sizeof payload));
}
END_TEST

START_TEST(test_frame_empty_payload)
{
    unsigned char hdr[RL_FRAME_HDR];
    struct rl_frame f = {.index = 1, .term = 1};
    rl_frame_encode(hdr, &f);
    rl_frame_seal(hdr, NULL, 0);
    ck_assert(rl_frame_verify(hdr, NULL, 0));
    ck_assert(!rl_all_zero(hdr, sizeof hdr));
}
END_TEST

START_TEST(test_seg_hdr)
{
    unsigned char b[RL_SEG_HDR];
    struct rl_seg_hdr h = {.seq = 9, .first_index = 100, .first_offset = 5000, .dir_id = 0xabc,
                           .gen = 4},
                      o;
    rl_seg_hdr_encode(b, &h);
    ck_assert_int_eq(rl_seg_hdr_decode(b, &o), 0);
    ck_assert_uint_eq(o.seq, 9);
    ck_assert_uint_eq(o.first_index, 100);
    ck_assert_uint_eq(o.first_offset, 5000);
    ck_assert_uint_eq(o.dir_id, 0xabc);
    ck_assert_uint_eq(o.gen, 4);
    for (size_t bit = 0; bit < RL_SEG_HDR * 8; bit++) {
        b[bit / 8] ^= (unsigned char)(1u << (bit % 8));
        ck_assert_int_ne(rl_seg_hdr_decode(b, &o), 0);
        b[bit / 8] ^= (unsigned char)(1u << (bit % 8));
    }
    memset(b, 0, sizeof b);
    ck_assert_int_eq(rl_seg_hdr_decode(b, &o), RLOG_ECORRUPT);
}
END_TEST

START_TEST(test_meta)
{
    unsigned char b[RL_META_SIZE];
    struct rl_meta m, o;
    /* zeroed padding, so the structs compare byte for byte */
    memset(&m, 0, sizeof m);
    memset(&o, 0, sizeof o);
    m.seq = 3, m.term = 8, m.vote = 2, m.first_index = 11, m.first_offset = 90;
    m.dir_id = 77, m.cut_seq = 4, m.cut_pos = 4096, m.gen = 6, m.cut_gen = 6;
    m.flags = RL_META_RESET;
    rl_meta_encode(b, &m);
    ck_assert_int_eq(rl_meta_decode(b, sizeof b, &o), 0);
    ck_assert_mem_eq(&o, &m, sizeof m);
    ck_assert_int_eq(rl_meta_decode(b, sizeof b - 1, &o), RLOG_ECORRUPT); /* truncated */
    for (size_t bit = 0; bit < RL_META_SIZE * 8; bit++) {
        b[bit / 8] ^= (unsigned char)(1u << (bit % 8));
        ck_assert_int_ne(rl_meta_decode(b, sizeof b, &o), 0);
        b[bit / 8] ^= (unsigned char)(1u << (bit % 8));
    }
}
END_TEST

START_TEST(test_idx)
{
    struct rl_sample s[3] = {{1, 0, 64}, {50, 120, 70000}, {99, 300, 140000}}, o[3];
    struct rl_idx_hdr h = {.count = 3, .seq = 2, .first_index = 1, .last_index = 120,
                           .end_pos = 200000, .next_offset = 400, .last_pos = 199000,
                           .last_checksum = 0x1234, .dir_id = 5},
                      oh;
    size_t n = rl_idx_size(3);
    unsigned char *b = malloc(n);
    rl_idx_encode(b, &h, s);
    ck_assert_int_eq(rl_idx_decode(b, n, &oh, o, 3), 0);
    ck_assert_mem_eq(o, s, sizeof s);
    ck_assert_uint_eq(oh.last_checksum, 0x1234);
    ck_assert_int_ne(rl_idx_decode(b, n, &oh, o, 2), 0);     /* more samples than room */
    ck_assert_int_ne(rl_idx_decode(b, n - 8, &oh, o, 3), 0); /* truncated */
    for (size_t bit = 0; bit < n * 8; bit += 5) {
        b[bit / 8] ^= (unsigned char)(1u << (bit % 8));
        ck_assert_int_ne(rl_idx_decode(b, n, &oh, o, 3), 0);
        b[bit / 8] ^= (unsigned char)(1u << (bit % 8));
    }
    free(b);
}
END_TEST

START_TEST(test_errors_table)
{
    static const int codes[] = {
#define X(name, num, msg) RLOG_E##name,
        RLOG_ERRNO_MAP(X)
#undef X
    };
    ck_assert_str_eq(rlog_strerror(0), "success");
    ck_assert_str_eq(rlog_errname(0), "RLOG_OK");
    ck_assert_str_eq(rlog_errname(RLOG_ECORRUPT), "RLOG_ECORRUPT");
    ck_assert_str_eq(rlog_strerror(RLOG_ENOSPC), "no space left on device");
    ck_assert_str_eq(rlog_errname(12345), "RLOG_EUNKNOWN");
    ck_assert_str_eq(rlog_strerror(-9999), "unknown error");
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        ck_assert_int_lt(codes[i], 0);
        ck_assert_str_ne(rlog_errname(codes[i]), "RLOG_EUNKNOWN");
        ck_assert_str_ne(rlog_strerror(codes[i]), "unknown error");
        for (size_t j = 0; j < i; j++)
            ck_assert_int_ne(codes[i], codes[j]);
    }
    ck_assert_int_eq(rlog_version(), RLOG_VERSION_NUMBER);
    ck_assert_str_eq(rlog_version_string(), RLOG_VERSION_STRING);
}
END_TEST

static Suite *format_suite(void)
{
    Suite *s = suite_create("format");
    TCase *tc = tcase_create("encodings");
    tcase_add_test(tc, test_frame_round_trip);
    tcase_add_test(tc, test_frame_every_bit_flip_detected);
    tcase_add_test(tc, test_frame_empty_payload);
    tcase_add_test(tc, test_seg_hdr);
    tcase_add_test(tc, test_meta);
    tcase_add_test(tc, test_idx);
    tcase_add_test(tc, test_errors_table);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(format_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
