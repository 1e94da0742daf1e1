/*
 * The public API: validates arguments on the caller's thread, copies what it
 * must, and hands operations to the node's loop thread (lib/node/node.c).
 * Blocking forms wait on a per-call condition variable.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <string.h>

#include "common/bytes.h"
#include "node/identity.h"
#include "node/node.h"
#include "raftio/io.h"
#include "store/store.h"

#define DEFAULT_SEGMENT (64u << 20)
#define DEFAULT_MAX_RECORD (512u << 10)
#define DEFAULT_BATCH_BYTES (1u << 20)
#define DEFAULT_BATCH_RECORDS 8192u
#define DEFAULT_CACHE (64u << 20)
#define DEFAULT_APPENDS_IN_FLIGHT 16384u
#define DEFAULT_APPEND_BYTES_IN_FLIGHT (256ull << 20)
#define DEFAULT_FETCH_SERVE_MAX 4u
#define DEFAULT_FETCH_SERVE_BYTES (16u << 20)
#define DEFAULT_HELD_MAX 64u
#define DEFAULT_MAX_FORWARD_BYTES (64ull << 20)

static _Thread_local char tls_err[512];

static int fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tls_err, sizeof tls_err, fmt, ap);
    va_end(ap);
    return code;
}

void rl_set_errmsg(const char *msg)
{
    snprintf(tls_err, sizeof tls_err, "%s", msg);
}

/* RLOG_EFATAL with the cause after `what` (which ends in ": " or is ""):
 * the loop thread publishes the cause under mu. */
static int fail_stopped(rlog *log, const char *what)
{
    char cause[sizeof log->pub_fatal_msg];
    pthread_mutex_lock(&log->mu);
    snprintf(cause, sizeof cause, "%s", log->pub_fatal_msg);
    pthread_mutex_unlock(&log->mu);
    return fail(RLOG_EFATAL, "%s%s", what, cause);
}

const char *rlog_errmsg(rlog *log)
{
    (void)log;
    return tls_err;
}

const char *rlog_role_name(int role)
{
    switch (role) {
    case RLOG_ROLE_LEADER:
        return "leader";
    case RLOG_ROLE_FOLLOWER:
        return "follower";
    case RLOG_ROLE_CANDIDATE:
        return "candidate";
    default:
        return "unavailable";
    }
}

void rlog_config_init(struct rlog_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->segment_size = DEFAULT_SEGMENT;
    cfg->max_record_size = DEFAULT_MAX_RECORD;
    cfg->batch_max_bytes = DEFAULT_BATCH_BYTES;
    cfg->batch_max_records = DEFAULT_BATCH_RECORDS;
    cfg->cache_bytes = DEFAULT_CACHE;
    cfg->election_timeout_ms = 1000;
    cfg->heartbeat_timeout_ms = 100;
    cfg->snapshot_threshold = 128;
    cfg->snapshot_trailing = 256;
    cfg->fetch_serve_max = DEFAULT_FETCH_SERVE_MAX;
    cfg->fetch_serve_bytes = DEFAULT_FETCH_SERVE_BYTES;
    cfg->held_max = DEFAULT_HELD_MAX;
    cfg->max_appends_in_flight = DEFAULT_APPENDS_IN_FLIGHT;
    cfg->max_append_bytes_in_flight = DEFAULT_APPEND_BYTES_IN_FLIGHT;
    cfg->forward_appends = 1;
    cfg->max_forward_bytes = DEFAULT_MAX_FORWARD_BYTES;
}

enum { ADDR_OK, ADDR_SYNTAX, ADDR_PORT_RANGE };

/* "host:port" with a non-empty host and a decimal port in 1..65535: ADDR_OK
 * (the host is copied out), ADDR_SYNTAX, or ADDR_PORT_RANGE (a number, but
 * not a port: worth its own message). */
static int check_address(const char *a, char *host, size_t hostlen)
{
    if (!a || !*a || strlen(a) >= 64)
        return ADDR_SYNTAX;
    const char *colon = strrchr(a, ':');
    if (!colon || colon == a || (size_t)(colon - a) >= hostlen)
        return ADDR_SYNTAX;
    const char *digits = colon + 1;
    if (!*digits || strspn(digits, "0123456789") != strlen(digits))
        return ADDR_SYNTAX;
    errno = 0;
    unsigned long port = strtoul(digits, NULL, 10);
    if (errno || port < 1 || port > 65535)
        return ADDR_PORT_RANGE;
    memcpy(host, a, (size_t)(colon - a));
    host[colon - a] = '\0';
    return ADDR_OK;
}

/* The message for a bad address in `field`; RLOG_EINVAL. */
static int bad_address(char *err, size_t errlen, const char *field, const char *a, int problem)
{
    if (problem == ADDR_PORT_RANGE)
        snprintf(err, errlen, "%s \"%s\": port %s is out of range (1..65535)", field, a,
                 strrchr(a, ':') + 1);
    else
        snprintf(err, errlen, "%s \"%s\" is not HOST:PORT", field, a ? a : "(null)");
    return RLOG_EINVAL;
}

