/*
 * rlogctl node: one node of the replicated log. cmd_node opens it
 * (rlog_open), serves the control socket (control.c) until SIGTERM/SIGINT/SIGHUP or
 * a failed stop, and shuts down gracefully. With --many-logs the node is a
 * host holding many logs (node_many.c), and only a signal stops it. Also
 * here: the node's state shared with the request handlers, its log lines,
 * and the guard that keeps liblog calls out of the shutdown.
 */
#include "args.h"
#include "metrics_http.h"
#include "node.h"

struct node g_node = {
    .mu = PTHREAD_MUTEX_INITIALIZER,
    .cv = PTHREAD_COND_INITIALIZER,
};

/* One line to stderr, with a timestamp and the node id; one write() so lines
 * from different threads do not interleave. */
void node_log(const char *fmt, ...)
{
    char line[1024];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "%02d:%02d:%02d.%03ld node %" PRIu64 ": ", tm.tm_hour,
                     tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, g_node.id);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof line - 2)
        len = sizeof line - 2;
    line[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}

void lib_log(void *arg, int level, const char *line)
{
    const struct node *nd = arg;
    static const char *const names[] = {"debug", "info", "warning", "error"};
    int min_level = nd->verbose >= 2 ? 0 : nd->verbose == 1 ? 1 : 2;
    if (level < min_level)
        return;
    node_log("%s: %s", names[level < 0 ? 0 : level > 3 ? 3 : level], line);
}

/* liblog's on_fatal, on its loop thread: must not block, so it only hands
 * the cause to the main thread, which logs it and shuts the node down. */
static void on_failed_stop(void *arg, int code, const char *msg)
{
    struct node *nd = arg;
    pthread_mutex_lock(&nd->mu);
    nd->fatal_code = code;
    snprintf(nd->fatal_msg, sizeof nd->fatal_msg, "%s", msg);
    pthread_mutex_unlock(&nd->mu);
    uint64_t one = 1;
    ssize_t w = write(nd->failed_fd, &one, sizeof one);
    (void)w;
}

rlog *log_enter(struct hosted *h)
{
    pthread_mutex_lock(&g_node.mu);
    rlog *log = g_node.closing ? NULL : h == NULL ? g_node.log : h->closing ? NULL : h->log;
    if (log != NULL) {
        /* Counted twice: the shutdown waits for every call, delete-log for
         * those on its log. */
        g_node.api_users++;
        if (h != NULL)
            h->users++;
    }
    pthread_mutex_unlock(&g_node.mu);
    return log;
}

void log_leave(struct hosted *h)
{
    pthread_mutex_lock(&g_node.mu);
    g_node.api_users--;
    if (h != NULL)
        h->users--;
    pthread_cond_broadcast(&g_node.cv);
    pthread_mutex_unlock(&g_node.mu);
}

/* The end frame of a request log_enter turned away, saying why. */
void put_refused(struct buf *out, const struct hosted *h)
{
    char msg[512];
    int code = RLOG_ECLOSED;
    pthread_mutex_lock(&g_node.mu);
    if (g_node.closing || (h == NULL && !g_node.many)) {
        snprintf(msg, sizeof msg, "node is shutting down");
    } else if (h == NULL) {
        code = RLOG_EINVAL;
        snprintf(msg, sizeof msg, "this node holds many logs; name one with --log NAME "
                 "(rlogctl list-logs shows them)");
    } else if (h->closing) {
        snprintf(msg, sizeof msg, "log %s is being deleted", h->name);
    } else {
        code = h->open_code;
        snprintf(msg, sizeof msg, "log %s is not open: %s", h->name, h->open_error);
    }
    pthread_mutex_unlock(&g_node.mu);
    put_end(out, code, 0, 0, 0, "", msg);
}

int log_closing(const struct hosted *h)
{
    pthread_mutex_lock(&g_node.mu);
    int c = g_node.closing || (h != NULL && h->closing);
    pthread_mutex_unlock(&g_node.mu);
    return c;
}

int is_closing(void)
{
    return log_closing(NULL);
}

