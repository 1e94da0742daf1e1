/*
 * node — one member of the replicated log: the libuv loop thread that owns
 * the struct raft, the store (through lib/raftio), the commit-visibility
 * fence and the batcher. Public calls (lib/node/api.c, submit.c, iter.c)
 * reach it only as operations queued to the loop (queue.c); nothing here
 * is touched by other threads except the inbox and the published status,
 * under `mu`.
 *
 * The fence (lib/README.md, guard 1): libraft 0.15 may count replicas of an
 * earlier term's entry as committed (Raft's Figure 8). An entry is shown only
 * once some entry of the current term at or after it is committed and
 * durable here, which no later leader can overwrite; a leader appends a
 * barrier when it wins so that point comes promptly.
 */
#ifndef RL_NODE_H
#define RL_NODE_H

#include <pthread.h>
#include <raft.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "batch/batch.h"
#include "host/host.h"
#include "node/cache.h"
#include "node/cursors.h"
#include "node/dedup.h"
#include "node/fence.h"
#include "node/forward.h"
#include "node/metrics.h"
#include "node/timeindex.h"
#include "liblog.h"
#include "store/store.h"

struct rl_net_via;

enum rl_op_kind { RL_OP_APPEND, RL_OP_READ, RL_OP_FETCH, RL_OP_STATUS, RL_OP_CLOSE, RL_OP_MEMBER,
                  RL_OP_TRIM, RL_OP_BARRIER, RL_OP_METRICS,
                  RL_OP_CURSOR, RL_OP_CURSOR_GET, /* named cursors (positions.c) */
                  RL_OP_TIME /* rlog_offset_for_time: offset is the time */ };
enum rl_member_kind { RL_MEMBER_ADD, RL_MEMBER_REMOVE, RL_MEMBER_TRANSFER };

struct rl_waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
};

/* A request from a host thread to the loop. */
struct rl_op {
    enum rl_op_kind kind;
    struct rl_op *next;
    struct rl_waiter *waiter;   /* blocking forms; NULL for async */
    /* append */
    unsigned n;
    size_t *lens;
    unsigned char *data;        /* the records, back to back (copied) */
    size_t bytes;
    rlog_append_cb cb;
    void *cb_arg;
    bool counted;               /* holds a place in appends_in_flight */
    /* rlog_append_ex options: producer 0 is none; expect_offset only
     * with expect. hash: the records' run hash (batch.h), set when a
     * producer is given. */
    uint64_t producer_id, seq, expect_offset, hash;
    bool expect;
    uint64_t retry_until;       /* producer: sent again until then (loop ms) */
    bool seq_gap;               /* RLOG_ESEQUENCE for a gap (retried), not a reuse */
    bool conflict;              /* judged at ordering: takes no offsets (ECONFLICT) */
    bool forwarded_in;          /* leader: a follower's forwarded append; never forwarded on */
    struct rl_op *dups;         /* calls with the same (producer, seq) answered with this one */
    struct rl_op *pnext;        /* in its producer's pending list (producers.c) */
    bool in_pending;
    /* read / fetch; trim: records before it go */
    uint64_t offset;
    /* results */
    int status;
    char errmsg[384]; /* room for a failed stop's cause (256) and context */
    uint64_t first_offset;      /* append: first record; fetch: entry base */
    uint32_t count;             /* fetch: visible records in the entry */
    void *buf;                  /* read: record copy; fetch: entry payload */
    size_t len;
    struct rlog_status *st;
    struct rlog_metrics *metrics;
    struct rl_metrics_extra *metrics_extra; /* or NULL */
    uint64_t t0_us;             /* append: when the host called (rlog_metrics) */
    /* Stepped mode: called (on the loop) instead of waking a waiter. */
    void (*done)(struct rl_op *op);
    void *done_arg;
    /* membership */
    int member_kind;
    uint64_t member_id;
    char member_addr[64];
    /* cursors: the name (NUL-ended, checked); the offset is in `offset`.
     * A commit's result (first_offset) is the index of its entry. */
    char cursor_name[RL_CURSOR_NAME_MAX + 1];
};

