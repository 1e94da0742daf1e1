/*
 * Helpers for the segment store tests: temporary directories, a store on its
 * own libuv loop, synchronous wrappers around the asynchronous requests,
 * deterministic payloads and a small in-memory model of the log that the
 * store is checked against.
 *
 * Everything runs on the calling thread: the helpers drive the store's loop
 * with uv_run until the callback they wait for has fired.
 */
#ifndef TEST_STORE_HELPERS_H
#define TEST_STORE_HELPERS_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "lib/fault_fs.h"
#include "liblog.h"
#include "store/store.h"

/* ---- Directories and files ------------------------------------------- */

/* A run's temp root: main() calls th_tmp_begin() before running the suites
 * and th_tmp_end() after, which removes whatever failed (forked) tests left
 * behind. */
void th_tmp_begin(void);
void th_tmp_end(void);
/* Makes a fresh directory <root>/rlog-test-XXXXXX; fails the test on error. */
void th_mkdtemp(char *buf, size_t len);
/* Removes path and everything under it (no error if missing). */
void th_rmrf(const char *path);
/* Copies every regular file of directory src into dst (created if missing). */
void th_copy_dir(const char *src, const char *dst);
/* Whole-file helpers (fail the test on error). read returns malloc'd bytes. */
unsigned char *th_read_file(const char *path, size_t *len);
void th_write_file(const char *path, const void *buf, size_t len);
bool th_file_exists(const char *path);
/* buf = dir/name; fails the test if it does not fit. */
void th_path_join(char *buf, size_t len, const char *dir, const char *name);
/* Segment files (seg-*.log) of dir, sorted by name; returns the count and
 * fills names[] (basenames) up to max. */
unsigned th_list_segments(const char *dir, char names[][NAME_MAX + 1], unsigned max);
/* Finds the first occurrence of needle in the segment files of dir. On
 * success fills the file's basename and the byte position and returns true. */
bool th_find_in_segments(const char *dir, const void *needle, size_t nlen,
                         char *file, size_t filelen, uint64_t *pos);

/* ---- Payloads --------------------------------------------------------- */

/* Everything about an entry is a function of (index, seed): payload length
 * (0..3000, some 0), bytes (never zero), record count (0..3) and type. */
#define TH_MAX_PAYLOAD 3000u
uint32_t th_payload_len(uint64_t index, uint64_t seed);
uint32_t th_records(uint64_t index, uint64_t seed);
uint8_t th_type(uint64_t index, uint64_t seed);
void th_payload_fill(void *buf, uint32_t len, uint64_t index, uint64_t seed);

/* Builds entries first..first+n-1 with the given term and seed; payloads are
 * malloc'd and released by th_entries_free. */
struct rl_store_entry *th_entries_make(uint64_t first, unsigned n,
                                       uint64_t term, uint64_t seed);
void th_entries_free(struct rl_store_entry *e, unsigned n);

/* ---- A store on its own loop ----------------------------------------- */

struct th_store {
    uv_loop_t loop;
    struct rl_store *s;
    char dir[PATH_MAX];
    struct rl_store_config cfg;
    char err[1024];  /* errmsg of the last th_open */
};

/* Initialises the loop and a config for a new temp dir (segment_size 64 KiB);
 * does not open the store. */
void th_init(struct th_store *t);
/* Opens t->cfg; returns the rl_store_open code (err filled on failure). */
int th_open(struct th_store *t);
/* Like th_open but fails the test if the open fails. */
void th_open_ok(struct th_store *t);
/* Closes the store (if open) and runs the loop until its callback fired. */
void th_close(struct th_store *t);
void th_reopen(struct th_store *t);
/* Closes the store, checks the loop ends with nothing left on it and closes
 * the loop, then removes the directory. */
void th_fini(struct th_store *t);

/* Runs the loop until *flag becomes true; fails the test if the loop runs
 * out of work first. */
void th_run_until(struct th_store *t, const bool *flag);

/* ---- Asynchronous batches -------------------------------------------- */

struct th_batch {
    struct rl_store_req req;
    struct rl_store_entry *e;
    unsigned n;
    uint64_t first, term, seed;
    int submit_rc;  /* what rl_store_append returned */
    int status;     /* callback status */
    int fired;      /* times the callback fired */
    unsigned order; /* global completion order, from 1 */
    bool done;
};

/* Completion counter shared by all batches/requests (reset by th_init). */
extern unsigned th_completions;

/* Builds the entries and submits them; returns rl_store_append's code
 * (the batch is then done immediately with that status). */
int th_batch_submit(struct th_store *t, struct th_batch *b, uint64_t first,
                    unsigned n, uint64_t term, uint64_t seed);
