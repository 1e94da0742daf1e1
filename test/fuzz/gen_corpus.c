/*
 * Generates the fuzz seed corpora (deterministically):
 *
 *   gen_corpus OUTDIR [BUGDIR]
 *
 * writes OUTDIR/wire/, OUTDIR/recovery/ and OUTDIR/peer/, and (if BUGDIR is given)
 * BUGDIR/recovery/: inputs that fail because of known library bugs (see
 * test/fuzz/README.md), kept out of the corpus that `make check` replays.
 *
 * wire/: one valid frame of each message type made with rl_wire_encode, the
 * same with a zero checksum field (fuzz_wire fills it in, so mutations of
 * the body reach the decoder), a stream of several frames, and a few
 * truncated or corrupted frames.
 *
 * peer/: fuzz_peer's inputs (6 bytes of mode, certificate id and chunk
 * sizes, then the stream). Plain: a valid hello then frames, delivered whole,
 * byte by byte and in odd chunks; each hello field wrong; short and split
 * hellos and frames; a frame from another sender; a frame claiming more than
 * the cap, or the cap with a few bytes. TLS: a ClientHello made by lib/tls
 * as a client (certificates from examples/mkcerts.sh in a temp dir; these
 * files differ on every run, as a ClientHello carries random bytes and a
 * fresh key share; skipped with a warning if mkcerts fails), whole, byte by
 * byte, truncated, with garbage after it and with a chunk above the
 * session's cap; a TLS 1.2-only ClientHello (plain OpenSSL); records claiming
 * a huge length, application data and an alert before the handshake, and
 * garbage.
 *
 * recovery/: directories written by the real store (lib/store) in a data
 * directory laid out like fuzz_recovery's (FORMAT with FZ_DIR_ID), saved as
 * the input format of fuzz_recovery: the newest metadata copy (96 bytes)
 * then seg-0000000000000001.log without its trailing zeros. Variants: clean,
 * reopened several times, truncated and re-appended (stale frames past the
 * cut), trimmed, a torn tail, bit flips in the last and in an earlier write,
 * a torn segment header, a spare, and zero-checksum ("autoseal") copies.
 */
#define XXH_STATIC_LINKING_ONLY
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>
#include <xxhash.h>

#include <openssl/ssl.h>

#include "fuzz_store_dir.h"
#include "liblog.h"
#include "net/hello.h"
#include "store/format.h"
#include "store/store.h"
#include "tls/tls.h"
#include "wire/codec.h"

static const char *outdir;
static const char *bugdir;
static unsigned n_files;
static size_t n_bytes;

