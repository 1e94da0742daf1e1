/* Append forwarding and the read barrier: the FORWARD, FORWARD_RESULT,
 * BARRIER and BARRIER_RESULT frames round-trip, and every malformed one
 * (corrupted, truncated, extended, or with a field out of range under a
 * valid checksum) is refused with RLOG_EPROTO and a reason; then three
 * nodes on 127.0.0.1: appends and barriers on a follower, the refusal with
 * forwarding off, the bounds. */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "lib/ports.h"
#include "liblog.h"
#include "wire/codec.h"

#define MAX_BODY (64u << 20)

/* ---- frames ------------------------------------------------------------------ */

static void wr64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void wr32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t rd32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* A frame whose body was edited gets a valid checksum again, so the field
 * checks themselves are what refuses it. */
static void reseal(unsigned char *f)
{
    uint64_t seed = XXH3_64bits(f, 24);
    wr64(f + 24, XXH3_64bits_withSeed(f + RL_WIRE_HDR, rd32(f + 8), seed));
}

static unsigned char *encode(const struct rl_wire_fwd *m, size_t *len)
{
    struct rl_wire_out out;
    ck_assert_int_eq(rl_wire_encode_fwd(m, 7, &out), 0);
    ck_assert_uint_eq(out.n_iov, 1);
    unsigned char *f = malloc(out.head_len);
    memcpy(f, out.head, out.head_len);
    *len = out.head_len;
    ck_assert_uint_eq(out.total, out.head_len);
    rl_wire_out_free(&out);
    return f;
}

/* Decodes a whole frame: 0 with *m filled, or the error with err set. */
static int decode(const unsigned char *f, size_t len, struct rl_wire_fwd *m, char *err,
                  size_t errlen)
{
    struct rl_wire_hdr h;
    err[0] = '\0';
    int rv = rl_wire_decode_hdr(f, MAX_BODY, &h, err, errlen);
    if (rv != 0)
        return rv;
    if (len != RL_WIRE_HDR + h.length) /* the transport reads exactly length bytes */
        return snprintf(err, errlen, "frame of %zu bytes, header says %u", len,
                        (unsigned)(RL_WIRE_HDR + h.length)), RLOG_EPROTO;
    return rl_wire_decode_fwd(&h, f + RL_WIRE_HDR, m, err, errlen);
}

static void refused(unsigned char *f, size_t len, const char *why)
{
    struct rl_wire_fwd m;
    char err[256];
    int rv = decode(f, len, &m, err, sizeof err);
    ck_assert_msg(rv == RLOG_EPROTO, "%s: accepted (rv %d)", why, rv);
    ck_assert_msg(err[0] != '\0' || len < RL_WIRE_HDR, "%s: no reason given", why);
    if (rv == 0)
        rl_wire_fwd_free(&m);
}

static size_t sample_lens[3] = {5, 0, 11};
static unsigned char sample_data[16] = "helloworld!!abcd";

static struct rl_wire_fwd sample_forward(void)
{
    return (struct rl_wire_fwd){.type = RL_WIRE_FORWARD, .request = 0x1122334455667788ull,
                                .producer_id = 9, .seq = 10, .expect_offset = UINT64_MAX,
                                .hash = 0xabcdef, .n = 3, .lens = sample_lens,
                                .data = sample_data, .bytes = 16};
}

START_TEST(test_forward_round_trip)
{
    struct rl_wire_fwd m = sample_forward();
    size_t len;
    unsigned char *f = encode(&m, &len);
    ck_assert_uint_eq(len % 8, 0);
    struct rl_wire_fwd d;
    char err[256];
    ck_assert_int_eq(decode(f, len, &d, err, sizeof err), 0);
    ck_assert_uint_eq(d.type, RL_WIRE_FORWARD);
    ck_assert_uint_eq(d.request, m.request);
    ck_assert_uint_eq(d.producer_id, 9);
    ck_assert_uint_eq(d.seq, 10);
    ck_assert_uint_eq(d.expect_offset, UINT64_MAX);
    ck_assert_uint_eq(d.hash, 0xabcdef);
    ck_assert_uint_eq(d.n, 3);
    ck_assert_uint_eq(d.bytes, 16);
    for (int i = 0; i < 3; i++)
        ck_assert_uint_eq(d.lens[i], sample_lens[i]);
    ck_assert_mem_eq(d.data, sample_data, 16);
    /* Canonical: what decodes re-encodes to the same bytes. */
    size_t len2;
    unsigned char *f2 = encode(&d, &len2);
    ck_assert_uint_eq(len2, len);
    ck_assert_mem_eq(f2, f, len);
    rl_wire_fwd_free(&d);
    free(f2);
    free(f);
}
END_TEST

