/* The wire codec: every message type round-trips; every corrupted, truncated
 * or oversized frame is rejected with RLOG_EPROTO and a reason; garbage bodies
 * with valid checksums never crash or leak, and anything the decoder accepts
 * re-encodes to the very same bytes; allocation failures unwind cleanly. */
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "liblog.h"
#include "wire/codec.h"

#define MAX_BODY (64u << 20)

/* ---- helpers ------------------------------------------------------------- */

static uint64_t rd64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

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

static void wr16(unsigned char *p, uint16_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}

/* Recomputes the checksum of a frame whose header length field is right. */
static void reseal(unsigned char *f)
{
    uint32_t len = (uint32_t)f[8] | (uint32_t)f[9] << 8 | (uint32_t)f[10] << 16 |
                   (uint32_t)f[11] << 24;
    uint64_t seed = XXH3_64bits(f, 24);
    wr64(f + 24, XXH3_64bits_withSeed(f + RL_WIRE_HDR, len, seed));
}

/* Gathers an encoder's iovecs into one malloc'd buffer, checking the iovec
 * layout on the way; frees out. */
static unsigned char *flat_out(struct rl_wire_out out, size_t *len)
{
    ck_assert_uint_ge(out.n_iov, 1);
    ck_assert_ptr_eq(out.iov[0].base, out.head);
    ck_assert_uint_eq(out.iov[0].len, out.head_len);
    ck_assert_uint_eq(out.total % 8, 0);
    unsigned char *buf = malloc(out.total);
    ck_assert_ptr_nonnull(buf);
    size_t off = 0;
    for (unsigned i = 0; i < out.n_iov; i++) {
        ck_assert_uint_le(off + out.iov[i].len, out.total);
        memcpy(buf + off, out.iov[i].base, out.iov[i].len);
        off += out.iov[i].len;
    }
    ck_assert_uint_eq(off, out.total);
    *len = off;
    rl_wire_out_free(&out);
    ck_assert_ptr_null(out.head);
    return buf;
}

/* Encodes msg into one malloc'd buffer. */
static unsigned char *encode_flat(const struct raft_message *msg, uint64_t sender, size_t *len)
{
    struct rl_wire_out out;
    ck_assert_int_eq(rl_wire_encode(msg, sender, &out), 0);
    return flat_out(out, len);
}

struct rx {
    struct raft_message msg;
    void *body;
    bool owned;
    char err[256];
};

/* Receives a frame as the transport would: reads the header, then a body of
 * the length the header claims, taken from whatever follows in f (zeros past
 * its end, as if more bytes were on the stream). */
static int recv_frame(const unsigned char *f, size_t flen, struct rx *rx)
{
    struct rl_wire_hdr h;
    memset(rx, 0, sizeof *rx);
    ck_assert_uint_ge(flen, RL_WIRE_HDR);
    int rv = rl_wire_decode_hdr(f, MAX_BODY, &h, rx->err, sizeof rx->err);
    if (rv != 0)
        return rv;
    rx->body = raft_malloc(h.length);
    ck_assert_ptr_nonnull(rx->body);
    size_t have = flen - RL_WIRE_HDR < h.length ? flen - RL_WIRE_HDR : h.length;
    memcpy(rx->body, f + RL_WIRE_HDR, have);
    memset((char *)rx->body + have, 0, h.length - have);
    rv = rl_wire_decode(&h, rx->body, &rx->msg, &rx->owned, rx->err, sizeof rx->err);
    if (rv != 0) {
        ck_assert(!rx->owned);
        raft_free(rx->body);
        rx->body = NULL;
    }
    return rv;
}

/* Frees a decoded message the way a receiver that drops it would. */
static void rx_release(struct rx *rx)
{
    rl_wire_message_release(&rx->msg, rx->body, rx->owned);
    if (!rx->owned)
        raft_free(rx->body);
    rx->body = NULL;
}

/* Expects rejection with EPROTO, a message, and (if want) that substring. */
static void expect_reject(const unsigned char *f, size_t flen, const char *want)
{
    struct rx rx;
    int rv = recv_frame(f, flen, &rx);
    if (rv == 0)
        rx_release(&rx);
    ck_assert_msg(rv == RLOG_EPROTO, "expected EPROTO (%s), got %d", want ? want : "", rv);
    ck_assert_msg(rx.err[0] != '\0', "no error message");
    if (want != NULL)
        ck_assert_msg(strstr(rx.err, want) != NULL, "error \"%s\" lacks \"%s\"", rx.err, want);
}

static void assert_msg_eq(const struct raft_message *a, const struct raft_message *b)
{
    ck_assert_uint_eq(a->type, b->type);
    switch (a->type) {
    case RAFT_IO_REQUEST_VOTE:
        ck_assert_uint_eq(a->request_vote.term, b->request_vote.term);
        ck_assert_uint_eq(a->request_vote.candidate_id, b->request_vote.candidate_id);
        ck_assert_uint_eq(a->request_vote.last_log_index, b->request_vote.last_log_index);
        ck_assert_uint_eq(a->request_vote.last_log_term, b->request_vote.last_log_term);
        ck_assert_int_eq(a->request_vote.disrupt_leader, b->request_vote.disrupt_leader);
        ck_assert_int_eq(a->request_vote.pre_vote, b->request_vote.pre_vote);
        break;
    case RAFT_IO_REQUEST_VOTE_RESULT:
        ck_assert_uint_eq(a->request_vote_result.term, b->request_vote_result.term);
        ck_assert_int_eq(a->request_vote_result.vote_granted,
                         b->request_vote_result.vote_granted);
        ck_assert_int_eq(a->request_vote_result.pre_vote, b->request_vote_result.pre_vote);
        break;
    case RAFT_IO_APPEND_ENTRIES: {
        const struct raft_append_entries *x = &a->append_entries, *y = &b->append_entries;
        ck_assert_uint_eq(x->term, y->term);
        ck_assert_uint_eq(x->prev_log_index, y->prev_log_index);
        ck_assert_uint_eq(x->prev_log_term, y->prev_log_term);
        ck_assert_uint_eq(x->leader_commit, y->leader_commit);
        ck_assert_uint_eq(x->n_entries, y->n_entries);
        for (unsigned i = 0; i < x->n_entries; i++) {
            ck_assert_uint_eq(x->entries[i].term, y->entries[i].term);
            ck_assert_uint_eq(x->entries[i].type, y->entries[i].type);
            ck_assert_uint_eq(x->entries[i].buf.len, y->entries[i].buf.len);
            if (x->entries[i].buf.len > 0)
                ck_assert(memcmp(x->entries[i].buf.base, y->entries[i].buf.base,
                                 x->entries[i].buf.len) == 0);
        }
        break;
    }
    case RAFT_IO_APPEND_ENTRIES_RESULT:
        ck_assert_uint_eq(a->append_entries_result.term, b->append_entries_result.term);
        ck_assert_uint_eq(a->append_entries_result.rejected, b->append_entries_result.rejected);
        ck_assert_uint_eq(a->append_entries_result.last_log_index,
                          b->append_entries_result.last_log_index);
        break;
    case RAFT_IO_INSTALL_SNAPSHOT: {
        const struct raft_install_snapshot *x = &a->install_snapshot, *y = &b->install_snapshot;
        ck_assert_uint_eq(x->term, y->term);
        ck_assert_uint_eq(x->last_index, y->last_index);
        ck_assert_uint_eq(x->last_term, y->last_term);
        ck_assert_uint_eq(x->conf_index, y->conf_index);
        ck_assert_uint_eq(x->conf.n, y->conf.n);
        for (unsigned i = 0; i < x->conf.n; i++) {
            ck_assert_uint_eq(x->conf.servers[i].id, y->conf.servers[i].id);
            ck_assert_int_eq(x->conf.servers[i].role, y->conf.servers[i].role);
            ck_assert_str_eq(x->conf.servers[i].address, y->conf.servers[i].address);
        }
        ck_assert_uint_eq(x->data.len, y->data.len);
        if (x->data.len > 0)
            ck_assert(memcmp(x->data.base, y->data.base, x->data.len) == 0);
        break;
    }
    case RAFT_IO_TIMEOUT_NOW:
        ck_assert_uint_eq(a->timeout_now.term, b->timeout_now.term);
        ck_assert_uint_eq(a->timeout_now.last_log_index, b->timeout_now.last_log_index);
        ck_assert_uint_eq(a->timeout_now.last_log_term, b->timeout_now.last_log_term);
        break;
    default:
        ck_abort_msg("bad type %u", a->type);
    }
}