#define RL_PENDING_BUCKETS 256
struct rl_pending;

struct rl_inflight {
    struct raft_apply req;
    struct rlog *log;
    uint64_t index, term;
    uint64_t records;           /* the records its entry holds */
    struct rl_op *ops;          /* in record order */
    bool apply_done, settled;
    struct rl_inflight *next;
};

/* The repair of damaged entries under way (node/repair.c). Loop thread. */
struct rl_host;

struct rl_repair {
    uint64_t first, last;             /* the damaged range */
    uint64_t first_offset, end_offset;
    uint64_t prev_term, next_term;    /* of the good entries around it; 0 unknown */
    uint64_t source;                  /* the member asked */
    unsigned turn, tried;             /* next member to ask; members tried */
    bool asking, writing;
    uint64_t asked_ms, started_ms, polled_ms, retry_at, noticed_ms;
    struct rl_store_entry *entries;   /* the verified copies received so far */
    unsigned n, cap;
    struct rl_store_req req;
};

/* Quiescence of an idle log on a shared transport (node/quiet.c). */
#define RL_QUIET_PEERS 16u /* larger configurations never quiesce */
struct rl_quiet {
    bool enabled, asking;
    bool pulse;            /* no host keepalives: pulses while quiet */
    unsigned pulse_ticks;  /* a quiet leader's pulse every this many ticks */
    uint64_t heard_ms;     /* a quiet follower's last pulse (loop ms) */
    unsigned quiet_after;  /* idle ticks before a leader first asks */
    unsigned ask_wait;     /* idle ticks before it asks (again) */
    unsigned idle_ticks;
    uint64_t seq;          /* of the ask out (its frames' request word) */
    uint64_t term, index;  /* of the ask out */
    uint64_t failed_index; /* the last index of the last ask that failed */
    uint64_t acked[RL_QUIET_PEERS];
    unsigned n_acked;
    uint64_t quiesced, wakes;
};

/* Leaders spread over hosts (node/balance.c). */
struct rl_balance {
    uint64_t name_hash;    /* of the log's name: picks its preferred voter */
    uint64_t term;         /* the term this node leads in, 0: not leading */
    uint64_t since_ms;     /* since when it leads in it */
    uint64_t tried_ms;     /* the last hand-over's start */
    uint64_t to;           /* its target */
    uint64_t transfers;    /* hand-overs started */
    unsigned backoff;      /* the wait between attempts is doubled this often */
    bool transferring;
    struct raft_transfer req;
};

struct rlog {
    /* Immutable after open. */
    struct rlog_config cfg;
    char *address, *data_dir, *cluster_name;
    struct rlog_peer *peers;
    uv_thread_t thread;
    unsigned long thread_id;

    /* Shared with host threads, under mu. */
    pthread_mutex_t mu;
    struct rl_op *inbox_head, *inbox_tail;
    bool accepting;             /* false once closing or stopped */
    int pub_role;
    uint64_t pub_leader_id;
    char pub_leader_addr[64];
    int pub_fatal;
    char pub_fatal_msg[256];
    uint64_t pub_visible_offset; /* records [0, this) are committed */
    uint64_t pub_trim_offset;    /* records before this are trimmed */
    pthread_cond_t visible_cv;   /* broadcast when it moves or on close */
    /* Backpressure: appends taken and not yet answered, and their bytes
     * (config max_appends_in_flight, max_append_bytes_in_flight). */
    unsigned long appends_in_flight;
    uint64_t append_bytes_in_flight;
    pthread_cond_t room_cv;      /* broadcast when they drop, or on close */
    struct rlog_sub *subs;       /* open subscriptions */
    /* Host threads' reads that miss the cache go to the store themselves
     * (api.c, rl_store_read_offset_shared): through shared_store, set from
     * a good open until the close begins; the close waits for the reads
     * under way (store_readers) before the store closes. */
    struct rl_store *shared_store;
    unsigned store_readers;
    pthread_cond_t store_cv;     /* broadcast when store_readers drops to 0 */