START_TEST(test_results_and_barrier_round_trip)
{
    uint16_t types[] = {RL_WIRE_FORWARD_RESULT, RL_WIRE_BARRIER_RESULT, RL_WIRE_BARRIER};
    for (int t = 0; t < 3; t++) {
        struct rl_wire_fwd m = {.type = types[t], .request = 42, .status = RLOG_ENOTLEADER,
                                .offset = 1234};
        if (types[t] == RL_WIRE_BARRIER)
            m.status = 0;
        snprintf(m.msg, sizeof m.msg, "not the leader; leader is 2 at 127.0.0.1:7002");
        size_t len;
        unsigned char *f = encode(&m, &len);
        struct rl_wire_fwd d;
        char err[256];
        ck_assert_msg(decode(f, len, &d, err, sizeof err) == 0, "type %u: %s", types[t], err);
        ck_assert_uint_eq(d.type, types[t]);
        ck_assert_uint_eq(d.request, 42);
        if (types[t] != RL_WIRE_BARRIER) {
            ck_assert_int_eq(d.status, RLOG_ENOTLEADER);
            ck_assert_uint_eq(d.offset, 1234);
            ck_assert_str_eq(d.msg, m.msg);
        }
        free(f);
    }
    /* Success carries no message; the longest message fits exactly. */
    struct rl_wire_fwd m = {.type = RL_WIRE_FORWARD_RESULT, .request = 1, .offset = 7};
    memset(m.msg, 'x', RL_WIRE_FWD_MSG_MAX);
    m.msg[RL_WIRE_FWD_MSG_MAX] = '\0';
    size_t len;
    unsigned char *f = encode(&m, &len);
    struct rl_wire_fwd d;
    char err[256];
    ck_assert_int_eq(decode(f, len, &d, err, sizeof err), 0);
    ck_assert_uint_eq(strlen(d.msg), RL_WIRE_FWD_MSG_MAX);
    free(f);
}
END_TEST

START_TEST(test_every_byte_corruption_refused)
{
    struct rl_wire_fwd m = sample_forward();
    size_t len;
    unsigned char *f = encode(&m, &len);
    for (size_t i = 0; i < len; i++)
        for (int bit = 0; bit < 8; bit++) {
            f[i] ^= (unsigned char)(1u << bit);
            char why[64];
            snprintf(why, sizeof why, "byte %zu bit %d", i, bit);
            refused(f, len, why);
            f[i] ^= (unsigned char)(1u << bit);
        }
    free(f);
}
END_TEST

START_TEST(test_truncated_and_extended_refused)
{
    struct rl_wire_fwd m = sample_forward();
    size_t len;
    unsigned char *f = encode(&m, &len);
    /* Shorter bodies (the length field says so, the checksum matches). */
    for (size_t body = 0; body + RL_WIRE_HDR < len; body += 8) {
        unsigned char *g = malloc(RL_WIRE_HDR + body + 1);
        memcpy(g, f, RL_WIRE_HDR + body);
        wr32(g + 8, (uint32_t)body);
        reseal(g);
        refused(g, RL_WIRE_HDR + body, "truncated body");
        free(g);
    }
    /* Eight more bytes, zero or not. */
    for (int fill = 0; fill < 2; fill++) {
        unsigned char *g = calloc(1, len + 8);
        memcpy(g, f, len);
        if (fill)
            memset(g + len, 0xff, 8);
        wr32(g + 8, (uint32_t)(len + 8 - RL_WIRE_HDR));
        reseal(g);
        refused(g, len + 8, "extended body");
        free(g);
    }
    free(f);
}
END_TEST

/* FORWARD body words: 0 request, 1 producer, 2 seq, 3 expect, 4 hash, 5 n,
 * 6.. lengths, then the records. */
static void forward_field(int word, uint64_t v, const char *why)
{
    struct rl_wire_fwd m = sample_forward();
    size_t len;
    unsigned char *f = encode(&m, &len);
    wr64(f + RL_WIRE_HDR + 8 * word, v);
    reseal(f);
    refused(f, len, why);
    free(f);
}

