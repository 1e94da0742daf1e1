/*
 * tls — mutual TLS 1.3 over two memory BIOs per session (see tls.h).
 *
 * Each session's SSL reads the peer's ciphertext from `in` (filled by
 * rl_tls_feed) and writes its own into `out` (drained by
 * rl_tls_take_output). Both are plain memory BIOs that answer "retry" when
 * empty, so OpenSSL never blocks and never sees a socket: SSL_ERROR_WANT_READ
 * just means "feed more". Neither BIO is allowed to hold more than
 * max_buffered bytes: the checks sit where bytes enter them (feed, write) and
 * after every operation that may make OpenSSL queue output on its own
 * (handshake, read: alerts, KeyUpdate replies).
 *
 * Identity is checked in the certificate verification callback, at depth 0
 * once the chain itself verified: the leaf must carry exactly one
 * rlog://<cluster>/<id> URI. Failing there makes OpenSSL abort the handshake
 * with a certificate alert to the peer, and keeps "handshake done" and
 * "peer id known" the same thing.
 *
 * OpenSSL reports errors through a per-thread queue; every entry point
 * clears it before an SSL call (SSL_get_error needs that) and after reading
 * the reason out of it, so nothing leaks into an unrelated caller.
 */
#include "tls/tls.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "liblog.h"

#define URI_SCHEME "rlog://"
#define URI_SCHEME_LEN (sizeof URI_SCHEME - 1)
/* TLS 1.3 record: 5-byte header, 1 byte inner content type, 16-byte tag. */
#define RECORD_PLAIN_MAX 16384u
#define RECORD_OVERHEAD 22u

struct rl_tls_ctx {
    SSL_CTX *ssl;
    char *cluster; /* NULL: any */
    size_t max_buffered;
};

struct rl_tls_session {
    struct rl_tls_ctx *ctx;
    SSL *ssl;
    BIO *in;  /* peer's ciphertext, owned by ssl */
    BIO *out; /* ours, owned by ssl */
    bool server;
    bool done;     /* handshake finished, peer_id valid */
    bool have_id;  /* the verify callback accepted the leaf */
    bool shut;     /* close_notify queued */
    int err;       /* latched failure, 0 if none */
    uint64_t peer_id;
    char msg[320];
};

/* ---- messages ------------------------------------------------------------ */

static void fmt(char *buf, size_t len, const char *f, ...) __attribute__((format(printf, 3, 4)));
static void fmt(char *buf, size_t len, const char *f, ...)
{
    if (!buf || len == 0)
        return;
    va_list ap;
    va_start(ap, f);
    vsnprintf(buf, len, f, ap);
    va_end(ap);
}

/* One queue entry as "library: reason". */
static void one_reason(unsigned long e, char *buf, size_t len)
{
    if (ERR_SYSTEM_ERROR(e)) { /* the reason is an errno */
        fmt(buf, len, "%s", strerror(ERR_GET_REASON(e)));
        return;
    }
    const char *lib = ERR_lib_error_string(e);
    const char *why = ERR_reason_error_string(e);
    if (why)
        fmt(buf, len, "%s%s%s", lib ? lib : "", lib ? ": " : "", why);
    else
        fmt(buf, len, "OpenSSL error 0x%lx", e);
}

/* OpenSSL's reason for the last failure ("" if the queue is empty), then
 * clears the queue. The first entry is the cause ("No such file or
 * directory", "no start line"), the last what failed because of it ("PEM
 * lib"); both are given when they differ. */
static void ssl_reason(char *buf, size_t len)
{
    unsigned long first = ERR_peek_error(), last = ERR_peek_last_error();
    ERR_clear_error();
    if (first == 0) {
        fmt(buf, len, "%s", "");
        return;
    }
    char a[128], b[128];
    one_reason(first, a, sizeof a);
    one_reason(last, b, sizeof b);
    if (strcmp(a, b) == 0)
        fmt(buf, len, "%s", a);
    else
        fmt(buf, len, "%s (%s)", a, b);
}

