/*
 * conn — plain or TLS bytes over a libuv stream (see conn.h).
 *
 * Reading: libuv hands each read a per-thread buffer; plain bytes go
 * straight to the owner, TLS bytes are fed to the session and the plaintext
 * it yields is handed on in chunks from a second per-thread buffer. Nothing
 * read stays here between reads (the TLS session keeps at most a partial
 * record), so thousands of idle connections cost no read buffers.
 *
 * Writing: plain iovecs go to uv_write as they are (the owner keeps them
 * alive until its callback); TLS plaintext is encrypted at once, record by
 * record, into one heap buffer per write, which goes to uv_write. Either
 * way the bytes waiting for the socket are counted.
 *
 * Closing: both handles (stream, deadline timer) are closed; libuv calls
 * pending writes back with UV_ECANCELED before the stream's close callback,
 * and the memory goes when the last handle is closed.
 */
#include "net/conn.h"
#include "net/deadline.h"

#include <stdlib.h>
#include <string.h>

#include "liblog.h"
#include "tls/tls.h"

#define READ_BUF (64 * 1024)
#define TLS_CHUNK (16 * 1024) /* one TLS record of plaintext */

struct rl_conn {
    const struct rl_conn_vops *vops; /* a virtual connection's, else NULL */
    void *impl;
    uv_stream_t *stream;
    struct rl_deadline deadline;
    struct rl_tls_session *tls;
    struct rl_conn_cbs cbs;
    bool started, ready, closing;
    int open_handles;
    size_t queued;
};

struct wreq {
    uv_write_t w;
    struct rl_conn *c;
    void (*cb)(void *arg, int status);
    void *arg;
    size_t len;
    unsigned char *cipher; /* TLS: the encrypted bytes (owned) */
};

static _Thread_local unsigned char read_buf[READ_BUF];
static _Thread_local unsigned char plain_buf[READ_BUF];
static _Thread_local unsigned char stage_buf[TLS_CHUNK];

static void handle_closed(uv_handle_t *h)
{
    struct rl_conn *c = h->data;
    if (--c->open_handles > 0)
        return;
    rl_tls_session_free(c->tls);
    free(c->stream);
    free(c);
}

void rl_conn_close(struct rl_conn *c)
{
    if (!c || c->closing)
        return;
    c->closing = true;
    if (c->vops) {
        c->vops->close(c->impl);
        return;
    }
    uv_read_stop(c->stream);
    rl_deadline_stop(&c->deadline);
    uv_close((uv_handle_t *)&c->deadline.timer, handle_closed);
    uv_close((uv_handle_t *)c->stream, handle_closed);
}

/* The connection dies on its own: close, then tell the owner. */
static void end(struct rl_conn *c, int why, const char *msg)
{
    if (c->closing)
        return;
    if (c->tls) {
        /* An alert OpenSSL queued (a refused certificate) is worth one try:
         * the peer then learns why instead of seeing a bare close. */
        unsigned char alert[512];
        size_t got = 0;
        if (rl_tls_take_output(c->tls, alert, sizeof alert, &got) == 0 && got > 0) {
            uv_buf_t b = uv_buf_init((char *)alert, (unsigned)got);
            uv_try_write(c->stream, &b, 1);
        }
    }
    rl_conn_close(c);
    if (c->cbs.end)
        c->cbs.end(c->cbs.arg, why, msg);
}

static void write_done(uv_write_t *w, int status)
{
    struct wreq *r = w->data;
    struct rl_conn *c = r->c;
    c->queued -= r->len;
    free(r->cipher);
    void (*cb)(void *, int) = r->cb;
    void *arg = r->arg;
    free(r);
    if (status != 0 && status != UV_ECANCELED)
        end(c, RL_CONN_ERROR, uv_strerror(status));
    if (cb)
        cb(arg, status);
}

static int submit(struct rl_conn *c, struct wreq *r, const uv_buf_t *bufs, unsigned n)
{
    r->c = c;
    r->w.data = r;
    int rv = uv_write(&r->w, c->stream, bufs, n, write_done);
    if (rv != 0) {
        free(r->cipher);
        free(r);
        return rv;
    }
    c->queued += r->len;
    return 0;
}

/* Moves all the session's pending ciphertext to the end of *buf. */
static int take_cipher(struct rl_conn *c, unsigned char **buf, size_t *len, size_t *cap)
{
    size_t pend = rl_tls_pending_output(c->tls);
    if (pend == 0)
        return 0;
    if (*len + pend > *cap) {
        size_t ncap = *cap ? *cap : 4096;
        while (ncap < *len + pend)
            ncap *= 2;
        unsigned char *b = realloc(*buf, ncap);
        if (!b)
            return UV_ENOMEM;
        *buf = b;
        *cap = ncap;
    }
    size_t got = 0;
    rl_tls_take_output(c->tls, *buf + *len, pend, &got);
    *len += got;
    return 0;
}

