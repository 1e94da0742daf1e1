/*
 * Fuzz target: what an unauthenticated remote party controls on a peer
 * connection, server side (lib/net/listen.c, lib/net/conn.c, lib/tls,
 * lib/raftio/recv.c's reader).
 *
 * Input layout:
 *   byte 0      mode: even = plain, odd = TLS
 *   byte 1      plain mode: the certificate id the hello is checked against
 *               (0: none, as in plain mode; 1..255: that id, so most values
 *               mismatch the claimed id and exercise that refusal)
 *   bytes 2..5  four chunk sizes, used in turn: 0 = everything left at once,
 *               1..128 = that many bytes (split headers), 129..255 = (k-128)
 *               * 512 bytes (64 KiB-sized reads, as libuv hands them on)
 *   bytes 6..   what arrives on the socket
 * Shorter inputs are padded with zeros for the 6 header bytes (an empty
 * stream delivered whole).
 *
 * Plain mode: the chunks go to a copy of listen.c's hello reader (exactly 32
 * bytes, split anywhere, then rl_hello_check with self 1, members 1..3 and
 * the hash of cluster "fuzz"); the bytes of the chunk past the hello, and
 * every later chunk, go to a copy of recv.c's frame reader
 * (rl_wire_decode_hdr with the default frame cap, a body buffer that grows
 * with the bytes that arrive, rl_wire_decode, sender check, release). The
 * reader is copied, not called, because recv.c's in_data is bound to a
 * live struct io (deadlines, libraft delivery); the copy keeps its buffer
 * policy so ASan sees the same allocations. A frame whose checksum field is
 * zero gets the right checksum at completion, as in fuzz_wire.
 *
 * TLS mode: a server rl_tls session (context made once per process from
 * certificates that examples/mkcerts.sh writes to a temp dir; if that fails
 * TLS inputs are skipped with one warning) is fed the chunks as conn.c's
 * tls_read does: feed, then rl_tls_read until it yields nothing, then all
 * pending output taken. Plaintext, if a handshake ever finished, would go to
 * the plain reader above with the certificate's id. Checks: return codes are
 * the documented ones; the output never exceeds max_buffered while nothing
 * failed; a chunk above max_buffered is refused; once a call fails, feed,
 * read, write and shutdown all return that code, the handshake is not done,
 * there is no peer id and rl_tls_errmsg says why; rl_tls_take_output works
 * after the failure (the alert).
 */
#define XXH_STATIC_LINKING_ONLY
#include <dirent.h>
#include <raft.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "liblog.h"
#include "net/hello.h"
#include "raftio/io.h"
#include "tls/tls.h"
#include "wire/codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                    \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            fprintf(stderr, "fuzz_peer: check failed at %s:%d: %s\n", __FILE__,       \
                    __LINE__, #cond);                                                  \
            abort();                                                                   \
        }                                                                              \
    } while (0)

#define FUZZ_SELF 1u
#define FUZZ_CLUSTER "fuzz"
/* The frame cap a node with the default batch_max_bytes (1 MiB) applies. */
#define FUZZ_MAX_BODY ((1u << 20) + RL_IO_FRAME_ALLOWANCE)
/* recv.c's READ_CHUNK: the first body allocation is at most this. */
#define FUZZ_READ_CHUNK (64u * 1024u)
/* The smallest cap a session allows, so inputs of fuzzing size reach it. */
#define FUZZ_TLS_MAX RL_TLS_MIN_MAX_BUFFERED
#define IN_HDR 6u

/* FUZZ_VERBOSE=1: one line per input saying how far it got (for writing
 * seeds and reading a reproducer). */
static bool verbose(void)
{
    static int v = -1;
    if (v < 0) {
        const char *e = getenv("FUZZ_VERBOSE");
        v = e && *e && strcmp(e, "0") != 0;
    }
    return v;
}

/* ---- the plain reader: hello, then frames ------------------------------------------- */

struct reader {
    uint64_t cert_id;
    /* listen.c's in_entry */
    unsigned char hello[RL_HELLO_LEN];
    size_t hello_got;
    bool accepted, closed;
    uint64_t id;
    /* recv.c's in_conn */
    unsigned char hdr[RL_WIRE_HDR];
    size_t hdr_got;
    struct rl_wire_hdr h;
    unsigned char *body;
    size_t body_cap, body_got;
    unsigned frames;
};

