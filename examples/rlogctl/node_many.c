/*
 * rlogctl node --many-logs: a host (rlog_host_open(3)) whose data
 * directory holds logs by name (DATA/logs/NAME/), each its own Raft group
 * among the hosts of --cluster. At start every log there is opened; at run
 * time create-log and delete-log add and remove them. Each log has its own
 * guard (struct hosted: users, closing) next to the node's, so delete-log
 * waits for the calls in flight on that log only, and its own failed stop,
 * which leaves the others serving.
 */
#include "node.h"

/* Serializes create-log, delete-log and the shutdown's closing of the logs,
 * which each take a log's handle in or out of the list over a slow liblog
 * call (never held by request handlers, so never under g_node.mu). */
static pthread_mutex_t admin_mu = PTHREAD_MUTEX_INITIALIZER;

/* ---- the list of logs (under g_node.mu) ------------------------------------ */

static struct hosted *hosted_new(const char *name)
{
    struct hosted *h = xmalloc(sizeof *h);
    memset(h, 0, sizeof *h);
    snprintf(h->name, sizeof h->name, "%s", name);
    return h;
}

/* Caller holds g_node.mu. */
static void hosted_unlink(struct hosted *h)
{
    for (struct hosted **pp = &g_node.logs; *pp != NULL; pp = &(*pp)->next)
        if (*pp == h) {
            *pp = h->next;
            break;
        }
    h->removed = 1;
    if (h->refs == 0)
        free(h);
}

/* Lists h in name order; one of its name there (not open: a create cut
 * short, now finished) gives way. */
static void hosted_insert(struct hosted *h)
{
    pthread_mutex_lock(&g_node.mu);
    struct hosted **pp = &g_node.logs;
    while (*pp != NULL && strcmp((*pp)->name, h->name) < 0)
        pp = &(*pp)->next;
    if (*pp != NULL && strcmp((*pp)->name, h->name) == 0)
        hosted_unlink(*pp); /* *pp is the next one now */
    h->next = *pp;
    *pp = h;
    pthread_mutex_unlock(&g_node.mu);
}

struct hosted *hosted_find(const char *name)
{
    pthread_mutex_lock(&g_node.mu);
    struct hosted *h = g_node.logs;
    while (h != NULL && strcmp(h->name, name) != 0)
        h = h->next;
    if (h != NULL)
        h->refs++;
    pthread_mutex_unlock(&g_node.mu);
    return h;
}

void hosted_release(struct hosted *h)
{
    pthread_mutex_lock(&g_node.mu);
    if (--h->refs == 0 && h->removed)
        free(h);
    pthread_mutex_unlock(&g_node.mu);
}

struct hosted **hosted_hold_all(unsigned *n)
{
    pthread_mutex_lock(&g_node.mu);
    unsigned count = 0;
    for (struct hosted *h = g_node.logs; h != NULL; h = h->next)
        count++;
    struct hosted **all = xmalloc((count ? count : 1) * sizeof *all);
    count = 0;
    for (struct hosted *h = g_node.logs; h != NULL; h = h->next) {
        h->refs++;
        all[count++] = h;
    }
    pthread_mutex_unlock(&g_node.mu);
    *n = count;
    return all;
}

void hosted_release_all(struct hosted **all, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        hosted_release(all[i]);
    free(all);
}

/* ---- one log's callbacks --------------------------------------------------- */

/* liblog's lines about one log, naming it (a host's logs share the node id). */
static void log_lib_log(void *arg, int level, const char *line)
{
    const struct hosted *h = arg;
    static const char *const names[] = {"debug", "info", "warning", "error"};
    int min_level = g_node.verbose >= 2 ? 0 : g_node.verbose == 1 ? 1 : 2;
    if (level >= min_level)
        node_log("%s: log %s: %s", names[level < 0 ? 0 : level > 3 ? 3 : level], h->name, line);
}

/* on_fatal of one log, on its loop thread: must not block, so it only
 * hands the cause to the main thread (many_log_failed_stops). */
