/*
 * rlogctl node: the answers to control requests other than tail
 * (serve_tail.c): status, append, read one record or a range, membership,
 * trim and the read barrier, each for the log h of the request (NULL: the
 * node's one log). Each is one liblog call made inside log_enter/log_leave,
 * so that neither the shutdown nor delete-log closes the log under it.
 */
#include "node.h"

/* An error end frame that names the leader when the node knows one. */
static void put_error(struct buf *b, struct hosted *h, int code, unsigned flags,
                      const char *msg)
{
    struct rlog_status st;
    memset(&st, 0, sizeof st);
    rlog *log = code == RLOG_ENOTLEADER ? log_enter(h) : NULL;
    if (log != NULL) {
        if (rlog_status(log, &st) != 0)
            memset(&st, 0, sizeof st);
        log_leave(h);
    }
    put_end(b, code, flags, 0, st.leader_id, st.leader_address, msg);
}

static void put_status(struct buf *b, const struct rlog_status *st)
{
    size_t at = begin_frame(b);
    put_u8(b, 'S');
    put_u64(b, st->id);
    put_u32(b, (uint32_t)st->role);
    put_u64(b, st->term);
    put_u64(b, st->leader_id);
    put_str(b, st->leader_address);
    put_u64(b, st->first_offset);
    put_u64(b, st->commit_offset);
    put_u64(b, st->last_offset);
    put_u64(b, st->last_index);
    put_u64(b, st->commit_index);
    put_u32(b, (uint32_t)st->fatal);
    put_u64(b, st->catchup_index);
    put_u64(b, st->catchup_target);
    put_u64(b, st->cache_bytes);
    put_u64(b, st->cache_hits);
    put_u64(b, st->cache_misses);
    unsigned n = st->n_peers > RLOG_MAX_PEERS ? RLOG_MAX_PEERS : st->n_peers;
    put_u32(b, n);
    for (unsigned i = 0; i < n; i++) {
        put_u64(b, st->peers[i].id);
        put_str(b, st->peers[i].address);
        put_u8(b, (uint8_t)(st->peers[i].voter != 0));
        put_u64(b, st->peers[i].match_index);
    }
    put_str(b, st->fatal_msg);
    put_u8(b, (uint8_t)(st->tls != 0));
    put_u64(b, st->refused_connections);
    put_u64(b, st->rejected_handshakes);
    put_u64(b, st->timed_out_connections);
    put_u64(b, st->send_queue_overflows);
    /* Bounds on what peers can make this node hold (hardening). */
    put_u64(b, st->fetch_serve_refused);
    put_u64(b, st->held_dropped);
    put_u64(b, st->damaged_ranges);
    put_u64(b, st->repaired_ranges);
    put_u64(b, st->repaired_entries);
    put_u64(b, st->unreadable_entries);
    put_u64(b, st->forwarded_appends);
    put_u64(b, st->forwards_served);
    put_u64(b, st->forward_refused);
    put_u64(b, st->retention_trims);
    end_frame(b, at);
}

void handle_status(struct hosted *h, struct buf *out)
{
    struct rlog_status st;
    rlog *log = log_enter(h);
    if (log == NULL) {
        put_refused(out, h);
        return;
    }
    int rc = rlog_status(log, &st);
    char msg[256];
    snprintf(msg, sizeof msg, "%s", rc ? rlog_errmsg(log) : "");
    log_leave(h);
    if (rc != 0) {
        put_end(out, rc, 0, 0, 0, "", msg);
        return;
    }
    put_status(out, &st);
    put_end(out, 0, 0, 0, 0, "", "");
}

/* An append waiting for its callback. Shared by the handler thread and the
 * loop thread's callback; the last one to let go frees it. */
struct waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int refs, done, status;
    uint64_t first;
    char errmsg[256]; /* rlog_errmsg in the callback, when status != 0 */
};