/* Logs role and leader changes of log h (NULL: the node's one log) seen
 * by polling rlog_status (a failed stop is logged when liblog reports it,
 * by on_failed_stop). */
void poll_status(struct hosted *h, struct seen *s)
{
    struct rlog_status st;
    rlog *log = log_enter(h);
    if (log == NULL)
        return;
    int rc = rlog_status(log, &st);
    char emsg[256];
    snprintf(emsg, sizeof emsg, "%s", rc ? rlog_errmsg(log) : "");
    log_leave(h);
    char who[CTL_MAX_LOG_NAME + 8] = ""; /* which log, on a node of many */
    if (h != NULL)
        snprintf(who, sizeof who, "log %s: ", h->name);
    if (rc != 0) {
        if (!s->status_err)
            node_log("error: %srlog_status: %s: %s", who, rlog_errname(rc), emsg);
        s->status_err = 1;
        return;
    }
    s->status_err = 0;
    if (!s->valid || st.role != s->role) {
        if (st.role == RLOG_ROLE_FOLLOWER && st.leader_id != 0)
            node_log("%sbecame follower in term %" PRIu64 "; leader is %" PRIu64 " at %s", who,
                     st.term, st.leader_id, st.leader_address);
        else
            node_log("%sbecame %s in term %" PRIu64, who, rlog_role_name(st.role), st.term);
    } else if (st.leader_id != s->leader_id && st.role == RLOG_ROLE_FOLLOWER) {
        if (st.leader_id != 0)
            node_log("%sleader is now %" PRIu64 " at %s (term %" PRIu64 ")", who, st.leader_id,
                     st.leader_address, st.term);
        else
            node_log("%sleader unknown (term %" PRIu64 ")", who, st.term);
    } else if (st.term != s->term && st.role == RLOG_ROLE_CANDIDATE) {
        node_log("%sstill candidate, term %" PRIu64, who, st.term);
    }
    s->valid = 1;
    s->role = st.role;
    s->term = st.term;
    s->leader_id = st.leader_id;
}

/* Logs the failed stop liblog reported, with its cause; returns when the
 * node is to exit (after `linger_ms` of answering on the control socket). */
static int64_t log_failed_stop(int failed_fd, uint64_t linger_ms)
{
    uint64_t n;
    ssize_t r = read(failed_fd, &n, sizeof n);
    (void)r;
    pthread_mutex_lock(&g_node.mu);
    int code = g_node.fatal_code;
    char msg[sizeof g_node.fatal_msg];
    snprintf(msg, sizeof msg, "%s", g_node.fatal_msg);
    pthread_mutex_unlock(&g_node.mu);
    if (linger_ms)
        node_log("error: failed stop: %s: %s; answering status and reads (appends are refused) "
                 "for %" PRIu64 " ms, then exiting with status %d", rlog_errname(code), msg,
                 linger_ms, EXIT_FAILSTOP);
    else
        node_log("error: failed stop: %s: %s; exiting with status %d", rlog_errname(code), msg,
                 EXIT_FAILSTOP);
    return now_ms() + (int64_t)linger_ms;
}

/* Signals go to a signalfd read by this thread; block them before any
 * thread (liblog's loop thread, client threads) exists so all inherit it.
 * Also makes the eventfd that on_failed_stop writes. Returns the signalfd,
 * or -1 after saying why. */
static int node_signals(void)
{
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    /* SIGHUP too: a closed terminal or session (and the kernel's SIGHUP to
     * a stopped process whose process group was orphaned) would otherwise
     * kill the node mid-write without a word; it closes cleanly instead. */
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    int sfd = signalfd(-1, &sigs, SFD_CLOEXEC | SFD_NONBLOCK);
    g_node.failed_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (sfd < 0 || g_node.failed_fd < 0) {
        fprintf(stderr, "%s node: signalfd/eventfd: %s\n", progname, strerror(errno));
        return -1;
    }
    return sfd;
}

/* liblog's configuration from the command line: what was not given keeps
 * rlog_config_init's default. */
