#include "store/format.h"

#include <string.h>
#include <xxhash.h>

#include "liblog.h"

static const char SEG_MAGIC[8] = {'R', 'L', 'O', 'G', 'S', 'E', 'G', '1'};
static const char META_MAGIC[8] = {'R', 'L', 'O', 'G', 'M', 'E', 'T', 'A'};
static const char IDX_MAGIC[8] = {'R', 'L', 'O', 'G', 'I', 'D', 'X', '1'};

void rl_frame_encode(unsigned char *h, const struct rl_frame *f)
{
    rl_put64(h + 8, f->index);
    rl_put64(h + 16, f->term);
    rl_put64(h + 24, f->offset);
    rl_put64(h + 32, f->batch_first);
    rl_put32(h + 40, f->length);
    rl_put32(h + 44, f->records);
    rl_put32(h + 48, f->gen);
    h[52] = f->type;
    h[53] = f->flags;
    h[54] = h[55] = 0;
}

static uint64_t frame_sum(const unsigned char *h, const void *payload, uint32_t len)
{
    uint64_t seed = XXH3_64bits(h + 8, RL_FRAME_HDR - 8);
    return XXH3_64bits_withSeed(payload, len, seed);
}

void rl_frame_seal(unsigned char *h, const void *payload, uint32_t len)
{
    rl_put64(h, frame_sum(h, payload, len));
}

void rl_frame_decode(const unsigned char *h, struct rl_frame *f)
{
    f->checksum = rl_get64(h);
    f->index = rl_get64(h + 8);
    f->term = rl_get64(h + 16);
    f->offset = rl_get64(h + 24);
    f->batch_first = rl_get64(h + 32);
    f->length = rl_get32(h + 40);
    f->records = rl_get32(h + 44);
    f->gen = rl_get32(h + 48);
    f->type = h[52];
    f->flags = h[53];
}

bool rl_frame_verify(const unsigned char *h, const void *payload, uint32_t len)
{
    return rl_get64(h) == frame_sum(h, payload, len);
}

bool rl_all_zero(const void *buf, size_t len)
{
    const unsigned char *p = buf;
    for (size_t i = 0; i < len; i++)
        if (p[i])
            return false;
    return true;
}

void rl_seg_hdr_encode(unsigned char *b, const struct rl_seg_hdr *h)
{
    memset(b, 0, RL_SEG_HDR);
    memcpy(b, SEG_MAGIC, 8);
    rl_put32(b + 8, RL_FORMAT_VERSION);
    rl_put32(b + 12, RL_SEG_HDR);
    rl_put64(b + 16, h->seq);
    rl_put64(b + 24, h->first_index);
    rl_put64(b + 32, h->first_offset);
    rl_put64(b + 40, h->dir_id);
    rl_put32(b + 48, h->gen);
    rl_put64(b + 56, XXH3_64bits(b, 56));
}

int rl_seg_hdr_decode(const unsigned char *b, struct rl_seg_hdr *h)
{
    if (memcmp(b, SEG_MAGIC, 8) != 0 || rl_get64(b + 56) != XXH3_64bits(b, 56))
        return RLOG_ECORRUPT;
    if (rl_get32(b + 8) != RL_FORMAT_VERSION || rl_get32(b + 12) != RL_SEG_HDR)
        return RLOG_EVERSION;
    h->seq = rl_get64(b + 16);
    h->first_index = rl_get64(b + 24);
    h->first_offset = rl_get64(b + 32);
    h->dir_id = rl_get64(b + 40);
    h->gen = rl_get32(b + 48);
    return 0;
}

