/*
 * config — rlog_config_init's defaults and the checks of a configuration
 * (rlog_open) and of a member's address (rlog_add_node), on the caller's
 * thread: every bad field gets RLOG_EINVAL and a message naming it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node/config.h"
#include "node/identity.h"
#include "raftio/io.h"
#include "store/store.h"

void rlog_config_init(struct rlog_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->segment_size = DEFAULT_SEGMENT;
    cfg->max_record_size = DEFAULT_MAX_RECORD;
    cfg->batch_max_bytes = DEFAULT_BATCH_BYTES;
    cfg->batch_max_records = DEFAULT_BATCH_RECORDS;
    cfg->cache_bytes = DEFAULT_CACHE;
    cfg->election_timeout_ms = 1000;
    cfg->heartbeat_timeout_ms = 100;
    cfg->snapshot_threshold = 128;
    cfg->snapshot_trailing = 256;
    cfg->fetch_serve_max = DEFAULT_FETCH_SERVE_MAX;
    cfg->fetch_serve_bytes = DEFAULT_FETCH_SERVE_BYTES;
    cfg->held_max = DEFAULT_HELD_MAX;
    cfg->max_appends_in_flight = DEFAULT_APPENDS_IN_FLIGHT;
    cfg->max_append_bytes_in_flight = DEFAULT_APPEND_BYTES_IN_FLIGHT;
    cfg->forward_appends = 1;
    cfg->max_forward_bytes = DEFAULT_MAX_FORWARD_BYTES;
    cfg->retention_check_ms = 1000;
}

/* "host:port" with a non-empty host and a decimal port in 1..65535: RL_ADDR_OK
 * (the host is copied out), RL_ADDR_SYNTAX, or RL_ADDR_PORT_RANGE (a number, but
 * not a port: worth its own message). */
int rl_check_address(const char *a, char *host, size_t hostlen)
{
    if (!a || !*a || strlen(a) >= 64)
        return RL_ADDR_SYNTAX;
    const char *colon = strrchr(a, ':');
    if (!colon || colon == a || (size_t)(colon - a) >= hostlen)
        return RL_ADDR_SYNTAX;
    const char *digits = colon + 1;
    if (!*digits || strspn(digits, "0123456789") != strlen(digits))
        return RL_ADDR_SYNTAX;
    errno = 0;
    unsigned long port = strtoul(digits, NULL, 10);
    if (errno || port < 1 || port > 65535)
        return RL_ADDR_PORT_RANGE;
    memcpy(host, a, (size_t)(colon - a));
    host[colon - a] = '\0';
    return RL_ADDR_OK;
}

/* The message for a bad address in `field`; RLOG_EINVAL. */
int rl_bad_address(char *err, size_t errlen, const char *field, const char *a, int problem)
{
    if (problem == RL_ADDR_PORT_RANGE)
        snprintf(err, errlen, "%s \"%s\": port %s is out of range (1..65535)", field, a,
                 strrchr(a, ':') + 1);
    else
        snprintf(err, errlen, "%s \"%s\" is not HOST:PORT", field, a ? a : "(null)");
    return RLOG_EINVAL;
}

/* A cluster name is one token of the IDENTITY file: printable ASCII, no
 * spaces. "" means no name, like NULL. */
