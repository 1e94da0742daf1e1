/*
 * rlogctl status, add-node, remove-node, transfer, trim and barrier: the
 * commands that show or change the cluster rather than its records.
 */
#include "client.h"

/* ---- status ---- */

void usage_status(FILE *f)
{
    fprintf(f,
            "usage: %s status --control PATH [--log NAME] [--json] [--timeout SEC]\n"
            "\n"
            "Prints the node's role, term, leader, first/commit/last offsets, raft\n"
            "indexes, whether it failed stop (`fatal no`, or `fatal CODE CAUSE`, with\n"
            "role unavailable and the term and offsets as at the stop), catch-up\n"
            "progress (`catchup NEXT of TARGET` while fetching missing segments from a\n"
            "peer, else `catchup none`), the read cache (bytes, hits, misses) and\n"
            "peers. Plain output is one `key value` pair per line, then one\n"
            "`peer ID ADDRESS voter|nonvoter MATCH_INDEX` line per peer (match indexes\n"
            "are known on the leader only).\n"
            "\n"
            "--log NAME: the log NAME of a node started with --many-logs, which needs it\n"
            "for this and every other request about one log (list-logs shows its logs);\n"
            "a node of one log refuses it.\n",
            progname);
}

static int print_status(void *arg, const unsigned char *p, size_t len)
{
    const struct copts *o = arg;
    struct rd r = {.p = p, .len = len};
    if (get_u8(&r) != 'S')
        return -1;
    struct rlog_status st;
    memset(&st, 0, sizeof st);
    st.id = get_u64(&r);
    st.role = (int)get_u32(&r);
    st.term = get_u64(&r);
    st.leader_id = get_u64(&r);
    get_str(&r, st.leader_address, sizeof st.leader_address);
    st.first_offset = get_u64(&r);
    st.commit_offset = get_u64(&r);
    st.last_offset = get_u64(&r);
    st.last_index = get_u64(&r);
    st.commit_index = get_u64(&r);
    st.fatal = (int)get_u32(&r);
    st.catchup_index = get_u64(&r);
    st.catchup_target = get_u64(&r);
    st.cache_bytes = get_u64(&r);
    st.cache_hits = get_u64(&r);
    st.cache_misses = get_u64(&r);
    uint32_t n = get_u32(&r);
    if (n > RLOG_MAX_PEERS)
        return -1;
    st.n_peers = n;
    for (uint32_t i = 0; i < n; i++) {
        st.peers[i].id = get_u64(&r);
        get_str(&r, st.peers[i].address, sizeof st.peers[i].address);
        st.peers[i].voter = get_u8(&r);
        st.peers[i].match_index = get_u64(&r);
    }
    if (r.pos < r.len) /* older nodes do not send it */
        get_str(&r, st.fatal_msg, sizeof st.fatal_msg);
    int have_peer_security = r.pos < r.len; /* nor these */
    if (have_peer_security) {
        st.tls = get_u8(&r);
        st.insecure = !st.tls;
        st.refused_connections = get_u64(&r);
        st.rejected_handshakes = get_u64(&r);
        st.timed_out_connections = get_u64(&r);
        st.send_queue_overflows = get_u64(&r);
    }
    if (r.pos < r.len) { /* nor these (hardening) */
        st.fetch_serve_refused = get_u64(&r);
        st.held_dropped = get_u64(&r);
    }
    if (r.pos < r.len) { /* nor these (repair) */
        st.damaged_ranges = get_u64(&r);
        st.repaired_ranges = get_u64(&r);
        st.repaired_entries = get_u64(&r);
        st.unreadable_entries = get_u64(&r);
    }
    if (r.pos < r.len) { /* nor these (forwarding) */
        st.forwarded_appends = get_u64(&r);
        st.forwards_served = get_u64(&r);
        st.forward_refused = get_u64(&r);
    }
    if (r.pos < r.len) /* nor this (retention policies) */
        st.retention_trims = get_u64(&r);
    if (r.bad || r.pos != r.len)
        return -1;
    if (o->json) {
        printf("{\"id\":%" PRIu64 ",\"role\":\"%s\",\"term\":%" PRIu64 ",\"leader_id\":%" PRIu64
               ",\"leader_address\":",
               st.id, rlog_role_name(st.role), st.term, st.leader_id);
        json_string(stdout, (const unsigned char *)st.leader_address, strlen(st.leader_address));
        printf(",\"first_offset\":%" PRIu64 ",\"commit_offset\":%" PRIu64 ",\"last_offset\":%" PRIu64
               ",\"last_index\":%" PRIu64 ",\"commit_index\":%" PRIu64 ",\"fatal\":",
               st.first_offset, st.commit_offset, st.last_offset, st.last_index, st.commit_index);
        if (st.fatal) {
            printf("\"%s\",\"fatal_msg\":", rlog_errname(st.fatal));
            json_string(stdout, (const unsigned char *)st.fatal_msg, strlen(st.fatal_msg));
        } else {
            fputs("null", stdout);
        }
        printf(",\"catchup_index\":%" PRIu64 ",\"catchup_target\":%" PRIu64
               ",\"cache_bytes\":%" PRIu64 ",\"cache_hits\":%" PRIu64 ",\"cache_misses\":%" PRIu64,
               st.catchup_index, st.catchup_target, st.cache_bytes, st.cache_hits, st.cache_misses);
        if (have_peer_security)
            printf(",\"peer_security\":\"%s\",\"refused_connections\":%" PRIu64
                   ",\"rejected_handshakes\":%" PRIu64 ",\"timed_out_connections\":%" PRIu64
                   ",\"send_queue_overflows\":%" PRIu64,
                   st.tls ? "tls" : "insecure", st.refused_connections, st.rejected_handshakes,
                   st.timed_out_connections, st.send_queue_overflows);
        printf(",\"fetch_serve_refused\":%" PRIu64 ",\"held_dropped\":%" PRIu64,
               st.fetch_serve_refused, st.held_dropped);
        printf(",\"damaged_ranges\":%" PRIu64 ",\"repaired_ranges\":%" PRIu64
               ",\"repaired_entries\":%" PRIu64 ",\"unreadable_entries\":%" PRIu64,
               st.damaged_ranges, st.repaired_ranges, st.repaired_entries, st.unreadable_entries);
        printf(",\"forwarded_appends\":%" PRIu64 ",\"forwards_served\":%" PRIu64
               ",\"forward_refused\":%" PRIu64, st.forwarded_appends, st.forwards_served,
               st.forward_refused);
        printf(",\"retention_trims\":%" PRIu64, st.retention_trims);
        fputs(",\"peers\":[", stdout);
        for (unsigned i = 0; i < st.n_peers; i++) {
            printf("%s{\"id\":%" PRIu64 ",\"address\":", i ? "," : "", st.peers[i].id);
            json_string(stdout, (const unsigned char *)st.peers[i].address,
                        strlen(st.peers[i].address));
            printf(",\"voter\":%s,\"match_index\":%" PRIu64 "}", st.peers[i].voter ? "true" : "false",
                   st.peers[i].match_index);
        }
        fputs("]}\n", stdout);
    } else {
        printf("id %" PRIu64 "\nrole %s\nterm %" PRIu64 "\n", st.id, rlog_role_name(st.role),
               st.term);
        if (st.leader_id)
            printf("leader %" PRIu64 " %s\n", st.leader_id, st.leader_address);
        else
            printf("leader none\n");
        printf("first_offset %" PRIu64 "\ncommit_offset %" PRIu64 "\nlast_offset %" PRIu64
               "\nlast_index %" PRIu64 "\ncommit_index %" PRIu64 "\n",
               st.first_offset, st.commit_offset, st.last_offset, st.last_index,
               st.commit_index);
        if (st.fatal)
            printf("fatal %s %s\n", rlog_errname(st.fatal), st.fatal_msg);
        else
            printf("fatal no\n");
        if (st.catchup_target)
            printf("catchup %" PRIu64 " of %" PRIu64 "\n", st.catchup_index, st.catchup_target);
        else
            printf("catchup none\n");
        printf("cache %" PRIu64 " bytes, %" PRIu64 " hits, %" PRIu64 " misses\n", st.cache_bytes,
               st.cache_hits, st.cache_misses);
        if (have_peer_security)
            printf("peer_security %s\nrefused_connections %" PRIu64 "\nrejected_handshakes %" PRIu64
                   "\ntimed_out_connections %" PRIu64 "\nsend_queue_overflows %" PRIu64 "\n",
                   st.tls ? "tls" : "INSECURE", st.refused_connections, st.rejected_handshakes,
                   st.timed_out_connections, st.send_queue_overflows);
        printf("fetch_serve_refused %" PRIu64 "\nheld_dropped %" PRIu64 "\n",
               st.fetch_serve_refused, st.held_dropped);
        printf("damaged_ranges %" PRIu64 "\nrepaired_ranges %" PRIu64 "\nrepaired_entries %" PRIu64
               "\nunreadable_entries %" PRIu64 "\n", st.damaged_ranges, st.repaired_ranges,
               st.repaired_entries, st.unreadable_entries);
        printf("forwarded_appends %" PRIu64 "\nforwards_served %" PRIu64
               "\nforward_refused %" PRIu64 "\n", st.forwarded_appends, st.forwards_served,
               st.forward_refused);
        printf("retention_trims %" PRIu64 "\n", st.retention_trims);
        for (unsigned i = 0; i < st.n_peers; i++)
            printf("peer %" PRIu64 " %s %s %" PRIu64 "\n", st.peers[i].id, st.peers[i].address,
                   st.peers[i].voter ? "voter" : "nonvoter", st.peers[i].match_index);
    }
    return 0;
}