void rl_meta_encode(unsigned char *b, const struct rl_meta *m)
{
    memset(b, 0, RL_META_SIZE);
    memcpy(b, META_MAGIC, 8);
    rl_put32(b + 8, RL_FORMAT_VERSION);
    rl_put32(b + 12, m->gen);
    rl_put64(b + 16, m->seq);
    rl_put64(b + 24, m->term);
    rl_put64(b + 32, m->vote);
    rl_put64(b + 40, m->first_index);
    rl_put64(b + 48, m->first_offset);
    rl_put64(b + 56, m->dir_id);
    rl_put64(b + 64, m->cut_seq);
    rl_put64(b + 72, m->cut_pos);
    rl_put32(b + 80, m->cut_gen);
    rl_put32(b + 84, m->flags);
    rl_put64(b + 88, XXH3_64bits(b, 88));
}

int rl_meta_decode(const unsigned char *b, size_t len, struct rl_meta *m)
{
    if (len < RL_META_SIZE || memcmp(b, META_MAGIC, 8) != 0 ||
        rl_get64(b + 88) != XXH3_64bits(b, 88))
        return RLOG_ECORRUPT;
    if (rl_get32(b + 8) != RL_FORMAT_VERSION)
        return RLOG_EVERSION;
    m->gen = rl_get32(b + 12);
    m->seq = rl_get64(b + 16);
    m->term = rl_get64(b + 24);
    m->vote = rl_get64(b + 32);
    m->first_index = rl_get64(b + 40);
    m->first_offset = rl_get64(b + 48);
    m->dir_id = rl_get64(b + 56);
    m->cut_seq = rl_get64(b + 64);
    m->cut_pos = rl_get64(b + 72);
    m->cut_gen = rl_get32(b + 80);
    m->flags = rl_get32(b + 84);
    if (m->flags & ~RL_META_RESET)
        return RLOG_ECORRUPT; /* a flag this version does not know */
    return 0;
}

size_t rl_idx_size(uint32_t count)
{
    return RL_IDX_HDR + (size_t)count * 24 + 8;
}

void rl_idx_encode(unsigned char *b, const struct rl_idx_hdr *h,
                   const struct rl_sample *s)
{
    memcpy(b, IDX_MAGIC, 8);
    rl_put32(b + 8, RL_FORMAT_VERSION);
    rl_put32(b + 12, h->count);
    rl_put64(b + 16, h->seq);
    rl_put64(b + 24, h->first_index);
    rl_put64(b + 32, h->last_index);
    rl_put64(b + 40, h->end_pos);
    rl_put64(b + 48, h->next_offset);
    rl_put64(b + 56, h->last_pos);
    rl_put64(b + 64, h->last_checksum);
    rl_put64(b + 72, h->dir_id);
    unsigned char *p = b + RL_IDX_HDR;
    for (uint32_t i = 0; i < h->count; i++, p += 24) {
        rl_put64(p, s[i].index);
        rl_put64(p + 8, s[i].offset);
        rl_put64(p + 16, s[i].pos);
    }
    rl_put64(p, XXH3_64bits(b, (size_t)(p - b)));
}

int rl_idx_decode(const unsigned char *b, size_t len, struct rl_idx_hdr *h,
                  struct rl_sample *s, uint32_t max)
{
    if (len < rl_idx_size(0) || memcmp(b, IDX_MAGIC, 8) != 0 ||
        rl_get32(b + 8) != RL_FORMAT_VERSION)
        return RLOG_ECORRUPT;
    h->count = rl_get32(b + 12);
    if (h->count > max || len != rl_idx_size(h->count) ||
        rl_get64(b + len - 8) != XXH3_64bits(b, len - 8))
        return RLOG_ECORRUPT;
    h->seq = rl_get64(b + 16);
    h->first_index = rl_get64(b + 24);
    h->last_index = rl_get64(b + 32);
    h->end_pos = rl_get64(b + 40);
    h->next_offset = rl_get64(b + 48);
    h->last_pos = rl_get64(b + 56);
    h->last_checksum = rl_get64(b + 64);
    h->dir_id = rl_get64(b + 72);
    const unsigned char *p = b + RL_IDX_HDR;
    for (uint32_t i = 0; i < h->count; i++, p += 24) {
        s[i].index = rl_get64(p);
        s[i].offset = rl_get64(p + 8);
        s[i].pos = rl_get64(p + 16);
    }
    return 0;
}