/* Encodes, decodes, compares. */
static void round_trip(const struct raft_message *m)
{
    size_t len;
    unsigned char *f = encode_flat(m, 7, &len);
    struct rx rx;
    ck_assert_msg(recv_frame(f, len, &rx) == 0, "decode failed: %s", rx.err);
    ck_assert_uint_eq(rx.msg.server_id, 7);
    ck_assert_ptr_null(rx.msg.server_address);
    assert_msg_eq(m, &rx.msg);
    rx_release(&rx);
    free(f);
}

/* Deterministic PRNG (xorshift64*), so every run replays exactly. */
static uint64_t rng_state;
static uint64_t rnd(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1DULL;
}

/* A sample message of every kind, for the corruption tests. Payloads and
 * addresses live in static storage. */
#define N_SAMPLES 8
static unsigned char payload_a[9] = "abcdefghi", payload_b[1] = {0xee}, payload_c[16];
static struct raft_entry sample_entries[3];
static struct raft_server sample_servers[3] = {
    {1, "10.0.0.1:9000", RAFT_VOTER},
    {2, "node-two.example:9000", RAFT_STANDBY},
    {3, "x", RAFT_SPARE},
};
static unsigned char snap_data[13] = "snapshotdata";

static void sample(int k, struct raft_message *m)
{
    memset(m, 0, sizeof *m);
    switch (k) {
    case 0:
        m->type = RAFT_IO_REQUEST_VOTE;
        m->request_vote = (struct raft_request_vote){5, 2, 100, 4, true, false};
        break;
    case 1:
        m->type = RAFT_IO_REQUEST_VOTE_RESULT;
        m->request_vote_result = (struct raft_request_vote_result){5, true, raft_tribool_false};
        break;
    case 2:
        m->type = RAFT_IO_APPEND_ENTRIES;
        sample_entries[0] = (struct raft_entry){3, RAFT_COMMAND, {payload_a, 9}, NULL};
        sample_entries[1] = (struct raft_entry){3, RAFT_BARRIER, {payload_b, 1}, NULL};
        sample_entries[2] = (struct raft_entry){4, RAFT_CHANGE, {payload_c, 16}, NULL};
        m->append_entries = (struct raft_append_entries){4, 10, 3, 9, sample_entries, 3};
        break;
    case 3:
        m->type = RAFT_IO_APPEND_ENTRIES;
        m->append_entries = (struct raft_append_entries){4, 10, 3, 9, NULL, 0};
        break;
    case 4:
        m->type = RAFT_IO_APPEND_ENTRIES_RESULT;
        m->append_entries_result = (struct raft_append_entries_result){4, 0, 12};
        break;
    case 5:
        m->type = RAFT_IO_INSTALL_SNAPSHOT;
        m->install_snapshot.term = 9;
        m->install_snapshot.last_index = 1000;
        m->install_snapshot.last_term = 8;
        m->install_snapshot.conf_index = 900;
        m->install_snapshot.conf.servers = sample_servers;
        m->install_snapshot.conf.n = 3;
        m->install_snapshot.data = (struct raft_buffer){snap_data, sizeof snap_data};
        break;
    case 6:
        m->type = RAFT_IO_TIMEOUT_NOW;
        m->timeout_now = (struct raft_timeout_now){6, 50, 6};
        break;
    default:
        m->type = RAFT_IO_INSTALL_SNAPSHOT;
        m->install_snapshot.term = 1;
        m->install_snapshot.conf.servers = sample_servers + 2;
        m->install_snapshot.conf.n = 1;
        break;
    }
}

/* ---- round trips ---------------------------------------------------------- */

START_TEST(test_request_vote)
{
    for (int i = 0; i < 4; i++) {
        struct raft_message m = {.type = RAFT_IO_REQUEST_VOTE};
        m.request_vote = (struct raft_request_vote){UINT64_MAX, 3, 1ull << 40, 77, i & 1, i >> 1};
        round_trip(&m);
    }
}
END_TEST

START_TEST(test_request_vote_result)
{
    raft_tribool tb[] = {raft_tribool_unknown, raft_tribool_true, raft_tribool_false};
    for (int g = 0; g < 2; g++)
        for (int t = 0; t < 3; t++) {
            struct raft_message m = {.type = RAFT_IO_REQUEST_VOTE_RESULT};
            m.request_vote_result = (struct raft_request_vote_result){42, g, tb[t]};
            round_trip(&m);
        }
}
END_TEST

START_TEST(test_append_entries_result_and_timeout_now)
{
    struct raft_message m = {.type = RAFT_IO_APPEND_ENTRIES_RESULT};
    m.append_entries_result = (struct raft_append_entries_result){9, 33, UINT64_MAX};
    round_trip(&m);
    m.type = RAFT_IO_TIMEOUT_NOW;
    m.timeout_now = (struct raft_timeout_now){9, 0, 0};
    round_trip(&m);
}
END_TEST

static const unsigned entry_counts[] = {0, 1, 2, 3, 17, 1000};

START_TEST(test_append_entries)
{
    unsigned n = entry_counts[_i];
    static const size_t lens[] = {1, 7, 9, 8, 0, 15, 16, 17, 4096, 4099, 64};
    struct raft_entry *e = n ? calloc(n, sizeof *e) : NULL;
    rng_state = 1234 + n;
    for (unsigned i = 0; i < n; i++) {
        size_t len = lens[i % (sizeof lens / sizeof lens[0])];
        e[i].term = 1 + i / 3;
        e[i].type = (unsigned short)(RAFT_COMMAND + i % 3);
        e[i].buf.len = len;
        e[i].buf.base = len ? malloc(len) : NULL;
        for (size_t j = 0; j < len; j++)
            ((unsigned char *)e[i].buf.base)[j] = (unsigned char)rnd();
    }
    struct raft_message m = {.type = RAFT_IO_APPEND_ENTRIES};
    m.append_entries = (struct raft_append_entries){8, 100, 7, 99, e, n};

    /* Payloads go out by reference, each padded with a separate iovec. */
    struct rl_wire_out out;
    ck_assert_int_eq(rl_wire_encode(&m, 3, &out), 0);
    unsigned k = 1;
    for (unsigned i = 0; i < n; i++) {
        if (e[i].buf.len == 0)
            continue;
        ck_assert_ptr_eq(out.iov[k].base, e[i].buf.base);
        ck_assert_uint_eq(out.iov[k].len, e[i].buf.len);
        k++;
        if (e[i].buf.len % 8) {
            ck_assert_uint_eq(out.iov[k].len, 8 - e[i].buf.len % 8);
            k++;
        }
    }
    ck_assert_uint_eq(k, out.n_iov);
    rl_wire_out_free(&out);

    size_t len;
    unsigned char *f = encode_flat(&m, 3, &len);
    struct rx rx;
    ck_assert_msg(recv_frame(f, len, &rx) == 0, "%s", rx.err);
    assert_msg_eq(&m, &rx.msg);
    ck_assert_int_eq(rx.owned, n > 0);
    if (n == 0)
        ck_assert_ptr_null(rx.msg.append_entries.entries);
    for (unsigned i = 0; i < n; i++) {
        const struct raft_entry *d = &rx.msg.append_entries.entries[i];
        ck_assert_ptr_eq(d->batch, rx.body);
        if (d->buf.len == 0) {
            ck_assert_ptr_null(d->buf.base);
        } else {
            ck_assert_uint_eq(((uintptr_t)d->buf.base - (uintptr_t)rx.body) % 8, 0);
            ck_assert((char *)d->buf.base + d->buf.len <= (char *)rx.body + len - RL_WIRE_HDR);
        }
    }
    /* Release as libraft does (recv_append_entries.c): the batch, then the
     * array; or, for a heartbeat, only the array, leaving the body ours. */
    if (n > 0) {
        raft_free(rx.msg.append_entries.entries[0].batch);
        raft_free(rx.msg.append_entries.entries);
    } else {
        raft_free(rx.body);
    }

    /* And the other path, a message dropped before reaching libraft. */
    ck_assert_int_eq(recv_frame(f, len, &rx), 0);
    rx_release(&rx);

    free(f);
    for (unsigned i = 0; i < n; i++)
        free(e[i].buf.base);
    free(e);
}
END_TEST