int cmd_status(struct copts *o, int argc, char **argv)
{
    if (argc != 0) {
        fprintf(stderr, "%s status: unexpected argument '%s'\n", progname, argv[0]);
        usage_status(stderr);
        return EXIT_USAGE;
    }
    struct buf req = {0};
    size_t at = begin_request(&req, o, 'S');
    end_frame(&req, at);
    struct end e;
    int rc = call_node(o, "status", &req, &e, print_status, o);
    free(req.p);
    if (rc != 0)
        return rc;
    return e.code == 0 ? 0 : report_error("status", &e);
}

/* ---- membership ---- */

void usage_add_node(FILE *f)
{
    fprintf(f,
            "usage: %s add-node --control PATH [--log NAME] [--json]\n"
            "                        [--timeout SEC] ID HOST:PORT\n"
            "\n"
            "Adds node ID, listening at HOST:PORT, to the cluster. Start it first with\n"
            "`%s node --join`, its --cluster listing the cluster including itself. It\n"
            "catches up as a non-voter, then becomes a voter; this returns when it votes.\n"
            "Must be sent to the leader's node.\n"
            "\n"
            "Exit status: 0 added; 1 usage; 3 not the leader (its id and address are\n"
            "printed); 5 cannot reach the node (or no answer within --timeout, default\n"
            "30 s: the change may still complete); 6 other errors (RLOG_EBUSY: another\n"
            "change is under way; RLOG_EINVAL: already a member or a bad address).\n",
            progname, progname);
}

