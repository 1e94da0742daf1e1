/*
 * format — the store's on-disk encodings, as pure functions over buffers.
 * All integers are little-endian (common/bytes.h). Every record carries an
 * xxh3-64 checksum.
 *
 * Frame (one entry), 56-byte header then the payload padded to 8:
 *   0 checksum u64   xxh3-64 of the payload seeded with xxh3-64 of bytes 8..56
 *   8 index u64, 16 term u64, 24 offset u64 (base record offset),
 *  32 batch_first u64 (first index of the write that carried this frame),
 *  40 length u32, 44 records u32, 48 gen u32, 52 type u8, 53 flags u8,
 *  54 reserved u16 (zero)
 * Segment header, 64 bytes at the start of each segment file:
 *   "RLOGSEG1", version u32, header size u32, seq, first_index, first_offset,
 *   dir_id, gen u32, reserved u32, checksum (xxh3-64 of bytes 0..56)
 * Meta copy, 96 bytes (files meta-a and meta-b):
 *   "RLOGMETA", version u32, gen u32, seq, term, vote, first_index,
 *   first_offset, dir_id, cut_seq, cut_pos, cut_gen u32, flags u32,
 *   checksum (of bytes 0..88)
 * Index file of a sealed segment: a 80-byte header
 *   "RLOGIDX1", version u32, count u32, seq, first_index, last_index,
 *   end_pos, next_offset, last_pos, last_checksum, dir_id
 * then count samples {index, offset, pos} and a trailing xxh3-64 of it all.
 */
#ifndef RL_STORE_FORMAT_H
#define RL_STORE_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/bytes.h"

#define RL_FORMAT_VERSION 1u
#define RL_FRAME_HDR 56u
#define RL_SEG_HDR 64u
#define RL_META_SIZE 96u
#define RL_IDX_HDR 80u

struct rl_frame {
    uint64_t checksum, index, term, offset, batch_first;
    uint32_t length, records, gen;
    uint8_t type, flags;
};

/* Writes the header fields (checksum left as is). */
void rl_frame_encode(unsigned char *hdr, const struct rl_frame *f);
/* Computes the checksum of an encoded header + payload and stores it. */
void rl_frame_seal(unsigned char *hdr, const void *payload, uint32_t len);
/* Decodes the header; no checksum check. */
void rl_frame_decode(const unsigned char *hdr, struct rl_frame *f);
/* True if the stored checksum matches the header and payload. */
bool rl_frame_verify(const unsigned char *hdr, const void *payload, uint32_t len);
bool rl_all_zero(const void *buf, size_t len);

/* gen: the write generation the segment was started in; no frame in it may
 * be older (so frames a torn start left behind can never be taken as new). */
struct rl_seg_hdr {
    uint64_t seq, first_index, first_offset, dir_id;
    uint32_t gen;
};
void rl_seg_hdr_encode(unsigned char *buf, const struct rl_seg_hdr *h);
/* 0, or RLOG_ECORRUPT (bad magic/checksum) / RLOG_EVERSION. */
int rl_seg_hdr_decode(const unsigned char *buf, struct rl_seg_hdr *h);

/* gen: the write generation, bumped at every open and every cut. A cut
 * (truncation, or the end found by recovery) at byte cut_pos of segment
 * cut_seq makes every frame at or after it with gen < cut_gen stale. */
/* first_offset: the first readable record; it may lie inside (or past) the
 * entry first_index, whose earlier records are then hidden.
 * RL_META_RESET: the log was reset to start at first_index; every segment
 * that starts before it is stale (set until those files are gone). */
#define RL_META_RESET 1u
struct rl_meta {
    uint64_t seq, term, vote, first_index, first_offset, dir_id;
    uint64_t cut_seq, cut_pos;
    uint32_t gen, cut_gen, flags;
};
void rl_meta_encode(unsigned char *buf, const struct rl_meta *m);
int rl_meta_decode(const unsigned char *buf, size_t len, struct rl_meta *m);

struct rl_sample {
    uint64_t index, offset, pos;
};
struct rl_idx_hdr {
    uint32_t count;
    uint64_t seq, first_index, last_index, end_pos, next_offset, last_pos,
        last_checksum, dir_id;
};
/* Size of the encoded index with `count` samples. */
size_t rl_idx_size(uint32_t count);
void rl_idx_encode(unsigned char *buf, const struct rl_idx_hdr *h,
                   const struct rl_sample *samples);
/* Validates and decodes; samples point into the caller's array. */
int rl_idx_decode(const unsigned char *buf, size_t len, struct rl_idx_hdr *h,
                  struct rl_sample *samples, uint32_t max_samples);

#endif