/* Latches code (unless a failure is latched already) with a message, unless
 * one was set already (by the verify callback: the most precise one). */
static int fail(struct rl_tls_session *s, int code, const char *f, ...) __attribute__((format(printf, 3, 4)));
static int fail(struct rl_tls_session *s, int code, const char *f, ...)
{
    if (s->err)
        return s->err;
    s->err = code;
    s->done = false;
    if (s->msg[0] == '\0') {
        va_list ap;
        va_start(ap, f);
        vsnprintf(s->msg, sizeof s->msg, f, ap);
        va_end(ap);
    }
    ERR_clear_error();
    return code;
}

/* Latches RLOG_EPROTO for a failed SSL call, with OpenSSL's reason. */
static int fail_ssl(struct rl_tls_session *s, const char *what, int ssl_err)
{
    char why[300];
    ssl_reason(why, sizeof why);
    if (why[0] == '\0')
        fmt(why, sizeof why, "%s",
            ssl_err == SSL_ERROR_SYSCALL ? "unexpected end of stream" : "unknown failure");
    long v = SSL_get_verify_result(s->ssl);
    if (v != X509_V_OK && s->msg[0] == '\0')
        return fail(s, RLOG_EPROTO, "%s: %s (%s certificate: %s)", what, why,
                    s->server ? "client" : "server", X509_verify_cert_error_string(v));
    if (s->msg[0] != '\0')
        return fail(s, RLOG_EPROTO, "%s", "");
    return fail(s, RLOG_EPROTO, "%s: %s", what, why);
}

/* The output cap, checked after OpenSSL may have queued bytes on its own. */
static int check_out(struct rl_tls_session *s)
{
    size_t n = BIO_ctrl_pending(s->out);
    if (n > s->ctx->max_buffered)
        return fail(s, RLOG_ETOOBIG, "%zu bytes of output queued, over the cap of %zu (peer not reading?)",
                    n, s->ctx->max_buffered);
    return 0;
}

/* ---- identity ------------------------------------------------------------ */

static bool cluster_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '_' || c == '-';
}

int rl_tls_uri_id(const char *uri, size_t len, const char *cluster, uint64_t *id, char *err,
                  size_t errlen)
{
    if (len < URI_SCHEME_LEN || memcmp(uri, URI_SCHEME, URI_SCHEME_LEN) != 0) {
        fmt(err, errlen, "URI does not start with %s", URI_SCHEME);
        return RLOG_EPROTO;
    }
    const char *c = uri + URI_SCHEME_LEN;
    size_t rest = len - URI_SCHEME_LEN;
    const char *slash = memchr(c, '/', rest);
    if (!slash) {
        fmt(err, errlen, "URI has no /<id> after the cluster");
        return RLOG_EPROTO;
    }
    size_t clen = (size_t)(slash - c);
    if (clen == 0 || clen > 64) {
        fmt(err, errlen, "URI's cluster name is empty or over 64 bytes");
        return RLOG_EPROTO;
    }
    for (size_t i = 0; i < clen; i++)
        if (!cluster_char((unsigned char)c[i])) {
            fmt(err, errlen, "URI's cluster name has a byte outside [A-Za-z0-9._-]");
            return RLOG_EPROTO;
        }
    if (cluster && cluster[0] && (strlen(cluster) != clen || memcmp(cluster, c, clen) != 0)) {
        fmt(err, errlen, "URI names cluster \"%.*s\", not \"%s\"", (int)clen, c, cluster);
        return RLOG_EPROTO;
    }
    const char *d = slash + 1;
    size_t dlen = len - (size_t)(d - uri);
    if (dlen == 0 || dlen > 19 || d[0] == '0') {
        fmt(err, errlen, "URI's id is empty, over 19 digits or has a leading zero");
        return RLOG_EPROTO;
    }
    uint64_t v = 0;
    for (size_t i = 0; i < dlen; i++) {
        if (d[i] < '0' || d[i] > '9') {
            fmt(err, errlen, "URI's id is not a decimal number");
            return RLOG_EPROTO;
        }
        v = v * 10 + (uint64_t)(d[i] - '0'); /* 19 digits fit in u64 */
    }
    if (v > (uint64_t)INT64_MAX) {
        fmt(err, errlen, "URI's id is over 2^63-1");
        return RLOG_EPROTO;
    }
    *id = v;
    return 0;
}

