/*
 * sm — the host state machine's runtime (rlog_config.sm): one apply thread
 * per node walks the committed records with an iterator, from the restored
 * snapshot's next_offset, and applies each once in offset order; it calls
 * snapshot() between two applies and hands the capture to a persist thread
 * (one at a time) while it goes on; it keeps the last sm_results results by
 * offset for rlog_apply* callers.
 *
 * Stepped mode (the simulator): no threads; the world calls rl_sm_step on
 * the loop thread, which applies whatever is committed and persists inline.
 *
 * Files (bottom first, after the snapshot files of sm/smfile.h): results.c
 * (the results kept, the calls waiting for theirs); run.c (restore, the
 * apply loop, snapshots); api.c (the public calls and the node's hooks);
 * install.c (a peer's snapshot fetched and installed, and serving ours).
 *
 * A node that needs records before the log's first offset, with no
 * snapshot covering them, stops applying and says so (status
 * sm_needs_snapshot, a log line, RLOG_ETRIMMED from rlog_sm_wait) until
 * rl_sm_install gives it one: install.c fetches a peer's newest snapshot
 * over the transport and calls it with the file.
 */
#ifndef RL_SM_SM_H
#define RL_SM_SM_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "liblog.h"
#include "sm/smfile.h"

struct rlog;

/* An rlog_apply_async call waiting for its records to be applied. */
struct rl_sm_call {
    struct rl_sm *sm;
    uint64_t first;
    unsigned n;
    rlog_apply_cb cb;
    void *arg;
    struct rl_sm_call *next;
    int status;              /* at completion */
    int64_t results[];       /* n of them, filled at completion */
};

/* A captured state on its way to disk. */
struct rl_sm_job {
    void *snap;
    uint64_t next_offset;
    uint64_t seq;            /* the rlog_sm_snapshot requests it answers */
};

/* Members whose snapshot reports a leader keeps (more: the oldest
 * reporters' are replaced). */
#define RL_SM_REPORTS 16

/* The fetch of a peer's snapshot (install.c; loop thread, and its
 * threadpool jobs one at a time). */
struct rl_sm_fetch {
    int state;
    uint64_t peer, request;
    uint64_t need;           /* the log here starts at this offset */
    uint64_t next, size, pos;/* the file being fetched (next 0: not yet known) */
    int fd;                  /* install.part (-1: not open) */
    void *piece;             /* being written */
    size_t piece_len;
    int io_rv;
    char err[384];
    uint64_t polled_ms, asked_ms, retry_at, started_ms, noticed_ms;
    unsigned turn, tried, timeouts;
    bool resume;             /* ask the same piece again at retry_at */
    uint64_t resumes, bytes;
    uint64_t installed_next; /* the last file installed (0: none yet) */
    uint64_t failures_then;  /* sm->failures when it was installed */
    unsigned futile;         /* installs in a row that restore did not take */
    uv_work_t work;
};

/* A piece of a snapshot file being read for a peer (install.c). */
struct rl_sm_serve {
    struct rl_sm *sm;
    bool busy;
    uint64_t peer, request, need, next, pos, size;
    uint32_t budget;
    int status;
    char msg[200];
    void *data;
    size_t len;
    uv_work_t work;
};

struct rl_sm {
    struct rlog *log;
    struct rlog_sm h;        /* the host's callbacks (a copy) */
    char dir[4096];
    struct rl_smf_id id;
    uint64_t every;
    unsigned keep, nres;
    bool stepped;
    pthread_t apply_thread, persist_thread;
    bool apply_started, persist_started;

    /* Under mu (cv: applied moved, a snapshot finished, the end). */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t applied;        /* records before it are applied */
    int ended;               /* nonzero: apply stopped for good (or until install) */
    char ended_msg[384];
    bool needs_snapshot, stop, restored;
    uint64_t snap_offset, taken, installed, failures;
    uint64_t snap_req, snap_done;   /* rlog_sm_snapshot requests, answered */
    int snap_done_rv;
    uint64_t snap_done_next;
    bool persisting;
    unsigned waiting;               /* rlog_sm_wait / snapshot callers asleep */
    /* The lowest offset an rlog_sm_wait caller asleep waits for
     * (UINT64_MAX: none): apply wakes them only when it gets there, not
     * at every record. */
    uint64_t wake_applied;
    struct rl_sm_call *calls;
    uint64_t calls_min_end;         /* no call completes before this */
    int64_t *res;                   /* ring of nres results, by offset */
    uint64_t *res_tag;              /* offset + 1 of each slot; 0: empty */

    bool cluster_named;      /* compare snapshots' cluster (install) */
    bool install_ready;      /* stepped mode: a file was installed */

    /* Loop thread: snapshot install (install.c). */
    struct rl_sm_fetch fetch;
    struct rl_sm_serve serving;
    /* Loop thread: what members reported of their newest snapshot (the
     * leader's retention floor), and this node's last report. */
    struct rl_sm_report {
        uint64_t id, next;
    } reports[RL_SM_REPORTS];
    uint64_t reported_next, reported_to, reported_ms;

