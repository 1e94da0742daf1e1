/*
 * metrics_http — see metrics_http.h. A scrape endpoint must never hurt the
 * node it watches, so everything a client can make it hold is bounded
 * (connections, head bytes, time), and the thread never blocks on one
 * client: sockets are non-blocking and driven by one poll() loop.
 */
#include "metrics_http.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "liblog.h"

struct hconn {
    int fd;                /* -1: free slot */
    char in[METRICS_HTTP_MAX_HEADER];
    size_t inlen;
    char *out;             /* the whole answer, once the request is read */
    size_t outlen, outpos;
    int draining;          /* answered: reading to the client's EOF */
    int64_t deadline;
};

struct metrics_http {
    int lfd;
    int wake[2];           /* a byte on wake[1] stops the thread */
    pthread_t thread;
    int started;
    metrics_http_fn fn;
    void *arg;
    struct hconn conns[METRICS_HTTP_MAX_CONNS];
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Splits "HOST:PORT" / "[HOST]:PORT" into host and port. */
static int split_hostport(const char *s, char *host, size_t hostlen, char *port, size_t portlen)
{
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s || !colon[1] || strlen(colon + 1) >= portlen)
        return -1;
    const char *h = s;
    size_t n = (size_t)(colon - s);
    if (h[0] == '[') {
        if (n < 3 || h[n - 1] != ']')
            return -1;
        h++;
        n -= 2;
    }
    if (n >= hostlen)
        return -1;
    memcpy(host, h, n);
    host[n] = '\0';
    snprintf(port, portlen, "%s", colon + 1);
    for (const char *p = port; *p; p++)
        if (*p < '0' || *p > '9')
            return -1;
    return 0;
}

static int listen_on(const char *hostport, char *why, size_t whylen)
{
    char host[256], port[16];
    if (split_hostport(hostport, host, sizeof host, port, sizeof port) != 0) {
        snprintf(why, whylen, "bad address '%s' (want HOST:PORT)", hostport);
        return -1;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    int gr = getaddrinfo(host, port, &hints, &ai);
    if (gr != 0) {
        snprintf(why, whylen, "cannot resolve '%s': %s", hostport, gai_strerror(gr));
        return -1;
    }
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1, e = 0;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 64) != 0) {
        e = errno;
        if (fd >= 0)
            close(fd);
        fd = -1;
        snprintf(why, whylen, "cannot listen on %s: %s", hostport, strerror(e));
    }
    freeaddrinfo(ai);
    return fd;
}

struct metrics_http *metrics_http_open(const char *hostport, char *why, size_t whylen)
{
    struct metrics_http *h = calloc(1, sizeof *h);
    if (!h) {
        snprintf(why, whylen, "out of memory");
        return NULL;
    }
    h->lfd = listen_on(hostport, why, whylen);
    if (h->lfd < 0 || pipe2(h->wake, O_CLOEXEC | O_NONBLOCK) != 0) {
        if (h->lfd >= 0) {
            snprintf(why, whylen, "pipe: %s", strerror(errno));
            close(h->lfd);
        }
        free(h);
        return NULL;
    }
    for (unsigned i = 0; i < METRICS_HTTP_MAX_CONNS; i++)
        h->conns[i].fd = -1;
    return h;
}

static void conn_close(struct hconn *c)
{
    close(c->fd);
    free(c->out);
    c->fd = -1;
    c->out = NULL;
    c->inlen = c->outlen = c->outpos = 0;
    c->draining = 0;
}

static void respond(struct hconn *c, int code, const char *reason, const char *type,
                    const char *extra, const char *body, size_t len)
{
    char head[256];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n%s\r\n", code, reason, type, len, extra);
    c->out = malloc((size_t)n + len);
    if (!c->out) {
        conn_close(c);
        return;
    }
    memcpy(c->out, head, (size_t)n);
    memcpy(c->out + n, body, len);
    c->outlen = (size_t)n + len;
    c->outpos = 0;
}

static void respond_text(struct hconn *c, int code, const char *reason, const char *extra)
{
    char body[96];
    int n = snprintf(body, sizeof body, "%d %s\n", code, reason);
    respond(c, code, reason, "text/plain; charset=utf-8", extra, body, (size_t)n);
}

