/*
 * liblog — an embeddable, Raft-replicated, durable append-only log.
 *
 * This header is the whole public contract. Every public name starts with
 * rlog_ / RLOG_; nothing else is exported from liblog.so.
 *
 * Conventions (they hold for every function unless its comment says
 * otherwise):
 *  - Functions returning int return 0 on success or a negative RLOG_E* code.
 *  - Functions are thread-safe unless stated otherwise.
 *  - Strings returned by the library are static and must not be freed.
 */
#ifndef LIBLOG_H
#define LIBLOG_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) && __GNUC__ >= 4
#define RLOG_API __attribute__((visibility("default")))
#else
#define RLOG_API
#endif

/* ---- Version ------------------------------------------------------------
 * Compile-time version of the header; rlog_version() gives the version of
 * the library actually linked, which may differ under dynamic linking. */
#define RLOG_VERSION_MAJOR 0
#define RLOG_VERSION_MINOR 5
#define RLOG_VERSION_PATCH 0
#define RLOG_VERSION_STRING "0.5.0"
/* One comparable number: major * 10000 + minor * 100 + patch. */
#define RLOG_VERSION_NUMBER \
    (RLOG_VERSION_MAJOR * 10000 + RLOG_VERSION_MINOR * 100 + RLOG_VERSION_PATCH)

/* rlog_version - the linked library's version as RLOG_VERSION_NUMBER. */
RLOG_API int rlog_version(void);

/* rlog_version_string - the linked library's version as "MAJOR.MINOR.PATCH". */
RLOG_API const char *rlog_version_string(void);

/* ---- Errors -------------------------------------------------------------
 * Every failure is one of these codes, always negative. The table below is
 * the single source of the enum, rlog_errname() and rlog_strerror().
 * A detailed message naming the file, field or position accompanies each
 * error where the API offers one (a per-handle message buffer). */
#define RLOG_ERRNO_MAP(X)                                                      \
    X(INVAL, 1, "invalid argument")                                           \
    X(NOMEM, 2, "out of memory")                                              \
    X(IO, 3, "input/output error")                                            \
    X(NOSPC, 4, "no space left on device")                                    \
    X(CORRUPT, 5, "data corruption detected")                                 \
    X(VERSION, 6, "unsupported data format version")                          \
    X(FOREIGN, 7, "not a liblog data directory")                              \
    X(BUSY, 8, "data directory in use by another handle or process")          \
    X(FATAL, 9, "handle failed stop after a storage error")                   \
    X(NOTFOUND, 10, "no such entry")                                          \
    X(TRIMMED, 11, "offset was trimmed by retention")                         \
    X(TOOBIG, 12, "record or entry too large")                                \
    X(CANCELED, 13, "operation canceled")                                     \
    X(CLOSED, 14, "handle is closing or closed")                              \
    X(NOTLEADER, 15, "this node is not the leader")                           \
    X(TIMEOUT, 16, "operation timed out")                                     \
    X(PROTO, 17, "protocol error")                                            \
    X(IDENTITY, 18, "data directory belongs to another node or cluster")    \
    X(INDOUBT, 19, "append in doubt: may or may not be in the log")          \
    X(AGAIN, 20, "too many appends in flight on this handle; try again")    \
    X(CONFLICT, 21, "the log does not end at the expected offset")             \
    X(SEQUENCE, 22, "producer sequence number out of order or reused")       \
    X(EXISTS, 23, "a log of that name already exists")

enum rlog_errno {
#define RLOG__ERR_ENUM(name, num, msg) RLOG_E##name = -(num),
    RLOG_ERRNO_MAP(RLOG__ERR_ENUM)
#undef RLOG__ERR_ENUM
};

/* rlog_strerror - a short English description of an RLOG_E* code (or
 * "success" for 0, "unknown error" for anything else). Never NULL. */
RLOG_API const char *rlog_strerror(int err);

/* rlog_errname - the code's name, e.g. "RLOG_ECORRUPT" ("RLOG_OK" for 0,
 * "RLOG_EUNKNOWN" for anything else). Never NULL. */
RLOG_API const char *rlog_errname(int err);


/* ---- The log handle -------------------------------------------------------
 * One rlog is one node of a replicated log. Each node runs its own event-loop
 * thread; every function below is thread-safe, and callbacks run on that
 * loop thread (they must not block, and must not call the blocking forms).
 *
 * Records are opaque byte strings. Offsets are dense: 0, 1, 2, ... across the
 * whole log. A record is visible (to append callbacks, reads and iterators)
 * only once it is committed: durable on a quorum and safe from being
 * overwritten by a later leader. */
typedef struct rlog rlog;

/* A member of the initial cluster. */
struct rlog_peer {
    uint64_t id;         /* >= 1, unique in the cluster */
    const char *address; /* "host:port" (IPv4 or a hostname), where it listens */
};

#define RLOG_MAX_PEERS 16

struct rlog_config {
    uint64_t id;               /* this node's id; must be one of peers */
    const char *address;       /* this node's "host:port"; must match its peer entry */
    const char *data_dir;      /* created if missing; one node per directory */
    const struct rlog_peer *peers; /* the initial cluster, this node included
                                      (restarting a node that was down while
                                      members were added: list them too, so it
                                      can follow one of them as leader) */
    unsigned n_peers;          /* 1 .. RLOG_MAX_PEERS */
    int join;                  /* 1: a node being added to a running cluster
                                  (rlog_add_node on its leader); it does not
                                  bootstrap, and waits to be contacted */

    /* Tuning; rlog_config_init() sets the defaults given here. */
    uint64_t segment_size;       /* largest segment file; 64 MiB (a new
                                    log's first is ~1 MiB, each next one
                                    twice the last: disk use grows with
                                    the data) */
    uint32_t max_record_size;    /* largest record accepted; 512 KiB */
    uint32_t batch_max_bytes;    /* bytes of records per replicated entry; 1 MiB */
    uint32_t batch_max_records;  /* records per replicated entry; 8192 */
    uint64_t cache_bytes;        /* read cache of recent entries; 64 MiB */
    unsigned election_timeout_ms;  /* 1000 */
    unsigned heartbeat_timeout_ms; /* 100 */
    /* Raft entries between snapshot descriptors (128), and entries kept in
     * memory behind the latest one (256) to bring a lagging follower up to
     * date by plain replication; a follower further behind catches up by
     * fetching the missing range from a peer's segments. libraft holds at
     * most their sum of entries in memory (each <= batch_max_bytes). */
    unsigned snapshot_threshold;
    unsigned snapshot_trailing;

    /* Diagnostics: called on the loop thread with one line (no newline);
     * the state machine's lines come from its apply and persist threads
     * (liblog 0.4), so log_fn must be thread-safe with one. NULL logs warnings and errors to stderr. level: 0 debug .. 3 error. */
    void (*log_fn)(void *arg, int level, const char *line);
    void *log_arg;

