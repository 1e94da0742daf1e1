/*
 * listen — the server's side: accept within the caps, then the handshake
 * (TLS if configured, and the hello) within handshake_timeout_ms, then hand
 * the connection on.
 */
#include "net/internal.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "liblog.h"
#include "tls/tls.h"

static void entry_drop(struct in_entry *e)
{
    rl_conn_close(e->conn);
    rl_net_forget(e->net, e->conn);
}

static bool member(void *arg, uint64_t id)
{
    struct rl_net *net = arg;
    return net->cfg.is_member && net->cfg.is_member(net->cfg.arg, id);
}

static size_t in_data(void *arg, const unsigned char *p, size_t n)
{
    struct in_entry *e = arg;
    struct rl_net *net = e->net;
    size_t k = RL_HELLO_LEN - e->got < n ? RL_HELLO_LEN - e->got : n;
    memcpy(e->hello + e->got, p, k);
    e->got += k;
    if (e->got < RL_HELLO_LEN)
        return n;
    struct rl_hello_expect x = {.self = net->cfg.self, .flags = net->cfg.hello_flags,
                                .cluster_hash = net->cfg.cluster_hash,
                                .is_member = member, .arg = net};
    if (rl_conn_is_tls(e->conn) && rl_conn_peer_cert_id(e->conn, &x.cert_id) != 0) {
        net->stats.rejected_handshakes++;
        rl_net__warn(net, "peer connection from %s refused: no certificate id", e->ip);
        entry_drop(e);
        return n;
    }
    struct rl_hello h;
    const char *why = NULL;
    int rv = rl_hello_check(e->hello, &x, &h, &why);
    if (rv != 0 && net->cfg.any_cluster && h.cluster_hash != x.cluster_hash) {
        x.cluster_hash = h.cluster_hash; /* derived names differ after a join */
        rv = rl_hello_check(e->hello, &x, &h, &why);
    }
    if (rv != 0) {
        net->stats.rejected_handshakes++;
        rl_net__warn(net, "peer connection from %s (claiming node %" PRIu64 ") refused: %s "
                     "(%" PRIu64 " refused handshakes)", e->ip, h.id, why,
                     net->stats.rejected_handshakes);
        entry_drop(e);
        return n;
    }
    rl_conn_deadline(e->conn, 0);
    e->handed = true;
    rl_net__log(net, 0, "peer connection from node %" PRIu64 " (%s)%s", h.id, e->ip,
                rl_conn_is_tls(e->conn) ? " over TLS" : "");
    net->cfg.accept(net->cfg.arg, h.id, e->conn);
    return k; /* the rest is the new owner's */
}

static void in_end(void *arg, int why, const char *msg)
{
    struct in_entry *e = arg;
    struct rl_net *net = e->net;
    if (why == RL_CONN_TIMEOUT) {
        net->stats.timed_out_handshakes++;
        rl_net__warn(net, "peer connection from %s: no handshake within %u ms, closed "
                     "(%" PRIu64 " timed out)", e->ip, net->cfg.handshake_timeout_ms,
                     net->stats.timed_out_handshakes);
    } else if (why == RL_CONN_ERROR && rl_conn_is_tls(e->conn)) {
        net->stats.rejected_handshakes++;
        rl_net__warn(net, "peer connection from %s refused in the TLS handshake: %s "
                     "(%" PRIu64 " refused handshakes)", e->ip, msg,
                     net->stats.rejected_handshakes);
    } else if (e->got > 0) {
        rl_net__warn(net, "peer connection from %s closed inside its hello (%zu of %u bytes)",
                     e->ip, e->got, RL_HELLO_LEN);
    } else {
        rl_net__log(net, 0, "peer connection from %s closed during the handshake: %s", e->ip, msg);
    }
    rl_net_forget(net, e->conn);
}

static unsigned count_from(const struct rl_net *net, const char *ip)
{
    unsigned n = 0;
    for (const struct in_entry *e = net->ins; e; e = e->next)
        n += strcmp(e->ip, ip) == 0;
    return n;
}

static void free_handle(uv_handle_t *h)
{
    free(h);
}