START_TEST(test_forward_fields_refused)
{
    forward_field(5, 0, "no records");
    forward_field(5, 4, "more records than lengths");
    forward_field(5, 2, "fewer records than lengths");
    forward_field(5, RL_WIRE_FWD_MAX_RECORDS + 1ull, "record count over the cap");
    forward_field(5, UINT64_MAX, "record count wraps");
    forward_field(6, UINT64_MAX, "a length past the body");
    forward_field(6, UINT64_MAX - 3, "lengths whose sum wraps");
    forward_field(6, 6, "lengths longer than the bytes");
    forward_field(8, 10, "lengths shorter than the bytes");
    /* Nonzero padding after the records. */
    struct rl_wire_fwd m = sample_forward();
    m.lens[2] = 10;
    m.bytes = 15;
    size_t len;
    unsigned char *f = encode(&m, &len);
    f[len - 1] = 1;
    reseal(f);
    refused(f, len, "nonzero padding");
    free(f);
    sample_lens[2] = 11;
}
END_TEST

static void result_field(uint16_t type, int word, uint64_t v, const char *why)
{
    struct rl_wire_fwd m = {.type = type, .request = 3, .status = RLOG_EAGAIN, .offset = 9};
    snprintf(m.msg, sizeof m.msg, "abc");
    size_t len;
    unsigned char *f = encode(&m, &len);
    wr64(f + RL_WIRE_HDR + 8 * word, v);
    reseal(f);
    refused(f, len, why);
    free(f);
}

START_TEST(test_result_fields_refused)
{
    uint16_t types[] = {RL_WIRE_FORWARD_RESULT, RL_WIRE_BARRIER_RESULT};
    for (int t = 0; t < 2; t++) {
        result_field(types[t], 1, 1001, "status out of range");
        result_field(types[t], 1, UINT64_MAX, "status wraps");
        result_field(types[t], 3, RL_WIRE_FWD_MSG_MAX + 1, "message too long");
        result_field(types[t], 3, 9, "message longer than the body");
        result_field(types[t], 3, 2, "message shorter than its bytes (padding)");
        result_field(types[t], 4, 0x0000000000636200ull, "a NUL inside the message");
    }
    /* A BARRIER is exactly one word. */
    struct rl_wire_fwd b = {.type = RL_WIRE_BARRIER, .request = 5};
    size_t len;
    unsigned char *f = encode(&b, &len);
    ck_assert_uint_eq(len, RL_WIRE_HDR + 8);
    unsigned char *g = calloc(1, len + 8);
    memcpy(g, f, len);
    wr32(g + 8, 16);
    reseal(g);
    refused(g, len + 8, "barrier with a spare word");
    free(g);
    free(f);
}
END_TEST

START_TEST(test_codec_boundaries)
{
    /* The raft decoder refuses these types: they never reach libraft. */
    struct rl_wire_fwd m = sample_forward();
    size_t len;
    unsigned char *f = encode(&m, &len);
    struct rl_wire_hdr h;
    char err[256];
    ck_assert_int_eq(rl_wire_decode_hdr(f, MAX_BODY, &h, err, sizeof err), 0);
    struct raft_message msg;
    bool owned;
    ck_assert_int_eq(rl_wire_decode(&h, f + RL_WIRE_HDR, &msg, &owned, err, sizeof err),
                     RLOG_EPROTO);
    ck_assert_ptr_nonnull(strstr(err, "not a raft message"));
    /* And the forwarding decoder refuses raft types. */
    h.type = RL_WIRE_COMMIT;
    struct rl_wire_fwd d;
    ck_assert_int_eq(rl_wire_decode_fwd(&h, f + RL_WIRE_HDR, &d, err, sizeof err), RLOG_EPROTO);
    /* A body over the receiver's cap is refused from the header alone. */
    ck_assert_int_eq(rl_wire_decode_hdr(f, 8, &h, err, sizeof err), RLOG_EPROTO);
    free(f);
    /* The encoder refuses what the decoder would. */
    struct rl_wire_out out;
    m.n = 0;
    ck_assert_int_eq(rl_wire_encode_fwd(&m, 7, &out), RLOG_EINVAL);
    m = sample_forward();
    m.bytes = 15; /* not the sum of the lengths */
    ck_assert_int_eq(rl_wire_encode_fwd(&m, 7, &out), RLOG_EINVAL);
    m = sample_forward();
    ck_assert_int_eq(rl_wire_encode_fwd(&m, 0, &out), RLOG_EINVAL);
    struct rl_wire_fwd r = {.type = RL_WIRE_FORWARD_RESULT, .status = 5};
    ck_assert_int_eq(rl_wire_encode_fwd(&r, 7, &out), RLOG_EINVAL);
    r.type = RL_WIRE_COMMIT;
    r.status = 0;
    ck_assert_int_eq(rl_wire_encode_fwd(&r, 7, &out), RLOG_EINVAL);
}
END_TEST

