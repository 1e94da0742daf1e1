/*
 * rlogctl node: what the node's files share (node.c, node_args.c,
 * control.c's node side, serve.c, serve_tail.c).
 */
#ifndef RLOGCTL_NODE_H
#define RLOGCTL_NODE_H

#include "rlogctl.h"

struct node_args;

/* Role changes seen by polling rlog_status, to log each once (node.c). */
struct seen {
    int valid, role, status_err;
    uint64_t term, leader_id;
};

/* One log of a --many-logs node, in g_node.logs (name order). The list and
 * every field are under g_node.mu; `log` is set before the entry is listed
 * and cleared only by delete-log, with `closing` set and no users left. */
struct hosted {
    struct hosted *next;
    char name[CTL_MAX_LOG_NAME + 1];
    rlog *log;              /* NULL: not open (open_code, open_error say why) */
    int open_code;
    char open_error[256];
    unsigned users;         /* threads inside a liblog call on it (log_enter) */
    unsigned refs;          /* requests holding the entry (hosted_find) */
    int closing;            /* delete-log under way: no new users */
    int removed;            /* out of the list: the last hosted_release frees it */
    int fatal_code, fatal_logged; /* its failed stop, from on_fatal */
    char fatal_msg[256];
    struct seen seen;       /* the main thread's only */
};

struct node {
    rlog *log;       /* the node's one log; NULL with --many-logs */
    rlog_host *host; /* --host-transport or --many-logs, else NULL */
    int many;        /* --many-logs: the logs are in `logs` */
    struct hosted *logs;
    const struct node_args *args; /* --many-logs: each log's options */
    uint64_t id;
    int verbose;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int closing;         /* no new liblog calls once set */
    unsigned api_users;  /* threads inside a liblog call (or holding an iterator),
                            on any log (log_enter) */
    unsigned n_clients;  /* live client threads */
    int client_fd[CTL_MAX_CLIENTS];
    /* The failed stop, from liblog's on_fatal (loop thread) to the main
     * thread, which polls failed_fd. */
    int failed_fd;
    int fatal_code;
    char fatal_msg[256];
};

extern struct node g_node;

/* ---- node.c ---- */
void node_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The guard that keeps liblog calls out of the shutdown (and, for a log of
 * a --many-logs node, out of its delete-log): log_enter returns the log a
 * call may use until log_leave, or NULL when the node is closing, or the
 * log is being deleted or not open (put_refused says which). h NULL is the
 * node's one log. */
rlog *log_enter(struct hosted *h);
void log_leave(struct hosted *h);
void put_refused(struct buf *out, const struct hosted *h);
/* Whether a long request (a range read, a tail) on h must end now. */
int log_closing(const struct hosted *h);
/* Whether the node is shutting down. */
int is_closing(void);
void lib_log(void *arg, int level, const char *line);
/* Logs the role changes of log h (NULL: the node's one log) since the last call. */
void poll_status(struct hosted *h, struct seen *s);
/* liblog's configuration of a log from the command line. */
void node_config(const struct node_args *a, struct rlog_config *cfg);
void node_host_config(const struct node_args *a, struct rlog_host_config *hc);
int cmd_node(int argc, char **argv);

/* ---- node_many.c: the logs of a --many-logs node ---- */
/* Opens the host and every log of its data directory (one that fails is
 * logged and listed as not open). 0, or an RLOG_E* code with err set. */
int many_open(const struct node_args *a, char *err, size_t errlen);
/* create-log: creates log `name` with the hosts `ids` (none: every host of
 * --cluster) as its members, or (join) to be added later. 0 or an RLOG_E*
 * code with err set. */
int many_create(const char *name, int join, const uint64_t *ids, unsigned n_ids, char *err,
                size_t errlen);
/* delete-log: closes log `name` if open, once the calls in flight on it are
 * done (RLOG_EBUSY after CTL_DELETE_WAIT_MS), then deletes its directory. */
int many_delete(const char *name, char *err, size_t errlen);
/* Logs the failed stops on_fatal reported since the last call (main thread). */
void many_log_failed_stops(void);
/* Logs each open log's role changes (main thread). */
void many_poll_status(void);
/* Closes every open log, then the host. Returns how many closed with a
 * failed stop's error. */