static bool is_member(void *arg, uint64_t id)
{
    (void)arg;
    return id >= 1 && id <= 3;
}

/* listen.c's in_data: returns how many bytes the hello took. */
static size_t hello_data(struct reader *r, const unsigned char *p, size_t n)
{
    size_t k = RL_HELLO_LEN - r->hello_got < n ? RL_HELLO_LEN - r->hello_got : n;
    memcpy(r->hello + r->hello_got, p, k);
    r->hello_got += k;
    if (r->hello_got < RL_HELLO_LEN)
        return n;
    struct rl_hello_expect x = {.self = FUZZ_SELF,
                                .cluster_hash = rl_hello_cluster_hash(FUZZ_CLUSTER),
                                .cert_id = r->cert_id, .is_member = is_member};
    struct rl_hello h;
    const char *why = NULL;
    int rv = rl_hello_check(r->hello, &x, &h, &why);
    if (rv != 0) {
        CHECK(rv == -1 && why != NULL && why[0] != '\0');
        if (verbose())
            fprintf(stderr, "fuzz_peer: hello refused: %s\n", why);
        r->closed = true;
        return n;
    }
    /* Whatever passes must satisfy every rule hello.h lists. */
    CHECK(memcmp(r->hello, RL_HELLO_MAGIC, 8) == 0);
    CHECK(h.version == RL_HELLO_VERSION && h.flags == 0);
    CHECK(h.id != 0 && h.id != FUZZ_SELF && is_member(NULL, h.id));
    CHECK(r->cert_id == 0 || r->cert_id == h.id);
    CHECK(h.cluster_hash == x.cluster_hash);
    r->accepted = true;
    r->id = h.id;
    return k;
}

static void drop_body(struct reader *r)
{
    raft_free(r->body);
    r->body = NULL;
}

/* recv.c's in_commit / in_fetch_req / in_fetch_resp, up to the point
 * where the node would act: 0, or the decoder's error. */
static int own_frame(const struct rl_wire_hdr *h, void *body, char *err, size_t errlen)
{
    struct rl_wire_fetch_req req;
    struct rl_wire_fetch_resp resp;
    struct rl_wire_commit commit;
    bool owned = false;
    int rv;
    if (h->type == RL_WIRE_FETCH_RESPONSE) {
        rv = rl_wire_decode_fetch_resp(h, body, &resp, &owned, err, errlen);
        if (rv == 0)
            rl_wire_fetch_resp_release(&resp, body, owned);
    } else if (h->type == RL_WIRE_COMMIT) {
        rv = rl_wire_decode_commit(h, body, &commit, err, errlen);
    } else {
        rv = rl_wire_decode_fetch_req(h, body, &req, err, errlen);
    }
    CHECK(rv == 0 || !owned);
    if (!owned)
        raft_free(body);
    return rv;
}

/* recv.c's in_frame, up to the point where libraft would take over. */
static void frame_done(struct reader *r)
{
    void *body = r->body;
    r->body = NULL;
    if (r->h.checksum == 0) {
        /* Same fix-up as fuzz_wire: the fuzzer cannot forge a checksum. */
        uint64_t seed = XXH3_64bits(r->hdr, 24);
        r->h.checksum = XXH3_64bits_withSeed(body, r->h.length, seed);
    }
    struct raft_message msg;
    bool owned = false;
    char err[256];
    err[0] = '\0';
    if (rl_wire_is_own(r->h.type)) {
        int rv = own_frame(&r->h, body, err, sizeof err);
        CHECK(rv == 0 || rv == RLOG_ENOMEM || (rv == RLOG_EPROTO && err[0] != '\0'));
        /* recv.c closes the connection on a refused frame and on one
         * that names another sender */
        if (rv != 0 || r->h.sender != r->id)
            r->closed = true;
        else
            r->frames++;
        return;
    }
    int rv = rl_wire_decode(&r->h, body, &msg, &owned, err, sizeof err);
    if (rv != 0) {
        CHECK(rv == RLOG_EPROTO || rv == RLOG_ENOMEM);
        CHECK(rv != RLOG_EPROTO || err[0] != '\0');
        CHECK(!owned);
        if (verbose())
            fprintf(stderr, "fuzz_peer: frame refused: %s\n", err);
        raft_free(body);
        r->closed = true;
        return;
    }
    CHECK(msg.type == r->h.type && msg.server_id == r->h.sender);
    if (msg.server_id != r->id) {
        /* recv.c closes a connection whose frame names another sender */
        rl_wire_message_release(&msg, body, owned);
        if (!owned)
            raft_free(body);
        r->closed = true;
        return;
    }
    r->frames++;
    rl_wire_message_release(&msg, body, owned);
    if (!owned)
        raft_free(body);
}

