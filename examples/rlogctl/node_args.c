/*
 * rlogctl node: its command line (usage, options, the checks that need no
 * node) into a struct node_args.
 */
#include "args.h"
#include "node.h"

static void usage_node(FILE *f)
{
    fprintf(f,
            "usage: %s node --id N --data DIR --cluster ID=HOST:PORT,... [options]\n"
            "\n"
            "Runs one node of the replicated log in the foreground until SIGTERM/SIGINT/SIGHUP.\n"
            "\n"
            "  --id N               this node's id (>= 1); must appear in --cluster\n"
            "  --address HOST:PORT  where this node listens for its peers\n"
            "                       (default: its entry in --cluster)\n"
            "  --data DIR           data directory (created if missing; one node per dir)\n"
            "  --cluster LIST       the initial cluster, e.g.\n"
            "                       1=127.0.0.1:7001,2=127.0.0.1:7002,3=127.0.0.1:7003\n"
            "  --cluster-name NAME  the cluster's name, recorded in a new data directory and\n"
            "                       required to match later (default: a name derived from\n"
            "                       --cluster; a directory always refuses another --id)\n"
            "  --join               this node is being added to a running cluster: it does\n"
            "                       not bootstrap, and waits for the leader's `add-node`;\n"
            "                       --cluster lists the cluster including this node\n"
            "  --control PATH       control socket (default DIR/control.sock)\n"
            "  --election-timeout MS, --heartbeat MS   raft timers (default 1000, 100)\n"
            "  --segment-size BYTES the largest segment file (default 64 MiB); a new\n"
            "                       log's first is ~1 MiB, each next one twice the last\n"
            "  --cache-bytes BYTES  read cache of recent entries (default 64 MiB)\n"
            "  --snapshot-threshold N, --snapshot-trailing N\n"
            "                       raft entries between snapshot descriptors, and kept\n"
            "                       in memory behind one (defaults 128, 256); small\n"
            "                       values make lagging followers catch up by fetching\n"
            "                       segments from a peer\n"
            "  --failstop-linger MS after a failed stop, keep answering the control socket\n"
            "                       (status, reads; appends refused) for MS, then exit\n"
            "                       (default 0)\n"
            "  --peer-trusted-ca-file FILE, --peer-cert-file FILE, --peer-key-file FILE\n"
            "                       mutual TLS 1.3 between nodes (all three): the CA every\n"
            "                       peer certificate must chain to, this node's certificate\n"
            "                       (SAN URI rlog://CLUSTER/ID), its private key (PEM)\n"
            "  --host-transport     open the log on a host (rlog_host_open(3)) listening on\n"
            "                       --address: one connection per peer host for every log\n"
            "                       of it, the TLS files the host's; needs --cluster-name,\n"
            "                       and every node of the cluster must use it too\n"
            "  --many-logs          a host holding many logs by name in DIR/logs/NAME/ (see\n"
            "                       create-log, list-logs, delete-log; requests name one\n"
            "                       with --log): implies --host-transport; --cluster lists\n"
            "                       the hosts, --cluster-name is the host's (TLS names);\n"
            "                       every log found is opened (one that fails is logged\n"
            "                       and skipped); the other options apply to each log; a\n"
            "                       log's failed stop leaves the others serving; no --join;\n"
            "                       leaders are spread over the hosts (balance_leaders)\n"
            "  --no-balance-leaders with --many-logs: leaders stay where elections put them\n"
            "  --insecure           allow plain text between nodes on non-loopback\n"
            "                       addresses (peers' claimed ids are trusted); without TLS\n"
            "                       and without this, only loopback clusters start\n"
            "  --no-forward-appends refuse appends while a follower (RLOG_ENOTLEADER, exit 3\n"
            "                       for the client) instead of forwarding them to the leader\n"
            "  --metrics-address HOST:PORT\n"
            "                       serve the metrics over HTTP (GET /metrics, the\n"
            "                       Prometheus text format); off by default\n"
            "  --peer-frame-timeout MS, --peer-idle-timeout MS\n"
            "                       close an inbound peer connection whose frame does not\n"
            "                       finish within MS, or that carries no frame for MS\n"
            "                       (defaults 30000, 60000)\n"
            "  --retention-bytes N, --retention-ms MS, --retention-check-ms MS\n"
            "                       retention policies, applied by the leader: keep the\n"
            "                       newest records holding at most N bytes, and those\n"
            "                       appended within the last MS ms (0: no limit, the\n"
            "                       default); checked every --retention-check-ms (1000)\n"
            "  -v, --verbose        also log liblog's info lines (twice: debug)\n"
            "\n"
            "Logs one line per event to stderr. Exit status: 0 after a clean shutdown,\n"
            "1 bad arguments, 2 the log could not be opened or the node failed,\n"
            "%d the node failed stop after a storage error (a failed write or fdatasync,\n"
            "a full disk): it logs the cause, closes the log and exits, so that a\n"
            "supervisor can restart it once the cause is fixed.\n",
            progname, EXIT_FAILSTOP);
}