    /* Failed stop: called once, on the loop thread, when the node stops
     * after a storage error (a failed write or fdatasync, a full disk). code
     * is the cause's own code (RLOG_EIO, RLOG_ENOSPC, ...), msg the cause as
     * rlog_status's fatal_msg and rlog_errmsg give it (valid during the call
     * only). The node then takes part in the cluster no more: appends are
     * refused with RLOG_EFATAL, records committed before the stop stay
     * readable, and only rlog_close and a new rlog_open (once the cause is
     * fixed) bring it back. A host that cannot repair the disk itself should
     * close the handle and exit non-zero, so that its supervisor restarts
     * it. Must not block or call the blocking liblog functions. NULL: no
     * call (the cause is logged either way). */
    void (*on_fatal)(void *arg, int code, const char *msg);
    void *on_fatal_arg;

    /* The cluster's name, recorded in a new data directory and required to
     * match at every later open (up to 63 printable ASCII characters, no
     * spaces). NULL or "": the directory records a name derived from
     * `peers` instead (rlog_open(3) gives the rules). */
    const char *cluster_name;

    /* Peer security (liblog(7), "Security model"). Mutual TLS 1.3 between
     * nodes: PEM files of the CA every peer's certificate must chain to, of
     * this node's certificate (whose subjectAltName URI rlog://CLUSTER/ID
     * names this node's id; CLUSTER must be cluster_name when that is set),
     * and of its unencrypted private key. All three or none (RLOG_EINVAL
     * naming the missing one); rlog_open reads them and fails with
     * RLOG_EINVAL naming a file it cannot read or a key that does not match.
     * Certificates are read at open only: rotate them by restarting the node
     * with new files. With none, rlog_open refuses (RLOG_EINVAL) unless
     * every peer address is loopback (127.0.0.0/8, ::1, localhost) or
     * `insecure` is 1: peers then talk in plain text and the id a peer
     * claims is taken on trust (the log says so at open; rlog_status shows
     * it). */
    const char *tls_ca_file;
    const char *tls_cert_file;
    const char *tls_key_file;
    int insecure;

    /* Bounds on what other hosts can make this node hold; 0 means the
     * default given here. Each one counts in rlog_status when it bites. */
    unsigned max_inbound_connections;     /* peer connections accepted at once; 64 */
    unsigned max_connections_per_address; /* ... from one IP address; 8 */
    unsigned handshake_timeout_ms;        /* to connect, TLS and hello; 5000 */
    unsigned frame_timeout_ms;            /* a frame started must end within; 30000 */
    /* An inbound peer connection with no frame for this long is closed
     * (the peer reconnects when it has something to send); 60000. */
    unsigned idle_timeout_ms;
    /* Bytes queued for one peer, on the socket or waiting for a connect;
     * beyond it sends fail and the connection is dropped; 64 MiB, and at
     * least the frame cap (batch_max_bytes + 4 MiB + 256 KiB: no frame from
     * a peer may be larger). */
    uint64_t max_send_queue_bytes;
    /* Bounds on what peers can make this node hold (hardening). A peer
     * catching up asks for ranges of this node's log; each answer holds the
     * entries read for it until it is sent. At most fetch_serve_max answers
     * (all peers together, one per peer; default 4) and fetch_serve_bytes
     * bytes of entries (default 16 MiB; at least batch_max_bytes + 4096) are
     * in flight at once; a request beyond them is dropped (counted in
     * rlog_status's fetch_serve_refused, logged once) and its sender asks
     * again. RequestVote and TimeoutNow messages held back while appends are
     * in flight: at most held_max (default 64); when full, the oldest is
     * dropped (counted in held_dropped): a candidate campaigns again at its
     * next election timeout. 0 in any of them means its default. */
    unsigned fetch_serve_max;
    uint64_t fetch_serve_bytes;
    unsigned held_max;

    /* Backpressure: appends accepted by this handle and not yet answered
     * (rlog_append_async calls and blocking calls alike), at most
     * max_appends_in_flight calls (default 16384) and
     * max_append_bytes_in_flight bytes of records (default 256 MiB; one call
     * larger than that alone is still taken). Beyond either,
     * rlog_append_async returns RLOG_EAGAIN (nothing appended; retry after
     * some callbacks have fired) and the blocking forms wait for room. 0:
     * the default. */
    unsigned max_appends_in_flight;
    uint64_t max_append_bytes_in_flight;

    /* Appends on a follower (liblog 0.3). forward_appends 1 (the default
     * rlog_config_init sets): rlog_append* on a follower sends the records
     * to the leader over the authenticated peer connection and completes
     * once they are committed and visible here, on the same callback
     * contract; 0: a follower refuses with RLOG_ENOTLEADER. A follower has
     * at most max_forward_bytes of records forwarded and unanswered, and a
     * leader takes at most that much from each follower (beyond it:
     * RLOG_EAGAIN, nothing appended); 0: 64 MiB. */
    int forward_appends;
    uint64_t max_forward_bytes;

    /* Idempotent producers (rlog_append_ex). Every node keeps the same
     * table, built from committed entries: for each of the max_producers
     * (default 4096) producers that appended most recently in log order,
     * its last producer_window (default 256) sequence numbers with their
     * offsets. A producer is forgotten once max_producers others have
     * appended after its last append; a sequence number once
     * producer_window later ones of its producer are committed. An append
     * with a producer that ends in doubt, or is refused because leadership
     * moved, is sent again by liblog (to the leader, wherever it is) for up
     * to producer_retry_ms (default 10000) before its callback gets the
     * error. 0 in any of them: the default. */
    unsigned max_producers;
    unsigned producer_window;
    unsigned producer_retry_ms;
    /* -- liblog 0.4: named consumer positions -- */
    /* rlog_cursor_*: at most max_cursors (0: 1024; at most 1048576)
     * names; committing a new name beyond it forgets the name whose last
     * commit is oldest in log order (the same on every node). */
    unsigned max_cursors;

    /* -- liblog 0.4: retention policies --
     * Applied by the leader (0: no limit). Every retention_check_ms
     * (0: 1000) it trims, on every replica as by rlog_trim, the records
     * before the latest of two points: bytes, the first record from which
     * the committed records hold at most retention_bytes bytes (record
     * bytes, not framing); age, the first record whose batch time (the
     * leader's wall clock when it formed the batch), or an earlier
     * record's, is within the last retention_ms milliseconds. Neither ever
     * trims the newest committed record. With a host state machine
     * (rlog_config.sm) the point never passes what a majority of the
     * voters' newest snapshots cover (each node reports its newest to the
     * leader; liblog 0.4.1: before, the leader's own), so losing one
     * node's disk leaves a snapshot to install from (none yet: nothing is
     * trimmed). A node whose state machine then
     * needs records before the first offset (down past a trim, wiped,
     * added later) installs a member's newest snapshot over the peer
     * transport (liblog 0.4.1; rlog_status.sm_needs_snapshot meanwhile). */
    uint64_t retention_bytes;
    uint64_t retention_ms;
    unsigned retention_check_ms;