START_TEST(test_append_entries_large_payload)
{
    size_t big = (4u << 20) + 3;
    unsigned char *p = malloc(big);
    for (size_t i = 0; i < big; i++)
        p[i] = (unsigned char)(i * 31 + 7);
    struct raft_entry e[3] = {
        {1, RAFT_COMMAND, {p, big}, NULL},
        {1, RAFT_COMMAND, {p + 1, 1}, NULL},
        {2, RAFT_COMMAND, {p + 5, big - 5}, NULL},
    };
    struct raft_message m = {.type = RAFT_IO_APPEND_ENTRIES};
    m.append_entries = (struct raft_append_entries){2, 0, 0, 0, e, 3};
    round_trip(&m);
    free(p);
}
END_TEST

START_TEST(test_install_snapshot)
{
    static const size_t data_lens[] = {0, 1, 7, 9, 100000};
    static const size_t addr_lens[] = {1, 7, 8, 9, 255, 20};
    for (size_t d = 0; d < sizeof data_lens / sizeof data_lens[0]; d++) {
        for (unsigned n = 1; n <= 16; n += 5) {
            struct raft_message m = {.type = RAFT_IO_INSTALL_SNAPSHOT};
            struct raft_install_snapshot *is = &m.install_snapshot;
            is->term = 11;
            is->last_index = 123456;
            is->last_term = 10;
            is->conf_index = 120000 + n;
            raft_configuration_init(&is->conf);
            for (unsigned i = 0; i < n; i++) {
                char addr[256];
                size_t al = addr_lens[i % 6];
                for (size_t j = 0; j < al; j++)
                    addr[j] = (char)('a' + (i + j) % 26);
                addr[al] = '\0';
                addr[0] = (char)('A' + i); /* unique */
                ck_assert_int_eq(raft_configuration_add(&is->conf, 100 + i, addr, (int)(i % 3)),
                                 0);
            }
            is->data.len = data_lens[d];
            is->data.base = data_lens[d] ? malloc(data_lens[d]) : NULL;
            for (size_t j = 0; j < data_lens[d]; j++)
                ((unsigned char *)is->data.base)[j] = (unsigned char)(j ^ 0x5a);
            round_trip(&m);
            raft_configuration_close(&is->conf);
            free(is->data.base);
        }
    }
}
END_TEST

/* ---- rejection ------------------------------------------------------------ */

START_TEST(test_every_byte_corruption_rejected)
{
    static const unsigned char flips[] = {0x01, 0x80, 0xff, 0x10};
    for (int k = 0; k < N_SAMPLES; k++) {
        struct raft_message m;
        sample(k, &m);
        size_t len;
        unsigned char *f = encode_flat(&m, 5, &len);
        for (size_t pos = 0; pos < len; pos++)
            for (size_t x = 0; x < sizeof flips; x++) {
                f[pos] ^= flips[x];
                expect_reject(f, len, NULL);
                f[pos] ^= flips[x];
            }
        /* Still intact after all that. */
        struct rx rx;
        ck_assert_int_eq(recv_frame(f, len, &rx), 0);
        assert_msg_eq(&m, &rx.msg);
        rx_release(&rx);
        free(f);
    }
}
END_TEST

START_TEST(test_truncated_and_extended_bodies)
{
    for (int k = 0; k < N_SAMPLES; k++) {
        struct raft_message m;
        sample(k, &m);
        size_t len;
        unsigned char *f = encode_flat(&m, 5, &len);
        unsigned char *g = calloc(1, len + 64);
        uint32_t body = (uint32_t)(len - RL_WIRE_HDR);
        /* Every shorter body, resealed so only the structure can tell. */
        for (uint32_t cut = 0; cut < body; cut++) {
            memcpy(g, f, RL_WIRE_HDR + cut);
            wr32(g + 8, cut);
            reseal(g);
            expect_reject(g, RL_WIRE_HDR + cut, NULL);
        }
        /* Longer bodies: trailing bytes, zero or not. */
        for (uint32_t extra = 8; extra <= 32; extra += 8) {
            memset(g, 0, len + 64);
            memcpy(g, f, len);
            g[len + extra - 1] = (unsigned char)(extra == 16);
            wr32(g + 8, body + extra);
            reseal(g);
            bool fixed = m.type != RAFT_IO_APPEND_ENTRIES && m.type != RAFT_IO_INSTALL_SNAPSHOT;
            expect_reject(g, len + extra, fixed ? "expected" : "trailing");
        }
        free(g);
        free(f);
    }
}
END_TEST

/* Builds a frame of `type` with the given body words and a valid checksum. */
struct fb {
    unsigned char b[8192];
    size_t n;
};

static void fb_start(struct fb *f, unsigned type)
{
    memset(f, 0, sizeof *f);
    wr32(f->b, RL_WIRE_MAGIC);
    wr16(f->b + 4, RL_WIRE_VERSION);
    wr16(f->b + 6, (uint16_t)type);
    wr64(f->b + 16, 9);
    f->n = RL_WIRE_HDR;
}

static void fb64(struct fb *f, uint64_t v)
{
    wr64(f->b + f->n, v);
    f->n += 8;
}

/* A string field: length, bytes, then `pad_byte` in the padding. */
static void fbstr(struct fb *f, const void *s, size_t len, unsigned char pad_byte)
{
    fb64(f, len);
    memcpy(f->b + f->n, s, len);
    f->n += len;
    while (f->n % 8)
        f->b[f->n++] = pad_byte;
}

static void fb_seal(struct fb *f)
{
    wr32(f->b + 8, (uint32_t)(f->n - RL_WIRE_HDR));
    reseal(f->b);
}

static void fb_reject(struct fb *f, const char *want)
{
    fb_seal(f);
    expect_reject(f->b, f->n, want);
}

static void fb_accept(struct fb *f)
{
    fb_seal(f);
    struct rx rx;
    ck_assert_msg(recv_frame(f->b, f->n, &rx) == 0, "rejected: %s", rx.err);
    rx_release(&rx);
}

