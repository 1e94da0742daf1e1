/* The TLS session layer (lib/tls): two sessions pumped through memory
 * complete a mutual TLS 1.3 handshake, learn each other's node id from the
 * certificates and carry data both ways; every refusal (unknown CA, no
 * client certificate, another cluster, no or two rlog:// URIs, garbage,
 * TLS 1.2) fails cleanly with RLOG_EPROTO and a reason, and the buffering
 * caps hold. Certificates are made at suite setup with examples/mkcerts.sh
 * (the tests run from the source tree, as `make check` does), so none
 * expires. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "liblog.h"
#include "tls/tls.h"

static char dir[256]; /* the suite's certificates */

static void run(const char *cmd)
{
    int rc = system(cmd);
    if (rc != 0) {
        fprintf(stderr, "test_tls: setup command failed (%d): %s\n", rc, cmd);
        exit(1);
    }
}

/* A leaf for CA a/ with the given subjectAltName, made with the openssl CLI
 * (mkcerts.sh only makes valid ones). */
static void odd_cert(const char *name, const char *san)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "cd %s && openssl genpkey -algorithm ed25519 -out %s.key 2>/dev/null && "
             "openssl req -new -key %s.key -subj /CN=%s -out %s.csr 2>/dev/null && "
             "printf 'basicConstraints=CA:FALSE\\n%s\\n' > %s.ext && "
             "openssl x509 -req -in %s.csr -CA a/ca.crt -CAkey a/ca.key -set_serial 0x%x "
             "-days 30 -extfile %s.ext -out %s.crt 2>/dev/null",
             dir, name, name, name, name, san, name, name, (unsigned)(name[0] * 977 + name[1]),
             name, name);
    run(cmd);
}

static void suite_setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/liblog-test-tls.XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        exit(1);
    }
    if (access("examples/mkcerts.sh", X_OK) != 0) {
        fprintf(stderr, "test_tls: run from the source tree (examples/mkcerts.sh)\n");
        exit(1);
    }
    char cmd[4096];
    /* a/: the cluster's CA; b/: an unrelated CA; c/: CA a, cluster c2. */
    snprintf(cmd, sizeof cmd,
             "examples/mkcerts.sh %s/a c1 1 2 3 && examples/mkcerts.sh %s/b c1 1 2 && "
             "mkdir -m 700 %s/c && cp %s/a/ca.crt %s/a/ca.key %s/c/ && "
             "examples/mkcerts.sh %s/c c2 7",
             dir, dir, dir, dir, dir, dir, dir);
    run(cmd);
    odd_cert("nouri", "subjectAltName=IP:127.0.0.1");
    odd_cert("nosan", "keyUsage=digitalSignature");
    odd_cert("twouri", "subjectAltName=URI:rlog://c1/4,URI:rlog://c1/5");
    odd_cert("otheruri", "subjectAltName=URI:spiffe://c1/x,URI:rlog://c1/6");
    odd_cert("badid", "subjectAltName=URI:rlog://c1/007");
    snprintf(cmd, sizeof cmd,
             "openssl genpkey -algorithm ed25519 -aes-128-cbc -pass pass:x -out %s/enc.key", dir);
    run(cmd);
}

static void suite_teardown(void)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (dir[0] && system(cmd) != 0)
        fprintf(stderr, "test_tls: could not remove %s\n", dir);
}

/* A context trusting CA `ca` (a/ or b/) with certificate `cert` (a path
 * under dir without .crt/.key, e.g. "a/node-1"). */
static struct rl_tls_ctx *ctx_max(const char *ca, const char *cert, const char *cluster,
                                  size_t max)
{
    char caf[512], crt[512], key[512], err[256] = "";
    snprintf(caf, sizeof caf, "%s/%s/ca.crt", dir, ca);
    snprintf(crt, sizeof crt, "%s/%s.crt", dir, cert);
    snprintf(key, sizeof key, "%s/%s.key", dir, cert);
    struct rl_tls_config cfg = {caf, crt, key, cluster, max};
    struct rl_tls_ctx *c = NULL;
    int rc = rl_tls_ctx_new(&cfg, &c, err, sizeof err);
    ck_assert_msg(rc == 0, "ctx %s %s: %s: %s", ca, cert, rlog_errname(rc), err);
    return c;
}

