/*
 * net — the transport's API: each call goes to the real transport
 * (listen.c, connect.c) or to the simulator's seam (seam.c). The files of
 * lib/net and their order are at the top of net/internal.h.
 */
#include "net/internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/env.h"
#include "liblog.h"

static void closer_closed(uv_handle_t *h)
{
    struct rl_net *net = h->data;
    net->busy--;
    if (net->close_cb)
        rl_net__maybe_done(net);
    else if (net->busy == 0)
        free(net); /* a failed rl_net_new */
}

int rl_net_new(const struct rl_net_config *cfg, struct rl_net **out)
{
    struct rl_net *net = calloc(1, sizeof *net);
    *out = NULL;
    if (!net)
        return RLOG_ENOMEM;
    net->cfg = *cfg;
    snprintf(net->address, sizeof net->address, "%s", cfg->address);
    net->cfg.address = net->address;
    rl_hello_encode_flags(net->hello, cfg->self, cfg->cluster_hash, cfg->hello_flags);
    uv_timer_init(cfg->loop, &net->closer);
    net->closer.data = net;
    if (rl_env && rl_env->transport_init && !cfg->via) { /* a shared one's is the host's */
        int rv = rl_net__seam_init(net);
        if (rv != 0) {
            net->closing = true;
            net->busy++;
            uv_close((uv_handle_t *)&net->closer, closer_closed);
            return rv;
        }
    }
    *out = net;
    return 0;
}

int rl_net_listen(struct rl_net *net, char *err, size_t errlen)
{
    if (net->cfg.via)
        return net->cfg.via->listen(net->cfg.via->mux, net, err, errlen);
    return net->seam ? rl_net__seam_listen(net, err, errlen) : rl_net__listen(net, err, errlen);
}

int rl_net_connect(struct rl_net *net, uint64_t id, const char *address,
                   void (*cb)(void *arg, struct rl_conn *conn, int status), void *arg)
{
    if (net->closing)
        return UV_ECANCELED;
    if (net->cfg.via)
        return net->cfg.via->connect(net->cfg.via->mux, net, id, address, cb, arg);
    return net->seam ? rl_net__seam_connect(net, id, address, cb, arg)
                     : rl_net__connect(net, id, address, cb, arg);
}

void rl_net_stats(const struct rl_net *net, struct rl_net_stats *st)
{
    *st = net->stats;
    if (net->cfg.via && net->cfg.via->stats) {
        struct rl_net_stats h;
        net->cfg.via->stats(net->cfg.via->mux, &h);
        st->refused_connections += h.refused_connections;
        st->rejected_handshakes += h.rejected_handshakes;
        st->timed_out_handshakes += h.timed_out_handshakes;
    }
}

void rl_net_close(struct rl_net *net, void (*cb)(void *arg), void *arg)
{
    net->closing = true;
    net->close_cb = cb;
    net->close_arg = arg;
    /* The callback comes from the loop, never from inside this call. */
    net->busy++;
    uv_close((uv_handle_t *)&net->closer, closer_closed);
    if (net->cfg.via) {
        net->cfg.via->unlisten(net->cfg.via->mux, net);
    } else if (net->seam) {
        rl_net__seam_close(net);
    } else {
        rl_net__cancel_outbound(net);
        rl_net__close_inbound(net);
    }
}

uint64_t rl_net_key(const struct rl_net *net)
{
    return net->cfg.cluster_hash;
}

bool rl_net_member(const struct rl_net *net, uint64_t id)
{
    return !net->closing && id != net->cfg.self && net->cfg.is_member &&
           net->cfg.is_member(net->cfg.arg, id);
}

void rl_net_hand_on(struct rl_net *net, uint64_t id, struct rl_conn *conn)
{
    rl_net__log(net, 0, "peer channel from node %" PRIu64 " over the host's connection", id);
    net->cfg.accept(net->cfg.arg, id, conn);
}

void rl_net_refuse(struct rl_net *net, uint64_t id, const char *why)
{
    net->stats.rejected_handshakes++;
    rl_net__warn(net, "peer channel from node %" PRIu64 " refused: %s (%" PRIu64
                 " refused handshakes)", id, why, net->stats.rejected_handshakes);
}