START_TEST(test_header_rejections)
{
    struct raft_message m;
    sample(0, &m);
    size_t len;
    unsigned char *f = encode_flat(&m, 5, &len);
    struct rl_wire_hdr h;
    char err[128];
    unsigned char g[RL_WIRE_HDR];

#define HDR_REJECT(mutate, max, want)                                                   \
    do {                                                                               \
        memcpy(g, f, sizeof g);                                                        \
        mutate;                                                                        \
        err[0] = 0;                                                                    \
        ck_assert_int_eq(rl_wire_decode_hdr(g, max, &h, err, sizeof err), RLOG_EPROTO); \
        ck_assert_msg(strstr(err, want) != NULL, "\"%s\" lacks \"%s\"", err, want);    \
    } while (0)

    memcpy(g, f, sizeof g);
    ck_assert_int_eq(rl_wire_decode_hdr(g, MAX_BODY, &h, err, sizeof err), 0);
    ck_assert_uint_eq(h.type, RL_WIRE_REQUEST_VOTE);
    ck_assert_uint_eq(h.length, 48);
    ck_assert_uint_eq(h.sender, 5);
    HDR_REJECT(g[0] = 'X', MAX_BODY, "magic");
    HDR_REJECT(wr16(g + 4, 2), MAX_BODY, "version 2");
    HDR_REJECT(wr16(g + 4, 0), MAX_BODY, "version 0");
    HDR_REJECT(wr16(g + 6, 0), MAX_BODY, "type 0");
    HDR_REJECT(wr16(g + 6, 7), MAX_BODY, "type 7");
    HDR_REJECT(wr16(g + 6, RL_WIRE_UNQUIESCE + 1), MAX_BODY, "type 79"); /* 67..78: test_forward */
    HDR_REJECT(wr32(g + 12, 1), MAX_BODY, "flags");
    HDR_REJECT(wr32(g + 12, 0x80000000u), MAX_BODY, "flags");
    HDR_REJECT(wr64(g + 16, 0), MAX_BODY, "sender id 0");
    HDR_REJECT(wr32(g + 8, 44), MAX_BODY, "multiple of 8");
    HDR_REJECT(wr32(g + 8, 40), MAX_BODY, "expected 48");
    HDR_REJECT(wr32(g + 8, 56), MAX_BODY, "expected 48");
    HDR_REJECT((wr16(g + 6, RL_WIRE_APPEND_ENTRIES), wr32(g + 8, 32)), MAX_BODY,
               "at least 40");
    HDR_REJECT((wr16(g + 6, RL_WIRE_APPEND_ENTRIES), wr32(g + 8, 4096)), 4088, "exceeds limit");
    HDR_REJECT((wr16(g + 6, RL_WIRE_APPEND_ENTRIES), wr32(g + 8, 0xfffffff8u)), MAX_BODY,
               "exceeds limit");
    HDR_REJECT((wr16(g + 6, RL_WIRE_INSTALL_SNAPSHOT), wr32(g + 8, 72)), MAX_BODY,
               "at least 80");
    /* NULL errmsg is allowed. */
    memcpy(g, f, sizeof g);
    g[0] = 0;
    ck_assert_int_eq(rl_wire_decode_hdr(g, MAX_BODY, &h, NULL, 0), RLOG_EPROTO);
#undef HDR_REJECT

    /* decode re-checks the parsed header rather than trusting its caller. */
    memcpy(g, f, sizeof g);
    ck_assert_int_eq(rl_wire_decode_hdr(g, MAX_BODY, &h, err, sizeof err), 0);
    void *body = raft_malloc(h.length);
    memcpy(body, f + RL_WIRE_HDR, h.length);
    struct raft_message d;
    bool owned = true;
    struct rl_wire_hdr bad = h;
    bad.type = 9;
    ck_assert_int_eq(rl_wire_decode(&bad, body, &d, &owned, err, sizeof err), RLOG_EPROTO);
    ck_assert(!owned);
    bad = h;
    bad.checksum ^= 1;
    ck_assert_int_eq(rl_wire_decode(&bad, body, &d, &owned, err, sizeof err), RLOG_EPROTO);
    ck_assert_ptr_nonnull(strstr(err, "checksum mismatch"));
    ck_assert_int_eq(rl_wire_decode(&h, body, &d, &owned, NULL, 0), 0);
    raft_free(body);
    free(f);
}
END_TEST

START_TEST(test_field_rejections)
{
    struct fb f;

    /* RequestVote: booleans and candidate. */
    uint64_t rv[][6] = {{1, 2, 3, 4, 2, 0}, {1, 2, 3, 4, 0, 7}, {1, 0, 3, 4, 0, 0}};
    const char *rv_want[] = {"disrupt_leader is 2", "pre_vote is 7", "candidate_id 0"};
    for (int i = 0; i < 3; i++) {
        fb_start(&f, RL_WIRE_REQUEST_VOTE);
        for (int j = 0; j < 6; j++)
            fb64(&f, rv[i][j]);
        fb_reject(&f, rv_want[i]);
    }
    fb_start(&f, RL_WIRE_REQUEST_VOTE_RESULT);
    fb64(&f, 1), fb64(&f, 2), fb64(&f, 0);
    fb_reject(&f, "vote_granted is 2");
    fb_start(&f, RL_WIRE_REQUEST_VOTE_RESULT);
    fb64(&f, 1), fb64(&f, 1), fb64(&f, 3);
    fb_reject(&f, "not a tribool");

    /* AppendEntries. */
#define AE_HEAD(n) (fb_start(&f, RL_WIRE_APPEND_ENTRIES), fb64(&f, 2), fb64(&f, 1), \
                    fb64(&f, 1), fb64(&f, 0), fb64(&f, n))
    AE_HEAD(1);
    fb64(&f, 1), fb64(&f, RAFT_COMMAND), fb64(&f, 3);
    memcpy(f.b + f.n, "abc\0\0\0\0\0", 8);
    f.n += 8;
    fb_accept(&f);
    AE_HEAD(1u << 30);
    fb_reject(&f, "entry count 1073741824 exceeds body");
    AE_HEAD(UINT64_MAX);
    fb64(&f, 1), fb64(&f, 1), fb64(&f, 0);
    fb_reject(&f, "entry count");
    AE_HEAD(2);
    fb64(&f, 1), fb64(&f, 1), fb64(&f, 0); /* only one header present */
    fb_reject(&f, "entry count 2 exceeds body");
    AE_HEAD(1);
    fb64(&f, 0), fb64(&f, RAFT_COMMAND), fb64(&f, 0);
    fb_reject(&f, "entry 0 term 0");
    AE_HEAD(1);
    fb64(&f, 1), fb64(&f, 0), fb64(&f, 0);
    fb_reject(&f, "entry 0 type 0 invalid");
    AE_HEAD(1);
    fb64(&f, 1), fb64(&f, 4), fb64(&f, 0);
    fb_reject(&f, "entry 0 type 4 invalid");
    AE_HEAD(5);
    for (int i = 0; i < 5; i++)
        fb64(&f, 1), fb64(&f, RAFT_COMMAND), fb64(&f, i == 3 ? 999999 : 8);
    for (int i = 0; i < 4; i++)
        fb64(&f, 0x1111111111111111ull);
    fb_reject(&f, "entry 3 length 999999 exceeds body");
    AE_HEAD(2);
    /* Each length fits alone, the two together do not. */
    fb64(&f, 1), fb64(&f, RAFT_COMMAND), fb64(&f, 16);
    fb64(&f, 1), fb64(&f, RAFT_COMMAND), fb64(&f, 16);
    fb64(&f, 0), fb64(&f, 0), fb64(&f, 0);
    fb_reject(&f, "entry 1 length 16 exceeds body");
    AE_HEAD(1);
    fb64(&f, 1), fb64(&f, RAFT_COMMAND), fb64(&f, UINT64_MAX);
    fb64(&f, 0);
    fb_reject(&f, "exceeds body");
    AE_HEAD(1);
    fb64(&f, 1), fb64(&f, RAFT_COMMAND), fb64(&f, 5);
    fb64(&f, 0);
    fb64(&f, 0); /* ok so far: then an unused word */
    fb_reject(&f, "8 trailing bytes");
    AE_HEAD(1);
    fb64(&f, 1), fb64(&f, RAFT_COMMAND), fb64(&f, 5);
    memcpy(f.b + f.n, "hello\0\1\0", 8);
    f.n += 8;
    fb_reject(&f, "entry 0 has nonzero padding");
    AE_HEAD(0);
    fb64(&f, 0);
    fb_reject(&f, "trailing");
#undef AE_HEAD

    /* InstallSnapshot. */
#define IS_HEAD(n) (fb_start(&f, RL_WIRE_INSTALL_SNAPSHOT), fb64(&f, 3), fb64(&f, 10), \
                    fb64(&f, 2), fb64(&f, 10), fb64(&f, n))