/* The leaf's id into s, or a reason in s->msg. */
static bool leaf_id(struct rl_tls_session *s, X509 *cert)
{
    const char *who = s->server ? "client certificate" : "server certificate";
    int crit = 0;
    GENERAL_NAMES *names = X509_get_ext_d2i(cert, NID_subject_alt_name, &crit, NULL);
    if (!names) {
        fmt(s->msg, sizeof s->msg, "%s: %s", who,
            crit == -1 ? "no subjectAltName (want one rlog://<cluster>/<id> URI)"
                       : "bad or repeated subjectAltName extension");
        return false;
    }
    int found = 0, rc = 0;
    uint64_t id = 0;
    char why[160] = "";
    for (int i = 0; i < sk_GENERAL_NAME_num(names); i++) {
        const GENERAL_NAME *gn = sk_GENERAL_NAME_value(names, i);
        if (gn->type != GEN_URI)
            continue;
        const unsigned char *u = ASN1_STRING_get0_data(gn->d.uniformResourceIdentifier);
        int ulen = ASN1_STRING_length(gn->d.uniformResourceIdentifier);
        if (ulen < (int)URI_SCHEME_LEN || memcmp(u, URI_SCHEME, URI_SCHEME_LEN) != 0)
            continue;
        if (++found == 1)
            rc = rl_tls_uri_id((const char *)u, (size_t)ulen, s->ctx->cluster, &id, why,
                               sizeof why);
    }
    GENERAL_NAMES_free(names);
    if (found != 1) {
        fmt(s->msg, sizeof s->msg, "%s: %d %s URIs (want exactly one)", who, found, URI_SCHEME);
        return false;
    }
    if (rc != 0) {
        fmt(s->msg, sizeof s->msg, "%s: %s", who, why);
        return false;
    }
    s->peer_id = id;
    s->have_id = true;
    return true;
}

static int verify_cb(int ok, X509_STORE_CTX *x)
{
    SSL *ssl = X509_STORE_CTX_get_ex_data(x, SSL_get_ex_data_X509_STORE_CTX_idx());
    struct rl_tls_session *s = ssl ? SSL_get_app_data(ssl) : NULL;
    if (!s)
        return 0;
    int depth = X509_STORE_CTX_get_error_depth(x);
    if (!ok) {
        if (s->msg[0] == '\0')
            fmt(s->msg, sizeof s->msg, "%s certificate (chain depth %d): %s",
                s->server ? "client" : "server", depth,
                X509_verify_cert_error_string(X509_STORE_CTX_get_error(x)));
        return 0;
    }
    if (depth != 0)
        return 1;
    if (!leaf_id(s, X509_STORE_CTX_get_current_cert(x))) {
        X509_STORE_CTX_set_error(x, X509_V_ERR_APPLICATION_VERIFICATION);
        return 0;
    }
    return 1;
}

/* ---- context ------------------------------------------------------------- */

/* Keys must be unencrypted: without this OpenSSL would ask for a
 * passphrase on the terminal, blocking the caller. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    return -1;
}

/* "what FILE: OpenSSL's reason" into err; returns RLOG_EINVAL. */
static int file_err(char *err, size_t errlen, const char *what, const char *file)
{
    char why[300];
    ssl_reason(why, sizeof why);
    fmt(err, errlen, "%s %s: %s", what, file, why[0] ? why : "cannot load");
    return RLOG_EINVAL;
}