bool rl_valid_cluster_name(const char *name)
{
    size_t n = strlen(name);
    if (n > RL_CLUSTER_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (name[i] <= ' ' || name[i] > '~')
            return false;
    return true;
}

/* Loopback hosts: the only ones plain text is allowed to by default. */
bool rl_is_loopback(const char *host)
{
    struct in_addr a4;
    if (strcmp(host, "localhost") == 0 || strcmp(host, "::1") == 0 || strcmp(host, "[::1]") == 0)
        return true;
    return inet_pton(AF_INET, host, &a4) == 1 && (ntohl(a4.s_addr) >> 24) == 127;
}

/* TLS: all three files or none; without them, loopback or insecure only. */
static int validate_security(const struct rlog_config *c, char *err, size_t errlen)
{
#define BAD(...) (snprintf(err, errlen, __VA_ARGS__), RLOG_EINVAL)
    const char *files[3] = {c->tls_ca_file, c->tls_cert_file, c->tls_key_file};
    static const char *const names[3] = {"tls_ca_file", "tls_cert_file", "tls_key_file"};
    int have = 0;
    for (int i = 0; i < 3; i++)
        have += files[i] && files[i][0];
    for (int i = 0; i < 3 && have > 0 && have < 3; i++)
        if (!files[i] || !files[i][0])
            return BAD("config.%s is missing: tls_ca_file, tls_cert_file and tls_key_file "
                       "go together", names[i]);
    char host[64];
    for (unsigned i = 0; have == 0 && !c->insecure && i < c->n_peers; i++) {
        rl_check_address(c->peers[i].address, host, sizeof host);
        if (!rl_is_loopback(host))
            return BAD("config.peers[%u].address %s is not loopback and no TLS is configured: "
                       "peers would talk in plain text and trust any claimed id. Set "
                       "tls_ca_file, tls_cert_file and tls_key_file (rlogctl: "
                       "--peer-trusted-ca-file, --peer-cert-file, --peer-key-file), or set "
                       "insecure = 1 (--insecure) to accept that",
                       i, c->peers[i].address);
    }
    uint64_t frame = (uint64_t)c->batch_max_bytes + RL_IO_FRAME_ALLOWANCE;
    if (c->max_send_queue_bytes && c->max_send_queue_bytes < frame)
        return BAD("config.max_send_queue_bytes %" PRIu64 " is below the frame cap %" PRIu64
                   " (batch_max_bytes + %u)", c->max_send_queue_bytes, frame,
                   RL_IO_FRAME_ALLOWANCE);
    return 0;
#undef BAD
}

int rl_config_validate(const struct rlog_config *c, char *err, size_t errlen)
{
#define BAD(...) (snprintf(err, errlen, __VA_ARGS__), RLOG_EINVAL)
    char host[64];
    if (!c)
        return BAD("config is NULL");
    if (c->id == 0)
        return BAD("config.id must be >= 1");
    if (!c->data_dir || !c->data_dir[0])
        return BAD("config.data_dir is required");
    int problem = rl_check_address(c->address, host, sizeof host);
    if (problem != RL_ADDR_OK)
        return rl_bad_address(err, errlen, "config.address", c->address, problem);
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *ai = NULL;
    int gai = getaddrinfo(host, NULL, &hints, &ai);
    if (gai != 0)
        return BAD("config.address \"%s\": cannot resolve \"%s\": %s", c->address, host,
                   gai_strerror(gai));
    freeaddrinfo(ai);
    if (!c->peers || c->n_peers == 0 || c->n_peers > RLOG_MAX_PEERS)
        return BAD("config.peers: between 1 and %d peers are required (got %u)", RLOG_MAX_PEERS,
                   c->n_peers);
    bool self = false;
    for (unsigned i = 0; i < c->n_peers; i++) {
        const struct rlog_peer *p = &c->peers[i];
        if (p->id == 0)
            return BAD("config.peers[%u].id must be >= 1", i);
        if ((problem = rl_check_address(p->address, host, sizeof host)) != RL_ADDR_OK) {
            char field[48];
            snprintf(field, sizeof field, "config.peers[%u].address", i);
            return rl_bad_address(err, errlen, field, p->address, problem);
        }
        for (unsigned j = 0; j < i; j++) {
            if (c->peers[j].id == p->id)
                return BAD("config.peers: duplicate id %" PRIu64, p->id);
            if (!strcmp(c->peers[j].address, p->address))
                return BAD("config.peers: duplicate address %s (ids %" PRIu64 " and %" PRIu64 ")",
                           p->address, c->peers[j].id, p->id);
        }
        if (p->id == c->id) {
            self = true;
            if (strcmp(p->address, c->address) != 0)
                return BAD("config.peers: this node (id %" PRIu64 ") is listed at %s but config.address is %s",
                           c->id, p->address, c->address);
        }
    }
    if (!self)
        return BAD("config.peers: this node's id %" PRIu64 " is not in the cluster", c->id);
    if (c->segment_size < RL_STORE_MIN_SEGMENT_SIZE || c->segment_size % 4096)
        return BAD("config.segment_size %" PRIu64 " must be a multiple of 4096 and >= %u",
                   c->segment_size, RL_STORE_MIN_SEGMENT_SIZE);
    if (c->max_record_size == 0)
        return BAD("config.max_record_size must be >= 1");
    if (c->batch_max_records == 0 || c->batch_max_records > (1u << 20))
        return BAD("config.batch_max_records %u must be between 1 and 1048576", c->batch_max_records);
    if ((uint64_t)c->batch_max_bytes < (uint64_t)c->max_record_size + 64)
        return BAD("config.batch_max_bytes %u must exceed max_record_size %u by 64 bytes or more",
                   c->batch_max_bytes, c->max_record_size);
    if ((uint64_t)c->batch_max_bytes + 4096 > c->segment_size)
        return BAD("config.segment_size %" PRIu64 " cannot hold one batch of batch_max_bytes %u: "
                   "lower batch_max_bytes to %" PRIu64 " or less (and max_record_size to %" PRIu64
                   " or less), or raise segment_size to %" PRIu64 " or more",
                   c->segment_size, c->batch_max_bytes, c->segment_size - 4096,
                   c->segment_size - 4096 - 64, ((uint64_t)c->batch_max_bytes + 4096 + 4095) / 4096 * 4096);
    if (c->heartbeat_timeout_ms == 0 || c->election_timeout_ms <= c->heartbeat_timeout_ms)
        return BAD("config.heartbeat_timeout_ms (%u) must be >= 1 and below election_timeout_ms (%u)",
                   c->heartbeat_timeout_ms, c->election_timeout_ms);
    if (c->snapshot_threshold < 4 || c->snapshot_trailing < 4)
        return BAD("config.snapshot_threshold (%u) and snapshot_trailing (%u) must be >= 4",
                   c->snapshot_threshold, c->snapshot_trailing);
    if (c->cluster_name && !rl_valid_cluster_name(c->cluster_name))
        return BAD("config.cluster_name \"%.80s\" must be 1 to %d printable ASCII characters "
                   "without spaces", c->cluster_name, RL_CLUSTER_NAME_MAX);
    /* Bounds on what peers can make this node hold (hardening); 0 is the
     * default (lifecycle.c, start). */
    if (c->fetch_serve_bytes && c->fetch_serve_bytes < (uint64_t)c->batch_max_bytes + 4096)
        return BAD("config.fetch_serve_bytes %" PRIu64 " must be >= batch_max_bytes + 4096 (%"
                   PRIu64 "): one entry must fit", c->fetch_serve_bytes,
                   (uint64_t)c->batch_max_bytes + 4096);
    if (c->forward_appends != 0 && c->forward_appends != 1)
        return BAD("config.forward_appends %d must be 0 or 1", c->forward_appends);
    if (c->balance_leaders != 0 && c->balance_leaders != 1)
        return BAD("config.balance_leaders %d must be 0 or 1", c->balance_leaders);
    if (c->max_forward_bytes && c->max_forward_bytes < c->batch_max_bytes)
        return BAD("config.max_forward_bytes %" PRIu64 " must be >= batch_max_bytes %u: one call "
                   "must fit", c->max_forward_bytes, c->batch_max_bytes);
    if (c->max_cursors > RL_MAX_CURSORS_LIMIT)
        return BAD("config.max_cursors %u must be at most %u (0: 1024)", c->max_cursors,
                   RL_MAX_CURSORS_LIMIT);
    /* -- liblog 0.4: retention policies -- */
    if (c->retention_ms > UINT64_MAX / 1000)
        return BAD("config.retention_ms %" PRIu64 " is too large (at most %" PRIu64 ")",
                   c->retention_ms, UINT64_MAX / 1000);
    if ((c->retention_bytes || c->retention_ms) && c->retention_check_ms > 86400000u)
        return BAD("config.retention_check_ms %u must be at most 86400000 (a day)",
                   c->retention_check_ms);
    return validate_security(c, err, errlen);
#undef BAD
}
