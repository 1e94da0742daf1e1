/*
 * raftio — liblog's implementation of libraft's struct raft_io: the segment
 * store is the Raft log (each entry written once), messages travel in our
 * own checksummed frames (lib/wire) over liblog's own transport (lib/net:
 * listen, connect, mutual TLS and the hello that names a peer), and
 * snapshots are descriptors (the log is its own snapshot).
 *
 * Guards against libraft 0.15 faults (see lib/README.md): inbound
 * RequestVote and TimeoutNow, and the ticks of a non-leader, are held back
 * while appends are in flight, so elections only ever see durable log state;
 * and after a storage failure the backend fails every later call
 * (fail-stop). The implementation's files are listed in io.c.
 */
#ifndef RL_RAFTIO_IO_H
#define RL_RAFTIO_IO_H

#include <raft.h>
#include <raft/uv.h>
#include <uv.h>

#include "store/store.h"

struct rl_wire_commit;
struct rl_wire_fetch_resp;
struct rl_wire_fwd;

struct rl_io_hooks {
    void *arg;
    /* After libraft handled an event (message, tick, completed append):
     * the node re-evaluates commit visibility and batching. */
    void (*after_event)(void *arg);
    /* An entry was handed to the store: its index, term, records and payload
     * (valid during the call). */
    void (*on_append)(void *arg, uint64_t index, uint64_t term, uint64_t offset,
                      uint32_t records, const void *buf, uint32_t len);
    /* Entries from index on were truncated. */
    void (*on_truncate)(void *arg, uint64_t index);
    /* The log was reset to start at entry `index`, record `offset` (catch-up
     * past a peer's trim point): everything before is committed and gone. */
    void (*on_reset)(void *arg, uint64_t index, uint64_t offset);
    /* The store failed; the node stops (fail-stop). */
    void (*on_fatal)(void *arg, int code, const char *msg);
    /* The fence position to persist with a snapshot descriptor (a restart
     * shows everything up to it again without waiting for a commit). */
    uint64_t (*visible_index)(void *arg);
    /* The highest index this node knows committed: its fence, and libraft's
     * commit index (libraft 0.15 stops for good, RAFT_UNAVAILABLE, on an
     * AppendEntries that conflicts with an entry up to it). */
    uint64_t (*committed_index)(void *arg);
    /* The address of server `id` from the cluster configuration: 0, or -1
     * if it is not a member. Peers' own claims are never trusted. */
    int (*peer_address)(void *arg, uint64_t id, char *buf, size_t len);
    /* The leader says its commit fence passed entry `index` of term
     * `entry_term` (a COMMIT frame, sent by rl_io_send_commit). */
    void (*on_commit)(void *arg, uint64_t index, uint64_t entry_term);
    /* The leader this node knows for its current term, or 0. */
    uint64_t (*leader_id)(void *arg);
    /* Whether this node leads now (leaders' ticks are never held back). */
    bool (*is_leader)(void *arg);
    /* One log line, level 0 debug .. 3 error. */
    void (*log)(void *arg, int level, const char *line);
    /* A fetch answer from `from` (its entries valid during the call): true
     * if the repair of damaged entries (node/repair.c) asked for it. */
    bool (*on_repair_answer)(void *arg, uint64_t from, const struct rl_wire_fetch_resp *a);
    /* State of the node's own to save durably with each snapshot
     * descriptor, before it (the producer table, the cursor table): the
     * i-th file (i from 0 to RL_IO_STATES - 1), a name in the data
     * directory and malloc'd bytes (*name NULL: no i-th file). 0 or
     * RLOG_ENOMEM. */
    int (*snapshot_state)(void *arg, unsigned i, const char **name, void **buf, size_t *len);
    /* A forwarding frame (wire/codec.h) from member `from`, decoded and
     * checksummed (lib/node/forward.c). It may take m's buffers (setting
     * them NULL). Returns 0, or RLOG_EPROTO when the frame breaks the
     * node's limits (the reason in m->msg): the connection is then
     * dropped like any bad frame. */
    int (*on_fwd)(void *arg, uint64_t from, struct rl_wire_fwd *m);
    /* After each tick libraft was given (node/quiet.c decides from there
     * whether the log is idle enough to quiesce). */
    void (*on_tick)(void *arg);
    /* A quiet log's clock runs again (was_frozen), or, on a log that is
     * not quiet, a member's connection ended or fell silent; from: the
     * peer whose message, end or silence it was (0: a reason of this
     * node's own). */
    void (*on_wake)(void *arg, uint64_t from, bool was_frozen);
};