static void on_log_failed_stop(void *arg, int code, const char *msg)
{
    struct hosted *h = arg;
    pthread_mutex_lock(&g_node.mu);
    h->fatal_code = code;
    snprintf(h->fatal_msg, sizeof h->fatal_msg, "%s", msg);
    pthread_mutex_unlock(&g_node.mu);
    uint64_t one = 1;
    ssize_t w = write(g_node.failed_fd, &one, sizeof one);
    (void)w;
}

/* Opens (create 0) or creates log h->name on the host with the command
 * line's per-log options; a log on a host takes the host's id, address and
 * TLS files. Sets h->log, or returns the error with err set. */
static int open_log(struct hosted *h, int create, int join, const struct rlog_peer *peers,
                    unsigned n_peers, char *err, size_t errlen)
{
    struct rlog_config cfg;
    node_config(g_node.args, &cfg);
    cfg.address = NULL;
    cfg.data_dir = NULL; /* by name, in the host's data directory */
    cfg.cluster_name = h->name;
    cfg.tls_ca_file = cfg.tls_cert_file = cfg.tls_key_file = NULL;
    cfg.peers = peers;
    cfg.n_peers = n_peers;
    cfg.join = join;
    cfg.balance_leaders = !g_node.args->no_balance;
    cfg.log_fn = log_lib_log;
    cfg.log_arg = h;
    cfg.on_fatal = on_log_failed_stop;
    cfg.on_fatal_arg = h;
    err[0] = '\0';
    return create ? rlog_create_on(g_node.host, &cfg, &h->log, err, errlen)
                  : rlog_open_on(g_node.host, &cfg, &h->log, err, errlen);
}

/* ---- start ------------------------------------------------------------------ */

struct names {
    char **v;
    unsigned n, cap;
};

static int collect_name(void *arg, const char *name)
{
    struct names *ns = arg;
    if (ns->n == ns->cap) {
        ns->cap = ns->cap ? 2 * ns->cap : 16;
        char **v = realloc(ns->v, ns->cap * sizeof *v);
        if (v == NULL)
            return 1;
        ns->v = v;
    }
    ns->v[ns->n++] = strdup(name);
    return ns->v[ns->n - 1] == NULL;
}

/* Opens one log found in the data directory; one that fails is listed as
 * not open, with why, and the node goes on without it. */
static int open_existing(const char *name)
{
    const struct node_args *a = g_node.args;
    struct hosted *h = hosted_new(name);
    char err[256];
    /* Every host: an address book only, since an open never bootstraps. */
    int rc = open_log(h, 0, 0, a->peers, a->n_peers, err, sizeof err);
    if (rc != 0) {
        h->open_code = rc;
        snprintf(h->open_error, sizeof h->open_error, "%s", err[0] ? err : rlog_strerror(rc));
        node_log("error: log %s: cannot open it: %s: %s; serving the other logs", name,
                 rlog_errname(rc), h->open_error);
    }
    hosted_insert(h);
    return rc == 0;
}

int many_open(const struct node_args *a, char *err, size_t errlen)
{
    struct rlog_host_config hc;
    node_host_config(a, &hc);
    hc.data_dir = a->data;
    int rc = rlog_host_open(&hc, &g_node.host, err, errlen);
    if (rc != 0)
        return rc;
    struct names ns = {0};
    rc = rlog_host_list_logs(g_node.host, collect_name, &ns);
    if (rc != 0) {
        snprintf(err, errlen, "listing the logs in %s: %s", a->data, rlog_errmsg(NULL));
    } else {
        unsigned opened = 0;
        for (unsigned i = 0; i < ns.n; i++)
            opened += (unsigned)open_existing(ns.v[i]);
        node_log("%u of %u %s open", opened, ns.n, plural(ns.n, "log", "logs"));
    }
    for (unsigned i = 0; i < ns.n; i++)
        free(ns.v[i]);
    free(ns.v);
    if (rc != 0) {
        many_close();
        rlog_host_close(g_node.host);
        g_node.host = NULL;
    }
    return rc;
}