static struct rl_tls_ctx *ctx(const char *ca, const char *cert, const char *cluster)
{
    return ctx_max(ca, cert, cluster, 0);
}

/* One side of a pumped connection: its session, its first error, and the
 * plaintext it received. */
struct end {
    struct rl_tls_session *s;
    int rc;
    unsigned char *got;
    size_t n, cap;
};

static void end_init(struct end *e, struct rl_tls_ctx *c, bool server)
{
    memset(e, 0, sizeof *e);
    ck_assert_int_eq(rl_tls_session_new(c, server, &e->s), 0);
}

static void end_free(struct end *e)
{
    rl_tls_session_free(e->s);
    free(e->got);
}

/* Reads all the plaintext e has. */
static void drain(struct end *e)
{
    while (e->rc == 0) {
        if (e->cap - e->n < 16384) {
            e->cap = e->cap ? e->cap * 2 : 65536;
            e->got = realloc(e->got, e->cap);
            ck_assert_ptr_nonnull(e->got);
        }
        size_t got = 0;
        e->rc = rl_tls_read(e->s, e->got + e->n, e->cap - e->n, &got);
        if (got == 0)
            break;
        e->n += got;
    }
}

/* Moves from's output to `to` in chunks, reading after each as a transport
 * does; true if anything moved. */
static bool move(struct end *from, struct end *to)
{
    unsigned char buf[8192];
    size_t n = 0;
    bool moved = false;
    while (rl_tls_take_output(from->s, buf, sizeof buf, &n) == 0 && n > 0) {
        moved = true;
        if (to->rc == 0)
            to->rc = rl_tls_feed(to->s, buf, n);
        drain(to);
    }
    drain(to);
    return moved;
}

static void pump(struct end *a, struct end *b)
{
    for (int i = 0; i < 100000; i++)
        if (!move(a, b) && !move(b, a))
            return;
    ck_abort_msg("pump does not settle");
}

/* client (a) to server (b) on two fresh contexts; both ends' ids checked */
static void connect_ok(struct rl_tls_ctx *cc, struct rl_tls_ctx *sc, struct end *cl,
                       struct end *sv, uint64_t cid, uint64_t sid)
{
    end_init(cl, cc, false);
    end_init(sv, sc, true);
    ck_assert(rl_tls_pending_output(cl->s) > 0); /* the ClientHello */
    ck_assert(!rl_tls_handshake_done(cl->s));
    pump(cl, sv);
    ck_assert_msg(cl->rc == 0, "client: %s: %s", rlog_errname(cl->rc), rl_tls_errmsg(cl->s));
    ck_assert_msg(sv->rc == 0, "server: %s: %s", rlog_errname(sv->rc), rl_tls_errmsg(sv->s));
    ck_assert(rl_tls_handshake_done(cl->s));
    ck_assert(rl_tls_handshake_done(sv->s));
    uint64_t id = 0;
    ck_assert_int_eq(rl_tls_peer_id(sv->s, &id), 0);
    ck_assert_uint_eq(id, cid);
    ck_assert_int_eq(rl_tls_peer_id(cl->s, &id), 0);
    ck_assert_uint_eq(id, sid);
    ck_assert_str_eq(rl_tls_errmsg(cl->s), "");
}

/* Expects the handshake of client cert cc against server sc to fail on the
 * side `refuser` ("client" or "server") with a message containing `why`,
 * and the other side to fail too (from the alert). */