static void waiter_unref(struct waiter *w)
{
    pthread_mutex_lock(&w->mu);
    int left = --w->refs;
    pthread_mutex_unlock(&w->mu);
    if (left == 0) {
        pthread_cond_destroy(&w->cv);
        pthread_mutex_destroy(&w->mu);
        free(w);
    }
}

static void append_cb(void *arg, int status, uint64_t first_offset)
{
    struct waiter *w = arg;
    pthread_mutex_lock(&w->mu);
    w->done = 1;
    w->status = status;
    w->first = first_offset;
    if (status != 0)
        snprintf(w->errmsg, sizeof w->errmsg, "%s", rlog_errmsg(NULL));
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    waiter_unref(w);
}

void handle_append(struct hosted *h, struct rd *r, struct buf *out, int with_opts)
{
    struct rlog_append_opts ao;
    rlog_append_opts_init(&ao);
    if (with_opts) {
        ao.producer_id = get_u64(r);
        ao.sequence = get_u64(r);
        ao.expect_offset = get_u64(r);
    }
    uint32_t n = get_u32(r);
    if (r->bad || n == 0 || n > CTL_MAX_BATCH) {
        char msg[128];
        snprintf(msg, sizeof msg, "append: record count %" PRIu32 " out of range 1..%u", n,
                 CTL_MAX_BATCH);
        put_end(out, RLOG_EPROTO, 0, 0, 0, "", msg);
        r->bad = 1;
        return;
    }
    struct rlog_buf *recs = xmalloc(n * sizeof *recs);
    for (uint32_t i = 0; i < n; i++) {
        uint32_t len = get_u32(r);
        recs[i].base = get_bytes(r, len);
        recs[i].len = len;
        if (r->bad)
            break;
    }
    if (r->bad || r->pos != r->len) {
        free(recs);
        put_end(out, RLOG_EPROTO, 0, 0, 0, "",
                r->bad ? "append: request shorter than its records"
                       : "append: trailing bytes after the records");
        r->bad = 1;
        return;
    }

    struct waiter *w = xmalloc(sizeof *w);
    memset(w, 0, sizeof *w);
    pthread_mutex_init(&w->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w->cv, &ca);
    pthread_condattr_destroy(&ca);
    w->refs = 2;

    rlog *log = log_enter(h);
    if (log == NULL) {
        free(recs);
        w->refs = 1;
        waiter_unref(w);
        put_refused(out, h);
        return;
    }
    int rc = rlog_append_ex_async(log, &ao, recs, n, append_cb, w);
    char msg[512];
    snprintf(msg, sizeof msg, "%s", rc ? rlog_errmsg(log) : "");
    log_leave(h);
    free(recs); /* the library copied the bytes */
    if (rc != 0) {
        w->refs = 1; /* the callback never fires */
        waiter_unref(w);
        put_error(out, h, rc, 0, msg); /* rejected up front: nothing was appended */
        return;
    }

    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += CTL_APPEND_WAIT_MS / 1000;
    pthread_mutex_lock(&w->mu);
    int timed_out = 0;
    while (!w->done && !timed_out)
        timed_out = pthread_cond_timedwait(&w->cv, &w->mu, &until) == ETIMEDOUT;
    int done = w->done, status = w->status;
    uint64_t first = w->first;
    char why[sizeof w->errmsg];
    snprintf(why, sizeof why, "%s", w->errmsg);
    pthread_mutex_unlock(&w->mu);
    waiter_unref(w);

    if (!done) {
        snprintf(msg, sizeof msg, "no commit within %d ms (no quorum?); the records may or may "
                 "not be in the log", CTL_APPEND_WAIT_MS);
        put_error(out, h, RLOG_ETIMEOUT, FLAG_INDETERMINATE, msg);
    } else if (status == RLOG_EINDOUBT) {
        snprintf(msg, sizeof msg, "the node accepted the records, then: %s",
                 why[0] ? why : rlog_strerror(status));
        put_error(out, h, status, FLAG_INDETERMINATE, msg);
    } else if (status == RLOG_ECONFLICT) {
        snprintf(msg, sizeof msg, "%s", why[0] ? why : rlog_strerror(status));
        put_end(out, status, 0, first, 0, "", msg);
    } else if (status != 0) {
        /* Any other answer through the callback means nothing was appended. */
        snprintf(msg, sizeof msg, "the node accepted the records, then: %s (%s); nothing of them "
                 "was appended", rlog_errname(status), why[0] ? why : rlog_strerror(status));
        put_error(out, h, status, 0, msg);
    } else {
        put_end(out, 0, 0, first, 0, "", "");
    }
}