    /* -- liblog 0.4: state machines --
     * A host state machine (struct rlog_sm below; NULL: none, the plain
     * log). The struct and what it points to must stay valid until
     * rlog_close returns. With one: records applied between automatic
     * snapshots (default 100000; UINT64_MAX: only rlog_sm_snapshot),
     * snapshots kept in <data_dir>/sm (default 2, at least 1), and apply
     * results kept for rlog_apply* callers (the most recent records';
     * default 65536). 0 in any of them: the default. */
    const struct rlog_sm *sm;
    uint64_t sm_snapshot_every;
    unsigned sm_snapshots_keep;
    unsigned sm_results;

    /* -- liblog 0.5: leaders spread over hosts --
     * balance_leaders 1: the log has a preferred leader, the same on every
     * member: one of its voters (in id order) picked by a stable hash of
     * cluster_name, so the logs of a set of hosts prefer each host about
     * equally. A leader that is not it hands the lead over (as
     * rlog_transfer_leadership) once the preferred voter is caught up and
     * answering, at a moment nothing is in flight (no append ends in doubt
     * for it), after leading for an election timeout, and at most once
     * every 10 election timeouts (twice that after a hand-over that did
     * not stick, and so on); a log busy without a pause keeps its leader.
     * Appends made during a hand-over wait for it, then go to the new
     * leader. Every member should set it alike, and name the log
     * (cluster_name): without a name every log prefers the same place
     * among its voters. 0 (the default): leaders stay where elections put
     * them. */
    int balance_leaders;
};

/* rlog_config_init - fills *cfg with defaults and zeroes the rest. */
RLOG_API void rlog_config_init(struct rlog_config *cfg);

/* rlog_open - validates cfg, opens (or creates) the data directory, starts
 * the node's loop thread and joins the cluster (a new cluster bootstraps with
 * cfg->peers). Returns 0 and *out, or an error with a message naming the
 * field or file in errbuf (if errbuf is not NULL). Errors: RLOG_EINVAL (bad
 * config: duplicate ids, own id missing, bad address, impossible sizes),
 * RLOG_EBUSY (directory locked by another process or handle), RLOG_EIDENTITY
 * (the directory belongs to another node id or cluster, or peers contradict
 * the membership stored in it; the message names both sides), RLOG_EFOREIGN,
 * RLOG_EVERSION, RLOG_ECORRUPT, RLOG_EIO, RLOG_ENOSPC, RLOG_ENOMEM. */
RLOG_API int rlog_open(const struct rlog_config *cfg, rlog **out, char *errbuf, size_t errlen);

/* rlog_close - stops the node gracefully: a leader first hands leadership to
 * a caught-up follower (bounded wait), pending appends fail with
 * RLOG_ECLOSED, and the thread stops. Frees the handle. Must not be called
 * from a callback. Returns 0, or, after a failed stop, the code of its
 * storage error (RLOG_EIO, RLOG_ENOSPC, ...) with rlog_errmsg naming it. */
RLOG_API int rlog_close(rlog *log);

/* -- liblog 0.4.2: many logs on shared loop threads --
 * A host is a small fixed set of loop threads that many logs share
 * (rlog_host_open(3)): rlog_open gives every log a thread of its own;
 * rlog_open_on puts it on the host's least loaded thread instead, so a
 * process holding hundreds of logs runs a few threads, not hundreds. A log
 * on a host is the same log in every other way (its own address,
 * directory, store and Raft group; rlog_close closes it). Its callbacks
 * run on the host thread it was given, shared with other logs: they must
 * not block, and the blocking liblog calls on any log of that thread fail
 * there with RLOG_EINVAL. */
typedef struct rlog_host rlog_host;

struct rlog_host_config {
    unsigned threads; /* loop threads, 1 .. 64; 1 */
    /* One read-cache budget for every log on the host (each log's own
     * cache_bytes still caps it alone): when the logs' caches together
     * pass cache_bytes, those holding the most above cache_floor_bytes
     * give up their oldest entries, so they hold at most cache_bytes +
     * logs x cache_floor_bytes in all. 256 MiB and 1 MiB; UINT64_MAX in
     * cache_bytes: no host budget. */
    uint64_t cache_bytes;
    uint64_t cache_floor_bytes;

    /* One listener and one connection per peer host for all its logs.
     * address NULL: each log listens on its own cfg.address (as with
     * rlog_open). Else the host listens on address ("host:port") and keeps
     * one connection to each peer host, which every log opened on it with
     * cfg.address NULL or equal to address shares: such a log's cfg.id
     * must be id, its cluster_name must be set (it names the log between
     * hosts), its TLS files unset (the host's apply), and its peers'
     * addresses are their hosts' addresses. A peer host must be a member
     * of a log's configuration before any of that log's messages from it
     * are taken. With address set: threads must be 1; TLS as for a log
     * (all three files or none; the certificates name hosts,
     * rlog://CLUSTER/ID with CLUSTER cluster_name when set), and without
     * TLS the address must be loopback or insecure 1; the bounds as
     * rlog_config's (0: 64, 8, 5000). */
    const char *address;
    uint64_t id;
    const char *cluster_name;
    const char *tls_ca_file;
    const char *tls_cert_file;
    const char *tls_key_file;
    int insecure;
    unsigned max_inbound_connections;
    unsigned max_connections_per_address;
    unsigned handshake_timeout_ms;
    /* The host's own diagnostics (its connections), as rlog_config's
     * log_fn: on its loop thread, one line; NULL logs warnings and errors
     * to stderr. */
    void (*log_fn)(void *arg, int level, const char *line);
    void *log_arg;

    /* The host's data directory (0.5): NULL, or a directory (created if
     * missing) that holds the host's logs, each in logs/NAME/, created,
     * opened and deleted by name at run time (rlog_create_on, rlog_open_on
     * with config.data_dir NULL, rlog_host_delete_log,
     * rlog_host_list_logs). The host locks it while open (another host on
     * it: RLOG_EBUSY) and records its id and cluster_name in its HOST file
     * on first use (a host of another id or cluster_name: RLOG_EIDENTITY;
     * a log's own data directory: RLOG_EFOREIGN). */
    const char *data_dir;
};

/* rlog_host_config_init - fills *cfg with defaults and zeroes the rest. */
RLOG_API void rlog_host_config_init(struct rlog_host_config *cfg);

/* rlog_host_open - starts the host's loop threads. Returns 0 and *out, or
 * RLOG_EINVAL (cfg or out NULL, threads out of range, a bad address or
 * cluster_name), RLOG_ENOMEM or RLOG_EIO (a thread or loop could not
 * start), and with a data_dir RLOG_EBUSY, RLOG_EIDENTITY, RLOG_EFOREIGN
 * (above) or RLOG_ENOSPC, with a message in errbuf. */
RLOG_API int rlog_host_open(const struct rlog_host_config *cfg, rlog_host **out, char *errbuf,
                            size_t errlen);

