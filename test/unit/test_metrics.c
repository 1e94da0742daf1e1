/* rlog_metrics (lib/common/counters.c, lib/node/metrics.c): the log2
 * histogram's buckets, bounds and sums; the Prometheus text, parsed back
 * (every family has HELP and TYPE, every sample the node label, buckets
 * cumulative up to +Inf = count); and the counters of a live one-node log
 * moving under appends. */
#include <check.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/counters.h"
#include "node/metrics.h"
#include "lib/ports.h"

START_TEST(test_bucket_bounds)
{
    static const uint64_t v[] = {0, 1, 2, 3, 4, 5, 7, 8, 9, 1000, 1024, 1025,
                                 (1u << 30) - 1, 1u << 30, (1u << 30) + 1, UINT64_MAX};
    for (size_t k = 0; k < sizeof v / sizeof v[0]; k++) {
        unsigned i = rl_hist_bucket(v[k]);
        ck_assert_uint_lt(i, RLOG_HISTOGRAM_BUCKETS);
        ck_assert_msg(v[k] <= rlog_histogram_bound(i), "%" PRIu64 " above its bucket %u", v[k], i);
        ck_assert_msg(i == 0 || v[k] > rlog_histogram_bound(i - 1), "%" PRIu64 " in bucket %u",
                      v[k], i);
    }
    ck_assert_uint_eq(rl_hist_bucket(2), 1);
    ck_assert_uint_eq(rl_hist_bucket(3), 2);
    ck_assert_uint_eq(rl_hist_bucket(1024), 10);
    ck_assert_uint_eq(rl_hist_bucket(1025), 11);
    ck_assert_uint_eq(rlog_histogram_bound(0), 1);
    ck_assert_uint_eq(rlog_histogram_bound(10), 1024);
    ck_assert_uint_eq(rlog_histogram_bound(RLOG_HISTOGRAM_BUCKETS - 1), UINT64_MAX);
    ck_assert_uint_eq(rlog_histogram_bound(1000), UINT64_MAX);
}
END_TEST

START_TEST(test_counts_and_sums)
{
    struct rl_hist h = {0};
    uint64_t sum = 0;
    for (uint64_t v = 0; v < 100; v++) {
        rl_hist_add(&h, v);
        sum += v;
    }
    rl_hist_add(&h, UINT64_C(1) << 40); /* past the last bound */
    struct rlog_histogram out;
    rl_hist_read(&h, &out);
    ck_assert_uint_eq(out.count, 101);
    ck_assert_uint_eq(out.sum, sum + (UINT64_C(1) << 40));
    ck_assert_uint_eq(out.buckets[0], 2);  /* 0, 1 */
    ck_assert_uint_eq(out.buckets[1], 1);  /* 2 */
    ck_assert_uint_eq(out.buckets[2], 2);  /* 3, 4 */
    ck_assert_uint_eq(out.buckets[7], 35); /* 65 .. 99 */
    ck_assert_uint_eq(out.buckets[RLOG_HISTOGRAM_BUCKETS - 1], 1);
}
END_TEST

/* ---- the text, parsed back ------------------------------------------------ */

struct fam {
    char name[96], type[16];
    int help;
};

struct parsed {
    struct fam fams[128];
    unsigned n;
    unsigned samples;
};

static struct fam *fam_of(struct parsed *p, const char *name)
{
    for (unsigned i = 0; i < p->n; i++)
        if (!strcmp(p->fams[i].name, name))
            return &p->fams[i];
    return NULL;
}

static struct fam *fam_add(struct parsed *p, const char *name)
{
    struct fam *f = fam_of(p, name);
    if (f)
        return f;
    ck_assert_uint_lt(p->n, 128);
    f = &p->fams[p->n++];
    snprintf(f->name, sizeof f->name, "%s", name);
    return f;
}

/* A sample's family: its name, less a histogram's suffix. */
static struct fam *sample_fam(struct parsed *p, const char *name)
{
    struct fam *f = fam_of(p, name);
    if (f)
        return f;
    static const char *const sfx[] = {"_bucket", "_sum", "_count"};
    for (unsigned i = 0; i < 3; i++) {
        size_t n = strlen(name), s = strlen(sfx[i]);
        char base[96];
        if (n > s && n - s < sizeof base && !strcmp(name + n - s, sfx[i])) {
            memcpy(base, name, n - s);
            base[n - s] = '\0';
            f = fam_of(p, base);
            if (f && !strcmp(f->type, "histogram"))
                return f;
        }
    }
    return NULL;
}

/* Checks one histogram family's samples: le increasing, counts cumulative,
 * +Inf last and equal to _count. */