static void die(const char *what)
{
    fprintf(stderr, "gen_corpus: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void emit(const char *sub, const char *name, const void *buf, size_t len)
{
    char dir[4200];
    const char *base = outdir;
    if (!strncmp(sub, "bug:", 4)) {
        if (!bugdir)
            return;
        base = bugdir;
        sub += 4;
    }
    snprintf(dir, sizeof dir, "%s/%s", base, sub);
    mkdir(base, 0755);
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        die(dir);
    if (fz_write_file(dir, name, buf, len) != 0)
        die(name);
    n_files++;
    n_bytes += len;
}

/* ---- wire ------------------------------------------------------------------ */

struct frame {
    unsigned char *b;
    size_t len;
};

/* The frame an encoder made (rv its result), in one buffer. */
static struct frame flatten(int rv, struct rl_wire_out *out)
{
    if (rv != 0) {
        fprintf(stderr, "gen_corpus: an encoder failed (%d)\n", rv);
        exit(1);
    }
    struct frame f = {malloc((size_t)out->total), (size_t)out->total};
    if (!f.b)
        die("malloc");
    size_t at = 0;
    for (unsigned i = 0; i < out->n_iov; i++) {
        memcpy(f.b + at, out->iov[i].base, out->iov[i].len);
        at += out->iov[i].len;
    }
    rl_wire_out_free(out);
    return f;
}

static struct frame encode(const struct raft_message *m, uint64_t sender)
{
    struct rl_wire_out out;
    return flatten(rl_wire_encode(m, sender, &out), &out);
}

static void emit_frame(const char *name, const struct frame *f, bool zero_sum_too)
{
    char n[128];
    snprintf(n, sizeof n, "%s.bin", name);
    emit("wire", n, f->b, f->len);
    if (zero_sum_too) {
        unsigned char *c = malloc(f->len);
        if (!c)
            die("malloc");
        memcpy(c, f->b, f->len);
        memset(c + 24, 0, 8);
        snprintf(n, sizeof n, "%s-zsum.bin", name);
        emit("wire", n, c, f->len);
        free(c);
    }
}

/* A corrupted copy: `edit` is applied to a copy of f (len may shrink). */
static void emit_edit(const char *name, const struct frame *f, size_t keep, size_t at,
                      unsigned char xor_mask, bool zero_sum)
{
    unsigned char *c = malloc(f->len);
    if (!c)
        die("malloc");
    memcpy(c, f->b, f->len);
    if (at < f->len)
        c[at] ^= xor_mask;
    if (zero_sum)
        memset(c + 24, 0, 8);
    char n[128];
    snprintf(n, sizeof n, "%s.bin", name);
    emit("wire", n, c, keep < f->len ? keep : f->len);
    free(c);
}

static void gen_wire(void)
{
    struct raft_message m;
    struct frame f[9];
    unsigned nf = 0;

    memset(&m, 0, sizeof m);
    m.type = RAFT_IO_APPEND_ENTRIES;
    m.append_entries = (struct raft_append_entries){.term = 3, .prev_log_index = 10,
                                                    .prev_log_term = 2, .leader_commit = 9};
    struct frame heartbeat = encode(&m, 1);
    emit_frame("append-entries-heartbeat", &heartbeat, true);

    static char p1[] = "hello, replicated world";        /* 23: padded */
    static char p2[] = "0123456789abcdef0123456789abcdef"; /* 32 */
    struct raft_entry ents[4] = {
        {.term = 3, .type = RAFT_COMMAND, .buf = {p1, sizeof p1 - 1}},
        {.term = 3, .type = RAFT_BARRIER, .buf = {NULL, 0}},
        {.term = 3, .type = RAFT_COMMAND, .buf = {p2, sizeof p2 - 1}},
        {.term = 3, .type = RAFT_CHANGE, .buf = {p1, 5}},
    };
    m.append_entries.entries = ents;
    m.append_entries.n_entries = 4;
    f[nf] = encode(&m, 1);
    emit_frame("append-entries", &f[nf], true);
    struct frame ae = f[nf++];

    memset(&m, 0, sizeof m);
    m.type = RAFT_IO_APPEND_ENTRIES_RESULT;
    m.append_entries_result = (struct raft_append_entries_result){4, 0, 14};
    f[nf] = encode(&m, 2);
    emit_frame("append-entries-result", &f[nf++], true);

    memset(&m, 0, sizeof m);
    m.type = RAFT_IO_REQUEST_VOTE;
    m.request_vote = (struct raft_request_vote){.term = 5, .candidate_id = 3,
                                                .last_log_index = 14, .last_log_term = 4,
                                                .disrupt_leader = true, .pre_vote = true};
    f[nf] = encode(&m, 3);
    emit_frame("request-vote", &f[nf++], true);

    memset(&m, 0, sizeof m);
    m.type = RAFT_IO_REQUEST_VOTE_RESULT;
    m.request_vote_result = (struct raft_request_vote_result){5, true, raft_tribool_true};
    f[nf] = encode(&m, 1);
    emit_frame("request-vote-result", &f[nf++], true);

    memset(&m, 0, sizeof m);
    m.type = RAFT_IO_INSTALL_SNAPSHOT;
    struct raft_server servers[3] = {
        {.id = 1, .address = "127.0.0.1:7001", .role = RAFT_VOTER},
        {.id = 2, .address = "127.0.0.1:7002", .role = RAFT_STANDBY},
        {.id = 3, .address = "10.0.0.3:7003", .role = RAFT_SPARE},
    };
    static char snap[] = "snapshot descriptor 42";
    m.install_snapshot = (struct raft_install_snapshot){
        .term = 6, .last_index = 100, .last_term = 5, .conf = {servers, 3}, .conf_index = 90,
        .data = {snap, sizeof snap - 1}};
    f[nf] = encode(&m, 1);
    emit_frame("install-snapshot", &f[nf], true);
    struct frame is = f[nf++];

    memset(&m, 0, sizeof m);
    m.type = RAFT_IO_TIMEOUT_NOW;
    m.timeout_now = (struct raft_timeout_now){7, 120, 6};
    f[nf] = encode(&m, 1);
    emit_frame("timeout-now", &f[nf++], true);

    struct rl_wire_out out;
    struct rl_wire_fetch_req req = {.first = 1, .last = 500, .budget = 4u << 20};
    f[nf] = flatten(rl_wire_encode_fetch_req(&req, 2, &out), &out);
    emit_frame("fetch-request", &f[nf++], true);

    struct rl_wire_fetch_resp resp = {.first = 1, .last = 500, .entries = ents, .n_entries = 3};
    f[nf] = flatten(rl_wire_encode_fetch_resp(&resp, 1, &out), &out);
    emit_frame("fetch-response", &f[nf++], true);

    /* A stream: heartbeat, then one of each type. */
    size_t total = heartbeat.len;
    for (unsigned i = 0; i < nf; i++)
        total += f[i].len;
    unsigned char *stream = malloc(total);
    if (!stream)
        die("malloc");
    memcpy(stream, heartbeat.b, heartbeat.len);
    size_t at = heartbeat.len;
    for (unsigned i = 0; i < nf; i++) {
        memcpy(stream + at, f[i].b, f[i].len);
        at += f[i].len;
    }
    emit("wire", "stream-all-types.bin", stream, total);
    free(stream);

    /* Truncated and corrupted frames. */
    emit_edit("trunc-header", &ae, 20, SIZE_MAX, 0, false);
    emit_edit("trunc-body", &ae, ae.len - 13, SIZE_MAX, 0, false);
    emit_edit("bad-magic", &ae, ae.len, 0, 0x20, false);
    emit_edit("bad-version", &ae, ae.len, 4, 0x02, false);
    emit_edit("bad-type", &ae, ae.len, 6, 0x10, false);
    emit_edit("bad-length", &ae, ae.len, 8, 0x08, false);
    emit_edit("bad-flags", &ae, ae.len, 12, 0x01, false);
    emit_edit("flipped-body-bit", &ae, ae.len, 32 + 9, 0x04, false);
    /* Zero checksum: fuzz_wire seals it, so the decoder sees these. */
    emit_edit("zsum-bad-entry-count", &ae, ae.len, 32 + 32, 0x40, true);
    emit_edit("zsum-bad-entry-type", &ae, ae.len, 32 + 40 + 8, 0x07, true);
    emit_edit("zsum-nonzero-padding", &ae, ae.len, ae.len - 1, 0x01, true);
    emit_edit("zsum-bad-role", &is, is.len, 32 + 40 + 8, 0x09, true);
    emit_edit("zsum-address-nul", &is, is.len, 32 + 40 + 24 + 3, '.', true);

    free(heartbeat.b);
    for (unsigned i = 0; i < nf; i++)
        free(f[i].b);
}

/* ---- peer ------------------------------------------------------------------ */

/* fuzz_peer's input header: mode (even plain, odd TLS), the certificate id
 * for the hello check, four chunk sizes (0 whole, 1..128 bytes, 129..255
 * (k-128)*512 bytes). */
#define PEER_PLAIN 0
#define PEER_TLS 1
#define PEER_HDR 6

struct peer_in {
    unsigned char *b;
    size_t len, cap;
};

static void pin_add(struct peer_in *p, const void *b, size_t len)
{
    if (p->len + len > p->cap) {
        size_t cap = p->cap ? p->cap : 256;
        while (cap < p->len + len)
            cap *= 2;
        unsigned char *n = realloc(p->b, cap);
        if (!n)
            die("realloc");
        p->b = n;
        p->cap = cap;
    }
    if (len)
        memcpy(p->b + p->len, b, len);
    p->len += len;
}

static struct peer_in pin_new(unsigned mode, unsigned cert_id, const unsigned char sizes[4])
{
    struct peer_in p = {0};
    unsigned char h[PEER_HDR] = {(unsigned char)mode, (unsigned char)cert_id, sizes[0],
                                 sizes[1], sizes[2], sizes[3]};
    pin_add(&p, h, sizeof h);
    return p;
}

static void pin_emit(const char *name, struct peer_in *p)
{
    emit("peer", name, p->b, p->len);
    free(p->b);
    *p = (struct peer_in){0};
}

static const unsigned char whole[4] = {0, 0, 0, 0};
static const unsigned char bytewise[4] = {1, 1, 1, 1};
static const unsigned char odd[4] = {7, 31, 3, 130}; /* 130: 1 KiB */

/* Plain mode: a hello from id (cluster "fuzz" unless hash is given) then
 * the frames. */
static void emit_plain(const char *name, unsigned cert_id, const unsigned char sizes[4],
                       const unsigned char hello[RL_HELLO_LEN], const struct frame *f,
                       unsigned nf)
{
    struct peer_in p = pin_new(PEER_PLAIN, cert_id, sizes);
    pin_add(&p, hello, RL_HELLO_LEN);
    for (unsigned i = 0; i < nf; i++)
        pin_add(&p, f[i].b, f[i].len);
    pin_emit(name, &p);
}

static void hello_from(unsigned char out[RL_HELLO_LEN], uint64_t id)
{
    rl_hello_encode(out, id, rl_hello_cluster_hash("fuzz"));
}

/* A ClientHello from lib/tls as a client, or len 0 if no certificates. */
static struct frame client_hello(void)
{
    struct frame f = {NULL, 0};
    char dir[] = "/tmp/gen_corpus_tls.XXXXXX", cmd[512], ca[96], crt[96], key[96], err[512] = "";
    if (!mkdtemp(dir))
        die("mkdtemp");
    snprintf(cmd, sizeof cmd, "examples/mkcerts.sh %s fuzz 2 >/dev/null 2>&1", dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "gen_corpus: examples/mkcerts.sh failed: no TLS ClientHello seeds\n");
    } else {
        snprintf(ca, sizeof ca, "%s/ca.crt", dir);
        snprintf(crt, sizeof crt, "%s/node-2.crt", dir);
        snprintf(key, sizeof key, "%s/node-2.key", dir);
        struct rl_tls_config cfg = {.ca_file = ca, .cert_file = crt, .key_file = key,
                                    .cluster = "fuzz"};
        struct rl_tls_ctx *ctx = NULL;
        struct rl_tls_session *s = NULL;
        if (rl_tls_ctx_new(&cfg, &ctx, err, sizeof err) != 0 ||
            rl_tls_session_new(ctx, false, &s) != 0) {
            fprintf(stderr, "gen_corpus: lib/tls client failed: %s\n", err);
            exit(1);
        }
        f.len = rl_tls_pending_output(s);
        f.b = malloc(f.len);
        size_t got = 0;
        if (!f.b || rl_tls_take_output(s, f.b, f.len, &got) != 0 || got != f.len)
            die("ClientHello");
        rl_tls_session_free(s);
        rl_tls_ctx_free(ctx);
    }
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "gen_corpus: cannot remove %s\n", dir);
    return f;
}

