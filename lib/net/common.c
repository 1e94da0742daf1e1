/*
 * common — what every part of lib/net uses: the log lines (warnings
 * rate-limited), splitting "host:port", the table of inbound connections'
 * forgetting, and the release of a closing net once nothing is outstanding.
 * The bottom of lib/net: it calls no other file of it.
 */
#include "net/internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WARN_WINDOW_MS 10000u
#define WARNS_PER_WINDOW 20u

static void vlog(struct rl_net *net, int level, const char *fmt, va_list ap)
{
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    net->cfg.log(net->cfg.arg, level, line);
}

void rl_net__log(struct rl_net *net, int level, const char *fmt, ...)
{
    if (!net->cfg.log)
        return;
    va_list ap;
    va_start(ap, fmt);
    vlog(net, level, fmt, ap);
    va_end(ap);
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
    va_list ap;
    va_start(ap, fmt);
    vlog(net, level, fmt, ap);
    va_end(ap);
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