/* The options, each checked on its own, and --cluster split into peers.
 * Returns NODE_RUN, or the exit status. */
static int node_read_options(int argc, char **argv, struct node_args *a)
{
    static const struct option opts[] = {
        {"id", required_argument, NULL, 'i'},      {"address", required_argument, NULL, 'a'},
        {"data", required_argument, NULL, 'd'},    {"cluster", required_argument, NULL, 'c'},
        {"control", required_argument, NULL, 'C'}, {"election-timeout", required_argument, NULL, 'e'},
        {"heartbeat", required_argument, NULL, 'b'}, {"verbose", no_argument, NULL, 'v'},
        {"segment-size", required_argument, NULL, 'S'},
        {"cache-bytes", required_argument, NULL, 'K'},
        {"snapshot-threshold", required_argument, NULL, 'T'},
        {"snapshot-trailing", required_argument, NULL, 'L'},
        {"join", no_argument, NULL, 'J'},
        {"failstop-linger", required_argument, NULL, 'W'},
        {"cluster-name", required_argument, NULL, 'N'},
        {"peer-trusted-ca-file", required_argument, NULL, 'A'},
        {"peer-cert-file", required_argument, NULL, 'P'},
        {"peer-key-file", required_argument, NULL, 'k'},
        {"insecure", no_argument, NULL, 'I'},
        {"host-transport", no_argument, NULL, 1004},
        {"many-logs", no_argument, NULL, 1005},
        {"no-balance-leaders", no_argument, NULL, 1006},
        {"no-forward-appends", no_argument, NULL, 'n'},
        {"peer-frame-timeout", required_argument, NULL, 'F'},
        {"peer-idle-timeout", required_argument, NULL, 'D'},
        {"metrics-address", required_argument, NULL, 'M'},
        {"retention-bytes", required_argument, NULL, 1001},
        {"retention-ms", required_argument, NULL, 1002},
        {"retention-check-ms", required_argument, NULL, 1003},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
    };
    const char *id_s = NULL, *cluster = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "hv", opts, NULL)) != -1) {
        switch (c) {
        case 'i': id_s = optarg; break;
        case 'a': a->address = optarg; break;
        case 'd': a->data = optarg; break;
        case 'c': cluster = optarg; break;
        case 'N': a->cluster_name = optarg; break;
        case 'A': a->ca_file = optarg; break;
        case 'P': a->cert_file = optarg; break;
        case 'k': a->key_file = optarg; break;
        case 'I': a->insecure = 1; break;
        case 1004: a->host_transport = 1; break;
        case 1005: a->many_logs = a->host_transport = 1; break;
        case 1006: a->no_balance = 1; break;
        case 'n': a->no_forward = 1; break;
        case 'F':
        case 'D':
            if (parse_u64(optarg, c == 'F' ? &a->frame_timeout : &a->idle_timeout) != 0 ||
                (c == 'F' ? a->frame_timeout : a->idle_timeout) == 0 ||
                (c == 'F' ? a->frame_timeout : a->idle_timeout) > 3600000) {
                fprintf(stderr, "%s node: --peer-%s-timeout must be 1..3600000 ms, not '%s'\n",
                        progname, c == 'F' ? "frame" : "idle", optarg);
                return EXIT_USAGE;
            }
            break;
        case 'C': a->control = optarg; break;
        case 'M': a->metrics_address = optarg; break;
        case 'e':
        case 'b': {
            uint64_t v;
            if (parse_u64(optarg, &v) != 0 || v == 0 || v > 600000) {
                fprintf(stderr, "%s node: --%s must be 1..600000 ms, not '%s'\n", progname,
                        c == 'e' ? "election-timeout" : "heartbeat", optarg);
                return EXIT_USAGE;
            }
            *(c == 'e' ? &a->election : &a->heartbeat) = v;
            break;
        }
        case 'S':
        case 'K':
        case 'T':
        case 'L': {
            /* Range checks are rlog_open's; here only "is it a number". */
            uint64_t v;
            if (parse_u64(optarg, &v) != 0 || ((c == 'T' || c == 'L') && v > UINT32_MAX) ||
                (c == 'K' && v == UINT64_MAX)) {
                fprintf(stderr, "%s node: --%s must be a number, not '%s'\n", progname,
                        c == 'S' ? "segment-size" : c == 'K' ? "cache-bytes"
                        : c == 'T' ? "snapshot-threshold" : "snapshot-trailing", optarg);
                return EXIT_USAGE;
            }
            *(c == 'S' ? &a->segment_size : c == 'K' ? &a->cache_bytes
              : c == 'T' ? &a->snap_threshold : &a->snap_trailing) = v;
            break;
        }
        case 'W':
            if (parse_u64(optarg, &a->linger_ms) != 0 || a->linger_ms > 600000) {
                fprintf(stderr, "%s node: --failstop-linger must be 0..600000 ms, not '%s'\n",
                        progname, optarg);
                return EXIT_USAGE;
            }
            break;
        case 1001:
        case 1002:
        case 1003: {
            /* Range checks are rlog_open's; here only "is it a number". */
            uint64_t *v = c == 1001 ? &a->retention_bytes : c == 1002 ? &a->retention_ms
                                                                      : &a->retention_check_ms;
            if (parse_u64(optarg, v) != 0 || (c == 1003 && *v > UINT32_MAX)) {
                fprintf(stderr, "%s node: --%s must be a number, not '%s'\n", progname,
                        c == 1001 ? "retention-bytes" : c == 1002 ? "retention-ms"
                                                                  : "retention-check-ms", optarg);
                return EXIT_USAGE;
            }
            break;
        }
        case 'v': a->verbose++; break;
        case 'J': a->join = 1; break;
        case 'h': usage_node(stdout); return 0;
        default: usage_node(stderr); return EXIT_USAGE;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "%s node: unexpected argument '%s'\n", progname, argv[optind]);
        usage_node(stderr);
        return EXIT_USAGE;
    }
    if (!id_s || !a->data || !cluster) {
        fprintf(stderr, "%s node: --id, --data and --cluster are required\n", progname);
        usage_node(stderr);
        return EXIT_USAGE;
    }
    if (parse_u64(id_s, &a->id) != 0) {
        fprintf(stderr, "%s node: --id must be a number, not '%s'\n", progname, id_s);
        return EXIT_USAGE;
    }
    a->list = strdup(cluster);
    if (a->list == NULL)
        return EXIT_NODE;
    if (parse_cluster(cluster, a->list, a->peers, NODE_MAX_PEERS, &a->n_peers) != 0) {
        free(a->list);
        return EXIT_USAGE;
    }
    return NODE_RUN;
}