/* rlog_open_on - rlog_open, on the host's thread with the fewest logs.
 * With cfg->data_dir NULL, on a host with a data directory: opens the log
 * named cfg->cluster_name there (created by rlog_create_on; cfg->peers
 * then only tells where its members may be, any hosts that include them,
 * and it never starts a new Raft group). Errors: those of rlog_open,
 * RLOG_EINVAL for a NULL host, and RLOG_ENOTFOUND for a log the host's
 * data directory does not have (or whose create was cut short). */
RLOG_API int rlog_open_on(rlog_host *host, const struct rlog_config *cfg, rlog **out,
                          char *errbuf, size_t errlen);

/* rlog_create_on - creates the log named cfg->cluster_name in the host's
 * data directory (logs/NAME/) and opens it as rlog_open_on does: with
 * cfg->join 0 it starts the log's Raft group with cfg->peers as its members
 * (each host creates it with the same list), with join 1 it waits to be
 * added (rlog_add_node on the log's leader). cfg->data_dir must be NULL.
 * A name is 1 to 63 characters of A-Z a-z 0-9 . _ - not starting with a
 * dot. A create cut short by a crash is finished by calling rlog_create_on
 * again (rlog_open_on refuses such a log with RLOG_ENOTFOUND); a create
 * that fails leaves no directory behind (but for a create being finished,
 * whose store an earlier try may have started). At most 64 creates, opens
 * by name and deletes run at once on a host, one per name; beyond that,
 * RLOG_EBUSY. Errors: RLOG_EINVAL (no data
 * directory on the host, cfg->data_dir set, a bad name), RLOG_EEXISTS (a
 * log of that name is there), RLOG_EIO, and those of rlog_open_on. */
RLOG_API int rlog_create_on(rlog_host *host, const struct rlog_config *cfg, rlog **out,
                            char *errbuf, size_t errlen);

/* rlog_host_delete_log - deletes a closed log of the host's data
 * directory, with everything in it. Delete a replica only once it has left
 * the log's membership (rlog_remove_node on the leader), or the log on
 * every host: the others count on its copy. A deletion cut short by a crash
 * is finished by the next rlog_host_open. Errors: RLOG_EINVAL (no data
 * directory, a bad name), RLOG_ENOTFOUND (no such log), RLOG_EBUSY (the
 * log is open, in this process or another), RLOG_EIO. */
RLOG_API int rlog_host_delete_log(rlog_host *host, const char *name, char *errbuf,
                                  size_t errlen);

/* rlog_host_list_logs - calls fn(arg, name) for each log in the host's data
 * directory, open or not, in name order (strcmp); fn returning non-zero
 * stops the walk. A log whose create was cut short is listed too. Returns
 * 0, or RLOG_EINVAL (host or fn NULL, no data directory), RLOG_EIO or
 * RLOG_ENOMEM (the message says why). */
RLOG_API int rlog_host_list_logs(rlog_host *host, int (*fn)(void *arg, const char *name),
                                 void *arg);

/* rlog_host_close - stops the host's threads and frees it. RLOG_EBUSY
 * (nothing done) while a log opened on it is not yet closed; RLOG_EINVAL
 * from one of its threads (a callback) or for NULL. */
RLOG_API int rlog_host_close(rlog_host *host);

/* A record to append: the bytes are copied before rlog_append* returns. */
struct rlog_buf {
    const void *base;
    size_t len;
};

/* status: 0 or an error; first_offset: the offset of the first record. */
typedef void (*rlog_append_cb)(void *arg, int status, uint64_t first_offset);

/* rlog_append_async - appends n records (1..batch_max_records) as one
 * contiguous run of offsets. cb fires exactly once, on the loop thread, after
 * a quorum has the records durable and they are committed, unless this
 * returns an error (then it never fires). Errors now: RLOG_EINVAL,
 * RLOG_ETOOBIG (a record over max_record_size), RLOG_ENOTLEADER (errmsg names
 * the leader's id and address), RLOG_ECLOSED, RLOG_EFATAL (the node failed
 * stop; errmsg names the cause), RLOG_EAGAIN (max_appends_in_flight or
 * max_append_bytes_in_flight reached: the blocking forms wait for room
 * instead). Errors returned now mean nothing was
 * appended. Through cb, exactly one error means "may or may not be in the
 * log": RLOG_EINDOUBT (the records were proposed, then leadership was lost,
 * the handle closed or the node failed stop before the outcome was known
 * here; a later leader may still commit them). Every other error through cb
 * means nothing of them was appended: RLOG_ENOTLEADER (leadership was lost
 * before they were proposed, or a new leader replaced the entry holding
 * them), RLOG_ECLOSED, RLOG_EFATAL, RLOG_ENOMEM. Inside cb, rlog_errmsg
 * gives the detail of a failure. (liblog 0.1 reported the in-doubt case as
 * RLOG_ENOTLEADER, RLOG_ECLOSED or RLOG_EFATAL.) */
RLOG_API int rlog_append_async(rlog *log, const struct rlog_buf *recs, unsigned n,
                               rlog_append_cb cb, void *arg);

/* rlog_append - blocking form: appends one record, waits for its commit, and
 * stores its offset in *offset (may be NULL). Errors as rlog_append_async. */
RLOG_API int rlog_append(rlog *log, const void *rec, size_t len, uint64_t *offset);

/* rlog_append_batch - blocking form of rlog_append_async. */
RLOG_API int rlog_append_batch(rlog *log, const struct rlog_buf *recs, unsigned n,
                               uint64_t *first_offset);

/* Options of rlog_append_ex*: rlog_append_opts_init sets "none" (producer
 * 0, expect_offset RLOG_ANY_OFFSET). */
#define RLOG_ANY_OFFSET UINT64_MAX
struct rlog_append_opts {
    /* Idempotence: a producer id (>= 1; 0: none) chosen by the host, unique
     * among the log's writers, and this call's sequence number for it. A
     * producer's sequence numbers start anywhere >= 1 and go up by one per
     * call, in call order (calls of one producer must not race). The log
     * takes each (producer, sequence) at most once: a call whose sequence
     * is already committed completes with the original first offset (the
     * records must be the same: else RLOG_ESEQUENCE, nothing appended); one
     * whose sequence is still being committed waits for it. A sequence
     * number that skips ahead of the next one the log expects is refused
     * with RLOG_ESEQUENCE (liblog retries it while an earlier one is being
     * retried). */
    uint64_t producer_id;
    uint64_t sequence;
    /* Conditional append: RLOG_ANY_OFFSET, or the offset the first record
     * must get. If the log does not end there when the leader orders the
     * call, nothing is appended and the call fails with RLOG_ECONFLICT, its
     * offset argument (the callback's first_offset, or *first_offset) the
     * offset the log's next record would have had then. Of several calls
     * expecting the same offset, at most one succeeds. */
    uint64_t expect_offset;
};

/* rlog_append_opts_init - no producer, no expected offset. */
RLOG_API void rlog_append_opts_init(struct rlog_append_opts *o);

