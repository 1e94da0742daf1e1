/*
 * The IDENTITY file of a data directory and the checks against it
 * (node/identity.h says what they are and why).
 *
 * The file is text, like FORMAT, with a checksum over what precedes it:
 *   liblog identity
 *   node 3
 *   cluster peers-8c3f0a51d2e4b697
 *   named 0
 *   peers-hash 8c3f0a51d2e4b697
 *   checksum 1f2e3d4c5b6a7988
 */
#include "node/identity.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "fs/fs.h"

#define IDENTITY_FILE "IDENTITY"
#define IDENTITY_TITLE "liblog identity"

static int fail(char *err, size_t errlen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(char *err, size_t errlen, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return code;
}

static int cmp_peer(const void *a, const void *b)
{
    uint64_t x = (*(const struct rlog_peer *const *)a)->id;
    uint64_t y = (*(const struct rlog_peer *const *)b)->id;
    return x < y ? -1 : x > y;
}

uint64_t rl_identity_peers_hash(const struct rlog_peer *peers, unsigned n)
{
    const struct rlog_peer *sorted[RLOG_MAX_PEERS];
    if (n > RLOG_MAX_PEERS)
        n = RLOG_MAX_PEERS; /* validation allows no more */
    for (unsigned i = 0; i < n; i++)
        sorted[i] = &peers[i];
    qsort(sorted, n, sizeof sorted[0], cmp_peer);
    /* "id=address\n" per peer; addresses are < 64 bytes (validated). */
    char buf[RLOG_MAX_PEERS * 96];
    size_t len = 0;
    for (unsigned i = 0; i < n; i++) {
        int w = snprintf(buf + len, sizeof buf - len, "%" PRIu64 "=%s\n", sorted[i]->id,
                         sorted[i]->address);
        if (w < 0 || (size_t)w >= sizeof buf - len)
            break;
        len += (size_t)w;
    }
    return XXH3_64bits(buf, len);
}

void rl_identity_of(const struct rlog_config *cfg, struct rl_identity *out)
{
    memset(out, 0, sizeof *out);
    out->node = cfg->id;
    out->peers_hash = rl_identity_peers_hash(cfg->peers, cfg->n_peers);
    out->named = cfg->cluster_name && cfg->cluster_name[0];
    if (out->named)
        snprintf(out->cluster, sizeof out->cluster, "%s", cfg->cluster_name);
    else
        snprintf(out->cluster, sizeof out->cluster, "peers-%016" PRIx64, out->peers_hash);
}

int rl_identity_save(const char *dir, const struct rl_identity *id, char *err, size_t errlen)
{
    char body[256], text[320];
    int n = snprintf(body, sizeof body,
                     IDENTITY_TITLE "\nnode %" PRIu64 "\ncluster %s\nnamed %d\npeers-hash %016" PRIx64
                                    "\n",
                     id->node, id->cluster, id->named ? 1 : 0, id->peers_hash);
    snprintf(text, sizeof text, "%schecksum %016" PRIx64 "\n", body,
             (uint64_t)XXH3_64bits(body, (size_t)n));
    int rv = rl_fs_replace(dir, IDENTITY_FILE, text, strlen(text));
    if (rv != 0)
        return fail(err, errlen, rl_errno_to_rlog(rv), "%s/" IDENTITY_FILE ": cannot write: %s",
                    dir, strerror(-rv));
    return 0;
}

int rl_identity_load(const char *dir, struct rl_identity *out, char *err, size_t errlen)
{
    char path[4200], buf[512];
    snprintf(path, sizeof path, "%s/" IDENTITY_FILE, dir);
    int fd, rv = rl_fs_open(path, O_RDONLY, 0, &fd);
    if (rv == -ENOENT)
        return 1;
    if (rv != 0)
        return fail(err, errlen, RLOG_EIO, "%s: %s", path, strerror(-rv));
    size_t n = 0;
    rv = rl_fs_pread(fd, buf, sizeof buf - 1, 0, &n);
    rl_fs_close(fd);
    if (rv != 0)
        return fail(err, errlen, RLOG_EIO, "%s: %s", path, strerror(-rv));
    buf[n] = '\0';
    /* The file is replaced atomically, so damage is real corruption. */
    const char *sum_line = strstr(buf, "\nchecksum ");
    uint64_t sum = 0;
    if (!sum_line || sscanf(sum_line, "\nchecksum %" SCNx64, &sum) != 1 ||
        sum != XXH3_64bits(buf, (size_t)(sum_line + 1 - buf)))
        return fail(err, errlen, RLOG_ECORRUPT, "%s: checksum mismatch or missing", path);
    memset(out, 0, sizeof *out);
    int named = 0;
    if (sscanf(buf, IDENTITY_TITLE "\nnode %" SCNu64 "\ncluster %63s\nnamed %d\npeers-hash %" SCNx64,
               &out->node, out->cluster, &named, &out->peers_hash) != 4)
        return fail(err, errlen, RLOG_ECORRUPT, "%s: not a liblog identity (fields missing)",
                    path);
    out->named = named != 0;
    return 0;
}

int rl_identity_check(const char *dir, const struct rl_identity *have,
                      const struct rl_identity *want, char *err, size_t errlen)
{
    if (have->node != want->node)
        return fail(err, errlen, RLOG_EIDENTITY,
                    "data directory %s belongs to node %" PRIu64 ", not node %" PRIu64, dir,
                    have->node, want->node);
    if (want->named && strcmp(have->cluster, want->cluster) != 0)
        return fail(err, errlen, RLOG_EIDENTITY,
                    "data directory %s belongs to cluster %s%s, not cluster %s", dir,
                    have->cluster, have->named ? "" : " (named after the peers it was created with)",
                    want->cluster);
    if (!want->named && have->named)
        return fail(err, errlen, RLOG_EIDENTITY,
                    "data directory %s belongs to cluster %s, but config.cluster_name is not set",
                    dir, have->cluster);
    return 0;
}

static const struct raft_server *server_by_id(const struct raft_configuration *c, uint64_t id)
{
    for (unsigned i = 0; i < c->n; i++)
        if (c->servers[i].id == id)
            return &c->servers[i];
    return NULL;
}

static const struct raft_server *server_by_address(const struct raft_configuration *c,
                                                   const char *address)
{
    for (unsigned i = 0; i < c->n; i++)
        if (strcmp(c->servers[i].address, address) == 0)
            return &c->servers[i];
    return NULL;
}

/* "1, 2, 3": the members' ids (their addresses would not fit a message). */
static void member_ids(const struct raft_configuration *c, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (unsigned i = 0; i < c->n && used < len; i++) {
        int w = snprintf(buf + used, len - used, "%s%" PRIu64, i ? ", " : "",
                         (uint64_t)c->servers[i].id);
        if (w < 0)
            break;
        used += (size_t)w;
    }
}

/* This node against the stored membership: a member, where it listens. */
static int check_self(const char *dir, const struct rlog_config *cfg,
                      const struct raft_configuration *stored, char *err, size_t errlen)
{
    const struct raft_server *self = server_by_id(stored, cfg->id);
    if (!self) {
        char ids[128];
        member_ids(stored, ids, sizeof ids);
        return fail(err, errlen, RLOG_EIDENTITY,
                    "node %" PRIu64 " is not a member of the cluster stored in %s (members: %s); "
                    "a node being added again opens with join",
                    cfg->id, dir, ids);
    }
    if (strcmp(self->address, cfg->address) != 0)
        return fail(err, errlen, RLOG_EIDENTITY,
                    "data directory %s has node %" PRIu64 " at %s in its stored cluster "
                    "configuration, but config.address is %s",
                    dir, cfg->id, self->address, cfg->address);
    return 0;
}

/* One peer of the configuration against the stored membership. */
static int check_peer(const char *dir, const struct rlog_peer *p,
                      const struct raft_configuration *stored, char *err, size_t errlen)
{
    const struct raft_server *s = server_by_id(stored, p->id);
    if (s && strcmp(s->address, p->address) != 0)
        return fail(err, errlen, RLOG_EIDENTITY,
                    "config.peers has node %" PRIu64 " at %s, but the cluster stored in %s has "
                    "it at %s",
                    p->id, p->address, dir, s->address);
    s = server_by_address(stored, p->address);
    if (s && s->id != p->id)
        return fail(err, errlen, RLOG_EIDENTITY,
                    "config.peers has node %" PRIu64 " at %s, but the cluster stored in %s has "
                    "node %" PRIu64 " there",
                    p->id, p->address, dir, (uint64_t)s->id);
    return 0;
}

int rl_identity_check_members(const char *dir, const struct rlog_config *cfg,
                              const struct rl_identity *have,
                              const struct raft_configuration *stored, char *err,
                              size_t errlen)
{
    if (stored->n == 0)
        return 0; /* nothing stored yet: a node waiting to be added */
    int rv;
    if (!cfg->join && (rv = check_self(dir, cfg, stored, err, errlen)) != 0)
        return rv;
    /* The list the directory was created with stays valid: after a member
     * moved (removed, added back elsewhere) it disagrees with the stored
     * membership, which is what the node follows anyway. */
    if (rl_identity_peers_hash(cfg->peers, cfg->n_peers) == have->peers_hash)
        return 0;
    for (unsigned i = 0; i < cfg->n_peers; i++) {
        if (cfg->peers[i].id == cfg->id)
            continue; /* check_self's, or being moved with join */
        if ((rv = check_peer(dir, &cfg->peers[i], stored, err, errlen)) != 0)
            return rv;
    }
    return 0;
}
