#include "net/hello.h"

#include <string.h>
#include <xxhash.h>

uint64_t rl_hello_cluster_hash(const char *cluster)
{
    return XXH64(cluster, strlen(cluster), 0);
}

static void put_le(unsigned char *p, uint64_t v, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_le(const unsigned char *p, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = n; i-- > 0;)
        v = v << 8 | p[i];
    return v;
}

void rl_hello_encode(unsigned char out[RL_HELLO_LEN], uint64_t id, uint64_t cluster_hash)
{
    memcpy(out, RL_HELLO_MAGIC, 8);
    put_le(out + 8, RL_HELLO_VERSION, 4);
    put_le(out + 12, 0, 4);
    put_le(out + 16, id, 8);
    put_le(out + 24, cluster_hash, 8);
}

int rl_hello_check(const unsigned char in[RL_HELLO_LEN], const struct rl_hello_expect *e,
                   struct rl_hello *h, const char **why)
{
    *h = (struct rl_hello){.version = (uint32_t)get_le(in + 8, 4),
                           .flags = (uint32_t)get_le(in + 12, 4),
                           .id = get_le(in + 16, 8),
                           .cluster_hash = get_le(in + 24, 8)};
    if (memcmp(in, RL_HELLO_MAGIC, 8) != 0)
        *why = "not a liblog peer (bad hello magic)";
    else if (h->version != RL_HELLO_VERSION)
        *why = "unknown hello version (a newer or older liblog?)";
    else if (h->flags != 0)
        *why = "unknown hello flags";
    else if (h->id == 0 || h->id == e->self)
        *why = "the hello claims no id or this node's own";
    else if (!e->is_member || !e->is_member(e->arg, h->id))
        *why = "the hello claims an id that is not a member";
    else if (e->cert_id != 0 && e->cert_id != h->id)
        *why = "the hello claims an id other than its certificate's";
    else if (h->cluster_hash != e->cluster_hash)
        *why = "the hello names another cluster";
    else
        return 0;
    return -1;
}
