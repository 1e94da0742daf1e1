/* A data directory's IDENTITY: the derived cluster name, the file's round
 * trip, damage and crash safety, and every rule of the checks at open
 * (node/identity.h). */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/fault_fs.h"
#include "liblog.h"
#include "node/identity.h"

static char dir[64];

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/rlog-identity-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void teardown(void)
{
    rl_fs_faults_clear();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup of %s failed\n", dir);
}

static const struct rlog_peer founders[] = {
    {1, "10.0.0.1:7001"}, {2, "10.0.0.2:7001"}, {3, "10.0.0.3:7001"}};

/* Node `id` of the founders' cluster, optionally named. */
static struct rlog_config config(uint64_t id, const char *name)
{
    struct rlog_config c;
    rlog_config_init(&c);
    c.id = id;
    c.address = founders[id - 1].address;
    c.data_dir = dir;
    c.peers = founders;
    c.n_peers = 3;
    c.cluster_name = name;
    return c;
}

START_TEST(test_derived_name_ignores_order_and_follows_content)
{
    const struct rlog_peer reversed[] = {founders[2], founders[1], founders[0]};
    const struct rlog_peer moved[] = {founders[0], {2, "10.0.0.9:7001"}, founders[2]};
    const struct rlog_peer renumbered[] = {founders[0], founders[1], {4, "10.0.0.3:7001"}};
    uint64_t h = rl_identity_peers_hash(founders, 3);
    ck_assert_uint_eq(rl_identity_peers_hash(reversed, 3), h);
    ck_assert_uint_ne(rl_identity_peers_hash(moved, 3), h);
    ck_assert_uint_ne(rl_identity_peers_hash(renumbered, 3), h);
    ck_assert_uint_ne(rl_identity_peers_hash(founders, 2), h);

    struct rlog_config c = config(2, NULL);
    struct rl_identity id;
    rl_identity_of(&c, &id);
    char want[64];
    snprintf(want, sizeof want, "peers-%016llx", (unsigned long long)h);
    ck_assert_uint_eq(id.node, 2);
    ck_assert_str_eq(id.cluster, want);
    ck_assert(!id.named);
    ck_assert_uint_eq(id.peers_hash, h);
    c.cluster_name = ""; /* same as NULL */
    rl_identity_of(&c, &id);
    ck_assert_str_eq(id.cluster, want);
    c.cluster_name = "prod-eu";
    rl_identity_of(&c, &id);
    ck_assert_str_eq(id.cluster, "prod-eu");
    ck_assert(id.named);
    ck_assert_uint_eq(id.peers_hash, h);
}
END_TEST

START_TEST(test_file_round_trip)
{
    struct rl_identity id, back;
    char err[256] = "";
    ck_assert_int_eq(rl_identity_load(dir, &back, err, sizeof err), 1); /* none yet */
    struct rlog_config c = config(3, "prod-eu");
    rl_identity_of(&c, &id);
    ck_assert_int_eq(rl_identity_save(dir, &id, err, sizeof err), 0);
    ck_assert_int_eq(rl_identity_load(dir, &back, err, sizeof err), 0);
    ck_assert_uint_eq(back.node, 3);
    ck_assert_str_eq(back.cluster, "prod-eu");
    ck_assert(back.named);
    ck_assert_uint_eq(back.peers_hash, id.peers_hash);
    c.cluster_name = NULL;
    rl_identity_of(&c, &id);
    ck_assert_int_eq(rl_identity_save(dir, &id, err, sizeof err), 0); /* replaces */
    ck_assert_int_eq(rl_identity_load(dir, &back, err, sizeof err), 0);
    ck_assert_str_eq(back.cluster, id.cluster);
    ck_assert(!back.named);
}
END_TEST

/* Every changed byte of the file is caught, never read as another identity. */
START_TEST(test_damage_is_corruption)
{
    struct rl_identity id, back;
    char err[256] = "", path[128];
    struct rlog_config c = config(1, NULL);
    rl_identity_of(&c, &id);
    ck_assert_int_eq(rl_identity_save(dir, &id, err, sizeof err), 0);
    snprintf(path, sizeof path, "%s/IDENTITY", dir);
    FILE *f = fopen(path, "r+");
    ck_assert_ptr_nonnull(f);
    char text[512];
    size_t n = fread(text, 1, sizeof text, f);
    for (size_t i = 0; i < n; i++) {
        char was = text[i];
        text[i] = was == '1' ? '2' : '1';
        rewind(f);
        ck_assert_uint_eq(fwrite(text, 1, n, f), n);
        fflush(f);
        int rv = rl_identity_load(dir, &back, err, sizeof err);
        ck_assert_msg(rv == RLOG_ECORRUPT, "byte %zu changed: %s (%s)", i, rlog_errname(rv), err);
        ck_assert_msg(strstr(err, "IDENTITY"), "%s", err);
        text[i] = was;
    }
    fclose(f);
}
END_TEST