/* recv.c's in_data: header bytes, then a body buffer that grows only
 * as bytes arrive (never to the length a peer merely claims). */
static void frame_data(struct reader *r, const unsigned char *p, size_t left)
{
    while (left > 0 && !r->closed) {
        if (r->hdr_got < RL_WIRE_HDR) {
            size_t n = RL_WIRE_HDR - r->hdr_got < left ? RL_WIRE_HDR - r->hdr_got : left;
            memcpy(r->hdr + r->hdr_got, p, n);
            r->hdr_got += n;
            p += n;
            left -= n;
            if (r->hdr_got < RL_WIRE_HDR)
                break;
            char err[256];
            err[0] = '\0';
            int rv = rl_wire_decode_hdr(r->hdr, FUZZ_MAX_BODY, &r->h, err, sizeof err);
            if (rv != 0) {
                CHECK(rv == RLOG_EPROTO && err[0] != '\0');
                if (verbose())
                    fprintf(stderr, "fuzz_peer: frame header refused: %s\n", err);
                r->closed = true;
                return;
            }
            CHECK(r->h.length <= FUZZ_MAX_BODY && r->h.sender != 0);
            r->body_cap = r->h.length < FUZZ_READ_CHUNK ? (r->h.length ? r->h.length : 8)
                                                        : FUZZ_READ_CHUNK;
            r->body = raft_malloc(r->body_cap);
            CHECK(r->body != NULL);
            r->body_got = 0;
        }
        size_t want = r->h.length - r->body_got;
        size_t n = want < left ? want : left;
        if (r->body_got + n > r->body_cap) {
            size_t cap = r->body_cap * 2;
            while (cap < r->body_got + n)
                cap *= 2;
            if (cap > r->h.length)
                cap = r->h.length;
            unsigned char *b = raft_realloc(r->body, cap);
            CHECK(b != NULL);
            r->body = b;
            r->body_cap = cap;
        }
        memcpy(r->body + r->body_got, p, n);
        r->body_got += n;
        p += n;
        left -= n;
        /* Memory follows the bytes: at most twice what arrived (or the
         * first chunk-sized buffer). */
        CHECK(r->body_cap <= FUZZ_READ_CHUNK || r->body_cap <= 2 * r->body_got);
        CHECK(r->body_got <= r->body_cap || r->h.length == 0);
        if (r->body_got == r->h.length) {
            r->hdr_got = 0;
            frame_done(r);
        }
    }
}

/* conn.c's deliver: the hello reader first, the rest of the chunk to the
 * frame reader once the hello handed the connection on. */
static void reader_data(struct reader *r, const unsigned char *p, size_t n)
{
    if (r->closed || n == 0)
        return;
    if (!r->accepted) {
        size_t k = hello_data(r, p, n);
        if (!r->accepted || r->closed)
            return;
        p += k;
        n -= k;
    }
    frame_data(r, p, n);
}

static void reader_end(struct reader *r, const char *mode)
{
    if (verbose())
        fprintf(stderr, "fuzz_peer: %s: hello %s (%zu bytes), %u frames, %s%s\n", mode,
                r->accepted ? "accepted" : r->hello_got == RL_HELLO_LEN ? "refused" : "short",
                r->hello_got, r->frames, r->closed ? "closed" : "open",
                r->body ? " inside a frame body" : r->hdr_got ? " inside a frame header" : "");
    drop_body(r); /* a connection closed inside a frame body */
}

/* ---- chunking ---------------------------------------------------------------------- */

