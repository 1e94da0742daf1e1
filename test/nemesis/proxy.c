/*
 * proxy — the nemesis test's loopback TCP proxy in front of one node.
 *
 *   proxy LISTEN_PORT TARGET_PORT CONTROL_FILE
 *
 * Listens on 127.0.0.1:LISTEN_PORT and forwards each connection to
 * 127.0.0.1:TARGET_PORT, in both directions. Every 50 ms it re-reads
 * CONTROL_FILE, one line:
 *
 *   pass                    forward everything
 *   drop [from ID,...]      close matching connections at once (and every new
 *                           one after its handshake)
 *   blackhole [from ID,...] matching connections stay open but every byte in
 *                           either direction is discarded; such a connection
 *                           is never forwarded again (its streams are torn)
 *                           and is closed when the rule ends
 *   delay MS [from ID,...]  matching connections forward each chunk MS ms
 *                           after it arrived (order kept)
 *
 * "from" limits the rule to connections whose dialer announced one of those
 * raft ids in liblog's plain-mode hello (lib/net/hello.h: 8 bytes magic, u32
 * version, u32 flags, u64 id, u64 cluster hash; little-endian): the proxy in
 * front of node j can thus
 * cut the traffic from node i to node j only. Without "from", the rule
 * applies to every connection. A missing or unreadable file means "pass".
 *
 * Logs each rule change and connection event to stderr, one line each.
 * Loopback only; single thread, poll(2).
 */
#define _GNU_SOURCE 1
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS 128
#define QUEUE_CAP (8u << 20) /* bytes queued per direction before reads stop */
#define CHUNK 65536

enum mode { M_PASS, M_DROP, M_BLACKHOLE, M_DELAY };

struct rule {
    enum mode mode;
    int delay_ms;
    int n_from;
    uint64_t from[16];
};

struct chunk {
    struct chunk *next;
    int64_t due;
    size_t len, off;
    unsigned char data[];
};

struct queue {
    struct chunk *head, *tail;
    size_t bytes;
};

struct conn {
    int used;
    int cfd, sfd;       /* client (dialer) side, server (node) side */
    int connecting;     /* sfd connect in progress */
    unsigned char hdr[32];
    size_t hdr_n;
    int src_known;
    uint64_t src;
    int poisoned;       /* blackholed: never forwarded again */
    struct queue c2s, s2c;
    unsigned serial;
};

static struct conn conns[MAX_CONNS];
static struct rule rule;
static int listen_port, target_port;
static const char *ctl_path;
static char last_ctl[256] = "";
static unsigned serial;

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void plog(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void plog(const char *fmt, ...)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    localtime_r(&ts.tv_sec, &tm);
    char line[512];
    int n = snprintf(line, sizeof line, "%02d:%02d:%02d.%03ld proxy :%d: ", tm.tm_hour,
                     tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, listen_port);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s\n", line);
}

static void q_free(struct queue *q)
{
    struct chunk *c = q->head;
    while (c) {
        struct chunk *n = c->next;
        free(c);
        c = n;
    }
    q->head = q->tail = NULL;
    q->bytes = 0;
}

static void q_push(struct queue *q, const unsigned char *p, size_t n, int64_t due)
{
    struct chunk *c = malloc(sizeof *c + n);
    if (!c) {
        plog("out of memory");
        exit(1);
    }
    c->next = NULL;
    c->due = due;
    c->len = n;
    c->off = 0;
    memcpy(c->data, p, n);
    if (q->tail)
        q->tail->next = c;
    else
        q->head = c;
    q->tail = c;
    q->bytes += n;
}