static int is_tchar(char ch)
{
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
           (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

/* The request line: "METHOD SP TARGET SP HTTP/1.x". */
static void answer(struct metrics_http *h, struct hconn *c)
{
    char *eol = memchr(c->in, '\n', c->inlen);
    size_t linelen = (size_t)(eol - c->in);
    if (linelen && c->in[linelen - 1] == '\r')
        linelen--;
    c->in[linelen] = '\0';
    char *sp1 = strchr(c->in, ' '), *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
    if (!sp1 || !sp2 || sp1 == c->in || sp2[1] == '\0' || strchr(sp2 + 1, ' ') ||
        sp1[1] != '/' || (strcmp(sp2 + 1, "HTTP/1.1") != 0 && strcmp(sp2 + 1, "HTTP/1.0") != 0)) {
        respond_text(c, 400, "Bad Request", "");
        return;
    }
    for (const char *p = c->in; p < sp1; p++)
        if (!is_tchar(*p)) {
            respond_text(c, 400, "Bad Request", "");
            return;
        }
    *sp1 = *sp2 = '\0';
    size_t pathlen = strcspn(sp1 + 1, "?");
    if (strcmp(c->in, "GET") != 0) {
        respond_text(c, 405, "Method Not Allowed", "Allow: GET\r\n");
    } else if (pathlen != strlen("/metrics") || strncmp(sp1 + 1, "/metrics", pathlen) != 0) {
        respond_text(c, 404, "Not Found", "");
    } else {
        char *text = NULL;
        size_t len = 0;
        if (h->fn(h->arg, &text, &len) != 0) {
            respond_text(c, 503, "Service Unavailable", "");
            return;
        }
        respond(c, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", "", text, len);
        rlog_free(text);
    }
}

/* The head ends with an empty line (CRLF CRLF, or bare LF LF). */
static int head_complete(const struct hconn *c)
{
    for (size_t i = 1; i < c->inlen; i++)
        if (c->in[i] == '\n' &&
            (c->in[i - 1] == '\n' || (i >= 3 && !memcmp(c->in + i - 3, "\r\n\r", 3))))
            return 1;
    return 0;
}

/* After the answer, what the client still sends is read and dropped until
 * it hangs up: closing with unread bytes would reset the connection, and a
 * reset can destroy the answer before the client reads it (a 431). */
static void drain(struct hconn *c)
{
    char sink[4096];
    ssize_t r = recv(c->fd, sink, sizeof sink, 0);
    if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
        conn_close(c);
}

static void on_readable(struct metrics_http *h, struct hconn *c)
{
    if (c->draining) {
        drain(c);
        return;
    }
    ssize_t r = recv(c->fd, c->in + c->inlen, sizeof c->in - c->inlen, 0);
    if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
        conn_close(c);
        return;
    }
    if (r < 0)
        return;
    c->inlen += (size_t)r;
    if (head_complete(c))
        answer(h, c);
    else if (c->inlen == sizeof c->in)
        respond_text(c, 431, "Request Header Fields Too Large", "");
}

static void on_writable(struct hconn *c)
{
    ssize_t w = send(c->fd, c->out + c->outpos, c->outlen - c->outpos, MSG_NOSIGNAL);
    if (w < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (w < 0) {
        conn_close(c);
        return;
    }
    c->outpos += (size_t)w;
    if (c->outpos == c->outlen) { /* one request per connection */
        free(c->out);
        c->out = NULL;
        c->draining = 1;
        shutdown(c->fd, SHUT_WR);
    }
}

static void on_accept(struct metrics_http *h)
{
    int fd = accept4(h->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0)
        return;
    for (unsigned i = 0; i < METRICS_HTTP_MAX_CONNS; i++) {
        struct hconn *c = &h->conns[i];
        if (c->fd < 0) {
            c->fd = fd;
            c->deadline = mono_ms() + METRICS_HTTP_TIMEOUT_MS;
            return;
        }
    }
    close(fd); /* over the cap */
}

static void *serve(void *arg)
{
    struct metrics_http *h = arg;
    struct pollfd pfd[2 + METRICS_HTTP_MAX_CONNS];
    for (;;) {
        int64_t now = mono_ms(), next = now + METRICS_HTTP_TIMEOUT_MS;
        pfd[0] = (struct pollfd){.fd = h->wake[0], .events = POLLIN};
        pfd[1] = (struct pollfd){.fd = h->lfd, .events = POLLIN};
        for (unsigned i = 0; i < METRICS_HTTP_MAX_CONNS; i++) {
            struct hconn *c = &h->conns[i];
            if (c->fd >= 0 && now >= c->deadline)
                conn_close(c); /* too slow to ask or to take the answer */
            pfd[2 + i] = (struct pollfd){.fd = c->fd, .events = c->out ? POLLOUT : POLLIN};
            if (c->fd >= 0 && c->deadline < next)
                next = c->deadline;
        }
        int pr = poll(pfd, 2 + METRICS_HTTP_MAX_CONNS, (int)(next - now) + 1);
        if (pr < 0 && errno != EINTR)
            break;
        if (pr <= 0)
            continue;
        if (pfd[0].revents)
            break;
        if (pfd[1].revents & POLLIN)
            on_accept(h);
        for (unsigned i = 0; i < METRICS_HTTP_MAX_CONNS; i++) {
            struct hconn *c = &h->conns[i];
            if (c->fd < 0 || pfd[2 + i].fd != c->fd || !pfd[2 + i].revents)
                continue;
            if (c->out)
                on_writable(c);
            else
                on_readable(h, c);
        }
    }
    return NULL;
}

int metrics_http_start(struct metrics_http *h, metrics_http_fn fn, void *arg, char *why,
                       size_t whylen)
{
    h->fn = fn;
    h->arg = arg;
    int e = pthread_create(&h->thread, NULL, serve, h);
    if (e != 0) {
        snprintf(why, whylen, "cannot start the metrics thread: %s", strerror(e));
        return -1;
    }
    h->started = 1;
    return 0;
}

void metrics_http_close(struct metrics_http *h)
{
    if (!h)
        return;
    if (h->started) {
        ssize_t w = write(h->wake[1], "x", 1);
        (void)w;
        pthread_join(h->thread, NULL);
    }
    for (unsigned i = 0; i < METRICS_HTTP_MAX_CONNS; i++)
        if (h->conns[i].fd >= 0)
            conn_close(&h->conns[i]);
    close(h->lfd);
    close(h->wake[0]);
    close(h->wake[1]);
    free(h);
}
