/* Internal state of the raft_io implementation, shared by its files.
 * Nothing here is visible outside lib/raftio/: the library is built with
 * -fvisibility=hidden, and the shared functions carry the rl_io__ prefix so
 * that they cannot clash with anything else in a static link.
 *
 * The files, bottom first: each calls only functions of the files listed
 * above it, never one below (test/check-layers checks it in make check):
 *
 *   core.c          what every part uses: the log line, the failed stop, a
 *                   batch's record count, a store request waited for
 *                   before the loop runs, what is committed here, the
 *                   terms of recent entries
 *   snapshot.c      the descriptor file (snapshot.h); guard.c the sender
 *                   rules (guard.h): pure, they call no other file
 *   floor.c         a damaged entry cut at open: FLOOR, the votes it stops
 *   send.c          peers, sending (libraft's messages and our own), the
 *                   sends that failed at once (the connections come from
 *                   lib/net)
 *   hold.c          delivery to libraft, held elections, the window guard,
 *                   what follows each event (rl_io__after_event)
 *   append.c        appends, truncation, refused and failed appends
 *   snap_queue.c    snapshot descriptor writes, one at a time
 *   fetch.c         catch-up by segment fetch (and serving it)
 *   load.c          load, bootstrap, term and vote
 *   rewind.c        a conflicting suffix libraft will not give up
 *   snapshot_put.c  libraft's snapshot_put and installs, snapshot_get
 *   recv.c          inbound connections and frames, each to its handler
 *   io.c            the io's lifecycle (init, start, close), the vtable
 *
 * Three calls go up, through pointers set at init: a close held up by
 * fetch.c or snap_queue.c goes on through io->close_step (io.c); the
 * failures append.c and send.c report from the loop go through
 * io->deferred_cb (io.c); a finished catch-up (fetch.c) saves its
 * descriptor through libraft's entry point, rio->snapshot_put
 * (snapshot_put.c). */
#ifndef RL_RAFTIO_INTERNAL_H
#define RL_RAFTIO_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "batch/batch.h"
#include "common/counters.h"
#include "common/env.h"
#include "liblog.h"
#include "net/net.h"
#include "raftio/bounds.h"
#include "raftio/io.h"
#include "raftio/snapshot.h"
#include "wire/codec.h"

struct io;

struct send_req {
    struct io *io;
    struct raft_io_send *req;
    raft_io_send_cb cb;
    void (*done)(void *arg, int status); /* our own messages instead of cb */
    void *done_arg;
    struct rl_wire_out out;
    uv_buf_t *bufs;
    size_t bytes;             /* the frame's length */
    bool waiting;             /* on its peer's wait list (counted there) */
    struct rl_conn *conn;     /* the connection it was written to */
    struct peer *peer;
    struct send_req *next;
};

struct peer {
    struct io *io;
    uint64_t id;
    char address[256];
    struct rl_conn *conn;
    bool connecting;
    struct send_req *wait_head, *wait_tail; /* queued while connecting */
    uint64_t wait_bytes;                    /* their frames' bytes */
    uint64_t failed_at;
    struct rl_traffic *traffic; /* its slot in io->traffic, or NULL */
    /* As its leader: the highest index it said it holds in acked_term, and
     * whether its next AppendEntries must fail unsent (rl_io__note_result). */
    uint64_t acked_term, acked_index;
    bool reprobe;
    struct peer *next;
};

struct in_conn {
    struct io *io;
    struct rl_conn *conn;
    uint64_t id;
    char address[256];
    unsigned char hdr[RL_WIRE_HDR];
    size_t hdr_got;
    struct rl_wire_hdr h;
    unsigned char *body;
    size_t body_got, body_cap;
    bool closing;
    bool warned;            /* a dropped message was logged for this connection */
    struct rl_traffic *traffic; /* its sender's slot in io->traffic, or NULL */
    struct in_conn *next, *prev;
};

struct failed_send {
    struct raft_io_send *req;
    raft_io_send_cb cb;
    int status;
    struct failed_send *next;
};

struct held {
    struct raft_message msg;
    void *body;
    bool owned;
    char address[256];
    struct held *next;
};

