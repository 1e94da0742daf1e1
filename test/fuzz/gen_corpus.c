/*
 * Generates the fuzz seed corpora (deterministically):
 *
 *   gen_corpus OUTDIR [BUGDIR]
 *
 * writes OUTDIR/wire/ and OUTDIR/recovery/, and (if BUGDIR is given)
 * BUGDIR/recovery/: inputs that fail because of known library bugs (see
 * test/fuzz/README.md), kept out of the corpus that `make check` replays.
 *
 * wire/: one valid frame of each message type made with rl_wire_encode, the
 * same with a zero checksum field (fuzz_wire fills it in, so mutations of
 * the body reach the decoder), a stream of several frames, and a few
 * truncated or corrupted frames.
 *
 * recovery/: directories written by the real store (lib/store) in a data
 * directory laid out like fuzz_recovery's (FORMAT with FZ_DIR_ID), saved as
 * the input format of fuzz_recovery: the newest metadata copy (96 bytes)
 * then seg-0000000000000001.log without its trailing zeros. Variants: clean,
 * reopened several times, truncated and re-appended (stale frames past the
 * cut), trimmed, a torn tail, bit flips in the last and in an earlier write,
 * a torn segment header, a spare, and zero-checksum ("autoseal") copies.
 */
#define XXH_STATIC_LINKING_ONLY
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
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
#include "wire/codec.h"

static const char *outdir;
static const char *bugdir;
static unsigned n_files;
static size_t n_bytes;