void th_batch_free(struct th_batch *b);

/* Synchronous append: the immediate error or the callback status. */
int th_append(struct th_store *t, uint64_t first, unsigned n, uint64_t term,
              uint64_t seed);
/* Appends at rl_store_next_index; fails the test unless it succeeds. */
void th_append_ok(struct th_store *t, unsigned n, uint64_t term, uint64_t seed);

/* Synchronous append of caller-built entries: immediate error or status. */
int th_append_entries(struct th_store *t, const struct rl_store_entry *e,
                      unsigned n);

struct th_op {
    struct rl_store_req req;
    int submit_rc, status, fired;
    unsigned order;
    bool done;
};
int th_truncate_submit(struct th_store *t, struct th_op *op, uint64_t index);
int th_trim_submit(struct th_store *t, struct th_op *op, uint64_t index);
int th_reset_submit(struct th_store *t, struct th_op *op, uint64_t index, uint64_t offset);
int th_truncate(struct th_store *t, uint64_t index);
int th_trim(struct th_store *t, uint64_t index);
int th_trim_records(struct th_store *t, uint64_t index, uint64_t offset);
int th_reset(struct th_store *t, uint64_t index, uint64_t offset);
/* Repairs the damaged range starting at `first` (n entries) with the good
 * entries (term, seed): rl_store_repair's immediate error or its status. */
int th_repair(struct th_store *t, uint64_t first, unsigned n, uint64_t term, uint64_t seed);
/* Finds entry `index`'s frame in the segment files by walking their frames
 * (name and byte of its header); false if no segment holds it. */
bool th_frame_pos(const char *dir, uint64_t index, char *name, size_t nlen, uint64_t *pos,
                  uint32_t *len);
/* Flips bit `bit` of byte `at` of dir/name. */
void th_flip_bit(const char *dir, const char *name, uint64_t at, unsigned bit);

/* ---- Checking entries -------------------------------------------------- */

/* Reads index and checks every field against (term, seed) and the expected
 * base offset. Fails the test with a message naming the index on mismatch. */
void th_check_entry(struct th_store *t, uint64_t index, uint64_t term,
                    uint64_t seed, uint64_t offset);
/* Like th_check_entry but returns false instead of failing (msg says why). */
bool th_entry_matches(struct th_store *t, uint64_t index, uint64_t term,
                      uint64_t seed, uint64_t offset, char *msg, size_t msglen);

/* ---- Model of the log ------------------------------------------------- */

struct th_model_entry {
    uint64_t term, seed;
    uint64_t offset;   /* base record offset */
    uint32_t records;
};

struct th_model {
    uint64_t first;  /* first index (1 + trimmed) */
    uint64_t last;   /* last index (first - 1 when empty) */
    struct th_model_entry *e; /* e[i] for 1 <= i <= last (index 0 unused) */
    size_t cap;
};

void th_model_init(struct th_model *m);
void th_model_free(struct th_model *m);
void th_model_copy(struct th_model *dst, const struct th_model *src);
void th_model_append(struct th_model *m, uint64_t first, unsigned n,
                     uint64_t term, uint64_t seed);
void th_model_truncate(struct th_model *m, uint64_t index);
void th_model_trim(struct th_model *m, uint64_t index);
/* An empty log starting at entry index (>= 2) and record offset. */
void th_model_reset(struct th_model *m, uint64_t index, uint64_t offset);
uint64_t th_model_next_offset(const struct th_model *m);
uint64_t th_model_first_offset(const struct th_model *m);
/* The index of the entry holding record offset o, or 0 if none. */
uint64_t th_model_index_of_offset(const struct th_model *m, uint64_t o);

/* Compares the store with the model: bounds, offsets, boundary reads
 * (ETRIMMED below, ENOTFOUND past the end) and the entries. full checks
 * every entry; otherwise a sample (ends plus `sample` random ones, picked
 * with *rng). Returns true when they agree; otherwise msg says why. */
bool th_model_matches(struct th_store *t, const struct th_model *m, bool full,
                      unsigned sample, uint64_t *rng, char *msg, size_t msglen);

/* A tiny deterministic PRNG (splitmix64). */
/* Appends `count` entries to store and model, in batches of 1..max_batch
 * entries drawn from *rng. */
void th_fill(struct th_store *t, struct th_model *m, uint64_t *rng, unsigned count,
             unsigned max_batch, uint64_t term, uint64_t seed);
uint64_t th_rand(uint64_t *state);
uint64_t th_rand_range(uint64_t *state, uint64_t lo, uint64_t hi); /* [lo,hi] */

/* True if s contains needle and, after it, a decimal digit (a position). */
bool th_msg_names_position(const char *msg, const char *needle);

#endif
