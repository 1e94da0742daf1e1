/*
 * hosts — the public host (rlog_host_open(3)): a fixed set of shared loop
 * threads (lib/host) that rlog_open_on spreads logs over, least loaded
 * first, one read-cache budget, and, with an address, one listener and one
 * connection per peer host for its logs (lib/host/mux.c). The logs do the
 * rest: each ends on its own last handle.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host/catalog.h"
#include "host/host.h"
#include "host/mux.h"
#include "net/hello.h"
#include "node/api.h"
#include "node/config.h"
#include "node/identity.h"
#include "tls/tls.h"

#define HOST_MAX_THREADS 64

struct rlog_host {
    struct rl_cache_pool cache; /* every log's read cache (node/cache.h) */
    bool pooled;                /* false: no host budget */
    /* With an address: the shared transport, on loops[0]. */
    struct rl_mux *mux;
    struct rl_tls_ctx *tls;
    uint64_t id;
    char address[64];
    struct rl_catalog *catalog; /* the data directory's logs, or NULL */
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
    char msg[512];
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

/* ---- the shared transport, started and closed on loops[0] ------------------- */

struct on_loop {
    struct rl_host_call call;
    struct rlog_host *h;
    const struct rlog_host_config *cfg;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    int rv;
    char err[256];
};

static void on_loop_done(struct on_loop *o)
{
    pthread_mutex_lock(&o->mu);
    o->done = true;
    pthread_cond_signal(&o->cv);
    pthread_mutex_unlock(&o->mu);
}

/* Runs fn on loops[0] and waits for it to call on_loop_done. */
static int run_on_loop(struct on_loop *o, void (*fn)(void *))
{
    pthread_mutex_init(&o->mu, NULL);
    pthread_cond_init(&o->cv, NULL);
    o->call = (struct rl_host_call){.fn = fn, .arg = o};
    rl_host_post(o->h->loops[0], &o->call);
    pthread_mutex_lock(&o->mu);
    while (!o->done)
        pthread_cond_wait(&o->cv, &o->mu);
    pthread_mutex_unlock(&o->mu);
    pthread_mutex_destroy(&o->mu);
    pthread_cond_destroy(&o->cv);
    return o->rv;
}

/* The host's lines when its configuration names no log_fn: warnings and
 * errors to stderr, as a log's. */
static void host_log(void *arg, int level, const char *line)
{
    (void)arg;
    if (level >= 2)
        fprintf(stderr, "liblog host: %s\n", line);
}

static void mux_start_here(void *arg)
{
    struct on_loop *o = arg;
    const struct rlog_host_config *c = o->cfg;
    struct rl_mux_config mc = {
        .loop = rl_host_loop(o->h->loops[0]), .self = c->id, .address = c->address,
        .cluster_hash = rl_hello_cluster_hash(c->cluster_name ? c->cluster_name : ""),
        .tls = o->h->tls,
        .max_inbound = c->max_inbound_connections ? c->max_inbound_connections : 64,
        .max_per_address = c->max_connections_per_address ? c->max_connections_per_address : 8,
        .handshake_timeout_ms = c->handshake_timeout_ms ? c->handshake_timeout_ms : 5000,
        .log = c->log_fn ? c->log_fn : host_log, .log_arg = c->log_arg};
    o->rv = rl_mux_start(&mc, &o->h->mux, o->err, sizeof o->err);
    on_loop_done(o);
}

static void mux_closed(void *arg)
{
    on_loop_done(arg);
}

static void mux_close_here(void *arg)
{
    struct on_loop *o = arg;
    rl_mux_close(o->h->mux, mux_closed, o);
}