    /* Open handshake. */
    pthread_cond_t open_cv;
    bool open_done;
    int open_rv;
    char open_err[256];

    /* Loop thread only. */
    uv_loop_t own_loop;         /* the loop, unless the log is on a host's */
    uv_loop_t *loop;            /* own_loop or the host's */
    struct rl_host *host;       /* NULL: own loop (and own thread, unless stepped) */
    const struct rl_net_via *via; /* the host's shared transport, or NULL */
    struct rl_host_call host_call; /* the open, posted to the host's loop */
    /* An existing log of a host's data directory: never bootstrapped at
     * open, whatever its store holds (an empty one waits to be added). */
    bool no_bootstrap;
    /* The node's own handles and work requests not yet closed or done
     * (rl_node_hold): a log's close, or its failed open, ends when the
     * last goes, not when a loop runs out (a host's loop never does). */
    unsigned holds;
    bool ending;
    bool wake_ready;
    uv_async_t wake;
    uv_timer_t close_timer;
    struct raft raft;
    struct raft_io io;
    struct raft_fsm fsm;
    struct rl_store *store;
    bool raft_inited, raft_started, raft_closing, raft_closed, stopping;
    struct rl_op *close_op;
    struct raft_transfer transfer;
    struct rl_op *member_op;    /* the membership change under way */
    bool member_promoting;      /* member_op waits for its node's voter
                                   configuration to commit (members.c) */
    struct raft_change change;
    struct raft_transfer member_transfer;

    struct rl_fence fence;      /* what may be shown (node/fence.h) */
    /* The last early commit notice this leader sent (node/visible.c):
     * entry early_index of term early_term, durable here. */
    uint64_t early_index, early_term;
    unsigned long early_notices; /* sent (the simulator checks they are) */
    /* Retention: records before trim_offset are gone for readers at once;
     * the store drops whole entries as far as libraft's snapshot allows
     * (trim_snap: the snapshot index of the last store trim). */
    uint64_t trim_offset, trim_snap;
    /* The first retention command shown since the store last finished a
     * trim to the newest one's offset (its index, that offset; 0: none). Until the store has made it
     * durable, the commit fence persisted with a snapshot descriptor stays
     * below it, so a restart shows the command again and redoes it. */
    uint64_t trim_unsynced_index, trim_unsynced_offset;
    struct rl_cache cache;      /* recent payloads (node/cache.h) */
    struct rl_repair repair;    /* damaged entries (node/repair.c) */
    struct rl_quiet quiet;      /* idle on a shared transport (node/quiet.c) */
    struct rl_balance balance;  /* balance_leaders (node/balance.c) */
    uint64_t floor_cut_entries; /* cut at open before a damaged entry (raftio/floor.c) */
    /* Producers (node/producers.c): the replicated table, this leader's
     * calls not yet committed, the term whose entry this leader has shown
     * (it judges producer calls only then), calls waiting to be sent
     * again. */
    struct rl_dedup dedup;
    struct rl_pending *pending[RL_PENDING_BUCKETS];
    uint64_t lead_ready_term;
    struct rl_op *retry_head, *retry_tail;
    uv_timer_t retry_timer;
    bool retry_timer_ready;
    /* Named consumer positions (node/cursors.h), fed like the producer
     * table. */
    struct rl_cursors cursors;