void node_config(const struct node_args *a, struct rlog_config *cfg)
{
    rlog_config_init(cfg);
    cfg->id = a->id;
    cfg->address = a->address;
    cfg->data_dir = a->data;
    cfg->peers = a->peers;
    cfg->n_peers = a->n_peers;
    cfg->join = a->join;
    cfg->cluster_name = a->cluster_name;
    cfg->tls_ca_file = a->ca_file;
    cfg->tls_cert_file = a->cert_file;
    cfg->tls_key_file = a->key_file;
    cfg->insecure = a->insecure;
    if (a->no_forward)
        cfg->forward_appends = 0;
    cfg->retention_bytes = a->retention_bytes;
    cfg->retention_ms = a->retention_ms;
    if (a->retention_check_ms)
        cfg->retention_check_ms = (unsigned)a->retention_check_ms;
    cfg->frame_timeout_ms = (unsigned)a->frame_timeout;
    cfg->idle_timeout_ms = (unsigned)a->idle_timeout;
    if (a->election)
        cfg->election_timeout_ms = (unsigned)a->election;
    if (a->heartbeat)
        cfg->heartbeat_timeout_ms = (unsigned)a->heartbeat;
    if (a->segment_size)
        cfg->segment_size = a->segment_size;
    if (a->cache_bytes != UINT64_MAX)
        cfg->cache_bytes = a->cache_bytes;
    if (a->snap_threshold)
        cfg->snapshot_threshold = (unsigned)a->snap_threshold;
    if (a->snap_trailing)
        cfg->snapshot_trailing = (unsigned)a->snap_trailing;
    cfg->log_fn = lib_log;
    cfg->log_arg = &g_node;
    cfg->on_fatal = on_failed_stop;
    cfg->on_fatal_arg = &g_node;
}

/* The host's configuration from the command line (--host-transport,
 * --many-logs): its address, id and cluster, the TLS files, no data
 * directory. */
void node_host_config(const struct node_args *a, struct rlog_host_config *hc)
{
    rlog_host_config_init(hc);
    hc->address = a->address;
    hc->id = a->id;
    hc->cluster_name = a->cluster_name;
    hc->tls_ca_file = a->ca_file;
    hc->tls_cert_file = a->cert_file;
    hc->tls_key_file = a->key_file;
    hc->insecure = a->insecure;
    hc->log_fn = lib_log;
    hc->log_arg = &g_node;
}

/* Opens the log, then its control socket. Returns the listening socket, or
 * -1 after saying why (the log closed again). */
static int node_open(const struct node_args *a, struct metrics_http **http)
{
    struct rlog_config cfg;
    node_config(a, &cfg);
    char errbuf[512] = "";
    /* Before the log opens: an address in use stops the start cleanly. */
    *http = NULL;
    if (a->metrics_address && !(*http = metrics_http_open(a->metrics_address, errbuf, sizeof errbuf))) {
        fprintf(stderr, "%s node %" PRIu64 ": --metrics-address: %s\n", progname, a->id, errbuf);
        return -1;
    }
    int rc = 0;
    if (a->many_logs) {
        rc = many_open(a, errbuf, sizeof errbuf);
    } else if (a->host_transport) {
        /* A host of one log here; a process holding many would open them
         * all on the one host (rlog_open_on). The TLS files are the host's. */
        struct rlog_host_config hc;
        node_host_config(a, &hc);
        rc = rlog_host_open(&hc, &g_node.host, errbuf, sizeof errbuf);
        cfg.address = NULL;
        cfg.tls_ca_file = cfg.tls_cert_file = cfg.tls_key_file = NULL;
        if (rc == 0 && (rc = rlog_open_on(g_node.host, &cfg, &g_node.log, errbuf,
                                          sizeof errbuf)) != 0) {
            rlog_host_close(g_node.host);
            g_node.host = NULL;
        }
    } else {
        rc = rlog_open(&cfg, &g_node.log, errbuf, sizeof errbuf);
    }
    if (rc != 0) {
        fprintf(stderr, "%s node %" PRIu64 ": cannot open the %s: %s: %s\n", progname, a->id,
                a->many_logs ? "host" : "log", rlog_errname(rc),
                errbuf[0] ? errbuf : rlog_strerror(rc));
        metrics_http_close(*http);
        return -1;
    }
    if (*http && metrics_http_start(*http, node_metrics_text, NULL, errbuf, sizeof errbuf) != 0) {
        node_log("error: %s", errbuf);
        metrics_http_close(*http);
        *http = NULL;
    }
    /* The data directory is ours now (rlog_open locks it), so the control
     * socket next to it can be (re)created safely. */
    int lfd = control_listen(a->control);
    if (lfd < 0) {
        metrics_http_close(*http);
        if (a->many_logs)
            many_close();
        else
            rlog_close(g_node.log);
        if (g_node.host)
            rlog_host_close(g_node.host);
        g_node.host = NULL;
        return -1;
    }
    if (a->many_logs)
        node_log("started: many logs, host %s at %s, data %s, control %s, %u %s, liblog %s",
                 a->cluster_name, a->address, a->data, a->control, a->n_peers,
                 plural(a->n_peers, "host", "hosts"), rlog_version_string());
    else
        node_log("started: address %s, data %s, control %s, %u %s%s, liblog %s", a->address,
                 a->data, a->control, a->n_peers, plural(a->n_peers, "peer", "peers"),
                 a->join ? ", joining a running cluster" : "", rlog_version_string());
    return lfd;
}