/* A ClientHello from plain OpenSSL limited to TLS 1.2: the server (TLS 1.3
 * only) must refuse it. */
static struct frame client_hello_12(void)
{
    struct frame f = {NULL, 0};
    SSL_CTX *c = SSL_CTX_new(TLS_client_method());
    if (!c || !SSL_CTX_set_max_proto_version(c, TLS1_2_VERSION))
        die("SSL_CTX_new");
    SSL *s = SSL_new(c);
    BIO *in = BIO_new(BIO_s_mem()), *out = BIO_new(BIO_s_mem());
    if (!s || !in || !out)
        die("SSL_new");
    SSL_set_bio(s, in, out);
    SSL_set_connect_state(s);
    SSL_do_handshake(s); /* wants to read the ServerHello: the hello is out */
    f.len = (size_t)BIO_ctrl_pending(out);
    f.b = malloc(f.len ? f.len : 1);
    if (!f.b || (f.len && BIO_read(out, f.b, (int)f.len) != (int)f.len))
        die("TLS 1.2 ClientHello");
    SSL_free(s);
    SSL_CTX_free(c);
    return f;
}

static void emit_tls(const char *name, const unsigned char sizes[4], const void *a, size_t alen,
                     const void *b, size_t blen)
{
    struct peer_in p = pin_new(PEER_TLS, 0, sizes);
    pin_add(&p, a, alen);
    pin_add(&p, b, blen);
    pin_emit(name, &p);
}