    struct rl_batch_builder bb;
    struct rl_op *pend_head, *pend_tail;   /* not yet in a batch */
    struct rl_op *open_head, *open_tail;   /* in the batch being built */
    struct rl_inflight *ifl_head, *ifl_tail;
    unsigned n_inflight;
    int last_role;
    uint64_t last_leader;
    struct raft_barrier barrier;
    bool barrier_pending;
    /* Failed stop (a storage error): the cause, the term the node had, and
     * whether the stop's consequences (failed appends, the host's on_fatal)
     * have been dealt with. Raft stays in memory, but lib/raftio drops
     * every message and tick once failed, so it hears nothing and starts
     * nothing more; the store stays open to serve what was committed until
     * rlog_close. */
    int fatal;
    char fatal_msg[256];
    uint64_t stop_term;
    bool stop_settled;
    bool crash_close;           /* stepped mode: close as if killed, no hand-off */
    struct rl_fwd fwd;          /* appends and barriers on any node (node/forward.h) */
    struct rl_metrics metrics;  /* rlog_metrics's own counters (node/metrics.h) */
    /* Calls up to a higher file, set at start (lifecycle.c) so that the
     * files of lib/node form layers: an append being answered goes to the
     * producer table first (producers.c: rl_producers_finishing, true if
     * it is to be sent again instead); calls due to be sent again go to
     * the batcher (rl_node_pump). */
    bool (*finishing)(struct rlog *log, struct rl_op *op);
    void (*pump)(struct rlog *log);
    /* -- liblog 0.4: time index and retention policies --
     * The committed log by batch time and bytes (node/timeindex.h, fed by
     * visible.c); the policies' timer, whether a trim of theirs is being
     * committed, and the records their trims dropped (node/retention.c). */
    struct rl_tindex tindex;
    uv_timer_t ret_timer;
    bool ret_timer_ready, ret_busy;
    uint64_t retention_trims;
    /* -- liblog 0.4: state machines --
     * The host's state machine (lib/sm/sm.h; NULL: none). fetch: serve.c's
     * rl_do_fetch, for an iterator walked on the loop thread itself (the
     * state machine in stepped mode). */
    /* Set by rl_sm_start on the opener's thread while the loop already
     * runs (and reads it): atomic, so the loop sees NULL or all of it. */
    struct rl_sm *_Atomic sm;
    void (*fetch)(struct rlog *log, struct rl_op *op);
};

/* Bytes of entries one iterator hop carries: many entries per trip to the
 * loop thread, because the trip (two thread wake-ups) costs more than
 * copying a few hundred KiB. */
#define RL_FETCH_BUDGET (256u << 10)

/* lifecycle.c: the loop thread's body: opens everything, reports through
 * open_cv, runs. */
void rl_node_thread(void *arg);
/* Opens everything on the calling thread and reports through open_cv; on
 * failure undoes the partial start. */
int rl_node_start_here(struct rlog *log);
/* Runs an own loop until nothing is left, closes every handle, closes it;
 * nothing for a log on a host's loop. */
void rl_node_teardown(struct rlog *log);
/* What the node itself keeps open on its loop (a handle, a work request):
 * hold when it opens or is queued, release when it is closed or done
 * (rl_node_close_handle closes a handle and releases it). Once a close or
 * a failed open is ending, the last release ends it: the close op
 * completes or the opener hears the failure, and log must not be touched
 * after. Loop thread. */
void rl_node_hold(struct rlog *log);
void rl_node_release(struct rlog *log);
void rl_node_close_handle(struct rlog *log, uv_handle_t *h);

/* Stepped mode, for the deterministic simulator (test/sim): the caller's
 * thread is the loop thread and advances it with uv_run(UV_RUN_NOWAIT), so
 * nothing happens between its steps. Blocking calls fail with RLOG_EINVAL
 * there; ops are queued with rl_submit and complete through op->done. */
int rl_open_stepped(const struct rlog_config *cfg, struct rlog **out, char *err, size_t errlen);
/* The same on the caller's loop, shared with its other logs and its
 * transport (via: lib/host/mux.c's), as a host's logs are (the
 * simulator's hosts). The log ends on its last handle; the loop stays. */