/* The most files snapshot_state may give. */
#define RL_IO_STATES 4u

/* The frame cap is batch_max_bytes plus this: room for a segment fetch
 * answer (fetch.c: up to 4 MiB of entries, and the one that crosses it)
 * and the entry headers of a frame. */
#define RL_IO_FRAME_ALLOWANCE ((4u << 20) + (256u << 10))

/* The transport's settings (see rlog_config in liblog.h for each bound). */
struct rl_io_net_config {
    /* The cluster's name as the data directory records it, and whether it
     * was given (else derived from a peers list: not compared in hellos). */
    const char *cluster;
    bool cluster_named;
    /* PEM files for mutual TLS; all NULL: plain (insecure or loopback). */
    const char *tls_ca_file, *tls_cert_file, *tls_key_file;
    unsigned max_inbound, max_per_address;
    unsigned handshake_timeout_ms, frame_timeout_ms, idle_timeout_ms;
    uint64_t max_send_queue;  /* bytes queued for one peer */
    /* A host's shared transport (lib/host/mux.c), or NULL: the node's own
     * listener and connections. */
    const struct rl_net_via *via;
};

struct rl_io_config {
    uv_loop_t *loop;
    struct rl_store *store;   /* opened on loop; closed by io->close */
    const char *dir;          /* for the snapshot descriptor */
    unsigned trailing;        /* entries load() returns before the snapshot */
    uint32_t max_frame_body;  /* largest frame accepted from a peer */
    struct rl_io_net_config net;
    struct rl_io_hooks hooks;
};

/* What the transport refused or cut (since open). */
struct rl_io_net_stats {
    bool tls;
    uint64_t refused_connections, rejected_handshakes, timed_out_connections;
    uint64_t send_queue_overflows;
};

/* Fills io's function table and loads the TLS files (RLOG_EINVAL naming
 * the file that is unreadable or does not match). io->close releases
 * everything, the store too. */
int rl_io_init(struct raft_io *io, const struct rl_io_config *cfg);
void rl_io_net_stats(struct raft_io *io, struct rl_io_net_stats *st);
/* What this node counted of member id (rlog_metrics): bytes of frames
 * written to it, bytes read from its connections, and whether the
 * connection to it is up. Zeros for a member it never talked to. */
struct rl_io_peer_stats {
    uint64_t sent_bytes, received_bytes;
    bool connected;
};
void rl_io_peer_stats(struct raft_io *io, uint64_t id, struct rl_io_peer_stats *st);
/* Tells the other members of conf (`to`: all, its voters, or the rest) that
 * entry c->index of term c->entry_term is committed (this leader's term
 * c->term), or will be once the receiver holds it durably (the early
 * notice, node/visible.c: sent to voters only, where the leader and any one
 * of them are a majority), so followers can show it without waiting for
 * the next AppendEntries. Best effort: a lost notice only costs latency. */
enum rl_notice_to { RL_NOTICE_ALL, RL_NOTICE_VOTERS, RL_NOTICE_NON_VOTERS };
void rl_io_send_commit(struct raft_io *io, const struct raft_configuration *conf,
                       const struct rl_wire_commit *c, enum rl_notice_to to);
/* Sends a forwarding frame to member `to` at `address`. 0: done(arg,
 * status) is called once the frame is written or has failed (possibly
 * before this returns): status 0; RLOG_EAGAIN if no byte of it reached a
 * connection (the connect failed, the queue was full); else nonzero, and
 * the peer may have received it. Otherwise an RLOG_E* code: nothing was
 * sent and done is not called. */