void put_record(struct buf *out, uint64_t offset, const void *p, size_t len)
{
    size_t at = begin_frame(out);
    put_u8(out, 'r');
    put_u64(out, offset);
    buf_put(out, p, len);
    end_frame(out, at);
}

static void not_found_msg(rlog *log, char *msg, size_t cap, int rc, uint64_t off)
{
    struct rlog_status st;
    memset(&st, 0, sizeof st);
    if (rlog_status(log, &st) != 0)
        memset(&st, 0, sizeof st);
    if (rc == RLOG_ETRIMMED)
        snprintf(msg, cap, "offset %" PRIu64 " was trimmed (first readable offset %" PRIu64 ")",
                 off, st.first_offset);
    else if (st.commit_offset == 0)
        snprintf(msg, cap, "offset %" PRIu64 " is not committed here (nothing is committed yet; "
                 "the log's next offset is 0)", off);
    else if (st.commit_offset <= st.first_offset)
        snprintf(msg, cap, "offset %" PRIu64 " is not committed here (every committed offset is "
                 "trimmed; the log's next offset is %" PRIu64 ")", off, st.commit_offset);
    else /* commit_offset is the end of the committed range, exclusive */
        snprintf(msg, cap, "offset %" PRIu64 " is not committed here (offsets %" PRIu64 "..%" PRIu64
                 " are; the log's next offset is %" PRIu64 ")", off, st.first_offset,
                 st.commit_offset - 1, st.commit_offset);
}

void handle_get(struct hosted *h, struct rd *r, struct buf *out)
{
    uint64_t off = get_u64(r);
    if (r->bad || r->pos != r->len) {
        r->bad = 1;
        put_end(out, RLOG_EPROTO, 0, 0, 0, "", "read: malformed request");
        return;
    }
    rlog *log = log_enter(h);
    if (log == NULL) {
        put_refused(out, h);
        return;
    }
    void *p = NULL;
    size_t len = 0;
    char msg[512] = "";
    int rc = rlog_read(log, off, &p, &len);
    if (rc == RLOG_ENOTFOUND || rc == RLOG_ETRIMMED)
        not_found_msg(log, msg, sizeof msg, rc, off);
    else if (rc != 0)
        snprintf(msg, sizeof msg, "%s", rlog_errmsg(log));
    log_leave(h);
    if (rc != 0) {
        put_end(out, rc, 0, 0, 0, "", msg);
        return;
    }
    put_record(out, off, p, len);
    rlog_free(p);
    put_end(out, 0, 0, 1, 0, "", "");
}

