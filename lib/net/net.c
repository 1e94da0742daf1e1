/*
 * net — the transport's API: each call goes to the real transport
 * (listen.c, connect.c) or to the simulator's seam (seam.c). The files of
 * lib/net and their order are at the top of net/internal.h.
 */
#include "net/internal.h"

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
    rl_hello_encode(net->hello, cfg->self, cfg->cluster_hash);
    uv_timer_init(cfg->loop, &net->closer);
    net->closer.data = net;
    if (rl_env && rl_env->transport_init) {
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
    return net->seam ? rl_net__seam_listen(net, err, errlen) : rl_net__listen(net, err, errlen);
}

int rl_net_connect(struct rl_net *net, uint64_t id, const char *address,
                   void (*cb)(void *arg, struct rl_conn *conn, int status), void *arg)
{
    if (net->closing)
        return UV_ECANCELED;
    return net->seam ? rl_net__seam_connect(net, id, address, cb, arg)
                     : rl_net__connect(net, id, address, cb, arg);
}

void rl_net_stats(const struct rl_net *net, struct rl_net_stats *st)
{
    *st = net->stats;
}

void rl_net_close(struct rl_net *net, void (*cb)(void *arg), void *arg)
{
    net->closing = true;
    net->close_cb = cb;
    net->close_arg = arg;
    /* The callback comes from the loop, never from inside this call. */
    net->busy++;
    uv_close((uv_handle_t *)&net->closer, closer_closed);
    if (net->seam) {
        rl_net__seam_close(net);
    } else {
        rl_net__cancel_outbound(net);
        rl_net__close_inbound(net);
    }
}