static void refused(struct rl_tls_ctx *cc, struct rl_tls_ctx *sc, const char *refuser,
                    const char *why)
{
    struct end cl, sv;
    end_init(&cl, cc, false);
    end_init(&sv, sc, true);
    pump(&cl, &sv);
    struct end *r = strcmp(refuser, "server") == 0 ? &sv : &cl;
    struct end *o = r == &sv ? &cl : &sv;
    if (getenv("TEST_TLS_VERBOSE"))
        fprintf(stderr, "refused by the %s: %s | other side: %s\n", refuser,
                rl_tls_errmsg(r->s), rl_tls_errmsg(o->s));
    ck_assert_msg(r->rc == RLOG_EPROTO, "%s: %s (%s)", refuser, rlog_errname(r->rc),
                  rl_tls_errmsg(r->s));
    ck_assert_msg(strstr(rl_tls_errmsg(r->s), why), "%s says \"%s\", want \"%s\"", refuser,
                  rl_tls_errmsg(r->s), why);
    ck_assert_msg(o->rc == RLOG_EPROTO, "other side: %s", rlog_errname(o->rc));
    ck_assert(!rl_tls_handshake_done(r->s));
    ck_assert(!rl_tls_handshake_done(o->s));
    uint64_t id;
    ck_assert_int_eq(rl_tls_peer_id(r->s, &id), RLOG_EINVAL);
    ck_assert_int_eq(rl_tls_write(o->s, "x", 1), RLOG_EPROTO); /* latched */
    ck_assert_uint_eq(ERR_peek_error(), 0);                    /* queue left empty */
    end_free(&cl);
    end_free(&sv);
}

/* ---- handshake and data -------------------------------------------------- */

START_TEST(test_handshake_ids)
{
    struct rl_tls_ctx *sc = ctx("a", "a/node-1", "c1"), *cc = ctx("a", "a/node-2", "c1");
    struct end cl, sv;
    connect_ok(cc, sc, &cl, &sv, 2, 1);
    end_free(&cl);
    end_free(&sv);
    /* No cluster configured: any cluster's id is taken (c2's node 7). */
    struct rl_tls_ctx *any = ctx("a", "a/node-3", NULL), *c7 = ctx("a", "c/node-7", NULL);
    connect_ok(c7, any, &cl, &sv, 7, 3);
    end_free(&cl);
    end_free(&sv);
    rl_tls_ctx_free(any);
    rl_tls_ctx_free(c7);
    rl_tls_ctx_free(sc);
    rl_tls_ctx_free(cc);
}
END_TEST

static void fill(unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)((i * 2654435761u + seed) >> 13);
}

/* Writes n bytes from one end to the other in chunks of `chunk`, pumping
 * whenever the output cap says so. */
static void send_all(struct end *from, struct end *to, const unsigned char *p, size_t n,
                     size_t chunk)
{
    size_t off = 0;
    while (off < n) {
        size_t k = n - off < chunk ? n - off : chunk;
        int rc = rl_tls_write(from->s, p + off, k);
        if (rc == RLOG_ETOOBIG) {
            ck_assert(move(from, to));
            continue;
        }
        ck_assert_int_eq(rc, 0);
        off += k;
    }
    pump(from, to);
}

START_TEST(test_data_both_ways)
{
    struct rl_tls_ctx *sc = ctx("a", "a/node-1", "c1"), *cc = ctx("a", "a/node-2", "c1");
    struct end cl, sv;
    connect_ok(cc, sc, &cl, &sv, 2, 1);

    ck_assert_int_eq(rl_tls_write(cl.s, "hello", 5), 0);
    ck_assert_int_eq(rl_tls_write(sv.s, "world!", 6), 0);
    ck_assert_int_eq(rl_tls_write(cl.s, "", 0), 0);
    pump(&cl, &sv);
    ck_assert_uint_eq(sv.n, 5);
    ck_assert_mem_eq(sv.got, "hello", 5);
    ck_assert_uint_eq(cl.n, 6);
    ck_assert_mem_eq(cl.got, "world!", 6);

    size_t big = 1u << 20;
    unsigned char *p = malloc(big), *q = malloc(big);
    fill(p, big, 1);
    fill(q, big, 2);
    sv.n = cl.n = 0;
    send_all(&cl, &sv, p, big, 65536);
    send_all(&sv, &cl, q, big, 100000); /* chunks that straddle records */
    ck_assert_int_eq(cl.rc, 0);
    ck_assert_int_eq(sv.rc, 0);
    ck_assert_uint_eq(sv.n, big);
    ck_assert_uint_eq(cl.n, big);
    ck_assert(memcmp(sv.got, p, big) == 0);
    ck_assert(memcmp(cl.got, q, big) == 0);

    /* One byte at a time on the wire still works. */
    sv.n = 0;
    ck_assert_int_eq(rl_tls_write(cl.s, "bytewise", 8), 0);
    unsigned char b;
    size_t got;
    while (rl_tls_take_output(cl.s, &b, 1, &got) == 0 && got == 1) {
        ck_assert_int_eq(rl_tls_feed(sv.s, &b, 1), 0);
        drain(&sv);
    }
    ck_assert_uint_eq(sv.n, 8);
    ck_assert_mem_eq(sv.got, "bytewise", 8);

    /* A clean close: the peer reads RLOG_ECLOSED, writes after it fail. */
    ck_assert_int_eq(rl_tls_shutdown(cl.s), 0);
    ck_assert_int_eq(rl_tls_write(cl.s, "x", 1), RLOG_ECLOSED);
    pump(&cl, &sv);
    ck_assert_int_eq(sv.rc, RLOG_ECLOSED);
    ck_assert_str_eq(rl_tls_errmsg(sv.s), "peer closed the session");
    free(p);
    free(q);
    end_free(&cl);
    end_free(&sv);
    rl_tls_ctx_free(sc);
    rl_tls_ctx_free(cc);
}
END_TEST

