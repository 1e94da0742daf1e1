/*
 * The simulated world: N liblog nodes in one process, on one thread, with a
 * simulated clock, network and disk. Each node is the real thing (its store,
 * raft_io backend, batcher, fence and cache) in stepped mode; what the world
 * owns is time (clock_gettime, which libuv reads, is answered from a virtual
 * clock), the transport (frames travel through the world, which can drop,
 * delay, duplicate and reorder them, or cut links), deferred work (the
 * store's writes and syncs run when the world decides, slowly if it likes)
 * and each node's disk faults (lib/fs domains: EIO, ENOSPC, power loss).
 *
 * Everything is driven by one seeded PRNG, so a seed replays a run exactly.
 */
#ifndef RL_SIM_WORLD_H
#define RL_SIM_WORLD_H

#include <stdbool.h>
#include <stdint.h>

#include "lib/fault_fs.h"
#include "node/node.h"
#include "wire/codec.h"

#define SIM_MAX_NODES 5
#define SIM_MAX_LOGS 8    /* host mode: logs per node, the primary among them */
#define SIM_MS 1000000ull /* nanoseconds */

/* Host mode: a log beside the primary on a node's host. */
struct sim_bg {
    int k;                   /* 1 .. W->logs - 1 (0 is the primary) */
    char name[32];           /* its cluster name: the key of its channels */
    char dir[320];
    rlog *log;               /* NULL while down */
    bool closing;
    rlog *ended;             /* closed inside a turn: freed after it */
    bool fatal_seen;
};

struct sim_node {
    int idx;            /* 0-based; the raft id is idx + 1 */
    uint64_t id;
    char address[32];
    char dir[320];
    rlog *log;          /* NULL while down */
    bool closing;       /* a close op is under way */
    rlog *ended;        /* closed inside its loop's turn: freed after it */
    bool fatal_seen;    /* the node failed stop; a restart is scheduled */
    int restarts;
    struct rl_fs_domain *fs;
    int64_t clock_offset_ns; /* clock jumps */
    uint64_t disk_ns;        /* latency of one deferred store job */
    uint64_t pause_cut_ms;   /* paused-leader-catchup: how long the cut lasts */
    uint64_t disk_busy_until;
    uint64_t incarnation;    /* bumps at every open */
    uint64_t hold_until;     /* no restart before this virtual time (a wipe) */
    bool join;               /* not in the first configuration: opens with
                                join = 1 and waits for a leader to add it */
    /* listening side of the simulated transport */
    struct raft_uv_transport *transport;
    void *accept_cb;
    /* -- time index: the wall clock (batch times) is SIM_WALL_EPOCH + the
     * node's monotonic clock + this, so it can also jump back -- */
    int64_t wall_offset_ns;
    /* -- liblog 0.4: state machines -- base.sm with arg = this node */
    struct rlog_sm sm;
    /* -- host mode (W->logs > 1): the node is a host, one loop and one
     * shared transport (lib/host/mux.c: a connection per peer host, each
     * log in a channel of its own) for `log`, its replica of the primary
     * log (the one every scenario drives and checks), and for bg[1 ..
     * W->logs - 1], replicas of other logs. A log that fails stop closes
     * and reopens alone; a crash or stop takes the whole host down. */
    uv_loop_t *hloop;        /* NULL while the host is down */
    struct rl_mux *mux;
    bool host_closing;       /* its logs closing, then the mux, then the loop */
    bool mux_closed;
    uint64_t host_inc;       /* bumps at every host start */
    int fault_scope;         /* the log an armed disk fault is confined to
                                (0: the primary), or -1: the whole disk */
    struct sim_bg bg[SIM_MAX_LOGS];
};
#define SIM_WALL_EPOCH 1780000000000000000ull /* ns: mid-2026 */

struct sim_net_faults {
    unsigned drop_pm, dup_pm;   /* per mille of frames */
    uint64_t delay_ns, jitter_ns;
    bool reorder;               /* frames of one connection may overtake */
};