/* A cluster name is one token of the IDENTITY file: printable ASCII, no
 * spaces. "" means no name, like NULL. */
static bool valid_cluster_name(const char *name)
{
    size_t n = strlen(name);
    if (n > RL_CLUSTER_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (name[i] <= ' ' || name[i] > '~')
            return false;
    return true;
}

/* Loopback hosts: the only ones plain text is allowed to by default. */
static bool is_loopback(const char *host)
{
    struct in_addr a4;
    if (strcmp(host, "localhost") == 0 || strcmp(host, "::1") == 0 || strcmp(host, "[::1]") == 0)
        return true;
    return inet_pton(AF_INET, host, &a4) == 1 && (ntohl(a4.s_addr) >> 24) == 127;
}

/* TLS: all three files or none; without them, loopback or insecure only. */
static int validate_security(const struct rlog_config *c, char *err, size_t errlen)
{
#define BAD(...) (snprintf(err, errlen, __VA_ARGS__), RLOG_EINVAL)
    const char *files[3] = {c->tls_ca_file, c->tls_cert_file, c->tls_key_file};
    static const char *const names[3] = {"tls_ca_file", "tls_cert_file", "tls_key_file"};
    int have = 0;
    for (int i = 0; i < 3; i++)
        have += files[i] && files[i][0];
    for (int i = 0; i < 3 && have > 0 && have < 3; i++)
        if (!files[i] || !files[i][0])
            return BAD("config.%s is missing: tls_ca_file, tls_cert_file and tls_key_file "
                       "go together", names[i]);
    char host[64];
    for (unsigned i = 0; have == 0 && !c->insecure && i < c->n_peers; i++) {
        check_address(c->peers[i].address, host, sizeof host);
        if (!is_loopback(host))
            return BAD("config.peers[%u].address %s is not loopback and no TLS is configured: "
                       "peers would talk in plain text and trust any claimed id. Set "
                       "tls_ca_file, tls_cert_file and tls_key_file (rlogctl: "
                       "--peer-trusted-ca-file, --peer-cert-file, --peer-key-file), or set "
                       "insecure = 1 (--insecure) to accept that",
                       i, c->peers[i].address);
    }
    uint64_t frame = (uint64_t)c->batch_max_bytes + RL_IO_FRAME_ALLOWANCE;
    if (c->max_send_queue_bytes && c->max_send_queue_bytes < frame)
        return BAD("config.max_send_queue_bytes %" PRIu64 " is below the frame cap %" PRIu64
                   " (batch_max_bytes + %u)", c->max_send_queue_bytes, frame,
                   RL_IO_FRAME_ALLOWANCE);
    return 0;
#undef BAD
}

static int validate(const struct rlog_config *c, char *err, size_t errlen)
{
#define BAD(...) (snprintf(err, errlen, __VA_ARGS__), RLOG_EINVAL)
    char host[64];
    if (!c)
        return BAD("config is NULL");
    if (c->id == 0)
        return BAD("config.id must be >= 1");
    if (!c->data_dir || !c->data_dir[0])
        return BAD("config.data_dir is required");
    int problem = check_address(c->address, host, sizeof host);
    if (problem != ADDR_OK)
        return bad_address(err, errlen, "config.address", c->address, problem);
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *ai = NULL;
    int gai = getaddrinfo(host, NULL, &hints, &ai);
    if (gai != 0)
        return BAD("config.address \"%s\": cannot resolve \"%s\": %s", c->address, host,
                   gai_strerror(gai));
    freeaddrinfo(ai);
    if (!c->peers || c->n_peers == 0 || c->n_peers > RLOG_MAX_PEERS)
        return BAD("config.peers: between 1 and %d peers are required (got %u)", RLOG_MAX_PEERS,
                   c->n_peers);
    bool self = false;
    for (unsigned i = 0; i < c->n_peers; i++) {
        const struct rlog_peer *p = &c->peers[i];
        if (p->id == 0)
            return BAD("config.peers[%u].id must be >= 1", i);
        if ((problem = check_address(p->address, host, sizeof host)) != ADDR_OK) {
            char field[48];
            snprintf(field, sizeof field, "config.peers[%u].address", i);
            return bad_address(err, errlen, field, p->address, problem);
        }
        for (unsigned j = 0; j < i; j++) {
            if (c->peers[j].id == p->id)
                return BAD("config.peers: duplicate id %" PRIu64, p->id);
            if (!strcmp(c->peers[j].address, p->address))
                return BAD("config.peers: duplicate address %s (ids %" PRIu64 " and %" PRIu64 ")",
                           p->address, c->peers[j].id, p->id);
        }
        if (p->id == c->id) {
            self = true;
            if (strcmp(p->address, c->address) != 0)
                return BAD("config.peers: this node (id %" PRIu64 ") is listed at %s but config.address is %s",
                           c->id, p->address, c->address);
        }
    }
    if (!self)
        return BAD("config.peers: this node's id %" PRIu64 " is not in the cluster", c->id);
    if (c->segment_size < RL_STORE_MIN_SEGMENT_SIZE || c->segment_size % 4096)
        return BAD("config.segment_size %" PRIu64 " must be a multiple of 4096 and >= %u",
                   c->segment_size, RL_STORE_MIN_SEGMENT_SIZE);
    if (c->max_record_size == 0)
        return BAD("config.max_record_size must be >= 1");
    if (c->batch_max_records == 0 || c->batch_max_records > (1u << 20))
        return BAD("config.batch_max_records %u must be between 1 and 1048576", c->batch_max_records);
    if ((uint64_t)c->batch_max_bytes < (uint64_t)c->max_record_size + 64)
        return BAD("config.batch_max_bytes %u must exceed max_record_size %u by 64 bytes or more",
                   c->batch_max_bytes, c->max_record_size);
    if ((uint64_t)c->batch_max_bytes + 4096 > c->segment_size)
        return BAD("config.segment_size %" PRIu64 " cannot hold one batch of batch_max_bytes %u: "
                   "lower batch_max_bytes to %" PRIu64 " or less (and max_record_size to %" PRIu64
                   " or less), or raise segment_size to %" PRIu64 " or more",
                   c->segment_size, c->batch_max_bytes, c->segment_size - 4096,
                   c->segment_size - 4096 - 64, ((uint64_t)c->batch_max_bytes + 4096 + 4095) / 4096 * 4096);
    if (c->heartbeat_timeout_ms == 0 || c->election_timeout_ms <= c->heartbeat_timeout_ms)
        return BAD("config.heartbeat_timeout_ms (%u) must be >= 1 and below election_timeout_ms (%u)",
                   c->heartbeat_timeout_ms, c->election_timeout_ms);
    if (c->snapshot_threshold < 4 || c->snapshot_trailing < 4)
        return BAD("config.snapshot_threshold (%u) and snapshot_trailing (%u) must be >= 4",
                   c->snapshot_threshold, c->snapshot_trailing);
    if (c->cluster_name && !valid_cluster_name(c->cluster_name))
        return BAD("config.cluster_name \"%.80s\" must be 1 to %d printable ASCII characters "
                   "without spaces", c->cluster_name, RL_CLUSTER_NAME_MAX);
    /* Bounds on what peers can make this node hold (hardening); 0 is the
     * default (node.c, start). */
    if (c->fetch_serve_bytes && c->fetch_serve_bytes < (uint64_t)c->batch_max_bytes + 4096)
        return BAD("config.fetch_serve_bytes %" PRIu64 " must be >= batch_max_bytes + 4096 (%"
                   PRIu64 "): one entry must fit", c->fetch_serve_bytes,
                   (uint64_t)c->batch_max_bytes + 4096);
    if (c->forward_appends != 0 && c->forward_appends != 1)
        return BAD("config.forward_appends %d must be 0 or 1", c->forward_appends);
    if (c->max_forward_bytes && c->max_forward_bytes < c->batch_max_bytes)
        return BAD("config.max_forward_bytes %" PRIu64 " must be >= batch_max_bytes %u: one call "
                   "must fit", c->max_forward_bytes, c->batch_max_bytes);
    return validate_security(c, err, errlen);
#undef BAD
}

static void free_log(rlog *log)
{
    for (unsigned i = 0; i < log->cfg.n_peers && log->peers; i++)
        free((char *)log->peers[i].address);
    free(log->peers);
    free(log->address);
    free(log->data_dir);
    free(log->cluster_name);
    rl_fence_free(&log->fence);
    rl_cache_free(&log->cache);
    rl_repair_free(&log->repair);
    rl_producers_free(log);
    pthread_mutex_destroy(&log->mu);
    pthread_cond_destroy(&log->open_cv);
    pthread_cond_destroy(&log->visible_cv);
    pthread_cond_destroy(&log->room_cv);
    free(log);
}

/* Validates cfg and opens a node: on a loop thread of its own, or (stepped)
 * on the caller's. */
static int open_log(const struct rlog_config *cfg, rlog **out, char *errbuf, size_t errlen,
                    bool stepped)
{
    char err[512] = "";
    if (out)
        *out = NULL;
    int rv = out ? validate(cfg, err, sizeof err) : (snprintf(err, sizeof err, "out is NULL"), RLOG_EINVAL);
    rlog *log = NULL;
    if (rv == 0 && !(log = calloc(1, sizeof *log)))
        rv = RLOG_ENOMEM;
    if (rv == 0) {
        log->cfg = *cfg;
        log->address = strdup(cfg->address);
        log->data_dir = strdup(cfg->data_dir);
        log->peers = calloc(cfg->n_peers, sizeof *log->peers);
        pthread_mutex_init(&log->mu, NULL);
        rl_cache_init(&log->cache, cfg->cache_bytes);
        bool table = rl_producers_init(log) == 0;
        pthread_cond_init(&log->open_cv, NULL);
        pthread_cond_init(&log->visible_cv, NULL);
        pthread_cond_init(&log->room_cv, NULL);
        bool ok = table && log->address && log->data_dir && log->peers;
        if (ok && cfg->cluster_name)
            ok = (log->cluster_name = strdup(cfg->cluster_name)) != NULL;
        for (unsigned i = 0; ok && i < cfg->n_peers; i++) {
            log->peers[i].id = cfg->peers[i].id;
            ok = (log->peers[i].address = strdup(cfg->peers[i].address)) != NULL;
        }
        log->cfg.address = log->address;
        log->cfg.data_dir = log->data_dir;
        log->cfg.peers = log->peers;
        log->cfg.cluster_name = log->cluster_name;
        if (!ok)
            rv = RLOG_ENOMEM;
    }
    if (rv == 0 && stepped) {
        rl_batch_builder_init(&log->bb);
        log->thread = uv_thread_self();
        rv = rl_node_start_here(log);
        if (rv != 0)
            snprintf(err, sizeof err, "%s", log->open_err);
    } else if (rv == 0) {
        rl_batch_builder_init(&log->bb);
        if (uv_thread_create(&log->thread, rl_node_thread, log) != 0) {
            rv = RLOG_ENOMEM;
            snprintf(err, sizeof err, "cannot start the node thread");
        } else {
            pthread_mutex_lock(&log->mu);
            while (!log->open_done)
                pthread_cond_wait(&log->open_cv, &log->mu);
            rv = log->open_rv;
            pthread_mutex_unlock(&log->mu);
            if (rv != 0) {
                snprintf(err, sizeof err, "%s", log->open_err);
                uv_thread_join(&log->thread);
            }
        }
    }
    if (rv != 0) {
        if (rv == RLOG_ENOMEM && !err[0])
            snprintf(err, sizeof err, "out of memory");
        if (log)
            free_log(log);
        fail(rv, "%s", err);
        if (errbuf && errlen)
            snprintf(errbuf, errlen, "%s", err);
        return rv;
    }
    *out = log;
    return 0;
}

int rlog_open(const struct rlog_config *cfg, rlog **out, char *errbuf, size_t errlen)
{
    return open_log(cfg, out, errbuf, errlen, false);
}

int rl_open_stepped(const struct rlog_config *cfg, rlog **out, char *errbuf, size_t errlen)
{
    return open_log(cfg, out, errbuf, errlen, true);
}

void rl_free_stepped(rlog *log)
{
    rl_node_teardown(log);
    free_log(log);
}

/* Queues op to the loop; fails it (no callback) if the node is not taking work. */
int rl_submit(rlog *log, struct rl_op *op)
{
    pthread_mutex_lock(&log->mu);
    if (!log->accepting) {
        int fatal = log->pub_fatal;
        pthread_mutex_unlock(&log->mu);
        return fatal ? fail_stopped(log, "") : fail(RLOG_ECLOSED, "log is closing");
    }
    op->next = NULL;
    if (log->inbox_tail)
        log->inbox_tail->next = op;
    else
        log->inbox_head = op;
    log->inbox_tail = op;
    pthread_mutex_unlock(&log->mu);
    uv_async_send(&log->wake);
    return 0;
}

bool rl_on_loop_thread(rlog *log)
{
    uv_thread_t self = uv_thread_self();
    return uv_thread_equal(&self, &log->thread);
}

/* Runs op on the loop and waits; returns its status. op stays the caller's. */
static int run_blocking(rlog *log, struct rl_op *op)
{
    if (rl_on_loop_thread(log))
        return fail(RLOG_EINVAL, "blocking call from a liblog callback would deadlock");
    struct rl_waiter w = {.done = false};
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    op->waiter = &w;
    int rv = rl_submit(log, op);
    if (rv == 0) {
        pthread_mutex_lock(&w.mu);
        while (!w.done)
            pthread_cond_wait(&w.cv, &w.mu);
        pthread_mutex_unlock(&w.mu);
        rv = op->status;
        if (rv != 0)
            fail(rv, "%s", op->errmsg);
    }
    pthread_mutex_destroy(&w.mu);
    pthread_cond_destroy(&w.cv);
    return rv;
}

int rlog_close(rlog *log)
{
    if (!log)
        return RLOG_EINVAL;
    if (rl_on_loop_thread(log))
        return fail(RLOG_EINVAL, "rlog_close from a liblog callback would deadlock");
    struct rl_op op = {.kind = RL_OP_CLOSE};
    int rv = run_blocking(log, &op);
    if (rv == RLOG_ECLOSED)
        rv = 0; /* already stopping */
    uv_thread_join(&log->thread);
    rl_subs_end_all(log); /* they see RLOG_ECLOSED and stop */
    int fatal = log->pub_fatal;
    if (fatal) {
        fail_stopped(log, ""); /* the stop's cause, whatever rv was */
        rv = fatal;
    }
    free_log(log);
    return rv;
}

/* Copies the records into a new append op, after checking them. */
static int make_append(rlog *log, const struct rlog_buf *recs, unsigned n, struct rl_op **out)
{
    if (!log || !recs || n == 0)
        return fail(RLOG_EINVAL, "append: no records");
    if (n > log->cfg.batch_max_records)
        return fail(RLOG_ETOOBIG, "append: %u records in one call; batch_max_records is %u", n,
                    log->cfg.batch_max_records);
    size_t total = 0;
    for (unsigned i = 0; i < n; i++) {
        if (recs[i].len && !recs[i].base)
            return fail(RLOG_EINVAL, "append: record %u has no buffer", i);
        if (recs[i].len > log->cfg.max_record_size)
            return fail(RLOG_ETOOBIG, "append: record %u is %zu bytes; max_record_size is %u", i,
                        recs[i].len, log->cfg.max_record_size);
        total += recs[i].len;
    }
    if (total + 4u * n + 64 > log->cfg.batch_max_bytes)
        return fail(RLOG_ETOOBIG, "append: %zu bytes in one call; batch_max_bytes is %u", total,
                    log->cfg.batch_max_bytes);
    pthread_mutex_lock(&log->mu);
    int role = log->pub_role, fatal = log->pub_fatal;
    uint64_t leader = log->pub_leader_id;
    char addr[64];
    snprintf(addr, sizeof addr, "%s", log->pub_leader_addr);
    pthread_mutex_unlock(&log->mu);
    if (fatal) /* before the role: a failed node is no one's to ask */
        return fail_stopped(log, "append refused, nothing appended: this node failed stop: ");
    if (role != RLOG_ROLE_LEADER && !log->cfg.forward_appends) {
        if (leader)
            return fail(RLOG_ENOTLEADER, "not the leader; leader is %" PRIu64 " at %s", leader, addr);
        return fail(RLOG_ENOTLEADER, "not the leader; no leader is known yet");
    }
    struct rl_op *op = calloc(1, sizeof *op);
    if (op) {
        op->lens = malloc(n * sizeof *op->lens);
        op->data = malloc(total ? total : 1);
    }
    if (!op || !op->lens || !op->data) {
        if (op) {
            free(op->lens);
            free(op->data);
        }
        free(op);
        return fail(RLOG_ENOMEM, "append: out of memory");
    }
    op->kind = RL_OP_APPEND;
    op->n = n;
    op->bytes = total;
    op->t0_us = rl_now_us(); /* append-to-commit latency (node/metrics.c) */
    size_t pos = 0;
    for (unsigned i = 0; i < n; i++) {
        op->lens[i] = recs[i].len;
        if (recs[i].len)
            memcpy(op->data + pos, recs[i].base, recs[i].len);
        pos += recs[i].len;
    }
    *out = op;
    return 0;
}

static void free_op(struct rl_op *op)
{
    free(op->lens);
    free(op->data);
    free(op->buf);
    free(op);
}

/* Takes a place for op among the appends in flight (backpressure): 0, or
 * RLOG_EAGAIN when full and !wait, or RLOG_ECLOSED if the handle closes
 * while waiting. A call alone over the byte bound is still taken, so no
 * append is refused forever. rl_op_finish gives the place back. */
static int take_place(rlog *log, struct rl_op *op, bool wait)
{
    uint64_t max_n = log->cfg.max_appends_in_flight ? log->cfg.max_appends_in_flight
                                                    : DEFAULT_APPENDS_IN_FLIGHT;
    uint64_t max_b = log->cfg.max_append_bytes_in_flight ? log->cfg.max_append_bytes_in_flight
                                                         : DEFAULT_APPEND_BYTES_IN_FLIGHT;
    pthread_mutex_lock(&log->mu);
    for (;;) {
        bool room = log->appends_in_flight < max_n &&
                    (log->appends_in_flight == 0 || log->append_bytes_in_flight + op->bytes <= max_b);
        if (room || !log->accepting || !wait)
            break;
        pthread_cond_wait(&log->room_cv, &log->mu);
    }
    int rv = 0;
    if (!log->accepting)
        rv = fail(RLOG_ECLOSED, "append: the handle is closing");
    else if (log->appends_in_flight >= max_n)
        rv = fail(RLOG_EAGAIN, "append refused, nothing appended: %lu appends in flight on this "
                  "handle (max_appends_in_flight %" PRIu64 "); retry once some have completed",
                  log->appends_in_flight, max_n);
    else if (log->appends_in_flight > 0 && log->append_bytes_in_flight + op->bytes > max_b)
        rv = fail(RLOG_EAGAIN, "append refused, nothing appended: %" PRIu64 " bytes of appends in "
                  "flight on this handle, %zu more would pass max_append_bytes_in_flight %" PRIu64
                  "; retry once some have completed", log->append_bytes_in_flight, op->bytes, max_b);
    if (rv == 0) {
        log->appends_in_flight++;
        log->append_bytes_in_flight += op->bytes;
        op->counted = true;
    }
    pthread_mutex_unlock(&log->mu);
    return rv;
}

void rlog_append_opts_init(struct rlog_append_opts *o)
{
    if (o)
        *o = (struct rlog_append_opts){.expect_offset = RLOG_ANY_OFFSET};
}

/* An append op with opts applied, or an error (nothing appended). */
static int make_append_ex(rlog *log, const struct rlog_append_opts *o, const struct rlog_buf *recs,
                          unsigned n, struct rl_op **out)
{
    if (o && o->producer_id && o->sequence == 0)
        return fail(RLOG_EINVAL, "append: producer %" PRIu64 " needs a sequence number >= 1",
                    o->producer_id);
    int rv = make_append(log, recs, n, out);
    if (rv != 0)
        return rv;
    struct rl_op *op = *out;
    if (o && o->expect_offset != RLOG_ANY_OFFSET) {
        op->expect = true;
        op->expect_offset = o->expect_offset;
    }
    if (o && o->producer_id) {
        op->producer_id = o->producer_id;
        op->seq = o->sequence;
        op->hash = rl_batch_hash_lens(op->data, op->bytes, op->lens, op->n);
    }
    return 0;
}

int rlog_append_ex_async(rlog *log, const struct rlog_append_opts *opts,
                         const struct rlog_buf *recs, unsigned n, rlog_append_cb cb, void *arg)
{
    struct rl_op *op;
    int rv = make_append_ex(log, opts, recs, n, &op);
    if (rv != 0)
        return rv;
    op->cb = cb;
    op->cb_arg = arg;
    if ((rv = take_place(log, op, false)) == 0 && (rv = rl_submit(log, op)) != 0)
        rl_give_back_place(log, op);
    if (rv != 0)
        free_op(op);
    return rv;
}

int rlog_append_ex(rlog *log, const struct rlog_append_opts *opts, const struct rlog_buf *recs,
                   unsigned n, uint64_t *first_offset)
{
    struct rl_op *op;
    int rv = make_append_ex(log, opts, recs, n, &op);
    if (rv != 0)
        return rv;
    if (rl_on_loop_thread(log))
        rv = fail(RLOG_EINVAL, "blocking call from a liblog callback would deadlock");
    else if ((rv = take_place(log, op, true)) == 0 && (rv = run_blocking(log, op)) != 0)
        rl_give_back_place(log, op); /* not submitted, or answered: a no-op then */
    if ((rv == 0 || rv == RLOG_ECONFLICT) && first_offset)
        *first_offset = op->first_offset;
    free_op(op);
    return rv;
}

int rlog_append_async(rlog *log, const struct rlog_buf *recs, unsigned n, rlog_append_cb cb,
                      void *arg)
{
    return rlog_append_ex_async(log, NULL, recs, n, cb, arg);
}

int rlog_append_batch(rlog *log, const struct rlog_buf *recs, unsigned n, uint64_t *first_offset)
{
    return rlog_append_ex(log, NULL, recs, n, first_offset);
}

int rlog_append(rlog *log, const void *rec, size_t len, uint64_t *offset)
{
    struct rlog_buf b = {.base = rec, .len = len};
    return rlog_append_batch(log, &b, 1, offset);
}

/* What a host thread may read at `offset` without the loop thread: false
 * when only the loop can answer (closing, or trimmed there); else *visible
 * is the published commit point and *failed whether the node failed stop
 * (then that point moves no more). */
static bool published_readable(rlog *log, uint64_t offset, uint64_t *visible, bool *failed)
{
    pthread_mutex_lock(&log->mu);
    bool ok = log->accepting && offset >= log->pub_trim_offset;
    *visible = log->pub_visible_offset;
    *failed = log->pub_fatal != 0;
    pthread_mutex_unlock(&log->mu);
    return ok;
}

/* A committed record still in the read cache is copied on the caller's
 * thread: two wake-ups less than asking the loop thread. 1: ask it. */
static int read_here(rlog *log, uint64_t offset, void **buf, size_t *len)
{
    uint64_t visible;
    bool failed;
    if (!published_readable(log, offset, &visible, &failed) || offset >= visible)
        return 1; /* the loop thread says why */
    int rv = rl_cache_read(&log->cache, offset, visible, buf, len);
    return rv == RLOG_ENOMEM ? fail(rv, "out of memory") : rv;
}

int rlog_read(rlog *log, uint64_t offset, void **buf, size_t *len)
{
    if (!log || !buf || !len)
        return fail(RLOG_EINVAL, "read: NULL argument");
    int here = read_here(log, offset, buf, len);
    if (here <= 0)
        return here;
    struct rl_op op = {.kind = RL_OP_READ, .offset = offset};
    int rv = run_blocking(log, &op);
    if (rv == 0) {
        *buf = op.buf;
        *len = op.len;
    } else {
        free(op.buf);
    }
    return rv;
}

void rlog_free(void *buf)
{
    free(buf);
}

int rlog_status(rlog *log, struct rlog_status *st)
{
    if (!log || !st)
        return fail(RLOG_EINVAL, "status: NULL argument");
    struct rl_op op = {.kind = RL_OP_STATUS, .st = st};
    return run_blocking(log, &op);
}

int rlog_metrics(rlog *log, struct rlog_metrics *m)
{
    if (!log || !m)
        return fail(RLOG_EINVAL, "metrics: NULL argument");
    struct rl_op op = {.kind = RL_OP_METRICS, .metrics = m};
    return run_blocking(log, &op);
}

/* ---- membership ----------------------------------------------------------------- */

static int member(rlog *log, int kind, uint64_t id, const char *address)
{
    if (!log)
        return fail(RLOG_EINVAL, "NULL log");
    char host[64];
    if (kind != RL_MEMBER_TRANSFER && id == 0)
        return fail(RLOG_EINVAL, "node id must be >= 1");
    int problem = kind == RL_MEMBER_ADD ? check_address(address, host, sizeof host) : ADDR_OK;
    if (problem != ADDR_OK)
        return bad_address(tls_err, sizeof tls_err, "address", address, problem);
    struct rl_op op = {.kind = RL_OP_MEMBER, .member_kind = kind, .member_id = id};
    if (address)
        snprintf(op.member_addr, sizeof op.member_addr, "%s", address);
    return run_blocking(log, &op);
}

int rlog_add_node(rlog *log, uint64_t id, const char *address)
{
    return member(log, RL_MEMBER_ADD, id, address);
}

int rlog_remove_node(rlog *log, uint64_t id)
{
    return member(log, RL_MEMBER_REMOVE, id, NULL);
}

int rlog_transfer_leadership(rlog *log, uint64_t id)
{
    return member(log, RL_MEMBER_TRANSFER, id, NULL);
}

int rlog_barrier(rlog *log, uint64_t *offset)
{
    if (!log)
        return fail(RLOG_EINVAL, "NULL log");
    pthread_mutex_lock(&log->mu);
    int fatal = log->pub_fatal;
    pthread_mutex_unlock(&log->mu);
    if (fatal)
        return fail_stopped(log, "no barrier: this node failed stop: ");
    struct rl_op op = {.kind = RL_OP_BARRIER};
    int rv = run_blocking(log, &op);
    if (rv == 0 && offset)
        *offset = op.first_offset;
    return rv;
}

int rlog_trim(rlog *log, uint64_t before_offset)
{
    if (!log)
        return fail(RLOG_EINVAL, "NULL log");
    struct rl_op op = {.kind = RL_OP_TRIM, .offset = before_offset};
    return run_blocking(log, &op);
}

/* ---- iterator ----------------------------------------------------------------- */

struct rlog_iter {
    rlog *log;
    uint64_t next, to;
    unsigned char *chunk;  /* entries fetched in one trip (node.c do_fetch) */
    size_t chunk_len, pos; /* pos: the entry after the current one */
    uint64_t base;         /* offset of the current entry's first record */
    uint32_t count;        /* its visible records */
    struct rl_batch_view view;
};

int rlog_iter_open(rlog *log, uint64_t from, uint64_t to, rlog_iter **out)
{
    if (!log || !out || to < from)
        return fail(RLOG_EINVAL, "iter_open: bad arguments");
    rlog_iter *it = calloc(1, sizeof *it);
    if (!it)
        return fail(RLOG_ENOMEM, "out of memory");
    it->log = log;
    it->next = from;
    it->to = to;
    *out = it;
    return 0;
}

/* Serves the iterator without a trip to the loop thread when it can: a
 * reader following the log wants the entries that just became visible, and
 * those are in the read cache; two thread wake-ups would cost more than the
 * copy. Returns 0 with a new chunk, an error (RLOG_ENOTFOUND: nothing
 * committed at it->next yet), or 1: ask the loop thread (not cached, or a
 * state it explains better: closing, trimmed, past a failed stop). */
static int iter_load_here(rlog_iter *it)
{
    rlog *log = it->log;
    uint64_t visible;
    bool failed;
    if (!published_readable(log, it->next, &visible, &failed) || (failed && it->next >= visible))
        return 1; /* the loop thread says why */
    if (it->next >= visible)
        return fail(RLOG_ENOTFOUND, "offset %" PRIu64 " is not committed (the log's next offset is %"
                    PRIu64 ")", it->next, visible);
    struct rl_chunk ch = {0};
    if (rl_cache_copy(&log->cache, it->next, visible, RL_FETCH_BUDGET, &ch) == 0) {
        free(ch.p);
        return 1;
    }
    it->chunk = ch.p;
    it->chunk_len = ch.len;
    it->pos = 0;
    return 0;
}

/* Makes the entry holding it->next current, from the chunk or a new fetch. */
static int iter_load(rlog_iter *it)
{
    for (;;) {
        while (it->chunk && it->pos + 16 <= it->chunk_len) {
            const unsigned char *h = it->chunk + it->pos;
            uint64_t base = rl_get64(h);
            uint32_t count = rl_get32(h + 8), len = rl_get32(h + 12);
            it->pos += 16 + (size_t)rl_pad8(len);
            if (it->next < base || it->next >= base + count)
                continue;
            /* Chunks are copies of verified entries (cache.c, store). */
            if (!rl_batch_parse_layout(h + 16, len, &it->view))
                return fail(RLOG_ECORRUPT, "entry at offset %" PRIu64 " is not a valid batch", base);
            it->base = base;
            it->count = count;
            return 0;
        }
        free(it->chunk);
        it->chunk = NULL;
        it->count = 0;
        int rv = iter_load_here(it);
        if (rv < 0)
            return rv;
        if (rv == 0)
            continue;
        struct rl_op op = {.kind = RL_OP_FETCH, .offset = it->next};
        rv = run_blocking(it->log, &op);
        if (rv != 0) {
            free(op.buf);
            return rv;
        }
        it->chunk = op.buf;
        it->chunk_len = op.len;
        it->pos = 0;
    }
}

int rlog_iter_next(rlog_iter *it, const void **rec, size_t *len, uint64_t *offset)
{
    if (!it || !rec || !len)
        return fail(RLOG_EINVAL, "iter_next: NULL argument");
    if (it->next >= it->to)
        return fail(RLOG_ENOTFOUND, "end of range");
    if (it->count == 0 || it->next < it->base || it->next >= it->base + it->count) {
        int rv = iter_load(it);
        if (rv != 0)
            return rv;
    }
    rl_batch_record(&it->view, (uint32_t)(it->next - it->base), rec, len);
    if (offset)
        *offset = it->next;
    it->next++;
    return 0;
}

int rl_iter_wait_stop(rlog_iter *it, int timeout_ms, const bool *stop)
{
    if (!it)
        return fail(RLOG_EINVAL, "iter_wait: NULL iterator");
    if (rl_on_loop_thread(it->log))
        return fail(RLOG_EINVAL, "iter_wait from a liblog callback would deadlock");
    if (it->next >= it->to)
        return fail(RLOG_ENOTFOUND, "end of range");
    rlog *log = it->log;
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    if (timeout_ms > 0) {
        deadline.tv_sec += timeout_ms / 1000;
        deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (deadline.tv_nsec >= 1000000000L) {
            deadline.tv_sec++;
            deadline.tv_nsec -= 1000000000L;
        }
    }
    int rv = 0;
    pthread_mutex_lock(&log->mu);
    while (log->pub_visible_offset <= it->next) {
        if (stop && *stop) {
            rv = RLOG_ECANCELED;
            break;
        }
        if (!log->accepting || log->pub_fatal) {
            rv = log->pub_fatal ? RLOG_EFATAL : RLOG_ECLOSED;
            break;
        }
        if (timeout_ms == 0) {
            rv = RLOG_ETIMEOUT;
            break;
        }
        if (timeout_ms < 0)
            pthread_cond_wait(&log->visible_cv, &log->mu);
        else if (pthread_cond_timedwait(&log->visible_cv, &log->mu, &deadline) == ETIMEDOUT &&
                 log->pub_visible_offset <= it->next) {
            rv = RLOG_ETIMEOUT;
            break;
        }
    }
    pthread_mutex_unlock(&log->mu);
    if (rv == RLOG_ETIMEOUT)
        return fail(rv, "no record committed at offset %" PRIu64 " within %d ms", it->next,
                    timeout_ms);
    if (rv == RLOG_EFATAL)
        return fail_stopped(log, "nothing more will commit here: this node failed stop: ");
    if (rv == RLOG_ECLOSED)
        return fail(rv, "log is closing");
    return rv;
}

int rlog_iter_wait(rlog_iter *it, int timeout_ms)
{
    return rl_iter_wait_stop(it, timeout_ms, NULL);
}

void rlog_iter_close(rlog_iter *it)
{
    if (!it)
        return;
    free(it->chunk);
    free(it);
}