START_TEST(test_fuzz_bodies)
{
    /* Random bodies with valid checksums: refused or decoded, never a
     * crash or a leak (ASan), and what decodes re-encodes identically. */
    uint64_t x = 88172645463325252ull;
    uint16_t types[] = {RL_WIRE_FORWARD, RL_WIRE_FORWARD_RESULT, RL_WIRE_BARRIER,
                        RL_WIRE_BARRIER_RESULT};
    for (int iter = 0; iter < 20000; iter++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        size_t body = 8 * (1 + x % 12);
        unsigned char *f = calloc(1, RL_WIRE_HDR + body);
        wr32(f, RL_WIRE_MAGIC);
        f[4] = 1;
        f[6] = (unsigned char)types[(x >> 8) % 4];
        wr32(f + 8, (uint32_t)body);
        wr64(f + 16, 3);
        for (size_t i = 0; i < body; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            /* Mostly small words, so some frames are well formed. */
            f[RL_WIRE_HDR + i] = (i % 8 == 0) ? (unsigned char)(x % 6) : (x % 5 ? 0 : (unsigned char)x);
        }
        reseal(f);
        struct rl_wire_fwd d;
        char err[256];
        if (decode(f, RL_WIRE_HDR + body, &d, err, sizeof err) == 0) {
            struct rl_wire_out out;
            ck_assert_int_eq(rl_wire_encode_fwd(&d, 3, &out), 0);
            ck_assert_uint_eq(out.head_len, RL_WIRE_HDR + body);
            ck_assert_mem_eq(out.head, f, RL_WIRE_HDR + body);
            rl_wire_out_free(&out);
            rl_wire_fwd_free(&d);
        }
        free(f);
    }
}
END_TEST

/* ---- three nodes ---------------------------------------------------------------- */

#define N 3

static struct {
    char dir[64];
    char addrs[N][32], dirs[N][128];
    struct rlog_peer peers[N];
    rlog *node[N];
} C;

static void quiet(void *arg, int level, const char *line)
{
    (void)arg;
    if (getenv("RLOG_TEST_VERBOSE") || level >= 3)
        fprintf(stderr, "%s\n", line);
}

static void open_node(int i, int forward, uint64_t max_forward)
{
    struct rlog_config c;
    rlog_config_init(&c);
    ck_assert_int_eq(c.forward_appends, 1);
    c.id = (uint64_t)i + 1;
    c.address = C.addrs[i];
    c.data_dir = C.dirs[i];
    c.peers = C.peers;
    c.n_peers = N;
    c.election_timeout_ms = 400;
    c.heartbeat_timeout_ms = 50;
    c.segment_size = 1u << 20;
    c.batch_max_bytes = 256u << 10;
    c.max_record_size = 64u << 10;
    c.forward_appends = forward;
    c.max_forward_bytes = max_forward;
    c.log_fn = quiet;
    char err[256];
    int rv = rlog_open(&c, &C.node[i], err, sizeof err);
    ck_assert_msg(rv == 0, "open node %d: %s: %s", i + 1, rlog_errname(rv), err);
}