/* rlog_append_ex_async - rlog_append_async with options (opts may be NULL:
 * none). Errors as rlog_append_async, plus RLOG_ECONFLICT and
 * RLOG_ESEQUENCE (through cb; both mean nothing was appended by this call).
 * With a producer, liblog itself sends the call again when it ends in doubt
 * or is refused for a leadership change (for up to producer_retry_ms), so
 * RLOG_EINDOUBT reaches cb only after that. */
RLOG_API int rlog_append_ex_async(rlog *log, const struct rlog_append_opts *opts,
                                  const struct rlog_buf *recs, unsigned n, rlog_append_cb cb,
                                  void *arg);

/* rlog_append_ex - blocking form of rlog_append_ex_async: waits for the
 * outcome; *first_offset (may be NULL) gets the first record's offset, or
 * with RLOG_ECONFLICT the offset the log's next record would have had. */
RLOG_API int rlog_append_ex(rlog *log, const struct rlog_append_opts *opts,
                            const struct rlog_buf *recs, unsigned n, uint64_t *first_offset);

/* rlog_barrier - a linearizable read point, on any node: stores in *offset
 * (may be NULL) an offset such that every record whose append completed (on
 * any node) before this call has an offset below it, and returns once this
 * node has every record before it committed, so rlog_read and iterators
 * below it see them all. Mechanism: the leader commits an empty barrier
 * entry of its current term (a follower asks the leader over the peer
 * connection); see liblog(7). Errors: RLOG_ENOTLEADER (no leader known or
 * reachable: try again), RLOG_ETIMEOUT, RLOG_ECLOSED, RLOG_EFATAL. */
RLOG_API int rlog_barrier(rlog *log, uint64_t *offset);

/* rlog_read - copies the committed record at `offset` into a new buffer
 * (*buf, free with rlog_free) of *len bytes. Works on any node, and on a node
 * that failed stop for every record committed before the stop. Errors:
 * RLOG_ENOTFOUND (not committed yet, or beyond the end), RLOG_ETRIMMED,
 * RLOG_ECORRUPT (reported, never returned as data), RLOG_EIO, RLOG_EFATAL
 * (failed stop, and `offset` is past what was committed before it).
 * Thread-safe; served on the calling thread (read cache, else the segment
 * files), the loop thread only saying why a read fails. */
RLOG_API int rlog_read(rlog *log, uint64_t offset, void **buf, size_t *len);

/* rlog_free - frees a buffer returned by rlog_read or rlog_metrics_text. */
RLOG_API void rlog_free(void *buf);

/* An iterator over committed records [from, to). Not thread-safe itself;
 * use one iterator per thread. */
typedef struct rlog_iter rlog_iter;

/* rlog_iter_open - iterates from `from` up to `to` (exclusive; UINT64_MAX
 * for "the committed end at each step"). Errors: RLOG_EINVAL, RLOG_ENOMEM;
 * a trimmed `from` shows as RLOG_ETRIMMED from the first rlog_iter_next. */
RLOG_API int rlog_iter_open(rlog *log, uint64_t from, uint64_t to, rlog_iter **out);

/* rlog_iter_next - the next record: *rec points into the iterator's memory,
 * valid until the next call or close. Returns 0, RLOG_ENOTFOUND at the end
 * (nothing more committed yet, or `to` reached), or an error; on a node that
 * failed stop, RLOG_EFATAL once past the records committed before the stop. */
RLOG_API int rlog_iter_next(rlog_iter *it, const void **rec, size_t *len, uint64_t *offset);

/* rlog_iter_wait - blocks until the iterator's next record is committed
 * (then rlog_iter_next returns it), for at most timeout_ms (< 0: no limit).
 * Returns 0, RLOG_ETIMEOUT, RLOG_ECLOSED (the log is closing), RLOG_EFATAL
 * (the node failed stop: nothing more will commit here), or RLOG_ENOTFOUND
 * if the iterator reached its `to`. Must not be called
 * from a liblog callback (RLOG_EINVAL). */
RLOG_API int rlog_iter_wait(rlog_iter *it, int timeout_ms);

/* rlog_iter_close - frees the iterator. */
RLOG_API void rlog_iter_close(rlog_iter *it);

/* ---- Subscriptions ---------------------------------------------------------
 * A subscription delivers committed records in order, each exactly once,
 * from any offset: the history first, then live records as they commit, with
 * no gap and no duplicate between the two. Each subscription runs on its own
 * thread, so a slow subscriber holds up nobody but itself. */
typedef struct rlog_sub rlog_sub;

/* Called on the subscription's thread: with status 0 for each record, in
 * order; or once, last, with the error that ended the subscription
 * (RLOG_ETRIMMED, RLOG_ECLOSED, RLOG_EFATAL, RLOG_ECORRUPT...; rec NULL).
 * The record's bytes are valid during the call only. */
typedef void (*rlog_sub_cb)(void *arg, int status, uint64_t offset, const void *rec,
                            size_t len);

/* rlog_subscribe - starts delivering records from offset `from`. *out is
 * set before the first callback, so cb may use it (rlog_unsubscribe from
 * inside cb ends the subscription). Errors: RLOG_EINVAL, RLOG_ENOMEM,
 * RLOG_ECLOSED. */
RLOG_API int rlog_subscribe(rlog *log, uint64_t from, rlog_sub_cb cb, void *arg, rlog_sub **out);

/* rlog_sub_pause / rlog_sub_resume - stop and restart delivery (the
 * subscriber's pace control). A paused subscription holds no resources on
 * the node and resumes where it stopped. */
RLOG_API void rlog_sub_pause(rlog_sub *sub);
RLOG_API void rlog_sub_resume(rlog_sub *sub);

/* rlog_unsubscribe - stops the subscription and frees it. When it returns,
 * the callback is not running and will not run again; called from the
 * callback itself, it takes effect when the callback returns. rlog_close
 * ends (and frees) subscriptions still open: do not use them afterwards. */
RLOG_API void rlog_unsubscribe(rlog_sub *sub);

enum rlog_role { RLOG_ROLE_UNAVAILABLE, RLOG_ROLE_FOLLOWER, RLOG_ROLE_CANDIDATE, RLOG_ROLE_LEADER };

struct rlog_peer_status {
    uint64_t id;
    char address[64];
    int voter;              /* 1 if it votes */
    uint64_t match_index;   /* leader only: last raft index known stored on that peer */
};

