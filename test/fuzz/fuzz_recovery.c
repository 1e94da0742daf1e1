/*
 * Fuzz target: segment store recovery (lib/store/store.h).
 *
 * The input becomes a data directory whose only segment is the last one:
 *   - if it starts with "RLOGMETA", its first 96 bytes are the metadata copy
 *     meta-a (and there is no meta-b); otherwise meta-a and meta-b are a
 *     default state (generation FZ_DEFAULT_GEN, log from entry 1);
 *   - the remaining bytes are seg-0000000000000001.log, zero-padded or cut to
 *     the segment size (64 KiB); no bytes means no segment file.
 * FORMAT is fixed (dir-id FZ_DIR_ID, which the corpus segments carry).
 *
 * Checksum fix-ups, so mutations reach the logic behind the checksums: a
 * zero checksum in the metadata copy, in the segment header (with its
 * magic present) or in a frame header (walking frames from byte 64 by their
 * length fields, stopping at an all-zero header) is replaced by the right
 * one. Real checksums are zero with probability 2^-64; corpus files with
 * real checksums still exercise every mismatch path.
 *
 * Checks (abort() on failure): rl_store_open returns 0 or a clean error
 * (RLOG_ECORRUPT, RLOG_EVERSION, RLOG_EFOREIGN) with a message; an open store
 * has sane bounds, every entry first..last reads back with its own index and
 * a continuous record offset (or RLOG_ECORRUPT, never other data), offset
 * lookups agree, and reads just outside the bounds fail as documented. Then
 * one entry is appended, the store closed and reopened: the reopen must
 * succeed and return every entry read before, unchanged, plus the new one.
 * No file descriptor may leak (ASan/LSan check memory).
 */
#define XXH_STATIC_LINKING_ONLY
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>
#include <xxhash.h>

#include "fuzz_store_dir.h"
#include "liblog.h"
#include "store/format.h"
#include "store/store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                    \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            fprintf(stderr, "fuzz_recovery: check failed at %s:%d: %s\n", __FILE__,   \
                    __LINE__, #cond);                                                  \
            abort();                                                                   \
        }                                                                              \
    } while (0)

/* At most this many frames fit in one 64 KiB segment. */
#define MAX_ENTRIES ((FZ_SEGMENT_SIZE - RL_SEG_HDR) / RL_FRAME_HDR + 1)

static char g_dir[256];
static uv_loop_t g_loop;
static bool g_ready;
static bool g_verbose;
/* FUZZ_SKIP_KNOWN=1: do not abort on the known library bugs (see
 * known_bug()), so a fuzzing run can look past them. */
static bool g_skip_known;

/* The directory as written for this input. */
static unsigned char g_seg[FZ_SEGMENT_SIZE];
static bool g_have_seg;
static unsigned char g_meta[FZ_META_SIZE];

static void rm_dir_contents(bool keep_format)
{
    DIR *d = opendir(g_dir);
    CHECK(d != NULL);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        if (keep_format && !strcmp(e->d_name, "FORMAT"))
            continue;
        char path[512];
        snprintf(path, sizeof path, "%s/%s", g_dir, e->d_name);
        unlink(path);
    }
    closedir(d);
}

static void cleanup(void)
{
    if (!g_ready)
        return;
    rm_dir_contents(false);
    rmdir(g_dir);
    uv_loop_close(&g_loop);
    g_ready = false;
}

static void setup(void)
{
    if (g_ready)
        return;
    struct stat st;
    const char *root = getenv("FUZZ_TMPDIR");
    if (!root)
        root = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) && access("/dev/shm", W_OK) == 0
                   ? "/dev/shm"
                   : "/tmp";
    snprintf(g_dir, sizeof g_dir, "%s/rlog-fuzz-XXXXXX", root);
    CHECK(mkdtemp(g_dir) != NULL);
    CHECK(fz_write_format(g_dir) == 0);
    CHECK(uv_loop_init(&g_loop) == 0);
    g_verbose = getenv("FUZZ_VERBOSE") != NULL;
    g_skip_known = getenv("FUZZ_SKIP_KNOWN") != NULL;
    g_ready = true;
    atexit(cleanup);
}

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    int n = 0;
    while (readdir(d) != NULL)
        n++;
    closedir(d);
    return n;
}

/* ---- building the directory ---------------------------------------------- */

