/*
 * rlogctl — an example host program for liblog, and a template for a service
 * built on it.
 *
 *   rlogctl node   --id N --data DIR --cluster 1=HOST:PORT,2=...  [--address HOST:PORT]
 *                  [--cluster-name NAME] [--control PATH] [--join] [--failstop-linger MS] [-v]
 *                  [--peer-trusted-ca-file F --peer-cert-file F --peer-key-file F | --insecure]
 *   rlogctl append --control PATH [--json] [--producer ID [--sequence N]]
 *                  [--expect-offset N] [RECORD...]         (stdin lines when no RECORD)
 *   rlogctl read   --control PATH [--json] OFFSET | FROM-TO | FROM-
 *   rlogctl tail   --control PATH [--json] [--from OFFSET | --from-end] [--count N]
 *   rlogctl status --control PATH [--json]
 *   rlogctl add-node    --control PATH ID HOST:PORT        (on the leader)
 *   rlogctl remove-node --control PATH ID
 *   rlogctl transfer    --control PATH [ID]
 *   rlogctl trim        --control PATH OFFSET              (on the leader)
 *   rlogctl barrier     --control PATH                     (any node)
 *   rlogctl metrics     --control PATH                     (Prometheus text)
 *   rlogctl node --many-logs --cluster-name HOSTS ...      (a host of many logs)
 *   rlogctl create-log  --control PATH | --cluster-controls P1,... [--members IDS | --join] NAME
 *   rlogctl delete-log  --control PATH | --cluster-controls P1,... NAME
 *   rlogctl list-logs   --control PATH
 *   (each command about one log takes --log NAME for a --many-logs node)
 *
 * `node` opens one node of the replicated log (rlog_open) and serves a small
 * local control protocol on a Unix domain socket; the other commands are
 * clients of that socket. The node is where all the liblog calls are; the
 * clients only speak the control protocol.
 *
 * Control protocol (local Unix stream socket; both directions use frames):
 *   frame   = u32 length (big-endian, 1 .. CTL_MAX_FRAME) + that many bytes
 *   A connection carries any number of requests, answered in order. Each
 *   request is one frame; its answer is zero or more data frames followed by
 *   exactly one 'E' frame. Integers below are big-endian; str = u32 len + bytes.
 *   requests:
 *     'S'                                  status  -> 'S' frame, 'E'
 *     'A' u32 n, n x (u32 len, bytes)      append  -> 'E' (value = first offset)
 *     'O' u64 producer, u64 sequence, u64 expect_offset, then as 'A'
 *                                          append with options (rlog_append_ex:
 *                                          producer 0 none, expect_offset
 *                                          UINT64_MAX none) -> 'E' (value = first
 *                                          offset; with RLOG_ECONFLICT the offset
 *                                          the first record would have had)
 *     'G' u64 offset                       read one record -> 'r' frame, 'E'
 *     'R' u64 from, u64 end                read [from, end) ('end' = UINT64_MAX:
 *                                          up to the committed end) -> 'r'..., 'E'
 *     'T' u64 from, u64 count              tail: records from `from` (UINT64_MAX: the
 *                                          commit offset now) as they commit, until
 *                                          `count` (0: no limit) -> 't', then 'r' and
 *                                          'k' frames, 'E' (value = records sent).
 *                                          The tail owns the connection: the client
 *                                          only hangs up.
 *     'N' u64 id, str address              add node -> 'E' (value = id)
 *     'X' u64 id                           remove node -> 'E' (value = id)
 *     'L' u64 id                           transfer leadership (0: to the most
 *                                          up-to-date voter) -> 'E' (value and
 *                                          leader fields: the new leader, if known)
 *     'P' u64 offset                       trim: drop records before offset, on
 *                                          every replica -> 'E' (value = offset)
 *     'B'                                  read barrier (rlog_barrier) -> 'E'
 *                                          (value = the barrier's offset)
 *     'M'                                  metrics -> 'M' frame, 'E'
 *   requests of a --many-logs node (a node of one log answers RLOG_EINVAL):
 *     '@' str name, then one of the requests above
 *                                          that request, for the node's log
 *                                          `name` (RLOG_ENOTFOUND: no such log).
 *                                          Without it, those requests but 'M'
 *                                          get RLOG_EINVAL ("name one with
 *                                          --log"); 'M' without it: every open
 *                                          log's metrics in one exposition
 *     'Q'                                  list-logs -> 'q'..., 'E' (value = count)
 *     'Y' u8 join, u32 n, n x u64 member id, str name
 *                                          create-log (n 0: every host of
 *                                          --cluster; join: n is 0) -> 'E'
 *     'D' str name                         delete-log: close it (once the calls
 *                                          in flight on it are done; tails on
 *                                          it end), delete its directory -> 'E'
 *   answers:
 *     'r' u64 offset, bytes                one record (the rest of the frame)
 *     'S' status fields (see put_status; the last ones, the failed stop's
 *         message and the repair counters, may be missing in answers of
 *         older nodes)
 *     'M' u32 len, the text                rlog_metrics_text's Prometheus text
 *     't' u64 offset                       tail: the first offset it streams
 *     'k' u64 offset                       tail keepalive (the log is quiet): the
 *                                          next offset it will stream
 *     'q' str name, u8 open, i32 code, str error, u32 role, u64 leader_id,
 *         u64 commit_offset, i32 fatal, str fatal_msg
 *                                          one log of list-logs (not open: code
 *                                          and error say why; else rlog_status's)
 *     'E' i32 code, u8 flags, u64 value, u64 leader_id, str leader_address, str message
 *         code: 0 or a negative RLOG_E* code; flags bit 0: the outcome of an
 *         append is unknown (the records may or may not be in the log).
 *   The node validates every byte: a bad frame or request gets an 'E' frame
 *   with RLOG_EPROTO and the connection is closed. Idle connections are
 *   closed after CTL_IDLE_MS. A tail buffers at most CTL_TAIL_BUFFER bytes on the
 *   node (the subscription pauses meanwhile); a tail client that reads nothing
 *   for CTL_TAIL_STALL_MS with a full buffer is dropped.
 *
 * Exit codes: 0 success, 1 usage error, 2 the node could not start (or
 * failed), 3 not the leader / leadership lost during an append, 4 read: no
 * such record (not committed yet, beyond the end, or trimmed), 5 cannot reach
 * the node (no socket, timeout, protocol error; for tail also: the node went
 * away), 6 any other error reported by the node, 7 node: it failed stop
 * after a storage error (a failed write or fdatasync, a full disk; the cause
 * is logged): restart it once the cause is fixed, 8 append in doubt (may or
 * may not be in the log), 9 conditional append: the log ends elsewhere.
 */

