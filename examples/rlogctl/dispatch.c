/*
 * rlogctl: the command dispatch and the overall usage. rlogctl_main is the
 * whole program (main.c only calls it), so that test/nemesis/nemesis_node can
 * link the same code and run `rlogctl node` under another name.
 */
#include "client.h"
#include "node.h"

const char *progname = "rlogctl";

/* ---- main ---- */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: %s COMMAND [options]\n"
            "\n"
            "An example host program for liblog %s, a Raft-replicated durable log.\n"
            "\n"
            "commands:\n"
            "  node     run one node of the log (opens it, serves a local control socket)\n"
            "  append   append records through any node's control socket\n"
            "  read     read committed records by offset from any node\n"
            "  tail     stream records from any node as they commit\n"
            "  status   show a node's role, term, leader, offsets and peers\n"
            "  add-node, remove-node, transfer\n"
            "           change the cluster's members, or its leader (on the leader)\n"
            "  trim     drop records before an offset on every replica (on the leader)\n"
            "  barrier  a read barrier: an offset every completed append is below\n"
            "  cursor-commit, cursor-get\n"
            "           set or read a named consumer position (any node)\n"
            "  metrics  print a node's metrics in the Prometheus text format\n"
            "  offset-for-time\n"
            "           the offset of the first record at or after a time, on any node\n"
            "  partition\n"
            "           which of N logs each key goes to (rlog_partition; no node needed)\n"
            "  create-log, delete-log, list-logs\n"
            "           the logs of a node started with --many-logs (its other commands\n"
            "           name a log with --log NAME)\n"
            "\n"
            "`%s COMMAND --help` describes each. Example, three nodes on one host:\n"
            "  C=1=127.0.0.1:7001,2=127.0.0.1:7002,3=127.0.0.1:7003\n"
            "  %s node --id 1 --data d1 --cluster $C &   # and ids 2, 3 with d2, d3\n"
            "  %s status --control d1/control.sock\n"
            "  echo hello | %s append --control d1/control.sock   # any node\n"
            "  %s read --control d2/control.sock 0\n"
            "  %s tail --control d3/control.sock --from 0   # until Ctrl-C\n"
            "\n"
            "Exit status: 0 ok, 1 usage, 2 node failed to start, 3 not the leader,\n"
            "4 no such record, 5 node unreachable, 6 other error, 7 node failed stop\n"
            "after a storage error.\n",
            progname, RLOG_VERSION_STRING, progname, progname, progname, progname, progname,
            progname);
}