struct chunker {
    unsigned char sizes[4];
    unsigned next;
    const unsigned char *p;
    size_t left;
};

static void chunker_init(struct chunker *c, const uint8_t *data, size_t size)
{
    memset(c->sizes, 0, sizeof c->sizes);
    for (unsigned i = 0; i < 4 && 2 + i < size; i++)
        c->sizes[i] = data[2 + i];
    c->next = 0;
    c->p = data + (size < IN_HDR ? size : IN_HDR);
    c->left = size < IN_HDR ? 0 : size - IN_HDR;
}

/* The next chunk, or false at the end of the stream. */
static bool chunk_next(struct chunker *c, const unsigned char **p, size_t *n)
{
    if (c->left == 0)
        return false;
    unsigned k = c->sizes[c->next++ % 4];
    size_t len = k == 0 ? c->left : k <= 128 ? k : (size_t)(k - 128) * 512;
    if (len > c->left)
        len = c->left;
    *p = c->p;
    *n = len;
    c->p += len;
    c->left -= len;
    return true;
}

static void run_plain(const uint8_t *data, size_t size)
{
    struct reader r = {.cert_id = size > 1 ? data[1] : 0};
    struct chunker c;
    chunker_init(&c, data, size);
    const unsigned char *p;
    size_t n;
    while (!r.closed && chunk_next(&c, &p, &n))
        reader_data(&r, p, n);
    reader_end(&r, "plain");
}

/* ---- TLS ---------------------------------------------------------------------------- */

static char cert_dir[64];
static struct rl_tls_ctx *tls_ctx;
static bool tls_tried;

static void remove_cert_dir(void)
{
    rl_tls_ctx_free(tls_ctx);
    tls_ctx = NULL;
    if (!cert_dir[0])
        return;
    DIR *d = opendir(cert_dir);
    if (d) {
        struct dirent *e;
        char path[sizeof cert_dir + 300];
        while ((e = readdir(d)) != NULL) {
            if (e->d_name[0] == '.')
                continue;
            snprintf(path, sizeof path, "%s/%s", cert_dir, e->d_name);
            unlink(path);
        }
        closedir(d);
    }
    rmdir(cert_dir);
    cert_dir[0] = '\0';
}

/* Makes the server's context at the first TLS input: a CA and node 1's
 * certificate from examples/mkcerts.sh (FUZZ_MKCERTS overrides the path,
 * for running from elsewhere than the repository's top directory). */
static struct rl_tls_ctx *get_ctx(void)
{
    if (tls_tried)
        return tls_ctx;
    tls_tried = true;
    const char *mk = getenv("FUZZ_MKCERTS");
    if (!mk || !*mk)
        mk = "examples/mkcerts.sh";
    snprintf(cert_dir, sizeof cert_dir, "/tmp/fuzz_peer.XXXXXX");
    if (!mkdtemp(cert_dir)) {
        cert_dir[0] = '\0';
        fprintf(stderr, "fuzz_peer: no temp dir: TLS inputs skipped\n");
        return NULL;
    }
    atexit(remove_cert_dir);
    char cmd[512], ca[128], crt[128], key[128], err[512];
    snprintf(cmd, sizeof cmd, "%s %s %s 1 >/dev/null 2>&1", mk, cert_dir, FUZZ_CLUSTER);
    if (system(cmd) != 0) {
        fprintf(stderr, "fuzz_peer: %s failed: TLS inputs skipped\n", mk);
        return NULL;
    }
    snprintf(ca, sizeof ca, "%s/ca.crt", cert_dir);
    snprintf(crt, sizeof crt, "%s/node-1.crt", cert_dir);
    snprintf(key, sizeof key, "%s/node-1.key", cert_dir);
    struct rl_tls_config cfg = {.ca_file = ca, .cert_file = crt, .key_file = key,
                                .cluster = FUZZ_CLUSTER, .max_buffered = FUZZ_TLS_MAX};
    if (rl_tls_ctx_new(&cfg, &tls_ctx, err, sizeof err) != 0) {
        fprintf(stderr, "fuzz_peer: rl_tls_ctx_new: %s: TLS inputs skipped\n", err);
        tls_ctx = NULL;
    }
    return tls_ctx;
}

