/*
 * rlogctl: what the client commands' files share (client.c, append.c,
 * read.c, admin.c, dispatch.c).
 */
#ifndef RLOGCTL_CLIENT_H
#define RLOGCTL_CLIENT_H

#include "args.h"
#include "rlogctl.h"

/* The client commands' options (dispatch.c's client_main). */
struct copts {
    const char *control;
    char **controls; /* --cluster-controls, split */
    unsigned n_controls;
    int json;
    int timeout_ms;
    const char *log;      /* --log: the log of a --many-logs node (NULL: the node's) */
    /* create-log only: --members (NULL: every host), --join */
    const char *members;
    int join;
    /* tail only */
    uint64_t from, count; /* count 0: no limit */
    int from_set;         /* 0: from the end */
    const char *cursor;   /* --cursor: from this named cursor (else from/the end) */
    /* append only: --producer, --sequence, --expect-offset */
    uint64_t producer, sequence, expect;
    int has_expect;
};

/* ---- client.c ---- */
void fail_unreachable(const char *cmd, const char *why);
int report_error(const char *cmd, const struct end *e);
void json_string(FILE *f, const unsigned char *p, size_t n);
int print_record(void *arg, const unsigned char *p, size_t len);
const char *ctl_path(const struct copts *o, unsigned i);
/* begin_frame, then the request's type, after ('@' NAME) the log --log names. */
size_t begin_request(struct buf *b, const struct copts *o, uint8_t type);
int connect_any(const struct copts *o, const char *cmd);
int call_node(const struct copts *o, const char *cmd, const struct buf *req, struct end *e,
              int (*on_data)(void *arg, const unsigned char *p, size_t len), void *arg);

/* ---- the commands: append.c, read.c, admin.c ---- */
void usage_append(FILE *f);
int cmd_append(struct copts *o, int argc, char **argv);
void usage_read(FILE *f);
int cmd_read(struct copts *o, int argc, char **argv);
void usage_tail(FILE *f);
int cmd_tail(struct copts *o, int argc, char **argv);
void usage_status(FILE *f);
int cmd_status(struct copts *o, int argc, char **argv);
void usage_add_node(FILE *f);
void usage_remove_node(FILE *f);
void usage_transfer(FILE *f);
void usage_trim(FILE *f);
void usage_barrier(FILE *f);
int cmd_barrier(struct copts *o, int argc, char **argv);
/* cursor.c: cursor-commit, cursor-get */
void usage_cursor_commit(FILE *f);
void usage_cursor_get(FILE *f);
int cmd_cursor(const char *cmd, struct copts *o, int argc, char **argv);
void usage_offset_for_time(FILE *f);
int cmd_offset_for_time(struct copts *o, int argc, char **argv);
void usage_metrics(FILE *f);
int cmd_metrics(struct copts *o, int argc, char **argv);
int cmd_member(const char *cmd, struct copts *o, int argc, char **argv);
/* logs.c: create-log, delete-log, list-logs (a --many-logs node's logs) */
void usage_create_log(FILE *f);
void usage_delete_log(FILE *f);
void usage_list_logs(FILE *f);
int cmd_create_log(struct copts *o, int argc, char **argv);
int cmd_delete_log(struct copts *o, int argc, char **argv);
int cmd_list_logs(struct copts *o, int argc, char **argv);

#endif