/* Sends what the TLS session queued on its own (handshake, alerts). */
static int flush_tls(struct rl_conn *c)
{
    struct wreq *r = calloc(1, sizeof *r);
    size_t cap = 0;
    if (!r || take_cipher(c, &r->cipher, &r->len, &cap) != 0) {
        if (r)
            free(r->cipher);
        free(r);
        return UV_ENOMEM;
    }
    if (r->len == 0) {
        free(r);
        return 0;
    }
    uv_buf_t b = uv_buf_init((char *)r->cipher, (unsigned)r->len);
    return submit(c, r, &b, 1);
}

/* Encrypts the staged plaintext into r's ciphertext. */
static int seal(struct rl_conn *c, size_t *staged, struct wreq *r, size_t *cap)
{
    int rv = rl_tls_write(c->tls, stage_buf, *staged);
    *staged = 0;
    return rv == 0 ? take_cipher(c, &r->cipher, &r->len, cap) : UV_EPROTO;
}

int rl_conn_write(struct rl_conn *c, const uv_buf_t *bufs, unsigned n,
                  void (*cb)(void *arg, int status), void *arg)
{
    if (c->vops)
        return c->closing ? UV_ECANCELED : c->vops->write(c->impl, bufs, n, cb, arg);
    if (c->closing)
        return UV_ECANCELED;
    if (!c->ready)
        return UV_EINVAL;
    struct wreq *r = calloc(1, sizeof *r);
    if (!r)
        return UV_ENOMEM;
    r->cb = cb;
    r->arg = arg;
    if (!c->tls) {
        for (unsigned i = 0; i < n; i++)
            r->len += bufs[i].len;
        return submit(c, r, bufs, n);
    }
    /* The iovecs (a frame's header, payloads, padding) are gathered into
     * full records: one record per 16 KiB, not one per iovec. */
    size_t total = 0;
    for (unsigned i = 0; i < n; i++)
        total += bufs[i].len;
    /* Sized once for the ciphertext (22 bytes of record overhead per
     * 16 KiB): a large frame is not copied again by realloc. */
    size_t cap = total + (total / TLS_CHUNK + 1) * 32, staged = 0;
    r->cipher = malloc(cap);
    if (!r->cipher) {
        free(r);
        return UV_ENOMEM;
    }
    int rv = 0;
    for (unsigned i = 0; i < n && rv == 0; i++) {
        for (size_t off = 0; off < bufs[i].len && rv == 0;) {
            size_t k = bufs[i].len - off < TLS_CHUNK - staged ? bufs[i].len - off : TLS_CHUNK - staged;
            memcpy(stage_buf + staged, bufs[i].base + off, k);
            staged += k;
            off += k;
            if (staged == TLS_CHUNK)
                rv = seal(c, &staged, r, &cap);
        }
    }
    if (rv == 0 && staged > 0)
        rv = seal(c, &staged, r, &cap);
    if (rv != 0) {
        free(r->cipher);
        free(r);
        return rv;
    }
    uv_buf_t b = uv_buf_init((char *)r->cipher, (unsigned)r->len);
    return submit(c, r, &b, 1);
}

/* Hands plaintext to the owner; a callback that consumed less has handed
 * the connection on (rl_conn_set_cbs), and the rest goes to the new one. */
static void deliver(struct rl_conn *c, const unsigned char *p, size_t n)
{
    while (n > 0 && !c->closing && c->cbs.data) {
        size_t (*before)(void *, const unsigned char *, size_t) = c->cbs.data;
        void *before_arg = c->cbs.arg;
        size_t k = before(before_arg, p, n);
        if (k >= n)
            return;
        if (c->cbs.data == before && c->cbs.arg == before_arg)
            return; /* nobody else wants it */
        p += k;
        n -= k;
    }
}