static void gen_peer(void)
{
    struct raft_message m;
    struct frame f[4];
    memset(&m, 0, sizeof m);
    m.type = RAFT_IO_REQUEST_VOTE;
    m.request_vote = (struct raft_request_vote){.term = 5, .candidate_id = 2,
                                                .last_log_index = 14, .last_log_term = 4};
    f[0] = encode(&m, 2);
    memset(&m, 0, sizeof m);
    m.type = RAFT_IO_APPEND_ENTRIES;
    static char pl[] = "peer payload";
    struct raft_entry ents[2] = {
        {.term = 5, .type = RAFT_COMMAND, .buf = {pl, sizeof pl - 1}},
        {.term = 5, .type = RAFT_BARRIER, .buf = {NULL, 0}},
    };
    m.append_entries = (struct raft_append_entries){.term = 5, .prev_log_index = 14,
                                                    .prev_log_term = 4, .leader_commit = 14,
                                                    .entries = ents, .n_entries = 2};
    f[1] = encode(&m, 2);
    memset(&m, 0, sizeof m);
    m.type = RAFT_IO_APPEND_ENTRIES_RESULT;
    m.append_entries_result = (struct raft_append_entries_result){5, 0, 16};
    f[2] = encode(&m, 2);
    memset(&m, 0, sizeof m);
    m.type = RAFT_IO_TIMEOUT_NOW;
    m.timeout_now = (struct raft_timeout_now){5, 16, 5};
    f[3] = encode(&m, 3); /* another sender than the connection's */

    unsigned char h[RL_HELLO_LEN], bad[RL_HELLO_LEN];
    hello_from(h, 2);
    emit_plain("plain-hello-only.bin", 0, whole, h, f, 0);
    emit_plain("plain-frames-whole.bin", 0, whole, h, f, 3);
    emit_plain("plain-frames-bytewise.bin", 0, bytewise, h, f, 3);
    emit_plain("plain-frames-odd-chunks.bin", 0, odd, h, f, 3);
    emit_plain("plain-cert-id-match.bin", 2, whole, h, f, 3);
    emit_plain("plain-wrong-sender.bin", 0, whole, h, f, 4);
    /* Zero checksums: fuzz_peer seals them, so mutations reach the decoder. */
    for (unsigned i = 0; i < 3; i++)
        memset(f[i].b + 24, 0, 8);
    emit_plain("plain-frames-zsum.bin", 0, odd, h, f, 3);

    /* Each hello field wrong, in rl_hello_check's order. */
    memcpy(bad, h, sizeof bad);
    bad[3] ^= 0x20;
    emit_plain("hello-bad-magic.bin", 0, whole, bad, f, 1);
    memcpy(bad, h, sizeof bad);
    bad[8] = 2;
    emit_plain("hello-bad-version.bin", 0, whole, bad, f, 1);
    memcpy(bad, h, sizeof bad);
    bad[13] = 1;
    emit_plain("hello-bad-flags.bin", 0, whole, bad, f, 1);
    hello_from(bad, 0);
    emit_plain("hello-id-zero.bin", 0, whole, bad, f, 1);
    hello_from(bad, 1);
    emit_plain("hello-id-self.bin", 0, whole, bad, f, 1);
    hello_from(bad, 9);
    emit_plain("hello-id-not-member.bin", 0, whole, bad, f, 1);
    emit_plain("hello-id-not-cert.bin", 3, whole, h, f, 1);
    rl_hello_encode(bad, 2, rl_hello_cluster_hash("other"));
    emit_plain("hello-other-cluster.bin", 0, whole, bad, f, 1);

    /* Short and split. */
    struct peer_in p = pin_new(PEER_PLAIN, 0, bytewise);
    pin_add(&p, h, 20);
    pin_emit("plain-short-hello.bin", &p);
    p = pin_new(PEER_PLAIN, 0, (const unsigned char[4]){31, 2, 40, 0});
    pin_add(&p, h, sizeof h);
    pin_add(&p, f[1].b, 20);
    pin_emit("plain-short-frame-header.bin", &p);
    p = pin_new(PEER_PLAIN, 0, (const unsigned char[4]){33, 33, 5, 0});
    pin_add(&p, h, sizeof h);
    pin_add(&p, f[1].b, f[1].len - 9);
    pin_emit("plain-short-frame-body.bin", &p);
    p = pin_new(PEER_PLAIN, 0, whole);
    pin_add(&p, NULL, 0);
    pin_emit("plain-empty.bin", &p);
    p = pin_new(PEER_PLAIN, 0, whole);
    pin_emit("plain-header-only.bin", &p);
    emit("peer", "tiny.bin", "\0\1", 2);

    /* Frames claiming a huge length: over the cap (refused at the header),
     * and just under it with a few bytes (memory must follow the bytes). */
    unsigned char big[RL_WIRE_HDR + 64];
    memcpy(big, f[1].b, RL_WIRE_HDR); /* AppendEntries: a variable length */
    memset(big + RL_WIRE_HDR, 0x5a, 64);
    uint32_t over = 0xfffffff8u, under = (1u << 20) + (4u << 20);
    for (unsigned i = 0; i < 4; i++) /* the length field, u32 little-endian */
        big[8 + i] = (unsigned char)(over >> (8 * i));
    p = pin_new(PEER_PLAIN, 0, whole);
    pin_add(&p, h, sizeof h);
    pin_add(&p, big, sizeof big);
    pin_emit("plain-frame-over-cap.bin", &p);
    for (unsigned i = 0; i < 4; i++)
        big[8 + i] = (unsigned char)(under >> (8 * i));
    p = pin_new(PEER_PLAIN, 0, (const unsigned char[4]){0, 250, 1, 129});
    pin_add(&p, h, sizeof h);
    pin_add(&p, big, sizeof big);
    pin_emit("plain-frame-near-cap-short.bin", &p);

    /* Garbage (a fixed xorshift sequence) in both modes. */
    unsigned char junk[700];
    uint64_t x = 0x9e3779b97f4a7c15u;
    for (size_t i = 0; i < sizeof junk; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        junk[i] = (unsigned char)x;
    }
    p = pin_new(PEER_PLAIN, 0, odd);
    pin_add(&p, junk, sizeof junk);
    pin_emit("plain-garbage.bin", &p);
    emit_tls("tls-garbage.bin", odd, junk, sizeof junk, NULL, 0);

    /* TLS records by hand: a handshake record claiming 65535 bytes, one
     * claiming more than a record may hold, application data and an alert
     * before any handshake. */
    static const unsigned char huge[] = {0x16, 0x03, 0x01, 0xff, 0xff, 0x01, 0x00, 0xff, 0xfb};
    emit_tls("tls-record-huge-length.bin", whole, huge, sizeof huge, junk, 100);
    static const unsigned char over_rec[] = {0x16, 0x03, 0x03, 0x48, 0x01};
    emit_tls("tls-record-over-max.bin", bytewise, over_rec, sizeof over_rec, junk, 40);
    static const unsigned char appdata[] = {0x17, 0x03, 0x03, 0x00, 0x20};
    emit_tls("tls-appdata-first.bin", whole, appdata, sizeof appdata, junk, 32);
    static const unsigned char alert[] = {0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28};
    emit_tls("tls-alert-first.bin", whole, alert, sizeof alert, NULL, 0);
    emit_tls("tls-record-header-split.bin", bytewise, huge, 3, NULL, 0);

    struct frame t12 = client_hello_12();
    emit_tls("tls12-client-hello.bin", whole, t12.b, t12.len, NULL, 0);
    free(t12.b);

    struct frame ch = client_hello();
    if (ch.len) {
        emit_tls("tls-client-hello.bin", whole, ch.b, ch.len, NULL, 0);
        emit_tls("tls-client-hello-bytewise.bin", bytewise, ch.b, ch.len, NULL, 0);
        emit_tls("tls-client-hello-odd-chunks.bin", odd, ch.b, ch.len, NULL, 0);
        emit_tls("tls-client-hello-truncated.bin", whole, ch.b, ch.len / 2, NULL, 0);
        emit_tls("tls-client-hello-then-garbage.bin", whole, ch.b, ch.len, junk, 200);
        /* Plaintext after the hello: a client that skips the handshake. */
        emit_tls("tls-client-hello-then-hello.bin", whole, ch.b, ch.len, h, sizeof h);
        /* A ClientHello sent to a plain-mode server. */
        p = pin_new(PEER_PLAIN, 0, whole);
        pin_add(&p, ch.b, ch.len);
        pin_emit("plain-got-client-hello.bin", &p);
        /* One 40 KiB chunk (209: 80 * 512 bytes), over the 32 KiB cap. */
        size_t blen = 80 * 512 - ch.len;
        unsigned char *zeros = calloc(1, blen);
        if (!zeros)
            die("calloc");
        emit_tls("tls-chunk-over-cap.bin", (const unsigned char[4]){209, 0, 0, 0}, ch.b, ch.len,
                 zeros, blen);
        free(zeros);
        free(ch.b);
    }
    for (unsigned i = 0; i < 4; i++)
        free(f[i].b);
}

