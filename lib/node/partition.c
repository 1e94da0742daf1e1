/*
 * rlog_partition — which of a host's logs a key goes to. A stable hash of
 * the key (XXH64, which liblog already uses for checksums), then jump
 * consistent hash (Lamping and Veach, "A Fast, Minimal Memory, Consistent
 * Hash Algorithm", 2014): no table, and growing the number of partitions
 * moves the fewest keys, so a host can add logs without reshuffling most
 * of its data. Both are fixed forever: a key's partition is part of the
 * data's layout.
 */
#include <xxhash.h>

#include "liblog.h"
#include "node/api.h"
#include "node/node.h"

/* The jump hash itself: a bucket in [0, n) for key, n >= 1. */
unsigned rl_jump_hash(uint64_t key, unsigned n)
{
    int64_t b = -1, j = 0;
    while (j < (int64_t)n) {
        b = j;
        key = key * 2862933555777941757ull + 1;
        j = (int64_t)((double)(b + 1) * ((double)(1ull << 31) / (double)((key >> 33) + 1)));
    }
    return (unsigned)b;
}

int rlog_partition(const void *key, size_t len, unsigned partitions, unsigned *out)
{
    if (!out)
        return rl_fail(RLOG_EINVAL, "partition: out is NULL");
    if (partitions == 0 || partitions > (1u << 31))
        return rl_fail(RLOG_EINVAL, "partition: %u partitions (1 .. 2^31)", partitions);
    if (!key && len > 0)
        return rl_fail(RLOG_EINVAL, "partition: key NULL with length %zu", len);
    *out = rl_jump_hash(XXH64(len ? key : "", len, 0), partitions);
    return 0;
}