static void check_histogram(const char *text, const char *name, uint64_t want_count)
{
    char key[128];
    snprintf(key, sizeof key, "\n%s_bucket{", name);
    const char *p = text;
    double last_le = -1;
    uint64_t last = 0, inf = UINT64_MAX;
    unsigned n = 0;
    while ((p = strstr(p, key)) != NULL) {
        p += strlen(key);
        const char *le = strstr(p, "le=\"");
        ck_assert_ptr_nonnull(le);
        le += 4;
        uint64_t v;
        const char *val = strchr(le, '}');
        ck_assert_int_eq(sscanf(val, "} %" SCNu64, &v), 1);
        ck_assert_msg(v >= last, "%s: buckets not cumulative", name);
        last = v;
        n++;
        if (!strncmp(le, "+Inf\"", 5)) {
            inf = v;
            continue;
        }
        ck_assert_msg(inf == UINT64_MAX, "%s: a bucket after +Inf", name);
        double b = strtod(le, NULL);
        ck_assert_msg(b > last_le, "%s: le not increasing", name);
        last_le = b;
    }
    ck_assert_uint_eq(n, RLOG_HISTOGRAM_BUCKETS);
    ck_assert_uint_eq(inf, want_count);
    snprintf(key, sizeof key, "\n%s_count{node=\"7\"} %" PRIu64 "\n", name, want_count);
    ck_assert_msg(strstr(text, key), "no %s", key);
}

static void parse(const char *text, size_t len, struct parsed *p)
{
    memset(p, 0, sizeof *p);
    ck_assert_uint_eq(strlen(text), len);
    ck_assert(len > 0 && text[len - 1] == '\n');
    char *copy = strdup(text), *save = NULL;
    for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char name[96], word[16];
        if (sscanf(line, "# HELP %95s", name) == 1) {
            fam_add(p, name)->help = 1;
            ck_assert_msg(strlen(line) > strlen(name) + 8, "empty HELP: %s", line);
        } else if (sscanf(line, "# TYPE %95s %15s", name, word) == 2) {
            struct fam *f = fam_of(p, name);
            ck_assert_msg(f && f->help, "TYPE before HELP: %s", line);
            snprintf(f->type, sizeof f->type, "%s", word);
        } else {
            ck_assert_msg(line[0] != '#', "stray comment: %s", line);
            ck_assert_msg(sscanf(line, "%95[a-z_]{", name) == 1, "bad sample: %s", line);
            struct fam *f = sample_fam(p, name);
            ck_assert_msg(f && f->type[0], "sample without HELP/TYPE: %s", line);
            ck_assert_msg(strstr(line, "{node=\"7\""), "no node label: %s", line);
            if (!strncmp(name, "rlog_peer_", 10))
                ck_assert_msg(strstr(line, ",peer=\""), "no peer label: %s", line);
            if (!strcmp(f->type, "counter"))
                ck_assert_msg(strstr(name, "_total"), "counter without _total: %s", name);
            p->samples++;
        }
    }
    free(copy);
}