/* ---- recovery -------------------------------------------------------------- */

static uv_loop_t loop;
static char tmpdir[256];

static void on_closed(void *arg)
{
    *(bool *)arg = true;
}

static void on_done(struct rl_store_req *req, int status)
{
    *(int *)req->data = status;
}

static void run_until_status(int *st)
{
    while (*st == 1)
        if (uv_run(&loop, UV_RUN_ONCE) == 0 && *st == 1) {
            fprintf(stderr, "gen_corpus: loop ran out of work\n");
            exit(1);
        }
}

static void rm_contents(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char p[4200];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        unlink(p);
    }
    closedir(d);
}

static struct rl_store *open_store(void)
{
    struct rl_store_config cfg = {.dir = tmpdir, .segment_size = FZ_SEGMENT_SIZE};
    struct rl_store *s;
    char err[512];
    int rv = rl_store_open(&loop, &cfg, &s, err, sizeof err);
    if (rv != 0) {
        fprintf(stderr, "gen_corpus: open %s: %s\n", tmpdir, err);
        exit(1);
    }
    return s;
}

static void close_store(struct rl_store *s)
{
    bool closed = false;
    rl_store_close(s, on_closed, &closed);
    while (!closed)
        uv_run(&loop, UV_RUN_ONCE);
}

