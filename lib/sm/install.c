/*
 * install — a state machine's snapshot fetched from a peer (liblog 0.4.1).
 *
 * A node whose state machine needs records before its log's first offset
 * (wiped, added after a trim, down past one) stops applying and says so
 * (run.c). Its loop then pulls a peer's newest snapshot file over the
 * authenticated transport, one piece (RL_WIRE_SNAP_PIECE_MAX bytes) at a
 * time: a SNAP_REQUEST names the file (after the first answer, by its
 * next_offset) and the byte position, a SNAP_DATA carries the piece. Each
 * piece is written to sm/install.part on the threadpool before the next is
 * asked for, so a fetch holds one piece in memory whatever the file's
 * size. Every frame is checksummed on the wire; the finished file is
 * fdatasync'd and verified whole (its chunk checksums, trailer, cluster
 * and next_offset) before rl_sm_install moves it into place and apply
 * restores it and goes on after it.
 *
 * Resumable: a piece that goes unanswered is asked for again from the same
 * position; a peer that fails (no snapshot recent enough, the file pruned
 * meanwhile, a bad piece, a file that does not verify) is left for the
 * next member, starting over. A restart starts over too (install.part is
 * truncated at the next fetch). The peers asked first: the leader (its
 * retention never trims past its own newest snapshot), then the others in
 * turn.
 *
 * Serving: one file piece read at a time per node (on the threadpool;
 * a request while one is being read is answered RLOG_EBUSY and asked
 * again), only to a member (raftio/recv.c checks the sender): the newest
 * snapshot here, or any kept one a fetch names (the one it started on).
 * A file pruned meanwhile ends that fetch (it starts over elsewhere).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include "common/env.h"
#include "fs/fs.h"
#include "node/node.h"
#include "raftio/io.h"
#include "sm/sm.h"
#include "wire/codec.h"

#define POLL_MS 100
#define ANSWER_MS 5000   /* a piece unanswered this long is asked for again */
#define RETRY_MS 1000    /* after every member failed once */
#define NOTICE_MS 10000
#define PART_NAME "install.part"

enum { F_IDLE, F_ASKING, F_WRITING, F_FINISHING };

uint32_t rl_sm_install_piece = RL_WIRE_SNAP_PIECE_MAX;


/* Work on the loop's pool is the node's until its after-callback has run
 * (rl_node_hold): a log on a shared loop must not end before it. */
static int queue_held(struct rlog *log, uv_work_t *w, uv_work_cb work, uv_after_work_cb after)
{
    rl_node_hold(log);
    int rv = rl_queue_work(log->loop, w, work, after);
    if (rv != 0)
        rl_node_release(log);
    return rv;
}

static void serve_done_here(uv_work_t *w, int status);
static void finished_here(uv_work_t *w, int status);
static void written_here(uv_work_t *w, int status);

static void serve_done(uv_work_t *w, int status)
{
    struct rlog *log = ((struct rl_sm_serve *)w->data)->sm->log;
    serve_done_here(w, status);
    rl_node_release(log);
}

static void finished(uv_work_t *w, int status)
{
    struct rlog *log = ((struct rl_sm *)w->data)->log;
    finished_here(w, status);
    rl_node_release(log);
}

static void written(uv_work_t *w, int status)
{
    struct rlog *log = ((struct rl_sm *)w->data)->log;
    written_here(w, status);
    rl_node_release(log);
}

static uint64_t now_ms(struct rlog *log)
{
    return uv_now(log->loop);
}

static bool peer_address(struct rlog *log, uint64_t id, char *buf, size_t len)
{
    const struct raft_configuration *c = &log->raft.configuration;
    for (unsigned i = 0; i < c->n; i++)
        if (c->servers[i].id == id) {
            snprintf(buf, len, "%s", c->servers[i].address);
            return true;
        }
    return false;
}

static int send_to(struct rlog *log, uint64_t to, const struct rl_wire_fwd *m)
{
    char addr[256];
    if (!peer_address(log, to, addr, sizeof addr))
        return RLOG_EINVAL;
    return rl_io_send_fwd(&log->io, to, addr, m, NULL, NULL);
}

static void part_path(struct rl_sm *sm, char *buf, size_t len)
{
    snprintf(buf, len, "%s/" PART_NAME, sm->dir);
}

