/*
 * identity — whose a data directory is.
 *
 * When a directory is created, its IDENTITY file records the id of the node
 * it belongs to and the name of its cluster: config.cluster_name, or, when
 * that is unset, "peers-" and a hash of the sorted peers list the directory
 * was created with (every node bootstrapped from the same list derives the
 * same name, with no coordination), plus that hash. Every open then checks,
 * in order:
 *   1. the node id equals the recorded one;
 *   2. the cluster name: a name in the configuration must equal the
 *      recorded one, and a directory recorded under an explicit name needs
 *      that name in the configuration;
 *   3. (once libraft has loaded it) the membership stored in the directory:
 *      this node is a member, at config.address (skipped with join: a node
 *      being added is not a member yet), and every peer of config.peers
 *      that is a member has the same address there. A peers list equal to
 *      the one the directory was created with is always accepted, since
 *      the membership may have moved on since.
 * A failed check is RLOG_EIDENTITY with a message naming both sides.
 *
 * A directory made before liblog recorded identities is adopted: its first
 * open records what its configuration says (and still runs check 3).
 *
 * The derived name is only compared with the configuration opening the
 * directory, never across nodes: a node created with join derives it from
 * its own list (the cluster as it was when it joined, itself included), so
 * only an explicit cluster_name is the same on every member.
 */
#ifndef RL_NODE_IDENTITY_H
#define RL_NODE_IDENTITY_H

#include <raft.h>
#include <stdbool.h>
#include <stdint.h>

#include "liblog.h"

#define RL_CLUSTER_NAME_MAX 63

struct rl_identity {
    uint64_t node;                         /* the node's id */
    char cluster[RL_CLUSTER_NAME_MAX + 1]; /* the cluster's name */
    bool named;                            /* from config.cluster_name, else derived */
    uint64_t peers_hash;                   /* of the peers list it was created with */
};

/* Hash of a peers list, independent of its order. */
uint64_t rl_identity_peers_hash(const struct rlog_peer *peers, unsigned n);

/* The identity a directory created with cfg (already validated) records. */
void rl_identity_of(const struct rlog_config *cfg, struct rl_identity *out);

/* Reads dir/IDENTITY. 0, 1 if there is none yet, RLOG_ECORRUPT or
 * RLOG_EIO; err names the file and why. */
int rl_identity_load(const char *dir, struct rl_identity *out, char *err, size_t errlen);

/* Durably records id in dir/IDENTITY (replaced atomically). 0 or an RLOG_E*
 * code; err names the file and why. */
int rl_identity_save(const char *dir, const struct rl_identity *id, char *err, size_t errlen);

/* Checks 1 and 2 above: 0 if a configuration whose identity is `want` may
 * open the directory `dir` that recorded `have`, else RLOG_EIDENTITY. */
int rl_identity_check(const char *dir, const struct rl_identity *have,
                      const struct rl_identity *want, char *err, size_t errlen);

/* Check 3 above, against `stored`, the configuration libraft loaded from
 * dir (empty when nothing is stored yet: then 0). 0 or RLOG_EIDENTITY. */
int rl_identity_check_members(const char *dir, const struct rlog_config *cfg,
                              const struct rl_identity *have,
                              const struct raft_configuration *stored, char *err,
                              size_t errlen);

#endif