/* A fresh directory: FORMAT and an initial metadata state, as a new store
 * writes them, but with the fixed dir-id. */
static void fresh_dir(void)
{
    rm_contents(tmpdir);
    unsigned char meta[FZ_META_SIZE];
    if (fz_write_format(tmpdir) != 0)
        die("FORMAT");
    fz_meta_encode(meta, 1, 0, 1, 0);
    if (fz_write_file(tmpdir, "meta-b", meta, sizeof meta) != 0)
        die("meta-b");
    fz_meta_encode(meta, 2, 0, 1, 0);
    if (fz_write_file(tmpdir, "meta-a", meta, sizeof meta) != 0)
        die("meta-a");
}

/* Appends n entries in one request; payload lengths and records vary. */
static void append(struct rl_store *s, unsigned n, uint64_t term, unsigned salt)
{
    struct rl_store_entry e[16];
    static unsigned char bufs[16][200];
    uint64_t first = rl_store_next_index(s);
    if (n > 16)
        n = 16;
    for (unsigned i = 0; i < n; i++) {
        uint32_t len = (uint32_t)((first + i) * 37 + salt) % 160;
        for (uint32_t k = 0; k < len; k++)
            bufs[i][k] = (unsigned char)('a' + (first + i + k + salt) % 26);
        uint32_t records = (uint32_t)((first + i + salt) % 4);
        e[i] = (struct rl_store_entry){.index = first + i, .term = term, .records = records,
                                       .type = records ? RAFT_COMMAND : RAFT_BARRIER,
                                       .buf = len ? bufs[i] : NULL, .len = len};
    }
    int st = 1;
    struct rl_store_req req = {.data = &st};
    if (rl_store_append(s, &req, e, n, on_done) != 0) {
        fprintf(stderr, "gen_corpus: append: %s\n", rl_store_errmsg(s));
        exit(1);
    }
    run_until_status(&st);
    if (st != 0) {
        fprintf(stderr, "gen_corpus: append status %d\n", st);
        exit(1);
    }
}

static void truncate_to(struct rl_store *s, uint64_t index)
{
    int st = 1;
    struct rl_store_req req = {.data = &st};
    if (rl_store_truncate(s, &req, index, on_done) != 0)
        die("truncate");
    run_until_status(&st);
}

