/*
 * rlogctl node: the tail request, a liblog subscription streamed over the
 * control connection that asked for it.
 */
#include "node.h"

/* ---- tail: a subscription streamed over the connection ---------------------
 * The subscription's callback (on its own thread) only appends frames to a
 * per-client queue and wakes the client thread, which moves the queue to the
 * socket without blocking. The queue is bounded: past CTL_TAIL_BUFFER bytes
 * the subscription is paused (a paused one holds nothing on the node) until
 * the client drains it; a client that accepts no byte for CTL_TAIL_STALL_MS
 * with a full queue is dropped, and so is one that goes away. Neither ever
 * holds up the node, its appends or other clients. */
struct tail {
    pthread_mutex_t mu;
    struct buf q;       /* frames for the socket; q.p[qpos..] not sent yet */
    size_t qpos;
    rlog_sub *sub;
    uint64_t want;      /* records to deliver (0: no limit) */
    uint64_t delivered;
    uint64_t next;      /* the offset expected next */
    int paused;
    int ended, status;  /* the subscription ended (status), or `want` reached */
    int efd;            /* eventfd: wakes the client thread */
};

static void tail_cb(void *arg, int status, uint64_t offset, const void *rec, size_t len)
{
    struct tail *t = arg;
    int wake = 0;
    pthread_mutex_lock(&t->mu);
    if (t->ended) {
        pthread_mutex_unlock(&t->mu);
        return;
    }
    if (status != 0) {
        t->ended = 1;
        t->status = status;
        wake = 1;
    } else if (offset != t->next) {
        /* The API promises each record once, in order; say so loudly if not. */
        node_log("error: liblog subscription delivered offset %" PRIu64 " where %" PRIu64
                 " was expected", offset, t->next);
        t->ended = 1;
        t->status = RLOG_EPROTO;
        wake = 1;
    } else {
        wake = t->q.len == t->qpos;
        put_record(&t->q, offset, rec, len);
        t->next = offset + 1;
        t->delivered++;
        if (t->want != 0 && t->delivered == t->want) {
            t->ended = 1;
            wake = 1;
        }
        if (!t->paused && t->q.len - t->qpos >= CTL_TAIL_BUFFER) {
            t->paused = 1;
            rlog_sub_pause(t->sub); /* takes effect before the next record */
        }
    }
    pthread_mutex_unlock(&t->mu);
    if (wake) {
        uint64_t one = 1;
        ssize_t w = write(t->efd, &one, sizeof one);
        (void)w;
    }
}

static void put_offset_frame(struct buf *b, uint8_t type, uint64_t off)
{
    size_t at = begin_frame(b);
    put_u8(b, type);
    put_u64(b, off);
    end_frame(b, at);
}

/* Streams records from `from` (UINT64_MAX: the commit offset now) until
 * `count` records (0: no limit), an error, or shutdown. Returns -1 when the
 * connection must be closed without more output (client gone or dropped). */