START_TEST(test_text_renders_and_parses)
{
    struct rlog_metrics *m = calloc(1, sizeof *m);
    ck_assert_ptr_nonnull(m);
    m->status.id = 7;
    m->status.role = RLOG_ROLE_LEADER;
    m->status.cache_hits = 42;
    m->appended_records = 1000;
    struct rl_hist h = {0};
    rl_hist_add(&h, 1);   /* 1 us */
    rl_hist_add(&h, 300); /* 300 us */
    rl_hist_add(&h, 2500000); /* 2.5 s */
    rl_hist_read(&h, &m->append_commit_us);
    m->entry_records.count = m->entry_records.buckets[3] = 5;
    m->n_peers = 2;
    m->peers[0] = (struct rlog_peer_metrics){.id = 8, .sent_bytes = 123, .connected = 1};
    m->peers[1] = (struct rlog_peer_metrics){.id = 9, .lag_entries = 4};
    char *text = NULL;
    size_t len = 0;
    ck_assert_int_eq(rl_metrics_render(m, NULL, &text, &len), 0);
    struct parsed *p = calloc(1, sizeof *p);
    parse(text, len, p);
    ck_assert_uint_ge(p->n, 30);
    for (unsigned i = 0; i < p->n; i++)
        ck_assert_msg(p->fams[i].help && p->fams[i].type[0], "%s lacks HELP or TYPE",
                      p->fams[i].name);
    check_histogram(text, "rlog_append_commit_seconds", 3);
    check_histogram(text, "rlog_entry_records", 5);
    check_histogram(text, "rlog_store_sync_seconds", 0);
    static const char *const want[] = {
        "\nrlog_append_commit_seconds_bucket{node=\"7\",le=\"0.000001\"} 1\n",
        "\nrlog_append_commit_seconds_bucket{node=\"7\",le=\"0.000512\"} 2\n",
        "\nrlog_append_commit_seconds_bucket{node=\"7\",le=\"2.097152\"} 2\n",
        "\nrlog_append_commit_seconds_bucket{node=\"7\",le=\"4.194304\"} 3\n",
        "\nrlog_append_commit_seconds_sum{node=\"7\"} 2.500301\n",
        "\nrlog_entry_records_bucket{node=\"7\",le=\"4\"} 0\n",
        "\nrlog_entry_records_bucket{node=\"7\",le=\"8\"} 5\n",
        "\nrlog_role{node=\"7\",role=\"leader\"} 1\n",
        "\nrlog_role{node=\"7\",role=\"follower\"} 0\n",
        "\nrlog_cache_hits_total{node=\"7\"} 42\n",
        "\nrlog_appended_records_total{node=\"7\"} 1000\n",
        "\nrlog_peer_sent_bytes_total{node=\"7\",peer=\"8\"} 123\n",
        "\nrlog_peer_connected{node=\"7\",peer=\"8\"} 1\n",
        "\nrlog_peer_connected{node=\"7\",peer=\"9\"} 0\n",
        "\nrlog_peer_lag_entries{node=\"7\",peer=\"9\"} 4\n",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        ck_assert_msg(strstr(text, want[i]), "missing: %s", want[i] + 1);
    rlog_free(text);
    free(p);
    free(m);
}
END_TEST

/* ---- a live node ------------------------------------------------------------ */

static void quiet(void *arg, int level, const char *line)
{
    (void)arg, (void)level, (void)line;
}

START_TEST(test_live_node_counts)
{
    char base[] = "/tmp/test_metrics.XXXXXX", dir[64], address[32], err[256];
    ck_assert_ptr_nonnull(mkdtemp(base));
    snprintf(dir, sizeof dir, "%s/data", base);
    snprintf(address, sizeof address, "127.0.0.1:%d", th_free_port(27100));
    struct rlog_peer self = {1, address};
    struct rlog_config c;
    rlog_config_init(&c);
    c.id = 1;
    c.address = address;
    c.data_dir = dir;
    c.peers = &self;
    c.n_peers = 1;
    c.log_fn = quiet;
    rlog *log;
    int rv = rlog_open(&c, &log, err, sizeof err);
    ck_assert_msg(rv == 0, "open: %s: %s", rlog_errname(rv), err);
    struct rlog_metrics *m = calloc(1, sizeof *m);
    ck_assert_int_eq(rlog_metrics(log, m), 0);
    uint64_t syncs0 = m->sync_us.count;
    struct rlog_buf recs[4] = {{"a", 1}, {"bb", 2}, {"ccc", 3}, {"dddd", 4}};
    for (int i = 0; i < 10; i++)
        ck_assert_int_eq(rlog_append_batch(log, recs, 4, NULL), 0);
    ck_assert_int_eq(rlog_metrics(log, m), 0);
    ck_assert_int_eq(m->status.role, RLOG_ROLE_LEADER);
    ck_assert_uint_eq(m->appended_records, 40);
    ck_assert_uint_eq(m->appended_bytes, 100);
    ck_assert_uint_eq(m->append_commit_us.count, 10);
    ck_assert_uint_ge(m->sync_us.count, syncs0 + 10);
    ck_assert_uint_ge(m->write_entries.sum, 10);
    ck_assert_uint_ge(m->entry_records.sum, 40);
    ck_assert_uint_ge(m->written_bytes, 100);
    ck_assert_uint_eq(m->elections + m->leader_changes >= 1, 1);
    ck_assert_uint_eq(m->n_peers, 0); /* no member but itself */
    char *text;
    size_t len;
    ck_assert_int_eq(rlog_metrics_text(log, &text, &len), 0);
    ck_assert_ptr_nonnull(strstr(text, "\nrlog_appended_records_total{node=\"1\"} 40\n"));
    ck_assert_ptr_nonnull(strstr(text, "\nrlog_append_commit_seconds_count{node=\"1\"} 10\n"));
    rlog_free(text);
    ck_assert_int_eq(rlog_metrics(log, NULL), RLOG_EINVAL);
    ck_assert_int_eq(rlog_metrics_text(log, NULL, &len), RLOG_EINVAL);
    ck_assert_int_eq(rlog_close(log), 0);
    free(m);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", base);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("metrics");
    TCase *tc = tcase_create("metrics");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_bucket_bounds);
    tcase_add_test(tc, test_counts_and_sums);
    tcase_add_test(tc, test_text_renders_and_parses);
    tcase_add_test(tc, test_live_node_counts);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