/* ---- installing a file ------------------------------------------------------ */

int rl_sm_install(struct rlog *log, const char *path, uint64_t expect_next, char *err,
                  size_t errlen)
{
    struct rl_sm *sm = log->sm;
    if (!sm) {
        snprintf(err, errlen, "no state machine");
        return RLOG_EINVAL;
    }
    struct rl_smf_id want = rl_sm_want(sm);
    uint64_t next;
    int rv = rl_smf_adopt(sm->dir, path, &want, expect_next, &next, err, errlen);
    if (rv != 0)
        return rv;
    rl_log(log, 1, "state machine: installed the snapshot of records before %" PRIu64, next);
    rl_sm_installed(sm);
    return 0;
}

/* ---- serving -------------------------------------------------------------- */

static void serve_work(uv_work_t *w)
{
    struct rl_sm_serve *s = w->data;
    struct rl_sm *sm = s->sm;
    char path[4096];
    s->status = 0;
    s->len = 0;
    if (s->next == 0 || s->next < s->need) {
        s->status = RLOG_ENOTFOUND;
        snprintf(s->msg, sizeof s->msg, "no snapshot here covers the records before %" PRIu64
                 " (newest: %" PRIu64 ")", s->need, s->next);
        return;
    }
    if (!rl_smf_path(path, sizeof path, sm->dir, s->next, false)) {
        s->status = RLOG_EINVAL;
        snprintf(s->msg, sizeof s->msg, "snapshot path too long");
        return;
    }
    int fd, rv = rl_fs_open(path, O_RDONLY, 0, &fd);
    if (rv != 0) {
        s->status = rv == -ENOENT ? RLOG_ENOTFOUND : rl_errno_to_rlog(rv);
        snprintf(s->msg, sizeof s->msg, "snapshot of the records before %" PRIu64 ": %s",
                 s->next, rv == -ENOENT ? "no longer here" : strerror(-rv));
        return;
    }
    uint64_t size = 0;
    rv = rl_fs_file_size(fd, &size);
    s->size = size;
    if (rv == 0 && s->pos > size) {
        s->status = RLOG_EINVAL;
        snprintf(s->msg, sizeof s->msg, "byte %" PRIu64 " is past the file's end (%" PRIu64 ")",
                 s->pos, size);
    } else if (rv == 0) {
        uint64_t left = size - s->pos;
        size_t len = left < s->budget ? (size_t)left : s->budget, got = 0;
        s->data = malloc(len ? len : 1);
        if (!s->data)
            s->status = RLOG_ENOMEM;
        else if (len && ((rv = rl_fs_pread(fd, s->data, len, s->pos, &got)) != 0 || got != len))
            s->status = rv ? rl_errno_to_rlog(rv) : RLOG_EIO;
        else
            s->len = len;
        if (s->status)
            snprintf(s->msg, sizeof s->msg, "reading the snapshot failed");
    } else {
        s->status = rl_errno_to_rlog(rv);
        snprintf(s->msg, sizeof s->msg, "%s", strerror(-rv));
    }
    rl_fs_close(fd);
}

static void answer(struct rlog *log, uint64_t to, uint64_t request, int status, uint64_t next,
                   uint64_t size, uint64_t pos, void *data, size_t len)
{
    struct rl_wire_fwd m = {.type = RL_WIRE_SNAP_DATA, .request = request, .status = status,
                            .snap_next = next, .snap_size = size, .snap_pos = pos,
                            .data = data, .bytes = status ? 0 : len};
    send_to(log, to, &m);
}

static void serve_done_here(uv_work_t *w, int status)
{
    (void)status;
    struct rl_sm_serve *s = w->data;
    struct rlog *log = s->sm->log;
    if (!log->raft_closing) {
        if (s->status)
            rl_log(log, 1, "state machine: cannot serve %" PRIu64 " its snapshot: %s", s->peer,
                   s->msg);
        answer(log, s->peer, s->request, s->status, s->next, s->size, s->pos, s->data, s->len);
    }
    free(s->data);
    s->data = NULL;
    s->busy = false;
}