    /* Apply side only. */
    uint64_t last_capture;
    /* Under log->mu: wakes the apply thread out of its wait for commits. */
    bool poke;
};

/* results.c */
int rl_sm_results_init(struct rl_sm *sm);
void rl_sm_results_free(struct rl_sm *sm);
/* Keeps `result` for `offset` and moves applied past it; completes the
 * calls whose records are all applied. Caller holds nothing. */
void rl_sm_applied(struct rl_sm *sm, uint64_t offset, int64_t result);
/* Takes a call whose records committed at `first` (loop thread): completes
 * it now if they are applied or never will be here, else keeps it. */
void rl_sm_call_add(struct rl_sm *sm, struct rl_sm_call *c);
/* Fails every waiting call with status (the apply loop ended). */
void rl_sm_calls_fail(struct rl_sm *sm, int status);

/* run.c */
/* The state machine whose apply or persist thread the caller is (NULL:
 * none): a blocking call there would wait for itself. */
extern _Thread_local struct rl_sm *rl_sm_own_thread;
/* The apply thread's body. */
void *rl_sm_apply_main(void *arg);
/* Stepped mode: restores (first call), applies what is committed, takes
 * and persists snapshots inline. */
void rl_sm_run_step(struct rl_sm *sm);
/* Wakes the apply thread (a request, a stop, an install). */
void rl_sm_poke(struct rl_sm *sm);
/* A snapshot file was installed: restore it if apply stopped for lack of
 * one (stepped mode: now; else on the apply thread). */
void rl_sm_installed(struct rl_sm *sm);

/* api.c: the node's hooks (lib/node calls these). */
/* Checks cfg->sm (NULL: fine). 0 or RLOG_EINVAL with err set. */
int rl_sm_check_config(const struct rlog_config *cfg, char *err, size_t errlen);
/* After the node opened: starts the runtime (threaded: the apply thread).
 * 0 or RLOG_ENOMEM. */
int rl_sm_start(struct rlog *log, bool stepped);
/* Stops the apply thread and waits for a persist in progress (before the
 * node closes: no apply after rlog_close returns). */
void rl_sm_stop(struct rlog *log);
/* Whether the caller is log's apply or persist thread (rlog_close there
 * would wait for itself). */
bool rl_sm_own_thread_of(struct rlog *log);
void rl_sm_free(struct rlog *log);
void rl_sm_status(struct rlog *log, struct rlog_status *st);
/* The offset retention must not trim past: a quorum of the voters' newest
 * snapshots cover the records before it (0: not yet, so nothing may go),
 * so losing any one node's disk leaves a snapshot to install from;
 * UINT64_MAX without a state machine. */
uint64_t rl_sm_trim_floor(struct rlog *log);
/* Stepped mode: the world's turn for the state machine. */
void rl_sm_step(struct rlog *log);
/* Stepped mode: asks for a snapshot at the next step. */
void rl_sm_request_snapshot(struct rlog *log);
/* Verifies the snapshot file at path whole (and, unless expect_next is 0,
 * that it covers the records before expect_next), moves it into
 * <data_dir>/sm and, if it is newer than what is applied here and the
 * state machine is stopped for lack of one, has it restored and apply go
 * on after it. Any thread. 0 or an RLOG_E* code with err set. */
int rl_sm_install(struct rlog *log, const char *path, uint64_t expect_next, char *err,
                  size_t errlen);

/* The identity a snapshot file must carry to be restored or installed
 * here: the cluster only when it was named (a derived name comes from
 * each member's own peers list, so a joined node's differs; the
 * transport already proved the sender a member), any node. */
static inline struct rl_smf_id rl_sm_want(const struct rl_sm *sm)
{
    return (struct rl_smf_id){.node = sm->id.node,
                              .cluster = sm->cluster_named ? sm->id.cluster : 0};
}

/* install.c: a SNAP_REQUEST, SNAP_DATA or SNAP_HAVE frame from member
 * `from` (loop thread; node/forward.c hands them over). Always 0. */
struct rl_wire_fwd;
int rl_sm_install_recv(struct rlog *log, uint64_t from, struct rl_wire_fwd *m);
/* After each event: reports this node's newest snapshot to the leader
 * (when it changed, and every second); starts, resumes or gives up a
 * fetch of a peer's snapshot while the state machine needs one. */
void rl_sm_install_poll(struct rlog *log);
/* Nothing to fetch or serve, and nothing needed (a quiet log: node/quiet.c).
 * Loop thread. */
bool rl_sm_install_idle(struct rlog *log);
/* Bytes asked for per piece (RL_WIRE_SNAP_PIECE_MAX; the simulator
 * lowers it so that its small snapshots travel in many pieces). */
extern uint32_t rl_sm_install_piece;
/* The offset a quorum of the voters' newest snapshots cover (this node's
 * own, the others' as reported): retention's floor on the leader. Loop
 * thread. */
uint64_t rl_sm_quorum_snapshot(struct rlog *log);
/* Releases what a fetch or a serve holds (after the loop stopped). */
void rl_sm_install_free(struct rl_sm *sm);

#endif