static void cluster_up(int forward, uint64_t max_forward)
{
    snprintf(C.dir, sizeof C.dir, "/tmp/rlog-forward-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(C.dir));
    int base = th_free_ports(30000, 3);
    char top[sizeof C.dir];
    memcpy(top, C.dir, sizeof top); /* not an argument overlapping C itself */
    for (int i = 0; i < N; i++) {
        snprintf(C.addrs[i], sizeof C.addrs[i], "127.0.0.1:%d", base + i);
        snprintf(C.dirs[i], sizeof C.dirs[i], "%s/n%d", top, i + 1);
        C.peers[i] = (struct rlog_peer){(uint64_t)i + 1, C.addrs[i]};
    }
    for (int i = 0; i < N; i++)
        open_node(i, forward, max_forward);
}

static void cluster_down(void)
{
    for (int i = 0; i < N; i++)
        if (C.node[i]) {
            rlog_close(C.node[i]);
            C.node[i] = NULL;
        }
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", C.dir);
    ck_assert_int_eq(system(cmd), 0);
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* The leader every node agrees on, once there is one (index, or -1). */
static int wait_leader(void)
{
    for (int t = 0; t < 300; t++) {
        struct rlog_status st;
        int leader = -1, agree = 0;
        for (int i = 0; i < N; i++)
            if (C.node[i] && rlog_status(C.node[i], &st) == 0 && st.leader_id) {
                if (leader < 0)
                    leader = (int)st.leader_id - 1;
                agree += (int)st.leader_id - 1 == leader;
            }
        if (leader >= 0 && agree == N)
            return leader;
        sleep_ms(20);
    }
    return -1;
}

START_TEST(test_follower_appends_and_barrier)
{
    cluster_up(1, 0);
    int l = wait_leader();
    ck_assert_int_ge(l, 0);
    int f = (l + 1) % N;
    uint64_t off = 0, prev = 0;
    for (int k = 0; k < 50; k++) {
        char rec[32];
        int n = snprintf(rec, sizeof rec, "record %d", k);
        int rv = rlog_append(C.node[f], rec, (size_t)n, &off);
        ck_assert_msg(rv == 0, "append %d on follower: %s: %s", k, rlog_errname(rv),
                      rlog_errmsg(C.node[f]));
        ck_assert(k == 0 || off == prev + 1);
        prev = off;
        /* Visible on the follower as soon as the call returns. */
        void *b;
        size_t len;
        ck_assert_int_eq(rlog_read(C.node[f], off, &b, &len), 0);
        ck_assert_uint_eq(len, (size_t)n);
        ck_assert_mem_eq(b, rec, len);
        rlog_free(b);
    }
    /* A batch too, and a leader-side append interleaved. */
    struct rlog_buf bufs[3] = {{"a", 1}, {"bb", 2}, {"ccc", 3}};
    uint64_t first;
    ck_assert_int_eq(rlog_append_batch(C.node[f], bufs, 3, &first), 0);
    ck_assert_uint_eq(first, off + 1);
    uint64_t loff;
    ck_assert_int_eq(rlog_append(C.node[l], "leader", 6, &loff), 0);
    ck_assert_uint_eq(loff, first + 3);
    /* Barriers: on the follower it covers the leader's append. */
    uint64_t bar = 0;
    int rv = rlog_barrier(C.node[f], &bar);
    ck_assert_msg(rv == 0, "barrier on follower: %s: %s", rlog_errname(rv), rlog_errmsg(C.node[f]));
    ck_assert_uint_ge(bar, loff + 1);
    void *b;
    size_t len;
    ck_assert_int_eq(rlog_read(C.node[f], loff, &b, &len), 0);
    ck_assert_mem_eq(b, "leader", 6);
    rlog_free(b);
    ck_assert_int_eq(rlog_barrier(C.node[l], &bar), 0);
    ck_assert_uint_ge(bar, loff + 1);
    int third = (l + 2) % N;
    ck_assert_int_eq(rlog_barrier(C.node[third], NULL), 0);
    struct rlog_status st;
    ck_assert_int_eq(rlog_status(C.node[f], &st), 0);
    ck_assert_uint_eq(st.forwarded_appends, 51);
    ck_assert_int_eq(rlog_status(C.node[l], &st), 0);
    ck_assert_uint_eq(st.forwards_served, 51);
    ck_assert_uint_eq(st.forward_refused, 0);
    cluster_down();
}
END_TEST

struct acounter {
    int ok, err, last_err;
};

static void count_cb(void *arg, int status, uint64_t off)
{
    struct acounter *a = arg;
    (void)off;
    if (status == 0)
        __atomic_add_fetch(&a->ok, 1, __ATOMIC_SEQ_CST);
    else {
        __atomic_add_fetch(&a->err, 1, __ATOMIC_SEQ_CST);
        a->last_err = status;
    }
}

START_TEST(test_forward_off_and_bounds)
{
    cluster_up(0, 0);
    int l = wait_leader();
    ck_assert_int_ge(l, 0);
    int f = (l + 1) % N;
    uint64_t off;
    ck_assert_int_eq(rlog_append(C.node[f], "x", 1, &off), RLOG_ENOTLEADER);
    ck_assert_msg(strstr(rlog_errmsg(C.node[f]), C.addrs[l]) != NULL, "errmsg '%s' lacks %s",
                  rlog_errmsg(C.node[f]), C.addrs[l]);
    /* The barrier works with forwarding off: it appends nothing. */
    ck_assert_int_eq(rlog_barrier(C.node[f], NULL), 0);
    cluster_down();

    /* A follower bound of one batch: many calls at once, some refused
     * with RLOG_EAGAIN (nothing appended), the rest acknowledged. */
    cluster_up(1, 256u << 10);
    l = wait_leader();
    ck_assert_int_ge(l, 0);
    f = (l + 1) % N;
    static char big[60000];
    memset(big, 'b', sizeof big);
    struct acounter a = {0};
    int refused_now = 0;
    struct rlog_buf rb = {big, sizeof big};
    for (int k = 0; k < 40; k++) {
        int rv = rlog_append_async(C.node[f], &rb, 1, count_cb, &a);
        if (rv != 0)
            refused_now++;
    }
    for (int t = 0; t < 500 && __atomic_load_n(&a.ok, __ATOMIC_SEQ_CST) +
                                   __atomic_load_n(&a.err, __ATOMIC_SEQ_CST) < 40 - refused_now;
         t++)
        sleep_ms(10);
    ck_assert_int_eq(a.ok + a.err, 40 - refused_now);
    ck_assert_int_gt(a.ok, 0);
    ck_assert_int_gt(a.err, 0);
    ck_assert_int_eq(a.last_err, RLOG_EAGAIN);
    uint64_t end;
    ck_assert_int_eq(rlog_barrier(C.node[l], &end), 0);
    struct rlog_status st;
    ck_assert_int_eq(rlog_status(C.node[l], &st), 0);
    ck_assert_uint_eq(st.commit_offset, (uint64_t)a.ok);
    cluster_down();
}
END_TEST

START_TEST(test_config_validation)
{
    struct rlog_config c;
    rlog_config_init(&c);
    ck_assert_int_eq(c.forward_appends, 1);
    ck_assert_uint_eq(c.max_forward_bytes, 64ull << 20);
    struct rlog_peer p = {1, "127.0.0.1:1"};
    c.id = 1;
    c.address = p.address;
    c.peers = &p;
    c.n_peers = 1;
    c.data_dir = "/nonexistent/never-created";
    c.forward_appends = 2;
    rlog *log;
    char err[256];
    ck_assert_int_eq(rlog_open(&c, &log, err, sizeof err), RLOG_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "forward_appends"));
    c.forward_appends = 1;
    c.max_forward_bytes = 1000;
    ck_assert_int_eq(rlog_open(&c, &log, err, sizeof err), RLOG_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "max_forward_bytes"));
}
END_TEST