static void serve(struct rlog *log, uint64_t from, const struct rl_wire_fwd *m)
{
    struct rl_sm *sm = log->sm;
    if (!sm) {
        answer(log, from, m->request, RLOG_ENOTFOUND, 0, 0, 0, NULL, 0);
        return;
    }
    struct rl_sm_serve *s = &sm->serving;
    if (s->busy) {
        answer(log, from, m->request, RLOG_EBUSY, 0, 0, 0, NULL, 0);
        return;
    }
    uint64_t next = m->snap_next;
    if (next == 0) {
        pthread_mutex_lock(&sm->mu);
        next = sm->snap_offset;
        pthread_mutex_unlock(&sm->mu);
    }
    *s = (struct rl_sm_serve){.sm = sm, .busy = true, .peer = from, .request = m->request,
                              .need = m->snap_need, .next = next, .pos = m->snap_pos,
                              .budget = m->snap_budget};
    s->work.data = s;
    if (queue_held(log, &s->work, serve_work, serve_done) != 0) {
        s->busy = false;
        answer(log, from, m->request, RLOG_ENOMEM, 0, 0, 0, NULL, 0);
    }
}

/* ---- fetching ------------------------------------------------------------- */

static void drop_part(struct rl_sm *sm)
{
    struct rl_sm_fetch *f = &sm->fetch;
    if (f->fd >= 0)
        rl_fs_close(f->fd);
    f->fd = -1;
    char path[4200];
    part_path(sm, path, sizeof path);
    rl_fs_unlink(path);
}

/* The next member to ask: the leader first, then the others in turn. */
static uint64_t next_peer(struct rlog *log, struct rl_sm_fetch *f)
{
    raft_id leader = 0;
    const char *addr = NULL;
    raft_leader(&log->raft, &leader, &addr);
    if (f->tried == 0 && leader && leader != log->cfg.id)
        return leader;
    const struct raft_configuration *c = &log->raft.configuration;
    for (unsigned k = 0; k < c->n; k++) {
        const struct raft_server *s = &c->servers[(f->turn + k) % c->n];
        if (s->id != log->cfg.id) {
            f->turn = (f->turn + k + 1) % c->n;
            return s->id;
        }
    }
    return 0;
}

static void ask(struct rlog *log)
{
    struct rl_sm_fetch *f = &log->sm->fetch;
    struct rl_wire_fwd m = {.type = RL_WIRE_SNAP_REQUEST, .request = ++f->request,
                            .snap_need = f->need, .snap_next = f->next, .snap_pos = f->pos,
                            .snap_budget = rl_sm_install_piece};
    f->state = F_ASKING;
    f->asked_ms = now_ms(log);
    send_to(log, f->peer, &m); /* a lost request is asked again at ANSWER_MS */
}

/* Ends the attempt with this peer; the next poll starts over with the
 * next member (after a round of them, a pause). */
static void give_up_peer(struct rlog *log, const char *why)
{
    struct rl_sm *sm = log->sm;
    struct rl_sm_fetch *f = &sm->fetch;
    rl_log(log, 1, "state machine: no snapshot install from %" PRIu64 ": %s", f->peer, why);
    drop_part(sm);
    f->state = F_IDLE;
    f->tried++;
    unsigned others = log->raft.configuration.n > 1 ? log->raft.configuration.n - 1 : 1;
    f->retry_at = now_ms(log) + (f->tried % others ? 0 : RETRY_MS);
    if (f->tried >= others && now_ms(log) >= f->noticed_ms + NOTICE_MS) {
        f->noticed_ms = now_ms(log);
        rl_log(log, 2, "state machine: no member could give a snapshot covering the records "
               "before %" PRIu64 " yet; nothing is applied here until one does, retrying", f->need);
    }
}

