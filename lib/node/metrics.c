/*
 * metrics — rlog_metrics's own counters (appends answered, entries
 * proposed, elections, leader changes), rlog_metrics (its collection on
 * the loop thread is beside rlog_status's, in serve.c), and the Prometheus
 * text rendering.
 *
 * Why this shape: the counters are bumped on the loop thread, which owns
 * everything they describe, so the append path pays an add and a clock
 * read per call and takes no lock; collection is one op on the loop, like
 * rlog_status, so one scrape sees one consistent moment (and works after a
 * failed stop, where the loop still answers).
 */
#include "node/metrics.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node/api.h"
#include "raftio/io.h"

/* ---- hooks (loop thread) ------------------------------------------------ */

void rl_metrics_answered(struct rlog *log, const struct rl_op *op)
{
    if (op->kind != RL_OP_APPEND || op->status != 0 || op->t0_us == 0)
        return; /* t0_us: set by a call on this node (not a member's forward) */
    struct rl_metrics *m = &log->metrics;
    m->appended_records += op->n;
    m->appended_bytes += op->bytes;
    rl_hist_add(&m->commit_us, rl_now_us() - op->t0_us);
}

void rl_metrics_proposed(struct rlog *log, uint64_t records)
{
    rl_hist_add(&log->metrics.entry_records, records);
}

void rl_metrics_raft_event(struct rlog *log)
{
    struct rl_metrics *m = &log->metrics;
    uint64_t term = log->raft.current_term;
    if (log->raft.state == RAFT_CANDIDATE && term != m->candidate_term) {
        m->elections++; /* one per term campaigned in */
        m->candidate_term = term;
    }
    raft_id leader = 0;
    const char *addr = NULL;
    raft_leader(&log->raft, &leader, &addr);
    if (leader && leader != m->leader) {
        m->leader_changes++;
        m->leader = leader;
    }
}

/* ---- rendering ----------------------------------------------------------- */

struct out {
    char *p;
    size_t len, cap;
    bool oom;
    char node[200]; /* the labels of every sample: `node="ID"`, and `,log="NAME"` */
};

static void put(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct out *o, const char *fmt, ...)
{
    for (int tries = 0; tries < 2 && !o->oom; tries++) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(o->p + o->len, o->cap - o->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            o->oom = true;
            return;
        }
        if ((size_t)n < o->cap - o->len) {
            o->len += (size_t)n;
            return;
        }
        size_t cap = o->cap * 2 + (size_t)n;
        char *p = realloc(o->p, cap);
        if (!p) {
            o->oom = true;
            return;
        }
        o->p = p;
        o->cap = cap;
    }
}