START_TEST(test_misuse)
{
    struct rl_tls_ctx *sc = ctx("a", "a/node-1", "c1");
    struct rl_tls_session *s = NULL;
    ck_assert_int_eq(rl_tls_session_new(NULL, true, &s), RLOG_EINVAL);
    ck_assert_ptr_null(s);
    ck_assert_int_eq(rl_tls_session_new(sc, true, &s), 0);
    uint64_t id;
    size_t got;
    char buf[16];
    ck_assert_int_eq(rl_tls_peer_id(s, &id), RLOG_EINVAL);
    ck_assert_int_eq(rl_tls_write(s, "x", 1), RLOG_EINVAL); /* before the handshake */
    ck_assert_int_eq(rl_tls_feed(s, NULL, 3), RLOG_EINVAL);
    ck_assert_int_eq(rl_tls_read(s, buf, sizeof buf, &got), 0);
    ck_assert_uint_eq(got, 0); /* want more input */
    ck_assert_uint_eq(rl_tls_pending_output(s), 0);
    ck_assert_int_eq(rl_tls_take_output(s, buf, sizeof buf, &got), 0);
    ck_assert_uint_eq(got, 0);
    ck_assert_int_eq(rl_tls_shutdown(s), 0);
    rl_tls_session_free(s);
    rl_tls_session_free(NULL);
    rl_tls_ctx_free(NULL);
    rl_tls_ctx_free(sc);
}
END_TEST

/* ---- caps ---------------------------------------------------------------- */

START_TEST(test_output_cap)
{
    size_t max = 64 * 1024;
    struct rl_tls_ctx *sc = ctx_max("a", "a/node-1", "c1", max),
                      *cc = ctx_max("a", "a/node-2", "c1", max);
    struct end cl, sv;
    connect_ok(cc, sc, &cl, &sv, 2, 1);
    unsigned char *p = calloc(1, max + 1);
    ck_assert_int_eq(rl_tls_write(cl.s, p, max + 1), RLOG_ETOOBIG);
    int n = 0;
    while (rl_tls_write(cl.s, p, 10000) == 0)
        n++;
    ck_assert_int_eq(n, 6);
    ck_assert_uint_le(rl_tls_pending_output(cl.s), max);
    ck_assert_int_eq(rl_tls_write(cl.s, p, 10000), RLOG_ETOOBIG); /* not latched: */
    pump(&cl, &sv);
    ck_assert_uint_eq(sv.n, 60000);
    ck_assert_int_eq(rl_tls_write(cl.s, p, 10000), 0);
    pump(&cl, &sv);
    ck_assert_uint_eq(sv.n, 70000);
    free(p);
    end_free(&cl);
    end_free(&sv);
    rl_tls_ctx_free(sc);
    rl_tls_ctx_free(cc);
}
END_TEST