static void seal_frames(unsigned char *seg, size_t len)
{
    uint64_t pos = RL_SEG_HDR;
    while (pos + RL_FRAME_HDR <= len) {
        unsigned char *h = seg + pos;
        if (rl_all_zero(h, RL_FRAME_HDR))
            break;
        uint32_t flen = rl_get32(h + 40);
        if (pos + RL_FRAME_HDR + rl_pad8(flen) > len)
            break;
        if (rl_get64(h) == 0)
            rl_frame_seal(h, h + RL_FRAME_HDR, flen);
        pos += RL_FRAME_HDR + rl_pad8(flen);
    }
}

static void build_dir(const uint8_t *data, size_t size)
{
    rm_dir_contents(true);
    unsigned char meta[FZ_META_SIZE];
    if (size >= FZ_META_SIZE && memcmp(data, "RLOGMETA", 8) == 0) {
        memcpy(meta, data, FZ_META_SIZE);
        if (rl_get64(meta + 88) == 0)
            fz_meta_seal(meta);
        CHECK(fz_write_file(g_dir, "meta-a", meta, sizeof meta) == 0);
        memcpy(g_meta, meta, sizeof meta);
        data += FZ_META_SIZE;
        size -= FZ_META_SIZE;
    } else {
        fz_meta_encode(meta, 2, FZ_DEFAULT_GEN, 1, 0);
        CHECK(fz_write_file(g_dir, "meta-a", meta, sizeof meta) == 0);
        memcpy(g_meta, meta, sizeof meta);
        fz_meta_encode(meta, 1, FZ_DEFAULT_GEN, 1, 0);
        CHECK(fz_write_file(g_dir, "meta-b", meta, sizeof meta) == 0);
    }
    g_have_seg = size > 0;
    if (size == 0)
        return;
    unsigned char *seg = g_seg;
    memset(seg, 0, FZ_SEGMENT_SIZE);
    memcpy(seg, data, size < FZ_SEGMENT_SIZE ? size : FZ_SEGMENT_SIZE);
    if (memcmp(seg, "RLOGSEG1", 8) == 0 && rl_get64(seg + 56) == 0)
        rl_put64(seg + 56, XXH3_64bits(seg, 56));
    seal_frames(seg, FZ_SEGMENT_SIZE);
    CHECK(fz_write_file(g_dir, FZ_SEGMENT_NAME, seg, FZ_SEGMENT_SIZE) == 0);
}

/* ---- an independent check of the torn-tail rule ------------------------------
 *
 * lib/store/segment.c: the first invalid frame of the last segment is cut as
 * a torn write only if no later valid frame of the current run "belongs to a
 * write that began after the failed entry (its batch_first is greater)";
 * otherwise the entry was durable and open must fail with RLOG_ECORRUPT.
 * This re-derives that from the bytes written, for a store that opened with
 * entries up to `last`: walk the accepted frames to the recovered end, then
 * look at every later 8-aligned position for a frame that scan's rules call
 * valid and whose batch_first is past the entry after `last`. Returns the
 * position of such a frame (the log lost durable entries), or 0. */
static uint64_t durable_past_end(uint64_t last, uint64_t *end_out)
{
    struct rl_meta m;
    struct rl_seg_hdr sh;
    if (!g_have_seg || rl_meta_decode(g_meta, FZ_META_SIZE, &m) != 0 ||
        rl_seg_hdr_decode(g_seg, &sh) != 0)
        return 0;
    const unsigned char *seg = g_seg;
    uint64_t pos = RL_SEG_HDR, index = sh.first_index;
    uint32_t min_gen = sh.gen;
    for (; index <= last; index++) {
        if (pos + RL_FRAME_HDR > FZ_SEGMENT_SIZE || rl_get64(seg + pos + 8) != index)
            return 0; /* not the chain scan accepted: inconclusive */
        min_gen = rl_get32(seg + pos + 48);
        pos += RL_FRAME_HDR + rl_pad8(rl_get32(seg + pos + 40));
    }
    *end_out = pos;
    uint64_t e = last + 1;
    for (uint64_t q = pos + 8; q + RL_FRAME_HDR <= FZ_SEGMENT_SIZE; q += 8) {
        const unsigned char *h = seg + q;
        struct rl_frame f;
        rl_frame_decode(h, &f);
        if (f.index <= e || f.index - e > (1u << 30) || f.gen < min_gen || f.gen > m.gen ||
            (m.cut_seq == 1 && q >= m.cut_pos && f.gen < m.cut_gen))
            continue;
        if (f.batch_first > f.index || h[54] || h[55] ||
            q + RL_FRAME_HDR + rl_pad8(f.length) > FZ_SEGMENT_SIZE ||
            !rl_frame_verify(h, h + RL_FRAME_HDR, f.length))
            continue;
        if (f.batch_first > e)
            return q;
    }
    return 0;
}