/* The address half of the configuration: 0, or RLOG_EINVAL in err. */
static int check_transport(const struct rlog_host_config *c, char *err, size_t errlen)
{
    char host[64];
    int problem = rl_check_address(c->address, host, sizeof host);
    if (problem != RL_ADDR_OK)
        return rl_bad_address(err, errlen, "address", c->address, problem);
    if (c->threads != 1)
        return snprintf(err, errlen, "threads: %u; a host with an address runs one thread",
                        c->threads),
               RLOG_EINVAL;
    if (c->id < 1 || c->id > (UINT64_MAX >> 1))
        return snprintf(err, errlen, "id: must be 1 .. 2^63-1 with an address"), RLOG_EINVAL;
    int have = (c->tls_ca_file && *c->tls_ca_file) + (c->tls_cert_file && *c->tls_cert_file) +
               (c->tls_key_file && *c->tls_key_file);
    if (have != 0 && have != 3)
        return snprintf(err, errlen, "tls_ca_file, tls_cert_file and tls_key_file go together"),
               RLOG_EINVAL;
    if (have == 0 && !c->insecure && !rl_is_loopback(host))
        return snprintf(err, errlen, "address %s is not loopback and no TLS is configured: "
                        "set tls_ca_file, tls_cert_file and tls_key_file, or insecure = 1",
                        c->address),
               RLOG_EINVAL;
    return 0;
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
    if (cfg->cluster_name && !rl_valid_cluster_name(cfg->cluster_name))
        return fail_buf(errbuf, errlen, RLOG_EINVAL,
                        "cluster_name \"%.80s\" must be 1 to %d printable ASCII characters "
                        "without spaces", cfg->cluster_name, RL_CLUSTER_NAME_MAX);
    if (cfg->address && check_transport(cfg, err, sizeof err) != 0)
        return fail_buf(errbuf, errlen, RLOG_EINVAL, "%s", err);
    struct rlog_host *h = calloc(1, sizeof *h + cfg->threads * sizeof h->loops[0]);
    if (!h)
        return fail_buf(errbuf, errlen, RLOG_ENOMEM, "out of memory");
    h->pooled = cfg->cache_bytes != UINT64_MAX;
    rl_cache_pool_init(&h->cache, cfg->cache_bytes, cfg->cache_floor_bytes);
    int rv = 0;
    if (cfg->address && cfg->tls_ca_file && *cfg->tls_ca_file) {
        struct rl_tls_config tc = {.ca_file = cfg->tls_ca_file, .cert_file = cfg->tls_cert_file,
                                   .key_file = cfg->tls_key_file,
                                   .cluster = cfg->cluster_name};
        rv = rl_tls_ctx_new(&tc, &h->tls, err, sizeof err);
    }
    if (rv == 0 && cfg->data_dir)
        rv = rl_catalog_open(cfg->data_dir, cfg->id, cfg->cluster_name, &h->catalog, err,
                             sizeof err);
    for (; rv == 0 && h->n < cfg->threads; h->n++)
        rv = rl_host_start(&h->loops[h->n], err, sizeof err);
    if (rv != 0) {
        h->n -= h->n > 0 && !h->loops[h->n - 1]; /* the one that failed */
    } else if (cfg->address) {
        h->id = cfg->id;
        snprintf(h->address, sizeof h->address, "%s", cfg->address);
        struct on_loop o = {.h = h, .cfg = cfg};
        if ((rv = run_on_loop(&o, mux_start_here)) != 0) {
            snprintf(err, sizeof err, "%s", o.err);
            h->mux = NULL;
        }
    }
    if (rv != 0) {
        stop_loops(h, h->n);
        rl_catalog_close(h->catalog);
        rl_tls_ctx_free(h->tls);
        rl_cache_pool_free(&h->cache);
        free(h);
        return fail_buf(errbuf, errlen, rv, "%s", err);
    }
    if (cfg->address && !h->tls) {
        char line[256];
        snprintf(line, sizeof line, "INSECURE: host connections are plain text, and a peer "
                 "host's claimed id is trusted (%s); configure TLS (tls_ca_file, tls_cert_file, "
                 "tls_key_file) to authenticate and encrypt them",
                 cfg->insecure ? "insecure is set" : "its address is loopback");
        (cfg->log_fn ? cfg->log_fn : host_log)(cfg->log_arg, 2, line);
    }
    *out = h;
    return 0;
}

