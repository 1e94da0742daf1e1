/*
 * rlogctl: the control socket, both ends. The node side binds it, accepts
 * (only its own user, a bounded number at once), and runs one thread per
 * connection that reads request frames, hands each to its handler (serve.c,
 * serve_tail.c, serve_logs.c; with the log it names, on a node of many)
 * and writes the answer. The client side connects, sends one
 * request and reads its data frames up to the end frame. Frames and their
 * encoding are wire.c's; the protocol is described in rlogctl.h.
 */
#include "node.h"

/* ---- node side ------------------------------------------------------------- */

/* The end-of-request frame. */
void put_end(struct buf *b, int code, unsigned flags, uint64_t value, uint64_t leader_id,
                    const char *leader_addr, const char *msg)
{
    size_t at = begin_frame(b);
    put_u8(b, 'E');
    put_u32(b, (uint32_t)code);
    put_u8(b, (uint8_t)flags);
    put_u64(b, value);
    put_u64(b, leader_id);
    put_str(b, leader_addr);
    put_str(b, msg);
    end_frame(b, at);
}

struct client {
    int fd;
    unsigned slot;
};

/* Hands one request for log h (NULL: the node's, or the node itself) to
 * its handler. Returns whether the connection is to be closed after the
 * answer (a range read or tail whose client went away). */
static int serve_op(int fd, unsigned slot, struct hosted *h, uint8_t op, struct rd *r,
                    struct buf *out)
{
    switch (op) {
    case 'S':
        if (r->pos != r->len) {
            r->bad = 1;
            put_end(out, RLOG_EPROTO, 0, 0, 0, "", "status: trailing bytes");
        } else {
            handle_status(h, out);
        }
        return 0;
    case 'A':
    case 'O':
        handle_append(h, r, out, op == 'O');
        return 0;
    case 'G':
        handle_get(h, r, out);
        return 0;
    case 'R':
        return handle_range(h, fd, r, out, CTL_IDLE_MS) != 0;
    case 'T':
        return handle_tail(h, fd, slot, r, out) != 0;
    case 'N':
    case 'X':
    case 'L':
    case 'P':
        handle_member(h, op, r, out);
        return 0;
    case 'B':
        handle_barrier(h, r, out);
        return 0;
    case 'Z':
        handle_offset_for_time(h, r, out);
        return 0;
    case 'M':
        handle_metrics(h, r, out);
        return 0;
    case 'C':
    case 'K':
        handle_cursor(h, op, r, out);
        return 0;
    }
    /* The node's own requests, which name a log (if any) themselves. */
    if (h == NULL && op == 'Q') {
        handle_list_logs(r, out);
        return 0;
    }
    if (h == NULL && (op == 'Y' || op == 'D')) {
        (op == 'Y' ? handle_create_log : handle_delete_log)(r, out);
        return 0;
    }
    char msg[64];
    snprintf(msg, sizeof msg, "unknown request type 0x%02x%s", op, h ? " for a log" : "");
    put_end(out, RLOG_EPROTO, 0, 0, 0, "", msg);
    r->bad = 1;
    return 0;
}

/* A request to the node, or ('@' NAME, then the request) to its log NAME
 * (--log): the log's entry is held while its handler runs. *op: the
 * request's type, for the log line of a malformed one. */
static int serve_request(int fd, unsigned slot, struct rd *r, struct buf *out, uint8_t *op)
{
    *op = get_u8(r);
    if (*op != '@')
        return serve_op(fd, slot, NULL, *op, r, out);
    char name[CTL_MAX_LOG_NAME + 1];
    if (get_log_name(r, name) != 0 || r->pos == r->len) {
        r->bad = 1;
        put_end(out, RLOG_EPROTO, 0, 0, 0, "", "malformed log name, or no request after it");
        return 0;
    }
    *op = get_u8(r);
    char msg[CTL_MAX_LOG_NAME + 160];
    if (!g_node.many) {
        snprintf(msg, sizeof msg, "this node holds one log (it was not started with "
                 "--many-logs): drop --log %s", name);
        put_end(out, RLOG_EINVAL, 0, 0, 0, "", msg);
        return 0;
    }
    struct hosted *h = hosted_find(name);
    if (h == NULL) {
        snprintf(msg, sizeof msg, "this node has no log named %s (rlogctl list-logs shows "
                 "its logs)", name);
        put_end(out, RLOG_ENOTFOUND, 0, 0, 0, "", msg);
        return 0;
    }
    int drop = serve_op(fd, slot, h, *op, r, out);
    hosted_release(h);
    return drop;
}

