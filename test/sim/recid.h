/*
 * recid — what the simulator's checkers know a record by: the appender's
 * client and sequence (its first 16 bytes) and a hash of all of it, so a
 * record read back is told apart from any other, torn or doubled.
 */
#ifndef RL_SIM_RECID_H
#define RL_SIM_RECID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <xxhash.h>

#include "common/bytes.h"

struct rec_id {
    uint64_t client, seq, hash;
    uint32_t len;
};

static inline struct rec_id rec_identify(const void *rec, size_t len)
{
    struct rec_id id = {.hash = XXH3_64bits(rec, len), .len = (uint32_t)len};
    if (len >= 16) {
        id.client = rl_get64(rec);
        id.seq = rl_get64((const unsigned char *)rec + 8);
    }
    return id;
}

static inline bool rec_same(const struct rec_id *a, const struct rec_id *b)
{
    return a->hash == b->hash && a->len == b->len && a->client == b->client && a->seq == b->seq;
}

#endif
