/*
 * Fuzz target: the wire decoder (lib/wire/codec.h).
 *
 * The input is a byte stream as a peer would send it: frames back to back.
 * Each frame is handled exactly as lib/raftio/io.c's in_read/in_frame do:
 * rl_wire_decode_hdr on the 32-byte header (body limit 1 MiB), then the body
 * copied into a raft_malloc'd buffer of exactly its length (so ASan sees any
 * read past it), rl_wire_decode, and rl_wire_message_release (+ raft_free of
 * the body when the message did not take it). The first rejected frame ends
 * the stream, as it closes the connection.
 *
 * Every accepted frame is re-encoded with rl_wire_encode: the codec is
 * canonical, so the encoding must be byte-for-byte the frame received, and
 * decoding it again must give the same message. Any difference abort()s.
 * liblog's own fetch and commit frames go through their own decoders and
 * encoders, with the same byte-for-byte check.
 *
 * Checksum fix-up: a frame whose checksum field is zero gets the right
 * checksum computed before decoding (a real checksum is zero with
 * probability 2^-64). Without this the fuzzer could never get a mutated body
 * past the checksum; corpus files with real checksums still exercise the
 * mismatch path.
 */
#define XXH_STATIC_LINKING_ONLY
#include <raft.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "liblog.h"
#include "wire/codec.h"

#define FUZZ_MAX_BODY (1u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                    \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            fprintf(stderr, "fuzz_wire: check failed at %s:%d: %s\n", __FILE__,       \
                    __LINE__, #cond);                                                  \
            abort();                                                                   \
        }                                                                              \
    } while (0)

