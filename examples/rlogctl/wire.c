/*
 * rlogctl: the control protocol's encoding (struct buf, put_*), bounds-checked
 * decoding (struct rd, get_*) and framed socket I/O with deadlines, shared by
 * the node and the clients. The protocol itself is described in rlogctl.h.
 */
#include "rlogctl.h"

void buf_reserve(struct buf *b, size_t more)
{
    if (b->len + more <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + more)
        cap *= 2;
    unsigned char *p = realloc(b->p, cap);
    if (p == NULL) {
        fprintf(stderr, "%s: out of memory\n", progname);
        exit(EXIT_ERROR);
    }
    b->p = p;
    b->cap = cap;
}

void buf_put(struct buf *b, const void *d, size_t n)
{
    buf_reserve(b, n);
    if (n)
        memcpy(b->p + b->len, d, n);
    b->len += n;
}

void put_u8(struct buf *b, uint8_t v) { buf_put(b, &v, 1); }

void put_u32(struct buf *b, uint32_t v)
{
    unsigned char x[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 8), (unsigned char)v};
    buf_put(b, x, 4);
}

void put_u64(struct buf *b, uint64_t v)
{
    put_u32(b, (uint32_t)(v >> 32));
    put_u32(b, (uint32_t)v);
}

void put_str(struct buf *b, const char *s)
{
    size_t n = s ? strnlen(s, 4096) : 0;
    put_u32(b, (uint32_t)n);
    buf_put(b, s, n);
}

/* Starts a frame: reserves its length prefix; end_frame fills it in. */
size_t begin_frame(struct buf *b)
{
    size_t at = b->len;
    put_u32(b, 0);
    return at;
}

void end_frame(struct buf *b, size_t at)
{
    uint32_t n = (uint32_t)(b->len - at - 4);
    b->p[at] = (unsigned char)(n >> 24);
    b->p[at + 1] = (unsigned char)(n >> 16);
    b->p[at + 2] = (unsigned char)(n >> 8);
    b->p[at + 3] = (unsigned char)n;
}

static int rd_need(struct rd *r, size_t n)
{
    if (r->bad || r->len - r->pos < n) {
        r->bad = 1;
        return 0;
    }
    return 1;
}

uint8_t get_u8(struct rd *r)
{
    if (!rd_need(r, 1))
        return 0;
    return r->p[r->pos++];
}

uint32_t get_u32(struct rd *r)
{
    if (!rd_need(r, 4))
        return 0;
    const unsigned char *x = r->p + r->pos;
    r->pos += 4;
    return (uint32_t)x[0] << 24 | (uint32_t)x[1] << 16 | (uint32_t)x[2] << 8 | x[3];
}

uint64_t get_u64(struct rd *r)
{
    uint64_t hi = get_u32(r);
    return hi << 32 | get_u32(r);
}

const unsigned char *get_bytes(struct rd *r, size_t n)
{
    if (!rd_need(r, n))
        return NULL;
    const unsigned char *p = r->p + r->pos;
    r->pos += n;
    return p;
}

/* Reads a str into dst (NUL-terminated, truncated to cap-1). */
void get_str(struct rd *r, char *dst, size_t cap)
{
    uint32_t n = get_u32(r);
    const unsigned char *p = get_bytes(r, n);
    dst[0] = '\0';
    if (p == NULL)
        return;
    size_t k = n < cap - 1 ? n : cap - 1;
    memcpy(dst, p, k);
    dst[k] = '\0';
}

/* ---- socket I/O with deadlines --------------------------------------------- */

/* Waits until fd is ready for `events` or the deadline passes: 1 ready, 0
 * to wait again (interrupted, or poll's own timeout), -1 with errno
 * (ETIMEDOUT at the deadline). */
static int wait_ready(int fd, short events, int64_t deadline)
{
    int64_t left = deadline - now_ms();
    if (left <= 0) {
        errno = ETIMEDOUT;
        return -1;
    }
    struct pollfd pfd = {.fd = fd, .events = events};
    int pr = poll(&pfd, 1, (int)(left > INT_MAX ? INT_MAX : left));
    if (pr < 0)
        return errno == EINTR ? 0 : -1;
    return pr > 0;
}

/* Returns 0, or -1 with errno (ETIMEDOUT on deadline, EPIPE etc.). */
int write_all(int fd, const void *p, size_t n, int64_t deadline)
{
    const unsigned char *c = p;
    while (n > 0) {
        int pr = wait_ready(fd, POLLOUT, deadline);
        if (pr < 0)
            return -1;
        if (pr == 0)
            continue;
        ssize_t w = send(fd, c, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0) {
            if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
                continue;
            return -1;
        }
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Returns n on success, 0 on EOF before any byte, -1 with errno otherwise
 * (EPROTO for EOF in the middle). */
static ssize_t read_full(int fd, void *p, size_t n, int64_t deadline)
{
    unsigned char *c = p;
    size_t got = 0;
    while (got < n) {
        int pr = wait_ready(fd, POLLIN, deadline);
        if (pr < 0)
            return -1;
        if (pr == 0)
            continue;
        ssize_t r = recv(fd, c + got, n - got, MSG_DONTWAIT);
        if (r < 0) {
            if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
                continue;
            return -1;
        }
        if (r == 0) {
            if (got == 0)
                return 0;
            errno = EPROTO;
            return -1;
        }
        got += (size_t)r;
    }
    return (ssize_t)got;
}

/* Receives one frame into *out (malloc'd). Returns 1 on a frame, 0 on a clean
 * EOF, -1 on error with a reason in why. */
int recv_frame(int fd, unsigned char **out, size_t *len, int64_t deadline,
                      char *why, size_t whylen)
{
    unsigned char h[4];
    ssize_t r = read_full(fd, h, 4, deadline);
    if (r == 0)
        return 0;
    if (r < 0) {
        snprintf(why, whylen, "%s", errno == EPROTO ? "connection closed inside a frame header"
                                                    : strerror(errno));
        return -1;
    }
    uint32_t n = (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3];
    if (n == 0 || n > CTL_MAX_FRAME) {
        snprintf(why, whylen, "frame length %" PRIu32 " out of range 1..%u", n, CTL_MAX_FRAME);
        return -1;
    }
    unsigned char *p = malloc(n);
    if (p == NULL) {
        snprintf(why, whylen, "out of memory for a %" PRIu32 "-byte frame", n);
        return -1;
    }
    r = read_full(fd, p, n, deadline);
    if (r != (ssize_t)n) {
        snprintf(why, whylen, "%s", r == 0 || errno == EPROTO ? "connection closed inside a frame"
                                                              : strerror(errno));
        free(p);
        return -1;
    }
    *out = p;
    *len = n;
    return 1;
}