#define SERVER(id, role, s, pad) (fb64(&f, id), fb64(&f, role), fbstr(&f, s, strlen(s), pad))
    IS_HEAD(2);
    SERVER(1, RAFT_VOTER, "a:1", 0);
    SERVER(2, RAFT_SPARE, "b:1", 0);
    fbstr(&f, "data!", 5, 0);
    fb_accept(&f);
    IS_HEAD(0);
    fbstr(&f, "0123456789012345678901234567890123456789", 40, 0);
    fb_reject(&f, "no servers");
    IS_HEAD(1025);
    SERVER(1, RAFT_VOTER, "a:1", 0);
    fbstr(&f, "", 0, 0);
    fb_reject(&f, "server count 1025 exceeds 1024");
    IS_HEAD(5);
    SERVER(1, RAFT_VOTER, "a:1", 0);
    fbstr(&f, "", 0, 0);
    fb_reject(&f, "server count 5 exceeds body");
    IS_HEAD(1);
    SERVER(0, RAFT_VOTER, "a:1", 0);
    fbstr(&f, "", 0, 0);
    fb_reject(&f, "server 0 id 0");
    IS_HEAD(2);
    SERVER(1, RAFT_VOTER, "a:1", 0);
    SERVER(2, 3, "b:1", 0);
    fbstr(&f, "", 0, 0);
    fb_reject(&f, "server 1 role 3 invalid");
    IS_HEAD(1);
    SERVER(1, RAFT_VOTER, "", 0);
    fbstr(&f, "12345678", 8, 0);
    fb_reject(&f, "server 0 address empty");
    char longaddr[257];
    memset(longaddr, 'h', 256);
    longaddr[256] = 0;
    IS_HEAD(1);
    SERVER(1, RAFT_VOTER, longaddr, 0);
    fbstr(&f, "", 0, 0);
    fb_reject(&f, "address length 256 exceeds 255");
    longaddr[255] = 0;
    IS_HEAD(1);
    SERVER(1, RAFT_VOTER, longaddr, 0);
    fbstr(&f, "", 0, 0);
    fb_accept(&f);
    IS_HEAD(1);
    fb64(&f, 1), fb64(&f, RAFT_VOTER), fbstr(&f, "a\0b", 3, 0);
    fbstr(&f, "", 0, 0);
    fb_reject(&f, "server 0 address contains NUL");
    IS_HEAD(1);
    SERVER(1, RAFT_VOTER, "a:1", 'z');
    fbstr(&f, "", 0, 0);
    fb_reject(&f, "server 0 address has nonzero padding");
    IS_HEAD(1);
    fb64(&f, 1), fb64(&f, RAFT_VOTER), fb64(&f, 1000);
    fb64(&f, 0), fb64(&f, 0);
    fb_reject(&f, "server 0 address length 1000 exceeds");
    IS_HEAD(2);
    SERVER(4, RAFT_VOTER, "a:1", 0);
    SERVER(4, RAFT_VOTER, "b:1", 0);
    fbstr(&f, "", 0, 0);
    fb_reject(&f, "server 1 duplicate id 4");
    IS_HEAD(2);
    SERVER(4, RAFT_VOTER, "a:1", 0);
    SERVER(5, RAFT_VOTER, "a:1", 0);
    fbstr(&f, "", 0, 0);
    fb_reject(&f, "server 1 duplicate address");
    IS_HEAD(1);
    SERVER(4, RAFT_VOTER, "a:1", 0);
    fb64(&f, 17), fb64(&f, 0);
    fb_reject(&f, "data length 17 exceeds body");
    IS_HEAD(1);
    SERVER(4, RAFT_VOTER, "a:1", 0);
    fbstr(&f, "xyz", 3, 1);
    fb_reject(&f, "data has nonzero padding");
    IS_HEAD(1);
    SERVER(4, RAFT_VOTER, "a:1", 0);
    fbstr(&f, "xyz", 3, 0);
    fb64(&f, 0);
    fb_reject(&f, "trailing");
    IS_HEAD(2);
    SERVER(4, RAFT_VOTER, "a:1", 0);
    fb64(&f, 5), fb64(&f, RAFT_VOTER), fb64(&f, 100), fb64(&f, 0);
    fb_reject(&f, "server 1 address length 100 exceeds body");
    IS_HEAD(2);
    SERVER(4, RAFT_VOTER, "a:1", 0);
    SERVER(5, RAFT_VOTER, "b:1", 0);
    fb_reject(&f, "body ends before data length");
#undef SERVER
#undef IS_HEAD
}
END_TEST

START_TEST(test_encode_rejections)
{
    struct rl_wire_out out;
    struct raft_message m;

    sample(0, &m);
    ck_assert_int_eq(rl_wire_encode(&m, 0, &out), RLOG_EINVAL);
    m.request_vote.candidate_id = 0;
    ck_assert_int_eq(rl_wire_encode(&m, 1, &out), RLOG_EINVAL);
    m.type = 0;
    ck_assert_int_eq(rl_wire_encode(&m, 1, &out), RLOG_EINVAL);
    m.type = 7;
    ck_assert_int_eq(rl_wire_encode(&m, 1, &out), RLOG_EINVAL);

    sample(1, &m);
    m.request_vote_result.pre_vote = (raft_tribool)3;
    ck_assert_int_eq(rl_wire_encode(&m, 1, &out), RLOG_EINVAL);

    sample(2, &m);
    sample_entries[1].type = 4;
    ck_assert_int_eq(rl_wire_encode(&m, 1, &out), RLOG_EINVAL);
    sample(2, &m);
    sample_entries[2].term = 0;
    ck_assert_int_eq(rl_wire_encode(&m, 1, &out), RLOG_EINVAL);
    sample(2, &m);
    m.append_entries.entries = NULL;
    ck_assert_int_eq(rl_wire_encode(&m, 1, &out), RLOG_EINVAL);
    sample(2, &m);
    sample_entries[0].buf.len = (size_t)1 << 32;
    ck_assert_int_eq(rl_wire_encode(&m, 1, &out), RLOG_EINVAL);

    struct raft_server bad[2] = {{1, "a", RAFT_VOTER}, {2, "b", RAFT_VOTER}};
    sample(5, &m);
    m.install_snapshot.conf.servers = bad;
    m.install_snapshot.conf.n = 2;
    ck_assert_int_eq(rl_wire_encode(&m, 1, &out), 0);
    rl_wire_out_free(&out);
    m.install_snapshot.conf.n = 0;
    ck_assert_int_eq(rl_wire_encode(&m, 1, &out), RLOG_EINVAL);
    m.install_snapshot.conf.n = 2;
    bad[1].id = 0;
    ck_assert_int_eq(rl_wire_encode(&m, 1, &out), RLOG_EINVAL);
    bad[1].id = 2;
    bad[1].role = 5;
    ck_assert_int_eq(rl_wire_encode(&m, 1, &out), RLOG_EINVAL);
    bad[1].role = RAFT_VOTER;
    bad[1].address = "";
    ck_assert_int_eq(rl_wire_encode(&m, 1, &out), RLOG_EINVAL);
    char longaddr[257];
    memset(longaddr, 'q', 256);
    longaddr[256] = 0;
    bad[1].address = longaddr;
    ck_assert_int_eq(rl_wire_encode(&m, 1, &out), RLOG_EINVAL);
    longaddr[255] = 0;
    ck_assert_int_eq(rl_wire_encode(&m, 1, &out), 0);
    rl_wire_out_free(&out);
}
END_TEST

/* ---- fuzz smoke ------------------------------------------------------------ */

/* A u64 that is often meaningful to the decoder: small counts, tags, lengths
 * near what is left, and sometimes noise. */
static uint64_t fuzz_word(size_t left)
{
    switch (rnd() % 8) {
    case 0:
        return 0;
    case 1:
        return 1 + rnd() % 3;
    case 2:
        return rnd() % 32;
    case 3:
        return left ? rnd() % (left + 16) : 0;
    case 4:
        return rnd();
    case 5:
        return UINT64_MAX - rnd() % 4;
    case 6: {
        /* ASCII text, address-like */
        uint64_t v = 0;
        for (int i = 0; i < 8; i++)
            v = v << 8 | (uint64_t)('0' + rnd() % 60);
        return v;
    }
    default:
        return 1;
    }
}

/* Accepted frames must be canonical: re-encoding gives the same bytes. */
static void check_accepted(const unsigned char *f, size_t len, struct rx *rx)
{
    size_t len2;
    unsigned char *g = encode_flat(&rx->msg, rd64(f + 16), &len2);
    ck_assert_uint_eq(len2, len);
    ck_assert(memcmp(f, g, len) == 0);
    free(g);
}