/* The defaults that depend on other options: the address (this node's
 * --cluster entry) and the control socket (in the data directory), whose
 * path must fit a Unix socket address. Returns NODE_RUN, or the exit status. */
static int node_resolve(struct node_args *a)
{
    if (a->address == NULL) {
        for (unsigned i = 0; i < a->n_peers; i++)
            if (a->peers[i].id == a->id)
                a->address = a->peers[i].address;
        if (a->address == NULL) {
            fprintf(stderr, "%s node: --id %" PRIu64 " is not in --cluster (and no --address)\n",
                    progname, a->id);
            return EXIT_USAGE;
        }
    }
    if (a->control == NULL) {
        snprintf(a->control_buf, sizeof a->control_buf, "%s/control.sock", a->data);
        a->control = a->control_buf;
    }
    if (a->many_logs && (!a->cluster_name || !*a->cluster_name)) {
        fprintf(stderr, "%s node: --many-logs needs --cluster-name (the hosts' cluster: it "
                "names them in their TLS certificates and their data directories)\n", progname);
        return EXIT_USAGE;
    }
    if (a->no_balance && !a->many_logs) {
        fprintf(stderr, "%s node: --no-balance-leaders goes with --many-logs\n", progname);
        return EXIT_USAGE;
    }
    if (a->many_logs && a->join) {
        fprintf(stderr, "%s node: --join does not go with --many-logs: a log joins on its "
                "own (create-log --join, then add-node --log NAME on its leader)\n", progname);
        return EXIT_USAGE;
    }
    if (a->host_transport && (!a->cluster_name || !*a->cluster_name)) {
        fprintf(stderr, "%s node: --host-transport needs --cluster-name (it names the log "
                "between hosts)\n", progname);
        return EXIT_USAGE;
    }
    struct sockaddr_un sa_check;
    if (fill_sun(&sa_check, a->control) != 0) {
        fprintf(stderr, "%s node: --control path too long (max %zu bytes): %s\n", progname,
                sizeof sa_check.sun_path - 1, a->control);
        return EXIT_USAGE;
    }
    return NODE_RUN;
}

int node_parse_args(int argc, char **argv, struct node_args *a)
{
    memset(a, 0, sizeof *a);
    a->cache_bytes = UINT64_MAX;
    int rc = node_read_options(argc, argv, a);
    if (rc != NODE_RUN)
        return rc;
    rc = node_resolve(a);
    if (rc != NODE_RUN)
        free(a->list);
    return rc;
}