int rl_open_stepped_on(uv_loop_t *loop, const struct rl_net_via *via, const struct rlog_config *cfg,
                       struct rlog **out, char *err, size_t errlen);
int rl_submit(struct rlog *log, struct rl_op *op);
/* Opens a log on a host's loop thread, shared with the other logs opened
 * on it (issue 16's first step; lib/host), its read cache in cache_pool
 * when not NULL (rlog_host's budget). rlog_open does this on the host
 * rl_shared_host returns when that hook is set: tests set it to run every
 * log of a process on one loop thread. A hook, not a host, because Check
 * forks a child per test and a thread started before the fork is not in
 * the child: the hook starts the host in the process that asks. */
#define RL_OPEN_NO_BOOTSTRAP 1u /* rl_open_on_host's flags: struct rlog's no_bootstrap */
int rl_open_on_host(struct rl_host *host, struct rl_cache_pool *cache_pool,
                    const struct rl_net_via *via, unsigned flags, const struct rlog_config *cfg,
                    struct rlog **out, char *err, size_t errlen);
extern struct rl_host *(*rl_shared_host)(void);
/* Tests: every log opens holding its store's jobs, as one on a shared loop
 * does (the simulator's --hold-jobs: other schedules at open). */
extern bool rl_hold_jobs_always;
/* The batcher's pipeline (node/batcher.c): entries in flight before a batch
 * that is not full waits for a commit, and at most. The simulator deepens it. */
extern unsigned rl_pipeline_depth, rl_pipeline_max;
/* After a close op completed: tears the loop down (a loop of its own)
 * and frees log. */
void rl_free_stepped(struct rlog *log);
/* Moves the trim point (loop thread) and publishes it. */
void rl_set_trim_offset(struct rlog *log, uint64_t offset);
/* Fills st as rlog_status does. Loop thread. */
void rl_node_status(struct rlog *log, struct rlog_status *st);
/* Completes an op: fires its callback or wakes its waiter. Loop thread. */
void rl_op_finish(struct rlog *log, struct rl_op *op);
/* Gives back op's place among the appends in flight (backpressure; submit.c
 * takes it); a no-op if it holds none. Any thread. */
void rl_give_back_place(struct rlog *log, struct rl_op *op);
/* errmsg.c: sets what rlog_errmsg returns on this thread (an append
 * callback's failure detail, on the loop thread). */
void rl_set_errmsg(const char *msg);
/* queue.c: whether the caller runs on log's loop thread. iter.c: an
 * iterator wait that also gives up (RLOG_ECANCELED) when *stop becomes
 * true. */
bool rl_on_loop_thread(struct rlog *log);
int rl_iter_wait_stop(rlog_iter *it, int timeout_ms, const bool *stop);
/* api.c: rlog_read's part on the caller's thread (the read cache, else
 * the segment files): 0 with the record, 1 if the loop thread is to serve
 * it (and say why it cannot), or RLOG_ENOMEM. The simulator checks it. */
int rl_read_here(struct rlog *log, uint64_t offset, void **buf, size_t *len);
/* close.c: ends host threads' reads from the store, waiting for those
 * under way (before it closes). Loop thread. */