struct append_req {
    struct io *io;
    struct raft_io_append *req;
    raft_io_append_cb cb;
    struct rl_store_req sreq;
    struct rl_store_entry *entries;
    int rv;                   /* a failed one's status, reported later */
    struct append_req *below; /* the failed stack */
};

/* A conflicting suffix libraft will not give up (rewind.c). */
struct rewind {
    bool asked;                 /* a request is out */
    uint64_t source, term;      /* the leader asked, and its term */
    uint64_t prev, prev_term;   /* the AppendEntries will follow this entry */
    uint64_t to;                /* the snapshot's index */
    uint64_t end, end_term;     /* the last entry handed to libraft, and its term */
    uint64_t asked_ms;
    unsigned long count;
};

#define RL_IO_RECENT 256

struct io {
    struct raft_io *rio;
    uv_loop_t *loop;
    struct rl_store *store;
    char dir[4096];
    unsigned trailing;
    uint32_t max_body;
    struct rl_io_hooks hooks;
    struct rl_io_net_config netcfg;  /* strings copied below */
    char cluster[64];
    struct rl_net *net;
    struct rl_tls_ctx *tls;
    uint64_t max_send_queue;
    unsigned frame_timeout_ms, idle_timeout_ms;
    unsigned long timed_out_connections; /* partial-frame and idle timeouts */
    unsigned long send_queue_overflows;
    uint64_t id;
    char address[256];
    uv_timer_t timer;
    raft_io_tick_cb tick_cb;
    raft_io_recv_cb recv_cb;
    bool tick_held;
    struct peer *peers;
    struct in_conn *ins;
    struct in_conn *dead_ins;      /* closed, freed by rl_io__free_closed_ins */
    struct held *held_head, *held_tail;
    unsigned appends;
    struct append_req *failed_top; /* failed appends, newest on top */
    /* The index libraft will give its next appended entry: its log's end
     * as it sees it. The store must end at the same place before it takes
     * an append (rl_io__append says why). */
    uint64_t raft_next;
    unsigned long refused_appends;
    unsigned long dropped_messages; /* refused by guard.c or the committed-entry check */
    /* Terms of the entries most recently handed to the store, by index
     * modulo RL_IO_RECENT (index 0: empty slot): the checks on incoming
     * AppendEntries (hold.c) look a recent entry's term up here instead of
     * reading it back from disk on every message. Emptied whenever the
     * store's end moves back (truncate, reset). */
    struct { uint64_t index, term; } recent[RL_IO_RECENT];
    /* Sends that failed at once, reported from the loop instead (see
     * rl_io__send); flushed by send_fail_timer. */
    struct failed_send *failed_head, *failed_tail;
    /* The snapshot install under way (see rl_io__snapshot_put_done). */
    struct raft_io_snapshot_put *install_req;
    struct raft_buffer *install_bufs;
    uv_timer_t send_fail_timer;   /* reports failures rl_io__send/rl_io__append deferred */
    bool timers_ready;
    /* While libraft handles an AppendEntries: the last index it proves
     * this log matches the leader's (see rl_io__deliver). */
    bool in_append_entries;
    uint64_t append_entries_match;
    int fatal;
    bool closing;
    raft_io_close_cb close_cb;
    /* Calls up from lower files, set at init (io.c): the close's next step
     * (fetch.c and snap_queue.c hold a close up until their work ends), and
     * send_fail_timer's callback (append.c and send.c start it to report
     * what failed at once from the loop). */
    void (*close_step)(struct io *io);
    uv_timer_cb deferred_cb;
    void (*ticks_start)(struct io *io); /* quiet.c restarts the ticks */
    uv_timer_cb tick_timer_cb;          /* and slows them (io.c's timer_cb) */
    int close_pending;
    struct rl_snapshot_desc snap;
    bool have_snap;
    unsigned rand_state;
    /* The configuration of the last leader's snapshot libraft took to
     * install (vouched_index: its index), kept after the install fails: a
     * node whose own configuration predates a membership change learns the
     * new members from it (rl_io_vouched_address), or it could drop every
     * message of a leader added while it was away, the only one that can
     * bring it up to date (simulator sm-join seed 950121). */
    struct raft_configuration vouched;
    uint64_t vouched_index;
    uint64_t snap_source_id;       /* sender of the last InstallSnapshot */
    char snap_source_addr[256];
    struct fetch *fetch;           /* catch-up in progress, or NULL (fetch.c) */
    struct rewind rewind;          /* see rewind.c, rl_io__rewind_start */
    struct fetch *reset_fetch;     /* the fetch whose reset descriptor is being written (fetch.c) */
    /* Descriptor writes, one at a time (they share SNAPSHOT.tmp). */
    struct snap_put *snap_head, *snap_tail; /* snapshot_put.c */
    /* Bounds on what peers can make this node hold (hardening): bounds.h. */
    struct rl_io_harden harden;
    struct rl_traffic_table traffic; /* bytes to and from each member (rl_io_peer_stats) */
    /* The end of a log cut at open before a damaged entry (floor.c): no
     * campaign, and no vote for a candidate behind it, until the log is
     * back there. 0: none. */
    uint64_t floor_index, floor_term;
    unsigned long floors_cleared;
    /* Quiescence (quiet.c): libraft's clock stopped since frozen_at (loop
     * time); time_shift, the stopped time taken out of what it sees. */
    bool frozen, frozen_pulses;
    uint64_t frozen_at, time_shift;
    unsigned tick_ms;
    bool fatal_dropped; /* a failed node's connections were dropped (quiet.c) */
};