START_TEST(test_fuzz_garbage_bodies)
{
    rng_state = 0x9e3779b97f4a7c15ull;
    static unsigned char f[RL_WIRE_HDR + 2048];
    unsigned accepted[8] = {0}, rejected = 0;
    for (int iter = 0; iter < 20000; iter++) {
        unsigned type = 1 + (unsigned)(rnd() % 6);
        size_t words;
        if (type == RL_WIRE_APPEND_ENTRIES || type == RL_WIRE_INSTALL_SNAPSHOT)
            words = rnd() % 64;
        else if (rnd() % 4 != 0) /* mostly the right size, to reach the fields */
            words = type == RL_WIRE_REQUEST_VOTE ? 6 : 3;
        else
            words = 2 + rnd() % 6;
        memset(f, 0, sizeof f);
        wr32(f, RL_WIRE_MAGIC);
        wr16(f + 4, RL_WIRE_VERSION);
        wr16(f + 6, (uint16_t)type);
        wr32(f + 8, (uint32_t)(words * 8));
        wr64(f + 16, 1 + rnd() % 5);
        for (size_t w = 0; w < words; w++)
            wr64(f + RL_WIRE_HDR + 8 * w, fuzz_word((words - w) * 8));
        reseal(f);
        size_t len = RL_WIRE_HDR + words * 8;
        struct rx rx;
        int rv = recv_frame(f, len, &rx);
        if (rv == 0) {
            check_accepted(f, len, &rx);
            rx_release(&rx);
            accepted[type]++;
        } else {
            ck_assert_int_eq(rv, RLOG_EPROTO);
            ck_assert(rx.err[0] != '\0');
            rejected++;
        }
    }
    /* The generator must reach past the first checks of most types. */
    ck_assert_uint_gt(accepted[RL_WIRE_APPEND_ENTRIES], 0);
    ck_assert_uint_gt(accepted[RL_WIRE_REQUEST_VOTE_RESULT], 0);
    ck_assert_uint_gt(rejected, 0);
}
END_TEST

/* Mutations of valid frames, resealed: the decoder gets deep into each
 * structure before something is off. */
START_TEST(test_fuzz_mutated_frames)
{
    rng_state = 42;
    unsigned accepted = 0;
    for (int iter = 0; iter < 20000; iter++) {
        struct raft_message m;
        sample((int)(rnd() % N_SAMPLES), &m);
        size_t len;
        unsigned char *f = encode_flat(&m, 5, &len);
        size_t body = len - RL_WIRE_HDR;
        int muts = 1 + (int)(rnd() % 3);
        for (int k = 0; k < muts; k++) {
            size_t w = (size_t)(rnd() % (body / 8));
            if (rnd() % 2)
                wr64(f + RL_WIRE_HDR + 8 * w, fuzz_word(body - 8 * w));
            else
                f[RL_WIRE_HDR + 8 * w + rnd() % 8] ^= (unsigned char)(1u << rnd() % 8);
        }
        if (rnd() % 8 == 0) {
            len -= 8 * (1 + rnd() % 2);
            if (len < RL_WIRE_HDR)
                len = RL_WIRE_HDR;
            wr32(f + 8, (uint32_t)(len - RL_WIRE_HDR));
        }
        reseal(f);
        struct rx rx;
        int rv = recv_frame(f, len, &rx);
        if (rv == 0) {
            check_accepted(f, len, &rx);
            rx_release(&rx);
            accepted++;
        } else {
            ck_assert_int_eq(rv, RLOG_EPROTO);
        }
        free(f);
    }
    ck_assert_uint_gt(accepted, 0);
}
END_TEST

/* ---- allocation failure --------------------------------------------------- */

static long fail_countdown = -1; /* fail when it reaches 0; <0: never */
static long live_allocs;

static bool should_fail(void)
{
    return fail_countdown >= 0 && fail_countdown-- == 0;
}
static void *t_malloc(void *d, size_t n)
{
    void *p = should_fail() ? NULL : malloc(n);
    live_allocs += p != NULL;
    return p;
}
static void t_free(void *d, void *p)
{
    live_allocs -= p != NULL;
    free(p);
}
static void *t_calloc(void *d, size_t n, size_t s)
{
    void *p = should_fail() ? NULL : calloc(n, s);
    live_allocs += p != NULL;
    return p;
}
static void *t_realloc(void *d, void *p, size_t n)
{
    if (should_fail())
        return NULL;
    void *q = realloc(p, n);
    live_allocs += p == NULL && q != NULL;
    return q;
}
static void *t_aligned_alloc(void *d, size_t a, size_t n)
{
    return aligned_alloc(a, n);
}
static void t_aligned_free(void *d, size_t a, void *p)
{
    free(p);
}

START_TEST(test_decode_allocation_failures)
{
    static struct raft_heap heap = {NULL,      t_malloc,        t_free,        t_calloc,
                                    t_realloc, t_aligned_alloc, t_aligned_free};
    for (int k = 2; k <= 5; k += 3) { /* AppendEntries, InstallSnapshot */
        struct raft_message m;
        sample(k, &m);
        size_t len;
        unsigned char *f = encode_flat(&m, 5, &len);
        struct rl_wire_hdr h;
        ck_assert_int_eq(rl_wire_decode_hdr(f, MAX_BODY, &h, NULL, 0), 0);
        raft_heap_set(&heap);
        int failures = 0;
        for (long n = 0;; n++) {
            void *body = raft_malloc(h.length);
            memcpy(body, f + RL_WIRE_HDR, h.length);
            long before = live_allocs;
            struct raft_message d;
            bool owned;
            char err[128];
            fail_countdown = n;
            int rv = rl_wire_decode(&h, body, &d, &owned, err, sizeof err);
            fail_countdown = -1;
            if (rv == 0) {
                assert_msg_eq(&m, &d);
                rl_wire_message_release(&d, body, owned);
                if (!owned)
                    raft_free(body);
                ck_assert_int_eq(live_allocs, before - 1);
                break;
            }
            ck_assert_int_eq(rv, RLOG_ENOMEM);
            ck_assert(!owned);
            ck_assert_int_eq(live_allocs, before); /* nothing leaked */
            raft_free(body);
            failures++;
        }
        raft_heap_set_default();
        ck_assert_int_gt(failures, 0);
        free(f);
    }
}
END_TEST

/* ---- liblog's own frames: fetch request, fetch answer, commit notice ------ */

/* One of liblog's own frames, decoded as the transport does (a body of the
 * length the header claims, zeros past the end of f). */
struct own_rx {
    struct rl_wire_hdr h;
    struct rl_wire_fetch_req req;
    struct rl_wire_fetch_resp resp;
    struct rl_wire_commit commit;
    void *body;
    bool owned;
    char err[256];
};

static int own_recv(const unsigned char *f, size_t flen, struct own_rx *rx)
{
    memset(rx, 0, sizeof *rx);
    int rv = rl_wire_decode_hdr(f, MAX_BODY, &rx->h, rx->err, sizeof rx->err);
    if (rv != 0)
        return rv;
    rx->body = raft_malloc(rx->h.length ? rx->h.length : 8);
    ck_assert_ptr_nonnull(rx->body);
    size_t have = flen - RL_WIRE_HDR < rx->h.length ? flen - RL_WIRE_HDR : rx->h.length;
    memcpy(rx->body, f + RL_WIRE_HDR, have);
    memset((char *)rx->body + have, 0, rx->h.length - have);
    if (rx->h.type == RL_WIRE_FETCH_RESPONSE)
        rv = rl_wire_decode_fetch_resp(&rx->h, rx->body, &rx->resp, &rx->owned, rx->err,
                                       sizeof rx->err);
    else if (rx->h.type == RL_WIRE_COMMIT)
        rv = rl_wire_decode_commit(&rx->h, rx->body, &rx->commit, rx->err, sizeof rx->err);
    else
        rv = rl_wire_decode_fetch_req(&rx->h, rx->body, &rx->req, rx->err, sizeof rx->err);
    if (rv != 0)
        ck_assert(!rx->owned && rx->resp.entries == NULL);
    return rv;
}

static void own_release(struct own_rx *rx)
{
    rl_wire_fetch_resp_release(&rx->resp, rx->body, rx->owned);
    if (!rx->owned)
        raft_free(rx->body);
    rx->body = NULL;
}

static void own_reject(const unsigned char *f, size_t flen, const char *want)
{
    struct own_rx rx;
    int rv = own_recv(f, flen, &rx);
    own_release(&rx);
    ck_assert_msg(rv == RLOG_EPROTO, "expected EPROTO (%s), got %d", want ? want : "", rv);
    ck_assert_msg(rx.err[0] != '\0', "no error message");
    if (want != NULL)
        ck_assert_msg(strstr(rx.err, want) != NULL, "error \"%s\" lacks \"%s\"", rx.err, want);
}