/* ---- while serving (the main thread) ----------------------------------------- */

void many_log_failed_stops(void)
{
    uint64_t n;
    ssize_t r = read(g_node.failed_fd, &n, sizeof n);
    (void)r;
    for (;;) {
        char name[CTL_MAX_LOG_NAME + 1] = "", msg[256] = "";
        int code = 0;
        pthread_mutex_lock(&g_node.mu);
        for (struct hosted *h = g_node.logs; h != NULL; h = h->next)
            if (h->fatal_code != 0 && !h->fatal_logged) {
                h->fatal_logged = 1;
                code = h->fatal_code;
                snprintf(name, sizeof name, "%s", h->name);
                snprintf(msg, sizeof msg, "%s", h->fatal_msg);
                break;
            }
        pthread_mutex_unlock(&g_node.mu);
        if (code == 0)
            return;
        node_log("error: log %s: failed stop: %s: %s; it stays open, failed (status shows it, "
                 "appends are refused with RLOG_EFATAL), and the other logs serve on; restart "
                 "the node once the cause is fixed", name, rlog_errname(code), msg);
    }
}

/* Logs whose status one poll reads: with thousands of logs a poll of every
 * one each time would cost a status call per log every STATUS_POLL_MS. */
#define POLL_LOGS 32

void many_poll_status(void)
{
    static unsigned next; /* round robin: the main thread alone polls */
    unsigned n;
    struct hosted **all = hosted_hold_all(&n);
    for (unsigned k = 0; k < n && k < POLL_LOGS; k++, next++)
        poll_status(all[next % n], &all[next % n]->seen);
    hosted_release_all(all, n);
}

/* ---- create-log, delete-log ---------------------------------------------------- */

/* The members' addresses from --cluster; none given: every host. */
static int member_peers(const uint64_t *ids, unsigned n_ids, struct rlog_peer *peers,
                        unsigned *n, char *err, size_t errlen)
{
    const struct node_args *a = g_node.args;
    *n = 0;
    if (n_ids == 0) {
        memcpy(peers, a->peers, a->n_peers * sizeof *peers);
        *n = a->n_peers;
        return 0;
    }
    for (unsigned i = 0; i < n_ids; i++) {
        unsigned j = 0;
        while (j < a->n_peers && a->peers[j].id != ids[i])
            j++;
        if (j == a->n_peers) {
            snprintf(err, errlen, "member %" PRIu64 " is not a host of this node's --cluster",
                     ids[i]);
            return RLOG_EINVAL;
        }
        peers[(*n)++] = a->peers[j];
    }
    return 0;
}

int many_create(const char *name, int join, const uint64_t *ids, unsigned n_ids, char *err,
                size_t errlen)
{
    struct rlog_peer peers[NODE_MAX_PEERS];
    unsigned n = 0;
    /* A log made to join learns its members from the leader that adds it. */
    int rc = member_peers(join ? NULL : ids, join ? 0 : n_ids, peers, &n, err, errlen);
    if (rc != 0)
        return rc;
    pthread_mutex_lock(&admin_mu);
    struct hosted *old = hosted_find(name);
    pthread_mutex_lock(&g_node.mu);
    int closing = g_node.closing, open = old != NULL && old->log != NULL;
    pthread_mutex_unlock(&g_node.mu);
    if (closing) {
        rc = RLOG_ECLOSED;
        snprintf(err, errlen, "node is shutting down");
    } else if (open) {
        rc = RLOG_EEXISTS;
        snprintf(err, errlen, "log %s exists on this host (and is open)", name);
    } else {
        struct hosted *h = hosted_new(name);
        rc = open_log(h, 1, join, peers, n, err, errlen);
        if (rc == 0)
            hosted_insert(h);
        else
            free(h);
    }
    if (old != NULL)
        hosted_release(old);
    pthread_mutex_unlock(&admin_mu);
    if (rc == 0)
        node_log("log %s: created%s", name, join ? ", waiting to be added (add-node on its "
                 "leader)" : "");
    return rc;
}