void usage_remove_node(FILE *f)
{
    fprintf(f,
            "usage: %s remove-node --control PATH [--log NAME] [--json]\n"
            "                           [--timeout SEC] ID\n"
            "\n"
            "Removes node ID from the cluster (stop its process afterwards). Must be sent\n"
            "to the leader's node; to remove the leader, `transfer` first.\n"
            "\n"
            "Exit status: 0 removed; 1 usage; 3 not the leader; 5 cannot reach the node;\n"
            "6 other errors (RLOG_EINVAL: not a member; RLOG_EBUSY: another change).\n",
            progname);
}

void usage_transfer(FILE *f)
{
    fprintf(f,
            "usage: %s transfer --control PATH [--log NAME] [--json]\n"
            "                        [--timeout SEC] [ID]\n"
            "\n"
            "Hands leadership to voter ID (default: the most up-to-date follower) and\n"
            "prints the new leader once the handoff is done. Must be sent to the leader's\n"
            "node.\n"
            "\n"
            "Exit status: 0 done; 1 usage; 3 not the leader; 5 cannot reach the node;\n"
            "6 other errors (RLOG_ETIMEOUT: the handoff did not complete).\n",
            progname);
}

void usage_trim(FILE *f)
{
    fprintf(f,
            "usage: %s trim --control PATH [--log NAME] [--json] [--timeout SEC] OFFSET\n"
            "\n"
            "Retention: drops every record before OFFSET on every replica (rlog_trim).\n"
            "Reads of those offsets then fail as trimmed on every node; later offsets do\n"
            "not change. Trimming to a point at or before the current one does nothing.\n"
            "Must be sent to the leader's node.\n"
            "\n"
            "Exit status: 0 done; 1 usage; 3 not the leader; 5 cannot reach the node;\n"
            "6 other errors (RLOG_EINVAL: OFFSET is beyond the committed end).\n",
            progname);
}

