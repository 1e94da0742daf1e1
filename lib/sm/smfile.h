/*
 * smfile — the host state machine's snapshot files in <data_dir>/sm/.
 *
 * A snapshot is the host's state as of the records before next_offset, as
 * persist() wrote it with rlog_sm_write. Its file, snap-<next_offset, 20
 * digits>.sm, is written as snap-....sm.tmp, fdatasync'd, renamed and the
 * directory fsync'd (all through lib/fs, so the tests' power loss applies):
 * a crash leaves the old set of files or the new one, at worst a stray
 * .tmp that the next listing deletes.
 *
 * Layout (little-endian):
 *    0  header, 64 bytes: magic "RLSMSNAP", version u32 (1), chunk size
 *       u32, next_offset u64, node id u64 (who wrote it), cluster u64
 *       (xxh3-64 of the cluster's name; 0: unknown), payload length u64,
 *       reserved u64 (0), checksum u64 (xxh3-64 of bytes 0..56)
 *   64  the payload, in chunks of `chunk size` bytes (the last shorter)
 *    .  one u64 per chunk: xxh3-64 of the chunk seeded with its index (a
 *       chunk moved elsewhere in the file does not verify)
 *    .  trailer, 16 bytes: xxh3-64 of the header and the chunk table, then
 *       the magic "RLSMEND\0"
 * The file's size must be exactly what the header says. A reader verifies
 * the whole file before restore() sees a byte, and each chunk again as it
 * streams it (the file could change in between).
 *
 * Files of this layer, bottom first: layout.c (the layout above), write.c
 * (rlog_sm_writer), read.c (rlog_sm_reader), dir.c (listing, pruning,
 * adopting a fetched file).
 */
#ifndef RL_SM_SMFILE_H
#define RL_SM_SMFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "liblog.h"

#define RL_SMF_HEADER 64u
#define RL_SMF_TRAILER 16u
#define RL_SMF_VERSION 1u
#define RL_SMF_CHUNK (256u << 10)
#define RL_SMF_MAX_CHUNK (64u << 20)

/* Who wrote a snapshot: the node, and the cluster (0: unknown). */
struct rl_smf_id {
    uint64_t node, cluster;
};

struct rl_smf_header {
    uint32_t version, chunk;
    uint64_t next_offset;
    struct rl_smf_id id;
    uint64_t length;
};

/* layout.c */
void rl_smf_header_encode(const struct rl_smf_header *h, unsigned char out[RL_SMF_HEADER]);
/* 0, or RLOG_ECORRUPT / RLOG_EVERSION with why in err. */
int rl_smf_header_decode(const unsigned char in[RL_SMF_HEADER], struct rl_smf_header *h,
                         char *err, size_t errlen);
uint64_t rl_smf_chunks(uint64_t length, uint32_t chunk);
uint64_t rl_smf_file_size(const struct rl_smf_header *h);
uint64_t rl_smf_chunk_sum(const void *buf, size_t len, uint64_t index);
/* The trailer's checksum over the encoded header and the chunk table. */
uint64_t rl_smf_trailer_sum(const unsigned char header[RL_SMF_HEADER], const uint64_t *sums,
                            uint64_t n);
void rl_smf_trailer_encode(uint64_t sum, unsigned char out[RL_SMF_TRAILER]);
bool rl_smf_trailer_ok(const unsigned char in[RL_SMF_TRAILER], uint64_t sum);
/* "dir/snap-%020llu.sm" (tmp: with ".tmp"); false if it does not fit. */
bool rl_smf_path(char *buf, size_t len, const char *dir, uint64_t next_offset, bool tmp);

/* write.c: starts dir/snap-<next_offset>.sm.tmp. 0 or an RLOG_E* code
 * with err set. */
int rl_smf_create(const char *dir, uint64_t next_offset, const struct rl_smf_id *id,
                  uint32_t chunk, rlog_sm_writer **out, char *err, size_t errlen);
/* Finishes w (the rest of the payload, the table, the trailer, the
 * header; fdatasync, rename, fsync of dir) and frees it. On failure the
 * .tmp is removed. 0 or an RLOG_E* code with err set. */
int rl_smf_commit(rlog_sm_writer *w, char *err, size_t errlen);
/* The first error rlog_sm_write met (0: none). */
int rl_smf_writer_error(const rlog_sm_writer *w);
/* Drops w and its .tmp. */
void rl_smf_abandon(rlog_sm_writer *w);

/* read.c: opens and verifies a whole snapshot file. want (may be NULL):
 * its cluster must match when both are known. 0, or RLOG_ECORRUPT /
 * RLOG_EVERSION / RLOG_EIDENTITY / RLOG_EIO / RLOG_ENOMEM with err set. */
int rl_smf_open(const char *path, const struct rl_smf_id *want, rlog_sm_reader **out,
                char *err, size_t errlen);
const struct rl_smf_header *rl_smf_reader_header(const rlog_sm_reader *r);
/* An empty stream (restore's "empty state"). */
int rl_smf_open_empty(rlog_sm_reader **out);
void rl_smf_close(rlog_sm_reader *r);

/* dir.c: creates dir (0700) if missing. 0 or an RLOG_E* code. */
int rl_smf_mkdir(const char *dir, char *err, size_t errlen);
/* The next_offsets of dir's snapshot files, newest first (*offs: free it);
 * deletes stray .tmp files (so never while a snapshot is being written
 * there: at restore, before any persist, and from the persist itself). 0, RLOG_EIO or RLOG_ENOMEM with err set. */
int rl_smf_list(const char *dir, uint64_t **offs, size_t *n, char *err, size_t errlen);
/* Deletes all but the newest `keep` snapshot files (directory fsync'd).
 * 0 or an RLOG_E* code. */
int rl_smf_prune(const char *dir, unsigned keep, char *err, size_t errlen);
/* Takes the snapshot file at path (a peer's, fetched) into dir: verifies
 * it whole (want as for rl_smf_open; unless expect_next is 0, it must
 * cover the records before expect_next), renames it to its snap- name
 * and fsyncs dir; *next_out gets its next_offset. The caller must have
 * made path's bytes durable. 0 or an RLOG_E* code with err set (path is
 * left where it was). */
int rl_smf_adopt(const char *dir, const char *path, const struct rl_smf_id *want,
                 uint64_t expect_next, uint64_t *next_out, char *err, size_t errlen);

#endif