struct rlog_status {
    uint64_t id;
    int role;               /* enum rlog_role */
    uint64_t term;
    uint64_t leader_id;     /* 0 if unknown */
    char leader_address[64];
    uint64_t first_offset;  /* first readable record */
    uint64_t commit_offset; /* records [first_offset, commit_offset) are committed */
    uint64_t last_offset;   /* offset after the last record stored here */
    uint64_t last_index, commit_index; /* raft log positions */
    unsigned n_peers;
    struct rlog_peer_status peers[RLOG_MAX_PEERS];
    int fatal;              /* nonzero: failed stop with this code (RLOG_EIO,
                               RLOG_ENOSPC, ...); fatal_msg says why. Then role
                               is RLOG_ROLE_UNAVAILABLE, leader_id 0, n_peers
                               0, and term and the offsets are as at the stop */
    /* While catching up by fetching segments from a peer: the next raft
     * index wanted and the index to reach (both 0 otherwise). */
    uint64_t catchup_index, catchup_target;
    /* Read cache: bytes held, and reads served from it or from the segment
     * files since open. */
    uint64_t cache_bytes, cache_hits, cache_misses;
    /* After a failed stop: its cause, naming the file and the system error
     * (the message rlog_errmsg gives for RLOG_EFATAL); "" otherwise. */
    char fatal_msg[256];
    /* Peer security: tls 1 when peers authenticate with mutual TLS;
     * insecure 1 when they talk in plain text (every peer on loopback, or
     * config.insecure), claimed ids taken on trust. */
    int tls, insecure;
    /* Since open: peer connections refused over the caps, handshakes
     * refused (bad hello, certificate refused, TLS failure), connections
     * closed for a timeout (handshake, partial frame, idle), and sends
     * refused because a peer's queue was full. */
    uint64_t refused_connections, rejected_handshakes, timed_out_connections;
    uint64_t send_queue_overflows;
    /* Bounds on what peers can make this node hold (hardening): fetch
     * requests not served because fetch_serve_max or fetch_serve_bytes was
     * reached (or one was already being answered for the same peer), and
     * held RequestVote/TimeoutNow messages dropped at held_max, since open. */
    uint64_t fetch_serve_refused;
    uint64_t held_dropped;
    /* -- Repair of damaged entries (one block; since open) --
     * A committed entry whose copy here fails its checksum is unreadable
     * (reads of its records fail with RLOG_ECORRUPT, it is never sent to a
     * peer) until it is fetched from a peer whose copy verifies and
     * written back. damaged_ranges: ranges found damaged; repaired_ranges /
     * repaired_entries: written back from a peer; unreadable_entries:
     * damaged now, still awaiting repair (0 when the log is whole). */
    uint64_t damaged_ranges, repaired_ranges, repaired_entries, unreadable_entries;
    /* -- Forwarding (liblog 0.3; since open) --
     * forwarded_appends: appends this node sent to the leader (as a
     * follower); forwards_served: appends members forwarded that this node
     * took as leader; forward_refused: of those, refused because the
     * member's max_forward_bytes was reached (RLOG_EAGAIN). */
    uint64_t forwarded_appends, forwards_served, forward_refused;
    /* -- liblog 0.4: retention policies --
     * Records trimmed by the policies since open, by the trims this node
     * proposed as leader. */
    uint64_t retention_trims;
    /* -- liblog 0.4: state machines (0 without one) --
     * applied_offset: records [.., applied_offset) are applied here;
     * snapshot_offset: the newest snapshot here covers records before it
     * (0: none); snapshots_taken / snapshots_installed (from a peer) /
     * snapshot_failures (persist or restore failed, a file that did not
     * verify, a peer's copy refused), since open. sm_needs_snapshot 1: the
     * state machine needs records before the log's first offset here and
     * no snapshot here covers them, so nothing more is applied until one is
     * installed: the node is fetching a member's newest snapshot (liblog
     * 0.4.1: in pieces of at most 1 MiB over the peer connection, written
     * to <data_dir>/sm/install.part, verified whole, then restored; a
     * member that cannot give one is left for the next, retried while
     * needed; the log says each step). */
    uint64_t applied_offset, snapshot_offset;
    uint64_t snapshots_taken, snapshots_installed, snapshot_failures;
    int sm_needs_snapshot;
};

/* ---- Membership (on the leader; elsewhere RLOG_ENOTLEADER) ---------------
 * Blocking; one change at a time (RLOG_EBUSY while another is under way). */

/* rlog_add_node - adds node `id` at `address` (opened with join = 1): it
 * catches up as a non-voter (by segment fetch if it is far behind), then is
 * promoted to voter; returns once a configuration with it as a voter is
 * committed. Adding a node that an interrupted add left a non-voter resumes
 * its promotion. Errors: RLOG_EINVAL (bad id or address, id already a voter
 * or a member at another address), RLOG_ENOTLEADER (also: leadership lost
 * during the change; add again on the new leader), RLOG_EBUSY, RLOG_ECLOSED,
 * RLOG_EIO (also: its catch-up ended before the promotion; add again). */
RLOG_API int rlog_add_node(rlog *log, uint64_t id, const char *address);

/* rlog_remove_node - removes node `id` from the cluster. Errors:
 * RLOG_EINVAL (not a member), RLOG_ENOTLEADER, RLOG_EBUSY, RLOG_ECLOSED,
 * RLOG_EIO. */
RLOG_API int rlog_remove_node(rlog *log, uint64_t id);

/* rlog_transfer_leadership - hands leadership to voter `id` (0: the most
 * up-to-date one) and returns once it is done or has failed; appends made
 * meanwhile wait for it (liblog 0.5), then go to the new leader. Errors:
 * RLOG_EINVAL, RLOG_ENOTLEADER, RLOG_EBUSY, RLOG_ETIMEOUT, RLOG_ECLOSED. */
RLOG_API int rlog_transfer_leadership(rlog *log, uint64_t id);

/* ---- Retention ------------------------------------------------------------ */

/* rlog_trim - drops every record before `before_offset`, on every replica
 * (on the leader; elsewhere RLOG_ENOTLEADER). The command is replicated like
 * an append, so each replica applies it at the same log position; reads and
 * iterators of offsets before it then get RLOG_ETRIMMED everywhere, and
 * offsets of later records do not change. Blocking: returns once the command
 * is committed and applied here. Retention only moves forward: a point at or
 * before the current one succeeds and does nothing. Disk space is freed a
 * segment at a time, once libraft's snapshot has moved past it. Errors:
 * RLOG_EINVAL (beyond the committed end; errmsg says where it is),
 * RLOG_ENOTLEADER (errmsg names the leader; nothing was proposed),
 * RLOG_EINDOUBT (leadership was lost, the handle closed or the node failed
 * stop while the command was being committed: it may or may not be applied),
 * RLOG_ECLOSED, RLOG_EFATAL, RLOG_ENOMEM. */
RLOG_API int rlog_trim(rlog *log, uint64_t before_offset);

/* ---- Named consumer positions (liblog 0.4) ---------------------------------
 * A cursor is a name (1..64 printable ASCII bytes, no spaces) with an
 * offset, kept by every replica: committing one is a command in the log (it
 * takes no offset), so every node reads the same value once it has shown
 * the command, and it survives restarts and trims. */

/* rlog_cursor_commit - sets cursor `name` to `offset` (<= the committed
 * end), on any node (a follower forwards it to the leader). Blocking:
 * returns once the command is committed and shown on this node. Errors:
 * RLOG_EINVAL (bad name, offset beyond the committed end, NULL log, called
 * on the loop thread), RLOG_ENOTLEADER (no leader known or reachable;
 * nothing committed), RLOG_EINDOUBT (sent, then the leader changed: it may
 * or may not be committed; commit again), RLOG_EAGAIN (the leader was
 * elected so recently that, after about 2 s of retries, it still did not
 * show the whole committed log; nothing committed), RLOG_ECLOSED,
 * RLOG_EFATAL, RLOG_ENOMEM. */