void usage_barrier(FILE *f)
{
    fprintf(f,
            "usage: %s barrier --control PATH [--log NAME] [--json] [--timeout SEC]\n"
            "\n"
            "A read barrier (rlog_barrier), on any node: prints an offset B such that\n"
            "every record whose append completed before the command started is below B,\n"
            "once the node has every record before B committed, so a read there of any\n"
            "offset below B succeeds. The leader commits an empty barrier entry of its\n"
            "term; a follower asks the leader for it.\n"
            "\n"
            "Exit status: 0 done; 1 usage; 3 no leader known or reachable (try again);\n"
            "5 cannot reach the node; 6 other errors (RLOG_ETIMEOUT).\n",
            progname);
}

int cmd_barrier(struct copts *o, int argc, char **argv)
{
    (void)argv;
    if (argc != 0) {
        fprintf(stderr, "%s barrier: takes no arguments\n", progname);
        usage_barrier(stderr);
        return EXIT_USAGE;
    }
    struct buf req = {0};
    size_t at = begin_request(&req, o, 'B');
    end_frame(&req, at);
    struct end e;
    int rc = call_node(o, "barrier", &req, &e, NULL, NULL);
    free(req.p);
    if (rc != 0)
        return rc;
    if (e.code != 0)
        return report_error("barrier", &e);
    if (o->json)
        printf("{\"barrier\":%" PRIu64 "}\n", e.value);
    else
        printf("%" PRIu64 "\n", e.value);
    fflush(stdout);
    return 0;
}

/* ---- metrics ---- */

void usage_metrics(FILE *f)
{
    fprintf(f,
            "usage: %s metrics --control PATH [--log NAME] [--timeout SEC]\n"
            "\n"
            "Prints the node's metrics (rlog_metrics(3)) in the Prometheus text format,\n"
            "as `node --metrics-address` serves them over HTTP. On a node started with\n"
            "--many-logs: every open log's, each sample labelled log=\"NAME\" (one\n"
            "exposition, rlog_metrics_text_many), or with --log NAME that log's only.\n",
            progname);
}

static int print_metrics(void *arg, const unsigned char *p, size_t len)
{
    (void)arg;
    struct rd r = {.p = p, .len = len};
    if (get_u8(&r) != 'M')
        return -1;
    uint32_t n = get_u32(&r);
    const unsigned char *text = get_bytes(&r, n);
    if (!text || r.pos != r.len)
        return -1;
    fwrite(text, 1, n, stdout);
    return fflush(stdout) == 0 ? 0 : -1;
}

