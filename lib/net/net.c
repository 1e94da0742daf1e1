/*
 * net — the transport's API and what its parts share. The parts:
 *
 *   hello.c    the hello's bytes and its checks (pure)
 *   conn.c     a connection: plain or TLS over a libuv stream
 *   listen.c   the listener: caps, the server's side of the handshake
 *   connect.c  outbound connects: resolve, TCP, TLS, the client's checks
 *   seam.c     the simulator's transport behind the same calls
 */
#include "net/internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/env.h"
#include "liblog.h"

#define WARN_WINDOW_MS 10000u
#define WARNS_PER_WINDOW 20u

void rl_net__log(struct rl_net *net, int level, const char *fmt, ...)
{
    if (!net->cfg.log)
        return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    net->cfg.log(net->cfg.arg, level, line);
}

void rl_net__warn(struct rl_net *net, const char *fmt, ...)
{
    if (!net->cfg.log)
        return;
    /* A burst of refusals (a scan, a flood) logs its first lines in each
     * window; the rest go to debug level. */
    uint64_t now = uv_now(net->cfg.loop);
    if (net->warn_window == 0 || now - net->warn_window >= WARN_WINDOW_MS) {
        net->warn_window = now ? now : 1;
        net->warned = 0;
    }
    int level = net->warned < WARNS_PER_WINDOW ? 2 : 0;
    if (++net->warned == WARNS_PER_WINDOW + 1)
        rl_net__log(net, 2, "more peer connection refusals in the next %u s: at debug level",
                    WARN_WINDOW_MS / 1000);
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    net->cfg.log(net->cfg.arg, level, line);
}

int rl_net__split(const char *address, char *host, size_t hostlen, char *port, size_t portlen)
{
    const char *colon = strrchr(address, ':');
    if (!colon || colon == address || strlen(colon + 1) == 0 || strlen(colon + 1) >= portlen)
        return -1;
    const char *h = address;
    size_t n = (size_t)(colon - address);
    if (h[0] == '[' && n >= 2 && h[n - 1] == ']') {
        h++;
        n -= 2;
    }
    if (n == 0 || n >= hostlen)
        return -1;
    memcpy(host, h, n);
    host[n] = '\0';
    snprintf(port, portlen, "%s", colon + 1);
    return 0;
}

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

void rl_net_forget(struct rl_net *net, struct rl_conn *conn)
{
    if (!net)
        return;
    for (struct in_entry *e = net->ins; e; e = e->next)
        if (e->conn == conn) {
            if (e->prev)
                e->prev->next = e->next;
            else
                net->ins = e->next;
            if (e->next)
                e->next->prev = e->prev;
            net->n_in--;
            free(e);
            return;
        }
}

void rl_net_stats(const struct rl_net *net, struct rl_net_stats *st)
{
    *st = net->stats;
}

void rl_net__maybe_done(struct rl_net *net)
{
    if (!net->closing || net->busy > 0 || net->outs)
        return;
    void (*cb)(void *) = net->close_cb;
    void *arg = net->close_arg;
    net->close_cb = NULL;
    if (!cb)
        return;
    while (net->ins) { /* handed on: the owner has closed them */
        struct in_entry *e = net->ins;
        net->ins = e->next;
        free(e);
    }
    free(net);
    cb(arg);
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