static void conn_close(struct conn *c, const char *why)
{
    plog("conn #%u (from id %s%" PRIu64 ") closed: %s", c->serial, c->src_known ? "" : "?",
         c->src, why);
    if (c->cfd >= 0) {
        struct linger l = {1, 0}; /* reset, like a cut link would end it */
        setsockopt(c->cfd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
        close(c->cfd);
    }
    if (c->sfd >= 0) {
        struct linger l = {1, 0};
        setsockopt(c->sfd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
        close(c->sfd);
    }
    q_free(&c->c2s);
    q_free(&c->s2c);
    memset(c, 0, sizeof *c);
    c->cfd = c->sfd = -1;
}

/* Does the rule apply to this connection? (-1: not known yet) */
static int applies(const struct conn *c)
{
    if (rule.mode == M_PASS)
        return 0;
    if (rule.n_from == 0)
        return 1;
    if (!c->src_known)
        return -1;
    for (int i = 0; i < rule.n_from; i++)
        if (rule.from[i] == c->src)
            return 1;
    return 0;
}

static void parse_rule(const char *text)
{
    struct rule r = {.mode = M_PASS};
    char word[32] = "";
    int pos = 0;
    if (sscanf(text, "%31s%n", word, &pos) != 1)
        strcpy(word, "pass");
    const char *rest = text + pos;
    if (!strcmp(word, "drop"))
        r.mode = M_DROP;
    else if (!strcmp(word, "blackhole"))
        r.mode = M_BLACKHOLE;
    else if (!strcmp(word, "delay")) {
        r.mode = M_DELAY;
        int n = 0;
        if (sscanf(rest, "%d%n", &r.delay_ms, &n) != 1 || r.delay_ms < 0 || r.delay_ms > 60000) {
            plog("bad delay rule '%s': passing", text);
            r.mode = M_PASS;
        }
        rest += n;
    } else if (strcmp(word, "pass") != 0) {
        plog("unknown rule '%s': passing", text);
    }
    char from[200];
    if (sscanf(rest, " from %199s", from) == 1) {
        for (char *save = NULL, *t = strtok_r(from, ",", &save); t && r.n_from < 16;
             t = strtok_r(NULL, ",", &save))
            r.from[r.n_from++] = strtoull(t, NULL, 10);
    }
    rule = r;
}

static void read_control(void)
{
    char text[256] = "pass";
    FILE *f = fopen(ctl_path, "r");
    if (f) {
        if (!fgets(text, sizeof text, f))
            strcpy(text, "pass");
        fclose(f);
    }
    text[strcspn(text, "\r\n")] = '\0';
    if (strcmp(text, last_ctl) == 0)
        return;
    snprintf(last_ctl, sizeof last_ctl, "%s", text);
    parse_rule(text);
    plog("rule: %s", text[0] ? text : "pass");
    /* Blackholed connections are torn streams: close them once the rule
     * no longer blackholes them. Drop closes matching connections now. */
    for (int i = 0; i < MAX_CONNS; i++) {
        struct conn *c = &conns[i];
        if (!c->used)
            continue;
        int a = applies(c);
        if (c->poisoned && !(rule.mode == M_BLACKHOLE && a == 1))
            conn_close(c, "blackhole lifted");
        else if (rule.mode == M_DROP && a == 1)
            conn_close(c, "dropped by rule");
    }
}

static int listen_on(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, 64) != 0) {
        plog("cannot listen on 127.0.0.1:%d: %s", port, strerror(errno));
        exit(1);
    }
    return fd;
}

static void accept_one(int lfd)
{
    int cfd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (cfd < 0)
        return;
    struct conn *c = NULL;
    for (int i = 0; i < MAX_CONNS; i++)
        if (!conns[i].used) {
            c = &conns[i];
            break;
        }
    if (!c) {
        plog("too many connections; refusing one");
        close(cfd);
        return;
    }
    int sfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)target_port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int one = 1;
    setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(sfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    int rc = connect(sfd, (struct sockaddr *)&sa, sizeof sa);
    memset(c, 0, sizeof *c);
    c->used = 1;
    c->cfd = cfd;
    c->sfd = sfd;
    c->serial = ++serial;
    c->connecting = rc != 0;
    if (rc != 0 && errno != EINPROGRESS) {
        conn_close(c, "target refused");
        return;
    }
    plog("conn #%u accepted", c->serial);
}

/* Reads from fd into queue q; the first 32 bytes from the dialer are the
 * hello that names it. Returns -1 on EOF/error. */
static int pump_in(struct conn *c, int from_client)
{
    unsigned char buf[CHUNK];
    int fd = from_client ? c->cfd : c->sfd;
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n == 0)
        return -1;
    if (n < 0)
        return errno == EAGAIN || errno == EINTR ? 0 : -1;
    if (from_client && !c->src_known) {
        size_t k = (size_t)n < 32 - c->hdr_n ? (size_t)n : 32 - c->hdr_n;
        memcpy(c->hdr + c->hdr_n, buf, k);
        c->hdr_n += k;
        if (c->hdr_n == 32) {
            uint64_t id = 0;
            for (int i = 7; i >= 0; i--)
                id = (id << 8) | c->hdr[16 + i];
            c->src = id;
            c->src_known = 1;
            plog("conn #%u is from id %" PRIu64, c->serial, id);
        }
    }
    if (c->poisoned)
        return 0; /* discarded */
    int a = applies(c);
    if (a == 1 && rule.mode == M_BLACKHOLE) {
        c->poisoned = 1;
        plog("conn #%u blackholed", c->serial);
        return 0;
    }
    int64_t due = mono_ms() + (a == 1 && rule.mode == M_DELAY ? rule.delay_ms : 0);
    q_push(from_client ? &c->c2s : &c->s2c, buf, (size_t)n, due);
    return 0;
}

/* Writes due chunks of q to fd. Returns -1 on error. */
static int pump_out(struct conn *c, struct queue *q, int fd, int64_t now)
{
    while (q->head && q->head->due <= now) {
        struct chunk *h = q->head;
        ssize_t w = send(fd, h->data + h->off, h->len - h->off, MSG_NOSIGNAL);
        if (w < 0)
            return errno == EAGAIN || errno == EINTR ? 0 : -1;
        h->off += (size_t)w;
        q->bytes -= (size_t)w;
        if (h->off < h->len)
            return 0;
        q->head = h->next;
        if (!q->head)
            q->tail = NULL;
        free(h);
    }
    return 0;
}