/* Known library bugs (reported; see test/fuzz/README). Aborts with `what`
 * unless FUZZ_SKIP_KNOWN is set. */
static void known_bug(const char *what)
{
    fprintf(stderr, "fuzz_recovery: %s\n", what);
    if (!g_skip_known)
        abort();
}

/* True if the segment holds a checksum-valid frame (at any 8-aligned
 * position) of a generation newer than the metadata's: see known bug D. */
static bool has_future_frames(void)
{
    struct rl_meta m;
    if (!g_have_seg || rl_meta_decode(g_meta, FZ_META_SIZE, &m) != 0)
        return false;
    for (uint64_t q = RL_SEG_HDR; q + RL_FRAME_HDR <= FZ_SEGMENT_SIZE; q += 8) {
        const unsigned char *h = g_seg + q;
        uint32_t len = rl_get32(h + 40);
        if (rl_get32(h + 48) > m.gen && q + RL_FRAME_HDR + rl_pad8(len) <= FZ_SEGMENT_SIZE &&
            rl_frame_verify(h, h + RL_FRAME_HDR, len))
            return true;
    }
    return false;
}

/* Known bug A: for an empty log (last + 1 == first) the store takes the
 * next record offset from the metadata (first_offset), while the last
 * segment's frames (or its header) continue from another offset. */
static bool offsets_disagree(uint64_t last)
{
    struct rl_meta m;
    struct rl_seg_hdr sh;
    if (!g_have_seg || rl_meta_decode(g_meta, FZ_META_SIZE, &m) != 0 ||
        rl_seg_hdr_decode(g_seg, &sh) != 0)
        return false;
    uint64_t pos = RL_SEG_HDR, off = sh.first_offset;
    for (uint64_t index = sh.first_index; index <= last; index++) {
        if (pos + RL_FRAME_HDR > FZ_SEGMENT_SIZE || rl_get64(g_seg + pos + 8) != index)
            return false;
        off = rl_get64(g_seg + pos + 24) + rl_get32(g_seg + pos + 44);
        pos += RL_FRAME_HDR + rl_pad8(rl_get32(g_seg + pos + 40));
    }
    return off != m.first_offset;
}

/* Phase two found the reopened log not what was acknowledged. */
static void phase_two_failed(bool was_empty, uint64_t last, const char *what)
{
    char msg[512];
    if (has_future_frames()) {
        snprintf(msg, sizeof msg,
                 "known bug D (%s): frames of a generation newer than the metadata's are in the "
                 "segment; open re-issues that generation, so they are not stale after the cut",
                 what);
        known_bug(msg);
    } else if (was_empty && offsets_disagree(last)) {
        snprintf(msg, sizeof msg,
                 "known bug A (%s): an entry appended to an empty log is lost or rejected at the "
                 "next open (its record offset comes from the metadata, the segment expects "
                 "another)", what);
        known_bug(msg);
    } else {
        fprintf(stderr, "fuzz_recovery: after a clean append and reopen: %s\n", what);
        abort();
    }
}

/* ---- driving the store --------------------------------------------------- */

static void on_closed(void *arg)
{
    *(bool *)arg = true;
}

static void run_until(const bool *flag)
{
    while (!*flag)
        CHECK(uv_run(&g_loop, UV_RUN_ONCE) != 0 || *flag);
}

static void close_store(struct rl_store *s)
{
    bool closed = false;
    rl_store_close(s, on_closed, &closed);
    run_until(&closed);
    /* Nothing of the store may stay on the loop. */
    CHECK(uv_run(&g_loop, UV_RUN_NOWAIT) == 0);
}

struct append_wait {
    bool done;
    int status;
};

static void on_appended(struct rl_store_req *req, int status)
{
    struct append_wait *w = req->data;
    w->status = status;
    w->done = true;
}