int cmd_metrics(struct copts *o, int argc, char **argv)
{
    if (argc != 0 || o->json) {
        fprintf(stderr, "%s metrics: %s '%s'\n", progname, argc ? "unexpected argument" :
                "the text format only; not", argc ? argv[0] : "--json");
        usage_metrics(stderr);
        return EXIT_USAGE;
    }
    struct buf req = {0};
    size_t at = begin_request(&req, o, 'M');
    end_frame(&req, at);
    struct end e;
    int rc = call_node(o, "metrics", &req, &e, print_metrics, NULL);
    free(req.p);
    if (rc != 0)
        return rc;
    return e.code == 0 ? 0 : report_error("metrics", &e);
}

int cmd_member(const char *cmd, struct copts *o, int argc, char **argv)
{
    uint8_t op = strcmp(cmd, "add-node") == 0      ? 'N'
                 : strcmp(cmd, "remove-node") == 0 ? 'X'
                 : strcmp(cmd, "trim") == 0        ? 'P'
                                                   : 'L';
    void (*help)(FILE *) = op == 'N'   ? usage_add_node
                           : op == 'X' ? usage_remove_node
                           : op == 'P' ? usage_trim
                                       : usage_transfer;
    int want = op == 'N' ? 2 : 1;
    if (argc != want && !(op == 'L' && argc == 0)) {
        fprintf(stderr, "%s %s: expected %s\n", progname, cmd,
                op == 'N' ? "ID HOST:PORT" : op == 'X' ? "one ID" : op == 'P' ? "one OFFSET"
                                                                               : "at most one ID");
        help(stderr);
        return EXIT_USAGE;
    }
    uint64_t id = 0;
    if (op == 'P' && parse_u64(argv[0], &id) != 0) {
        fprintf(stderr, "%s trim: OFFSET must be a number, not '%s'\n", progname, argv[0]);
        return EXIT_USAGE;
    }
    if (op != 'P' && argc > 0 && parse_node_id(cmd, argv[0], &id) != 0)
        return EXIT_USAGE;
    if (op == 'N' && check_host_port(cmd, argv[1]) != 0)
        return EXIT_USAGE;
    struct buf req = {0};
    size_t at = begin_request(&req, o, op);
    put_u64(&req, id);
    if (op == 'N')
        put_str(&req, argv[1]);
    end_frame(&req, at);
    struct end e;
    int rc = call_node(o, cmd, &req, &e, NULL, NULL);
    free(req.p);
    if (rc != 0)
        return rc;
    if (e.code != 0)
        return report_error(cmd, &e);
    if (op == 'N') {
        if (o->json) {
            printf("{\"added\":%" PRIu64 ",\"address\":", id);
            json_string(stdout, (const unsigned char *)argv[1], strlen(argv[1]));
            fputs("}\n", stdout);
        } else {
            printf("added node %" PRIu64 " at %s\n", id, argv[1]);
        }
    } else if (op == 'X') {
        if (o->json)
            printf("{\"removed\":%" PRIu64 "}\n", id);
        else
            printf("removed node %" PRIu64 "\n", id);
    } else if (op == 'P') {
        if (o->json)
            printf("{\"trimmed_before\":%" PRIu64 "}\n", id);
        else
            printf("records before offset %" PRIu64 " are trimmed\n", id);
    } else if (o->json) {
        printf("{\"leader_id\":%" PRIu64 ",\"leader_address\":", e.leader_id);
        json_string(stdout, (const unsigned char *)e.leader_addr, strlen(e.leader_addr));
        fputs("}\n", stdout);
    } else if (e.leader_id) {
        printf("leader is now %" PRIu64 " at %s\n", e.leader_id, e.leader_addr);
    } else {
        printf("leadership handed off; the new leader is not known here yet\n");
    }
    fflush(stdout);
    return 0;
}