RLOG_API int rlog_cursor_commit(rlog *log, const char *name, uint64_t offset);

/* rlog_cursor_get - the cursor's offset as this node knows it (every
 * command committed and shown here). Errors: RLOG_EINVAL (bad name, NULL
 * argument), RLOG_ENOTFOUND (no such cursor: never committed, or
 * forgotten beyond max_cursors), RLOG_ETRIMMED (this node caught up past a
 * trim, or lost entries it had not applied, so it cannot know a cursor not
 * committed since: ask another node, or commit it again), RLOG_ECLOSED. */
RLOG_API int rlog_cursor_get(rlog *log, const char *name, uint64_t *offset);

/* rlog_subscribe_cursor - rlog_subscribe from the cursor's offset, or from
 * `from` if no such cursor exists yet (RLOG_ENOTFOUND). The subscription
 * does not move the cursor: the host commits it as it processes records.
 * Errors: those of rlog_cursor_get other than RLOG_ENOTFOUND, and of
 * rlog_subscribe. */
RLOG_API int rlog_subscribe_cursor(rlog *log, const char *name, uint64_t from, rlog_sub_cb cb,
                                   void *arg, rlog_sub **out);
/* rlog_offset_for_time - the offset of the first committed record whose
 * batch time (the leader's wall clock when it formed the record's batch,
 * microseconds since the Unix epoch), or that of any record before it
 * still in the log, is at or after unix_us: the answer moves forward with
 * time even where a new leader's clock is behind the last one's. A time
 * before the first record's gives the log's first offset. Works on any
 * node, over what is committed there. Served from a sparse index (one
 * block per 32 batches, 32 bytes each): a binary search plus at most one
 * block's entries read; the first call after rlog_open reads the log once
 * from its start up to the answer to rebuild it. Errors: RLOG_ENOTFOUND
 * (no committed record that late: *offset gets the commit offset),
 * RLOG_EINVAL (NULL argument), RLOG_ECLOSED, RLOG_EIO, RLOG_ECORRUPT. */
RLOG_API int rlog_offset_for_time(rlog *log, uint64_t unix_us, uint64_t *offset);
/* ---- Host state machines (liblog 0.4) ---------------------------------------
 * A host that keeps state derived from the log (a key-value store, a
 * projection) registers a state machine in rlog_config.sm. liblog then
 * applies every committed record to it exactly once, in offset order, on
 * one thread of its own (the apply thread), also across restarts; takes
 * snapshots of it into <data_dir>/sm (checksummed per chunk, written to a
 * temporary file, fdatasync'd and renamed; the newest sm_snapshots_keep
 * kept); and at rlog_open restores the newest snapshot that verifies and
 * that restore accepts (else the next older one; else the empty state from
 * offset 0) and applies the records after it. rlog_apply(3),
 * rlog_sm_snapshot(3). */

/* A snapshot being written, and one being read. */
typedef struct rlog_sm_writer rlog_sm_writer;
typedef struct rlog_sm_reader rlog_sm_reader;

/* rlog_sm_write - appends len bytes to the snapshot being persisted (from
 * persist only). Errors: RLOG_EINVAL, RLOG_EIO, RLOG_ENOSPC (the snapshot
 * is then abandoned: persist should return the error). */
RLOG_API int rlog_sm_write(rlog_sm_writer *w, const void *buf, size_t len);

/* rlog_sm_read - reads up to cap bytes of the snapshot being restored
 * (from restore only) into buf; *got is 0 at its end. The bytes were
 * verified against the snapshot's checksums before restore was called, and
 * each chunk is verified again as it is read. Errors: RLOG_EINVAL,
 * RLOG_EIO, RLOG_ECORRUPT (the file changed since it was verified). */
RLOG_API int rlog_sm_read(rlog_sm_reader *r, void *buf, size_t cap, size_t *got);

struct rlog_sm {
    /* Applies the committed record at `offset` (apply thread, in offset
     * order, each record once). The value returned reaches the rlog_apply*
     * caller of this node that appended the record (if any). Must be
     * deterministic: every node applies the same records. */
    int64_t (*apply)(void *arg, uint64_t offset, const void *rec, size_t len);
    /* Captures the state as of the records before next_offset (apply
     * thread, between two applies: apply waits while it runs, so keep it
     * short, e.g. a copy-on-write reference or a copy). Returns a handle
     * for persist, or NULL to skip this snapshot. */
    void *(*snapshot)(void *arg, uint64_t next_offset);
    /* Writes a captured state with rlog_sm_write (a thread of its own,
     * while apply goes on). 0, or nonzero to abandon the snapshot. */
    int (*persist)(void *arg, void *snap, rlog_sm_writer *w);
    /* Frees a captured state, after persist (NULL: nothing to free). */
    void (*release)(void *arg, void *snap);
    /* Replaces the whole state with a snapshot's (apply thread, before any
     * later apply): the state as of the records before next_offset. 0, or
     * nonzero to refuse it (liblog then tries an older snapshot; after a
     * refusal, the empty state is given as restore(arg, 0, r) with r at
     * its end at once). */
    int (*restore)(void *arg, uint64_t next_offset, rlog_sm_reader *r);
    void *arg;
};

/* Called once the records are applied on this node (on the apply thread,
 * or on the loop thread when they were applied before the append's commit
 * was known here; must not block): status 0 with their first offset and
 * the n values apply returned for them (valid during the call), or an
 * error as for rlog_append_async's callback (results NULL). */
typedef void (*rlog_apply_cb)(void *arg, int status, uint64_t first_offset,
                              const int64_t *results, unsigned n);

/* rlog_apply_async - rlog_append_ex_async (opts may be NULL) that completes
 * only once this node has applied the records, with what apply returned
 * for each (hashicorp/raft's ApplyFuture.Response): a command that fails
 * at apply time tells its caller. Errors as rlog_append_ex_async, and
 * RLOG_EINVAL without a state machine. Through cb, besides the append's
 * errors: RLOG_ENOTFOUND with the offset if the results were dropped
 * before the caller could take them (more than sm_results records applied
 * in between: the records are in the log and applied); RLOG_ECLOSED or
 * RLOG_ETRIMMED with the offset if the records are committed but this node
 * stopped applying before them (closing; sm_needs_snapshot). */
RLOG_API int rlog_apply_async(rlog *log, const struct rlog_append_opts *opts,
                              const struct rlog_buf *recs, unsigned n, rlog_apply_cb cb,
                              void *arg);

/* rlog_apply - blocking form for one record: *offset and *result (each may
 * be NULL) get its offset and apply's value. Errors as rlog_apply_async,
 * and RLOG_EINVAL from a liblog callback or the apply thread. */