static const struct rl_wire_fetch_req sample_reqs[] = {
    {1, 500, 4u << 20}, {UINT64_MAX, 0, 1}, {77, 76, UINT64_MAX}};
static const struct rl_wire_commit sample_commits[] = {
    {5, 100, 4}, {1, 1, 1}, {UINT64_MAX, UINT64_MAX, UINT64_MAX}};
#define N_RESPS 6

/* Fetch answers of every kind; entries from sample(2, ...). */
static struct rl_wire_fetch_resp sample_resp(int k)
{
    struct raft_message m;
    sample(2, &m);
    switch (k) {
    case 0: /* entries */
        return (struct rl_wire_fetch_resp){.first = 10, .last = 500, .entries = sample_entries,
                                           .n_entries = 3};
    case 1: /* nothing there yet */
        return (struct rl_wire_fetch_resp){.first = 501, .last = 500};
    case 2: /* the first entry damaged there */
        return (struct rl_wire_fetch_resp){.status = RLOG_ECORRUPT, .first = 7, .last = 9};
    case 3: /* trimmed: serves from entry 40 */
        return (struct rl_wire_fetch_resp){.status = RLOG_ETRIMMED, .first = 40,
                                           .restart_term = 3, .restart_offset = 1234};
    case 4: /* trimmed past everything asked */
        return (struct rl_wire_fetch_resp){.status = RLOG_ETRIMMED, .last = 77};
    default: /* one entry starting the log */
        return (struct rl_wire_fetch_resp){.first = 1, .last = 1, .entries = sample_entries + 2,
                                           .n_entries = 1};
    }
}

/* Frame k of all the samples above (requests, commits, answers), and its
 * body words as the raft layouts the types were first sent in. */
#define N_OWN (3 + 3 + N_RESPS)
static unsigned char *own_sample(int k, size_t *len, uint64_t words[5])
{
    struct rl_wire_out out;
    if (k < 3) {
        const struct rl_wire_fetch_req *r = &sample_reqs[k];
        ck_assert_int_eq(rl_wire_encode_fetch_req(r, 5, &out), 0);
        memcpy(words, (uint64_t[5]){r->first, r->last, r->budget}, sizeof(uint64_t[5]));
    } else if (k < 6) {
        const struct rl_wire_commit *c = &sample_commits[k - 3];
        ck_assert_int_eq(rl_wire_encode_commit(c, 5, &out), 0);
        memcpy(words, (uint64_t[5]){c->term, c->index, c->entry_term}, sizeof(uint64_t[5]));
    } else {
        struct rl_wire_fetch_resp r = sample_resp(k - 6);
        ck_assert_int_eq(rl_wire_encode_fetch_resp(&r, 5, &out), 0);
        bool restart = r.status == RLOG_ETRIMMED && r.first;
        uint64_t w[5] = {(uint64_t)-(int64_t)r.status, r.first ? r.first - 1 : 0,
                         r.restart_term, restart ? r.restart_offset : r.last, r.n_entries};
        memcpy(words, w, sizeof w);
    }
    return flat_out(out, len);
}

START_TEST(test_own_round_trip)
{
    size_t len;
    uint64_t w[5];
    unsigned char *f = own_sample(_i, &len, w);
    struct own_rx rx;
    ck_assert_msg(own_recv(f, len, &rx) == 0, "rejected: %s", rx.err);
    ck_assert_uint_eq(rx.h.sender, 5);
    /* The bytes are those of the raft layouts they used to borrow. */
    for (int i = 0; i < (_i < 6 ? 3 : 5); i++)
        ck_assert_uint_eq(rd64(f + RL_WIRE_HDR + 8 * i), w[i]);
    if (_i < 3) {
        ck_assert_uint_eq(rx.h.type, RL_WIRE_FETCH_REQUEST);
        ck_assert_mem_eq(&rx.req, &sample_reqs[_i], sizeof rx.req);
    } else if (_i < 6) {
        ck_assert_uint_eq(rx.h.type, RL_WIRE_COMMIT);
        ck_assert_mem_eq(&rx.commit, &sample_commits[_i - 3], sizeof rx.commit);
    } else {
        struct rl_wire_fetch_resp r = sample_resp(_i - 6), *d = &rx.resp;
        ck_assert_uint_eq(rx.h.type, RL_WIRE_FETCH_RESPONSE);
        ck_assert_int_eq(d->status, r.status);
        ck_assert_uint_eq(d->first, r.first);
        ck_assert_uint_eq(d->last, r.last);
        ck_assert_uint_eq(d->restart_term, r.restart_term);
        ck_assert_uint_eq(d->restart_offset, r.restart_offset);
        ck_assert_uint_eq(d->n_entries, r.n_entries);
        ck_assert(rx.owned == (r.n_entries > 0));
        for (unsigned i = 0; i < r.n_entries; i++) {
            ck_assert_uint_eq(d->entries[i].term, r.entries[i].term);
            ck_assert_uint_eq(d->entries[i].type, r.entries[i].type);
            ck_assert_uint_eq(d->entries[i].buf.len, r.entries[i].buf.len);
            ck_assert_mem_eq(d->entries[i].buf.base, r.entries[i].buf.base, r.entries[i].buf.len);
            ck_assert_ptr_eq(d->entries[i].batch, rx.body);
        }
    }
    own_release(&rx);
    free(f);
}
END_TEST

START_TEST(test_own_truncated_corrupted_extended)
{
    size_t len;
    uint64_t w[5];
    unsigned char *f = own_sample(_i, &len, w);
    unsigned char *g = calloc(1, len + 64);
    uint32_t body = (uint32_t)(len - RL_WIRE_HDR);
    for (uint32_t cut = 0; cut < body; cut++) { /* every truncation, resealed */
        memcpy(g, f, RL_WIRE_HDR + cut);
        wr32(g + 8, cut);
        reseal(g);
        own_reject(g, RL_WIRE_HDR + cut, NULL);
    }
    for (size_t i = RL_WIRE_HDR; i < len; i++) { /* every body byte flipped */
        memcpy(g, f, len);
        g[i] ^= 0x10;
        own_reject(g, len, "checksum");
    }
    for (uint32_t extra = 8; extra <= 16; extra += 8) { /* trailing words */
        memset(g, 0, len + 64);
        memcpy(g, f, len);
        wr32(g + 8, body + extra);
        reseal(g);
        own_reject(g, len + extra, _i < 6 ? "expected" : "trailing");
    }
    free(g);
    free(f);
}
END_TEST

START_TEST(test_own_field_rejections)
{
    struct fb f;
    /* Fetch answers: an unknown or absurd status, entries with a status, a
     * restart term without a restart point, a first index past the end. */
    uint64_t bad_status[] = {4, (uint64_t)-(int64_t)RLOG_EIO, 1001, UINT64_MAX, 1};
    for (size_t i = 0; i < sizeof bad_status / sizeof bad_status[0]; i++) {
        fb_start(&f, RL_WIRE_FETCH_RESPONSE);
        fb64(&f, bad_status[i]);
        for (int k = 0; k < 4; k++)
            fb64(&f, k == 0 ? 9 : 0);
        fb_seal(&f);
        own_reject(f.b, f.n, "status");
    }
    fb_start(&f, RL_WIRE_FETCH_RESPONSE);
    fb64(&f, (uint64_t)-(int64_t)RLOG_ETRIMMED);
    fb64(&f, 39);
    fb64(&f, 3);
    fb64(&f, 1234);
    fb64(&f, 1);
    fb64(&f, 3);
    fb64(&f, RAFT_COMMAND);
    fb64(&f, 8);
    fb64(&f, 0x1122334455667788u);
    fb_seal(&f);
    own_reject(f.b, f.n, "entries with status");
    fb_start(&f, RL_WIRE_FETCH_RESPONSE);
    fb64(&f, 0);
    fb64(&f, 9);
    fb64(&f, 3); /* a term where status 0 has none */
    fb64(&f, 500);
    fb64(&f, 0);
    fb_seal(&f);
    own_reject(f.b, f.n, "restart term");
    fb_start(&f, RL_WIRE_FETCH_RESPONSE);
    fb64(&f, 0);
    fb64(&f, UINT64_MAX);
    fb64(&f, 0);
    fb64(&f, 500);
    fb64(&f, 0);
    fb_seal(&f);
    own_reject(f.b, f.n, "first index");
    /* Fetch requests: first index 0, budget 0. */
    uint64_t reqs[2][3] = {{0, 5, 100}, {1, 5, 0}};
    for (int i = 0; i < 2; i++) {
        fb_start(&f, RL_WIRE_FETCH_REQUEST);
        for (int k = 0; k < 3; k++)
            fb64(&f, reqs[i][k]);
        fb_seal(&f);
        own_reject(f.b, f.n, "is 0");
    }
    /* Commit notices: a zero term, index or entry term; an entry term
     * past the term. */
    uint64_t commits[4][3] = {{0, 5, 0}, {5, 0, 5}, {5, 9, 0}, {5, 9, 6}};
    for (int i = 0; i < 4; i++) {
        fb_start(&f, RL_WIRE_COMMIT);
        for (int k = 0; k < 3; k++)
            fb64(&f, commits[i][k]);
        fb_seal(&f);
        own_reject(f.b, f.n, "not a committed entry");
    }
}
END_TEST

