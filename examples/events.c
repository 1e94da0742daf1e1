/*
 * events — an event-sourced projection on the plain log API and a durable
 * named cursor: account events ("deposit A 10", "withdraw A 3") are records
 * in the log, and every node folds them, in log order, into a table of
 * balances (the projection) from a subscription started at its cursor
 * "projection-ID".
 *
 *   events ID PEERS DATA_DIR [CONTROL_PATH]
 *     PEERS: 1=127.0.0.1:7001,2=127.0.0.1:7002,...
 *     CONTROL_PATH: also serve rlogctl's control protocol there, so that
 *     `rlogctl cursor-get --control CONTROL_PATH projection-ID` (and the
 *     other client commands) work against this node.
 *
 * Commands on stdin, one per line; one answer per line on stdout:
 *   deposit ACCOUNT AMOUNT   -> ok OFFSET   (the event's offset)
 *   withdraw ACCOUNT AMOUNT  -> ok OFFSET   (balances may go negative: the
 *                               log records what happened, it does not judge)
 *   balance ACCOUNT          -> balance ACCOUNT N  (after a barrier: every
 *                               event appended anywhere before is counted)
 *   balances                 -> balances EVENTS A=N B=M ... (sorted by name)
 *   position                 -> position STATE_NEXT CURSOR (the offset the
 *                               saved state covers up to, and the cursor's)
 *   quit                     (or end of input): closes the node
 * A failure answers "error NAME: message".
 *
 * Exactly once across kill -9. The projection's truth is its state file,
 * DATA_DIR.projection: the balances AND the offset `next` they cover (every
 * record below `next` is folded in, none at or above it). It is replaced
 * atomically (write a temporary file, fsync it, rename it over, fsync the
 * directory), so after a crash it is either the old or the new state,
 * never a mix. Only after a save does the node commit its cursor to that
 * state's `next`: so the cursor never runs ahead of a saved state, and a
 * crash between the two leaves the cursor behind, never ahead.
 * On start: load the state (none: empty at offset 0), read the cursor, and
 * subscribe from min(state.next, cursor); records below state.next are
 * already in the state and are skipped, so a record is counted once
 * whichever of the two writes the crash interrupted. If the cursor is ahead
 * of the state (the state file was lost or restored from an old copy),
 * the cursor is not trusted and the node rebuilds from state.next. The
 * cursor is thus the cluster-visible progress report (and what a restart
 * on an empty state file would otherwise lose), while the state file
 * decides what has been counted.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "liblog.h"
#include "node.h" /* rlogctl's control server, for CONTROL_PATH */

#define MAX_ACCOUNTS 4096
#define NAME_MAX_LEN 64
#define AMOUNT_MAX 1000000000000ll /* sums of millions of events stay in int64 */
#define SAVE_EVERY 16              /* records folded between saves when busy */

struct account {
    char name[NAME_MAX_LEN + 1];
    int64_t balance;
};

/* The projection: written by the subscription's thread, read by main, both
 * under mu; cv signals progress of `next`. */
struct projection {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct account acc[MAX_ACCOUNTS];
    unsigned n;
    uint64_t next;     /* records [0, next) are folded in */
    uint64_t events;   /* events folded in (records of other shapes are not) */
    uint64_t saved;    /* the `next` of the state file on disk */
    uint64_t told;     /* the cursor's value as last committed here (0: none yet) */
    int ended;         /* the subscription ended with this error (0: running) */
    rlog *log;
    char path[4096], cursor[NAME_MAX_LEN + 1];
};

static int cmp_acc(const void *a, const void *b)
{
    return strcmp(((const struct account *)a)->name, ((const struct account *)b)->name);
}

/* Kept sorted, so lookups are a bsearch and `balances` prints in order. */
static struct account *account(struct projection *p, const char *name, bool create)
{
    struct account key;
    snprintf(key.name, sizeof key.name, "%s", name);
    struct account *a = bsearch(&key, p->acc, p->n, sizeof *a, cmp_acc);
    if (a || !create || p->n == MAX_ACCOUNTS)
        return a;
    unsigned at = 0;
    while (at < p->n && strcmp(p->acc[at].name, name) < 0)
        at++;
    memmove(&p->acc[at + 1], &p->acc[at], (p->n - at) * sizeof *a);
    p->acc[at] = key;
    p->acc[at].balance = 0;
    p->n++;
    return &p->acc[at];
}