/* A failed write or a power loss while replacing leaves the old identity. */
START_TEST(test_replacement_is_crash_safe)
{
    struct rl_identity a, b, back;
    char err[256] = "";
    struct rlog_config c = config(1, "alpha");
    rl_identity_of(&c, &a);
    ck_assert_int_eq(rl_identity_save(dir, &a, err, sizeof err), 0);
    c.cluster_name = "beta";
    rl_identity_of(&c, &b);
    struct rl_fs_faults fault = {.sync_fail_at = 1, .sync_errno = EIO};
    rl_fs_faults_set(&fault);
    ck_assert_int_eq(rl_identity_save(dir, &b, err, sizeof err), RLOG_EIO);
    ck_assert_msg(strstr(err, "IDENTITY: cannot write"), "%s", err);
    rl_fs_faults_clear();
    ck_assert_int_eq(rl_identity_load(dir, &back, err, sizeof err), 0);
    ck_assert_str_eq(back.cluster, "alpha");

    struct rl_fs_faults crash = {.crash_at_sync = 1, .tear_bytes = 20};
    rl_fs_faults_set(&crash);
    ck_assert_int_ne(rl_identity_save(dir, &b, err, sizeof err), 0);
    rl_fs_faults_clear();
    ck_assert_int_eq(rl_identity_load(dir, &back, err, sizeof err), 0);
    ck_assert_str_eq(back.cluster, "alpha");
}
END_TEST

/* check(have = directory created by `made`, want = opening with `opening`) */
static int check_open(struct rlog_config made, struct rlog_config opening, char *err, size_t len)
{
    struct rl_identity have, want;
    rl_identity_of(&made, &have);
    rl_identity_of(&opening, &want);
    return rl_identity_check(dir, &have, &want, err, len);
}

START_TEST(test_check_node_and_cluster)
{
    char err[256] = "", want[128];
    ck_assert_int_eq(check_open(config(3, NULL), config(3, NULL), err, sizeof err), 0);
    ck_assert_int_eq(check_open(config(3, "a"), config(3, "a"), err, sizeof err), 0);

    ck_assert_int_eq(check_open(config(3, NULL), config(2, NULL), err, sizeof err),
                     RLOG_EIDENTITY);
    snprintf(want, sizeof want, "data directory %s belongs to node 3, not node 2", dir);
    ck_assert_str_eq(err, want);

    ck_assert_int_eq(check_open(config(1, "a"), config(1, "b"), err, sizeof err), RLOG_EIDENTITY);
    snprintf(want, sizeof want, "data directory %s belongs to cluster a, not cluster b", dir);
    ck_assert_str_eq(err, want);

    ck_assert_int_eq(check_open(config(1, "a"), config(1, NULL), err, sizeof err),
                     RLOG_EIDENTITY);
    ck_assert_msg(strstr(err, "belongs to cluster a, but config.cluster_name is not set"), "%s",
                  err);

    ck_assert_int_eq(check_open(config(1, NULL), config(1, "b"), err, sizeof err),
                     RLOG_EIDENTITY);
    ck_assert_msg(strstr(err, "(named after the peers it was created with), not cluster b"), "%s",
                  err);

    /* The derived name, given explicitly, matches: a way to keep the
     * identity while the peers list changes. */
    struct rl_identity derived;
    struct rlog_config c = config(1, NULL);
    rl_identity_of(&c, &derived);
    ck_assert_int_eq(check_open(config(1, NULL), config(1, derived.cluster), err, sizeof err), 0);

    /* Without a name, the peers list is not compared here: membership
     * changes it, and check_members judges it against what is stored. */
    struct rlog_config other = config(1, NULL);
    const struct rlog_peer grown[] = {founders[0], founders[1], founders[2], {4, "10.0.0.4:7001"}};
    other.peers = grown;
    other.n_peers = 4;
    ck_assert_int_eq(check_open(config(1, NULL), other, err, sizeof err), 0);
}
END_TEST

/* A raft configuration of `n` servers. */
static void stored(struct raft_configuration *conf, const struct rlog_peer *p, unsigned n)
{
    raft_configuration_init(conf);
    for (unsigned i = 0; i < n; i++)
        ck_assert_int_eq(raft_configuration_add(conf, p[i].id, p[i].address, RAFT_VOTER), 0);
}