/* A log for the shared transport: the rules of rlog_host_config.address. */
static int open_shared(rlog_host *host, unsigned flags, const struct rlog_config *cfg, rlog **out,
                       char *errbuf, size_t errlen)
{
    if (!cfg)
        return rl_open_on_host(host->loops[0], NULL, NULL, flags, cfg, out, errbuf, errlen);
    const char *bad = cfg->id != host->id ? "config.id is not the host's id"
                      : !cfg->cluster_name || !*cfg->cluster_name
                          ? "config.cluster_name must be set: it names the log between hosts"
                      : (cfg->tls_ca_file && *cfg->tls_ca_file) ||
                              (cfg->tls_cert_file && *cfg->tls_cert_file) ||
                              (cfg->tls_key_file && *cfg->tls_key_file)
                          ? "config's TLS files must be unset: the host's apply"
                          : NULL;
    if (bad)
        return fail_buf(errbuf, errlen, RLOG_EINVAL, "a log on host %llu (%s): %s",
                        (unsigned long long)host->id, host->address, bad);
    struct rlog_config c = *cfg;
    c.address = host->address;
    if (host->tls)
        c.insecure = 1; /* the host's TLS covers its peers: nothing in plain text */
    return rl_open_on_host(host->loops[0], host->pooled ? &host->cache : NULL, rl_mux_via(host->mux),
                           flags, &c, out, errbuf, errlen);
}

/* rlog_open_on's placement: the shared transport, or the thread with the
 * fewest logs. */
static int open_placed(rlog_host *host, unsigned flags, const struct rlog_config *cfg, rlog **out,
                       char *errbuf, size_t errlen)
{
    if (host->mux && cfg && (!cfg->address || strcmp(cfg->address, host->address) == 0))
        return open_shared(host, flags, cfg, out, errbuf, errlen);
    struct rl_host *least = host->loops[0];
    unsigned fewest = rl_host_logs(least);
    for (unsigned i = 1; i < host->n && fewest > 0; i++) {
        unsigned n = rl_host_logs(host->loops[i]);
        if (n < fewest) {
            fewest = n;
            least = host->loops[i];
        }
    }
    return rl_open_on_host(least, host->pooled ? &host->cache : NULL, NULL, flags, cfg, out,
                           errbuf, errlen);
}

/* The name a log of the data directory goes by: cfg->cluster_name, checked,
 * and claimed for the call (rl_catalog_release). */
static int claim_name(rlog_host *host, const struct rlog_config *cfg, const char *call, char *err,
                      size_t errlen)
{
    if (!host->catalog)
        return snprintf(err, errlen, "%s: the host has no data_dir (rlog_host_config)", call),
               RLOG_EINVAL;
    if (cfg->data_dir)
        return snprintf(err, errlen, "%s: config.data_dir must be NULL: the log's directory is "
                        "the host's logs/NAME", call),
               RLOG_EINVAL;
    int rv = rl_catalog_check_name(cfg->cluster_name, err, errlen);
    return rv ? rv : rl_catalog_claim(host->catalog, cfg->cluster_name, err, errlen);
}

/* cfg with data_dir the host's directory for the log cfg->cluster_name. */
static struct rlog_config in_catalog(rlog_host *host, const struct rlog_config *cfg, char *dir,
                                     size_t len)
{
    struct rlog_config c = *cfg;
    rl_catalog_log_dir(host->catalog, cfg->cluster_name, dir, len);
    c.data_dir = dir;
    return c;
}

/* An existing log of the host's data directory, by name. */
static int open_named(rlog_host *host, const struct rlog_config *cfg, rlog **out, char *errbuf,
                      size_t errlen)
{
    char err[512] = "", dir[4400];
    int rv = claim_name(host, cfg, "rlog_open_on", err, sizeof err);
    if (rv)
        return fail_buf(errbuf, errlen, rv, "%s", err);
    rv = rl_catalog_check_open(host->catalog, cfg->cluster_name, err, sizeof err);
    if (rv == 0) {
        struct rlog_config c = in_catalog(host, cfg, dir, sizeof dir);
        rv = open_placed(host, RL_OPEN_NO_BOOTSTRAP, &c, out, err, sizeof err);
    }
    rl_catalog_release(host->catalog, cfg->cluster_name);
    return rv ? fail_buf(errbuf, errlen, rv, "%s", err) : 0;
}