static bool feed_code_ok(int rv)
{
    return rv == 0 || rv == RLOG_ETOOBIG || rv == RLOG_EPROTO || rv == RLOG_ENOMEM;
}

static bool read_code_ok(int rv)
{
    return rv == 0 || rv == RLOG_ECLOSED || rv == RLOG_EPROTO || rv == RLOG_ETOOBIG ||
           rv == RLOG_ENOMEM;
}

/* A failed session: every later call gives the same code. */
static void check_latched(struct rl_tls_session *s, int code)
{
    unsigned char b[64] = {0};
    size_t got = 1;
    CHECK(code != 0 && code != RLOG_EINVAL);
    CHECK(rl_tls_feed(s, b, 1) == code);
    CHECK(rl_tls_feed(s, NULL, 0) == code);
    CHECK(rl_tls_read(s, b, sizeof b, &got) == code && got == 0);
    CHECK(rl_tls_write(s, "x", 1) == code);
    CHECK(rl_tls_shutdown(s) == code);
    CHECK(!rl_tls_handshake_done(s));
    uint64_t id = 0;
    CHECK(rl_tls_peer_id(s, &id) == RLOG_EINVAL);
    CHECK(rl_tls_errmsg(s)[0] != '\0');
}

/* Takes all pending output in pieces, as conn.c does before each write. */
static void drain_output(struct rl_tls_session *s)
{
    static unsigned char out[4096];
    for (;;) {
        size_t pend = rl_tls_pending_output(s), got = 0;
        CHECK(rl_tls_take_output(s, out, sizeof out, &got) == 0);
        CHECK(got <= sizeof out && got <= pend);
        CHECK(rl_tls_pending_output(s) == pend - got);
        if (got == 0) {
            CHECK(pend == 0);
            return;
        }
    }
}

static void run_tls(const uint8_t *data, size_t size)
{
    struct rl_tls_ctx *ctx = get_ctx();
    if (!ctx)
        return;
    struct rl_tls_session *s = NULL;
    CHECK(rl_tls_session_new(ctx, true, &s) == 0 && s != NULL);
    /* A server says nothing until the client does. */
    CHECK(rl_tls_pending_output(s) == 0);
    struct reader r = {0};
    struct chunker c;
    chunker_init(&c, data, size);
    static unsigned char plain[64 * 1024];
    const unsigned char *p;
    size_t n;
    int failed = 0;
    while (chunk_next(&c, &p, &n)) {
        int rv = rl_tls_feed(s, p, n);
        CHECK(feed_code_ok(rv));
        if (failed) {
            CHECK(rv == failed);
            drain_output(s);
            continue;
        }
        /* The input cap: no single chunk above it gets in. */
        CHECK(n <= FUZZ_TLS_MAX || rv == RLOG_ETOOBIG);
        while (rv == 0) {
            if (rl_tls_handshake_done(s) && !r.cert_id) {
                /* Unreachable without a client key the CA signed; kept so
                 * a handshake bug that lets a stranger in is caught. */
                CHECK(rl_tls_peer_id(s, &r.cert_id) == 0 && r.cert_id != 0);
            }
            size_t got = 0;
            rv = rl_tls_read(s, plain, sizeof plain, &got);
            CHECK(read_code_ok(rv));
            CHECK(rv == 0 || got == 0);
            if (rv != 0 || got == 0)
                break;
            CHECK(got <= sizeof plain);
            CHECK(r.cert_id != 0); /* plaintext only after the handshake */
            reader_data(&r, plain, got);
        }
        if (rv == 0) {
            CHECK(rl_tls_pending_output(s) <= FUZZ_TLS_MAX);
        } else {
            failed = rv;
            check_latched(s, failed);
        }
        drain_output(s);
    }
    if (failed)
        check_latched(s, failed);
    if (verbose())
        fprintf(stderr, "fuzz_peer: tls: %s: %s\n", failed ? rlog_errname(failed) : "no error",
                failed ? rl_tls_errmsg(s) : "want more input");
    reader_end(&r, "tls");
    rl_tls_session_free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 0 && (data[0] & 1))
        run_tls(data, size);
    else
        run_plain(data, size);
    return 0;
}