/* Takes h's handle out for delete-log: no new users, then waits (bounded)
 * for those in flight; tails and range reads on it see log_closing and end
 * within a second. Returns the handle (NULL: h was not open), or sets *rc
 * (RLOG_EBUSY: still in use, nothing changed). */
static rlog *take_for_delete(struct hosted *h, int *rc, char *err, size_t errlen)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += CTL_DELETE_WAIT_MS / 1000;
    pthread_mutex_lock(&g_node.mu);
    h->closing = 1;
    while (h->users > 0)
        if (pthread_cond_timedwait(&g_node.cv, &g_node.mu, &until) == ETIMEDOUT)
            break;
    rlog *log = NULL;
    *rc = 0;
    if (h->users > 0) {
        *rc = RLOG_EBUSY;
        snprintf(err, errlen, "%u %s still in flight on log %s after %d s (add-node waiting "
                 "for a catch-up?); nothing deleted", h->users,
                 plural(h->users, "request", "requests"), h->name, CTL_DELETE_WAIT_MS / 1000);
        h->closing = 0;
    } else {
        log = h->log;
        h->log = NULL;
    }
    pthread_mutex_unlock(&g_node.mu);
    return log;
}

int many_delete(const char *name, char *err, size_t errlen)
{
    pthread_mutex_lock(&admin_mu);
    int rc = 0;
    err[0] = '\0';
    struct hosted *h = hosted_find(name);
    rlog *log = NULL;
    if (is_closing()) {
        rc = RLOG_ECLOSED;
        snprintf(err, errlen, "node is shutting down");
    } else if (h != NULL) {
        log = take_for_delete(h, &rc, err, errlen);
    }
    if (log != NULL && rlog_close(log) != 0)
        node_log("log %s: closed for delete-log after its failed stop (%s)", name,
                 rlog_errmsg(NULL));
    if (rc == 0) {
        rc = rlog_host_delete_log(g_node.host, name, err, errlen);
        if (rc == RLOG_ENOTFOUND && !err[0])
            snprintf(err, errlen, "no log named %s on this host", name);
    }
    if (h != NULL) {
        pthread_mutex_lock(&g_node.mu);
        if (rc == 0) {
            hosted_unlink(h);
        } else if (h->closing) {
            /* Closed, but its directory stays: listed as not open. */
            h->closing = 0;
            h->open_code = rc;
            snprintf(h->open_error, sizeof h->open_error, "closed by delete-log, which then "
                     "failed: %s", err);
        }
        pthread_mutex_unlock(&g_node.mu);
        hosted_release(h);
    }
    pthread_mutex_unlock(&admin_mu);
    if (rc == 0)
        node_log("log %s: deleted", name);
    return rc;
}

/* ---- shutdown ------------------------------------------------------------------ */

unsigned many_close(void)
{
    unsigned failed = 0;
    pthread_mutex_lock(&admin_mu);
    for (;;) {
        pthread_mutex_lock(&g_node.mu);
        struct hosted *h = g_node.logs;
        while (h != NULL && h->log == NULL)
            h = h->next;
        rlog *log = h != NULL ? h->log : NULL;
        if (h != NULL)
            h->log = NULL;
        pthread_mutex_unlock(&g_node.mu);
        if (h == NULL)
            break;
        if (rlog_close(log) != 0) {
            failed++;
            node_log("log %s: closed after its failed stop: %s", h->name, rlog_errmsg(NULL));
        }
    }
    pthread_mutex_lock(&g_node.mu);
    while (g_node.logs != NULL)
        hosted_unlink(g_node.logs);
    pthread_mutex_unlock(&g_node.mu);
    pthread_mutex_unlock(&admin_mu);
    return failed;
}