/*
 * The program's files (examples/rlogctl/), by job:
 *   main.c        main: calls rlogctl_main
 *   dispatch.c    rlogctl_main: the command dispatch, the overall usage, the
 *                 client commands' shared options
 *   args.c        parsing shared by the commands (numbers, --cluster,
 *                 offset ranges, node ids, HOST:PORT)
 *   util.c        clock, plural, allocation
 *   wire.c        the protocol's encoding, decoding and framed socket I/O
 *   control.c     the control socket: the node's listener and connection
 *                 threads, and the client's request/answer exchange
 *   node.c        `node`: start, serve, shut down; the node's shared state
 *                 and the guard of liblog calls (log_enter, log_leave)
 *   node_many.c   `node --many-logs`: its logs by name (open at start,
 *                 create, delete, a failed stop of one, close)
 *   node_args.c   `node`'s command line
 *   serve.c       the node's answers to status, append, read, membership,
 *                 trim, barrier and metrics requests
 *   serve_tail.c  the node's answer to a tail request (a subscription)
 *   serve_logs.c  the node's answers to list-logs, create-log, delete-log
 *   metrics_http.c  `node --metrics-address`: the HTTP /metrics endpoint
 *   client.c      what the client commands share
 *   append.c, read.c (read, tail), admin.c (status, membership, trim,
 *                 barrier, metrics), cursor.c, timecmd.c (offset-for-time),
 *                 logs.c (create-log, delete-log, list-logs)   the client commands
 * Headers: this one (protocol constants, exit codes, wire.c, the client side
 * of control.c: what test/nemesis/nemesis_node uses), args.h, node.h
 * (the node's files), client.h (the client commands' files).
 * Everything but main.c goes into a static archive that both rlogctl and
 * nemesis_node link.
 */