static void tls_read(struct rl_conn *c, const unsigned char *p, size_t n)
{
    int rv = rl_tls_feed(c->tls, p, n);
    while (rv == 0 && !c->closing) {
        if (!c->ready && rl_tls_handshake_done(c->tls)) {
            c->ready = true;
            if (flush_tls(c) != 0) {
                end(c, RL_CONN_ERROR, "out of memory");
                return;
            }
            if (c->cbs.ready)
                c->cbs.ready(c->cbs.arg);
            continue;
        }
        size_t got = 0;
        rv = rl_tls_read(c->tls, plain_buf, sizeof plain_buf, &got);
        if (rv != 0 || got == 0)
            break;
        deliver(c, plain_buf, got);
    }
    if (c->closing)
        return;
    if (rv == 0 && flush_tls(c) != 0)
        rv = RLOG_ENOMEM;
    if (rv != 0)
        end(c, rv == RLOG_ECLOSED ? RL_CONN_EOF : RL_CONN_ERROR,
            rv == RLOG_ENOMEM ? "out of memory" : rl_tls_errmsg(c->tls));
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    *buf = uv_buf_init((char *)read_buf, sizeof read_buf);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct rl_conn *c = s->data;
    if (c->closing)
        return;
    if (nread < 0) {
        end(c, nread == UV_EOF ? RL_CONN_EOF : RL_CONN_ERROR, uv_strerror((int)nread));
        return;
    }
    if (c->tls)
        tls_read(c, (const unsigned char *)buf->base, (size_t)nread);
    else
        deliver(c, (const unsigned char *)buf->base, (size_t)nread);
}

static void on_deadline(uv_timer_t *t)
{
    end(t->data, RL_CONN_TIMEOUT, "timed out");
}

static void free_handle(uv_handle_t *h)
{
    free(h);
}

int rl_conn_new(uv_stream_t *stream, struct rl_tls_session *tls, struct rl_conn **out)
{
    struct rl_conn *c = calloc(1, sizeof *c);
    *out = NULL;
    if (!c) {
        rl_tls_session_free(tls);
        uv_close((uv_handle_t *)stream, free_handle);
        return RLOG_ENOMEM;
    }
    c->stream = stream;
    c->tls = tls;
    c->ready = tls == NULL;
    stream->data = c;
    rl_deadline_init(stream->loop, &c->deadline, on_deadline, c);
    c->open_handles = 2;
    if (stream->type == UV_TCP)
        uv_tcp_nodelay((uv_tcp_t *)stream, 1);
    *out = c;
    return 0;
}

int rl_conn_start(struct rl_conn *c, const struct rl_conn_cbs *cbs)
{
    c->cbs = *cbs;
    c->started = true;
    if (c->vops)
        return 0;
    int rv = uv_read_start(c->stream, on_alloc, on_read);
    if (rv == 0 && c->tls)
        rv = flush_tls(c); /* a client's ClientHello */
    return rv;
}

void rl_conn_set_cbs(struct rl_conn *c, const struct rl_conn_cbs *cbs)
{
    c->cbs = *cbs;
}

bool rl_conn_ready(const struct rl_conn *c)
{
    return c->ready;
}

bool rl_conn_is_tls(const struct rl_conn *c)
{
    return c->vops ? c->vops->tls : c->tls != NULL;
}

int rl_conn_peer_cert_id(const struct rl_conn *c, uint64_t *id)
{
    if (c->vops)
        return c->vops->peer_cert_id(c->impl, id);
    return c->tls && rl_tls_peer_id(c->tls, id) == 0 ? 0 : -1;
}

size_t rl_conn_queued(const struct rl_conn *c)
{
    return c->vops ? c->vops->queued(c->impl) : c->queued;
}

void rl_conn_deadline(struct rl_conn *c, uint64_t ms)
{
    if (c->closing)
        return;
    if (c->vops) {
        c->vops->deadline(c->impl, ms);
        return;
    }
    rl_deadline_set(&c->deadline, ms);
}

int rl_conn_new_virtual(const struct rl_conn_vops *ops, void *impl, struct rl_conn **out)
{
    struct rl_conn *c = calloc(1, sizeof *c);
    *out = c;
    if (!c)
        return RLOG_ENOMEM;
    c->vops = ops;
    c->impl = impl;
    c->ready = c->started = true;
    return 0;
}

void rl_conn_virtual_data(struct rl_conn *c, const unsigned char *p, size_t n)
{
    deliver(c, p, n);
}

void rl_conn_virtual_stale(struct rl_conn *c)
{
    if (!c->closing && c->cbs.stale)
        c->cbs.stale(c->cbs.arg);
}

void rl_conn_virtual_end(struct rl_conn *c, int why, const char *msg)
{
    if (c->closing)
        return;
    c->closing = true;
    if (c->cbs.end)
        c->cbs.end(c->cbs.arg, why, msg);
}

bool rl_conn_closing(const struct rl_conn *c)
{
    return c->closing;
}

void rl_conn_free_virtual(struct rl_conn *c)
{
    free(c);
}