START_TEST(test_own_type_boundaries)
{
    size_t len;
    uint64_t w[5];
    char err[256];
    struct rl_wire_hdr h;
    /* Each decoder takes its own type only, and the raft decoder none. */
    for (int k = 0; k < N_OWN; k++) {
        unsigned char *f = own_sample(k, &len, w);
        ck_assert_int_eq(rl_wire_decode_hdr(f, MAX_BODY, &h, err, sizeof err), 0);
        void *body = raft_malloc(h.length);
        memcpy(body, f + RL_WIRE_HDR, h.length);
        struct rl_wire_fetch_req req;
        struct rl_wire_fetch_resp resp;
        struct rl_wire_commit c;
        bool owned = false;
        if (h.type != RL_WIRE_FETCH_REQUEST)
            ck_assert_int_eq(rl_wire_decode_fetch_req(&h, body, &req, err, sizeof err),
                             RLOG_EPROTO);
        if (h.type != RL_WIRE_COMMIT)
            ck_assert_int_eq(rl_wire_decode_commit(&h, body, &c, err, sizeof err), RLOG_EPROTO);
        if (h.type != RL_WIRE_FETCH_RESPONSE) {
            ck_assert_int_eq(rl_wire_decode_fetch_resp(&h, body, &resp, &owned, err, sizeof err),
                             RLOG_EPROTO);
            ck_assert(!owned);
        }
        struct rx rx;
        ck_assert_int_eq(recv_frame(f, len, &rx), RLOG_EPROTO);
        ck_assert_ptr_nonnull(strstr(rx.err, "not a raft message"));
        raft_free(body);
        free(f);
    }
    struct raft_message m;
    sample(6, &m);
    unsigned char *f = encode_flat(&m, 5, &len);
    ck_assert_int_eq(rl_wire_decode_hdr(f, MAX_BODY, &h, err, sizeof err), 0);
    struct rl_wire_commit c;
    ck_assert_int_eq(rl_wire_decode_commit(&h, f + RL_WIRE_HDR, &c, err, sizeof err),
                     RLOG_EPROTO);
    ck_assert_ptr_nonnull(strstr(err, "not a commit frame"));
    free(f);
    /* And the raft encoder takes no liblog type. */
    struct rl_wire_out out;
    for (unsigned t = RL_WIRE_FETCH_REQUEST; t <= RL_WIRE_COMMIT; t++) {
        m.type = (unsigned short)t;
        ck_assert_int_eq(rl_wire_encode(&m, 5, &out), RLOG_EINVAL);
    }
}
END_TEST

START_TEST(test_own_encode_rejections)
{
    struct rl_wire_out out;
    struct rl_wire_fetch_req req = sample_reqs[0];
    ck_assert_int_eq(rl_wire_encode_fetch_req(&req, 0, &out), RLOG_EINVAL);
    req.first = 0;
    ck_assert_int_eq(rl_wire_encode_fetch_req(&req, 5, &out), RLOG_EINVAL);
    req = sample_reqs[0];
    req.budget = 0;
    ck_assert_int_eq(rl_wire_encode_fetch_req(&req, 5, &out), RLOG_EINVAL);

    struct rl_wire_commit c = sample_commits[0];
    ck_assert_int_eq(rl_wire_encode_commit(&c, 0, &out), RLOG_EINVAL);
    c.entry_term = c.term + 1;
    ck_assert_int_eq(rl_wire_encode_commit(&c, 5, &out), RLOG_EINVAL);
    c = sample_commits[0];
    c.index = 0;
    ck_assert_int_eq(rl_wire_encode_commit(&c, 5, &out), RLOG_EINVAL);

    struct rl_wire_fetch_resp r = sample_resp(0);
    ck_assert_int_eq(rl_wire_encode_fetch_resp(&r, 0, &out), RLOG_EINVAL);
    r.status = RLOG_EIO; /* not a status of this protocol */
    ck_assert_int_eq(rl_wire_encode_fetch_resp(&r, 5, &out), RLOG_EINVAL);
    r.status = RLOG_ECORRUPT; /* entries only with status 0 */
    ck_assert_int_eq(rl_wire_encode_fetch_resp(&r, 5, &out), RLOG_EINVAL);
    r = sample_resp(0);
    r.first = 0;
    ck_assert_int_eq(rl_wire_encode_fetch_resp(&r, 5, &out), RLOG_EINVAL);
    r = sample_resp(1);
    r.restart_term = 2; /* only with a restart point */
    ck_assert_int_eq(rl_wire_encode_fetch_resp(&r, 5, &out), RLOG_EINVAL);
    r = sample_resp(3);
    r.first = 1; /* nothing is trimmed before entry 1 */
    ck_assert_int_eq(rl_wire_encode_fetch_resp(&r, 5, &out), RLOG_EINVAL);
    r = sample_resp(3);
    r.last = 9; /* no room beside the restart offset */
    ck_assert_int_eq(rl_wire_encode_fetch_resp(&r, 5, &out), RLOG_EINVAL);
    r = sample_resp(4);
    r.restart_offset = 9;
    ck_assert_int_eq(rl_wire_encode_fetch_resp(&r, 5, &out), RLOG_EINVAL);
    r = sample_resp(0);
    sample_entries[1].term = 0; /* the entries as strictly as AppendEntries' */
    ck_assert_int_eq(rl_wire_encode_fetch_resp(&r, 5, &out), RLOG_EINVAL);
}
END_TEST

static Suite *wire_suite(void)
{
    Suite *s = suite_create("wire");
    TCase *tc = tcase_create("round_trip");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_request_vote);
    tcase_add_test(tc, test_request_vote_result);
    tcase_add_test(tc, test_append_entries_result_and_timeout_now);
    tcase_add_loop_test(tc, test_append_entries, 0,
                        (int)(sizeof entry_counts / sizeof entry_counts[0]));
    tcase_add_test(tc, test_append_entries_large_payload);
    tcase_add_test(tc, test_install_snapshot);
    suite_add_tcase(s, tc);

    tc = tcase_create("reject");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_every_byte_corruption_rejected);
    tcase_add_test(tc, test_truncated_and_extended_bodies);
    tcase_add_test(tc, test_header_rejections);
    tcase_add_test(tc, test_field_rejections);
    tcase_add_test(tc, test_encode_rejections);
    tcase_add_test(tc, test_decode_allocation_failures);
    suite_add_tcase(s, tc);

    tc = tcase_create("own");
    tcase_add_loop_test(tc, test_own_round_trip, 0, N_OWN);
    tcase_add_loop_test(tc, test_own_truncated_corrupted_extended, 0, N_OWN);
    tcase_add_test(tc, test_own_field_rejections);
    tcase_add_test(tc, test_own_type_boundaries);
    tcase_add_test(tc, test_own_encode_rejections);
    suite_add_tcase(s, tc);

    tc = tcase_create("fuzz");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_fuzz_garbage_bodies);
    tcase_add_test(tc, test_fuzz_mutated_frames);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(wire_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