static volatile sig_atomic_t stop;
static void on_term(int sig) { (void)sig; stop = 1; }

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: proxy LISTEN_PORT TARGET_PORT CONTROL_FILE\n");
        return 1;
    }
    listen_port = atoi(argv[1]);
    target_port = atoi(argv[2]);
    ctl_path = argv[3];
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, on_term);
    signal(SIGINT, on_term);
    for (int i = 0; i < MAX_CONNS; i++)
        conns[i].cfd = conns[i].sfd = -1;
    int lfd = listen_on(listen_port);
    plog("forwarding 127.0.0.1:%d -> 127.0.0.1:%d, control %s", listen_port, target_port,
         ctl_path);
    read_control();
    int64_t next_ctl = mono_ms() + 50;
    struct pollfd pfd[1 + 2 * MAX_CONNS];
    int idx[1 + 2 * MAX_CONNS];
    while (!stop) {
        int64_t now = mono_ms();
        if (now >= next_ctl) {
            read_control();
            next_ctl = now + 50;
        }
        int timeout = (int)(next_ctl - now);
        int n = 0;
        pfd[n].fd = lfd;
        pfd[n].events = POLLIN;
        idx[n++] = -1;
        for (int i = 0; i < MAX_CONNS; i++) {
            struct conn *c = &conns[i];
            if (!c->used)
                continue;
            /* A connection whose dialer is not known yet under a "from"
             * rule is held (its bytes queue until the handshake names it). */
            int a = applies(c);
            int hold = a == -1 || (a == 1 && rule.mode == M_DROP);
            if (a == 1 && rule.mode == M_DROP) {
                conn_close(c, "dropped by rule");
                continue;
            }
            if (a == 1 && rule.mode == M_BLACKHOLE && !c->poisoned) {
                c->poisoned = 1;
                q_free(&c->c2s);
                q_free(&c->s2c);
                plog("conn #%u blackholed", c->serial);
            }
            hold = hold || c->poisoned;
            short ce = 0, se = 0;
            if (c->c2s.bytes < QUEUE_CAP)
                ce |= POLLIN;
            if (!c->connecting && c->s2c.bytes < QUEUE_CAP)
                se |= POLLIN;
            if (c->connecting)
                se |= POLLOUT;
            struct chunk *h;
            if (!hold && !c->connecting && (h = c->c2s.head)) {
                if (h->due <= now)
                    se |= POLLOUT;
                else if (h->due - now < timeout)
                    timeout = (int)(h->due - now);
            }
            if (!hold && (h = c->s2c.head)) {
                if (h->due <= now)
                    ce |= POLLOUT;
                else if (h->due - now < timeout)
                    timeout = (int)(h->due - now);
            }
            pfd[n].fd = c->cfd;
            pfd[n].events = ce;
            idx[n++] = 2 * i;
            pfd[n].fd = c->sfd;
            pfd[n].events = se;
            idx[n++] = 2 * i + 1;
        }
        if (timeout < 0)
            timeout = 0;
        int pr = poll(pfd, (nfds_t)n, timeout);
        if (pr < 0) {
            if (errno == EINTR)
                continue;
            plog("poll: %s", strerror(errno));
            return 1;
        }
        now = mono_ms();
        for (int k = 0; k < n; k++) {
            short re = pfd[k].revents;
            if (!re)
                continue;
            if (idx[k] < 0) {
                accept_one(lfd);
                continue;
            }
            struct conn *c = &conns[idx[k] / 2];
            if (!c->used)
                continue;
            int client_side = idx[k] % 2 == 0;
            if (!client_side && c->connecting) {
                int err = 0;
                socklen_t el = sizeof err;
                getsockopt(c->sfd, SOL_SOCKET, SO_ERROR, &err, &el);
                if (err) {
                    conn_close(c, "target unreachable");
                    continue;
                }
                c->connecting = 0;
                continue;
            }
            if (re & POLLIN || re & (POLLHUP | POLLERR)) {
                if (pump_in(c, client_side) != 0) {
                    conn_close(c, client_side ? "dialer closed" : "node closed");
                    continue;
                }
            }
            if (!c->used)
                continue;
            if (re & POLLOUT) {
                int a = applies(c);
                if (a == -1 || (a == 1 && rule.mode == M_DROP) || c->poisoned)
                    continue;
                if (pump_out(c, client_side ? &c->s2c : &c->c2s, client_side ? c->cfd : c->sfd,
                             now) != 0)
                    conn_close(c, "write failed");
            }
        }
    }
    plog("stopping");
    return 0;
}
