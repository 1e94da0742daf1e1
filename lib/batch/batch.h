/*
 * batch — the payload of one replicated COMMAND entry: many host records.
 *
 *   0  magic u32 "RLB1", 4 version u16, 6 flags u16 (0, or RL_BATCH_TRIM),
 *   8  count u32, 12 data_len u32, 16 timestamp u64 (the leader's wall
 *      clock when it formed the batch, us since the epoch: the time index),
 *  24  checksum u64: xxh3-64 of bytes 32.. seeded with xxh3-64 of bytes 0..24
 *  32  the records' bytes back to back (data_len), zero padding to 4,
 *      then count u32 cumulative end positions within the data, padding to 8.
 * The end table comes last so records can be copied in as they arrive and
 * the table appended when the batch is sealed; it gives O(1) access to any
 * record of the batch.
 *
 * With flags RL_BATCH_RUNS, a runs table follows: u32 count, u32 0, then
 * per run of records appended with a producer (rlog_append_ex) 24 bytes:
 * producer u64, sequence u64, first record u32, records u32; runs ascend
 * and do not overlap. Every replica feeds them to its producer table
 * (node/dedup.h) when the entry is shown.
 *
 * A retention command travels the same way, so every replica applies it at
 * the same log position: flags RL_BATCH_TRIM, no records, and the data is
 * the u64 offset before which records are dropped.
 *
 * A named cursor's commit (node/cursors.h) likewise: flags RL_BATCH_CURSOR,
 * no records, and the data is the u64 offset then the name's bytes
 * (1..RL_BATCH_CURSOR_NAME_MAX, no NUL).
 */
#ifndef RL_BATCH_H
#define RL_BATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RL_BATCH_HDR 32u
#define RL_BATCH_TRIM 1u
#define RL_BATCH_RUNS 2u
#define RL_BATCH_RUN_BYTES 24u
#define RL_BATCH_CURSOR 4u
#define RL_BATCH_CURSOR_NAME_MAX 64u

/* One producer's call within a batch. */
struct rl_batch_run {
    uint64_t producer, seq;
    uint32_t first, n;
};

struct rl_batch_builder {
    unsigned char *buf; /* raft_malloc'd: libraft takes it with raft_apply */
    size_t cap, len;    /* len: header + data so far */
    uint32_t count;
    uint32_t *ends;     /* malloc'd */
    uint32_t ends_cap;
    struct rl_batch_run *runs; /* malloc'd */
    uint32_t nruns, runs_cap;
};

void rl_batch_builder_init(struct rl_batch_builder *b);
void rl_batch_builder_free(struct rl_batch_builder *b);
/* Bytes the sealed batch would take with one more record of len bytes. */
size_t rl_batch_size_with(const struct rl_batch_builder *b, size_t len);
int rl_batch_add(struct rl_batch_builder *b, const void *rec, size_t len);
/* Marks the last n records added as one producer call (0, or -1 when out
 * of memory). Bytes the runs table adds to the sealed batch: */
int rl_batch_add_run(struct rl_batch_builder *b, uint64_t producer, uint64_t seq, uint32_t n);
size_t rl_batch_runs_bytes(uint32_t nruns);
/* Seals: appends the table, fills the header. Returns the buffer (ownership
 * to the caller, allocated with raft_malloc) and its length; the builder is
 * reset for the next batch. NULL on allocation failure. */
void *rl_batch_seal(struct rl_batch_builder *b, uint64_t timestamp_us, size_t *len);

/* A sealed trim command (raft_malloc'd), or NULL on allocation failure. */
void *rl_batch_trim(uint64_t before, uint64_t timestamp_us, size_t *len);
/* A sealed cursor commit (raft_malloc'd; name_len 1..RL_BATCH_CURSOR_NAME_MAX),
 * or NULL on allocation failure or a bad length. */
void *rl_batch_cursor(const char *name, size_t name_len, uint64_t offset, uint64_t timestamp_us,
                      size_t *len);

struct rl_batch_view {
    const unsigned char *data;
    const unsigned char *ends; /* u32 little-endian */
    uint32_t count, data_len;
    uint64_t timestamp;
    uint64_t trim_before;      /* a trim command: records before this go; else 0 */
    const char *cursor_name;   /* a cursor commit: its name (not NUL-ended), else NULL */
    uint32_t cursor_name_len;
    uint64_t cursor_offset;
    const unsigned char *runs; /* the runs table's entries, or NULL */
    uint32_t nruns;
};
/* Validates a sealed batch (checksum, table) and sets up a view. */
bool rl_batch_parse(const void *buf, size_t len, struct rl_batch_view *v);
/* The same without the checksum, for a payload whose bytes were verified
 * already (an entry's frame checksum, as stored or received): every
 * offset and count is still checked, so the view is safe to walk. */
bool rl_batch_parse_layout(const void *buf, size_t len, struct rl_batch_view *v);
/* Record i of a parsed batch. */
void rl_batch_record(const struct rl_batch_view *v, uint32_t i, const void **rec, size_t *len);
/* Run i of a parsed batch. */
void rl_batch_run(const struct rl_batch_view *v, uint32_t i, struct rl_batch_run *run);

/* The identity of a producer call's records, to tell a retry (same records)
 * from a reused sequence number (other records): xxh3-64 of the record
 * bytes, seeded with xxh3-64 of their lengths (u32 each). The two forms
 * agree on the same records. */
uint64_t rl_batch_hash_lens(const void *data, size_t bytes, const size_t *lens, uint32_t n);
uint64_t rl_batch_hash_view(const struct rl_batch_view *v, uint32_t first, uint32_t n);

#endif