/* liblog 0.4: a named cursor's commit forwarded (CURSOR) and its answer. */
START_TEST(test_cursor_frames)
{
    struct rl_wire_fwd m = {.type = RL_WIRE_CURSOR, .request = 9, .offset = 1234};
    snprintf(m.cursor, sizeof m.cursor, "projection.orders");
    size_t len;
    unsigned char *f = encode(&m, &len);
    struct rl_wire_fwd d;
    char err[256];
    ck_assert_int_eq(decode(f, len, &d, err, sizeof err), 0);
    ck_assert_uint_eq(d.type, RL_WIRE_CURSOR);
    ck_assert_uint_eq(d.request, 9);
    ck_assert_uint_eq(d.offset, 1234);
    ck_assert_str_eq(d.cursor, "projection.orders");
    for (size_t i = 0; i < len; i++) {
        f[i] ^= 0x10;
        ck_assert_int_ne(decode(f, len, &d, err, sizeof err), 0);
        f[i] ^= 0x10;
    }
    /* Resealed edits: a name length of 0 or 65, a NUL in the name. */
    unsigned char *nlen = f + RL_WIRE_HDR + 16;
    wr64(nlen, 0);
    reseal(f);
    refused(f, len, "name of 0 bytes");
    wr64(nlen, 65);
    reseal(f);
    refused(f, len, "name of 65 bytes");
    wr64(nlen, 17);
    f[RL_WIRE_HDR + 24 + 3] = 0;
    reseal(f);
    refused(f, len, "NUL");
    free(f);
    m.cursor[0] = '\0';
    struct rl_wire_out out;
    ck_assert_int_eq(rl_wire_encode_fwd(&m, 7, &out), RLOG_EINVAL);
    struct rl_wire_fwd r = {.type = RL_WIRE_CURSOR_RESULT, .request = 9, .status = RLOG_EINVAL,
                            .offset = 0};
    snprintf(r.msg, sizeof r.msg, "offset beyond the committed end");
    f = encode(&r, &len);
    ck_assert_int_eq(decode(f, len, &d, err, sizeof err), 0);
    ck_assert_int_eq(d.status, RLOG_EINVAL);
    ck_assert_str_eq(d.msg, "offset beyond the committed end");
    free(f);
}
END_TEST