static int client_main(const char *cmd, int argc, char **argv)
{
    static const struct option opts[] = {
        {"control", required_argument, NULL, 'c'},
        {"cluster-controls", required_argument, NULL, 'C'},
        {"json", no_argument, NULL, 'j'},
        {"timeout", required_argument, NULL, 't'},
        {"from", required_argument, NULL, 'f'},
        {"from-end", no_argument, NULL, 'F'},
        {"count", required_argument, NULL, 'n'},
        {"cursor", required_argument, NULL, 'u'},
        {"producer", required_argument, NULL, 'p'},
        {"sequence", required_argument, NULL, 's'},
        {"expect-offset", required_argument, NULL, 'e'},
        {"log", required_argument, NULL, 'l'},
        {"members", required_argument, NULL, 'm'},
        {"join", no_argument, NULL, 'J'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    void (*help)(FILE *) = strcmp(cmd, "append") == 0        ? usage_append
                           : strcmp(cmd, "read") == 0        ? usage_read
                           : strcmp(cmd, "tail") == 0        ? usage_tail
                           : strcmp(cmd, "add-node") == 0    ? usage_add_node
                           : strcmp(cmd, "remove-node") == 0 ? usage_remove_node
                           : strcmp(cmd, "transfer") == 0    ? usage_transfer
                           : strcmp(cmd, "trim") == 0        ? usage_trim
                           : strcmp(cmd, "barrier") == 0     ? usage_barrier
                           : strcmp(cmd, "metrics") == 0     ? usage_metrics
                           : strcmp(cmd, "cursor-commit") == 0 ? usage_cursor_commit
                           : strcmp(cmd, "cursor-get") == 0  ? usage_cursor_get
                           : strcmp(cmd, "offset-for-time") == 0 ? usage_offset_for_time
                           : strcmp(cmd, "create-log") == 0  ? usage_create_log
                           : strcmp(cmd, "delete-log") == 0  ? usage_delete_log
                           : strcmp(cmd, "list-logs") == 0   ? usage_list_logs
                                                             : usage_status;
    int is_tail = strcmp(cmd, "tail") == 0;
    /* create-log, delete-log and list-logs are the node's, not a log's. */
    int of_node = strstr(cmd, "-log") != NULL;
    struct copts o = {.timeout_ms = 30000, .sequence = 1};
    int seq_set = 0;
    char *list = NULL;
    int c, rc, from_end = 0;
    char ago[64]; /* offset-for-time -5m: a time, not options */
    for (int i = 1; strcmp(cmd, "offset-for-time") == 0 && i < argc; i++)
        if (argv[i][0] == '-' && argv[i][1] >= '0' && argv[i][1] <= '9' &&
            strlen(argv[i]) < sizeof ago - 4) {
            snprintf(ago, sizeof ago, "now%s", argv[i]);
            argv[i] = ago;
            break;
        }
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'c': o.control = optarg; break;
        case 'C': free(list); list = strdup(optarg); break;
        case 'j': o.json = 1; break;
        case 't': {
            uint64_t v;
            if (parse_u64(optarg, &v) != 0 || v == 0 || v > 86400) {
                fprintf(stderr, "%s %s: --timeout must be 1..86400 seconds, not '%s'\n",
                        progname, cmd, optarg);
                free(list);
                return EXIT_USAGE;
            }
            o.timeout_ms = (int)v * 1000;
            break;
        }
        case 'f':
        case 'F':
        case 'n':
        case 'u':
            if (!is_tail) {
                fprintf(stderr, "%s %s: --%s is an option of tail only\n", progname, cmd,
                        c == 'f' ? "from" : c == 'F' ? "from-end" : c == 'u' ? "cursor" : "count");
                help(stderr);
                free(list);
                return EXIT_USAGE;
            }
            if (c == 'F') {
                from_end = 1;
            } else if (c == 'u') {
                o.cursor = optarg;
            } else if (parse_u64(optarg, c == 'f' ? &o.from : &o.count) != 0 ||
                       (c == 'f' && o.from == UINT64_MAX) || (c == 'n' && o.count == 0)) {
                fprintf(stderr, "%s tail: --%s must be a number%s, not '%s'\n", progname,
                        c == 'f' ? "from" : "count", c == 'n' ? " >= 1" : "", optarg);
                free(list);
                return EXIT_USAGE;
            } else if (c == 'f') {
                o.from_set = 1;
            }
            break;
        case 'p':
        case 's':
        case 'e': {
            const char *name = c == 'p' ? "producer" : c == 's' ? "sequence" : "expect-offset";
            uint64_t v;
            if (strcmp(cmd, "append") != 0) {
                fprintf(stderr, "%s %s: --%s is an option of append only\n", progname, cmd, name);
                help(stderr);
                free(list);
                return EXIT_USAGE;
            }
            if (parse_u64(optarg, &v) != 0 || (c != 'e' && v == 0) || v == UINT64_MAX) {
                fprintf(stderr, "%s append: --%s must be a number%s, not '%s'\n", progname, name,
                        c != 'e' ? " >= 1" : "", optarg);
                free(list);
                return EXIT_USAGE;
            }
            if (c == 'p')
                o.producer = v;
            else if (c == 's')
                o.sequence = v, seq_set = 1;
            else
                o.expect = v, o.has_expect = 1;
            break;
        }
        case 'l':
            if (of_node || strlen(optarg) == 0 || strlen(optarg) > CTL_MAX_LOG_NAME) {
                if (of_node)
                    fprintf(stderr, "%s %s: takes no --log (%s)\n", progname, cmd,
                            strcmp(cmd, "list-logs") == 0 ? "it shows every log"
                                                          : "the log's NAME is its argument");
                else
                    fprintf(stderr, "%s %s: --log takes a log's name (1..%d characters)\n",
                            progname, cmd, CTL_MAX_LOG_NAME);
                help(stderr);
                free(list);
                return EXIT_USAGE;
            }
            o.log = optarg;
            break;
        case 'm':
        case 'J':
            if (strcmp(cmd, "create-log") != 0) {
                fprintf(stderr, "%s %s: --%s is an option of create-log only\n", progname, cmd,
                        c == 'm' ? "members" : "join");
                help(stderr);
                free(list);
                return EXIT_USAGE;
            }
            if (c == 'm')
                o.members = optarg;
            else
                o.join = 1;
            break;
        case 'h': help(stdout); free(list); return 0;
        default: help(stderr); free(list); return EXIT_USAGE;
        }
    }
    char *ctl[RLOG_MAX_PEERS * 4];
    if (list != NULL) {
        for (char *save = NULL, *tok = strtok_r(list, ",", &save); tok;
             tok = strtok_r(NULL, ",", &save)) {
            if (o.n_controls == sizeof ctl / sizeof ctl[0]) {
                fprintf(stderr, "%s %s: too many --cluster-controls\n", progname, cmd);
                free(list);
                return EXIT_USAGE;
            }
            ctl[o.n_controls++] = tok;
        }
        o.controls = ctl;
    }
    if ((o.control == NULL) == (o.n_controls == 0)) {
        fprintf(stderr, "%s %s: give exactly one of --control PATH or --cluster-controls LIST\n",
                progname, cmd);
        help(stderr);
        free(list);
        return EXIT_USAGE;
    }
    if (seq_set && !o.producer) {
        fprintf(stderr, "%s append: --sequence needs --producer\n", progname);
        free(list);
        return EXIT_USAGE;
    }
    if (from_end && o.from_set) {
        fprintf(stderr, "%s tail: give at most one of --from OFFSET and --from-end\n", progname);
        free(list);
        return EXIT_USAGE;
    }
    argc -= optind;
    argv += optind;
    if (strcmp(cmd, "append") == 0)
        rc = cmd_append(&o, argc, argv);
    else if (strcmp(cmd, "read") == 0)
        rc = cmd_read(&o, argc, argv);
    else if (is_tail)
        rc = cmd_tail(&o, argc, argv);
    else if (strcmp(cmd, "status") == 0)
        rc = cmd_status(&o, argc, argv);
    else if (strcmp(cmd, "barrier") == 0)
        rc = cmd_barrier(&o, argc, argv);
    else if (strcmp(cmd, "metrics") == 0)
        rc = cmd_metrics(&o, argc, argv);
    else if (strncmp(cmd, "cursor-", 7) == 0)
        rc = cmd_cursor(cmd, &o, argc, argv);
    else if (strcmp(cmd, "offset-for-time") == 0)
        rc = cmd_offset_for_time(&o, argc, argv);
    else if (strcmp(cmd, "create-log") == 0)
        rc = cmd_create_log(&o, argc, argv);
    else if (strcmp(cmd, "delete-log") == 0)
        rc = cmd_delete_log(&o, argc, argv);
    else if (strcmp(cmd, "list-logs") == 0)
        rc = cmd_list_logs(&o, argc, argv);
    else
        rc = cmd_member(cmd, &o, argc, argv);
    free(list);
    return rc;
}

