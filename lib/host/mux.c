/*
 * mux — the host's shared connections and the logs' channels on them (the
 * format and the rules are in mux.h).
 *
 * Lifetimes. A link (one connection) lives from its connect or accept to
 * its end; its channels end with it. A channel is referenced by its link's
 * list, by its owner (the log's transport) until that closes it or is told
 * of its end, by each write of it not yet on the socket, and by its
 * deadline timer once it has one; the last reference frees it and its
 * rl_conn.
 */
#include "host/mux.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "common/bytes.h"
#include "common/env.h"
#include "liblog.h"
#include "net/conn.h"
#include "net/deadline.h"
#include "net/hello.h"

#define REC_HDR 20u
/* An inbound connection with no bytes for this long is closed (a live one
 * carries its logs' heartbeats every heartbeat_timeout_ms; the peer dials
 * again when it has something to send). Bounds a partial record too. */
#define LINK_IDLE_MS 60000u
/* Keepalives: a connection that carried nothing for BEAT_MS gets one
 * (a CLOSE of key 0, which names no log: a no-op for any peer, this
 * version or the one before); one that brought nothing for STALE_MS
 * tells its channels (their logs, quiet, may be waiting on that host). */
#define BEAT_MS 100u
#define STALE_MS 500u
enum { REC_OPEN = 1, REC_DATA = 2, REC_CLOSE = 3 };

struct link;

struct chan {
    struct rl_mux *m;
    struct link *link; /* NULL once off the link (closed, ended, link gone) */
    uint64_t key;
    struct rl_conn *vc;
    size_t queued;
    unsigned refs;
    bool owner_done;
    bool timer_init;
    struct rl_deadline deadline;
    struct chan *next;  /* in link->chans */
    struct chan *hnext; /* in its slot of link->slots */
};

/* A log's connect waiting for the link's turn (or its connect). */
struct opening {
    struct rl_net *net;
    void (*cb)(void *arg, struct rl_conn *conn, int status);
    void *arg;
    struct opening *next;
};

/* One record (or control record) queued for the socket. */
struct piece {
    struct chan *ch; /* NULL: a control record */
    size_t bytes;
    void (*cb)(void *arg, int status);
    void *arg;
    unsigned char hdr[REC_HDR];
};

struct batch {
    unsigned n;
    struct piece **pieces;
};

struct link {
    struct rl_mux *m;
    struct rl_conn *conn; /* NULL while connecting */
    uint64_t peer;
    char address[256];
    bool outbound, ready;
    struct chan *chans;
    /* Channels by key: every record names one (a list walk per record
     * was 11 % of a host's idle CPU with 300 channels a link). */
    struct chan **slots;
    unsigned nslots, nchans; /* nslots: a power of two, or 0 */
    struct opening *opens;
    /* reading: the record header in hand, or the payload left of one */
    unsigned char hdr[REC_HDR];
    size_t hgot;
    uint32_t left;
    struct chan *cur; /* whose payload it is; NULL: skipped */
    /* writing: buffers and pieces queued since the last flush */
    uv_buf_t *bufs;
    unsigned nbufs, capbufs;
    struct piece **pieces;
    unsigned npieces, cappieces;
    size_t pending; /* bytes of the pieces not yet handed to the connection */
    bool wrote;     /* a record other than a keepalive, since the last beat */
    bool stale;     /* silent past STALE_MS; its channels were told */
    uint64_t heard_ms;
    struct link *next;
};

struct reg {
    struct rl_net *net;
    struct reg *next;
};

struct rl_mux {
    struct rl_mux_config cfg;
    char address[256];
    struct rl_net *net; /* the host's: listener, connects, TLS, hellos */
    struct rl_net_via via;
    struct reg *logs;
    struct link *links;
    uv_prepare_t flush;
    uv_timer_t beat; /* keepalives and silence (beat_cb) */
    uint64_t beat_ms; /* when it last ran */
    bool flushing, closing;
    void (*close_cb)(void *arg);
    void *close_arg;
    uint64_t unknown_opens, protocol_errors;
};