int rl_tls_ctx_new(const struct rl_tls_config *cfg, struct rl_tls_ctx **out, char *err,
                   size_t errlen)
{
    if (out)
        *out = NULL;
    if (!cfg || !out || !cfg->ca_file || !cfg->cert_file || !cfg->key_file) {
        fmt(err, errlen, "TLS needs ca_file, cert_file and key_file");
        return RLOG_EINVAL;
    }
    size_t max = cfg->max_buffered ? cfg->max_buffered : RL_TLS_DEFAULT_MAX_BUFFERED;
    if (max < RL_TLS_MIN_MAX_BUFFERED || max > (size_t)INT_MAX) {
        fmt(err, errlen, "max_buffered %zu out of range [%u, %d]", max, RL_TLS_MIN_MAX_BUFFERED,
            INT_MAX);
        return RLOG_EINVAL;
    }
    if (cfg->cluster && cfg->cluster[0]) {
        size_t n = strlen(cfg->cluster);
        bool okname = n <= 64;
        for (size_t i = 0; okname && i < n; i++)
            okname = cluster_char((unsigned char)cfg->cluster[i]);
        if (!okname) {
            fmt(err, errlen, "cluster name \"%s\": want 1 to 64 bytes of [A-Za-z0-9._-]",
                cfg->cluster);
            return RLOG_EINVAL;
        }
    }

    struct rl_tls_ctx *c = calloc(1, sizeof *c);
    if (!c)
        goto err_nomem;
    c->max_buffered = max;
    if (cfg->cluster && cfg->cluster[0] && !(c->cluster = strdup(cfg->cluster)))
        goto err_after_alloc;
    ERR_clear_error();
    c->ssl = SSL_CTX_new(TLS_method());
    if (!c->ssl)
        goto err_after_alloc;

    int rc = RLOG_EINVAL;
    if (!SSL_CTX_set_min_proto_version(c->ssl, TLS1_3_VERSION) ||
        !SSL_CTX_set_max_proto_version(c->ssl, TLS1_3_VERSION)) {
        char why[300];
        ssl_reason(why, sizeof why);
        fmt(err, errlen, "cannot restrict the context to TLS 1.3: %s", why);
        goto err_after_ctx;
    }
    /* Only our CA: no system store, no resumption (every connection proves
     * its identity afresh), no tickets queued after the handshake. */
    if (!SSL_CTX_load_verify_file(c->ssl, cfg->ca_file)) {
        rc = file_err(err, errlen, "ca_file", cfg->ca_file);
        goto err_after_ctx;
    }
    if (!SSL_CTX_use_certificate_chain_file(c->ssl, cfg->cert_file)) {
        rc = file_err(err, errlen, "cert_file", cfg->cert_file);
        goto err_after_ctx;
    }
    SSL_CTX_set_default_passwd_cb(c->ssl, no_passphrase);
    if (!SSL_CTX_use_PrivateKey_file(c->ssl, cfg->key_file, SSL_FILETYPE_PEM)) {
        rc = file_err(err, errlen, "key_file", cfg->key_file);
        goto err_after_ctx;
    }
    if (!SSL_CTX_check_private_key(c->ssl)) {
        char why[300];
        ssl_reason(why, sizeof why);
        fmt(err, errlen, "key_file %s does not match cert_file %s: %s", cfg->key_file,
            cfg->cert_file, why);
        goto err_after_ctx;
    }
    SSL_CTX_set_verify(c->ssl, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, verify_cb);
    SSL_CTX_set_verify_depth(c->ssl, 8);
    SSL_CTX_set_options(c->ssl, SSL_OP_NO_TICKET);
    SSL_CTX_set_session_cache_mode(c->ssl, SSL_SESS_CACHE_OFF);
    if (!SSL_CTX_set_num_tickets(c->ssl, 0) ||
        !SSL_CTX_set_session_id_context(c->ssl, (const unsigned char *)"liblog", 6)) {
        char why[300];
        ssl_reason(why, sizeof why);
        fmt(err, errlen, "cannot configure the TLS context: %s", why);
        goto err_after_ctx;
    }
    /* Send cert_file's chain as it is, not the CA from our trust store. */
    SSL_CTX_set_mode(c->ssl, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_NO_AUTO_CHAIN);
    ERR_clear_error();
    *out = c;
    return 0;

err_after_ctx:
    SSL_CTX_free(c->ssl);
    free(c->cluster);
    free(c);
    ERR_clear_error();
    return rc;
err_after_alloc:
    free(c->cluster);
    free(c);
err_nomem:
    ERR_clear_error();
    fmt(err, errlen, "out of memory");
    return RLOG_ENOMEM;
}

