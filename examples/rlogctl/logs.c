/*
 * rlogctl create-log, delete-log and list-logs: the logs of a node started
 * with --many-logs (a host holding logs by name, node_many.c). A log's
 * every member host must create it alike, so create-log and delete-log run
 * on each node --cluster-controls names, one after the other.
 */
#include "client.h"

void usage_create_log(FILE *f)
{
    fprintf(f,
            "usage: %s create-log (--control PATH | --cluster-controls P1,P2,...) [--json]\n"
            "                          [--timeout SEC] [--members ID,ID,... | --join] NAME\n"
            "\n"
            "Creates the log NAME (1..63 characters of A-Z a-z 0-9 . _ -, not starting\n"
            "with a dot) on the host of each node given (started with --many-logs) and\n"
            "opens it there (rlog_create_on). Its members are the hosts --members lists\n"
            "(default: every host of the node's --cluster); each member host must\n"
            "create it with the same members, so give every member's socket with\n"
            "--cluster-controls: it runs on each in turn and prints each result (with\n"
            "--json, one {\"control\":...,\"log\":...} object per node). With --join the\n"
            "replica waits to be added: `add-node --log NAME ID HOST:PORT` on the log's\n"
            "leader. A create cut short (a crash) is finished by creating it again.\n"
            "\n"
            "Exit status: 0 created on every node; 1 usage; 5 cannot reach a node;\n"
            "6 other errors (RLOG_EEXISTS: the host has a log of that name; RLOG_EINVAL:\n"
            "a bad name, a member not in --cluster, or not a --many-logs node); with\n"
            "several nodes, the status of the first that failed.\n",
            progname);
}

void usage_delete_log(FILE *f)
{
    fprintf(f,
            "usage: %s delete-log (--control PATH | --cluster-controls P1,P2,...) [--json]\n"
            "                          [--timeout SEC] NAME\n"
            "\n"
            "Deletes the log NAME from the host of each node given (started with\n"
            "--many-logs): closes it there once the requests in flight on it are done\n"
            "(tails on it end; after %d s of waiting: RLOG_EBUSY and nothing deleted),\n"
            "then removes its directory (rlog_host_delete_log). Delete a replica only\n"
            "once it has left the log's members (remove-node --log NAME on the leader),\n"
            "or the log on every host: the others count on its copy.\n"
            "\n"
            "Exit status: 0 deleted on every node; 1 usage; 4 no such log (RLOG_ENOTFOUND);\n"
            "5 cannot reach a node; 6 other errors; with several nodes, the status of\n"
            "the first that failed.\n",
            progname, CTL_DELETE_WAIT_MS / 1000);
}

void usage_list_logs(FILE *f)
{
    fprintf(f,
            "usage: %s list-logs --control PATH [--json] [--timeout SEC]\n"
            "\n"
            "Lists the logs of a node started with --many-logs, in name order, one line\n"
            "each: `NAME open role=ROLE leader=ID commit_offset=N fatal=no` (leader 0:\n"
            "none known; after a failed stop `fatal=CODE CAUSE`), or `NAME not-open\n"
            "error=CODE MESSAGE` for one the node could not open (or is deleting). With\n"
            "--json, one object per line: {\"name\",\"open\",\"role\",\"leader_id\",\n"
            "\"commit_offset\",\"fatal\"(null or the code),\"fatal_msg\"} or {\"name\",\n"
            "\"open\":false,\"error\",\"message\"}.\n"
            "\n"
            "Exit status: 0 ok; 1 usage; 5 cannot reach the node; 6 other errors.\n",
            progname);
}

/* The result of one node's create-log or delete-log, on stdout. */
static void print_done(const struct copts *o, const char *path, const char *name,
                       const char *done, const struct end *e)
{
    if (o->json) {
        printf("{\"control\":");
        json_string(stdout, (const unsigned char *)path, strlen(path));
        printf(",\"log\":");
        json_string(stdout, (const unsigned char *)name, strlen(name));
        if (e->code == 0) {
            printf(",\"%s\":true}\n", done);
        } else {
            printf(",\"error\":\"%s\",\"message\":", rlog_errname(e->code));
            json_string(stdout, (const unsigned char *)e->msg, strlen(e->msg));
            printf("}\n");
        }
    } else if (e->code == 0) {
        printf("%s log %s (%s)\n", done, name, path);
    }
    fflush(stdout);
}

/* Sends req to each node given, one after the other, whatever the others
 * answered. Returns 0, or the exit status of the first that failed. */
static int on_each_node(const struct copts *o, const char *cmd, const struct buf *req,
                        const char *name, const char *done)
{
    int first_rc = 0;
    unsigned n = o->n_controls ? o->n_controls : 1;
    for (unsigned i = 0; i < n; i++) {
        struct copts one = *o;
        one.control = ctl_path(o, i);
        one.n_controls = 0;
        char label[256]; /* with several nodes, which one an error is from */
        if (n > 1)
            snprintf(label, sizeof label, "%s %s", cmd, one.control);
        else
            snprintf(label, sizeof label, "%s", cmd);
        struct end e;
        int rc = call_node(&one, label, req, &e, NULL, NULL);
        if (rc == 0) {
            print_done(o, one.control, name, done, &e);
            rc = e.code == 0 ? 0 : report_error(label, &e);
        }
        if (first_rc == 0)
            first_rc = rc;
    }
    return first_rc;
}