int rlog_open_on(rlog_host *host, const struct rlog_config *cfg, rlog **out, char *errbuf,
                 size_t errlen)
{
    if (out)
        *out = NULL;
    if (!host)
        return fail_buf(errbuf, errlen, RLOG_EINVAL, "rlog_open_on: host must not be NULL");
    if (cfg && !cfg->data_dir && host->catalog)
        return open_named(host, cfg, out, errbuf, errlen);
    return open_placed(host, 0, cfg, out, errbuf, errlen);
}

int rlog_create_on(rlog_host *host, const struct rlog_config *cfg, rlog **out, char *errbuf,
                   size_t errlen)
{
    if (out)
        *out = NULL;
    if (!host || !cfg || !out)
        return fail_buf(errbuf, errlen, RLOG_EINVAL,
                        "rlog_create_on: host, cfg and out must not be NULL");
    char err[512] = "", dir[4400];
    int rv = claim_name(host, cfg, "rlog_create_on", err, sizeof err);
    if (rv)
        return fail_buf(errbuf, errlen, rv, "%s", err);
    bool resumed = false;
    rv = rl_catalog_begin_create(host->catalog, cfg->cluster_name, &resumed, err, sizeof err);
    if (rv == 0) {
        struct rlog_config c = in_catalog(host, cfg, dir, sizeof dir);
        rv = open_placed(host, 0, &c, out, err, sizeof err);
        char end_err[400] = "";
        int end = rl_catalog_end_create(host->catalog, cfg->cluster_name, rv == 0, resumed,
                                        end_err, sizeof end_err);
        if (rv == 0 && end != 0) { /* created, but not known to be: say so, closed */
            rlog_close(*out);
            *out = NULL;
            rv = end;
            snprintf(err, sizeof err, "%s (rlog_create_on finishes the create, or, if that "
                     "says RLOG_EEXISTS, it ended and rlog_open_on opens the log)", end_err);
        } else if (rv != 0 && end != 0) {
            size_t n = strlen(err);
            snprintf(err + n, sizeof err - n, "; and undoing the create: %.200s", end_err);
        }
    }
    rl_catalog_release(host->catalog, cfg->cluster_name);
    return rv ? fail_buf(errbuf, errlen, rv, "%s", err) : 0;
}

int rlog_host_delete_log(rlog_host *host, const char *name, char *errbuf, size_t errlen)
{
    if (!host)
        return fail_buf(errbuf, errlen, RLOG_EINVAL, "rlog_host_delete_log: host is NULL");
    struct rlog_config named = {.cluster_name = name};
    char err[512] = "";
    int rv = claim_name(host, &named, "rlog_host_delete_log", err, sizeof err);
    if (rv)
        return fail_buf(errbuf, errlen, rv, "%s", err);
    rv = rl_catalog_delete(host->catalog, name, err, sizeof err);
    rl_catalog_release(host->catalog, name);
    return rv ? fail_buf(errbuf, errlen, rv, "%s", err) : 0;
}

int rlog_host_list_logs(rlog_host *host, int (*fn)(void *arg, const char *name), void *arg)
{
    if (!host || !fn)
        return rl_fail(RLOG_EINVAL, "rlog_host_list_logs: host and fn must not be NULL");
    if (!host->catalog)
        return rl_fail(RLOG_EINVAL, "rlog_host_list_logs: the host has no data_dir");
    char err[512] = "";
    int rv = rl_catalog_list(host->catalog, fn, arg, err, sizeof err);
    return rv ? rl_fail(rv, "%s", err) : 0;
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
    if (host->mux) { /* no log left: its connections and listener go */
        struct on_loop o = {.h = host};
        run_on_loop(&o, mux_close_here);
    }
    for (unsigned i = 0; i < host->n; i++)
        rl_host_end_stop(host->loops[i]);
    rl_catalog_close(host->catalog);
    rl_tls_ctx_free(host->tls);
    rl_cache_pool_free(&host->cache);
    free(host);
    return 0;
}