static void die(const char *what)
{
    fprintf(stderr, "gen_corpus: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void emit(const char *sub, const char *name, const void *buf, size_t len)
{
    char dir[4200];
    const char *base = outdir;
    if (!strncmp(sub, "bug:", 4)) {
        if (!bugdir)
            return;
        base = bugdir;
        sub += 4;
    }
    snprintf(dir, sizeof dir, "%s/%s", base, sub);
    mkdir(base, 0755);
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        die(dir);
    if (fz_write_file(dir, name, buf, len) != 0)
        die(name);
    n_files++;
    n_bytes += len;
}

/* ---- wire ------------------------------------------------------------------ */

struct frame {
    unsigned char *b;
    size_t len;
};

static struct frame encode(const struct raft_message *m, uint64_t sender)
{
    struct rl_wire_out out;
    if (rl_wire_encode(m, sender, &out) != 0) {
        fprintf(stderr, "gen_corpus: rl_wire_encode failed for type %u\n", m->type);
        exit(1);
    }
    struct frame f = {malloc((size_t)out.total), (size_t)out.total};
    if (!f.b)
        die("malloc");
    size_t at = 0;
    for (unsigned i = 0; i < out.n_iov; i++) {
        memcpy(f.b + at, out.iov[i].base, out.iov[i].len);
        at += out.iov[i].len;
    }
    rl_wire_out_free(&out);
    return f;
}

static void emit_frame(const char *name, const struct frame *f, bool zero_sum_too)
{
    char n[128];
    snprintf(n, sizeof n, "%s.bin", name);
    emit("wire", n, f->b, f->len);
    if (zero_sum_too) {
        unsigned char *c = malloc(f->len);
        if (!c)
            die("malloc");
        memcpy(c, f->b, f->len);
        memset(c + 24, 0, 8);
        snprintf(n, sizeof n, "%s-zsum.bin", name);
        emit("wire", n, c, f->len);
        free(c);
    }
}

/* A corrupted copy: `edit` is applied to a copy of f (len may shrink). */
static void emit_edit(const char *name, const struct frame *f, size_t keep, size_t at,
                      unsigned char xor_mask, bool zero_sum)
{
    unsigned char *c = malloc(f->len);
    if (!c)
        die("malloc");
    memcpy(c, f->b, f->len);
    if (at < f->len)
        c[at] ^= xor_mask;
    if (zero_sum)
        memset(c + 24, 0, 8);
    char n[128];
    snprintf(n, sizeof n, "%s.bin", name);
    emit("wire", n, c, keep < f->len ? keep : f->len);
    free(c);
}

static void gen_wire(void)
{
    struct raft_message m;
    struct frame f[9];
    unsigned nf = 0;

    memset(&m, 0, sizeof m);
    m.type = RAFT_IO_APPEND_ENTRIES;
    m.append_entries = (struct raft_append_entries){.term = 3, .prev_log_index = 10,
                                                    .prev_log_term = 2, .leader_commit = 9};
    struct frame heartbeat = encode(&m, 1);
    emit_frame("append-entries-heartbeat", &heartbeat, true);

    static char p1[] = "hello, replicated world";        /* 23: padded */
    static char p2[] = "0123456789abcdef0123456789abcdef"; /* 32 */
    struct raft_entry ents[4] = {
        {.term = 3, .type = RAFT_COMMAND, .buf = {p1, sizeof p1 - 1}},
        {.term = 3, .type = RAFT_BARRIER, .buf = {NULL, 0}},
        {.term = 3, .type = RAFT_COMMAND, .buf = {p2, sizeof p2 - 1}},
        {.term = 3, .type = RAFT_CHANGE, .buf = {p1, 5}},
    };
    m.append_entries.entries = ents;
    m.append_entries.n_entries = 4;
    f[nf] = encode(&m, 1);
    emit_frame("append-entries", &f[nf], true);
    struct frame ae = f[nf++];

    memset(&m, 0, sizeof m);
    m.type = RAFT_IO_APPEND_ENTRIES_RESULT;
    m.append_entries_result = (struct raft_append_entries_result){4, 0, 14};
    f[nf] = encode(&m, 2);
    emit_frame("append-entries-result", &f[nf++], true);

    memset(&m, 0, sizeof m);
    m.type = RAFT_IO_REQUEST_VOTE;
    m.request_vote = (struct raft_request_vote){.term = 5, .candidate_id = 3,
                                                .last_log_index = 14, .last_log_term = 4,
                                                .disrupt_leader = true, .pre_vote = true};
    f[nf] = encode(&m, 3);
    emit_frame("request-vote", &f[nf++], true);

    memset(&m, 0, sizeof m);
    m.type = RAFT_IO_REQUEST_VOTE_RESULT;
    m.request_vote_result = (struct raft_request_vote_result){5, true, raft_tribool_true};
    f[nf] = encode(&m, 1);
    emit_frame("request-vote-result", &f[nf++], true);

    memset(&m, 0, sizeof m);
    m.type = RAFT_IO_INSTALL_SNAPSHOT;
    struct raft_server servers[3] = {
        {.id = 1, .address = "127.0.0.1:7001", .role = RAFT_VOTER},
        {.id = 2, .address = "127.0.0.1:7002", .role = RAFT_STANDBY},
        {.id = 3, .address = "10.0.0.3:7003", .role = RAFT_SPARE},
    };
    static char snap[] = "snapshot descriptor 42";
    m.install_snapshot = (struct raft_install_snapshot){
        .term = 6, .last_index = 100, .last_term = 5, .conf = {servers, 3}, .conf_index = 90,
        .data = {snap, sizeof snap - 1}};
    f[nf] = encode(&m, 1);
    emit_frame("install-snapshot", &f[nf], true);
    struct frame is = f[nf++];

    memset(&m, 0, sizeof m);
    m.type = RAFT_IO_TIMEOUT_NOW;
    m.timeout_now = (struct raft_timeout_now){7, 120, 6};
    f[nf] = encode(&m, 1);
    emit_frame("timeout-now", &f[nf++], true);

    memset(&m, 0, sizeof m);
    m.type = RL_WIRE_FETCH_REQUEST;
    m.timeout_now = (struct raft_timeout_now){1, 500, 4u << 20};
    f[nf] = encode(&m, 2);
    emit_frame("fetch-request", &f[nf++], true);

    memset(&m, 0, sizeof m);
    m.type = RL_WIRE_FETCH_RESPONSE;
    m.append_entries = (struct raft_append_entries){.term = 0, .prev_log_index = 0,
                                                    .prev_log_term = 0, .leader_commit = 500,
                                                    .entries = ents, .n_entries = 3};
    f[nf] = encode(&m, 1);
    emit_frame("fetch-response", &f[nf++], true);

    /* A stream: heartbeat, then one of each type. */
    size_t total = heartbeat.len;
    for (unsigned i = 0; i < nf; i++)
        total += f[i].len;
    unsigned char *stream = malloc(total);
    if (!stream)
        die("malloc");
    memcpy(stream, heartbeat.b, heartbeat.len);
    size_t at = heartbeat.len;
    for (unsigned i = 0; i < nf; i++) {
        memcpy(stream + at, f[i].b, f[i].len);
        at += f[i].len;
    }
    emit("wire", "stream-all-types.bin", stream, total);
    free(stream);

    /* Truncated and corrupted frames. */
    emit_edit("trunc-header", &ae, 20, SIZE_MAX, 0, false);
    emit_edit("trunc-body", &ae, ae.len - 13, SIZE_MAX, 0, false);
    emit_edit("bad-magic", &ae, ae.len, 0, 0x20, false);
    emit_edit("bad-version", &ae, ae.len, 4, 0x02, false);
    emit_edit("bad-type", &ae, ae.len, 6, 0x10, false);
    emit_edit("bad-length", &ae, ae.len, 8, 0x08, false);
    emit_edit("bad-flags", &ae, ae.len, 12, 0x01, false);
    emit_edit("flipped-body-bit", &ae, ae.len, 32 + 9, 0x04, false);
    /* Zero checksum: fuzz_wire seals it, so the decoder sees these. */
    emit_edit("zsum-bad-entry-count", &ae, ae.len, 32 + 32, 0x40, true);
    emit_edit("zsum-bad-entry-type", &ae, ae.len, 32 + 40 + 8, 0x07, true);
    emit_edit("zsum-nonzero-padding", &ae, ae.len, ae.len - 1, 0x01, true);
    emit_edit("zsum-bad-role", &is, is.len, 32 + 40 + 8, 0x09, true);
    emit_edit("zsum-address-nul", &is, is.len, 32 + 40 + 24 + 3, '.', true);

    free(heartbeat.b);
    for (unsigned i = 0; i < nf; i++)
        free(f[i].b);
}

/* ---- recovery -------------------------------------------------------------- */

static uv_loop_t loop;
static char tmpdir[256];

static void on_closed(void *arg)
{
    *(bool *)arg = true;
}

static void on_done(struct rl_store_req *req, int status)
{
    *(int *)req->data = status;
}

static void run_until_status(int *st)
{
    while (*st == 1)
        if (uv_run(&loop, UV_RUN_ONCE) == 0 && *st == 1) {
            fprintf(stderr, "gen_corpus: loop ran out of work\n");
            exit(1);
        }
}

static void rm_contents(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char p[4200];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        unlink(p);
    }
    closedir(d);
}

static struct rl_store *open_store(void)
{
    struct rl_store_config cfg = {.dir = tmpdir, .segment_size = FZ_SEGMENT_SIZE};
    struct rl_store *s;
    char err[512];
    int rv = rl_store_open(&loop, &cfg, &s, err, sizeof err);
    if (rv != 0) {
        fprintf(stderr, "gen_corpus: open %s: %s\n", tmpdir, err);
        exit(1);
    }
    return s;
}

static void close_store(struct rl_store *s)
{
    bool closed = false;
    rl_store_close(s, on_closed, &closed);
    while (!closed)
        uv_run(&loop, UV_RUN_ONCE);
}

/* A fresh directory: FORMAT and an initial metadata state, as a new store
 * writes them, but with the fixed dir-id. */
static void fresh_dir(void)
{
    rm_contents(tmpdir);
    unsigned char meta[FZ_META_SIZE];
    if (fz_write_format(tmpdir) != 0)
        die("FORMAT");
    fz_meta_encode(meta, 1, 0, 1, 0);
    if (fz_write_file(tmpdir, "meta-b", meta, sizeof meta) != 0)
        die("meta-b");
    fz_meta_encode(meta, 2, 0, 1, 0);
    if (fz_write_file(tmpdir, "meta-a", meta, sizeof meta) != 0)
        die("meta-a");
}

/* Appends n entries in one request; payload lengths and records vary. */
static void append(struct rl_store *s, unsigned n, uint64_t term, unsigned salt)
{
    struct rl_store_entry e[16];
    static unsigned char bufs[16][200];
    uint64_t first = rl_store_next_index(s);
    if (n > 16)
        n = 16;
    for (unsigned i = 0; i < n; i++) {
        uint32_t len = (uint32_t)((first + i) * 37 + salt) % 160;
        for (uint32_t k = 0; k < len; k++)
            bufs[i][k] = (unsigned char)('a' + (first + i + k + salt) % 26);
        uint32_t records = (uint32_t)((first + i + salt) % 4);
        e[i] = (struct rl_store_entry){.index = first + i, .term = term, .records = records,
                                       .type = records ? RAFT_COMMAND : RAFT_BARRIER,
                                       .buf = len ? bufs[i] : NULL, .len = len};
    }
    int st = 1;
    struct rl_store_req req = {.data = &st};
    if (rl_store_append(s, &req, e, n, on_done) != 0) {
        fprintf(stderr, "gen_corpus: append: %s\n", rl_store_errmsg(s));
        exit(1);
    }
    run_until_status(&st);
    if (st != 0) {
        fprintf(stderr, "gen_corpus: append status %d\n", st);
        exit(1);
    }
}

static void truncate_to(struct rl_store *s, uint64_t index)
{
    int st = 1;
    struct rl_store_req req = {.data = &st};
    if (rl_store_truncate(s, &req, index, on_done) != 0)
        die("truncate");
    run_until_status(&st);
}

static void trim_to(struct rl_store *s, uint64_t index)
{
    int st = 1;
    struct rl_store_req req = {.data = &st};
    if (rl_store_trim(s, &req, index, on_done) != 0)
        die("trim");
    run_until_status(&st);
}

/* The input for fuzz_recovery made from the directory: newest meta copy,
 * then the segment without trailing zeros (kept to a multiple of 8). */
struct rec {
    unsigned char *b;
    size_t len;
};

static unsigned char *slurp(const char *name, size_t *len)
{
    char p[4200];
    snprintf(p, sizeof p, "%s/%s", tmpdir, name);
    FILE *f = fopen(p, "rb");
    if (!f)
        return NULL;
    unsigned char *b = malloc(FZ_SEGMENT_SIZE);
    if (!b)
        die("malloc");
    *len = fread(b, 1, FZ_SEGMENT_SIZE, f);
    fclose(f);
    return b;
}

static struct rec capture(void)
{
    size_t la = 0, lb = 0, ls = 0;
    unsigned char *ma = slurp("meta-a", &la), *mb = slurp("meta-b", &lb);
    unsigned char *seg = slurp(FZ_SEGMENT_NAME, &ls);
    const unsigned char *meta = ma;
    if (!ma || (mb && rl_get64(mb + 16) > rl_get64(ma + 16)))
        meta = mb;
    if (!meta || !seg) {
        fprintf(stderr, "gen_corpus: %s lacks meta or segment\n", tmpdir);
        exit(1);
    }
    while (ls > 0 && seg[ls - 1] == 0)
        ls--;
    ls = (size_t)rl_pad8(ls);
    struct rec r = {malloc(FZ_META_SIZE + ls), FZ_META_SIZE + ls};
    if (!r.b)
        die("malloc");
    memcpy(r.b, meta, FZ_META_SIZE);
    memcpy(r.b + FZ_META_SIZE, seg, ls);
    free(ma);
    free(mb);
    free(seg);
    return r;
}

static void emit_rec(const char *name, const struct rec *r)
{
    char n[128];
    snprintf(n, sizeof n, "%s.bin", name);
    emit("recovery", n, r->b, r->len);
}

/* An input that trips a known library bug (not replayed by make check). */
static void emit_bug(const char *name, const struct rec *r)
{
    char n[128];
    snprintf(n, sizeof n, "%s.bin", name);
    emit("bug:recovery", n, r->b, r->len);
}

/* Positions of the frames in a captured input (segment starts at 96). */
static unsigned frames_of(const struct rec *r, size_t *pos, unsigned max)
{
    unsigned n = 0;
    size_t p = FZ_META_SIZE + RL_SEG_HDR;
    while (n < max && p + RL_FRAME_HDR <= r->len && !rl_all_zero(r->b + p, RL_FRAME_HDR)) {
        pos[n++] = p;
        p += RL_FRAME_HDR + rl_pad8(rl_get32(r->b + p + 40));
    }
    return n;
}

static struct rec copy_rec(const struct rec *r)
{
    struct rec c = {malloc(r->len), r->len};
    if (!c.b)
        die("malloc");
    memcpy(c.b, r->b, r->len);
    return c;
}

/* Zero checksums everywhere: fuzz_recovery recomputes them. */
static void emit_autoseal(const char *name, const struct rec *r)
{
    struct rec c = copy_rec(r);
    size_t pos[2048];
    unsigned n = frames_of(&c, pos, 2048);
    memset(c.b + 88, 0, 8);
    memset(c.b + FZ_META_SIZE + 56, 0, 8);
    for (unsigned i = 0; i < n; i++)
        memset(c.b + pos[i], 0, 8);
    emit_rec(name, &c);
    free(c.b);
}

static void gen_recovery(void)
{
    const char *root = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(tmpdir, sizeof tmpdir, "%s/rlog-gencorpus-XXXXXX", root);
    if (!mkdtemp(tmpdir))
        die("mkdtemp");
    if (uv_loop_init(&loop) != 0)
        die("uv_loop_init");
    size_t pos[2048];
    struct rl_store *s;

    /* clean: three writes of 1, 4 and 3 entries. */
    fresh_dir();
    s = open_store();
    append(s, 1, 1, 0);
    append(s, 4, 1, 1);
    append(s, 3, 2, 2);
    close_store(s);
    struct rec clean = capture();
    emit_rec("clean", &clean);
    emit_autoseal("clean-autoseal", &clean);
    /* The same segment under the default metadata (no meta prefix). */
    emit("recovery", "clean-no-meta.bin", clean.b + FZ_META_SIZE, clean.len - FZ_META_SIZE);

    unsigned n = frames_of(&clean, pos, 2048);
    /* torn tail: the last frame's second half never reached the disk. */
    struct rec c = copy_rec(&clean);
    size_t cut = pos[n - 1] + (c.len - pos[n - 1]) / 2;
    memset(c.b + cut, 0, c.len - cut);
    emit_rec("torn-tail", &c);
    free(c.b);
    /* torn inside the last frame's header. */
    c = copy_rec(&clean);
    c.len = pos[n - 1] + 24;
    emit_rec("torn-tail-header", &c);
    free(c.b);
    /* flipped bit in the last write (cut as torn) and in the first write
     * (later writes prove it was durable: corruption). */
    c = copy_rec(&clean);
    c.b[pos[n - 1] + RL_FRAME_HDR + 1] ^= 0x10;
    emit_rec("flipped-bit-last", &c);
    free(c.b);
    c = copy_rec(&clean);
    c.b[pos[0] + RL_FRAME_HDR + 2] ^= 0x01;
    emit_rec("flipped-bit-first", &c);
    free(c.b);
    /* Known bug B: a flip in entry 3, whose write (entries 2-5) was durable
     * before the write of 6-8 began; recovery cuts the log after entry 2
     * as if torn instead of failing with RLOG_ECORRUPT. */
    c = copy_rec(&clean);
    c.b[pos[2] + 16] ^= 0x80; /* term of entry 3 */
    emit_bug("bug-b-flipped-bit-mid-write", &c);
    free(c.b);
    /* Known bug B/C: entry 3's header zeroed (a lost sector): recovery stops
     * at the zeros silently, dropping acknowledged entries 3-8. */
    c = copy_rec(&clean);
    memset(c.b + pos[2], 0, RL_FRAME_HDR);
    emit_bug("bug-c-zeroed-frame-header", &c);
    free(c.b);
    /* A flip in entry 5, the last of its write: entries 6-8 prove it
     * durable, and that is the first valid frame after it: RLOG_ECORRUPT. */
    c = copy_rec(&clean);
    c.b[pos[4] + 16] ^= 0x80;
    emit_rec("flipped-bit-end-of-write", &c);
    free(c.b);
    /* torn first write of the segment: header damaged. */
    c = copy_rec(&clean);
    c.b[FZ_META_SIZE + 20] ^= 0x01;
    emit_rec("torn-segment-header", &c);
    free(c.b);
    /* an unused spare: metadata only, zero segment. */
    c = copy_rec(&clean);
    c.len = FZ_META_SIZE + 8;
    memset(c.b + FZ_META_SIZE, 0, 8);
    emit_rec("spare-segment", &c);
    c.len = FZ_META_SIZE;
    emit_rec("meta-only", &c);
    free(c.b);
    free(clean.b);

    /* reopened: three runs, so three generations of frames and a cut. */
    fresh_dir();
    for (unsigned run = 0; run < 3; run++) {
        s = open_store();
        append(s, 2 + run, 1 + run, run);
        append(s, 1, 1 + run, run + 7);
        close_store(s);
    }
    struct rec reopened = capture();
    emit_rec("reopened", &reopened);
    emit_autoseal("reopened-autoseal", &reopened);
    free(reopened.b);

    /* truncated: the suffix is cut and rewritten, leaving stale frames of an
     * older generation past the new end. */
    fresh_dir();
    s = open_store();
    append(s, 6, 1, 3);
    append(s, 5, 1, 4);
    truncate_to(s, 5);
    append(s, 2, 2, 5);
    close_store(s);
    s = open_store();
    truncate_to(s, 6);
    close_store(s);
    struct rec trunc = capture();
    emit_rec("truncated-stale", &trunc);
    emit_autoseal("truncated-stale-autoseal", &trunc);
    free(trunc.b);

    /* trimmed: the log starts at entry 4. */
    fresh_dir();
    s = open_store();
    append(s, 3, 1, 6);
    append(s, 4, 1, 7);
    trim_to(s, 4);
    close_store(s);
    struct rec trimmed = capture();
    emit_rec("trimmed", &trimmed);
    free(trimmed.b);

    /* many small entries: exercises the sparse index samples. */
    fresh_dir();
    {
        struct rl_store_config cfg = {.dir = tmpdir, .segment_size = FZ_SEGMENT_SIZE,
                                      .index_interval = 512};
        char err[512];
        if (rl_store_open(&loop, &cfg, &s, err, sizeof err) != 0) {
            fprintf(stderr, "gen_corpus: open: %s\n", err);
            exit(1);
        }
    }
    for (unsigned k = 0; k < 8; k++)
        append(s, 16, 1 + k / 3, k);
    close_store(s);
    struct rec many = capture();
    emit_rec("many-entries", &many);
    free(many.b);

    rm_contents(tmpdir);
    rmdir(tmpdir);
    uv_loop_close(&loop);
}

int main(int argc, char **argv)
{
    if (argc != 2 && argc != 3) {
        fprintf(stderr, "usage: %s OUTDIR [BUGDIR]\n", argv[0]);
        return 2;
    }
    outdir = argv[1];
    bugdir = argc == 3 ? argv[2] : NULL;
    gen_wire();
    gen_recovery();
    printf("gen_corpus: %u files, %zu bytes in %s\n", n_files, n_bytes, outdir);
    return 0;
}