START_TEST(test_input_cap)
{
    struct rl_tls_ctx *sc = ctx("a", "a/node-1", "c1"), *cc = ctx("a", "a/node-2", "c1");
    struct end cl, sv;
    connect_ok(cc, sc, &cl, &sv, 2, 1);
    /* 400 KiB of valid records, fed without reading: refused at the cap. */
    size_t want = 400 * 1024, have = 0;
    unsigned char *wire = malloc(want + 65536), chunk[32768] = {0};
    while (have < want) {
        ck_assert_int_eq(rl_tls_write(cl.s, chunk, sizeof chunk), 0);
        size_t got;
        ck_assert_int_eq(rl_tls_take_output(cl.s, wire + have, 65536, &got), 0);
        have += got;
    }
    size_t fed = 0, k = 65536;
    int rc = 0;
    while (fed < have && (rc = rl_tls_feed(sv.s, wire + fed, k)) == 0)
        fed += k;
    ck_assert_int_eq(rc, RLOG_ETOOBIG);
    ck_assert_uint_eq(fed, 4 * k); /* 256 KiB held, the next 64 KiB refused */
    ck_assert_msg(strstr(rl_tls_errmsg(sv.s), "over the cap"), "%s", rl_tls_errmsg(sv.s));
    char buf[64];
    size_t got;
    ck_assert_int_eq(rl_tls_read(sv.s, buf, sizeof buf, &got), RLOG_ETOOBIG); /* latched */
    free(wire);
    end_free(&cl);
    end_free(&sv);
    rl_tls_ctx_free(sc);
    rl_tls_ctx_free(cc);
}
END_TEST

/* ---- refusals ------------------------------------------------------------ */

START_TEST(test_server_other_ca)
{
    struct rl_tls_ctx *cc = ctx("a", "a/node-2", "c1"), *sc = ctx("a", "b/node-1", "c1");
    refused(cc, sc, "client", "server certificate (chain depth 0): unable to get local issuer");
    rl_tls_ctx_free(cc);
    rl_tls_ctx_free(sc);
}
END_TEST

START_TEST(test_client_other_ca)
{
    /* TLS 1.3: the client finishes first; the server's alert fails it. */
    struct rl_tls_ctx *cc = ctx("a", "b/node-2", "c1"), *sc = ctx("a", "a/node-1", "c1");
    refused(cc, sc, "server", "client certificate (chain depth 0): unable to get local issuer");
    rl_tls_ctx_free(cc);
    rl_tls_ctx_free(sc);
}
END_TEST

START_TEST(test_other_cluster)
{
    /* node 7 of cluster c2 (same CA) checks no cluster itself */
    struct rl_tls_ctx *cc = ctx("a", "c/node-7", NULL), *sc = ctx("a", "a/node-1", "c1");
    refused(cc, sc, "server", "client certificate: URI names cluster \"c2\", not \"c1\"");
    /* and the other way round: the client refuses the server */
    refused(sc, cc, "client", "server certificate: URI names cluster \"c2\", not \"c1\"");
    rl_tls_ctx_free(cc);
    rl_tls_ctx_free(sc);
}
END_TEST