unsigned many_close(void);
/* The entry of log `name`, held (hosted_release lets go), or NULL. */
struct hosted *hosted_find(const char *name);
void hosted_release(struct hosted *h);
/* Every listed log, each held; *n of them. */
struct hosted **hosted_hold_all(unsigned *n);
void hosted_release_all(struct hosted **all, unsigned n);

/* ---- node_args.c ---- */
#define NODE_MAX_PEERS 64

/* The node's command line, parsed and checked. address and control may
 * point into list and control_buf: the struct is not to be copied. */
struct node_args {
    uint64_t id;
    const char *address, *data, *control;
    const char *cluster_name, *ca_file, *cert_file, *key_file;
    const char *metrics_address; /* NULL: no HTTP endpoint */
    int insecure, no_forward, verbose, join;
    int host_transport; /* the log on an rlog_host at --address (rlog_host_open(3)) */
    int many_logs;      /* --many-logs: a host holding logs by name in --data */
    int no_balance;     /* --no-balance-leaders: each log's balance_leaders 0 */
    uint64_t frame_timeout, idle_timeout;
    uint64_t election, heartbeat, segment_size, snap_threshold, snap_trailing;
    uint64_t linger_ms;
    uint64_t retention_bytes, retention_ms, retention_check_ms; /* 0: none, default */
    uint64_t cache_bytes; /* UINT64_MAX: not given (0 is a valid size: no cache) */
    struct rlog_peer peers[NODE_MAX_PEERS];
    unsigned n_peers;
    char *list; /* --cluster, split: peers[] point into it; free() it */
    char control_buf[4096];
};

/* node_parse_args's answer when the node is to run. */
#define NODE_RUN (-1)

/* NODE_RUN with *a filled (free a->list afterwards), or the exit status
 * (0 after --help) once it has said what is wrong. */
int node_parse_args(int argc, char **argv, struct node_args *a);

/* ---- control.c, the node side ---- */
void put_end(struct buf *b, int code, unsigned flags, uint64_t value, uint64_t leader_id,
             const char *leader_addr, const char *msg);
int accept_client(int lfd);
int control_listen(const char *path);

/* ---- serve.c, serve_tail.c ----
 * Each request is for the log h (NULL: the node's one log). */
void handle_status(struct hosted *h, struct buf *out);
void handle_append(struct hosted *h, struct rd *r, struct buf *out, int with_opts);
void put_record(struct buf *out, uint64_t offset, const void *p, size_t len);
void handle_get(struct hosted *h, struct rd *r, struct buf *out);
int handle_range(struct hosted *h, int fd, struct rd *r, struct buf *out, int64_t deadline_step);
void handle_member(struct hosted *h, uint8_t op, struct rd *r, struct buf *out);
void handle_barrier(struct hosted *h, struct rd *r, struct buf *out);
void handle_offset_for_time(struct hosted *h, struct rd *r, struct buf *out);
void handle_metrics(struct hosted *h, struct rd *r, struct buf *out);
/* The metrics text: of log h, or (h NULL) of the node: its one log, or
 * every open log of a --many-logs node in one exposition. */
int node_metrics_text(void *arg, char **text, size_t *len);
int handle_tail(struct hosted *h, int fd, unsigned slot, struct rd *r, struct buf *out);
/* serve_cursor.c: 'C' commit, 'K' get a named cursor. */
void handle_cursor(struct hosted *h, uint8_t op, struct rd *r, struct buf *out);
/* serve_logs.c: 'Q' list-logs, 'Y' create-log, 'D' delete-log. */
void handle_list_logs(struct rd *r, struct buf *out);
void handle_create_log(struct rd *r, struct buf *out);
void handle_delete_log(struct rd *r, struct buf *out);
/* A log's name in a request (u32 length, 1..CTL_MAX_LOG_NAME bytes, no NUL)
 * into name; 0, or -1 with r->bad set. */
int get_log_name(struct rd *r, char name[CTL_MAX_LOG_NAME + 1]);

#endif