static void family(struct out *o, const char *name, const char *type, const char *help)
{
    put(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void sample(struct out *o, const char *name, uint64_t v)
{
    put(o, "%s{%s} %" PRIu64 "\n", name, o->node, v);
}

/* Microseconds as decimal seconds, exactly. */
static const char *seconds(char *buf, size_t len, uint64_t us)
{
    snprintf(buf, len, "%" PRIu64 ".%06" PRIu64, us / 1000000u, us % 1000000u);
    return buf;
}

/* A histogram: cumulative buckets with `le` bounds, +Inf, sum, count. In
 * seconds when its observations are microseconds. */
static void histogram(struct out *o, const char *name, const char *help,
                      const struct rlog_histogram *h, bool us)
{
    char le[48], sum[48];
    family(o, name, "histogram", help);
    uint64_t cum = 0;
    for (unsigned i = 0; i < RLOG_HISTOGRAM_BUCKETS - 1; i++) {
        cum += h->buckets[i];
        uint64_t b = rlog_histogram_bound(i);
        if (us)
            seconds(le, sizeof le, b);
        else
            snprintf(le, sizeof le, "%" PRIu64, b);
        put(o, "%s_bucket{%s,le=\"%s\"} %" PRIu64 "\n", name, o->node, le, cum);
    }
    put(o, "%s_bucket{%s,le=\"+Inf\"} %" PRIu64 "\n", name, o->node, h->count);
    if (us)
        put(o, "%s_sum{%s} %s\n", name, o->node, seconds(sum, sizeof sum, h->sum));
    else
        put(o, "%s_sum{%s} %" PRIu64 "\n", name, o->node, h->sum);
    put(o, "%s_count{%s} %" PRIu64 "\n", name, o->node, h->count);
}

/* Values rlog_status gives, one family each. */
struct stat_family {
    const char *name, *type, *help;
    size_t off; /* of a uint64_t in struct rlog_status */
};

#define ST(f) offsetof(struct rlog_status, f)
static const struct stat_family stat_families[] = {
    {"rlog_term", "gauge", "Current raft term (as at the stop after a failed stop).", ST(term)},
    {"rlog_leader_id", "gauge", "Id of the leader this node knows; 0 if none.", ST(leader_id)},
    {"rlog_first_offset", "gauge", "Offset of the first readable record.", ST(first_offset)},
    {"rlog_commit_offset", "gauge", "Records before this offset are committed and visible.",
     ST(commit_offset)},
    {"rlog_last_offset", "gauge", "Offset after the last record stored here.", ST(last_offset)},
    {"rlog_last_index", "gauge", "Last raft index stored here.", ST(last_index)},
    {"rlog_commit_index", "gauge", "Raft index of the visible commit point.", ST(commit_index)},
    {"rlog_catchup_index", "gauge",
     "Catch-up by segment fetch: the next raft index wanted (0 when not catching up).",
     ST(catchup_index)},
    {"rlog_catchup_target", "gauge",
     "Catch-up by segment fetch: the raft index to reach (0 when not catching up).",
     ST(catchup_target)},
    {"rlog_cache_bytes", "gauge", "Bytes held by the read cache.", ST(cache_bytes)},
    {"rlog_cache_hits_total", "counter", "Reads served from the read cache.", ST(cache_hits)},
    {"rlog_cache_misses_total", "counter", "Reads served from the segment files.",
     ST(cache_misses)},
    {"rlog_refused_connections_total", "counter",
     "Peer connections refused over the connection caps.", ST(refused_connections)},
    {"rlog_rejected_handshakes_total", "counter",
     "Peer handshakes refused (bad hello, certificate refused, TLS failure).",
     ST(rejected_handshakes)},
    {"rlog_timed_out_connections_total", "counter",
     "Peer connections closed for a timeout (handshake, partial frame, idle).",
     ST(timed_out_connections)},
    {"rlog_send_queue_overflows_total", "counter",
     "Sends refused because a peer's send queue was full.", ST(send_queue_overflows)},
    {"rlog_fetch_serve_refused_total", "counter",
     "Fetch requests not served because a bound was reached.", ST(fetch_serve_refused)},
    {"rlog_held_dropped_total", "counter",
     "Held RequestVote/TimeoutNow messages dropped at held_max.", ST(held_dropped)},
    {"rlog_damaged_ranges_total", "counter", "Ranges of entries found damaged.",
     ST(damaged_ranges)},
    {"rlog_repaired_ranges_total", "counter", "Damaged ranges written back from a peer.",
     ST(repaired_ranges)},
    {"rlog_repaired_entries_total", "counter", "Damaged entries written back from a peer.",
     ST(repaired_entries)},
    {"rlog_unreadable_entries", "gauge", "Entries damaged here and awaiting repair.",
     ST(unreadable_entries)},
    {"rlog_forwarded_appends_total", "counter", "Appends this node forwarded to the leader.",
     ST(forwarded_appends)},
    {"rlog_forwards_served_total", "counter", "Forwarded appends this node took as leader.",
     ST(forwards_served)},
    {"rlog_forward_refused_total", "counter",
     "Forwarded appends refused at a member's max_forward_bytes.", ST(forward_refused)},
};

static void status_families(struct out *o, const struct rlog_status *st)
{
    static const int roles[] = {RLOG_ROLE_UNAVAILABLE, RLOG_ROLE_FOLLOWER, RLOG_ROLE_CANDIDATE,
                                RLOG_ROLE_LEADER};
    family(o, "rlog_role", "gauge", "1 for the node's current raft role (unavailable after a "
           "failed stop), 0 for the others.");
    for (unsigned i = 0; i < sizeof roles / sizeof roles[0]; i++)
        put(o, "rlog_role{%s,role=\"%s\"} %d\n", o->node, rlog_role_name(roles[i]),
            st->role == roles[i]);
    family(o, "rlog_failed_stop", "gauge", "1 once the node failed stop after a storage error.");
    sample(o, "rlog_failed_stop", st->fatal != 0);
    for (size_t i = 0; i < sizeof stat_families / sizeof stat_families[0]; i++) {
        const struct stat_family *f = &stat_families[i];
        uint64_t v;
        memcpy(&v, (const char *)st + f->off, sizeof v);
        family(o, f->name, f->type, f->help);
        sample(o, f->name, v);
    }
}

/* Per-member families: peer="ID" besides node. */
static void peer_family(struct out *o, const struct rlog_metrics *m, const char *name,
                        const char *type, const char *help, size_t off, bool is_int)
{
    family(o, name, type, help);
    for (unsigned i = 0; i < m->n_peers; i++) {
        const char *p = (const char *)&m->peers[i] + off;
        uint64_t v;
        if (is_int) {
            int x;
            memcpy(&x, p, sizeof x);
            v = (uint64_t)(x != 0);
        } else {
            memcpy(&v, p, sizeof v);
        }
        put(o, "%s{%s,peer=\"%" PRIu64 "\"} %" PRIu64 "\n", name, o->node, m->peers[i].id, v);
    }
}

#define PM(f) offsetof(struct rlog_peer_metrics, f)
static void peer_families(struct out *o, const struct rlog_metrics *m)
{
    peer_family(o, m, "rlog_peer_sent_bytes_total", "counter",
                "Bytes of frames written to the member.", PM(sent_bytes), false);
    peer_family(o, m, "rlog_peer_received_bytes_total", "counter",
                "Bytes read from the member's connections.", PM(received_bytes), false);
    peer_family(o, m, "rlog_peer_lag_entries", "gauge",
                "On the leader: raft entries the member lacks (0 elsewhere).", PM(lag_entries),
                false);
    peer_family(o, m, "rlog_peer_connected", "gauge",
                "1 while this node's connection to the member is up.", PM(connected), true);
}

static void own_families(struct out *o, const struct rlog_metrics *m)
{
    family(o, "rlog_appended_records_total", "counter",
           "Records of appends called on this node that completed successfully.");
    sample(o, "rlog_appended_records_total", m->appended_records);
    family(o, "rlog_appended_bytes_total", "counter",
           "Record bytes of appends called on this node that completed successfully.");
    sample(o, "rlog_appended_bytes_total", m->appended_bytes);
    histogram(o, "rlog_append_commit_seconds",
              "Latency from an append call on this node to its successful completion.",
              &m->append_commit_us, true);
    histogram(o, "rlog_entry_records", "Records per raft entry this node proposed as leader.",
              &m->entry_records, false);
    histogram(o, "rlog_store_sync_seconds", "Latency of the fdatasync of segment data.",
              &m->sync_us, true);
    histogram(o, "rlog_store_write_entries", "Raft entries per coalesced store write.",
              &m->write_entries, false);
    family(o, "rlog_store_written_bytes_total", "counter", "Bytes written to segment files.");
    sample(o, "rlog_store_written_bytes_total", m->written_bytes);
    family(o, "rlog_elections_total", "counter", "Elections this node started (one per term).");
    sample(o, "rlog_elections_total", m->elections);
    family(o, "rlog_leader_changes_total", "counter",
           "Times the leader this node knows changed to another node.");
    sample(o, "rlog_leader_changes_total", m->leader_changes);
}

static void extra_families(struct out *o, const struct rl_metrics_extra *x)
{
    family(o, "rlog_quiet", "gauge",
           "1 while the log is quiet: idle on a host's shared transport, its heartbeats stopped.");
    sample(o, "rlog_quiet", x->quiet);
    family(o, "rlog_quiesced_total", "counter",
           "Times this node, leading, quiesced the log (every member stopped its clock).");
    sample(o, "rlog_quiesced_total", x->quiesced);
    family(o, "rlog_quiet_wakes_total", "counter", "Times the log's clock ran again here.");
    sample(o, "rlog_quiet_wakes_total", x->quiet_wakes);
    family(o, "rlog_preferred_leader", "gauge",
           "The voter the log prefers as its leader (balance_leaders; 0: none).");
    sample(o, "rlog_preferred_leader", x->preferred_leader);
    family(o, "rlog_leader_balance_transfers_total", "counter",
           "Hand-overs of the lead to the preferred voter this node started (balance_leaders).");
    sample(o, "rlog_leader_balance_transfers_total", x->balance_transfers);
}

/* The labels of every sample: the node, and the log when it has a name
 * (a host's logs share the node id), its value escaped as Prometheus asks. */
static void labels(struct out *o, uint64_t id, const char *log)
{
    size_t n = (size_t)snprintf(o->node, sizeof o->node, "node=\"%" PRIu64 "\"", id);
    if (!log || !*log)
        return;
    n += (size_t)snprintf(o->node + n, sizeof o->node - n, ",log=\"");
    for (const char *c = log; *c && n + 4 < sizeof o->node; c++) {
        if (*c == '"' || *c == '\\')
            o->node[n++] = '\\';
        o->node[n++] = *c;
    }
    snprintf(o->node + n, sizeof o->node - n, "\"");
}

int rl_metrics_render(const struct rlog_metrics *m, const struct rl_metrics_extra *x, char **text,
                      size_t *len)
{
    struct out o = {.cap = 16384};
    o.p = malloc(o.cap);
    if (!o.p)
        return RLOG_ENOMEM;
    labels(&o, m->status.id, x ? x->log : NULL);
    status_families(&o, &m->status);
    own_families(&o, m);
    if (x)
        extra_families(&o, x);
    peer_families(&o, m);
    if (o.oom) {
        free(o.p);
        return RLOG_ENOMEM;
    }
    *text = o.p;
    *len = o.len;
    return 0;
}

int rlog_metrics(rlog *log, struct rlog_metrics *m)
{
    if (!log || !m)
        return rl_fail(RLOG_EINVAL, "metrics: NULL argument");
    struct rl_op op = {.kind = RL_OP_METRICS, .metrics = m};
    return rl_run_blocking(log, &op);
}

int rlog_metrics_text(rlog *log, char **text, size_t *len)
{
    if (!text || !len)
        return rlog_metrics(NULL, NULL); /* its RLOG_EINVAL and message */
    struct rlog_metrics *m = malloc(sizeof *m);
    if (!m) {
        rl_set_errmsg("metrics: out of memory");
        return RLOG_ENOMEM;
    }
    struct rl_metrics_extra x = {0};
    int rv = log ? 0 : RLOG_EINVAL;
    if (rv == 0) {
        struct rl_op op = {.kind = RL_OP_METRICS, .metrics = m, .metrics_extra = &x};
        rv = rl_run_blocking(log, &op);
    } else {
        rv = rlog_metrics(log, m); /* its RLOG_EINVAL and message */
    }
    if (rv == 0 && (rv = rl_metrics_render(m, &x, text, len)) != 0)
        rl_set_errmsg("metrics: out of memory for the text");
    free(m);
    return rv;
}