static void trim_to(struct rl_store *s, uint64_t index)
{
    int st = 1;
    struct rl_store_req req = {.data = &st};
    if (rl_store_trim(s, &req, index, on_done) != 0)
        die("trim");
    run_until_status(&st);
}

/* The input for fuzz_recovery made from the directory: newest meta copy,
 * then the segment without trailing zeros (kept to a multiple of 8). */
struct rec {
    unsigned char *b;
    size_t len;
};

static unsigned char *slurp(const char *name, size_t *len)
{
    char p[4200];
    snprintf(p, sizeof p, "%s/%s", tmpdir, name);
    FILE *f = fopen(p, "rb");
    if (!f)
        return NULL;
    unsigned char *b = malloc(FZ_SEGMENT_SIZE);
    if (!b)
        die("malloc");
    *len = fread(b, 1, FZ_SEGMENT_SIZE, f);
    fclose(f);
    return b;
}

static struct rec capture(void)
{
    size_t la = 0, lb = 0, ls = 0;
    unsigned char *ma = slurp("meta-a", &la), *mb = slurp("meta-b", &lb);
    unsigned char *seg = slurp(FZ_SEGMENT_NAME, &ls);
    const unsigned char *meta = ma;
    if (!ma || (mb && rl_get64(mb + 16) > rl_get64(ma + 16)))
        meta = mb;
    if (!meta || !seg) {
        fprintf(stderr, "gen_corpus: %s lacks meta or segment\n", tmpdir);
        exit(1);
    }
    while (ls > 0 && seg[ls - 1] == 0)
        ls--;
    ls = (size_t)rl_pad8(ls);
    struct rec r = {malloc(FZ_META_SIZE + ls), FZ_META_SIZE + ls};
    if (!r.b)
        die("malloc");
    memcpy(r.b, meta, FZ_META_SIZE);
    memcpy(r.b + FZ_META_SIZE, seg, ls);
    free(ma);
    free(mb);
    free(seg);
    return r;
}

static void emit_rec(const char *name, const struct rec *r)
{
    char n[128];
    snprintf(n, sizeof n, "%s.bin", name);
    emit("recovery", n, r->b, r->len);
}

/* An input that trips a known library bug (not replayed by make check). */
static void emit_bug(const char *name, const struct rec *r)
{
    char n[128];
    snprintf(n, sizeof n, "%s.bin", name);
    emit("bug:recovery", n, r->b, r->len);
}

/* Positions of the frames in a captured input (segment starts at 96). */
static unsigned frames_of(const struct rec *r, size_t *pos, unsigned max)
{
    unsigned n = 0;
    size_t p = FZ_META_SIZE + RL_SEG_HDR;
    while (n < max && p + RL_FRAME_HDR <= r->len && !rl_all_zero(r->b + p, RL_FRAME_HDR)) {
        pos[n++] = p;
        p += RL_FRAME_HDR + rl_pad8(rl_get32(r->b + p + 40));
    }
    return n;
}

static struct rec copy_rec(const struct rec *r)
{
    struct rec c = {malloc(r->len), r->len};
    if (!c.b)
        die("malloc");
    memcpy(c.b, r->b, r->len);
    return c;
}

/* Zero checksums everywhere: fuzz_recovery recomputes them. */
static void emit_autoseal(const char *name, const struct rec *r)
{
    struct rec c = copy_rec(r);
    size_t pos[2048];
    unsigned n = frames_of(&c, pos, 2048);
    memset(c.b + 88, 0, 8);
    memset(c.b + FZ_META_SIZE + 56, 0, 8);
    for (unsigned i = 0; i < n; i++)
        memset(c.b + pos[i], 0, 8);
    emit_rec(name, &c);
    free(c.b);
}