/* --members "1,2,3" into ids; 0, or -1 after saying what is wrong. */
static int parse_members(const char *text, uint64_t *ids, unsigned max, unsigned *n)
{
    *n = 0;
    const char *p = text;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char tok[32];
        if (len == 0 || len >= sizeof tok || *n == max) {
            fprintf(stderr, "%s create-log: --members must be 1..%u node ids separated by "
                    "commas, not '%s'\n", progname, max, text);
            return -1;
        }
        memcpy(tok, p, len);
        tok[len] = '\0';
        if (parse_node_id("create-log", tok, &ids[*n]) != 0)
            return -1;
        (*n)++;
        if (comma == NULL)
            return 0;
        p = comma + 1;
    }
}

int cmd_create_log(struct copts *o, int argc, char **argv)
{
    if (argc != 1) {
        fprintf(stderr, "%s create-log: expected one NAME\n", progname);
        usage_create_log(stderr);
        return EXIT_USAGE;
    }
    if (o->join && o->members) {
        fprintf(stderr, "%s create-log: --join takes no --members (the leader that adds "
                "the replica has them)\n", progname);
        return EXIT_USAGE;
    }
    uint64_t ids[RLOG_MAX_PEERS];
    unsigned n = 0;
    if (o->members && parse_members(o->members, ids, RLOG_MAX_PEERS, &n) != 0)
        return EXIT_USAGE;
    struct buf req = {0};
    size_t at = begin_request(&req, o, 'Y');
    put_u8(&req, (uint8_t)o->join);
    put_u32(&req, n);
    for (unsigned i = 0; i < n; i++)
        put_u64(&req, ids[i]);
    put_str(&req, argv[0]);
    end_frame(&req, at);
    int rc = on_each_node(o, "create-log", &req, argv[0], "created");
    free(req.p);
    return rc;
}

int cmd_delete_log(struct copts *o, int argc, char **argv)
{
    if (argc != 1) {
        fprintf(stderr, "%s delete-log: expected one NAME\n", progname);
        usage_delete_log(stderr);
        return EXIT_USAGE;
    }
    struct buf req = {0};
    size_t at = begin_request(&req, o, 'D');
    put_str(&req, argv[0]);
    end_frame(&req, at);
    int rc = on_each_node(o, "delete-log", &req, argv[0], "deleted");
    free(req.p);
    return rc;
}

/* One 'q' frame (serve_logs.c's put_log_entry) as a line. */
static int print_log_entry(void *arg, const unsigned char *p, size_t len)
{
    const struct copts *o = arg;
    struct rd r = {.p = p, .len = len};
    char name[CTL_MAX_LOG_NAME + 1], error[512], fatal_msg[512];
    if (get_u8(&r) != 'q')
        return -1;
    get_str(&r, name, sizeof name);
    int open = get_u8(&r);
    int code = (int)get_u32(&r);
    get_str(&r, error, sizeof error);
    int role = (int)get_u32(&r);
    uint64_t leader = get_u64(&r), commit = get_u64(&r);
    int fatal = (int)get_u32(&r);
    get_str(&r, fatal_msg, sizeof fatal_msg);
    if (r.bad || r.pos != r.len)
        return -1;
    if (o->json) {
        printf("{\"name\":");
        json_string(stdout, (const unsigned char *)name, strlen(name));
        if (!open) {
            printf(",\"open\":false,\"error\":\"%s\",\"message\":", rlog_errname(code));
            json_string(stdout, (const unsigned char *)error, strlen(error));
        } else {
            printf(",\"open\":true,\"role\":\"%s\",\"leader_id\":%" PRIu64 ",\"commit_offset\":%"
                   PRIu64 ",\"fatal\":", rlog_role_name(role), leader, commit);
            if (fatal) {
                printf("\"%s\",\"fatal_msg\":", rlog_errname(fatal));
                json_string(stdout, (const unsigned char *)fatal_msg, strlen(fatal_msg));
            } else {
                printf("null");
            }
        }
        printf("}\n");
    } else if (!open) {
        printf("%s not-open error=%s %s\n", name, rlog_errname(code), error);
    } else {
        printf("%s open role=%s leader=%" PRIu64 " commit_offset=%" PRIu64 " fatal=", name,
               rlog_role_name(role), leader, commit);
        if (fatal)
            printf("%s %s\n", rlog_errname(fatal), fatal_msg);
        else
            printf("no\n");
    }
    return 0;
}

int cmd_list_logs(struct copts *o, int argc, char **argv)
{
    if (argc != 0) {
        fprintf(stderr, "%s list-logs: unexpected argument '%s'\n", progname, argv[0]);
        usage_list_logs(stderr);
        return EXIT_USAGE;
    }
    struct buf req = {0};
    size_t at = begin_request(&req, o, 'Q');
    end_frame(&req, at);
    struct end e;
    int rc = call_node(o, "list-logs", &req, &e, print_log_entry, o);
    free(req.p);
    if (rc != 0)
        return rc;
    return e.code == 0 ? 0 : report_error("list-logs", &e);
}