void rl_tls_ctx_free(struct rl_tls_ctx *ctx)
{
    if (!ctx)
        return;
    SSL_CTX_free(ctx->ssl);
    free(ctx->cluster);
    free(ctx);
}

/* ---- sessions ------------------------------------------------------------ */

/* One handshake step, if it is not done. */
static int drive(struct rl_tls_session *s)
{
    if (s->done)
        return 0;
    ERR_clear_error();
    int r = SSL_do_handshake(s->ssl);
    if (r == 1) {
        /* Belt and braces: the callback accepted a leaf and the chain held. */
        if (!s->have_id || !SSL_get0_peer_certificate(s->ssl) ||
            SSL_get_verify_result(s->ssl) != X509_V_OK)
            return fail(s, RLOG_EPROTO, "handshake finished without a verified peer id");
        s->done = true;
        return check_out(s);
    }
    int e = SSL_get_error(s->ssl, r);
    if (e == SSL_ERROR_WANT_READ) {
        ERR_clear_error();
        return check_out(s);
    }
    return fail_ssl(s, "handshake", e);
}

int rl_tls_session_new(struct rl_tls_ctx *ctx, bool is_server, struct rl_tls_session **out)
{
    if (out)
        *out = NULL;
    if (!ctx || !out)
        return RLOG_EINVAL;
    struct rl_tls_session *s = calloc(1, sizeof *s);
    if (!s)
        return RLOG_ENOMEM;
    s->ctx = ctx;
    s->server = is_server;
    ERR_clear_error();
    s->ssl = SSL_new(ctx->ssl);
    if (!s->ssl)
        goto err_after_alloc;
    s->in = BIO_new(BIO_s_mem());
    if (!s->in)
        goto err_after_ssl;
    s->out = BIO_new(BIO_s_mem());
    if (!s->out) {
        BIO_free(s->in);
        goto err_after_ssl;
    }
    /* Empty means "retry later", never end of stream. */
    BIO_set_mem_eof_return(s->in, -1);
    BIO_set_mem_eof_return(s->out, -1);
    SSL_set_bio(s->ssl, s->in, s->out); /* ssl owns both from here */
    SSL_set_app_data(s->ssl, s);
    if (is_server) {
        SSL_set_accept_state(s->ssl);
    } else {
        SSL_set_connect_state(s->ssl);
        if (drive(s) != 0) { /* queues the ClientHello */
            rl_tls_session_free(s);
            return RLOG_EPROTO;
        }
    }
    *out = s;
    return 0;

err_after_ssl:
    SSL_free(s->ssl);
err_after_alloc:
    free(s);
    ERR_clear_error();
    return RLOG_ENOMEM;
}

void rl_tls_session_free(struct rl_tls_session *s)
{
    if (!s)
        return;
    SSL_free(s->ssl);
    free(s);
}