static int open_store(struct rl_store **s, char *err, size_t errlen)
{
    struct rl_store_config cfg = {.dir = g_dir, .segment_size = FZ_SEGMENT_SIZE};
    err[0] = '\0';
    int rv = rl_store_open(&g_loop, &cfg, s, err, errlen);
    if (rv != 0) {
        CHECK(*s == NULL);
        CHECK(err[0] != '\0');
        if (rv != RLOG_ECORRUPT && rv != RLOG_EVERSION && rv != RLOG_EFOREIGN) {
            fprintf(stderr, "fuzz_recovery: unexpected open error %s: %s\n", rlog_errname(rv),
                    err);
            abort();
        }
    } else {
        CHECK(*s != NULL);
    }
    return rv;
}

/* What phase one read of an entry, to compare after the reopen. */
struct seen {
    bool ok;
    uint64_t hash;
};

static uint64_t entry_hash(const struct rl_store_entry *e)
{
    XXH3_state_t st;
    XXH3_INITSTATE(&st);
    XXH3_64bits_reset(&st);
    uint64_t f[5] = {e->index, e->term, e->offset, e->records, e->type};
    XXH3_64bits_update(&st, f, sizeof f);
    XXH3_64bits_update(&st, &e->len, sizeof e->len);
    if (e->len)
        XXH3_64bits_update(&st, e->buf, e->len);
    return XXH3_64bits_digest(&st);
}