/* A store request waited for before the loop runs (load, bootstrap). */
struct sync_wait {
    bool done;
    int status;
};

/* quiet.c */
uint64_t rl_io__time(struct io *io);
/* from: the peer whose raft message, connection end or silence it is (0:
 * a reason of this node's own); peer_event: an end or a silence, which
 * the node hears of even when the log is not quiet (an ask under way). */
void rl_io__wake(struct io *io, const char *why, uint64_t from, bool peer_event);

/* core.c */
void rl_io__log(struct io *io, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int rl_io__fail_stop(struct io *io, int code, const char *what);
/* The same with the reason given (a failure outside the store). */
int rl_io__fail_stop_why(struct io *io, int code, const char *what, const char *why);
void rl_io__sync_append_cb(struct rl_store_req *req, int status);
int rl_io__store_wait(struct io *io, int rv, struct sync_wait *w);
uint64_t rl_io__committed_here(struct io *io);
bool rl_io__entry_term(struct io *io, uint64_t index, uint64_t *term);
/* Notes entry index's term in io->recent; forgets every one of them. */
void rl_io__note_term(struct io *io, uint64_t index, uint64_t term);
void rl_io__forget_terms(struct io *io);

/* floor.c */
int rl_io__floor_load(struct io *io, char *err, size_t errlen);
bool rl_io__floor_check(struct io *io);
bool rl_io__vote_below_floor(const struct io *io, const struct raft_message *msg);

/* send.c */
int rl_io__send_msg(struct io *io, const struct raft_message *msg, struct raft_io_send *req,
                    raft_io_send_cb cb, void (*done)(void *, int), void *done_arg);
/* Sends a frame of liblog's own, encoded in *out (taken over, freed in any
 * case); done(done_arg, status) once written, unless this fails: a RAFT_*
 * code then. */
int rl_io__send_own(struct io *io, uint64_t to, const char *address, struct rl_wire_out *out,
                    void (*done)(void *, int), void *done_arg);
int rl_io__send(struct raft_io *rio, struct raft_io_send *req, const struct raft_message *msg,
                raft_io_send_cb cb);
void rl_io__flush_failed_sends(struct io *io);
void rl_io__peer_drop(struct peer *p);
/* An AppendEntries result from member `from`, before libraft sees it. A
 * follower that rejects an index at or below one it acknowledged in the same
 * term lost entries it had (a damaged entry cut at open, raftio/floor.c).
 * libraft 0.15 takes such a rejection for a stale one while it pipelines to
 * that follower (progressMaybeDecrement) and would never send the entries
 * again; a failed send puts it back to probing (sendAppendEntriesCb), so the
 * next AppendEntries to it fails unsent. */
void rl_io__note_result(struct io *io, uint64_t from, const struct raft_append_entries_result *r);

/* hold.c */
void rl_io__after_event(struct io *io);
void rl_io__deliver(struct io *io, struct raft_message *msg, void *body, bool owned);
/* Queues a RequestVote or TimeoutNow until rl_io__release_held delivers it;
 * at io->harden.bounds.held_max the oldest one is dropped. */
void rl_io__hold(struct io *io, struct raft_message *msg, void *body, bool owned,
                 const char *address);
bool rl_io__campaign_held(const struct io *io);
bool rl_io__must_hold(const struct io *io, unsigned short type);
void rl_io__release_held(struct io *io);
bool rl_io__below_window(struct io *io, struct raft_message *msg, void *body, bool owned);
/* Why an AppendEntries must not reach libraft (it contradicts an entry
 * committed here), or NULL. */
const char *rl_io__contradicts_committed(struct io *io, const struct raft_message *msg);

/* append.c */
void rl_io__report_failed(struct io *io);
int rl_io__append(struct raft_io *rio, struct raft_io_append *req,
                  const struct raft_entry entries[], unsigned n, raft_io_append_cb cb);
int rl_io__truncate(struct raft_io *rio, raft_index index);
int rl_io__cut_after(struct io *io, uint64_t keep, const char *why);

/* snap_queue.c */
void rl_io__snapshot_put_done(struct io *io, struct raft_io_snapshot_put *req, int status);
int rl_io__snap_put_queue(struct io *io, struct raft_io_snapshot_put *req,
                          void (*done)(struct io *, int), const struct raft_snapshot *snapshot,
                          uint64_t conf_index, uint64_t visible, uint64_t reset_offset);

/* fetch.c */
int rl_io__fetch_start(struct io *io, struct raft_io_snapshot_put *req,
                       const struct raft_snapshot *snap);
void rl_io__fetch_stop(struct io *io);
bool rl_io__fetch_busy(const struct io *io);
/* Asks peer for entries first..last, at most budget bytes of them. */
int rl_io__ask_fetch(struct io *io, uint64_t peer, const char *address, uint64_t first,
                     uint64_t last, uint64_t budget);
/* A fetch request from peer; a fetch answer from peer (the transport has
 * checked that this node asked it). */
void rl_io__fetch_serve(struct io *io, uint64_t peer, const char *address,
                        const struct rl_wire_fetch_req *req);
void rl_io__fetch_answer(struct io *io, uint64_t peer, const struct rl_wire_fetch_resp *a);
int rl_io__finish_interrupted_reset(struct io *io);

/* load.c */
int rl_io__load(struct raft_io *rio, raft_term *term, raft_id *voted_for,
                struct raft_snapshot **snapshot, raft_index *start_index,
                struct raft_entry *entries[], size_t *n_entries);
int rl_io__bootstrap(struct raft_io *rio, const struct raft_configuration *conf);
int rl_io__recover(struct raft_io *rio, const struct raft_configuration *conf);
int rl_io__set_term(struct raft_io *rio, raft_term term);
int rl_io__set_vote(struct raft_io *rio, raft_id server_id);

/* rewind.c */
bool rl_io__rewind_start(struct io *io, struct raft_message *msg, const char *address);
/* A fetch answer from peer for a rewind becomes, in *ae, the leader's
 * AppendEntries (the entries and their frame body go with it): true. */
bool rl_io__rewind_answer(struct io *io, uint64_t peer, const char *address,
                          const struct rl_wire_fetch_resp *a, struct raft_message *ae);

/* snapshot_put.c */
int rl_io__snapshot_put(struct raft_io *rio, unsigned trailing,
                        struct raft_io_snapshot_put *req,
                        const struct raft_snapshot *snapshot, raft_io_snapshot_put_cb cb);
int rl_io__snapshot_get(struct raft_io *rio, struct raft_io_snapshot_get *req,
                        raft_io_snapshot_get_cb cb);

/* recv.c */
void rl_io__in_close(struct in_conn *c, const char *why);
void rl_io__free_closed_ins(struct io *io);
/* lib/net hands over an authenticated inbound connection from member id. */
void rl_io__accept(void *arg, uint64_t id, struct rl_conn *conn);

#endif