/* liblog 0.4.1: a snapshot install's request and data frames. */
START_TEST(test_snapshot_frames)
{
    struct rl_wire_fwd q = {.type = RL_WIRE_SNAP_REQUEST, .request = 5, .snap_need = 700,
                            .snap_next = 0, .snap_pos = 1 << 20, .snap_budget = 65536};
    size_t len;
    unsigned char *f = encode(&q, &len);
    struct rl_wire_fwd d;
    char err[256];
    ck_assert_int_eq(decode(f, len, &d, err, sizeof err), 0);
    ck_assert_uint_eq(d.type, RL_WIRE_SNAP_REQUEST);
    ck_assert_uint_eq(d.request, 5);
    ck_assert_uint_eq(d.snap_need, 700);
    ck_assert_uint_eq(d.snap_next, 0);
    ck_assert_uint_eq(d.snap_pos, 1 << 20);
    ck_assert_uint_eq(d.snap_budget, 65536);
    rl_wire_fwd_free(&d);
    unsigned char *budget = f + RL_WIRE_HDR + 32;
    wr64(budget, 0);
    reseal(f);
    refused(f, len, "budget 0");
    wr64(budget, RL_WIRE_SNAP_PIECE_MAX + 1ull);
    reseal(f);
    refused(f, len, "budget beyond a piece");
    free(f);
    q.snap_budget = RL_WIRE_SNAP_PIECE_MAX + 1;
    struct rl_wire_out out;
    ck_assert_int_eq(rl_wire_encode_fwd(&q, 7, &out), RLOG_EINVAL);

    unsigned char piece[13] = "snapshotbytes";
    struct rl_wire_fwd a = {.type = RL_WIRE_SNAP_DATA, .request = 5, .snap_next = 800,
                            .snap_size = 100, .snap_pos = 87, .data = piece, .bytes = 13};
    f = encode(&a, &len);
    ck_assert_int_eq(decode(f, len, &d, err, sizeof err), 0);
    ck_assert_uint_eq(d.type, RL_WIRE_SNAP_DATA);
    ck_assert_int_eq(d.status, 0);
    ck_assert_uint_eq(d.snap_next, 800);
    ck_assert_uint_eq(d.snap_size, 100);
    ck_assert_uint_eq(d.snap_pos, 87);
    ck_assert_uint_eq(d.bytes, 13);
    ck_assert_int_eq(memcmp(d.data, piece, 13), 0);
    rl_wire_fwd_free(&d);
    for (size_t i = 0; i < len; i++) {
        f[i] ^= 0x04;
        ck_assert_int_ne(decode(f, len, &d, err, sizeof err), 0);
        f[i] ^= 0x04;
    }
    /* Resealed edits: a piece past the file's end, a position past it, a
     * status with data, a status out of range, nonzero padding. */
    unsigned char *size = f + RL_WIRE_HDR + 24, *pos = f + RL_WIRE_HDR + 32;
    wr64(size, 99);
    reseal(f);
    refused(f, len, "piece past the end");
    wr64(size, 100);
    wr64(pos, UINT64_MAX - 5);
    reseal(f);
    refused(f, len, "position that wraps");
    wr64(pos, 87);
    wr64(f + RL_WIRE_HDR + 8, 5);
    reseal(f);
    refused(f, len, "status with data");
    wr64(f + RL_WIRE_HDR + 8, 0);
    f[len - 1] = 1;
    reseal(f);
    refused(f, len, "padding");
    free(f);
    struct rl_wire_fwd e = {.type = RL_WIRE_SNAP_DATA, .request = 6, .status = RLOG_ENOTFOUND};
    f = encode(&e, &len);
    ck_assert_int_eq(decode(f, len, &d, err, sizeof err), 0);
    ck_assert_int_eq(d.status, RLOG_ENOTFOUND);
    ck_assert_uint_eq(d.bytes, 0);
    rl_wire_fwd_free(&d);
    wr64(f + RL_WIRE_HDR + 8, 5000);
    reseal(f);
    refused(f, len, "status out of range");
    free(f);
    e.bytes = 4;
    e.data = piece;
    ck_assert_int_eq(rl_wire_encode_fwd(&e, 7, &out), RLOG_EINVAL);
    /* A node's report of its newest snapshot: exactly two words. */
    struct rl_wire_fwd h = {.type = RL_WIRE_SNAP_HAVE, .snap_next = 4242};
    f = encode(&h, &len);
    ck_assert_uint_eq(len, RL_WIRE_HDR + 16);
    ck_assert_int_eq(decode(f, len, &d, err, sizeof err), 0);
    ck_assert_uint_eq(d.type, RL_WIRE_SNAP_HAVE);
    ck_assert_uint_eq(d.snap_next, 4242);
    rl_wire_fwd_free(&d);
    unsigned char *g = calloc(1, len + 8);
    memcpy(g, f, len);
    wr32(g + 8, 24);
    reseal(g);
    refused(g, len + 8, "a third word");
    free(g);
    free(f);
}
END_TEST