static void gen_recovery(void)
{
    const char *root = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(tmpdir, sizeof tmpdir, "%s/rlog-gencorpus-XXXXXX", root);
    if (!mkdtemp(tmpdir))
        die("mkdtemp");
    if (uv_loop_init(&loop) != 0)
        die("uv_loop_init");
    size_t pos[2048];
    struct rl_store *s;

    /* clean: three writes of 1, 4 and 3 entries. */
    fresh_dir();
    s = open_store();
    append(s, 1, 1, 0);
    append(s, 4, 1, 1);
    append(s, 3, 2, 2);
    close_store(s);
    struct rec clean = capture();
    emit_rec("clean", &clean);
    emit_autoseal("clean-autoseal", &clean);
    /* The same segment under the default metadata (no meta prefix). */
    emit("recovery", "clean-no-meta.bin", clean.b + FZ_META_SIZE, clean.len - FZ_META_SIZE);

    unsigned n = frames_of(&clean, pos, 2048);
    /* torn tail: the last frame's second half never reached the disk. */
    struct rec c = copy_rec(&clean);
    size_t cut = pos[n - 1] + (c.len - pos[n - 1]) / 2;
    memset(c.b + cut, 0, c.len - cut);
    emit_rec("torn-tail", &c);
    free(c.b);
    /* torn inside the last frame's header. */
    c = copy_rec(&clean);
    c.len = pos[n - 1] + 24;
    emit_rec("torn-tail-header", &c);
    free(c.b);
    /* flipped bit in the last write (cut as torn) and in the first write
     * (later writes prove it was durable: corruption). */
    c = copy_rec(&clean);
    c.b[pos[n - 1] + RL_FRAME_HDR + 1] ^= 0x10;
    emit_rec("flipped-bit-last", &c);
    free(c.b);
    c = copy_rec(&clean);
    c.b[pos[0] + RL_FRAME_HDR + 2] ^= 0x01;
    emit_rec("flipped-bit-first", &c);
    free(c.b);
    /* Known bug B: a flip in entry 3, whose write (entries 2-5) was durable
     * before the write of 6-8 began; recovery cuts the log after entry 2
     * as if torn instead of failing with RLOG_ECORRUPT. */
    c = copy_rec(&clean);
    c.b[pos[2] + 16] ^= 0x80; /* term of entry 3 */
    emit_bug("bug-b-flipped-bit-mid-write", &c);
    free(c.b);
    /* Known bug B/C: entry 3's header zeroed (a lost sector): recovery stops
     * at the zeros silently, dropping acknowledged entries 3-8. */
    c = copy_rec(&clean);
    memset(c.b + pos[2], 0, RL_FRAME_HDR);
    emit_bug("bug-c-zeroed-frame-header", &c);
    free(c.b);
    /* A flip in entry 5, the last of its write: entries 6-8 prove it
     * durable, and that is the first valid frame after it: RLOG_ECORRUPT. */
    c = copy_rec(&clean);
    c.b[pos[4] + 16] ^= 0x80;
    emit_rec("flipped-bit-end-of-write", &c);
    free(c.b);
    /* torn first write of the segment: header damaged. */
    c = copy_rec(&clean);
    c.b[FZ_META_SIZE + 20] ^= 0x01;
    emit_rec("torn-segment-header", &c);
    free(c.b);
    /* an unused spare: metadata only, zero segment. */
    c = copy_rec(&clean);
    c.len = FZ_META_SIZE + 8;
    memset(c.b + FZ_META_SIZE, 0, 8);
    emit_rec("spare-segment", &c);
    c.len = FZ_META_SIZE;
    emit_rec("meta-only", &c);
    free(c.b);
    free(clean.b);

    /* reopened: three runs, so three generations of frames and a cut. */
    fresh_dir();
    for (unsigned run = 0; run < 3; run++) {
        s = open_store();
        append(s, 2 + run, 1 + run, run);
        append(s, 1, 1 + run, run + 7);
        close_store(s);
    }
    struct rec reopened = capture();
    emit_rec("reopened", &reopened);
    emit_autoseal("reopened-autoseal", &reopened);
    free(reopened.b);

    /* truncated: the suffix is cut and rewritten, leaving stale frames of an
     * older generation past the new end. */
    fresh_dir();
    s = open_store();
    append(s, 6, 1, 3);
    append(s, 5, 1, 4);
    truncate_to(s, 5);
    append(s, 2, 2, 5);
    close_store(s);
    s = open_store();
    truncate_to(s, 6);
    close_store(s);
    struct rec trunc = capture();
    emit_rec("truncated-stale", &trunc);
    emit_autoseal("truncated-stale-autoseal", &trunc);
    free(trunc.b);

    /* trimmed: the log starts at entry 4. */
    fresh_dir();
    s = open_store();
    append(s, 3, 1, 6);
    append(s, 4, 1, 7);
    trim_to(s, 4);
    close_store(s);
    struct rec trimmed = capture();
    emit_rec("trimmed", &trimmed);
    free(trimmed.b);

    /* many small entries: exercises the sparse index samples. */
    fresh_dir();
    {
        struct rl_store_config cfg = {.dir = tmpdir, .segment_size = FZ_SEGMENT_SIZE,
                                      .index_interval = 512};
        char err[512];
        if (rl_store_open(&loop, &cfg, &s, err, sizeof err) != 0) {
            fprintf(stderr, "gen_corpus: open: %s\n", err);
            exit(1);
        }
    }
    for (unsigned k = 0; k < 8; k++)
        append(s, 16, 1 + k / 3, k);
    close_store(s);
    struct rec many = capture();
    emit_rec("many-entries", &many);
    free(many.b);

    rm_contents(tmpdir);
    rmdir(tmpdir);
    uv_loop_close(&loop);
}

int main(int argc, char **argv)
{
    if (argc != 2 && argc != 3) {
        fprintf(stderr, "usage: %s OUTDIR [BUGDIR]\n", argv[0]);
        return 2;
    }
    outdir = argv[1];
    bugdir = argc == 3 ? argv[2] : NULL;
    gen_wire();
    gen_peer();
    gen_recovery();
    printf("gen_corpus: %u files, %zu bytes in %s\n", n_files, n_bytes, outdir);
    return 0;
}