/* Streams [from, end) with an iterator, flushing every 64 KiB. */
int handle_range(struct hosted *h, int fd, struct rd *r, struct buf *out, int64_t deadline_step)
{
    uint64_t from = get_u64(r), end = get_u64(r);
    if (r->bad || r->pos != r->len || end < from) {
        r->bad = 1;
        put_end(out, RLOG_EPROTO, 0, 0, 0, "", "read: malformed range request");
        return 0;
    }
    rlog *log = log_enter(h);
    if (log == NULL) {
        put_refused(out, h);
        return 0;
    }
    char msg[512] = "";
    rlog_iter *it = NULL;
    int rc = from == end ? 0 : rlog_iter_open(log, from, end, &it);
    uint64_t next = from, count = 0;
    if (rc == RLOG_ETRIMMED)
        not_found_msg(log, msg, sizeof msg, rc, from);
    else if (rc != 0)
        snprintf(msg, sizeof msg, "%s", rlog_errmsg(log));
    while (rc == 0 && it != NULL && next < end) {
        if (log_closing(h)) {
            rc = RLOG_ECLOSED;
            snprintf(msg, sizeof msg, "%s", h != NULL && !is_closing() ? "the log is being deleted"
                                                                        : "node is shutting down");
            break;
        }
        const void *p;
        size_t len;
        uint64_t off;
        rc = rlog_iter_next(it, &p, &len, &off);
        if (rc == RLOG_ENOTFOUND) {
            if (end == UINT64_MAX)
                rc = 0; /* the committed end */
            else
                not_found_msg(log, msg, sizeof msg, rc, next);
            break;
        }
        if (rc != 0) {
            snprintf(msg, sizeof msg, "%s", rlog_errmsg(log));
            break;
        }
        if (off != next) {
            /* The API promises dense offsets; say so loudly if not. */
            snprintf(msg, sizeof msg, "liblog iterator returned offset %" PRIu64
                     " where %" PRIu64 " was expected", off, next);
            node_log("error: %s", msg);
            rc = RLOG_EPROTO;
            break;
        }
        put_record(out, off, p, len);
        next++;
        count++;
        if (out->len >= (64u << 10)) {
            if (write_all(fd, out->p, out->len, now_ms() + deadline_step) != 0) {
                rc = -1000; /* client gone */
                break;
            }
            out->len = 0;
        }
    }
    if (it != NULL)
        rlog_iter_close(it);
    log_leave(h);
    if (rc == -1000)
        return -1;
    put_end(out, rc, 0, rc == 0 ? count : 0, 0, "", msg);
    return 0;
}

/* ---- membership and retention -------------------------------------------------- */

/* Requests that name one number (a node id, or for 'P' an offset) and
 * change the cluster, on the leader. */
void handle_member(struct hosted *h, uint8_t op, struct rd *r, struct buf *out)
{
    uint64_t id = get_u64(r);
    char addr[256] = "";
    if (op == 'N') {
        uint32_t n = get_u32(r);
        const unsigned char *p = get_bytes(r, n);
        if (p != NULL && n > 0 && n < sizeof addr && memchr(p, '\0', n) == NULL) {
            memcpy(addr, p, n);
            addr[n] = '\0';
        } else {
            r->bad = 1;
        }
    }
    if (r->bad || r->pos != r->len) {
        r->bad = 1;
        put_end(out, RLOG_EPROTO, 0, 0, 0, "", "membership: malformed request");
        return;
    }
    rlog *log = log_enter(h);
    if (log == NULL) {
        put_refused(out, h);
        return;
    }
    int rc = op == 'N' ? rlog_add_node(log, id, addr)
           : op == 'X' ? rlog_remove_node(log, id)
           : op == 'P' ? rlog_trim(log, id)
                       : rlog_transfer_leadership(log, id);
    char msg[512];
    snprintf(msg, sizeof msg, "%s", rc ? rlog_errmsg(log) : "");
    struct rlog_status st;
    memset(&st, 0, sizeof st);
    if (rc == 0 && op == 'L' && rlog_status(log, &st) != 0)
        memset(&st, 0, sizeof st);
    log_leave(h);
    if (rc != 0) {
        put_error(out, h, rc, 0, msg);
        return;
    }
    if (op == 'N')
        node_log("membership: added node %" PRIu64 " at %s", id, addr);
    else if (op == 'X')
        node_log("membership: removed node %" PRIu64, id);
    else if (op == 'P')
        node_log("retention: records before offset %" PRIu64 " trimmed", id);
    else
        node_log("membership: handed leadership to %" PRIu64 "%s", st.leader_id,
                 st.leader_id ? "" : " (new leader not known yet)");
    put_end(out, 0, 0, op == 'L' ? st.leader_id : id, st.leader_id, st.leader_address, "");
}

/* A read barrier: every record acknowledged before it is below the
 * offset it answers, and committed on this node. */