/* Accepts control clients and logs role changes until SIGTERM/SIGINT/SIGHUP, or
 * `linger_ms` after a failed stop. Returns whether the node failed stop. */
static int node_serve(int lfd, int sfd, uint64_t linger_ms)
{
    struct seen seen = {0};
    int64_t next_poll = 0, exit_at = INT64_MAX; /* exit_at: set by a failed stop */
    int signo = 0, failed = 0;
    int64_t accept_at = 0; /* accepting paused until then (out of descriptors) */
    while (signo == 0 && now_ms() < exit_at) {
        int64_t t = now_ms();
        if (t >= next_poll) {
            if (g_node.many)
                many_poll_status();
            else
                poll_status(NULL, &seen);
            next_poll = t + STATUS_POLL_MS;
        }
        int accepting = t >= accept_at;
        struct pollfd pfd[3] = {{.fd = accepting ? lfd : -1, .events = POLLIN},
                                {.fd = sfd, .events = POLLIN},
                                {.fd = g_node.failed_fd, .events = POLLIN}};
        int64_t until = next_poll < exit_at ? next_poll : exit_at;
        if (!accepting && accept_at < until)
            until = accept_at;
        int wait = (int)(until - now_ms());
        int pr = poll(pfd, 3, wait < 0 ? 0 : wait);
        if (pr < 0 && errno != EINTR) {
            node_log("error: poll: %s", strerror(errno));
            break;
        }
        if (pr > 0 && (pfd[1].revents & POLLIN)) {
            struct signalfd_siginfo si;
            if (read(sfd, &si, sizeof si) == (ssize_t)sizeof si)
                signo = (int)si.ssi_signo;
        }
        if (pr > 0 && (pfd[0].revents & POLLIN) && signo == 0) {
            int pause = accept_client(lfd);
            if (pause > 0)
                accept_at = now_ms() + pause;
        }
        if (pr > 0 && (pfd[2].revents & POLLIN) && g_node.many) {
            /* One log's failed stop: it stays open, failed; the others serve on. */
            many_log_failed_stops();
        } else if (pr > 0 && (pfd[2].revents & POLLIN) && !failed) {
            failed = 1;
            exit_at = log_failed_stop(g_node.failed_fd, linger_ms);
        }
    }
    if (signo)
        node_log("received %s, shutting down",
                 signo == SIGTERM ? "SIGTERM" : signo == SIGHUP ? "SIGHUP" : "SIGINT");
    return failed;
}

/* The first half of the graceful shutdown: stop accepting, then let requests
 * in liblog calls finish (bounded). Returns how many are still inside one. */