static void *client_thread(void *arg)
{
    struct client *c = arg;
    int fd = c->fd;
    struct buf out = {0};
    for (;;) {
        unsigned char *req = NULL;
        size_t len = 0;
        char why[160];
        int fr = recv_frame(fd, &req, &len, now_ms() + CTL_IDLE_MS, why, sizeof why);
        if (fr == 0)
            break;
        out.len = 0;
        if (fr < 0) {
            if (!is_closing()) {
                node_log("control: dropping client: %s", why);
                put_end(&out, RLOG_EPROTO, 0, 0, 0, "", why);
                write_all(fd, out.p, out.len, now_ms() + 1000);
            }
            break;
        }
        struct rd r = {.p = req, .len = len};
        uint8_t op = 0;
        int drop = serve_request(fd, c->slot, &r, &out, &op);
        free(req);
        if (r.bad)
            node_log("control: rejected a malformed request (type 0x%02x, %zu %s)", op, len,
                     plural(len, "byte", "bytes"));
        if (drop || write_all(fd, out.p, out.len, now_ms() + CTL_IDLE_MS) != 0 || r.bad)
            break;
    }
    free(out.p);
    pthread_mutex_lock(&g_node.mu);
    g_node.client_fd[c->slot] = -1;
    g_node.n_clients--;
    pthread_cond_broadcast(&g_node.cv);
    pthread_mutex_unlock(&g_node.mu);
    close(fd);
    free(c);
    return NULL;
}

/* At most one line a second for a kind of event that can repeat as fast as
 * a peer makes it (refused callers, failed accepts); the next line counts
 * the ones left out, so a flood costs a few bytes a second of log. */
struct rate_log {
    int64_t last_ms;
    unsigned long left_out;
};

static void rate_log(struct rate_log *r, const char *what, const char *why)
{
    int64_t t = now_ms();
    if (r->last_ms != 0 && t - r->last_ms < 1000) {
        r->left_out++;
        return;
    }
    if (r->left_out)
        node_log("control: %s: %s (and %lu more since the last such line)", what, why,
                 r->left_out);
    else
        node_log("control: %s: %s", what, why);
    r->last_ms = t;
    r->left_out = 0;
}

/* The control socket answers only its own user (and root): its file mode
 * says so too, but the caller's credentials are what the kernel vouches
 * for, whatever the path's directory allows. */
static int caller_allowed(int fd, char *why, size_t whylen)
{
    struct ucred cr;
    socklen_t len = sizeof cr;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) != 0) {
        snprintf(why, whylen, "SO_PEERCRED: %s", strerror(errno));
        return 0;
    }
    if (cr.uid == 0 || cr.uid == geteuid())
        return 1;
    snprintf(why, whylen, "refused a caller with uid %u (pid %d): only uid %u or root may use it",
             (unsigned)cr.uid, (int)cr.pid, (unsigned)geteuid());
    return 0;
}

/* Accepts one control client. Returns 0, or the milliseconds to stop
 * accepting for: when the process or system is out of descriptors
 * (EMFILE, ENFILE) or memory, the pending connection stays queued and the
 * listening socket stays readable, so accepting again at once only spins
 * (it wrote 811 MB of log lines under a 1,024-descriptor limit). The pause
 * doubles from CTL_ACCEPT_PAUSE_MIN_MS up to CTL_ACCEPT_PAUSE_MAX_MS while
 * the shortage lasts. */
int accept_client(int lfd)
{
    static struct rate_log accept_errors, refused;
    static int pause_ms;
    int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        if (e == EAGAIN || e == EINTR || e == ECONNABORTED)
            return 0;
        int starved = e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM;
        pause_ms = !starved ? 0
                   : pause_ms == 0 ? CTL_ACCEPT_PAUSE_MIN_MS
                   : pause_ms * 2 > CTL_ACCEPT_PAUSE_MAX_MS ? CTL_ACCEPT_PAUSE_MAX_MS
                   : pause_ms * 2;
        char why[128];
        if (starved)
            snprintf(why, sizeof why, "%s; not accepting for %d ms", strerror(e), pause_ms);
        else
            snprintf(why, sizeof why, "%s", strerror(e));
        rate_log(&accept_errors, "accept", why);
        return starved ? pause_ms : 0;
    }
    pause_ms = 0;
    char why[160];
    if (!caller_allowed(fd, why, sizeof why)) {
        rate_log(&refused, "connection refused", why);
        close(fd);
        return 0;
    }
    pthread_mutex_lock(&g_node.mu);
    unsigned slot = CTL_MAX_CLIENTS;
    for (unsigned i = 0; i < CTL_MAX_CLIENTS; i++) {
        if (g_node.client_fd[i] < 0) {
            slot = i;
            break;
        }
    }
    if (slot < CTL_MAX_CLIENTS) {
        g_node.client_fd[slot] = fd;
        g_node.n_clients++;
    }
    pthread_mutex_unlock(&g_node.mu);
    if (slot == CTL_MAX_CLIENTS) {
        struct buf out = {0};
        put_end(&out, RLOG_EPROTO, 0, 0, 0, "", "too many control connections");
        write_all(fd, out.p, out.len, now_ms() + 100);
        free(out.p);
        close(fd);
        return 0;
    }
    struct client *c = xmalloc(sizeof *c);
    c->fd = fd;
    c->slot = slot;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_t t;
    int e = pthread_create(&t, &attr, client_thread, c);
    pthread_attr_destroy(&attr);
    if (e != 0) {
        node_log("control: cannot start a client thread: %s", strerror(e));
        pthread_mutex_lock(&g_node.mu);
        g_node.client_fd[slot] = -1;
        g_node.n_clients--;
        pthread_mutex_unlock(&g_node.mu);
        close(fd);
        free(c);
    }
    return 0;
}

