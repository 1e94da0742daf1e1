/*
 * rlogctl node: what the node's files share (node.c, node_args.c,
 * control.c's node side, serve.c, serve_tail.c).
 */
#ifndef RLOGCTL_NODE_H
#define RLOGCTL_NODE_H

#include "rlogctl.h"

struct node {
    rlog *log;
    rlog_host *host; /* --host-transport, else NULL */
    uint64_t id;
    int verbose;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int closing;         /* no new liblog calls once set */
    unsigned api_users;  /* threads inside a liblog call (or holding an iterator) */
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
/* A liblog call may start (1), or the node is closing (0); api_leave ends it. */
int api_enter(void);
void api_leave(void);
int is_closing(void);
int cmd_node(int argc, char **argv);

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

/* ---- serve.c, serve_tail.c ---- */
void handle_status(struct buf *out);
void handle_append(struct rd *r, struct buf *out, int with_opts);
void put_record(struct buf *out, uint64_t offset, const void *p, size_t len);
void handle_get(struct rd *r, struct buf *out);
int handle_range(int fd, struct rd *r, struct buf *out, int64_t deadline_step);
void handle_member(uint8_t op, struct rd *r, struct buf *out);
void handle_barrier(struct rd *r, struct buf *out);
void handle_offset_for_time(struct rd *r, struct buf *out);
void handle_metrics(struct rd *r, struct buf *out);
int node_metrics_text(void *arg, char **text, size_t *len);
int handle_tail(int fd, unsigned slot, struct rd *r, struct buf *out);
/* serve_cursor.c: 'C' commit, 'K' get a named cursor. */
void handle_cursor(uint8_t op, struct rd *r, struct buf *out);

#endif