static void start(struct rlog *log)
{
    struct rl_sm *sm = log->sm;
    struct rl_sm_fetch *f = &sm->fetch;
    /* What readers (and apply) see first: the store drops whole segments
     * only, so its own first offset can lag the trim point. */
    uint64_t first = rl_store_first_offset(log->store);
    if (log->trim_offset > first)
        first = log->trim_offset;
    pthread_mutex_lock(&sm->mu);
    bool refused = sm->failures > f->failures_then;
    pthread_mutex_unlock(&sm->mu);
    if (f->installed_next && f->installed_next >= first && !refused) {
        f->retry_at = now_ms(log) + POLL_MS; /* not restored yet */
        return;
    }
    if (f->installed_next && f->installed_next >= first) {
        /* The last install covered this, yet apply still needs one: it was
         * not restored (the log said why). Fetching again at once would
         * only repeat that: back off, up to a minute. */
        f->installed_next = 0;
        f->futile = f->futile < 6 ? f->futile + 1 : 6;
        uint64_t wait = (uint64_t)RETRY_MS << f->futile;
        f->retry_at = now_ms(log) + wait;
        rl_log(log, 2, "state machine: the snapshot installed last was not restored; fetching "
               "one again in %" PRIu64 " s", wait / 1000);
        return;
    }
    f->peer = next_peer(log, f);
    if (!f->peer) {
        f->retry_at = now_ms(log) + RETRY_MS;
        return;
    }
    f->need = first;
    f->next = f->size = f->pos = 0;
    f->started_ms = now_ms(log);
    f->resumes = 0;
    rl_log(log, 1, "state machine: asking %" PRIu64 " for a snapshot covering the records before "
           "%" PRIu64 " (the log here starts there)", f->peer, f->need);
    ask(log);
}

static void write_work(uv_work_t *w)
{
    struct rl_sm *sm = w->data;
    struct rl_sm_fetch *f = &sm->fetch;
    char path[4200];
    f->io_rv = 0;
    if (f->fd < 0) {
        part_path(sm, path, sizeof path);
        f->io_rv = rl_fs_open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600, &f->fd);
        if (f->io_rv != 0)
            f->fd = -1;
    }
    if (f->io_rv == 0 && f->piece_len)
        f->io_rv = rl_fs_pwrite(f->fd, f->piece, f->piece_len, f->pos);
}

static void finish_work(uv_work_t *w)
{
    struct rl_sm *sm = w->data;
    struct rl_sm_fetch *f = &sm->fetch;
    char path[4200];
    part_path(sm, path, sizeof path);
    int rv = rl_fs_fdatasync(f->fd);
    rl_fs_close(f->fd);
    f->fd = -1;
    if (rv != 0) {
        snprintf(f->err, sizeof f->err, "syncing " PART_NAME ": %s", strerror(-rv));
        f->io_rv = rl_errno_to_rlog(rv);
        return;
    }
    /* Before the install: its restore may fail before `finished` runs. */
    pthread_mutex_lock(&sm->mu);
    f->failures_then = sm->failures;
    pthread_mutex_unlock(&sm->mu);
    f->io_rv = rl_sm_install(sm->log, path, f->next, f->err, sizeof f->err);
}

static void finished_here(uv_work_t *w, int status)
{
    (void)status;
    struct rl_sm *sm = w->data;
    struct rlog *log = sm->log;
    struct rl_sm_fetch *f = &sm->fetch;
    if (f->io_rv != 0) {
        if (!log->raft_closing) {
            char why[512];
            snprintf(why, sizeof why, "its snapshot of the records before %" PRIu64
                     " did not install: %s (%s)", f->next, f->err, rlog_errname(f->io_rv));
            give_up_peer(log, why);
        } else {
            drop_part(sm);
        }
        return;
    }
    uint64_t ms = now_ms(log) - f->started_ms;
    f->bytes += f->size;
    f->state = F_IDLE;
    f->tried = 0;
    f->installed_next = f->next;
    rl_log(log, 2, "state machine: installed %" PRIu64 "'s snapshot of the records before %" PRIu64
           " (%" PRIu64 " bytes in %" PRIu64 " ms, %" PRIu64 " resumed pieces)", f->peer, f->next,
           f->size, ms, f->resumes);
}

static void written_here(uv_work_t *w, int status)
{
    (void)status;
    struct rl_sm *sm = w->data;
    struct rlog *log = sm->log;
    struct rl_sm_fetch *f = &sm->fetch;
    free(f->piece);
    f->piece = NULL;
    if (log->raft_closing) {
        drop_part(sm);
        f->state = F_IDLE;
        return;
    }
    if (f->io_rv != 0) {
        char why[256];
        snprintf(why, sizeof why, "writing %s failed: %s", PART_NAME, strerror(-f->io_rv));
        give_up_peer(log, why);
        f->retry_at = now_ms(log) + RETRY_MS; /* this disk, not the peer */
        return;
    }
    f->pos += f->piece_len;
    f->timeouts = 0; /* progress: only answers lost in a row count */
    if (f->pos < f->size) {
        ask(log);
        return;
    }
    f->state = F_FINISHING;
    f->work.data = sm;
    if (queue_held(log, &f->work, finish_work, finished) != 0)
        give_up_peer(log, "out of memory");
}