static bool valid_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > NAME_MAX_LEN)
        return false;
    for (; *s; s++)
        if (*s <= ' ' || *s > '~' || *s == '=')
            return false;
    return true;
}

/* "D ACCOUNT AMOUNT" or "W ACCOUNT AMOUNT": the whole record, checked, so
 * that a record some other producer wrote is never half-understood. */
static bool parse_event(const void *rec, size_t len, char *kind, char *name, int64_t *amount)
{
    char buf[NAME_MAX_LEN + 32], tail;
    long long v;
    if (len < 5 || len >= sizeof buf || memchr(rec, 0, len))
        return false;
    memcpy(buf, rec, len);
    buf[len] = 0;
    if (sscanf(buf, "%c %64s %lld%c", kind, name, &v, &tail) != 3)
        return false;
    if ((*kind != 'D' && *kind != 'W') || !valid_name(name) || v <= 0 || v > AMOUNT_MAX)
        return false;
    *amount = *kind == 'D' ? v : -v;
    return true;
}

/* ---- the state file ------------------------------------------------------- */

/* Called with mu held. Format: "events-projection 1 NEXT EVENTS N\n" then N
 * lines "NAME BALANCE", then "end\n" (a file without it is refused). */
static int save_state(struct projection *p)
{
    char tmp[sizeof p->path + 8], dir[sizeof p->path];
    snprintf(tmp, sizeof tmp, "%s.tmp", p->path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -errno;
    fprintf(f, "events-projection 1 %" PRIu64 " %" PRIu64 " %u\n", p->next, p->events, p->n);
    for (unsigned i = 0; i < p->n; i++)
        fprintf(f, "%s %" PRId64 "\n", p->acc[i].name, p->acc[i].balance);
    fprintf(f, "end\n");
    int rv = fflush(f) == 0 && fsync(fileno(f)) == 0 ? 0 : -errno;
    if (fclose(f) != 0 && rv == 0)
        rv = -errno;
    if (rv == 0 && rename(tmp, p->path) != 0)
        rv = -errno;
    if (rv != 0) {
        unlink(tmp);
        return rv;
    }
    /* The rename is durable only once the directory is. */
    snprintf(dir, sizeof dir, "%s", p->path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *(slash == dir ? slash + 1 : slash) = 0;
    int dfd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return -errno;
    rv = fsync(dfd) == 0 ? 0 : -errno;
    close(dfd);
    if (rv == 0)
        p->saved = p->next;
    return rv;
}

/* 0 (state loaded, or no file: empty at 0), or -1 with a message. */
static int load_state(struct projection *p)
{
    FILE *f = fopen(p->path, "r");
    if (!f) {
        if (errno == ENOENT)
            return 0;
        fprintf(stderr, "events: %s: %s\n", p->path, strerror(errno));
        return -1;
    }
    unsigned n = 0;
    int ok = fscanf(f, "events-projection 1 %" SCNu64 " %" SCNu64 " %u\n", &p->next,
                    &p->events, &n) == 3 && n <= MAX_ACCOUNTS;
    for (unsigned i = 0; ok && i < n; i++) {
        char name[NAME_MAX_LEN + 1];
        int64_t bal;
        ok = fscanf(f, "%64s %" SCNd64 "\n", name, &bal) == 2 && valid_name(name) &&
             !account(p, name, false);
        if (ok)
            account(p, name, true)->balance = bal;
    }
    char end[8] = "";
    ok = ok && fscanf(f, "%7s", end) == 1 && strcmp(end, "end") == 0;
    fclose(f);
    if (!ok) {
        /* Renames make a torn file impossible; this one was edited or damaged. */
        fprintf(stderr, "events: %s: not a projection state file; remove it to rebuild\n",
                p->path);
        return -1;
    }
    p->saved = p->next;
    return 0;
}

/* ---- the subscription ------------------------------------------------------ */

/* Saves, then commits the cursor: in that order (see the top). `tries`
 * bounds the waits for a leader: a node leaving with its peers gone must
 * not hang on a cursor that only reports progress. */
static void checkpoint(struct projection *p, int tries_max)
{
    pthread_mutex_lock(&p->mu);
    int rv = p->saved == p->next ? 0 : save_state(p);
    uint64_t at = p->saved;
    pthread_mutex_unlock(&p->mu);
    if (rv != 0) {
        fprintf(stderr, "events: saving %s: %s\n", p->path, strerror(-rv));
        return; /* the cursor stays behind; the next checkpoint tries again */
    }
    if (at == p->told)
        return;
    for (int tries = 0; tries < tries_max; tries++) {
        rv = rlog_cursor_commit(p->log, p->cursor, at);
        if (rv != RLOG_ENOTLEADER && rv != RLOG_EINDOUBT)
            break;
        nanosleep(&(struct timespec){0, 100 * 1000000L}, NULL);
    }
    if (rv == 0)
        p->told = at;
    else if (rv != RLOG_ECLOSED)
        fprintf(stderr, "events: cursor %s: %s: %s\n", p->cursor, rlog_errname(rv),
                rlog_errmsg(p->log));
}

static void on_record(void *arg, int status, uint64_t offset, const void *rec, size_t len)
{
    struct projection *p = arg;
    if (status != 0) {
        pthread_mutex_lock(&p->mu);
        p->ended = status;
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
        if (status != RLOG_ECLOSED)
            fprintf(stderr, "events: projection stopped: %s\n", rlog_errname(status));
        return;
    }
    char kind, name[NAME_MAX_LEN + 1];
    int64_t amount;
    pthread_mutex_lock(&p->mu);
    if (offset < p->next) { /* already in the saved state: the exactly-once skip */
        pthread_mutex_unlock(&p->mu);
        return;
    }
    if (parse_event(rec, len, &kind, name, &amount)) {
        struct account *a = account(p, name, true);
        if (a) {
            a->balance += amount;
            p->events++;
        } else {
            fprintf(stderr, "events: more than %d accounts: event at %" PRIu64 " not counted\n",
                    MAX_ACCOUNTS, offset);
        }
    }
    p->next = offset + 1;
    pthread_cond_broadcast(&p->cv);
    bool busy = p->next - p->saved < SAVE_EVERY;
    pthread_mutex_unlock(&p->mu);
    /* Checkpoint every SAVE_EVERY records, and whenever the projection has
     * caught up with the log, so a quiet log always has a current cursor. */
    struct rlog_status st;
    if (!busy || (rlog_status(p->log, &st) == 0 && st.commit_offset <= offset + 1))
        checkpoint(p, 50);
}

/* The start point: min(state.next, cursor), trusting the cursor only when
 * it is not ahead of the state (see the top). */
static int start_projection(struct projection *p, rlog_sub **sub)
{
    uint64_t cur = 0;
    int rv = rlog_cursor_get(p->log, p->cursor, &cur);
    if (rv == 0 && cur > p->next) {
        fprintf(stderr,
                "events: cursor %s is at %" PRIu64 ", past the state file's %" PRIu64
                ": rebuilding from the state file\n",
                p->cursor, cur, p->next);
        return rlog_subscribe(p->log, p->next, on_record, p, sub);
    }
    if (rv != 0 && rv != RLOG_ENOTFOUND) {
        fprintf(stderr, "events: cursor %s unknown here (%s): starting from the state file\n",
                p->cursor, rlog_errname(rv));
        return rlog_subscribe(p->log, p->next, on_record, p, sub);
    }
    if (rv == 0) {
        p->told = cur;
        fprintf(stderr,
                "events: projection resumes at %" PRIu64 " (cursor %s), skipping to %" PRIu64
                " (its state file)\n",
                cur, p->cursor, p->next);
    }
    return rlog_subscribe_cursor(p->log, p->cursor, p->next, on_record, p, sub);
}

/* ---- the control socket (optional) ------------------------------------------ */

static int wake_pipe[2] = {-1, -1};

static void *serve_control(void *arg)
{
    int lfd = *(int *)arg;
    for (;;) {
        struct pollfd pfd[2] = {{.fd = lfd, .events = POLLIN},
                                {.fd = wake_pipe[0], .events = POLLIN}};
        if (poll(pfd, 2, -1) < 0 && errno != EINTR)
            break;
        if (pfd[1].revents)
            break;
        if (pfd[0].revents) {
            int pause = accept_client(lfd);
            if (pause > 0)
                poll(NULL, 0, pause);
        }
    }
    return NULL;
}

/* Stop serving, then let control requests inside a liblog call finish
 * before rlog_close (as rlogctl node does). */
static void stop_control(pthread_t th, int lfd, const char *path)
{
    ssize_t w = write(wake_pipe[1], "x", 1);
    (void)w;
    pthread_join(th, NULL);
    close(lfd);
    unlink(path);
    pthread_mutex_lock(&g_node.mu);
    g_node.closing = 1;
    for (unsigned i = 0; i < CTL_MAX_CLIENTS; i++)
        if (g_node.client_fd[i] >= 0)
            shutdown(g_node.client_fd[i], SHUT_RD);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 10;
    while (g_node.api_users > 0)
        if (pthread_cond_timedwait(&g_node.cv, &g_node.mu, &until) == ETIMEDOUT)
            break;
    pthread_mutex_unlock(&g_node.mu);
}

/* ---- the shell side --------------------------------------------------------- */

static void fail(const char *what, int rv, rlog *log)
{
    printf("error %s: %s: %s\n", rlog_errname(rv), what, rlog_errmsg(log));
}

/* RLOG_ENOTLEADER means nothing was done: call again for a while. */
#define RETRY_LEADER(rv, call)                                                 \
    for (int tries_ = 0; tries_ < 100; tries_++) {                            \
        if (((rv) = (call)) != RLOG_ENOTLEADER)                                \
            break;                                                             \
        nanosleep(&(struct timespec){0, 100 * 1000000L}, NULL);               \
    }

/* Every event appended before the call is in the projection, or an error. */
static int read_point(rlog *log, struct projection *p)
{
    uint64_t end = 0;
    int rv;
    RETRY_LEADER(rv, rlog_barrier(log, &end));
    if (rv)
        return rv;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 20;
    pthread_mutex_lock(&p->mu);
    while (p->next < end && !p->ended && rv == 0)
        rv = pthread_cond_timedwait(&p->cv, &p->mu, &until) == ETIMEDOUT ? RLOG_ETIMEOUT : 0;
    if (p->next < end && rv == 0)
        rv = p->ended;
    pthread_mutex_unlock(&p->mu);
    return rv;
}

static void command(rlog *log, struct projection *p, char *line)
{
    char *cmd = strtok(line, " \t\n"), *name = strtok(NULL, " \t\n"), *amt = strtok(NULL, " \t\n");
    int rv;
    if (!cmd)
        return;
    if ((!strcmp(cmd, "deposit") || !strcmp(cmd, "withdraw")) && name && amt) {
        char *end;
        errno = 0;
        long long v = strtoll(amt, &end, 10);
        if (!valid_name(name)) {
            printf("error RLOG_EINVAL: account names are 1..%d printable bytes, no '=': %s\n",
                   NAME_MAX_LEN, name);
            return;
        }
        if (*end || errno || v <= 0 || v > AMOUNT_MAX) {
            printf("error RLOG_EINVAL: amount must be a whole number in 1..%lld: %s\n",
                   AMOUNT_MAX, amt);
            return;
        }
        char rec[NAME_MAX_LEN + 32];
        int n = snprintf(rec, sizeof rec, "%c %s %lld", cmd[0] == 'd' ? 'D' : 'W', name, v);
        uint64_t off = 0;
        RETRY_LEADER(rv, rlog_append(log, rec, (size_t)n, &off));
        if (rv)
            fail(cmd, rv, log);
        else
            printf("ok %" PRIu64 "\n", off);
    } else if (!strcmp(cmd, "balance") && name) {
        if ((rv = read_point(log, p)) != 0) {
            fail("balance", rv, log);
            return;
        }
        pthread_mutex_lock(&p->mu);
        struct account *a = account(p, name, false);
        printf("balance %s %" PRId64 "\n", name, a ? a->balance : 0);
        pthread_mutex_unlock(&p->mu);
    } else if (!strcmp(cmd, "balances")) {
        if ((rv = read_point(log, p)) != 0) {
            fail("balances", rv, log);
            return;
        }
        pthread_mutex_lock(&p->mu);
        printf("balances %" PRIu64, p->events);
        for (unsigned i = 0; i < p->n; i++)
            printf(" %s=%" PRId64, p->acc[i].name, p->acc[i].balance);
        printf("\n");
        pthread_mutex_unlock(&p->mu);
    } else if (!strcmp(cmd, "position")) {
        uint64_t cur = 0;
        rv = rlog_cursor_get(log, p->cursor, &cur);
        if (rv != 0 && rv != RLOG_ENOTFOUND) {
            fail("position", rv, log);
            return;
        }
        pthread_mutex_lock(&p->mu);
        uint64_t saved = p->saved;
        pthread_mutex_unlock(&p->mu);
        if (rv == RLOG_ENOTFOUND)
            printf("position %" PRIu64 " none\n", saved);
        else
            printf("position %" PRIu64 " %" PRIu64 "\n", saved, cur);
    } else {
        printf("error RLOG_EINVAL: unknown command or missing argument: %s\n", cmd);
    }
}

int main(int argc, char **argv)
{
    if (argc < 4 || argc > 5) {
        fprintf(stderr, "usage: %s ID PEERS DATA_DIR [CONTROL_PATH]\n", argv[0]);
        return 2;
    }
    struct rlog_peer peers[RLOG_MAX_PEERS];
    unsigned n = 0;
    char *list = strdup(argv[2]);
    for (char *s = strtok(list, ","); s && n < RLOG_MAX_PEERS; s = strtok(NULL, ",")) {
        char *eq = strchr(s, '=');
        if (!eq) {
            fprintf(stderr, "events: bad peer %s (want ID=HOST:PORT)\n", s);
            return 2;
        }
        *eq = 0;
        peers[n++] = (struct rlog_peer){.id = strtoull(s, NULL, 10), .address = eq + 1};
    }
    static struct projection p = {.mu = PTHREAD_MUTEX_INITIALIZER,
                                  .cv = PTHREAD_COND_INITIALIZER};
    struct rlog_config cfg;
    rlog_config_init(&cfg);
    cfg.id = strtoull(argv[1], NULL, 10);
    cfg.data_dir = argv[3];
    cfg.peers = peers;
    cfg.n_peers = n;
    for (unsigned i = 0; i < n; i++)
        if (peers[i].id == cfg.id)
            cfg.address = peers[i].address;
    if (snprintf(p.path, sizeof p.path, "%s.projection", argv[3]) >= (int)sizeof p.path) {
        fprintf(stderr, "events: data directory path too long\n");
        return 2;
    }
    snprintf(p.cursor, sizeof p.cursor, "projection-%" PRIu64, cfg.id);
    if (load_state(&p) != 0)
        return 1;
    char err[512];
    int rv = rlog_open(&cfg, &p.log, err, sizeof err);
    if (rv != 0) {
        fprintf(stderr, "events: %s: %s\n", rlog_errname(rv), err);
        return 1;
    }
    const char *control = argc > 4 ? argv[4] : NULL;
    int lfd = -1;
    pthread_t ctl_thread;
    if (control) {
        g_node.log = p.log;
        g_node.id = cfg.id;
        for (unsigned i = 0; i < CTL_MAX_CLIENTS; i++)
            g_node.client_fd[i] = -1;
        if (pipe(wake_pipe) != 0 || (lfd = control_listen(control)) < 0 ||
            pthread_create(&ctl_thread, NULL, serve_control, &lfd) != 0) {
            fprintf(stderr, "events: cannot serve the control socket %s\n", control);
            rlog_close(p.log);
            return 1;
        }
    }
    rlog_sub *sub;
    if ((rv = start_projection(&p, &sub)) != 0) {
        fprintf(stderr, "events: subscribe: %s: %s\n", rlog_errname(rv), rlog_errmsg(p.log));
        rlog_close(p.log);
        return 1;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    char line[8192];
    while (fgets(line, sizeof line, stdin) && strncmp(line, "quit", 4) != 0)
        command(p.log, &p, line);
    rlog_unsubscribe(sub);
    checkpoint(&p, 1); /* a clean exit leaves the cursor current if it can */
    if (control)
        stop_control(ctl_thread, lfd, control);
    rv = rlog_close(p.log);
    free(list);
    return rv ? 1 : 0;
}