static unsigned node_quiesce(int lfd, const char *control, struct metrics_http *http)
{
    close(lfd);
    unlink(control);
    metrics_http_close(http);
    pthread_mutex_lock(&g_node.mu);
    g_node.closing = 1;
    for (unsigned i = 0; i < CTL_MAX_CLIENTS; i++)
        if (g_node.client_fd[i] >= 0)
            shutdown(g_node.client_fd[i], SHUT_RD); /* wakes idle readers */
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 10;
    while (g_node.api_users > 0)
        if (pthread_cond_timedwait(&g_node.cv, &g_node.mu, &until) == ETIMEDOUT)
            break;
    unsigned stuck = g_node.api_users;
    pthread_mutex_unlock(&g_node.mu);
    return stuck;
}

/* Waits (bounded) for the client threads to send their last answers. */
static void wait_clients(void)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 2;
    pthread_mutex_lock(&g_node.mu);
    while (g_node.n_clients > 0)
        if (pthread_cond_timedwait(&g_node.cv, &g_node.mu, &until) == ETIMEDOUT)
            break;
    pthread_mutex_unlock(&g_node.mu);
}

/* node_close of a --many-logs node: a log that failed stop was logged as it
 * happened and does not change the exit status (the signal stopped the
 * node, not the failure). */
static int node_close_many(void)
{
    unsigned failed = many_close();
    if (rlog_host_close(g_node.host) != 0)
        node_log("warning: closing the host: %s", rlog_errmsg(NULL));
    g_node.host = NULL;
    wait_clients();
    if (failed)
        node_log("closed; %u %s had failed stop (restart the node once the cause is fixed to "
                 "open %s again)", failed, plural(failed, "log", "logs"),
                 plural(failed, "it", "them"));
    else
        node_log("closed cleanly");
    return 0;
}

/* The second half: rlog_close (which fails still-pending appends with
 * RLOG_ECLOSED), then give client threads a moment to send their answers.
 * Returns the exit status. */
static int node_close(int failed)
{
    if (g_node.many)
        return node_close_many();
    int rc = rlog_close(g_node.log);
    char close_msg[256];
    snprintf(close_msg, sizeof close_msg, "%s", rc ? rlog_errmsg(NULL) : "");
    g_node.log = NULL;
    if (g_node.host && rlog_host_close(g_node.host) != 0)
        node_log("warning: closing the host: %s", rlog_errmsg(NULL));
    g_node.host = NULL;
    wait_clients();
    if (rc != 0) {
        /* rlog_close fails only with a failed stop's cause; one that came
         * during the shutdown was not logged yet. */
        if (!failed)
            node_log("error: failed stop: %s: %s", rlog_errname(rc), close_msg);
        node_log("log closed; exiting with status %d for the supervisor", EXIT_FAILSTOP);
        return EXIT_FAILSTOP;
    }
    node_log("closed cleanly");
    return 0;
}

int cmd_node(int argc, char **argv)
{
    struct node_args a;
    int rc = node_parse_args(argc, argv, &a);
    if (rc != NODE_RUN)
        return rc;
    g_node.id = a.id;
    g_node.verbose = a.verbose;
    g_node.many = a.many_logs;
    g_node.args = &a;
    for (unsigned i = 0; i < CTL_MAX_CLIENTS; i++)
        g_node.client_fd[i] = -1;
    int sfd = node_signals();
    struct metrics_http *http = NULL;
    int lfd = sfd < 0 ? -1 : node_open(&a, &http);
    if (lfd < 0) {
        free(a.list);
        return EXIT_NODE;
    }
    int failed = node_serve(lfd, sfd, a.linger_ms);
    unsigned stuck = node_quiesce(lfd, a.control, http);
    if (stuck) {
        /* Closing under a thread still in a liblog call would free the handle
         * under it. Exit without rlog_close: a crash, as far as the log is
         * concerned, which it is built to survive. */
        node_log("error: %u control requests still inside liblog after 10 s; exiting without "
                 "rlog_close", stuck);
        free(a.list);
        return failed ? EXIT_FAILSTOP : EXIT_NODE;
    }
    rc = node_close(failed);
    free(a.list);
    return rc;
}