/* Reads every entry; fills seen[i - first]. Returns the count read ok. */
static unsigned read_all(struct rl_store *s, struct seen *seen)
{
    uint64_t first = rl_store_first_index(s), last = rl_store_last_index(s);
    uint64_t next_off = rl_store_first_offset(s);
    bool chain = true;
    unsigned ok = 0;
    CHECK(first >= 1);
    CHECK(last + 1 >= first);
    CHECK(last - first + 1 <= MAX_ENTRIES);
    CHECK(rl_store_next_index(s) == last + 1);
    CHECK(rl_store_next_offset(s) >= rl_store_first_offset(s));
    for (uint64_t i = first; i <= last; i++) {
        struct rl_store_entry e;
        int rv = rl_store_read(s, i, &e);
        seen[i - first].ok = false;
        if (rv == RLOG_ECORRUPT) {
            CHECK(e.buf == NULL);
            chain = false;
            continue;
        }
        if (rv != 0) {
            fprintf(stderr, "fuzz_recovery: read %llu of [%llu, %llu]: %s: %s\n",
                    (unsigned long long)i, (unsigned long long)first, (unsigned long long)last,
                    rlog_errname(rv), rl_store_errmsg(s));
            abort();
        }
        CHECK(e.index == i);
        CHECK((e.len == 0) == (e.buf == NULL));
        if (chain)
            CHECK(e.offset == next_off);
        next_off = e.offset + e.records;
        chain = true;
        if (e.records > 0) {
            /* The offset lookup finds the same entry from either end. */
            struct rl_store_entry o;
            uint64_t ends[2] = {e.offset, e.offset + e.records - 1};
            for (int k = 0; k < 2; k++) {
                int r2 = rl_store_read_offset(s, ends[k], &o);
                CHECK(r2 == 0 || r2 == RLOG_ECORRUPT);
                if (r2 == 0) {
                    CHECK(o.index == i);
                    free((void *)o.buf);
                }
            }
        }
        seen[i - first].ok = true;
        seen[i - first].hash = entry_hash(&e);
        free((void *)e.buf);
        ok++;
    }
    if (chain && last >= first)
        CHECK(rl_store_next_offset(s) == next_off);
    struct rl_store_entry e;
    CHECK(rl_store_read(s, last + 1, &e) == RLOG_ENOTFOUND && e.buf == NULL);
    if (first > 1)
        CHECK(rl_store_read(s, first - 1, &e) == RLOG_ETRIMMED && e.buf == NULL);
    CHECK(rl_store_read_offset(s, rl_store_next_offset(s), &e) == RLOG_ENOTFOUND);
    return ok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup();
    int fds = count_fds();
    build_dir(data, size);

    char err[512];
    struct rl_store *s;
    if (open_store(&s, err, sizeof err) != 0) {
        if (g_verbose)
            fprintf(stderr, "open: %s\n", err);
        CHECK(count_fds() == fds);
        return 0;
    }
    static struct seen seen[MAX_ENTRIES];
    uint64_t first = rl_store_first_index(s), last = rl_store_last_index(s);
    unsigned ok = read_all(s, seen);
    if (g_verbose)
        fprintf(stderr, "open: entries [%llu, %llu], %u read; note: %s\n",
                (unsigned long long)first, (unsigned long long)last, ok,
                rl_store_recovery_note(s));

    uint64_t end = 0, q = durable_past_end(last, &end);
    if (q != 0) {
        char what[256];
        bool zeros = end + RL_FRAME_HDR <= FZ_SEGMENT_SIZE && rl_all_zero(g_seg + end, RL_FRAME_HDR);
        snprintf(what, sizeof what,
                 "known bug %s: log cut after entry %llu (byte %llu%s) although the frame at "
                 "byte %llu proves entry %llu durable; note: %.80s",
                 zeros ? "C" : "B", (unsigned long long)last, (unsigned long long)end,
                 zeros ? ", a zeroed frame header" : "", (unsigned long long)q,
                 (unsigned long long)last + 1, rl_store_recovery_note(s));
        known_bug(what);
    }

    /* Phase two: one more durable entry, then the log must reopen intact. */
    static const char payload[] = "fuzz-phase-two!";
    struct rl_store_entry ne = {.index = last + 1, .term = 1, .records = 1, .type = 1,
                                .buf = payload, .len = sizeof payload - 1};
    struct append_wait w = {false, 0};
    struct rl_store_req req = {.data = &w};
    int rv = rl_store_append(s, &req, &ne, 1, on_appended);
    if (rv == 0)
        run_until(&w.done);
    bool appended = rv == 0 && w.status == 0;
    if (!appended) {
        /* Only a full disk may refuse it. */
        CHECK((rv == 0 ? w.status : rv) == RLOG_ENOSPC);
    }
    close_store(s);
    if (getenv("FUZZ_DUMP")) {
        /* Debugging: the segment as phase two left it. */
        char cmd[1024];
        snprintf(cmd, sizeof cmd, "cp %s/%s %s", g_dir, FZ_SEGMENT_NAME, getenv("FUZZ_DUMP"));
        if (system(cmd) != 0)
            fprintf(stderr, "fuzz_recovery: FUZZ_DUMP: copy failed\n");
    }

    bool was_empty = last + 1 == first;
    rv = open_store(&s, err, sizeof err);
    if (rv != 0) {
        char what[600];
        snprintf(what, sizeof what, "reopen failed: %.500s", err);
        phase_two_failed(was_empty, last, what);
        CHECK(count_fds() == fds);
        return 0;
    }
    CHECK(rl_store_first_index(s) == first);
    if (rl_store_last_index(s) < last + (appended ? 1 : 0)) {
        close_store(s);
        phase_two_failed(was_empty, last, "acknowledged entries missing");
        return 0;
    }
    for (uint64_t i = first; i <= last + (appended ? 1 : 0); i++) {
        struct rl_store_entry e;
        rv = rl_store_read(s, i, &e);
        if (i <= last && !seen[i - first].ok) {
            CHECK(rv == 0 || rv == RLOG_ECORRUPT);
        } else {
            if (rv != 0) {
                fprintf(stderr, "fuzz_recovery: after reopen, read %llu: %s: %s\n",
                        (unsigned long long)i, rlog_errname(rv), rl_store_errmsg(s));
                abort();
            }
            CHECK(e.index == i);
            bool same = i <= last ? entry_hash(&e) == seen[i - first].hash
                                  : e.len == ne.len && memcmp(e.buf, payload, ne.len) == 0 &&
                                        e.term == 1 && e.records == 1;
            if (!same) {
                free((void *)e.buf);
                close_store(s);
                phase_two_failed(was_empty, last, "an entry changed");
                return 0;
            }
        }
        free((void *)e.buf);
    }
    if (g_verbose && rl_store_last_index(s) != last + (appended ? 1 : 0))
        fprintf(stderr, "reopen: log ends at %llu, not %llu\n",
                (unsigned long long)rl_store_last_index(s),
                (unsigned long long)(last + (appended ? 1 : 0)));
    close_store(s);
    CHECK(count_fds() == fds);
    return 0;
}