/* Room for the file on the data directory's filesystem, with some to spare:
 * a member cannot make this node fill its disk with a claimed size. */
static bool room_for(struct rl_sm *sm, uint64_t size)
{
    struct statvfs v;
    if (statvfs(sm->dir, &v) != 0)
        return true; /* the write will say */
    uint64_t avail = (uint64_t)v.f_bavail * v.f_frsize;
    return size <= avail / 10 * 9;
}

static void take_piece(struct rlog *log, uint64_t from, struct rl_wire_fwd *m)
{
    struct rl_sm *sm = log->sm;
    struct rl_sm_fetch *f = &sm->fetch;
    if (f->state != F_ASKING || from != f->peer || m->request != f->request)
        return; /* late or not asked for */
    if (m->status) {
        char why[384];
        snprintf(why, sizeof why, "it answered %s", rlog_strerror(m->status));
        if (m->status == RLOG_EBUSY) {
            /* Serving someone else: the same piece, a little later. */
            f->state = F_IDLE;
            f->asked_ms = 0;
            f->retry_at = now_ms(log) + POLL_MS * 2;
            f->resume = true;
            return;
        }
        give_up_peer(log, why);
        return;
    }
    if (f->next == 0) {
        uint64_t min = RL_SMF_HEADER + RL_SMF_TRAILER;
        if (m->snap_next < f->need || m->snap_size < min) {
            give_up_peer(log, "its newest snapshot is older than the log here, or too short");
            return;
        }
        if (!room_for(sm, m->snap_size)) {
            char why[160];
            snprintf(why, sizeof why, "its snapshot (%" PRIu64 " bytes) does not fit on this "
                     "node's disk", m->snap_size);
            give_up_peer(log, why);
            f->retry_at = now_ms(log) + RETRY_MS * 10;
            return;
        }
        f->next = m->snap_next;
        f->size = m->snap_size;
    } else if (m->snap_next != f->next || m->snap_size != f->size) {
        give_up_peer(log, "its snapshot file changed under the fetch");
        return;
    }
    if (m->snap_pos != f->pos || (m->bytes == 0 && f->pos < f->size)) {
        give_up_peer(log, "a piece from the wrong position");
        return;
    }
    f->piece = m->data;
    f->piece_len = m->bytes;
    m->data = NULL;
    f->state = F_WRITING;
    f->work.data = sm;
    if (queue_held(log, &f->work, write_work, written) != 0) {
        free(f->piece);
        f->piece = NULL;
        give_up_peer(log, "out of memory");
    }
}

/* ---- snapshot reports (the leader's retention floor) ----------------------- */

static void note_report(struct rl_sm *sm, uint64_t from, uint64_t next)
{
    struct rl_sm_report *slot = NULL;
    for (unsigned i = 0; i < RL_SM_REPORTS && !slot; i++)
        if (sm->reports[i].id == from || sm->reports[i].id == 0)
            slot = &sm->reports[i];
    if (!slot) { /* more reporters than slots: one that is not a member goes */
        const struct raft_configuration *c = &sm->log->raft.configuration;
        for (unsigned i = 0; i < RL_SM_REPORTS && !slot; i++) {
            bool member = false;
            for (unsigned k = 0; k < c->n; k++)
                member |= c->servers[k].id == sm->reports[i].id;
            if (!member)
                slot = &sm->reports[i];
        }
    }
    if (slot)
        *slot = (struct rl_sm_report){.id = from, .next = next};
}

