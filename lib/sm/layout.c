/*
 * layout — the snapshot file's header, chunk checksums and trailer
 * (sm/smfile.h has the layout).
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <xxhash.h>

#include "common/bytes.h"
#include "sm/smfile.h"

static const char HEADER_MAGIC[8] = {'R', 'L', 'S', 'M', 'S', 'N', 'A', 'P'};
static const char TRAILER_MAGIC[8] = {'R', 'L', 'S', 'M', 'E', 'N', 'D', 0};

void rl_smf_header_encode(const struct rl_smf_header *h, unsigned char out[RL_SMF_HEADER])
{
    memcpy(out, HEADER_MAGIC, 8);
    rl_put32(out + 8, h->version);
    rl_put32(out + 12, h->chunk);
    rl_put64(out + 16, h->next_offset);
    rl_put64(out + 24, h->id.node);
    rl_put64(out + 32, h->id.cluster);
    rl_put64(out + 40, h->length);
    rl_put64(out + 48, 0);
    rl_put64(out + 56, XXH3_64bits(out, 56));
}

int rl_smf_header_decode(const unsigned char in[RL_SMF_HEADER], struct rl_smf_header *h,
                         char *err, size_t errlen)
{
    if (memcmp(in, HEADER_MAGIC, 8) != 0) {
        snprintf(err, errlen, "not a snapshot file (bad magic)");
        return RLOG_ECORRUPT;
    }
    if (rl_get64(in + 56) != XXH3_64bits(in, 56)) {
        snprintf(err, errlen, "header checksum mismatch");
        return RLOG_ECORRUPT;
    }
    h->version = rl_get32(in + 8);
    h->chunk = rl_get32(in + 12);
    h->next_offset = rl_get64(in + 16);
    h->id.node = rl_get64(in + 24);
    h->id.cluster = rl_get64(in + 32);
    h->length = rl_get64(in + 40);
    if (h->version != RL_SMF_VERSION) {
        snprintf(err, errlen, "snapshot format version %" PRIu32 " (this liblog reads %u)",
                 h->version, RL_SMF_VERSION);
        return RLOG_EVERSION;
    }
    if (h->chunk == 0 || h->chunk > RL_SMF_MAX_CHUNK || h->length > (UINT64_MAX >> 2)) {
        snprintf(err, errlen, "header out of range (chunk %" PRIu32 ", length %" PRIu64 ")",
                 h->chunk, h->length);
        return RLOG_ECORRUPT;
    }
    return 0;
}

uint64_t rl_smf_chunks(uint64_t length, uint32_t chunk)
{
    return (length + chunk - 1) / chunk;
}

uint64_t rl_smf_file_size(const struct rl_smf_header *h)
{
    return RL_SMF_HEADER + h->length + 8 * rl_smf_chunks(h->length, h->chunk) + RL_SMF_TRAILER;
}

uint64_t rl_smf_chunk_sum(const void *buf, size_t len, uint64_t index)
{
    return XXH3_64bits_withSeed(buf, len, index);
}

uint64_t rl_smf_trailer_sum(const unsigned char header[RL_SMF_HEADER], const uint64_t *sums,
                            uint64_t n)
{
    uint64_t sum = XXH3_64bits(header, RL_SMF_HEADER);
    unsigned char b[8];
    for (uint64_t i = 0; i < n; i++) {
        rl_put64(b, sums[i]);
        sum = XXH3_64bits_withSeed(b, 8, sum);
    }
    return sum;
}

void rl_smf_trailer_encode(uint64_t sum, unsigned char out[RL_SMF_TRAILER])
{
    rl_put64(out, sum);
    memcpy(out + 8, TRAILER_MAGIC, 8);
}

bool rl_smf_trailer_ok(const unsigned char in[RL_SMF_TRAILER], uint64_t sum)
{
    return rl_get64(in) == sum && memcmp(in + 8, TRAILER_MAGIC, 8) == 0;
}

bool rl_smf_path(char *buf, size_t len, const char *dir, uint64_t next_offset, bool tmp)
{
    int n = snprintf(buf, len, "%s/snap-%020" PRIu64 ".sm%s", dir, next_offset, tmp ? ".tmp" : "");
    return n > 0 && (size_t)n < len;
}
