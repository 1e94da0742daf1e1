/*
 * connect — the client's side: resolve, TCP connect, (TLS handshake and the
 * check that the server's certificate names the node we meant), the hello,
 * then hand the connection on. The whole of it is bounded by
 * handshake_timeout_ms.
 */
#include "net/internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "liblog.h"
#include "tls/tls.h"

static void unlink_req(struct out_req *r)
{
    struct rl_net *net = r->net;
    if (r->prev)
        r->prev->next = r->next;
    else if (net->outs == r)
        net->outs = r->next;
    if (r->next)
        r->next->prev = r->prev;
    r->next = r->prev = NULL;
}

static void req_free_maybe(struct out_req *r)
{
    if (!r->done || r->handles > 0 || r->resolving)
        return;
    struct rl_net *net = r->net;
    free(r);
    net->busy--;
    rl_net__maybe_done(net);
}

static void handle_closed(uv_handle_t *h)
{
    struct out_req *r = h->data;
    if ((uv_handle_t *)r->tcp == h) {
        free(r->tcp);
        r->tcp = NULL;
    }
    r->handles--;
    req_free_maybe(r);
}

/* Ends the attempt: cb with conn (0) or the failure; releases the rest. */
static void finish(struct out_req *r, struct rl_conn *conn, int status)
{
    if (r->done)
        return;
    r->done = true;
    unlink_req(r);
    uv_close((uv_handle_t *)&r->timer, handle_closed);
    if (r->tcp && !r->conn)
        uv_close((uv_handle_t *)r->tcp, handle_closed);
    else if (r->tcp)
        r->tcp = NULL; /* the conn owns it */
    if (r->conn && !conn)
        rl_conn_close(r->conn);
    if (r->resolving)
        uv_cancel((uv_req_t *)&r->gai);
    if (r->cb)
        r->cb(r->arg, conn, status);
    req_free_maybe(r);
}

static void fail(struct out_req *r, int status, const char *fmt, const char *why)
{
    if (status != UV_ECANCELED && status != UV_ECONNREFUSED)
        rl_net__warn(r->net, fmt, r->id, r->host, r->port, why);
    finish(r, NULL, status);
}

static void write_free(void *arg, int status)
{
    (void)status;
    free(arg);
}

static void ready(void *arg)
{
    struct out_req *r = arg;
    struct rl_net *net = r->net;
    uint64_t cert_id;
    if (rl_conn_is_tls(r->conn)) {
        if (rl_conn_peer_cert_id(r->conn, &cert_id) != 0 || cert_id != r->id) {
            char why[96];
            snprintf(why, sizeof why, "its certificate names node %" PRIu64, cert_id);
            net->stats.rejected_handshakes++;
            fail(r, UV_EPROTO, "connect to node %" PRIu64 " at %s:%s refused: %s", why);
            return;
        }
    }
    unsigned char *hello = malloc(RL_HELLO_LEN);
    int rv = hello ? 0 : UV_ENOMEM;
    if (hello) {
        memcpy(hello, net->hello, RL_HELLO_LEN);
        uv_buf_t b = uv_buf_init((char *)hello, RL_HELLO_LEN);
        rv = rl_conn_write(r->conn, &b, 1, write_free, hello);
        if (rv != 0)
            free(hello);
    }
    if (rv != 0) {
        fail(r, rv, "connect to node %" PRIu64 " at %s:%s: %s", uv_strerror(rv));
        return;
    }
    rl_conn_deadline(r->conn, 0);
    struct rl_conn *conn = r->conn;
    r->conn = NULL;
    finish(r, conn, 0);
}

static size_t data(void *arg, const unsigned char *p, size_t n)
{
    struct out_req *r = arg;
    (void)p;
    fail(r, UV_EPROTO, "connect to node %" PRIu64 " at %s:%s: %s",
         "the server sent data before the hello");
    return n;
}

static void end(void *arg, int why, const char *msg)
{
    struct out_req *r = arg;
    if (why == RL_CONN_ERROR && rl_conn_is_tls(r->conn))
        r->net->stats.rejected_handshakes++;
    r->conn = NULL; /* closed already */
    fail(r, why == RL_CONN_TIMEOUT ? UV_ETIMEDOUT : UV_EPROTO,
         "connect to node %" PRIu64 " at %s:%s: %s", msg);
}