static void mlog(struct rl_mux *m, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void mlog(struct rl_mux *m, int level, const char *fmt, ...)
{
    if (!m->cfg.log)
        return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    m->cfg.log(m->cfg.log_arg, level, line);
}

static struct rl_net *log_of(struct rl_mux *m, uint64_t key)
{
    for (struct reg *r = m->logs; r; r = r->next)
        if (rl_net_key(r->net) == key)
            return r->net;
    return NULL;
}

/* ---- writing -------------------------------------------------------------- */

static void schedule(struct rl_mux *m);

static void encode(unsigned char *h, uint32_t type, uint32_t len, uint64_t key)
{
    rl_put32(h, type);
    rl_put32(h + 4, len);
    rl_put64(h + 8, key);
    rl_put32(h + 16, XXH32(h, 16, 0));
}

static int grow(void **arr, unsigned *cap, unsigned need, size_t size)
{
    if (need <= *cap)
        return 0;
    unsigned c = *cap ? *cap : 16;
    while (c < need)
        c *= 2;
    void *p = realloc(*arr, (size_t)c * size);
    if (!p)
        return UV_ENOMEM;
    *arr = p;
    *cap = c;
    return 0;
}

/* Queues a record: its header, then bufs. 0 or UV_ENOMEM (nothing queued). */
static int queue(struct link *l, struct chan *ch, uint32_t type, const uv_buf_t *bufs, unsigned n,
                 size_t len, void (*cb)(void *, int), void *arg)
{
    struct piece *p = calloc(1, sizeof *p);
    if (!p || grow((void **)&l->bufs, &l->capbufs, l->nbufs + n + 1, sizeof *l->bufs) != 0 ||
        grow((void **)&l->pieces, &l->cappieces, l->npieces + 1, sizeof *l->pieces) != 0) {
        free(p);
        return UV_ENOMEM;
    }
    encode(p->hdr, type, (uint32_t)len, ch ? ch->key : 0);
    p->ch = ch;
    p->bytes = REC_HDR + len;
    p->cb = cb;
    p->arg = arg;
    l->bufs[l->nbufs++] = uv_buf_init((char *)p->hdr, REC_HDR);
    for (unsigned i = 0; i < n; i++)
        l->bufs[l->nbufs++] = bufs[i];
    l->pieces[l->npieces++] = p;
    l->pending += p->bytes;
    l->wrote = true;
    if (ch) {
        ch->refs++;
        ch->queued += p->bytes;
    }
    schedule(l->m);
    return 0;
}

/* A control record (OPEN, CLOSE) for key. Not queued past the
 * connection's bound (a peer that sends OPENs and reads nothing): a CLOSE
 * is advice, and an OPEN's channel then fails at its first write. */
static void queue_control(struct link *l, uint32_t type, uint64_t key)
{
    if (l->conn && rl_conn_queued(l->conn) + l->pending + REC_HDR > RL_MUX_MAX_QUEUED)
        return;
    struct piece *p = calloc(1, sizeof *p);
    if (!p || grow((void **)&l->bufs, &l->capbufs, l->nbufs + 1, sizeof *l->bufs) != 0 ||
        grow((void **)&l->pieces, &l->cappieces, l->npieces + 1, sizeof *l->pieces) != 0) {
        free(p); /* a lost CLOSE: the channel's peer finds out at its next write */
        return;
    }
    encode(p->hdr, type, 0, key);
    p->bytes = REC_HDR;
    l->bufs[l->nbufs++] = uv_buf_init((char *)p->hdr, REC_HDR);
    l->pieces[l->npieces++] = p;
    l->pending += p->bytes;
    schedule(l->m);
}

static void chan_release(struct chan *ch, unsigned refs);

static void piece_done(struct piece *p, int status)
{
    if (p->ch) {
        p->ch->queued -= p->bytes;
        chan_release(p->ch, 1);
    }
    if (p->cb)
        p->cb(p->arg, status);
    free(p);
}

static void batch_done(void *arg, int status)
{
    struct batch *b = arg;
    for (unsigned i = 0; i < b->n; i++)
        piece_done(b->pieces[i], status);
    free(b->pieces);
    free(b);
}

/* Fails what a link queued and did not send. */
static void drop_queued(struct link *l, int status)
{
    unsigned n = l->npieces;
    struct piece **pieces = l->pieces;
    l->pieces = NULL;
    l->npieces = l->cappieces = l->nbufs = 0;
    l->pending = 0;
    for (unsigned i = 0; i < n; i++)
        piece_done(pieces[i], status);
    free(pieces);
}

static void link_flush(struct link *l)
{
    if (!l->ready || l->npieces == 0)
        return;
    struct batch *b = malloc(sizeof *b);
    if (!b) {
        drop_queued(l, UV_ENOMEM);
        return;
    }
    b->n = l->npieces;
    b->pieces = l->pieces;
    unsigned nbufs = l->nbufs;
    l->pieces = NULL;
    l->npieces = l->cappieces = l->nbufs = 0;
    l->pending = 0;
    /* libuv copies the array of buffers (not the bytes): it stays ours. */
    int rv = rl_conn_write(l->conn, l->bufs, nbufs, batch_done, b);
    if (rv != 0)
        batch_done(b, rv);
}

/* ---- channels --------------------------------------------------------------- */

static void chan_free(struct chan *ch)
{
    rl_conn_free_virtual(ch->vc);
    free(ch);
}

/* Drops refs references (the caller's count of what it let go). */
static void chan_release(struct chan *ch, unsigned refs)
{
    ch->refs -= refs;
    if (ch->refs == 0)
        chan_free(ch);
}

static void timer_closed(uv_handle_t *h)
{
    chan_release(h->data, 1);
}

static struct chan *find_chan(struct link *l, uint64_t key)
{
    if (l->nslots == 0)
        return NULL;
    for (struct chan *ch = l->slots[key & (l->nslots - 1)]; ch; ch = ch->hnext)
        if (ch->key == key)
            return ch;
    return NULL;
}

/* Files ch under its key; false: no memory for the first table. A table
 * that cannot grow keeps its size (longer chains, same answers). */
static bool slot_add(struct link *l, struct chan *ch)
{
    if (l->nchans >= l->nslots) {
        unsigned n = l->nslots ? l->nslots * 2 : 16;
        struct chan **t = calloc(n, sizeof *t);
        if (t) {
            for (unsigned i = 0; i < l->nslots; i++)
                for (struct chan *c = l->slots[i], *nx; c; c = nx) {
                    nx = c->hnext;
                    c->hnext = t[c->key & (n - 1)];
                    t[c->key & (n - 1)] = c;
                }
            free(l->slots);
            l->slots = t;
            l->nslots = n;
        } else if (l->nslots == 0) {
            return false;
        }
    }
    struct chan **head = &l->slots[ch->key & (l->nslots - 1)];
    ch->hnext = *head;
    *head = ch;
    l->nchans++;
    return true;
}

static void slot_remove(struct link *l, struct chan *ch)
{
    for (struct chan **pp = &l->slots[ch->key & (l->nslots - 1)]; *pp; pp = &(*pp)->hnext)
        if (*pp == ch) {
            *pp = ch->hnext;
            l->nchans--;
            return;
        }
}

/* Takes ch off its link (its key free for a new channel): 1, the link's
 * reference for the caller to release, or 0 if it was off already. */
static unsigned unlink_chan(struct chan *ch)
{
    struct link *l = ch->link;
    if (!l)
        return 0;
    for (struct chan **pp = &l->chans; *pp; pp = &(*pp)->next)
        if (*pp == ch) {
            *pp = ch->next;
            break;
        }
    slot_remove(l, ch);
    ch->link = NULL;
    if (l->cur == ch)
        l->cur = NULL;
    if (ch->timer_init && !uv_is_closing((uv_handle_t *)&ch->deadline.timer)) {
        rl_deadline_stop(&ch->deadline);
        uv_close((uv_handle_t *)&ch->deadline.timer, timer_closed);
    }
    return 1;
}

/* The channel ends under its owner (the peer closed it, its link went, its
 * deadline passed): told once; the owner's reference goes with it. */
static void chan_end(struct chan *ch, int why, const char *msg)
{
    unsigned drop = unlink_chan(ch);
    if (!ch->owner_done) {
        ch->owner_done = true;
        drop++;
        rl_conn_virtual_end(ch->vc, why, msg); /* ch holds until the release */
    }
    chan_release(ch, drop);
}

static int ch_write(void *impl, const uv_buf_t *bufs, unsigned n, void (*cb)(void *, int),
                    void *arg)
{
    struct chan *ch = impl;
    if (!ch->link || !ch->link->ready)
        return UV_ECANCELED;
    size_t len = 0;
    for (unsigned i = 0; i < n; i++)
        len += bufs[i].len;
    if (len > RL_MUX_MAX_RECORD)
        return UV_EINVAL;
    /* Each log bounds its own queue; this bounds them all on one connection
     * (a peer host that stops reading). */
    if (rl_conn_queued(ch->link->conn) + ch->link->pending + len > RL_MUX_MAX_QUEUED)
        return UV_ENOBUFS;
    return queue(ch->link, ch, REC_DATA, bufs, n, len, cb, arg);
}

static size_t ch_queued(void *impl)
{
    return ((struct chan *)impl)->queued;
}

static void ch_deadline_cb(uv_timer_t *t)
{
    struct chan *ch = t->data;
    if (ch->link)
        queue_control(ch->link, REC_CLOSE, ch->key);
    chan_end(ch, RL_CONN_TIMEOUT, "timed out");
}

static void ch_deadline(void *impl, uint64_t ms)
{
    struct chan *ch = impl;
    if (!ch->link)
        return;
    if (!ch->timer_init) {
        if (ms == 0)
            return;
        rl_deadline_init(ch->m->cfg.loop, &ch->deadline, ch_deadline_cb, ch);
        ch->timer_init = true;
        ch->refs++; /* the timer's, until its close */
    }
    rl_deadline_set(&ch->deadline, ms);
}

/* The owner closed it: the peer is told, the key is free. */
static void ch_close(void *impl)
{
    struct chan *ch = impl;
    if (ch->link)
        queue_control(ch->link, REC_CLOSE, ch->key);
    unsigned drop = unlink_chan(ch) + (ch->owner_done ? 0 : 1);
    ch->owner_done = true;
    chan_release(ch, drop);
}

static int ch_peer_cert_id(void *impl, uint64_t *id)
{
    struct chan *ch = impl;
    return ch->link ? rl_conn_peer_cert_id(ch->link->conn, id) : -1;
}

static struct rl_conn_vops plain_ops = {.write = ch_write, .queued = ch_queued,
                                        .deadline = ch_deadline, .close = ch_close,
                                        .peer_cert_id = ch_peer_cert_id, .tls = false};
static struct rl_conn_vops tls_ops = {.write = ch_write, .queued = ch_queued,
                                      .deadline = ch_deadline, .close = ch_close,
                                      .peer_cert_id = ch_peer_cert_id, .tls = true};

/* A channel for key on l, owned by its log from here on; NULL: no memory. */
static struct chan *new_chan(struct link *l, uint64_t key)
{
    struct chan *ch = calloc(1, sizeof *ch);
    if (!ch)
        return NULL;
    const struct rl_conn_vops *ops = rl_conn_is_tls(l->conn) ? &tls_ops : &plain_ops;
    if (rl_conn_new_virtual(ops, ch, &ch->vc) != 0) {
        free(ch);
        return NULL;
    }
    ch->m = l->m;
    ch->link = l;
    ch->key = key;
    ch->refs = 2; /* the link's and the owner's */
    if (!slot_add(l, ch)) {
        rl_conn_free_virtual(ch->vc);
        free(ch);
        return NULL;
    }
    ch->next = l->chans;
    l->chans = ch;
    return ch;
}

/* ---- links ---------------------------------------------------------------- */

static void link_free(struct link *l)
{
    struct rl_mux *m = l->m;
    for (struct link **pp = &m->links; *pp; pp = &(*pp)->next)
        if (*pp == l) {
            *pp = l->next;
            break;
        }
    free(l->bufs);
    free(l->slots);
    free(l);
}

/* A link is gone: its channels end, its queue fails, waiting opens fail. */
static void link_gone(struct link *l, int status, const char *msg)
{
    l->ready = false;
    drop_queued(l, UV_ECANCELED);
    while (l->chans)
        chan_end(l->chans, RL_CONN_EOF, msg);
    while (l->opens) {
        struct opening *o = l->opens;
        l->opens = o->next;
        o->cb(o->arg, NULL, status);
        free(o);
    }
    if (!l->outbound && l->conn)
        rl_net_forget(l->m->net, l->conn);
    link_free(l);
}

static void protocol_error(struct link *l, const char *why)
{
    struct rl_mux *m = l->m;
    m->protocol_errors++;
    mlog(m, 2, "host connection %s node %" PRIu64 ": %s; closed", l->outbound ? "to" : "from",
         l->peer, why);
    rl_conn_close(l->conn);
    link_gone(l, UV_EPROTO, why);
}

/* An OPEN on an inbound link: the log's if the peer is its member. */
static void take_open(struct link *l, uint64_t key)
{
    struct rl_mux *m = l->m;
    struct rl_net *net = log_of(m, key);
    if (!net) {
        m->unknown_opens++;
        mlog(m, 1, "node %" PRIu64 " opened a channel for a log not on this host (key %016" PRIx64
             "); refused", l->peer, key);
        queue_control(l, REC_CLOSE, key);
        return;
    }
    if (!rl_net_member(net, l->peer)) {
        rl_net_refuse(net, l->peer, "not a member of this log");
        queue_control(l, REC_CLOSE, key);
        return;
    }
    struct chan *ch = new_chan(l, key);
    if (!ch) {
        queue_control(l, REC_CLOSE, key);
        return;
    }
    rl_net_hand_on(net, l->peer, ch->vc);
}

/* Reads records; false if the link is gone. */
static bool take_header(struct link *l)
{
    const unsigned char *h = l->hdr;
    uint32_t type = rl_get32(h), len = rl_get32(h + 4);
    uint64_t key = rl_get64(h + 8);
    if (rl_get32(h + 16) != XXH32(h, 16, 0)) {
        protocol_error(l, "a record header fails its check");
        return false;
    }
    if (type == REC_DATA) {
        if (len > RL_MUX_MAX_RECORD) {
            protocol_error(l, "a record over the size cap");
            return false;
        }
        l->cur = find_chan(l, key); /* NULL: closed here meanwhile, skipped */
        l->left = len;
        return true;
    }
    if (len != 0 || (type != REC_OPEN && type != REC_CLOSE)) {
        protocol_error(l, "a record of unknown type or length");
        return false;
    }
    struct chan *ch = find_chan(l, key);
    if (type == REC_CLOSE) {
        if (ch)
            chan_end(ch, RL_CONN_EOF, "closed by the peer");
        return true;
    }
    if (l->outbound || ch) {
        protocol_error(l, l->outbound ? "an OPEN from the side that was connected to"
                                      : "an OPEN of a channel already open");
        return false;
    }
    take_open(l, key);
    return true;
}

static size_t link_data(void *arg, const unsigned char *p, size_t n)
{
    struct link *l = arg;
    size_t total = n;
    l->heard_ms = uv_now(l->m->cfg.loop);
    l->stale = false;
    if (!l->outbound) /* a connection that carries nothing for this long goes */
        rl_conn_deadline(l->conn, LINK_IDLE_MS);
    while (n > 0) {
        if (l->left > 0) {
            size_t k = n < l->left ? n : l->left;
            struct chan *ch = l->cur;
            if (ch) {
                ch->refs++;
                rl_conn_virtual_data(ch->vc, p, k);
                if (!ch->link) /* closed from inside: the rest is skipped */
                    l->cur = NULL;
                chan_release(ch, 1);
            }
            l->left -= (uint32_t)k;
            p += k;
            n -= k;
            continue;
        }
        size_t k = REC_HDR - l->hgot < n ? REC_HDR - l->hgot : n;
        memcpy(l->hdr + l->hgot, p, k);
        l->hgot += k;
        p += k;
        n -= k;
        if (l->hgot < REC_HDR)
            break;
        l->hgot = 0;
        if (!take_header(l))
            break;
    }
    return total;
}

static void link_end(void *arg, int why, const char *msg)
{
    struct link *l = arg;
    (void)why;
    mlog(l->m, 0, "host connection %s node %" PRIu64 " ended: %s", l->outbound ? "to" : "from",
         l->peer, msg);
    link_gone(l, UV_ECONNRESET, msg);
}

static void link_connected(void *arg, struct rl_conn *conn, int status)
{
    struct link *l = arg;
    if (status != 0) {
        link_gone(l, status, uv_strerror(status));
        return;
    }
    l->conn = conn;
    l->ready = true;
    struct rl_conn_cbs cbs = {.data = link_data, .end = link_end, .arg = l};
    rl_conn_set_cbs(conn, &cbs);
    schedule(l->m); /* the opens waiting */
}

/* Opens waiting on a ready link become channels: the log's connect cb. */
static void link_opens(struct link *l)
{
    while (l->ready && l->opens) {
        struct opening *o = l->opens;
        l->opens = o->next;
        uint64_t key = rl_net_key(o->net);
        struct chan *ch = find_chan(l, key) ? NULL : new_chan(l, key);
        if (ch)
            queue_control(l, REC_OPEN, key);
        o->cb(o->arg, ch ? ch->vc : NULL, ch ? 0 : UV_EBUSY);
        free(o);
    }
}

/* ---- the loop's turn ------------------------------------------------------ */

static void flush_cb(uv_prepare_t *p)
{
    struct rl_mux *m = p->data;
    uv_prepare_stop(p);
    m->flushing = false;
    for (struct link *l = m->links; l; l = l->next)
        link_opens(l);
    for (struct link *l = m->links; l; l = l->next)
        link_flush(l);
}

/* Every BEAT_MS: a keepalive on each outbound connection that carried
 * nothing since the last beat, and the channels of an inbound one silent
 * for STALE_MS are told (once per silence). */
static void beat_cb(uv_timer_t *t)
{
    struct rl_mux *m = t->data;
    uint64_t now = uv_now(m->cfg.loop);
    /* This loop stalled (a long callback, a slow write): timers run before
     * the reads that were waiting, so every peer would look silent. The
     * silence is measured from now on instead. */
    bool late = m->beat_ms && now - m->beat_ms > 2 * BEAT_MS;
    m->beat_ms = now;
    for (struct link *l = m->links; l; l = l->next) {
        if (late)
            l->heard_ms = now;
        if (!l->ready)
            continue;
        if (l->outbound) {
            if (!l->wrote)
                queue_control(l, REC_CLOSE, 0);
            l->wrote = false;
            continue;
        }
        if (l->stale || now - l->heard_ms < STALE_MS)
            continue;
        l->stale = true;
        mlog(m, 1, "host connection from node %" PRIu64 ": nothing for %" PRIu64 " ms; its logs "
             "here that were quiet run their clocks again", l->peer, now - l->heard_ms);
        for (struct chan *ch = l->chans; ch; ch = ch->next)
            rl_conn_virtual_stale(ch->vc); /* closes nothing (conn.h) */
    }
}

static void schedule(struct rl_mux *m)
{
    if (m->flushing || m->closing)
        return;
    m->flushing = true;
    uv_prepare_start(&m->flush, flush_cb);
}

/* ---- the via table: what a log's transport calls ----------------------------- */

static int via_listen(void *mux, struct rl_net *net, char *err, size_t errlen)
{
    struct rl_mux *m = mux;
    if (rl_net_key(net) == 0) { /* key 0 is the keepalive's (BEAT_MS) */
        snprintf(err, errlen, "the cluster name hashes to 0: choose another");
        return UV_EINVAL;
    }
    if (log_of(m, rl_net_key(net))) {
        snprintf(err, errlen, "another log with this cluster name is open on this host");
        return UV_EADDRINUSE;
    }
    struct reg *r = calloc(1, sizeof *r);
    if (!r) {
        snprintf(err, errlen, "out of memory");
        return UV_ENOMEM;
    }
    r->net = net;
    r->next = m->logs;
    m->logs = r;
    return 0;
}

static void via_unlisten(void *mux, struct rl_net *net)
{
    struct rl_mux *m = mux;
    for (struct reg **pp = &m->logs; *pp; pp = &(*pp)->next)
        if ((*pp)->net == net) {
            struct reg *r = *pp;
            *pp = r->next;
            free(r);
            break;
        }
    for (struct link *l = m->links; l; l = l->next)
        for (struct opening **pp = &l->opens; *pp;) {
            struct opening *o = *pp;
            if (o->net != net) {
                pp = &o->next;
                continue;
            }
            *pp = o->next;
            o->cb(o->arg, NULL, UV_ECANCELED);
            free(o);
        }
}

static struct link *outbound_to(struct rl_mux *m, uint64_t id, const char *address)
{
    for (struct link *l = m->links; l; l = l->next)
        if (l->outbound && l->peer == id && strcmp(l->address, address) == 0)
            return l;
    return NULL;
}

static int via_connect(void *mux, struct rl_net *net, uint64_t id, const char *address,
                       void (*cb)(void *, struct rl_conn *, int), void *arg)
{
    struct rl_mux *m = mux;
    if (m->closing)
        return UV_ECANCELED;
    struct opening *o = calloc(1, sizeof *o);
    if (!o)
        return UV_ENOMEM;
    *o = (struct opening){.net = net, .cb = cb, .arg = arg};
    struct link *l = outbound_to(m, id, address);
    if (!l) {
        l = calloc(1, sizeof *l);
        if (!l) {
            free(o);
            return UV_ENOMEM;
        }
        *l = (struct link){.m = m, .peer = id, .outbound = true};
        snprintf(l->address, sizeof l->address, "%s", address);
        l->next = m->links;
        m->links = l;
        int rv = rl_net_connect(m->net, id, address, link_connected, l);
        if (rv != 0) {
            link_free(l);
            free(o);
            return rv;
        }
    }
    o->next = l->opens;
    l->opens = o;
    if (l->ready)
        schedule(m);
    return 0;
}

static void via_stats(void *mux, struct rl_net_stats *st)
{
    rl_net_stats(((struct rl_mux *)mux)->net, st);
}

/* ---- the host's own transport ----------------------------------------------- */

static bool host_is_member(void *arg, uint64_t id)
{
    struct rl_mux *m = arg;
    for (struct reg *r = m->logs; r; r = r->next)
        if (rl_net_member(r->net, id))
            return true;
    return false;
}

static void host_accept(void *arg, uint64_t id, struct rl_conn *conn)
{
    struct rl_mux *m = arg;
    struct link *l = calloc(1, sizeof *l);
    if (!l) {
        rl_conn_close(conn);
        rl_net_forget(m->net, conn);
        return;
    }
    *l = (struct link){.m = m, .conn = conn, .peer = id, .ready = true,
                       .heard_ms = uv_now(m->cfg.loop)};
    l->next = m->links;
    m->links = l;
    struct rl_conn_cbs cbs = {.data = link_data, .end = link_end, .arg = l};
    rl_conn_set_cbs(conn, &cbs);
    rl_conn_deadline(conn, LINK_IDLE_MS);
}

static void host_log(void *arg, int level, const char *line)
{
    struct rl_mux *m = arg;
    if (m->cfg.log)
        m->cfg.log(m->cfg.log_arg, level, line);
}

int rl_mux_start(const struct rl_mux_config *cfg, struct rl_mux **out, char *err, size_t errlen)
{
    *out = NULL;
    struct rl_mux *m = calloc(1, sizeof *m);
    if (!m) {
        snprintf(err, errlen, "out of memory");
        return RLOG_ENOMEM;
    }
    m->cfg = *cfg;
    snprintf(m->address, sizeof m->address, "%s", cfg->address);
    m->cfg.address = m->address;
    m->via = (struct rl_net_via){.mux = m, .tls = cfg->tls != NULL, .listen = via_listen,
                                 .unlisten = via_unlisten, .connect = via_connect,
                                 .stats = via_stats};
    if (rl_random(&m->via.tick_phase, sizeof m->via.tick_phase) != 0)
        m->via.tick_phase = (unsigned)uv_hrtime();
    m->via.tick_phase %= 1000000u; /* any offset: taken modulo the tick period */
    struct rl_net_config nc = {
        .loop = cfg->loop, .self = cfg->self, .address = m->address,
        .cluster_hash = cfg->cluster_hash, .tls = cfg->tls, .max_inbound = cfg->max_inbound,
        .max_per_address = cfg->max_per_address, .handshake_timeout_ms = cfg->handshake_timeout_ms,
        .is_member = host_is_member, .accept = host_accept, .log = host_log, .arg = m,
        .hello_flags = RL_HELLO_HOST};
    if (rl_net_new(&nc, &m->net) != 0) {
        snprintf(err, errlen, "out of memory");
        free(m);
        return RLOG_ENOMEM;
    }
    uv_prepare_init(cfg->loop, &m->flush);
    m->flush.data = m;
    uv_timer_init(cfg->loop, &m->beat);
    m->beat.data = m;
    uv_timer_start(&m->beat, beat_cb, BEAT_MS, BEAT_MS);
    char why[200] = "";
    int rv = rl_net_listen(m->net, why, sizeof why);
    if (rv != 0) {
        snprintf(err, errlen, "listen on %s: %s", m->address, why);
        rl_mux_close(m, NULL, NULL);
        return RLOG_EIO;
    }
    *out = m;
    return 0;
}

const struct rl_net_via *rl_mux_via(struct rl_mux *m)
{
    return &m->via;
}

bool rl_mux_flush_due(const struct rl_mux *m)
{
    return m->flushing;
}

static void flush_closed(uv_handle_t *h)
{
    struct rl_mux *m = h->data;
    void (*cb)(void *) = m->close_cb;
    void *arg = m->close_arg;
    free(m);
    if (cb)
        cb(arg);
}

static void beat_closed(uv_handle_t *h)
{
    struct rl_mux *m = h->data;
    uv_close((uv_handle_t *)&m->flush, flush_closed);
}

static void net_closed(void *arg)
{
    struct rl_mux *m = arg;
    uv_close((uv_handle_t *)&m->beat, beat_closed);
}

void rl_mux_close(struct rl_mux *m, void (*cb)(void *arg), void *arg)
{
    m->closing = true;
    m->close_cb = cb;
    m->close_arg = arg;
    uv_prepare_stop(&m->flush);
    uv_timer_stop(&m->beat);
    /* Links still connecting go when rl_net_close cancels their connects
     * (link_connected): freeing them here would leave it a dangling arg. */
    for (struct link *l = m->links, *next; l; l = next) {
        next = l->next;
        if (l->conn) {
            rl_conn_close(l->conn);
            link_gone(l, UV_ECANCELED, "the host is closing");
        }
    }
    rl_net_close(m->net, net_closed, m);
}