void rl_store_unshare(struct rlog *log);
/* sub.c: ends and frees every subscription (at rlog_close). */
void rl_subs_end_all(struct rlog *log);
void rl_log(struct rlog *log, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* repair.c: looks for damage to repair and drives the repair under way
 * (after each raft event; rate-limited); routes the fetch answers it asked
 * for (the io hook on_repair_answer); fills the status counters; frees
 * what it holds (after the store closed). */
void rl_repair_poll(struct rlog *log);
struct rl_wire_fetch_resp;
bool rl_repair_answer(void *arg, uint64_t from, const struct rl_wire_fetch_resp *a);
void rl_repair_status(struct rlog *log, struct rlog_status *st);
void rl_repair_free(struct rl_repair *r);
/* quiet.c: quiescence of an idle log on a shared transport: set up
 * after the backend starts; after each tick; a QUIESCE, QUIESCED or
 * UNQUIESCE frame from member `from`; the backend's clock runs again, or
 * a member's connection ended or fell silent (lib/raftio/io.h, on_wake). */
void rl_quiet_init(struct rlog *log);
/* Nothing in flight on a leader: every member holds its last entry, stored
 * and committed; no change of membership or leader; nothing of the node's. */
bool rl_leader_idle(struct rlog *log);
/* balance.c: the preferred leader (balance_leaders), checked each tick. */
void rl_balance_init(struct rlog *log);
void rl_balance_tick(struct rlog *log, bool leader_idle);
/* This leader has a hand-over due (it holds the log awake until then). */
bool rl_balance_pending(struct rlog *log);
uint64_t rl_balance_hash(const char *name);
uint64_t rl_preferred_voter(const struct raft_configuration *c, uint64_t name_hash);
/* partition.c: the jump consistent hash, a bucket in [0, n) for key. */
unsigned rl_jump_hash(uint64_t key, unsigned n);
/* Logs with their own connections go quiet too, with pulses (the
 * simulator sets it; see quiet.c). */
extern bool rl_quiet_everywhere;
void rl_quiet_tick(struct rlog *log);
struct rl_wire_fwd;
void rl_quiet_recv(struct rlog *log, uint64_t from, const struct rl_wire_fwd *m);
void rl_quiet_woken(struct rlog *log, uint64_t from, bool was_frozen);
/* batcher.c: orders pending appends into batches (leader) or refuses them. */
void rl_node_pump(struct rlog *log);

/* The loop thread's files (each comment names the file; see there). */
/* ops.c: fails op with status and msg (or the status's name); the "not
 * the leader" message naming the leader if one is known; fails a list of
 * appends never proposed; for operations only a leader takes: false (op
 * failed) if this node cannot take it now. */
void rl_op_fail(struct rlog *log, struct rl_op *op, int status, const char *msg);
void rl_not_leader_msg(struct rlog *log, char *buf, size_t len);
void rl_fail_list(struct rlog *log, struct rl_op **head, struct rl_op **tail, int status);
bool rl_leader_can_take(struct rlog *log, struct rl_op *op);
/* batcher.c: settles the head of the in-flight list (0: acknowledged at
 * base offset `offset`); proposes one COMMAND entry (buf, raft_malloc'd,
 * is given away), ops answered when the fence passes it. */
void rl_ifl_settle_head(struct rlog *log, int status, uint64_t offset);
void rl_propose(struct rlog *log, void *buf, size_t len, struct rl_op *ops, uint64_t records);
/* trim.c: the store drops what retention allows; a retention command
 * reached the fence; the RL_OP_TRIM op; what a fence entry carries from
 * its entry's payload (a retention command's point, the batch time and
 * record bytes for the time index). */
void rl_trim_store(struct rlog *log);
void rl_apply_trim(struct rlog *log, uint64_t index, uint64_t before);
void rl_do_trim(struct rlog *log, struct rl_op *op);
void rl_fence_entry_fill(struct rl_fence_entry *e, const void *buf, uint32_t len);
/* serve.c: the time index's reads (the cache, else the store); the
 * RL_OP_TIME op. */
void rl_time_src(struct rlog *log, struct rl_tindex_src *src);
void rl_do_time(struct rlog *log, struct rl_op *op);
/* retention.c: the policies' timer (started when a policy is set), and
 * the cap on their trim point for host state machines. */
int rl_retention_start(struct rlog *log);
void rl_retention_stop(struct rlog *log);
uint64_t rl_retention_floor(struct rlog *log);
/* visible.c: publishes the commit point to host threads; moves the fence
 * after a raft event; the io hook on_commit (a leader's commit notice). */
void rl_visible_published(struct rlog *log);
void rl_visible_update(struct rlog *log);
void rl_visible_on_commit(void *arg, uint64_t index, uint64_t entry_term);
/* serve.c, members.c, close.c: the ops of those kinds. */
void rl_do_read(struct rlog *log, struct rl_op *op);
void rl_do_fetch(struct rlog *log, struct rl_op *op);
void rl_do_status(struct rlog *log, struct rl_op *op);
void rl_do_member(struct rlog *log, struct rl_op *op);
/* After each raft event: settles an add waiting for its promotion. */
void rl_members_poll(struct rlog *log);
void rl_do_close(struct rlog *log, struct rl_op *op);
/* loop.c: publishes role, leader and failed stop to host threads; the
 * inbox's wake-up; the backend's hooks. */
struct rl_io_hooks;
void rl_publish(struct rlog *log);
void rl_wake_cb(uv_async_t *a);
struct rl_io_hooks rl_loop_hooks(struct rlog *log);

/* producers.c (see there). judge: what to do with an append as it goes
 * into a batch whose records would start at end_offset (computed only for
 * a conditional call, op->expect; 0 otherwise). */
enum rl_judgement {
    RL_JUDGE_ADD,  /* into the batch (op->conflict: with no records) */
    RL_JUDGE_DONE, /* answered already */
    RL_JUDGE_HELD, /* will be answered with the same call in flight */
    RL_JUDGE_WAIT, /* not yet: this leader has not shown its own term */
};
int rl_producers_init(struct rlog *log);
int rl_producers_start(struct rlog *log);
void rl_producers_stop(struct rlog *log);
void rl_producers_free(struct rlog *log);
enum rl_judgement rl_producers_judge(struct rlog *log, struct rl_op *op, uint64_t end_offset);
/* op went into a batch. 0 or RLOG_ENOMEM. */
int rl_producers_added(struct rlog *log, struct rl_op *op);
/* An op was taken from the inbox (starts its retry clock). */
void rl_producers_taken(struct rlog *log, struct rl_op *op);
/* From rl_op_finish: answers op's duplicates; true if op itself was
 * queued to be sent again instead of being answered. */
bool rl_producers_finishing(struct rlog *log, struct rl_op *op);
/* At open, after the fence is loaded: the saved table, and the entries
 * after it. 0 or an RLOG_E* code with err set. */
int rl_producers_load(struct rlog *log, char *err, size_t errlen);
/* A table saved in the data directory (file `name`), decoded into table:
 * 0 (also when there is no such file), or an RLOG_E* code with err naming
 * the file and why. */
typedef int (*rl_state_decode)(void *table, const unsigned char *buf, size_t len, char *why,
                               size_t whylen);
int rl_state_load(struct rlog *log, const char *name, rl_state_decode decode, void *table,
                  char *err, size_t errlen);
/* The producer table as bytes (for the io hook snapshot_state). */
int rl_producers_state(void *arg, const char **name, void **buf, size_t *len);

/* positions.c: named cursors. The ops RL_OP_CURSOR (a commit: proposed on
 * the leader, forwarded from a follower) and RL_OP_CURSOR_GET (the table
 * made at open: rl_positions_init, 0 or RLOG_ENOMEM); at open,
 * after the fence is loaded, the saved table and the entries after it (0
 * or an RLOG_E* code with err set); the io hook snapshot_state: the
 * tables saved with each snapshot descriptor (i-th: 0 .. none left). */
int rl_positions_init(struct rlog *log);
void rl_do_cursor(struct rlog *log, struct rl_op *op);
void rl_do_cursor_get(struct rlog *log, struct rl_op *op);
int rl_cursors_load(struct rlog *log, char *err, size_t errlen);
int rl_node_state(void *arg, unsigned i, const char **name, void **buf, size_t *len);

#endif