static void connected(uv_connect_t *creq, int status)
{
    struct out_req *r = creq->data;
    if (r->done)
        return;
    if (status != 0) {
        fail(r, status, "connect to node %" PRIu64 " at %s:%s: %s", uv_strerror(status));
        return;
    }
    struct rl_net *net = r->net;
    struct rl_tls_session *tls = NULL;
    if (net->cfg.tls && rl_tls_session_new(net->cfg.tls, false, &tls) != 0) {
        fail(r, UV_ENOMEM, "connect to node %" PRIu64 " at %s:%s: %s", "cannot start TLS");
        return;
    }
    r->handles--; /* the tcp handle is the conn's now */
    uv_tcp_t *tcp = r->tcp;
    r->tcp = NULL;
    if (rl_conn_new((uv_stream_t *)tcp, tls, &r->conn) != 0) {
        fail(r, UV_ENOMEM, "connect to node %" PRIu64 " at %s:%s: %s", "out of memory");
        return;
    }
    struct rl_conn_cbs cbs = {.ready = ready, .data = data, .end = end, .arg = r};
    int rv = rl_conn_start(r->conn, &cbs);
    if (rv != 0)
        fail(r, rv, "connect to node %" PRIu64 " at %s:%s: %s", uv_strerror(rv));
    else if (!tls)
        ready(r);
}

/* 0, or an error with nothing called back (the caller reports it). */
static int tcp_connect(struct out_req *r, const struct sockaddr *sa)
{
    r->tcp = malloc(sizeof *r->tcp);
    if (!r->tcp)
        return UV_ENOMEM;
    uv_tcp_init(r->net->cfg.loop, r->tcp);
    r->tcp->data = r;
    r->handles++;
    r->creq.data = r;
    return uv_tcp_connect(&r->creq, r->tcp, sa, connected);
}

static void resolved(uv_getaddrinfo_t *gai, int status, struct addrinfo *ai)
{
    struct out_req *r = gai->data;
    r->resolving = false;
    if (r->done || status != 0) {
        if (!r->done)
            fail(r, status, "connect to node %" PRIu64 " at %s:%s: cannot resolve: %s",
                 uv_strerror(status));
        uv_freeaddrinfo(ai);
        req_free_maybe(r);
        return;
    }
    int rv = tcp_connect(r, ai->ai_addr);
    uv_freeaddrinfo(ai);
    if (rv != 0)
        fail(r, rv, "connect to node %" PRIu64 " at %s:%s: %s", uv_strerror(rv));
}

/* Immediately for an IP literal (no trip through the thread pool, where
 * store work may be queued), else through the resolver. */
static int start(struct out_req *r)
{
    struct sockaddr_in6 sa6;
    struct sockaddr_in sa4;
    int port = atoi(r->port);
    if (uv_ip4_addr(r->host, port, &sa4) == 0)
        return tcp_connect(r, (const struct sockaddr *)&sa4);
    if (uv_ip6_addr(r->host, port, &sa6) == 0)
        return tcp_connect(r, (const struct sockaddr *)&sa6);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    r->gai.data = r;
    int rv = uv_getaddrinfo(r->net->cfg.loop, &r->gai, resolved, r->host, r->port, &hints);
    if (rv == 0)
        r->resolving = true;
    return rv;
}

static void timed_out(uv_timer_t *t)
{
    struct out_req *r = t->data;
    r->net->stats.timed_out_handshakes++;
    fail(r, UV_ETIMEDOUT, "connect to node %" PRIu64 " at %s:%s: %s",
         "no handshake within the timeout");
}

int rl_net__connect(struct rl_net *net, uint64_t id, const char *address,
                    void (*cb)(void *, struct rl_conn *, int), void *arg)
{
    struct out_req *r = calloc(1, sizeof *r);
    if (!r)
        return UV_ENOMEM;
    if (rl_net__split(address, r->host, sizeof r->host, r->port, sizeof r->port) != 0) {
        free(r);
        return UV_EINVAL;
    }
    *r = (struct out_req){.net = net, .id = id, .cb = cb, .arg = arg};
    rl_net__split(address, r->host, sizeof r->host, r->port, sizeof r->port);
    uv_timer_init(net->cfg.loop, &r->timer);
    r->timer.data = r;
    r->handles++;
    uv_timer_start(&r->timer, timed_out, net->cfg.handshake_timeout_ms, 0);
    net->busy++;
    r->next = net->outs;
    if (net->outs)
        net->outs->prev = r;
    net->outs = r;
    int rv = start(r);
    if (rv != 0) { /* an error now: undone without calling cb */
        r->cb = NULL;
        finish(r, NULL, rv);
    }
    return rv;
}

void rl_net__cancel_outbound(struct rl_net *net)
{
    while (net->outs)
        finish(net->outs, NULL, UV_ECANCELED);
}