static uint64_t get64le(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static void put64le(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static bool bufs_equal(const void *a, size_t alen, const void *b, size_t blen)
{
    if (alen != blen)
        return false;
    if (alen == 0)
        return true;
    return a != NULL && b != NULL && memcmp(a, b, alen) == 0;
}

/* Deep equality of two decoded messages of the same frame. */
static bool messages_equal(const struct raft_message *a, const struct raft_message *b)
{
    if (a->type != b->type || a->server_id != b->server_id)
        return false;
    switch (a->type) {
    case RAFT_IO_REQUEST_VOTE: {
        const struct raft_request_vote *x = &a->request_vote, *y = &b->request_vote;
        return x->term == y->term && x->candidate_id == y->candidate_id &&
               x->last_log_index == y->last_log_index && x->last_log_term == y->last_log_term &&
               x->disrupt_leader == y->disrupt_leader && x->pre_vote == y->pre_vote;
    }
    case RAFT_IO_REQUEST_VOTE_RESULT: {
        const struct raft_request_vote_result *x = &a->request_vote_result,
                                              *y = &b->request_vote_result;
        return x->term == y->term && x->vote_granted == y->vote_granted &&
               x->pre_vote == y->pre_vote;
    }
    case RAFT_IO_APPEND_ENTRIES_RESULT: {
        const struct raft_append_entries_result *x = &a->append_entries_result,
                                                *y = &b->append_entries_result;
        return x->term == y->term && x->rejected == y->rejected &&
               x->last_log_index == y->last_log_index;
    }
    case RAFT_IO_TIMEOUT_NOW: {
        const struct raft_timeout_now *x = &a->timeout_now, *y = &b->timeout_now;
        return x->term == y->term && x->last_log_index == y->last_log_index &&
               x->last_log_term == y->last_log_term;
    }
    case RAFT_IO_APPEND_ENTRIES: {
        const struct raft_append_entries *x = &a->append_entries, *y = &b->append_entries;
        if (x->term != y->term || x->prev_log_index != y->prev_log_index ||
            x->prev_log_term != y->prev_log_term || x->leader_commit != y->leader_commit ||
            x->n_entries != y->n_entries)
            return false;
        if ((x->n_entries == 0) != (x->entries == NULL) ||
            (y->n_entries == 0) != (y->entries == NULL))
            return false;
        for (unsigned i = 0; i < x->n_entries; i++) {
            const struct raft_entry *e = &x->entries[i], *f = &y->entries[i];
            if (e->term != f->term || e->type != f->type ||
                !bufs_equal(e->buf.base, e->buf.len, f->buf.base, f->buf.len))
                return false;
            /* libraft's own backend convention, relied on by the decoder. */
            if ((e->buf.len == 0) != (e->buf.base == NULL))
                return false;
        }
        return true;
    }
    case RAFT_IO_INSTALL_SNAPSHOT: {
        const struct raft_install_snapshot *x = &a->install_snapshot, *y = &b->install_snapshot;
        if (x->term != y->term || x->last_index != y->last_index ||
            x->last_term != y->last_term || x->conf_index != y->conf_index ||
            x->conf.n != y->conf.n ||
            !bufs_equal(x->data.base, x->data.len, y->data.base, y->data.len))
            return false;
        for (unsigned i = 0; i < x->conf.n; i++) {
            const struct raft_server *s = &x->conf.servers[i], *t = &y->conf.servers[i];
            if (s->id != t->id || s->role != t->role || s->address == NULL ||
                t->address == NULL || strcmp(s->address, t->address) != 0)
                return false;
        }
        return true;
    }
    default:
        return false;
    }
}

/* Decodes one complete frame (header bytes + body bytes), as io.c does.
 * Returns the rl_wire_decode code; on 0 *msg, *body, *owned must be released
 * by the caller with release_frame(). */
static int decode_frame(const unsigned char *body_bytes, const struct rl_wire_hdr *h,
                        struct raft_message *msg, void **body, bool *owned)
{
    char err[256];
    *body = raft_malloc(h->length);
    CHECK(*body != NULL);
    memcpy(*body, body_bytes, h->length);
    err[0] = '\0';
    *owned = false;
    int rv = rl_wire_decode(h, *body, msg, owned, err, sizeof err);
    if (rv != 0) {
        /* On error nothing is owned by the message. */
        CHECK(rv == RLOG_EPROTO || rv == RLOG_ENOMEM);
        CHECK(!*owned);
        CHECK(rv != RLOG_EPROTO || err[0] != '\0');
        raft_free(*body);
        *body = NULL;
        return rv;
    }
    CHECK(msg->type == h->type);
    CHECK(msg->server_id == h->sender);
    CHECK(msg->server_address == NULL);
    /* Ownership moves exactly when the message has entries. */
    if (msg->type == RAFT_IO_APPEND_ENTRIES) {
        CHECK(*owned == (msg->append_entries.n_entries > 0));
        for (unsigned i = 0; i < msg->append_entries.n_entries; i++) {
            const struct raft_entry *e = &msg->append_entries.entries[i];
            CHECK(e->batch == *body);
            CHECK(e->term != 0);
            if (e->buf.len > 0) {
                const unsigned char *b = e->buf.base, *lo = *body;
                CHECK(b >= lo && b + e->buf.len <= lo + h->length);
            }
        }
    } else {
        CHECK(!*owned);
    }
    return 0;
}

static void release_frame(struct raft_message *msg, void *body, bool owned)
{
    rl_wire_message_release(msg, body, owned);
    if (!owned)
        raft_free(body);
}

/* The frame an encoder made of a decoded frame, flattened and checked to be
 * the frame itself (malloc'd). */
static unsigned char *same_bytes(const unsigned char hdr[RL_WIRE_HDR], const unsigned char *body,
                                 const struct rl_wire_hdr *h, const struct rl_wire_out *o)
{
    const struct rl_wire_out out = *o;
    CHECK(out.total == (uint64_t)RL_WIRE_HDR + h->length);
    CHECK(out.n_iov >= 1 && out.iov[0].base == out.head && out.iov[0].len == out.head_len);

    unsigned char *flat = malloc((size_t)out.total);
    CHECK(flat != NULL);
    size_t at = 0;
    for (unsigned i = 0; i < out.n_iov; i++) {
        CHECK(at + out.iov[i].len <= out.total);
        if (out.iov[i].len > 0)
            memcpy(flat + at, out.iov[i].base, out.iov[i].len);
        at += out.iov[i].len;
    }
    CHECK(at == out.total);
    /* Canonical: identical bytes, header and body. */
    CHECK(memcmp(flat, hdr, RL_WIRE_HDR) == 0);
    CHECK(memcmp(flat + RL_WIRE_HDR, body, h->length) == 0);
    return flat;
}

/* Re-encodes an accepted message and checks it is the frame it came from. */
static void check_roundtrip(const unsigned char hdr[RL_WIRE_HDR], const unsigned char *body,
                            const struct rl_wire_hdr *h, const struct raft_message *msg)
{
    struct rl_wire_out out;
    int rv = rl_wire_encode(msg, h->sender, &out);
    if (rv == RLOG_ENOMEM)
        return;
    /* Whatever the decoder accepts the encoder must be able to produce. */
    CHECK(rv == 0);
    unsigned char *flat = same_bytes(hdr, body, h, &out);

    /* And the re-encoded bytes decode to the same message. */
    struct rl_wire_hdr h2;
    char err[256];
    CHECK(rl_wire_decode_hdr(flat, FUZZ_MAX_BODY, &h2, err, sizeof err) == 0);
    CHECK(h2.type == h->type && h2.length == h->length && h2.sender == h->sender &&
          h2.checksum == h->checksum && h2.flags == 0 && h2.version == RL_WIRE_VERSION);
    struct raft_message msg2;
    void *body2;
    bool owned2;
    rv = decode_frame(flat + RL_WIRE_HDR, &h2, &msg2, &body2, &owned2);
    if (rv != RLOG_ENOMEM) {
        CHECK(rv == 0);
        CHECK(messages_equal(msg, &msg2));
        release_frame(&msg2, body2, owned2);
    }
    free(flat);
    rl_wire_out_free(&out);
}

/* A fetch or commit frame: decoded with its own decoder (the body in a
 * raft_malloc'd buffer of its exact length), re-encoded, compared. Returns
 * the decoder's code. */
static int own_frame(const unsigned char hdr[RL_WIRE_HDR], const unsigned char *body_bytes,
                     const struct rl_wire_hdr *h)
{
    char err[256] = "";
    void *body = raft_malloc(h->length);
    CHECK(body != NULL);
    memcpy(body, body_bytes, h->length);
    bool owned = false;
    struct rl_wire_fetch_req req;
    struct rl_wire_fetch_resp resp = {0};
    struct rl_wire_commit commit;
    struct rl_wire_out out;
    int rv, erv = 0;
    if (h->type == RL_WIRE_FETCH_RESPONSE) {
        rv = rl_wire_decode_fetch_resp(h, body, &resp, &owned, err, sizeof err);
        if (rv == 0) {
            CHECK(owned == (resp.n_entries > 0));
            for (unsigned i = 0; i < resp.n_entries; i++)
                CHECK(resp.entries[i].batch == body && resp.entries[i].term != 0);
            erv = rl_wire_encode_fetch_resp(&resp, h->sender, &out);
        }
    } else if (h->type == RL_WIRE_COMMIT) {
        rv = rl_wire_decode_commit(h, body, &commit, err, sizeof err);
        if (rv == 0)
            erv = rl_wire_encode_commit(&commit, h->sender, &out);
    } else {
        rv = rl_wire_decode_fetch_req(h, body, &req, err, sizeof err);
        if (rv == 0)
            erv = rl_wire_encode_fetch_req(&req, h->sender, &out);
    }
    if (rv != 0) {
        CHECK(rv == RLOG_ENOMEM || (rv == RLOG_EPROTO && err[0] != '\0'));
        CHECK(!owned);
    } else if (erv != RLOG_ENOMEM) {
        CHECK(erv == 0); /* whatever the decoder accepts the encoder produces */
        free(same_bytes(hdr, body_bytes, h, &out));
        rl_wire_out_free(&out);
    }
    rl_wire_fetch_resp_release(&resp, body, owned);
    if (!owned)
        raft_free(body);
    return rv;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t pos = 0;
    while (size - pos >= RL_WIRE_HDR) {
        unsigned char hdr[RL_WIRE_HDR];
        struct rl_wire_hdr h;
        char err[256];
        memcpy(hdr, data + pos, RL_WIRE_HDR);
        err[0] = '\0';
        int rv = rl_wire_decode_hdr(hdr, FUZZ_MAX_BODY, &h, err, sizeof err);
        if (rv != 0) {
            CHECK(rv == RLOG_EPROTO && err[0] != '\0');
            break; /* io.c closes the connection */
        }
        CHECK(h.length <= FUZZ_MAX_BODY && h.length % 8 == 0 && h.sender != 0);
        pos += RL_WIRE_HDR;
        if (size - pos < h.length)
            break; /* the stream ends inside the body */
        const unsigned char *body_bytes = data + pos;
        pos += h.length;

        if (h.checksum == 0) {
            uint64_t seed = XXH3_64bits(hdr, 24);
            h.checksum = XXH3_64bits_withSeed(body_bytes, h.length, seed);
            put64le(hdr + 24, h.checksum);
        }
        CHECK(get64le(hdr + 24) == h.checksum);

        if (rl_wire_is_own(h.type)) {
            if (own_frame(hdr, body_bytes, &h) != 0)
                break;
            continue;
        }
        struct raft_message msg;
        void *body;
        bool owned;
        rv = decode_frame(body_bytes, &h, &msg, &body, &owned);
        if (rv != 0)
            break;
        check_roundtrip(hdr, body_bytes, &h, &msg);
        release_frame(&msg, body, owned);
    }
    return 0;
}