START_TEST(test_bad_uris)
{
    struct rl_tls_ctx *sc = ctx("a", "a/node-1", "c1");
    static const struct {
        const char *cert, *why;
    } cases[] = {
        {"nouri", "client certificate: 0 rlog:// URIs (want exactly one)"},
        {"nosan", "client certificate: no subjectAltName"},
        {"twouri", "client certificate: 2 rlog:// URIs (want exactly one)"},
        {"badid", "client certificate: URI's id is empty, over 19 digits or has a leading zero"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct rl_tls_ctx *cc = ctx("a", cases[i].cert, "c1");
        refused(cc, sc, "server", cases[i].why);
        refused(sc, cc, "client", cases[i].why + strlen("client ")); /* "certificate: ..." */
        rl_tls_ctx_free(cc);
    }
    /* A URI of another scheme beside the one rlog:// URI is ignored. */
    struct rl_tls_ctx *cc = ctx("a", "otheruri", "c1");
    struct end cl, sv;
    connect_ok(cc, sc, &cl, &sv, 6, 1);
    end_free(&cl);
    end_free(&sv);
    rl_tls_ctx_free(cc);
    rl_tls_ctx_free(sc);
}
END_TEST

START_TEST(test_garbage)
{
    struct rl_tls_ctx *sc = ctx("a", "a/node-1", "c1"), *cc = ctx("a", "a/node-2", "c1");
    /* Plain text to a server. */
    struct rl_tls_session *s;
    ck_assert_int_eq(rl_tls_session_new(sc, true, &s), 0);
    const char *http = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    ck_assert_int_eq(rl_tls_feed(s, http, strlen(http)), RLOG_EPROTO);
    ck_assert_msg(rl_tls_errmsg(s)[0] != '\0', "no reason");
    ck_assert_int_eq(rl_tls_feed(s, http, 1), RLOG_EPROTO); /* latched */
    rl_tls_session_free(s);
    /* Pseudo-random bytes, several seeds, in pieces: an error or a wait for
     * more, never a crash, never a finished handshake. */
    for (unsigned seed = 1; seed <= 50; seed++) {
        unsigned char junk[4096];
        fill(junk, sizeof junk, seed * 7919);
        if (seed % 2)
            junk[0] = 0x16, junk[1] = 3, junk[2] = 1; /* looks like a handshake record */
        ck_assert_int_eq(rl_tls_session_new(sc, true, &s), 0);
        int rc = 0;
        for (size_t off = 0; off < sizeof junk && rc == 0; off += 512)
            rc = rl_tls_feed(s, junk + off, 512);
        ck_assert(rc == 0 || rc == RLOG_EPROTO);
        ck_assert(!rl_tls_handshake_done(s));
        rl_tls_session_free(s);
    }
    /* Garbage after a good handshake, to a client reading records. */
    struct end cl, sv;
    connect_ok(cc, sc, &cl, &sv, 2, 1);
    unsigned char junk[100];
    fill(junk, sizeof junk, 3);
    junk[0] = 0x17, junk[1] = 3, junk[2] = 3, junk[3] = 0, junk[4] = 95;
    ck_assert_int_eq(rl_tls_feed(cl.s, junk, sizeof junk), 0);
    char buf[256];
    size_t got;
    ck_assert_int_eq(rl_tls_read(cl.s, buf, sizeof buf, &got), RLOG_EPROTO);
    ck_assert_uint_eq(got, 0);
    ck_assert_msg(strstr(rl_tls_errmsg(cl.s), "read: "), "%s", rl_tls_errmsg(cl.s));
    ck_assert(rl_tls_pending_output(cl.s) > 0); /* the alert, still sendable */
    end_free(&cl);
    end_free(&sv);
    rl_tls_ctx_free(sc);
    rl_tls_ctx_free(cc);
}
END_TEST

/* A raw OpenSSL client (no certificate, or TLS 1.2 only) against our
 * server; returns the server session's result. */
static int raw_client(struct rl_tls_ctx *sc, bool with_cert, int max_version,
                      char *why, size_t whylen)
{
    char caf[512], crt[512], key[512];
    snprintf(caf, sizeof caf, "%s/a/ca.crt", dir);
    snprintf(crt, sizeof crt, "%s/a/node-2.crt", dir);
    snprintf(key, sizeof key, "%s/a/node-2.key", dir);
    SSL_CTX *rc = SSL_CTX_new(TLS_client_method());
    ck_assert_ptr_nonnull(rc);
    ck_assert_int_eq(SSL_CTX_load_verify_file(rc, caf), 1);
    SSL_CTX_set_verify(rc, SSL_VERIFY_PEER, NULL);
    if (max_version)
        ck_assert_int_eq(SSL_CTX_set_max_proto_version(rc, max_version), 1);
    if (with_cert) {
        ck_assert_int_eq(SSL_CTX_use_certificate_file(rc, crt, SSL_FILETYPE_PEM), 1);
        ck_assert_int_eq(SSL_CTX_use_PrivateKey_file(rc, key, SSL_FILETYPE_PEM), 1);
    }
    SSL *c = SSL_new(rc);
    BIO *in = BIO_new(BIO_s_mem()), *out = BIO_new(BIO_s_mem());
    BIO_set_mem_eof_return(in, -1);
    BIO_set_mem_eof_return(out, -1);
    SSL_set_bio(c, in, out);
    SSL_set_connect_state(c);
    struct rl_tls_session *s;
    ck_assert_int_eq(rl_tls_session_new(sc, true, &s), 0);
    int src = 0;
    unsigned char buf[8192];
    for (int i = 0; i < 50; i++) {
        int r = SSL_do_handshake(c);
        if (r == 1) { /* TLS 1.3: done before the server's verdict; read it */
            char tmp[16];
            size_t n;
            SSL_read_ex(c, tmp, sizeof tmp, &n);
        }
        size_t n;
        bool moved = false;
        while (BIO_read_ex(out, buf, sizeof buf, &n) && n > 0) {
            moved = true;
            if (src == 0)
                src = rl_tls_feed(s, buf, n);
        }
        while (rl_tls_take_output(s, buf, sizeof buf, &n) == 0 && n > 0) {
            moved = true;
            BIO_write_ex(in, buf, n, &n);
        }
        if (!moved)
            break;
    }
    ERR_clear_error();
    snprintf(why, whylen, "%s", rl_tls_errmsg(s));
    if (getenv("TEST_TLS_VERBOSE"))
        fprintf(stderr, "raw client: server says: %s\n", why);
    rl_tls_session_free(s);
    SSL_free(c);
    SSL_CTX_free(rc);
    return src;
}

START_TEST(test_client_without_cert)
{
    struct rl_tls_ctx *sc = ctx("a", "a/node-1", "c1");
    char why[256];
    /* control: the same raw client with its certificate gets through */
    ck_assert_int_eq(raw_client(sc, true, 0, why, sizeof why), 0);
    ck_assert_int_eq(raw_client(sc, false, 0, why, sizeof why), RLOG_EPROTO);
    ck_assert_msg(strstr(why, "certificate"), "%s", why);
    rl_tls_ctx_free(sc);
}
END_TEST

START_TEST(test_tls12_client)
{
    struct rl_tls_ctx *sc = ctx("a", "a/node-1", "c1");
    char why[256];
    ck_assert_int_eq(raw_client(sc, true, TLS1_2_VERSION, why, sizeof why), RLOG_EPROTO);
    ck_assert_msg(strstr(why, "protocol"), "%s", why);
    rl_tls_ctx_free(sc);
}
END_TEST

/* ---- configuration and the URI parser ------------------------------------ */

/* rl_tls_ctx_new(cfg) fails with RLOG_EINVAL and a message containing want
 * (and, if want2 is not NULL, want2). */
static void ctx_refused(const struct rl_tls_config *cfg, const char *want, const char *want2)
{
    char err[256] = "";
    struct rl_tls_ctx *c = (struct rl_tls_ctx *)1;
    ck_assert_int_eq(rl_tls_ctx_new(cfg, &c, err, sizeof err), RLOG_EINVAL);
    ck_assert_ptr_null(c);
    if (getenv("TEST_TLS_VERBOSE"))
        fprintf(stderr, "ctx refused: %s\n", err);
    ck_assert_msg(strstr(err, want) && (!want2 || strstr(err, want2)), "%s", err);
    ck_assert_uint_eq(ERR_peek_error(), 0);
}

START_TEST(test_ctx_errors)
{
    char caf[512], crt1[512], key1[512], key2[512];
    snprintf(caf, sizeof caf, "%s/a/ca.crt", dir);
    snprintf(crt1, sizeof crt1, "%s/a/node-1.crt", dir);
    snprintf(key1, sizeof key1, "%s/a/node-1.key", dir);
    snprintf(key2, sizeof key2, "%s/a/node-2.key", dir);
    struct rl_tls_ctx *c = NULL;
    struct rl_tls_config cfg = {caf, crt1, key1, "c1", 0};

    struct rl_tls_config bad = cfg;
    bad.ca_file = NULL;
    ctx_refused(&bad, "ca_file, cert_file and key_file", NULL);

    bad = cfg;
    bad.ca_file = "/nonexistent/ca.crt";
    ctx_refused(&bad, "ca_file /nonexistent/ca.crt: ", NULL);

    bad = cfg;
    bad.cert_file = key1; /* not a certificate */
    ctx_refused(&bad, "cert_file ", NULL);

    bad = cfg;
    bad.key_file = "/nonexistent/k.key";
    ctx_refused(&bad, "key_file /nonexistent/k.key: ", NULL);

    char enc[512];
    snprintf(enc, sizeof enc, "%s/enc.key", dir);
    bad = cfg;
    bad.key_file = enc; /* encrypted: refused, no prompt */
    ctx_refused(&bad, "key_file ", NULL);

    bad = cfg;
    bad.key_file = key2; /* another node's key */
    ctx_refused(&bad, "key_file ", "mismatch");

    bad = cfg;
    bad.cluster = "a/b";
    ctx_refused(&bad, "cluster name", NULL);

    bad = cfg;
    bad.max_buffered = 1000;
    ctx_refused(&bad, "max_buffered", NULL);

    ck_assert_int_eq(rl_tls_ctx_new(&cfg, &c, NULL, 0), 0);
    ck_assert_uint_eq(ERR_peek_error(), 0);
    rl_tls_ctx_free(c);
}
END_TEST

START_TEST(test_uri_parser)
{
    static const struct {
        const char *uri, *cluster;
        uint64_t id; /* 0: refused */
    } cases[] = {
        {"rlog://c1/1", "c1", 1},
        {"rlog://c1/9223372036854775807", "c1", 9223372036854775807ull},
        {"rlog://c1/9223372036854775808", "c1", 0},
        {"rlog://c1/99999999999999999999", "c1", 0},
        {"rlog://c1/0", "c1", 0},
        {"rlog://c1/01", "c1", 0},
        {"rlog://c1/-1", "c1", 0},
        {"rlog://c1/+1", "c1", 0},
        {"rlog://c1/1/", "c1", 0},
        {"rlog://c1/1x", "c1", 0},
        {"rlog://c1/", "c1", 0},
        {"rlog://c1", "c1", 0},
        {"rlog:///1", NULL, 0},
        {"rlog://c2/1", "c1", 0},
        {"rlog://c2/5", NULL, 5},
        {"rlog://c2/5", "", 5},
        {"rlog://c1x/5", "c1", 0},
        {"rlog://c/5", "c1", 0},
        {"rlog://c 1/5", NULL, 0},
        {"rlog://a.b_c-D9/42", "a.b_c-D9", 42},
        {"RLOG://c1/1", "c1", 0},
        {"https://c1/1", "c1", 0},
        {"", NULL, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint64_t id = 0;
        char err[160] = "";
        int rc = rl_tls_uri_id(cases[i].uri, strlen(cases[i].uri), cases[i].cluster, &id, err,
                               sizeof err);
        if (cases[i].id) {
            ck_assert_msg(rc == 0, "%s: %s", cases[i].uri, err);
            ck_assert_uint_eq(id, cases[i].id);
        } else {
            ck_assert_msg(rc == RLOG_EPROTO, "%s accepted", cases[i].uri);
            ck_assert_msg(err[0] != '\0', "%s: no reason", cases[i].uri);
        }
    }
    /* An embedded NUL is just a bad byte (the length is what counts). */
    uint64_t id;
    ck_assert_int_eq(rl_tls_uri_id("rlog://c1/1\0", 12, "c1", &id, NULL, 0), RLOG_EPROTO);
    ck_assert_int_eq(rl_tls_uri_id("rlog://c\0/1", 11, NULL, &id, NULL, 0), RLOG_EPROTO);
}
END_TEST

static Suite *tls_suite(void)
{
    Suite *s = suite_create("tls");
    TCase *tc = tcase_create("tls");
    tcase_add_unchecked_fixture(tc, suite_setup, suite_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_handshake_ids);
    tcase_add_test(tc, test_data_both_ways);
    tcase_add_test(tc, test_misuse);
    tcase_add_test(tc, test_output_cap);
    tcase_add_test(tc, test_input_cap);
    tcase_add_test(tc, test_server_other_ca);
    tcase_add_test(tc, test_client_other_ca);
    tcase_add_test(tc, test_other_cluster);
    tcase_add_test(tc, test_bad_uris);
    tcase_add_test(tc, test_garbage);
    tcase_add_test(tc, test_client_without_cert);
    tcase_add_test(tc, test_tls12_client);
    tcase_add_test(tc, test_ctx_errors);
    tcase_add_test(tc, test_uri_parser);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(tls_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