void handle_barrier(struct hosted *h, struct rd *r, struct buf *out)
{
    if (r->pos != r->len) {
        r->bad = 1;
        put_end(out, RLOG_EPROTO, 0, 0, 0, "", "barrier: trailing bytes");
        return;
    }
    rlog *log = log_enter(h);
    if (log == NULL) {
        put_refused(out, h);
        return;
    }
    uint64_t off = 0;
    int rc = rlog_barrier(log, &off);
    char msg[512];
    snprintf(msg, sizeof msg, "%s", rc ? rlog_errmsg(log) : "");
    log_leave(h);
    if (rc != 0) {
        put_error(out, h, rc, 0, msg);
        return;
    }
    put_end(out, 0, 0, off, 0, "", "");
}

/* rlog_offset_for_time: a time (u64, us since the epoch) in, an offset
 * out; RLOG_ENOTFOUND carries the commit offset too. */
void handle_offset_for_time(struct hosted *h, struct rd *r, struct buf *out)
{
    uint64_t t = get_u64(r);
    if (r->bad || r->pos != r->len) {
        r->bad = 1;
        put_end(out, RLOG_EPROTO, 0, 0, 0, "", "offset-for-time: malformed request");
        return;
    }
    rlog *log = log_enter(h);
    if (log == NULL) {
        put_refused(out, h);
        return;
    }
    uint64_t off = 0;
    int rc = rlog_offset_for_time(log, t, &off);
    char msg[512];
    snprintf(msg, sizeof msg, "%s", rc ? rlog_errmsg(log) : "");
    log_leave(h);
    put_end(out, rc, 0, off, 0, "", msg);
}

/* Every open log's metrics in one exposition (each sample labelled with its
 * log="NAME"); a log being deleted or not open is left out. */
static int many_metrics_text(char **text, size_t *len)
{
    unsigned n;
    struct hosted **all = hosted_hold_all(&n);
    rlog **logs = xmalloc((n ? n : 1) * sizeof *logs);
    struct hosted **entered = xmalloc((n ? n : 1) * sizeof *entered);
    unsigned k = 0;
    for (unsigned i = 0; i < n; i++)
        if ((logs[k] = log_enter(all[i])) != NULL)
            entered[k++] = all[i];
    int rc = rlog_metrics_text_many(logs, k, text, len);
    for (unsigned i = 0; i < k; i++)
        log_leave(entered[i]);
    free(entered);
    free(logs);
    hosted_release_all(all, n);
    return rc;
}

/* The metrics text of log h, or of the node (h NULL), for the 'M' request
 * and (arg NULL) the HTTP endpoint. *refused: log_enter turned it away. */
static int metrics_text(struct hosted *h, char **text, size_t *len, int *refused)
{
    *refused = 0;
    if (h == NULL && g_node.many)
        return is_closing() ? (*refused = 1, RLOG_ECLOSED) : many_metrics_text(text, len);
    rlog *log = log_enter(h);
    if (log == NULL) {
        *refused = 1;
        return RLOG_ECLOSED;
    }
    int rc = rlog_metrics_text(log, text, len);
    log_leave(h);
    return rc;
}

int node_metrics_text(void *arg, char **text, size_t *len)
{
    int refused;
    return metrics_text(arg, text, len, &refused);
}

void handle_metrics(struct hosted *h, struct rd *r, struct buf *out)
{
    char *text = NULL;
    size_t len = 0;
    int refused = 0;
    int rc = r->pos != r->len ? RLOG_EPROTO : metrics_text(h, &text, &len, &refused);
    if (refused) {
        put_refused(out, h);
        return;
    }
    if (rc != 0) {
        r->bad = rc == RLOG_EPROTO;
        put_end(out, rc, 0, 0, 0, "", rc == RLOG_EPROTO ? "metrics: trailing bytes" : "");
        return;
    }
    size_t at = begin_frame(out);
    put_u8(out, 'M');
    put_u32(out, (uint32_t)len);
    buf_put(out, text, len);
    end_frame(out, at);
    rlog_free(text);
    put_end(out, 0, 0, 0, 0, "", "");
}