RLOG_API int rlog_apply(rlog *log, const void *rec, size_t len, uint64_t *offset,
                        int64_t *result);

/* rlog_sm_wait - waits until every record before `offset` is applied on this
 * node, for at most timeout_ms (< 0: no limit). With rlog_barrier first, a
 * read of the host's state after it is linearizable. While the node
 * installs a peer's snapshot (status sm_needs_snapshot) it waits on.
 * Errors: RLOG_EINVAL (no state machine, or called on the apply thread or
 * the loop thread), RLOG_ETIMEOUT, RLOG_ECLOSED, RLOG_EFATAL, RLOG_ETRIMMED
 * (at the deadline, or at close: the state machine still needs records
 * before the log's first offset and no snapshot here covers them). */
RLOG_API int rlog_sm_wait(rlog *log, uint64_t offset, int timeout_ms);

/* rlog_sm_snapshot - takes a snapshot now and waits until it is durable;
 * *next_offset (may be NULL) gets the offset it covers up to. Errors:
 * RLOG_EINVAL (no state machine, or called on the apply thread or the loop
 * thread), RLOG_EIO, RLOG_ENOSPC, RLOG_ECANCELED (snapshot returned NULL,
 * or persist failed), RLOG_ECLOSED, RLOG_ETRIMMED (as for rlog_sm_wait). */
RLOG_API int rlog_sm_snapshot(rlog *log, uint64_t *next_offset);

/* rlog_status - a snapshot of the node's state. */
RLOG_API int rlog_status(rlog *log, struct rlog_status *st);

/* ---- Metrics ---------------------------------------------------------------
 * Counters, gauges and histograms for monitoring (Prometheus and the like),
 * cheap enough to leave on: the append path only adds to counters the
 * loop thread owns, or to relaxed atomics; no lock is taken for them.
 * Counters count since rlog_open. */

/* A histogram of observations in fixed log2 buckets. buckets[i] counts the
 * observations v with rlog_histogram_bound(i - 1) < v <= rlog_histogram_bound(i)
 * (bucket 0: v <= 1); the last bucket counts every observation above the
 * bound before it. Counts are per bucket, not cumulative. count is their
 * total, sum the sum of the observations. The unit (microseconds, records,
 * entries) is named with each histogram. */
#define RLOG_HISTOGRAM_BUCKETS 32
struct rlog_histogram {
    uint64_t count;
    uint64_t sum;
    uint64_t buckets[RLOG_HISTOGRAM_BUCKETS];
};

/* rlog_histogram_bound - the upper bound of bucket i: 2^i for i <
 * RLOG_HISTOGRAM_BUCKETS - 1, UINT64_MAX for the last bucket and beyond. */
RLOG_API uint64_t rlog_histogram_bound(unsigned i);

/* What this node knows of one member (besides this node itself). */
struct rlog_peer_metrics {
    uint64_t id;
    uint64_t sent_bytes;     /* frames written to it, since open */
    uint64_t received_bytes; /* bytes read from its connections, since open */
    /* On the leader: raft entries the member lacks (this node's last index
     * minus the member's match index); 0 elsewhere. */
    uint64_t lag_entries;
    int connected;           /* 1 while this node's connection to it is up */
};

struct rlog_metrics {
    /* The node's state and its counters, as rlog_status gives them (role,
     * term, offsets, cache hits, catch-up and repair progress, refused
     * connections, bounds hit, forwarding...). */
    struct rlog_status status;
    /* Appends called on this node (rlog_append*) that completed with
     * status 0: their records and record bytes, and the latency from the
     * call to its completion, in microseconds. */
    uint64_t appended_records, appended_bytes;
    struct rlog_histogram append_commit_us;
    /* Raft entries this node proposed as leader: records per entry. */
    struct rlog_histogram entry_records;
    /* The store: fdatasyncs of segment data (latency in microseconds),
     * coalesced writes (entries per write), bytes written to segments. */
    struct rlog_histogram sync_us;
    struct rlog_histogram write_entries;
    uint64_t written_bytes;
    /* Elections this node started (as candidate, one per term), and times
     * the leader it knows changed to another node (the first one known
     * counts). */
    uint64_t elections, leader_changes;
    /* One per member of the configuration other than this node (none after
     * a failed stop). */
    unsigned n_peers;
    struct rlog_peer_metrics peers[RLOG_MAX_PEERS];
};

/* rlog_metrics - fills *m. Works on a node that failed stop (counters as
 * they stood; status.role RLOG_ROLE_UNAVAILABLE). Errors: RLOG_EINVAL,
 * RLOG_ECLOSED. */
RLOG_API int rlog_metrics(rlog *log, struct rlog_metrics *m);

/* rlog_metrics_text - the metrics in the Prometheus text exposition format
 * (version 0.0.4) in a new NUL-terminated buffer (*text, free with
 * rlog_free) of *len bytes (the NUL not counted). Families are named rlog_*
 * with their unit (_seconds, _bytes, _total for counters); every sample has
 * the label node="ID", per-member ones also peer="ID"; rlog_metrics(3)
 * lists them. Errors as rlog_metrics, and RLOG_ENOMEM. */
RLOG_API int rlog_metrics_text(rlog *log, char **text, size_t *len);

/* rlog_metrics_text_many - one exposition for n logs (a host's, say; liblog
 * 0.5): each family once, with the samples of every log in the order given
 * (a log with a cluster_name has the label log="NAME" too, which keeps
 * the logs of one node apart). Logs that are closing (RLOG_ECLOSED) are
 * left out; none may be closed before the call returns. Errors:
 * RLOG_EINVAL (logs NULL with n > 0, text or len NULL), RLOG_ENOMEM, and
 * those of rlog_metrics_text but RLOG_ECLOSED. */
RLOG_API int rlog_metrics_text_many(rlog *const *logs, unsigned n, char **text, size_t *len);

/* rlog_errmsg - the detailed message of the last failed call made by this
 * thread, on any handle (log may be NULL); success does not clear it, so
 * read it only right after a call failed. Valid until the next failing call
 * on this thread. Every RLOG_EFATAL comes with its cause. */
RLOG_API const char *rlog_errmsg(rlog *log);

/* rlog_role_name - "leader", "follower", "candidate" or "unavailable". */
RLOG_API const char *rlog_role_name(int role);

/* rlog_partition - the partition (0 .. partitions - 1) a key belongs to,
 * for a host that spreads its data over many logs by key (liblog 0.4.3):
 * XXH64 of the key's bytes (seed 0), then Lamping and Veach's jump
 * consistent hash. The same key gives the same partition on every
 * machine and in every version; going from n to n + 1 partitions moves
 * only the keys that land in the new one (about 1 / (n + 1) of them).
 * Returns 0 and *out, or RLOG_EINVAL (out NULL, partitions 0 or above
 * 2^31, key NULL with len > 0). */
RLOG_API int rlog_partition(const void *key, size_t len, unsigned partitions, unsigned *out);

#ifdef __cplusplus
}
#endif
#endif /* LIBLOG_H */
