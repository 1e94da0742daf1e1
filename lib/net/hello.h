/*
 * hello — the first 32 bytes a client sends on a peer connection (in plain
 * mode on the socket, in TLS mode as the first plaintext inside the
 * session). The server never answers it: it reads exactly RL_HELLO_LEN
 * bytes, checks them, and either takes the connection or closes it.
 *
 *   offset  size  field
 *   0       8     magic, ASCII "rlognet1"
 *   8       4     version, u32 little-endian (RL_HELLO_VERSION)
 *   12      4     flags, u32 LE: RL_HELLO_HOST or 0 (anything else refused)
 *   16      8     the client's node id, u64 LE (the id it claims)
 *   24      8     cluster hash, u64 LE: XXH64 (seed 0) of the cluster's name
 *                 as recorded in the client's data directory (IDENTITY)
 *
 * Pure functions: no I/O, no allocation. Thread: any.
 */
#ifndef RL_NET_HELLO_H
#define RL_NET_HELLO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RL_HELLO_LEN 32u
#define RL_HELLO_MAGIC "rlognet1"
#define RL_HELLO_VERSION 1u
/* The sender is a host (rlog_host with an address): channels of logs on
 * the connection, not one log's frames. A server takes only its own kind,
 * so a node and a host that dial each other are told apart at once. */
#define RL_HELLO_HOST 1u

struct rl_hello {
    uint32_t version;
    uint32_t flags;
    uint64_t id;
    uint64_t cluster_hash;
};

/* What the server knows when it checks a hello. */
struct rl_hello_expect {
    uint64_t self;          /* the server's own id (a peer never claims it) */
    uint32_t flags;         /* the server's kind: RL_HELLO_HOST or 0 */
    uint64_t cluster_hash;  /* the server's own cluster hash */
    /* The id the peer's certificate names (TLS), or 0 in plain mode. */
    uint64_t cert_id;
    /* True if id is a member of the current configuration (or the node
     * being added). */
    bool (*is_member)(void *arg, uint64_t id);
    void *arg;
};

/* XXH64 (seed 0) of a cluster name. */
uint64_t rl_hello_cluster_hash(const char *cluster);

/* Writes a hello claiming id into out (flags 0: a node's own transport). */
void rl_hello_encode(unsigned char out[RL_HELLO_LEN], uint64_t id, uint64_t cluster_hash);
/* The same with flags (RL_HELLO_HOST). */
void rl_hello_encode_flags(unsigned char out[RL_HELLO_LEN], uint64_t id, uint64_t cluster_hash,
                           uint32_t flags);

/* Decodes and checks a hello: 0 and *h if the peer may go on; otherwise -1
 * and *why (a static string) names the first field that is wrong, in the
 * order magic, version, flags, id (zero, this node's own, not a member,
 * not the certificate's), cluster hash. */
int rl_hello_check(const unsigned char in[RL_HELLO_LEN], const struct rl_hello_expect *e,
                   struct rl_hello *h, const char **why);

#endif