int handle_tail(struct hosted *h, int fd, unsigned slot, struct rd *r, struct buf *out)
{
    uint64_t from = get_u64(r), count = get_u64(r);
    /* Then, with --cursor, the cursor's name (length, bytes). */
    char cursor[65] = "";
    if (!r->bad && r->pos < r->len) {
        uint32_t n = get_u32(r);
        const unsigned char *p = n >= 1 && n <= 64 ? get_bytes(r, n) : NULL;
        if (p == NULL || memchr(p, '\0', n) != NULL)
            r->bad = 1;
        else
            memcpy(cursor, p, n), cursor[n] = '\0';
    }
    if (r->bad || r->pos != r->len) {
        r->bad = 1;
        put_end(out, RLOG_EPROTO, 0, 0, 0, "", "tail: malformed request");
        return 0;
    }
    rlog *log = log_enter(h);
    if (log == NULL) {
        put_refused(out, h);
        return 0;
    }
    char msg[512] = "";
    int rc = 0;
    if (cursor[0]) {
        uint64_t at = 0;
        rc = rlog_cursor_get(log, cursor, &at);
        if (rc == 0)
            from = at;
        else if (rc != RLOG_ENOTFOUND)
            snprintf(msg, sizeof msg, "%s", rlog_errmsg(log));
        else
            rc = 0; /* no such cursor yet: from --from, or the end */
    }
    if (rc == 0 && from == UINT64_MAX) {
        struct rlog_status st;
        rc = rlog_status(log, &st);
        if (rc != 0)
            snprintf(msg, sizeof msg, "%s", rlog_errmsg(log));
        else
            from = st.commit_offset;
    }
    struct tail *t = NULL;
    if (rc == 0) {
        t = xmalloc(sizeof *t);
        memset(t, 0, sizeof *t);
        pthread_mutex_init(&t->mu, NULL);
        t->want = count;
        t->next = from;
        t->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (t->efd < 0) {
            rc = RLOG_ENOMEM;
            snprintf(msg, sizeof msg, "eventfd: %s", strerror(errno));
        }
    }
    if (rc == 0) {
        put_offset_frame(&t->q, 't', from);
        /* Held across rlog_subscribe so the callback sees t->sub set. */
        pthread_mutex_lock(&t->mu);
        rc = rlog_subscribe(log, from, tail_cb, t, &t->sub);
        if (rc != 0)
            snprintf(msg, sizeof msg, "%s", rlog_errmsg(log));
        pthread_mutex_unlock(&t->mu);
    }
    if (rc != 0) {
        log_leave(h);
        if (t != NULL) {
            if (t->efd >= 0)
                close(t->efd);
            pthread_mutex_destroy(&t->mu);
            free(t->q.p);
            free(t);
        }
        put_end(out, rc, 0, 0, 0, "", msg);
        return 0;
    }
    node_log("control: tail client %u: streaming from offset %" PRIu64, slot, from);

    enum { RUNNING, DONE, GONE, STALLED, CLOSING, CLIENT_SPOKE } how = RUNNING;
    int64_t last_progress = now_ms(), next_keepalive = last_progress + CTL_TAIL_KEEPALIVE_MS;
    char why[128] = "";
    while (how == RUNNING) {
        pthread_mutex_lock(&t->mu);
        size_t pending = t->q.len - t->qpos;
        int ended = t->ended, paused = t->paused;
        pthread_mutex_unlock(&t->mu);
        int64_t now = now_ms();
        if (ended && pending == 0) {
            how = DONE;
            break;
        }
        if (log_closing(h)) {
            how = CLOSING;
            break;
        }
        if (pending > 0)
            next_keepalive = now + CTL_TAIL_KEEPALIVE_MS;
        else
            last_progress = now;
        if (paused && now - last_progress >= CTL_TAIL_STALL_MS) {
            how = STALLED;
            break;
        }
        if (pending == 0 && now >= next_keepalive) {
            /* Lets the client tell a quiet log from a dead node. */
            pthread_mutex_lock(&t->mu);
            put_offset_frame(&t->q, 'k', t->next);
            pthread_mutex_unlock(&t->mu);
            continue;
        }
        int64_t wait = pending ? CTL_TAIL_STALL_MS : next_keepalive - now;
        if (wait > 1000)
            wait = 1000; /* bounds the wait for shutdown */
        struct pollfd pfd[2] = {{.fd = fd, .events = POLLIN | (pending ? POLLOUT : 0)},
                                {.fd = t->efd, .events = POLLIN}};
        int pr = poll(pfd, 2, (int)(wait < 0 ? 0 : wait));
        if (pr < 0 && errno != EINTR) {
            snprintf(why, sizeof why, "poll: %s", strerror(errno));
            how = GONE;
            break;
        }
        if (pr <= 0)
            continue;
        if (pfd[1].revents & POLLIN) {
            uint64_t v;
            ssize_t rr = read(t->efd, &v, sizeof v);
            (void)rr;
        }
        if (pfd[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            /* A tail owns the connection: the client only ever hangs up. */
            unsigned char ch;
            ssize_t rr = recv(fd, &ch, 1, MSG_DONTWAIT);
            if (rr > 0) {
                how = CLIENT_SPOKE;
            } else if (rr == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
                if (log_closing(h)) {
                    how = CLOSING; /* our own shutdown(SHUT_RD) */
                } else {
                    snprintf(why, sizeof why, "%s", rr == 0 ? "closed the connection"
                                                            : strerror(errno));
                    how = GONE;
                }
            }
            if (how != RUNNING)
                break;
        }
        if (pending && (pfd[0].revents & POLLOUT)) {
            pthread_mutex_lock(&t->mu);
            ssize_t w = send(fd, t->q.p + t->qpos, t->q.len - t->qpos,
                             MSG_NOSIGNAL | MSG_DONTWAIT);
            int e = errno;
            if (w > 0) {
                t->qpos += (size_t)w;
                last_progress = now_ms();
                if (t->qpos == t->q.len) {
                    t->qpos = t->q.len = 0;
                } else if (t->qpos >= (64u << 10) && t->qpos * 2 >= t->q.len) {
                    memmove(t->q.p, t->q.p + t->qpos, t->q.len - t->qpos);
                    t->q.len -= t->qpos;
                    t->qpos = 0;
                }
                if (t->paused && t->q.len - t->qpos <= CTL_TAIL_BUFFER / 4) {
                    t->paused = 0;
                    rlog_sub_resume(t->sub);
                }
            }
            pthread_mutex_unlock(&t->mu);
            if (w < 0 && e != EAGAIN && e != EWOULDBLOCK && e != EINTR) {
                snprintf(why, sizeof why, "%s", strerror(e));
                how = GONE;
            }
        }
    }

    /* Not under t->mu: unsubscribing waits for a running callback. */
    rlog_unsubscribe(t->sub);
    log_leave(h);
    int status = t->status;
    uint64_t delivered = t->delivered, next = t->next;
    size_t pending = t->q.len - t->qpos;
    int ret = 0;
    switch (how) {
    case DONE:
        if (status == RLOG_ETRIMMED)
            snprintf(msg, sizeof msg, "offset %" PRIu64 " was trimmed", next);
        else if (status != 0)
            snprintf(msg, sizeof msg, "the subscription ended: %s", rlog_strerror(status));
        put_end(out, status, 0, delivered, 0, "", msg);
        node_log("control: tail client %u: %s after %" PRIu64 " %s", slot,
                 status == 0 ? "done" : rlog_errname(status), delivered,
                 plural(delivered, "record", "records"));
        break;
    case CLOSING:
        /* Complete the frames under way, then say why the stream ends. */
        if (pending > 0 && write_all(fd, t->q.p + t->qpos, pending, now_ms() + 1000) != 0)
            ret = -1;
        else
            put_end(out, RLOG_ECLOSED, 0, delivered, 0, "",
                    is_closing() ? "node is shutting down" : "the log is being deleted");
        break;
    case CLIENT_SPOKE:
        node_log("control: dropping tail client %u: it sent bytes during a tail", slot);
        ret = -1;
        break;
    case STALLED:
        node_log("control: dropping tail client %u: it cannot keep up (read nothing for %d ms "
                 "with %zu bytes buffered; paused before offset %" PRIu64 ")", slot,
                 CTL_TAIL_STALL_MS, pending, next);
        ret = -1;
        break;
    default:
        node_log("control: tail client %u went away (%s) after %" PRIu64 " %s", slot, why,
                 delivered, plural(delivered, "record", "records"));
        ret = -1;
    }
    close(t->efd);
    pthread_mutex_destroy(&t->mu);
    free(t->q.p);
    free(t);
    return ret;
}
