/*
 * hosts — the public host (rlog_host_open(3)): a fixed set of shared loop
 * threads (lib/host) that rlog_open_on spreads logs over, least loaded
 * first. The logs do the rest: each ends on its own last handle.
 */
#include <stdio.h>
#include <stdlib.h>

#include <stdarg.h>

#include "host/host.h"
#include "node/api.h"

#define HOST_MAX_THREADS 64

struct rlog_host {
    struct rl_cache_pool cache; /* every log's read cache (node/cache.h) */
    bool pooled;                /* false: no host budget */
    unsigned n;
    struct rl_host *loops[];
};

void rlog_host_config_init(struct rlog_host_config *cfg)
{
    if (!cfg)
        return;
    *cfg = (struct rlog_host_config){.threads = 1, .cache_bytes = 256u << 20,
                                     .cache_floor_bytes = 1u << 20};
}

/* As rl_fail, and into errbuf too (rlog_host_open's message). */
__attribute__((format(printf, 4, 5))) static int fail_buf(char *errbuf, size_t errlen, int code,
                                                         const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (errbuf && errlen)
        snprintf(errbuf, errlen, "%s", msg);
    return rl_fail(code, "%s", msg);
}

/* Stops the first n loops, which have no log. */
static void stop_loops(struct rlog_host *h, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        rl_host_stop(h->loops[i]);
}

int rlog_host_open(const struct rlog_host_config *cfg, rlog_host **out, char *errbuf,
                   size_t errlen)
{
    char err[256] = "";
    if (out)
        *out = NULL;
    if (!cfg || !out)
        return fail_buf(errbuf, errlen, RLOG_EINVAL, "rlog_host_open: cfg and out must not be NULL");
    if (cfg->threads < 1 || cfg->threads > HOST_MAX_THREADS)
        return fail_buf(errbuf, errlen, RLOG_EINVAL,
                           "threads: %u is out of range (1 .. %d)", cfg->threads, HOST_MAX_THREADS);
    if (cfg->cache_bytes == 0)
        return fail_buf(errbuf, errlen, RLOG_EINVAL,
                        "cache_bytes: 0 (UINT64_MAX is no host budget)");
    struct rlog_host *h = calloc(1, sizeof *h + cfg->threads * sizeof h->loops[0]);
    if (!h)
        return fail_buf(errbuf, errlen, RLOG_ENOMEM, "out of memory");
    h->pooled = cfg->cache_bytes != UINT64_MAX;
    rl_cache_pool_init(&h->cache, cfg->cache_bytes, cfg->cache_floor_bytes);
    for (; h->n < cfg->threads; h->n++) {
        int rv = rl_host_start(&h->loops[h->n], err, sizeof err);
        if (rv != 0) {
            stop_loops(h, h->n);
            rl_cache_pool_free(&h->cache);
            free(h);
            return fail_buf(errbuf, errlen, rv, "%s", err);
        }
    }
    *out = h;
    return 0;
}

int rlog_open_on(rlog_host *host, const struct rlog_config *cfg, rlog **out, char *errbuf,
                 size_t errlen)
{
    if (out)
        *out = NULL;
    if (!host)
        return fail_buf(errbuf, errlen, RLOG_EINVAL, "rlog_open_on: host must not be NULL");
    struct rl_host *least = host->loops[0];
    unsigned fewest = rl_host_logs(least);
    for (unsigned i = 1; i < host->n && fewest > 0; i++) {
        unsigned n = rl_host_logs(host->loops[i]);
        if (n < fewest) {
            fewest = n;
            least = host->loops[i];
        }
    }
    return rl_open_on_host(least, host->pooled ? &host->cache : NULL, cfg, out, errbuf, errlen);
}

int rlog_host_close(rlog_host *host)
{
    if (!host)
        return rl_fail(RLOG_EINVAL, "rlog_host_close: host must not be NULL");
    for (unsigned i = 0; i < host->n; i++)
        if (rl_host_is_self(host->loops[i]))
            return rl_fail(RLOG_EINVAL, "rlog_host_close from one of its threads (a liblog "
                                        "callback) would deadlock");
    /* All or none: a host stays whole while any of its threads has a log. */
    for (unsigned i = 0; i < host->n; i++) {
        int rv = rl_host_begin_stop(host->loops[i]);
        if (rv != 0) {
            while (i-- > 0)
                rl_host_cancel_stop(host->loops[i]);
            return rl_fail(rv, "the host still has open logs: close them first");
        }
    }
    for (unsigned i = 0; i < host->n; i++)
        rl_host_end_stop(host->loops[i]);
    rl_cache_pool_free(&host->cache);
    free(host);
    return 0;
}