static void usage_partition(FILE *f)
{
    fprintf(f,
            "usage: %s partition --partitions N [KEY...]\n"
            "\n"
            "Prints, for each KEY (or each line of standard input when none is given),\n"
            "the partition 0..N-1 it goes to, as rlog_partition(3) computes it: the same\n"
            "on every machine and in every version; from N to N+1 partitions only the\n"
            "keys that land in the new one move. A host that spreads its data over N\n"
            "logs by key appends each record to the log of its key's partition.\n"
            "Exit status: 0, or 1 for a bad N.\n",
            progname);
}

static int partition_one(const char *key, size_t len, unsigned n)
{
    unsigned p;
    if (rlog_partition(key, len, n, &p) != 0) {
        fprintf(stderr, "%s partition: %s\n", progname, rlog_errmsg(NULL));
        return EXIT_USAGE;
    }
    printf("%u\n", p);
    return 0;
}

static int cmd_partition(int argc, char **argv)
{
    static const struct option opts[] = {
        {"partitions", required_argument, NULL, 'n'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    uint64_t n = 0;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'h') {
            usage_partition(stdout);
            return 0;
        }
        if (c != 'n' || parse_u64(optarg, &n) != 0 || n == 0 || n > (1u << 31)) {
            if (c == 'n')
                fprintf(stderr, "%s partition: --partitions must be 1..2147483648, not '%s'\n",
                        progname, optarg);
            usage_partition(stderr);
            return EXIT_USAGE;
        }
    }
    if (n == 0) {
        fprintf(stderr, "%s partition: --partitions N is required\n", progname);
        usage_partition(stderr);
        return EXIT_USAGE;
    }
    for (int i = optind; i < argc; i++)
        if (partition_one(argv[i], strlen(argv[i]), (unsigned)n) != 0)
            return EXIT_USAGE;
    if (optind < argc)
        return 0;
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    while ((got = getline(&line, &cap, stdin)) >= 0) {
        size_t len = (size_t)got;
        if (len && line[len - 1] == '\n')
            len--;
        if (partition_one(line, len, (unsigned)n) != 0)
            break;
    }
    free(line);
    return 0;
}

int rlogctl_main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(cmd, "--version") == 0) {
        printf("rlogctl (liblog %s)\n", rlog_version_string());
        return 0;
    }
    if (strcmp(cmd, "node") == 0)
        return cmd_node(argc - 1, argv + 1);
    if (strcmp(cmd, "partition") == 0)
        return cmd_partition(argc - 1, argv + 1);
    static const char *const clients[] = {"append", "read", "tail", "status",
                                          "add-node", "remove-node", "transfer", "trim",
                                          "barrier", "metrics", "cursor-commit",
                                          "cursor-get", "offset-for-time", "create-log",
                                          "delete-log", "list-logs"};
    for (size_t i = 0; i < sizeof clients / sizeof clients[0]; i++)
        if (strcmp(cmd, clients[i]) == 0)
            return client_main(cmd, argc - 1, argv + 1);
    fprintf(stderr, "%s: unknown command '%s'\n\n", progname, cmd);
    usage(stderr);
    return EXIT_USAGE;
}