static int members(const struct rlog_config *c, const struct raft_configuration *conf, char *err,
                   size_t len)
{
    struct rlog_config made = config(1, NULL); /* every case: node 1's founders' directory */
    struct rl_identity have;
    rl_identity_of(&made, &have);
    return rl_identity_check_members(dir, c, &have, conf, err, len);
}

START_TEST(test_check_members)
{
    char err[256] = "";
    struct raft_configuration conf;
    struct rlog_config c = config(1, NULL);

    stored(&conf, founders, 0); /* nothing stored yet */
    ck_assert_int_eq(members(&c, &conf, err, sizeof err), 0);
    raft_configuration_close(&conf);

    stored(&conf, founders, 3);
    ck_assert_int_eq(members(&c, &conf, err, sizeof err), 0);
    raft_configuration_close(&conf);

    /* Node 1 was removed since. */
    stored(&conf, founders + 1, 2);
    ck_assert_int_eq(members(&c, &conf, err, sizeof err), RLOG_EIDENTITY);
    ck_assert_msg(strstr(err, "node 1 is not a member of the cluster stored in") &&
                      strstr(err, "(members: 2, 3)"),
                  "%s", err);
    c.join = 1; /* being added again */
    ck_assert_int_eq(members(&c, &conf, err, sizeof err), 0);
    c.join = 0;
    raft_configuration_close(&conf);

    /* Stored: node 1 elsewhere. */
    const struct rlog_peer elsewhere[] = {{1, "10.0.0.9:7001"}, founders[1], founders[2]};
    stored(&conf, elsewhere, 3);
    ck_assert_int_eq(members(&c, &conf, err, sizeof err), RLOG_EIDENTITY);
    ck_assert_msg(strstr(err, "has node 1 at 10.0.0.9:7001 in its stored cluster configuration, "
                              "but config.address is 10.0.0.1:7001"),
                  "%s", err);
    raft_configuration_close(&conf);

    /* Membership moved on: node 2 left, node 4 came, node 3 moved (removed
     * and added back at another address). */
    const struct rlog_peer now[] = {founders[0], {3, "10.0.0.33:7001"}, {4, "10.0.0.4:7001"}};
    stored(&conf, now, 3);
    ck_assert_int_eq(members(&c, &conf, err, sizeof err), 0); /* the founders' list */
    c.peers = now;                                          /* the current one */
    ck_assert_int_eq(members(&c, &conf, err, sizeof err), 0);
    const struct rlog_peer plus5[] = {now[0], now[1], now[2], {5, "10.0.0.5:7001"}};
    c.peers = plus5; /* about to be added: not a member yet */
    c.n_peers = 4;
    ck_assert_int_eq(members(&c, &conf, err, sizeof err), 0);
    const struct rlog_peer stale[] = {founders[0], founders[2], now[2]};
    c.peers = stale; /* neither the founders' list nor the membership */
    c.n_peers = 3;
    ck_assert_int_eq(members(&c, &conf, err, sizeof err), RLOG_EIDENTITY);
    ck_assert_msg(strstr(err, "config.peers has node 3 at 10.0.0.3:7001, but the cluster stored "
                              "in") &&
                      strstr(err, "has it at 10.0.0.33:7001"),
                  "%s", err);
    const struct rlog_peer swapped[] = {founders[0], {4, "10.0.0.33:7001"}, {3, "10.0.0.4:7001"}};
    c.peers = swapped;
    ck_assert_int_eq(members(&c, &conf, err, sizeof err), RLOG_EIDENTITY);
    ck_assert_msg(strstr(err, "config.peers has node 4 at 10.0.0.33:7001"), "%s", err);
    const struct rlog_peer taken[] = {founders[0], now[1], {6, "10.0.0.4:7001"}};
    c.peers = taken; /* node 4's address under another id */
    ck_assert_int_eq(members(&c, &conf, err, sizeof err), RLOG_EIDENTITY);
    ck_assert_msg(strstr(err, "config.peers has node 6 at 10.0.0.4:7001, but the cluster stored "
                              "in") &&
                      strstr(err, "has node 4 there"),
                  "%s", err);
    raft_configuration_close(&conf);
}
END_TEST

static Suite *identity_suite(void)
{
    Suite *s = suite_create("identity");
    TCase *tc = tcase_create("identity");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_derived_name_ignores_order_and_follows_content);
    tcase_add_test(tc, test_file_round_trip);
    tcase_add_test(tc, test_damage_is_corruption);
    tcase_add_test(tc, test_replacement_is_crash_safe);
    tcase_add_test(tc, test_check_node_and_cluster);
    tcase_add_test(tc, test_check_members);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(identity_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