static void report(struct rlog *log)
{
    struct rl_sm *sm = log->sm;
    raft_id leader = 0;
    const char *addr = NULL;
    raft_leader(&log->raft, &leader, &addr);
    if (!leader || leader == log->cfg.id)
        return;
    pthread_mutex_lock(&sm->mu);
    uint64_t next = sm->snap_offset;
    pthread_mutex_unlock(&sm->mu);
    uint64_t now = now_ms(log);
    if (next == sm->reported_next && leader == sm->reported_to && now < sm->reported_ms + 1000)
        return;
    struct rl_wire_fwd m = {.type = RL_WIRE_SNAP_HAVE, .snap_next = next};
    if (send_to(log, leader, &m) == 0) {
        sm->reported_next = next;
        sm->reported_to = leader;
        sm->reported_ms = now;
    }
}

static int desc(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

uint64_t rl_sm_quorum_snapshot(struct rlog *log)
{
    struct rl_sm *sm = log->sm;
    const struct raft_configuration *c = &log->raft.configuration;
    uint64_t have[64];
    unsigned n = 0;
    for (unsigned i = 0; i < c->n && n < 64; i++) {
        if (c->servers[i].role != RAFT_VOTER)
            continue;
        uint64_t next = 0;
        if (c->servers[i].id == log->cfg.id) {
            pthread_mutex_lock(&sm->mu);
            next = sm->snap_offset;
            pthread_mutex_unlock(&sm->mu);
        } else {
            for (unsigned k = 0; k < RL_SM_REPORTS; k++)
                if (sm->reports[k].id == c->servers[i].id)
                    next = sm->reports[k].next;
        }
        have[n++] = next;
    }
    if (n == 0)
        return 0;
    qsort(have, n, sizeof *have, desc);
    return have[n / 2]; /* the (n/2 + 1)-th largest: a majority hold it */
}

int rl_sm_install_recv(struct rlog *log, uint64_t from, struct rl_wire_fwd *m)
{
    if (m->type == RL_WIRE_SNAP_HAVE) {
        if (log->sm)
            note_report(log->sm, from, m->snap_next);
        return 0;
    }
    if (m->type == RL_WIRE_SNAP_REQUEST)
        serve(log, from, m);
    else if (log->sm)
        take_piece(log, from, m);
    return 0;
}

void rl_sm_install_poll(struct rlog *log)
{
    struct rl_sm *sm = log->sm;
    if (!sm || !log->store || log->raft_closing || log->fatal)
        return;
    struct rl_sm_fetch *f = &sm->fetch;
    uint64_t now = now_ms(log);
    if (now < f->polled_ms + POLL_MS)
        return;
    f->polled_ms = now;
    report(log);
    if (f->state == F_WRITING || f->state == F_FINISHING)
        return;
    pthread_mutex_lock(&sm->mu);
    bool needs = sm->needs_snapshot;
    pthread_mutex_unlock(&sm->mu);
    if (!needs) {
        if (f->state == F_ASKING || f->resume) {
            drop_part(sm);
            f->state = F_IDLE;
            f->resume = false;
        }
        f->tried = 0;
        f->futile = 0;
        f->installed_next = 0;
        return;
    }
    if (f->state == F_ASKING) {
        if (now < f->asked_ms + ANSWER_MS)
            return;
        /* Unanswered: once more from the same position, then the next. */
        if (++f->timeouts > 2) {
            f->timeouts = 0;
            give_up_peer(log, "no answer");
            return;
        }
        f->resumes++;
        ask(log);
        return;
    }
    if (now < f->retry_at)
        return;
    if (f->resume) {
        f->resume = false;
        f->resumes++;
        ask(log);
        return;
    }
    f->timeouts = 0;
    start(log);
}

bool rl_sm_install_idle(struct rlog *log)
{
    struct rl_sm *sm = log->sm;
    if (!sm)
        return true;
    pthread_mutex_lock(&sm->mu);
    bool needs = sm->needs_snapshot;
    pthread_mutex_unlock(&sm->mu);
    return !needs && sm->fetch.state == F_IDLE && !sm->fetch.resume && !sm->serving.busy;
}

void rl_sm_install_free(struct rl_sm *sm)
{
    if (sm->fetch.fd >= 0)
        rl_fs_close(sm->fetch.fd);
    sm->fetch.fd = -1;
    free(sm->fetch.piece);
    sm->fetch.piece = NULL;
    free(sm->serving.data);
    sm->serving.data = NULL;
}