int rl_tls_feed(struct rl_tls_session *s, const void *cipher, size_t len)
{
    if (!s || (!cipher && len))
        return RLOG_EINVAL;
    if (s->err)
        return s->err;
    size_t held = BIO_ctrl_pending(s->in);
    if (len > s->ctx->max_buffered - held)
        return fail(s, RLOG_ETOOBIG, "%zu bytes of input on %zu unread, over the cap of %zu", len,
                    held, s->ctx->max_buffered);
    if (len) {
        size_t w = 0;
        ERR_clear_error();
        if (!BIO_write_ex(s->in, cipher, len, &w) || w != len)
            return fail(s, RLOG_ENOMEM, "cannot buffer %zu bytes of input", len);
    }
    return drive(s);
}

int rl_tls_read(struct rl_tls_session *s, void *buf, size_t cap, size_t *got)
{
    if (got)
        *got = 0;
    if (!s || !got || (!buf && cap))
        return RLOG_EINVAL;
    if (s->err)
        return s->err;
    int rc = drive(s);
    if (rc != 0 || !s->done || cap == 0)
        return rc;
    ERR_clear_error();
    size_t n = 0;
    int r = SSL_read_ex(s->ssl, buf, cap, &n);
    if (r == 1) {
        *got = n;
        return check_out(s);
    }
    int e = SSL_get_error(s->ssl, r);
    if (e == SSL_ERROR_WANT_READ) {
        ERR_clear_error();
        return check_out(s);
    }
    if (e == SSL_ERROR_ZERO_RETURN)
        return fail(s, RLOG_ECLOSED, "peer closed the session");
    return fail_ssl(s, "read", e);
}

int rl_tls_write(struct rl_tls_session *s, const void *plain, size_t len)
{
    if (!s || (!plain && len))
        return RLOG_EINVAL;
    if (s->err)
        return s->err;
    if (!s->done)
        return RLOG_EINVAL;
    if (s->shut)
        return RLOG_ECLOSED;
    if (len == 0)
        return 0;
    size_t max = s->ctx->max_buffered, held = BIO_ctrl_pending(s->out);
    if (len > max)
        return RLOG_ETOOBIG;
    size_t need = len + (len / RECORD_PLAIN_MAX + 1) * RECORD_OVERHEAD;
    if (need > max - (held < max ? held : max))
        return RLOG_ETOOBIG;
    ERR_clear_error();
    size_t w = 0;
    int r = SSL_write_ex(s->ssl, plain, len, &w);
    if (r != 1 || w != len)
        return fail_ssl(s, "write", SSL_get_error(s->ssl, r));
    return 0;
}

size_t rl_tls_pending_output(const struct rl_tls_session *s)
{
    return s ? BIO_ctrl_pending(s->out) : 0;
}

int rl_tls_take_output(struct rl_tls_session *s, void *buf, size_t cap, size_t *got)
{
    if (got)
        *got = 0;
    if (!s || !got || (!buf && cap))
        return RLOG_EINVAL;
    if (cap == 0 || BIO_ctrl_pending(s->out) == 0)
        return 0;
    size_t n = 0;
    if (!BIO_read_ex(s->out, buf, cap, &n))
        n = 0;
    ERR_clear_error();
    *got = n;
    return 0;
}

int rl_tls_shutdown(struct rl_tls_session *s)
{
    if (!s)
        return RLOG_EINVAL;
    if (s->err)
        return s->err;
    if (s->shut || !s->done) {
        s->shut = true;
        return 0;
    }
    s->shut = true;
    ERR_clear_error();
    int r = SSL_shutdown(s->ssl);
    if (r < 0)
        return fail_ssl(s, "shutdown", SSL_get_error(s->ssl, r));
    ERR_clear_error();
    return 0;
}

bool rl_tls_handshake_done(const struct rl_tls_session *s)
{
    return s && s->done && !s->err;
}

int rl_tls_peer_id(const struct rl_tls_session *s, uint64_t *id)
{
    if (!s || !id || !s->done || s->err)
        return RLOG_EINVAL;
    *id = s->peer_id;
    return 0;
}

const char *rl_tls_errmsg(const struct rl_tls_session *s)
{
    return s ? s->msg : "";
}