int rl_io_send_fwd(struct raft_io *io, uint64_t to, const char *address,
                   const struct rl_wire_fwd *m, void (*done)(void *arg, int status), void *arg);
/* Before libraft or the node load anything (rlog_open): if an entry from
 * `needed` on (the first entry libraft must load: the one after the
 * snapshot descriptor) fails its checksum, records the log's end in FLOOR
 * (durably) and cuts the log before that entry; *cut_at is its index (0:
 * nothing damaged). The node then takes the cut entries from the leader
 * and votes for no candidate behind the old end until it has them again
 * (lib/raftio/floor.c says why). An RLOG_E* code with err filled when the
 * store cannot be read or written. */
int rl_floor_cut_damaged_tail(struct rl_store *s, const char *dir,
                              uint64_t needed, uint64_t *cut_at, char *err, size_t errlen);
/* Whether a floor is in force (its index in *index), and how many were
 * cleared since open (*cleared): the log came back past them. */
bool rl_io_floor(struct raft_io *io, uint64_t *index, unsigned long *cleared);
/* While catching up by segment fetch: the next index wanted and the target. */
bool rl_io_catchup(struct raft_io *io, uint64_t *next, uint64_t *target);
/* Asks member `peer` for entries from..to of its log (the catch-up fetch
 * protocol), for the repair of a damaged range; the answer comes through
 * hooks.on_repair_answer. RLOG_EBUSY while a catch-up or a rewind is
 * fetching (the transport takes fetch answers from one source at a time),
 * RLOG_EINVAL if peer is not a member. */
int rl_io_repair_ask(struct raft_io *io, uint64_t peer, uint64_t from, uint64_t to);

/* The address of member `id` of the configuration carried by the last
 * snapshot a leader sent this node to install, if that configuration is
 * newer than `newer_than` (the node's own configuration index): 0, or -1
 * if it names no such member. A leader's InstallSnapshot passed the
 * membership check, so its configuration is one this node's log would
 * have held had it kept up. */
int rl_io_vouched_address(struct raft_io *io, uint64_t id, uint64_t newer_than, char *buf,
                          size_t len);

/* Quiescence (quiet.c): a log whose leader and followers all hold every
 * entry, committed, with nothing in flight, stops libraft's clock on every
 * member. libraft then sends nothing (no heartbeat is due) and expects
 * nothing (no election timeout passes), and its ticks are not run. Raft's
 * safety never rests on time, only its liveness: the clock runs again, with
 * no jump (the stopped time is taken out of what libraft sees), when
 * libraft sends or appends anything, a raft message arrives, a connection
 * of the log ends, its peer host falls silent (the shared transport's
 * keepalives stop), the node fails stop, or the node calls rl_io_wake.
 * Whether the log is on a host's shared transport (which has keepalives): */
bool rl_io_shared_transport(struct raft_io *io);
/* Nothing of the backend's own in flight (catch-up, held messages,
 * snapshot descriptors, failed sends): it may stop its clock. */
bool rl_io_quiet_ok(struct raft_io *io);
/* keep_ticks: hooks.on_tick still runs every tick (libraft's tick does
 * not): the node's own liveness check while quiet without a host's
 * keepalives (node/quiet.c, pulses). */
void rl_io_freeze(struct raft_io *io, bool keep_ticks);
void rl_io_wake(struct raft_io *io, const char *why);
bool rl_io_frozen(struct raft_io *io);

/* Index of the durable snapshot descriptor (0: none). Entries after it
 * are what a restart hands back to libraft, so the store may drop entries
 * up to it, never beyond. */
uint64_t rl_io_snapshot_index(struct raft_io *io);
/* The node found its store failed (a retention job): the backend stops as
 * for a failure of its own (drops every later event, calls on_fatal). */
void rl_io_fail_stop(struct raft_io *io, int code, const char *what);
/* Records a COMMAND payload carries, or 0 if it is not a valid batch. */
uint32_t rl_io_batch_records(const void *buf, size_t len);

#endif
