#include "net/hello.h"

#include <string.h>
#include <xxhash.h>

#include "common/bytes.h"

uint64_t rl_hello_cluster_hash(const char *cluster)
{
    return XXH64(cluster, strlen(cluster), 0);
}

void rl_hello_encode(unsigned char out[RL_HELLO_LEN], uint64_t id, uint64_t cluster_hash)
{
    rl_hello_encode_flags(out, id, cluster_hash, 0);
}

void rl_hello_encode_flags(unsigned char out[RL_HELLO_LEN], uint64_t id, uint64_t cluster_hash,
                           uint32_t flags)
{
    memcpy(out, RL_HELLO_MAGIC, 8);
    rl_put32(out + 8, RL_HELLO_VERSION);
    rl_put32(out + 12, flags);
    rl_put64(out + 16, id);
    rl_put64(out + 24, cluster_hash);
}

int rl_hello_check(const unsigned char in[RL_HELLO_LEN], const struct rl_hello_expect *e,
                   struct rl_hello *h, const char **why)
{
    *h = (struct rl_hello){.version = rl_get32(in + 8),
                           .flags = rl_get32(in + 12),
                           .id = rl_get64(in + 16),
                           .cluster_hash = rl_get64(in + 24)};
    if (memcmp(in, RL_HELLO_MAGIC, 8) != 0)
        *why = "not a liblog peer (bad hello magic)";
    else if (h->version != RL_HELLO_VERSION)
        *why = "unknown hello version (a newer or older liblog?)";
    else if (h->flags & ~RL_HELLO_HOST)
        *why = "unknown hello flags";
    else if (h->id == 0 || h->id == e->self)
        *why = "the hello claims no id or this node's own";
    else if (!e->is_member || !e->is_member(e->arg, h->id))
        *why = "the hello claims an id that is not a member";
    else if (e->cert_id != 0 && e->cert_id != h->id)
        *why = "the hello claims an id other than its certificate's";
    else if (h->cluster_hash != e->cluster_hash)
        *why = "the hello names another cluster";
    /* Last: a peer of the wrong kind is told so only once it has proved
     * who it is (an impostor hears about its identity first). */
    else if (h->flags != e->flags)
        *why = e->flags ? "the peer is a node with its own transport, and this address is a "
                          "host's shared one (rlog_host with an address): every node of a "
                          "cluster must use the same kind"
                        : "the peer is a host with a shared transport (rlog_host with an "
                          "address), and this node has its own: every node of a cluster must "
                          "use the same kind";
    else
        return 0;
    return -1;
}