struct sim_world {
    uint64_t seed;
    uint64_t rng;
    uint64_t now;               /* virtual nanoseconds */
    int n;
    int first_n;                /* the first configuration: nodes[0 .. first_n) */
    int boot_n;                 /* the peers list a node opens with: nodes[0 .. boot_n)
                                   (grows when a node was added) */
    struct sim_node nodes[SIM_MAX_NODES];
    bool link_cut[SIM_MAX_NODES][SIM_MAX_NODES]; /* from -> to */
    struct sim_net_faults net;
    char root[256];
    bool verbose;
    bool finishing;
    uint64_t trace_from;        /* log every frame from this virtual time on */             /* world_fini: no node starts again */
    unsigned long steps, frames, dropped, duplicated, truncations, resets;
    unsigned long inflight_drops; /* catch-ups that cut entries still being written */
    unsigned long delivered[SIM_MAX_NODES][SIM_MAX_NODES]; /* frames, from -> to */
    unsigned fatal_stops;
    int fatal_codes[16];        /* the first failed stops' codes */
    struct rlog_config base;    /* every node's config (id/address/dir set per node) */
    int logs;                   /* > 1: host mode (struct sim_node), logs per host */
    /* Host mode: told when a log fails stop (k: 0 the primary, else bg[k]);
     * the world then closes that log alone and reopens it later. */
    void (*on_fatal)(struct sim_node *n, int k, int code, const char *msg);
};

extern struct sim_world *W;

uint64_t sim_rand(void);
/* Uniform in [lo, hi]. */
uint64_t sim_range(uint64_t lo, uint64_t hi);
bool sim_chance(unsigned per_mille);

/* logs > 1: host mode, that many logs per node (world.h's sim_node). */
void world_init(struct sim_world *w, uint64_t seed, int n, int logs, bool verbose);
/* Closes every node (cleanly), frees everything, removes the data. */
void world_fini(void);

/* Events: fn(arg) at virtual time `at`, in (time, order of scheduling). */
void sim_at(uint64_t at, void (*fn)(void *arg), void *arg);
/* Advances the world until virtual time `until`, or until stop() is true
 * (checked between steps). Returns false if the world deadlocked (nothing
 * left to do) before that. */
bool world_run(uint64_t until, bool (*stop)(void));

int node_start(struct sim_node *n);     /* opens the node; 0 or an RLOG_E* */
/* Kills the node: power loss (tear_bytes of the newest write kept if > 0),
 * every connection cut, then its memory reclaimed through a close that can
 * no longer touch the disk. */
void node_crash(struct sim_node *n, long tear_bytes);
/* Closes the node the way a host would (rlog_close). */
void node_stop(struct sim_node *n);
bool node_up(const struct sim_node *n);
/* Starts n after delay_ns, once it has finished closing. */
void node_restart_after(struct sim_node *n, uint64_t delay_ns);
/* The network without faults: 50-150 us per frame, in order. */
void net_calm(void);
/* Acts for node n (its disk domain and clock) until node_leave. */
void node_enter(struct sim_node *n);
void node_leave(void);
/* Writes m, as a frame from `from`, into a live connection between the two
 * (a forgery: `from` itself never sent it). False if there is none. */
bool world_inject(struct sim_node *from, struct sim_node *to, struct rl_wire_out *out);
/* Severs every connection from or to n (links stay as they are). */
void net_sever(struct sim_node *n);

/* Queues op on n; done(op) runs later from the node's loop. */
int node_submit(struct sim_node *n, struct rl_op *op);
/* rlog_read's part on the host's thread (rl_read_here): 0 with the record
 * (*buf malloc'd), 1 if it would ask the loop, or an error. */
int node_read_here(struct sim_node *n, uint64_t offset, void **buf, size_t *len);
/* The leader id as n sees it (0 = none) and its visible prefix. */
uint64_t node_leader(const struct sim_node *n);
uint64_t node_visible(const struct sim_node *n);
bool node_is_leader(const struct sim_node *n);
/* Records before this offset are trimmed on n. */
uint64_t node_trimmed(const struct sim_node *n);
/* The first offset n can serve: its trim point, or later where its log
 * was reset past it (a wiped node caught up from a peer that had been
 * reset further itself). */
uint64_t node_first(const struct sim_node *n);

/* Host mode: whether the node's host is up (its loop and transport), and
 * whether bg[k]'s log is up there. */
bool host_up(const struct sim_node *n);
bool bg_up(const struct sim_node *n, int k);
/* Host mode: opens bg[k] on n's host if it is down there (0 or why not). */
int node_bg_start(struct sim_node *n, int k);
/* Host mode: arms f on n's disk, confined to log k's directory (0: the
 * primary's), or the whole disk with k < 0. */
void node_arm_fault(struct sim_node *n, int k, const struct rl_fs_faults *f);

/* Each node's state, to stderr (after a failure). */
void world_dump(void);
void sim_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