/* The quiescence frames: request, term, index; both nonzero, nothing more. */
START_TEST(test_quiet_frames)
{
    char err[256];
    size_t len;
    struct rl_wire_fwd d;
    unsigned types[3] = {RL_WIRE_QUIESCE, RL_WIRE_QUIESCED, RL_WIRE_UNQUIESCE};
    for (unsigned i = 0; i < 3; i++) {
        struct rl_wire_fwd q = {.type = (uint16_t)types[i], .quiet_term = 7, .quiet_index = 9001};
        unsigned char *f = encode(&q, &len);
        ck_assert_uint_eq(len, RL_WIRE_HDR + 24);
        ck_assert_int_eq(decode(f, len, &d, err, sizeof err), 0);
        ck_assert_uint_eq(d.type, types[i]);
        ck_assert_uint_eq(d.quiet_term, 7);
        ck_assert_uint_eq(d.quiet_index, 9001);
        rl_wire_fwd_free(&d);
        wr64(f + RL_WIRE_HDR + 8, 0);
        reseal(f);
        refused(f, len, "is 0");
        unsigned char *g = calloc(1, len + 8);
        memcpy(g, f, len);
        wr64(g + RL_WIRE_HDR + 8, 7);
        wr32(g + 8, 32);
        reseal(g);
        refused(g, len + 8, "");
        free(g);
        free(f);
        struct rl_wire_out out;
        q.quiet_index = 0;
        ck_assert_int_eq(rl_wire_encode_fwd(&q, 7, &out), RLOG_EINVAL);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("forward");
    TCase *tc = tcase_create("frames");
    tcase_add_test(tc, test_forward_round_trip);
    tcase_add_test(tc, test_cursor_frames);
    tcase_add_test(tc, test_snapshot_frames);
    tcase_add_test(tc, test_quiet_frames);
    tcase_add_test(tc, test_results_and_barrier_round_trip);
    tcase_add_test(tc, test_every_byte_corruption_refused);
    tcase_add_test(tc, test_truncated_and_extended_refused);
    tcase_add_test(tc, test_forward_fields_refused);
    tcase_add_test(tc, test_result_fields_refused);
    tcase_add_test(tc, test_codec_boundaries);
    tcase_add_test(tc, test_fuzz_bodies);
    tcase_add_test(tc, test_config_validation);
    suite_add_tcase(s, tc);
    tc = tcase_create("cluster");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_follower_appends_and_barrier);
    tcase_add_test(tc, test_forward_off_and_bounds);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