#ifndef RLOGCTL_H
#define RLOGCTL_H

#include <liblog.h>

#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define EXIT_USAGE 1
#define EXIT_NODE 2
#define EXIT_NOTLEADER 3
#define EXIT_NOTFOUND 4
#define EXIT_UNREACHABLE 5
#define EXIT_ERROR 6
#define EXIT_FAILSTOP 7
#define EXIT_INDOUBT 8
#define EXIT_CONFLICT 9

#define CTL_MAX_FRAME (16u << 20)       /* bytes in one control frame */
#define CTL_MAX_BATCH 8192u             /* records in one append request */
#define CTL_IDLE_MS 60000               /* node: idle client connections */
#define CTL_MAX_CLIENTS 128             /* node: concurrent client connections */
#define CTL_ACCEPT_PAUSE_MIN_MS 100     /* node: accepting paused when out of fds ... */
#define CTL_ACCEPT_PAUSE_MAX_MS 1000    /* ... doubling up to this while it lasts */
#define CTL_APPEND_WAIT_MS 30000        /* node: longest wait for a commit */
#define CLIENT_BATCH_RECORDS 1000u      /* client: records per append request */
#define CLIENT_BATCH_BYTES (512u << 10) /* client: record bytes per append request */
#define CTL_TAIL_BUFFER (4u << 20)      /* node: bytes queued for one tail client */
#define CTL_TAIL_STALL_MS 10000         /* node: a tail client with a full queue that
                                           reads nothing this long is dropped */
#define CTL_TAIL_KEEPALIVE_MS 1000      /* node: 'k' frames to an idle tail client */
#define STATUS_POLL_MS 200
#define CTL_MAX_LOG_NAME 128            /* bytes of a log's name in a request (liblog
                                           checks the name itself) */
#define CTL_DELETE_WAIT_MS 10000        /* node: delete-log's wait for the requests
                                           in flight on the log */

#define FLAG_INDETERMINATE 1u

/* The program's name in messages: "rlogctl", or the name of a program that
 * embeds rlogctl_main (dispatch.c). */
extern const char *progname;

/* The whole program: main.c's main calls it. */
int rlogctl_main(int argc, char **argv);

/* ---- util.c ---- */
int64_t now_ms(void);
const char *plural(uint64_t n, const char *one, const char *many);
void *xmalloc(size_t n);

/* ---- wire.c ---- */
/* A growable byte buffer (encoding). */
struct buf {
    unsigned char *p;
    size_t len, cap;
};

void buf_reserve(struct buf *b, size_t more);
void buf_put(struct buf *b, const void *d, size_t n);
void put_u8(struct buf *b, uint8_t v);
void put_u32(struct buf *b, uint32_t v);
void put_u64(struct buf *b, uint64_t v);
void put_str(struct buf *b, const char *s);
size_t begin_frame(struct buf *b);
void end_frame(struct buf *b, size_t at);

/* A bounds-checked reader (decoding). Any short read sets bad. */
struct rd {
    const unsigned char *p;
    size_t len, pos;
    int bad;
};

uint8_t get_u8(struct rd *r);
uint32_t get_u32(struct rd *r);
uint64_t get_u64(struct rd *r);
const unsigned char *get_bytes(struct rd *r, size_t n);
void get_str(struct rd *r, char *dst, size_t cap);

int write_all(int fd, const void *p, size_t n, int64_t deadline);
int recv_frame(int fd, unsigned char **out, size_t *len, int64_t deadline, char *why,
               size_t whylen);

/* ---- control.c, the client side ---- */
/* An end frame, decoded. */
struct end {
    int code;
    unsigned flags;
    uint64_t value, leader_id;
    char leader_addr[128];
    char msg[1024];
};

int fill_sun(struct sockaddr_un *sa, const char *path);
int ctl_connect(const char *path, char *why, size_t whylen);
int decode_end(const unsigned char *p, size_t len, struct end *e);
int send_request(int fd, const struct buf *req, int timeout_ms, char *why, size_t whylen);
int recv_answer(int fd, int timeout_ms, struct end *e,
                int (*on_data)(void *arg, const unsigned char *p, size_t len), void *arg,
                char *why, size_t whylen);

#endif