static void peer_ip(uv_tcp_t *tcp, char *ip, size_t len)
{
    struct sockaddr_storage ss;
    int sl = sizeof ss;
    snprintf(ip, len, "?");
    if (uv_tcp_getpeername(tcp, (struct sockaddr *)&ss, &sl) != 0)
        return;
    if (ss.ss_family == AF_INET)
        uv_ip4_name((struct sockaddr_in *)&ss, ip, len);
    else if (ss.ss_family == AF_INET6)
        uv_ip6_name((struct sockaddr_in6 *)&ss, ip, len);
}

static void on_connection(uv_stream_t *server, int status)
{
    struct rl_net *net = server->data;
    if (status != 0 || net->closing)
        return;
    uv_tcp_t *tcp = malloc(sizeof *tcp);
    if (!tcp)
        return; /* the kernel keeps it queued; the next accept retries */
    uv_tcp_init(net->cfg.loop, tcp);
    if (uv_accept(server, (uv_stream_t *)tcp) != 0) {
        uv_close((uv_handle_t *)tcp, free_handle);
        return;
    }
    char ip[64];
    peer_ip(tcp, ip, sizeof ip);
    const char *over = net->n_in >= net->cfg.max_inbound ? "the cap on inbound connections"
                       : count_from(net, ip) >= net->cfg.max_per_address
                           ? "the cap on connections from one address"
                           : NULL;
    struct in_entry *e = over ? NULL : calloc(1, sizeof *e);
    struct rl_tls_session *tls = NULL;
    if (e && net->cfg.tls && rl_tls_session_new(net->cfg.tls, true, &tls) != 0) {
        free(e);
        e = NULL;
    }
    if (!e) {
        net->stats.refused_connections++;
        rl_net__warn(net, "peer connection from %s refused: %s (%u and %u per address; "
                     "%" PRIu64 " refused)", ip, over ? over : "out of memory",
                     net->cfg.max_inbound, net->cfg.max_per_address,
                     net->stats.refused_connections);
        uv_close((uv_handle_t *)tcp, free_handle);
        return;
    }
    e->net = net;
    snprintf(e->ip, sizeof e->ip, "%s", ip);
    if (rl_conn_new((uv_stream_t *)tcp, tls, &e->conn) != 0) {
        free(e);
        return;
    }
    e->next = net->ins;
    if (net->ins)
        net->ins->prev = e;
    net->ins = e;
    net->n_in++;
    struct rl_conn_cbs cbs = {.data = in_data, .end = in_end, .arg = e};
    rl_conn_deadline(e->conn, net->cfg.handshake_timeout_ms);
    if (rl_conn_start(e->conn, &cbs) != 0)
        entry_drop(e);
}

static void listener_closed(uv_handle_t *h)
{
    struct rl_net *net = h->data;
    net->busy--;
    rl_net__maybe_done(net);
}

int rl_net__listen(struct rl_net *net, char *err, size_t errlen)
{
    char host[256], port[8];
    if (rl_net__split(net->address, host, sizeof host, port, sizeof port) != 0) {
        snprintf(err, errlen, "\"%s\" is not HOST:PORT", net->address);
        return UV_EINVAL;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE}, *ai = NULL;
    /* Once, at start: the node's own address (config.c resolved it already, checking the configuration). */
    int gai = getaddrinfo(host, port, &hints, &ai);
    if (gai != 0) {
        snprintf(err, errlen, "cannot resolve \"%s\": %s", host, gai_strerror(gai));
        return UV_EINVAL;
    }
    uv_tcp_init(net->cfg.loop, &net->listener);
    net->listener.data = net;
    net->listener_open = true;
    net->busy++;
    int rv = uv_tcp_bind(&net->listener, ai->ai_addr, 0);
    freeaddrinfo(ai);
    if (rv == 0)
        rv = uv_listen((uv_stream_t *)&net->listener, 128, on_connection);
    if (rv != 0)
        snprintf(err, errlen, "%s", uv_strerror(rv));
    return rv;
}

void rl_net__close_inbound(struct rl_net *net)
{
    if (net->listener_open) {
        net->listener_open = false;
        uv_close((uv_handle_t *)&net->listener, listener_closed);
    }
    for (struct in_entry *e = net->ins, *next; e; e = next) {
        next = e->next;
        if (!e->handed)
            entry_drop(e);
    }
}