int fill_sun(struct sockaddr_un *sa, const char *path)
{
    memset(sa, 0, sizeof *sa);
    sa->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof sa->sun_path)
        return -1;
    strcpy(sa->sun_path, path);
    return 0;
}

/* Binds the control socket; refuses to take over one a live process serves. */
int control_listen(const char *path)
{
    struct sockaddr_un sa;
    if (fill_sun(&sa, path) != 0) {
        node_log("error: control socket path too long (max %zu bytes): %s",
                 sizeof sa.sun_path - 1, path);
        return -1;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        node_log("error: socket: %s", strerror(errno));
        return -1;
    }
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0) {
        node_log("error: control socket %s is in use by a running process", path);
        close(fd);
        return -1;
    }
    close(fd);
    struct stat stt;
    if (lstat(path, &stt) == 0) {
        if (!S_ISSOCK(stt.st_mode)) {
            node_log("error: control path %s exists and is not a socket", path);
            return -1;
        }
        unlink(path); /* stale socket of a dead process */
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    /* The socket file is created 0600 by bind itself (a chmod afterwards
     * would leave a window in which anyone could connect). The umask is
     * per process: no other thread creates files at this point. */
    mode_t old_umask = umask(0177);
    int bound = fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    int e = errno;
    umask(old_umask);
    if (!bound || listen(fd, 64) != 0) {
        node_log("error: control socket %s: %s", path, strerror(bound ? errno : e));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

/* ---- client side ----------------------------------------------------------- */

int ctl_connect(const char *path, char *why, size_t whylen)
{
    struct sockaddr_un sa;
    if (fill_sun(&sa, path) != 0) {
        snprintf(why, whylen, "control socket path too long: %s", path);
        return -1;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(why, whylen, "socket: %s", strerror(errno));
        return -1;
    }
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        snprintf(why, whylen, "cannot connect to %s: %s%s", path, strerror(errno),
                 errno == ENOENT || errno == ECONNREFUSED ? " (is the node running?)" : "");
        close(fd);
        return -1;
    }
    return fd;
}

/* Decodes an 'E' frame. Returns 0 or -1 (malformed). */
int decode_end(const unsigned char *p, size_t len, struct end *e)
{
    struct rd r = {.p = p, .len = len};
    if (get_u8(&r) != 'E')
        return -1;
    e->code = (int)get_u32(&r);
    e->flags = get_u8(&r);
    e->value = get_u64(&r);
    e->leader_id = get_u64(&r);
    get_str(&r, e->leader_addr, sizeof e->leader_addr);
    get_str(&r, e->msg, sizeof e->msg);
    return r.bad || r.pos != r.len || e->code > 0 ? -1 : 0;
}

/* Sends one request frame. */
int send_request(int fd, const struct buf *req, int timeout_ms, char *why, size_t whylen)
{
    if (write_all(fd, req->p, req->len, now_ms() + timeout_ms) != 0) {
        snprintf(why, whylen, "sending the request: %s", strerror(errno));
        return -1;
    }
    return 0;
}

/* Receives data frames (passed to on_data) until the end frame. */
int recv_answer(int fd, int timeout_ms, struct end *e,
                       int (*on_data)(void *arg, const unsigned char *p, size_t len), void *arg,
                       char *why, size_t whylen)
{
    for (;;) {
        unsigned char *p;
        size_t len;
        int fr = recv_frame(fd, &p, &len, now_ms() + timeout_ms, why, whylen);
        if (fr == 0) {
            snprintf(why, whylen, "the node closed the connection without an answer");
            return -1;
        }
        if (fr < 0) {
            char tmp[200];
            snprintf(tmp, sizeof tmp, "%s", why);
            snprintf(why, whylen, "waiting for the answer: %s", tmp);
            return -1;
        }
        if (p[0] == 'E') {
            int bad = decode_end(p, len, e);
            free(p);
            if (bad) {
                snprintf(why, whylen, "malformed answer from the node");
                return -1;
            }
            return 0;
        }
        int rc = on_data ? on_data(arg, p, len) : -1;
        free(p);
        if (rc != 0) {
            snprintf(why, whylen, "unexpected answer frame from the node");
            return -1;
        }
    }
}
