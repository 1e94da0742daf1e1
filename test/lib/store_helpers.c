/* Helpers for the segment store tests; see store_helpers.h. */
#include "store_helpers.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- Directories and files ------------------------------------------- */

/* Temp dirs made by this process, removed at exit even when a test fails
 * (Check's fork mode ends a failed test with exit()). */
#define TH_MAX_TMP 64
static char *tmp_dirs[TH_MAX_TMP];
static unsigned n_tmp_dirs;
static pid_t tmp_owner;

static void remove_tmp_dirs(void)
{
    if (getpid() != tmp_owner)
        return; /* a forked helper child must not remove its parent's dirs */
    for (unsigned i = 0; i < n_tmp_dirs; i++) {
        th_rmrf(tmp_dirs[i]);
        free(tmp_dirs[i]);
    }
    n_tmp_dirs = 0;
}

/* Root of this run's temp dirs (see th_tmp_begin); "/tmp" without one. */
static char tmp_root[64] = "/tmp";

void th_tmp_begin(void)
{
    snprintf(tmp_root, sizeof tmp_root, "/tmp/rlog-run-XXXXXX");
    if (mkdtemp(tmp_root) == NULL) {
        perror("mkdtemp");
        exit(EXIT_FAILURE);
    }
}

void th_tmp_end(void)
{
    if (strcmp(tmp_root, "/tmp") != 0)
        th_rmrf(tmp_root);
}

void th_mkdtemp(char *buf, size_t len)
{
    ck_assert_uint_gt(len, 32);
    snprintf(buf, len, "%s/rlog-test-XXXXXX", tmp_root);
    ck_assert_msg(mkdtemp(buf) != NULL, "mkdtemp: %s", strerror(errno));
    if (n_tmp_dirs == 0 && tmp_owner != getpid()) {
        tmp_owner = getpid();
        atexit(remove_tmp_dirs);
    }
    if (n_tmp_dirs < TH_MAX_TMP)
        tmp_dirs[n_tmp_dirs++] = strdup(buf);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

void th_rmrf(const char *path)
{
    nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

unsigned char *th_read_file(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY);
    ck_assert_msg(fd >= 0, "open %s: %s", path, strerror(errno));
    struct stat st;
    ck_assert_int_eq(fstat(fd, &st), 0);
    unsigned char *buf = malloc((size_t)st.st_size + 1);
    ck_assert_ptr_nonnull(buf);
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
        ck_assert_msg(r > 0, "read %s: %s", path, strerror(errno));
        got += (size_t)r;
    }
    close(fd);
    *len = got;
    return buf;
}

void th_write_file(const char *path, const void *buf, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ck_assert_msg(fd >= 0, "open %s: %s", path, strerror(errno));
    size_t done = 0;
    while (done < len) {
        ssize_t w = write(fd, (const char *)buf + done, len - done);
        ck_assert_msg(w > 0, "write %s: %s", path, strerror(errno));
        done += (size_t)w;
    }
    close(fd);
}

void th_path_join(char *buf, size_t len, const char *dir, const char *name)
{
    int n = snprintf(buf, len, "%s/%s", dir, name);
    ck_assert_msg(n > 0 && (size_t)n < len, "path too long: %s/%s", dir, name);
}

bool th_file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

void th_copy_dir(const char *src, const char *dst)
{
    mkdir(dst, 0755);
    DIR *d = opendir(src);
    ck_assert_msg(d != NULL, "opendir %s: %s", src, strerror(errno));
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        char from[PATH_MAX], to[PATH_MAX];
        th_path_join(from, sizeof from, src, de->d_name);
        th_path_join(to, sizeof to, dst, de->d_name);
        struct stat st;
        if (stat(from, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        size_t len;
        unsigned char *buf = th_read_file(from, &len);
        th_write_file(to, buf, len);
        free(buf);
    }
    closedir(d);
}

static int seg_name_cmp(const void *a, const void *b)
{
    const char *x = a, *y = b;
    size_t lx = strlen(x), ly = strlen(y);
    if (lx != ly)
        return lx < ly ? -1 : 1;
    return strcmp(x, y);
}

static bool is_segment_name(const char *n)
{
    size_t l = strlen(n);
    return strncmp(n, "seg-", 4) == 0 && l > 8 && strcmp(n + l - 4, ".log") == 0;
}

unsigned th_list_segments(const char *dir, char names[][NAME_MAX + 1], unsigned max)
{
    DIR *d = opendir(dir);
    ck_assert_msg(d != NULL, "opendir %s: %s", dir, strerror(errno));
    unsigned n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (!is_segment_name(de->d_name) || n >= max)
            continue;
        snprintf(names[n++], NAME_MAX + 1, "%s", de->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof names[0], seg_name_cmp);
    return n;
}

bool th_find_in_segments(const char *dir, const void *needle, size_t nlen,
                         char *file, size_t filelen, uint64_t *pos)
{
    static char names[256][NAME_MAX + 1];
    unsigned n = th_list_segments(dir, names, 256);
    for (unsigned i = 0; i < n; i++) {
        char path[PATH_MAX];
        th_path_join(path, sizeof path, dir, names[i]);
        size_t len;
        unsigned char *buf = th_read_file(path, &len);
        unsigned char *hit = memmem(buf, len, needle, nlen);
        if (hit) {
            snprintf(file, filelen, "%s", names[i]);
            *pos = (uint64_t)(hit - buf);
            free(buf);
            return true;
        }
        free(buf);
    }
    return false;
}

/* ---- Payloads --------------------------------------------------------- */

static uint64_t mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static uint64_t entry_hash(uint64_t index, uint64_t seed)
{
    return mix64(mix64(index) ^ (seed * 0x2545f4914f6cdd1dull + 0x1234567ull));
}

uint32_t th_payload_len(uint64_t index, uint64_t seed)
{
    uint64_t h = entry_hash(index, seed);
    if ((h & 7) == 0)
        return 0;
    return (uint32_t)((h >> 8) % (TH_MAX_PAYLOAD + 1));
}

uint32_t th_records(uint64_t index, uint64_t seed)
{
    return (uint32_t)((entry_hash(index, seed) >> 24) % 4);
}

uint8_t th_type(uint64_t index, uint64_t seed)
{
    if (th_records(index, seed) > 0)
        return 1;
    return (uint8_t)(1 + (entry_hash(index, seed) >> 40) % 3);
}

void th_payload_fill(void *buf, uint32_t len, uint64_t index, uint64_t seed)
{
    unsigned char *p = buf;
    uint64_t x = entry_hash(index, seed) ^ 0x5bd1e9955bd1e995ull;
    for (uint32_t i = 0; i < len; i++) {
        if (i % 8 == 0)
            x = mix64(x);
        unsigned char b = (unsigned char)(x >> (8 * (i % 8)));
        p[i] = b ? b : 0xa5;
    }
}

struct rl_store_entry *th_entries_make(uint64_t first, unsigned n,
                                       uint64_t term, uint64_t seed)
{
    struct rl_store_entry *e = calloc(n ? n : 1, sizeof *e);
    ck_assert_ptr_nonnull(e);
    for (unsigned i = 0; i < n; i++) {
        uint64_t idx = first + i;
        e[i].index = idx;
        e[i].term = term;
        e[i].records = th_records(idx, seed);
        e[i].type = th_type(idx, seed);
        e[i].len = th_payload_len(idx, seed);
        void *buf = NULL;
        if (e[i].len) {
            buf = malloc(e[i].len);
            ck_assert_ptr_nonnull(buf);
            th_payload_fill(buf, e[i].len, idx, seed);
        }
        e[i].buf = buf;
    }
    return e;
}

void th_entries_free(struct rl_store_entry *e, unsigned n)
{
    if (!e)
        return;
    for (unsigned i = 0; i < n; i++)
        free((void *)e[i].buf);
    free(e);
}

/* ---- A store on its own loop ----------------------------------------- */

unsigned th_completions;

void th_init(struct th_store *t)
{
    memset(t, 0, sizeof *t);
    th_completions = 0;
    ck_assert_int_eq(uv_loop_init(&t->loop), 0);
    th_mkdtemp(t->dir, sizeof t->dir);
    t->cfg.dir = t->dir;
    t->cfg.segment_size = RL_STORE_MIN_SEGMENT_SIZE;
}

int th_open(struct th_store *t)
{
    ck_assert_ptr_null(t->s);
    t->err[0] = '\0';
    struct rl_store *s = (struct rl_store *)0x1;
    int rc = rl_store_open(&t->loop, &t->cfg, &s, t->err, sizeof t->err);
    if (rc != 0) {
        ck_assert_msg(s == NULL, "open failed (%s) but *out is not NULL",
                      rlog_errname(rc));
        ck_assert_msg(rc < 0, "open returned %d", rc);
        return rc;
    }
    ck_assert_ptr_nonnull(s);
    t->s = s;
    return 0;
}

void th_open_ok(struct th_store *t)
{
    int rc = th_open(t);
    ck_assert_msg(rc == 0, "open %s: %s: %s", t->dir, rlog_errname(rc), t->err);
}

static void close_cb(void *arg)
{
    bool *flag = arg;
    ck_assert_msg(!*flag, "close callback fired twice");
    *flag = true;
}

void th_run_until(struct th_store *t, const bool *flag)
{
    while (!*flag) {
        int alive = uv_run(&t->loop, UV_RUN_ONCE);
        if (!*flag && !alive)
            ck_abort_msg("loop ran out of work before the awaited callback fired");
    }
}

void th_close(struct th_store *t)
{
    if (!t->s)
        return;
    bool closed = false;
    rl_store_close(t->s, close_cb, &closed);
    t->s = NULL;
    th_run_until(t, &closed);
}

void th_reopen(struct th_store *t)
{
    th_close(t);
    th_open_ok(t);
}

void th_fini(struct th_store *t)
{
    th_close(t);
    uv_run(&t->loop, UV_RUN_DEFAULT);
    ck_assert_msg(uv_loop_close(&t->loop) == 0,
                  "handles left on the loop after the store closed");
    th_rmrf(t->dir);
}

/* ---- Asynchronous batches -------------------------------------------- */

static void batch_cb(struct rl_store_req *req, int status)
{
    struct th_batch *b = req->data;
    b->fired++;
    ck_assert_msg(b->fired == 1, "append callback for %" PRIu64 " fired twice",
                  b->first);
    b->status = status;
    b->order = ++th_completions;
    b->done = true;
}

int th_batch_submit(struct th_store *t, struct th_batch *b, uint64_t first,
                    unsigned n, uint64_t term, uint64_t seed)
{
    memset(b, 0, sizeof *b);
    b->first = first;
    b->n = n;
    b->term = term;
    b->seed = seed;
    b->e = th_entries_make(first, n, term, seed);
    b->req.data = b;
    b->submit_rc = rl_store_append(t->s, &b->req, b->e, n, batch_cb);
    if (b->submit_rc != 0) {
        b->status = b->submit_rc;
        b->done = true;
    }
    return b->submit_rc;
}

void th_batch_free(struct th_batch *b)
{
    th_entries_free(b->e, b->n);
    b->e = NULL;
}

int th_append(struct th_store *t, uint64_t first, unsigned n, uint64_t term,
              uint64_t seed)
{
    struct th_batch b;
    int rc = th_batch_submit(t, &b, first, n, term, seed);
    if (rc == 0) {
        th_run_until(t, &b.done);
        ck_assert_int_eq(b.fired, 1);
        rc = b.status;
    }
    th_batch_free(&b);
    return rc;
}

int th_append_entries(struct th_store *t, const struct rl_store_entry *e,
                      unsigned n)
{
    struct th_batch b;
    memset(&b, 0, sizeof b);
    b.req.data = &b;
    b.first = n ? e[0].index : 0;
    int rc = rl_store_append(t->s, &b.req, e, n, batch_cb);
    if (rc != 0) {
        ck_assert_msg(b.fired == 0, "callback fired after an error return");
        return rc;
    }
    th_run_until(t, &b.done);
    return b.status;
}

void th_append_ok(struct th_store *t, unsigned n, uint64_t term, uint64_t seed)
{
    uint64_t first = rl_store_next_index(t->s);
    int rc = th_append(t, first, n, term, seed);
    ck_assert_msg(rc == 0, "append %" PRIu64 "+%u: %s: %s", first, n,
                  rlog_errname(rc), rl_store_errmsg(t->s));
    ck_assert_uint_eq(rl_store_last_index(t->s), first + n - 1);
}

static void op_cb(struct rl_store_req *req, int status)
{
    struct th_op *op = req->data;
    op->fired++;
    ck_assert_msg(op->fired == 1, "truncate/trim callback fired twice");
    op->status = status;
    op->order = ++th_completions;
    op->done = true;
}

int th_truncate_submit(struct th_store *t, struct th_op *op, uint64_t index)
{
    memset(op, 0, sizeof *op);
    op->req.data = op;
    op->submit_rc = rl_store_truncate(t->s, &op->req, index, op_cb);
    if (op->submit_rc) {
        op->status = op->submit_rc;
        op->done = true;
    }
    return op->submit_rc;
}

int th_repair(struct th_store *t, uint64_t first, unsigned n, uint64_t term, uint64_t seed)
{
    struct th_op op;
    memset(&op, 0, sizeof op);
    op.req.data = &op;
    struct rl_store_entry *e = th_entries_make(first, n, term, seed);
    int rc = rl_store_repair(t->s, &op.req, e, n, op_cb);
    if (rc == 0) {
        th_run_until(t, &op.done);
        rc = op.status;
    }
    th_entries_free(e, n);
    return rc;
}

bool th_frame_pos(const char *dir, uint64_t index, char *name, size_t nlen, uint64_t *pos,
                  uint32_t *len)
{
    static char names[512][NAME_MAX + 1];
    unsigned ns = th_list_segments(dir, names, 512);
    for (unsigned k = 0; k < ns; k++) {
        char path[PATH_MAX];
        th_path_join(path, sizeof path, dir, names[k]);
        size_t size;
        unsigned char *buf = th_read_file(path, &size);
        uint64_t p = RL_STORE_SEGMENT_HEADER_SIZE;
        while (p + RL_STORE_FRAME_HEADER_SIZE <= size) {
            uint64_t idx = 0;
            uint32_t l = 0;
            for (int i = 7; i >= 0; i--)
                idx = idx << 8 | buf[p + 8 + (unsigned)i];
            for (int i = 3; i >= 0; i--)
                l = l << 8 | buf[p + 40 + (unsigned)i];
            if (idx == 0)
                break;
            if (idx == index) {
                snprintf(name, nlen, "%s", names[k]);
                *pos = p;
                *len = l;
                free(buf);
                return true;
            }
            p += RL_STORE_FRAME_HEADER_SIZE + ((l + 7u) & ~7u);
        }
        free(buf);
    }
    return false;
}

void th_flip_bit(const char *dir, const char *name, uint64_t at, unsigned bit)
{
    char path[PATH_MAX];
    th_path_join(path, sizeof path, dir, name);
    size_t n;
    unsigned char *buf = th_read_file(path, &n);
    ck_assert_uint_lt(at, n);
    buf[at] ^= (unsigned char)(1u << bit);
    th_write_file(path, buf, n);
    free(buf);
}

enum { OP_TRIM, OP_TRIM_RECORDS, OP_RESET };

static int op_submit(struct th_store *t, struct th_op *op, int kind, uint64_t index,
                     uint64_t offset)
{
    memset(op, 0, sizeof *op);
    op->req.data = op;
    op->submit_rc = kind == OP_TRIM ? rl_store_trim(t->s, &op->req, index, op_cb)
                    : kind == OP_TRIM_RECORDS
                        ? rl_store_trim_records(t->s, &op->req, index, offset, op_cb)
                        : rl_store_reset(t->s, &op->req, index, offset, op_cb);
    if (op->submit_rc) {
        op->status = op->submit_rc;
        op->done = true;
    }
    return op->submit_rc;
}

int th_trim_submit(struct th_store *t, struct th_op *op, uint64_t index)
{
    return op_submit(t, op, OP_TRIM, index, 0);
}

int th_reset_submit(struct th_store *t, struct th_op *op, uint64_t index, uint64_t offset)
{
    return op_submit(t, op, OP_RESET, index, offset);
}

static int op_run(struct th_store *t, int kind, uint64_t index, uint64_t offset)
{
    struct th_op op;
    if (op_submit(t, &op, kind, index, offset))
        return op.submit_rc;
    th_run_until(t, &op.done);
    return op.status;
}

int th_trim_records(struct th_store *t, uint64_t index, uint64_t offset)
{
    return op_run(t, OP_TRIM_RECORDS, index, offset);
}

int th_reset(struct th_store *t, uint64_t index, uint64_t offset)
{
    return op_run(t, OP_RESET, index, offset);
}

int th_truncate(struct th_store *t, uint64_t index)
{
    struct th_op op;
    if (th_truncate_submit(t, &op, index))
        return op.submit_rc;
    th_run_until(t, &op.done);
    return op.status;
}

int th_trim(struct th_store *t, uint64_t index)
{
    return op_run(t, OP_TRIM, index, 0);
}

/* ---- Checking entries -------------------------------------------------- */

bool th_entry_matches(struct th_store *t, uint64_t index, uint64_t term,
                      uint64_t seed, uint64_t offset, char *msg, size_t msglen)
{
    struct rl_store_entry out;
    memset(&out, 0, sizeof out);
    int rc = rl_store_read(t->s, index, &out);
    if (rc != 0) {
        snprintf(msg, msglen, "read %" PRIu64 ": %s: %s", index, rlog_errname(rc),
                 rl_store_errmsg(t->s));
        return false;
    }
    bool ok = false;
    uint32_t len = th_payload_len(index, seed);
    if (out.index != index)
        snprintf(msg, msglen, "read %" PRIu64 ": index %" PRIu64, index, out.index);
    else if (out.term != term)
        snprintf(msg, msglen, "read %" PRIu64 ": term %" PRIu64 " != %" PRIu64,
                 index, out.term, term);
    else if (out.offset != offset)
        snprintf(msg, msglen, "read %" PRIu64 ": offset %" PRIu64 " != %" PRIu64,
                 index, out.offset, offset);
    else if (out.records != th_records(index, seed))
        snprintf(msg, msglen, "read %" PRIu64 ": records %u != %u", index,
                 out.records, th_records(index, seed));
    else if (out.type != th_type(index, seed))
        snprintf(msg, msglen, "read %" PRIu64 ": type %u != %u", index, out.type,
                 th_type(index, seed));
    else if (out.len != len)
        snprintf(msg, msglen, "read %" PRIu64 ": len %u != %u", index, out.len, len);
    else if (len == 0)
        ok = true;
    else if (out.buf == NULL)
        snprintf(msg, msglen, "read %" PRIu64 ": NULL buffer", index);
    else {
        unsigned char *want = malloc(len);
        ck_assert_ptr_nonnull(want);
        th_payload_fill(want, len, index, seed);
        ok = memcmp(want, out.buf, len) == 0;
        if (!ok)
            snprintf(msg, msglen, "read %" PRIu64 ": payload differs", index);
        free(want);
    }
    free((void *)out.buf);
    return ok;
}

void th_check_entry(struct th_store *t, uint64_t index, uint64_t term,
                    uint64_t seed, uint64_t offset)
{
    char msg[512];
    ck_assert_msg(th_entry_matches(t, index, term, seed, offset, msg, sizeof msg),
                  "%s", msg);
}

/* ---- Model of the log ------------------------------------------------- */

void th_model_init(struct th_model *m)
{
    memset(m, 0, sizeof *m);
    m->first = 1;
    m->last = 0;
    m->cap = 1024;
    m->e = calloc(m->cap, sizeof *m->e);
    ck_assert_ptr_nonnull(m->e);
}

void th_model_free(struct th_model *m)
{
    free(m->e);
    m->e = NULL;
}

void th_model_copy(struct th_model *dst, const struct th_model *src)
{
    free(dst->e);
    *dst = *src;
    dst->e = malloc(src->cap * sizeof *dst->e);
    ck_assert_ptr_nonnull(dst->e);
    memcpy(dst->e, src->e, src->cap * sizeof *dst->e);
}

void th_model_append(struct th_model *m, uint64_t first, unsigned n,
                     uint64_t term, uint64_t seed)
{
    ck_assert_uint_eq(first, m->last + 1);
    while (m->last + n + 1 > m->cap) {
        m->e = realloc(m->e, 2 * m->cap * sizeof *m->e);
        ck_assert_ptr_nonnull(m->e);
        memset(m->e + m->cap, 0, m->cap * sizeof *m->e);
        m->cap *= 2;
    }
    for (unsigned i = 0; i < n; i++) {
        uint64_t idx = first + i;
        uint64_t off = th_model_next_offset(m);
        m->e[idx].term = term;
        m->e[idx].seed = seed;
        m->e[idx].records = th_records(idx, seed);
        m->e[idx].offset = off;
        m->last = idx;
    }
}

void th_model_truncate(struct th_model *m, uint64_t index)
{
    ck_assert_uint_ge(index, m->first);
    ck_assert_uint_le(index, m->last + 1);
    m->last = index - 1;
}

void th_model_trim(struct th_model *m, uint64_t index)
{
    ck_assert_uint_le(index, m->last + 1);
    if (index > m->first)
        m->first = index;
}

void th_model_reset(struct th_model *m, uint64_t index, uint64_t offset)
{
    ck_assert_uint_ge(index, 2);
    while (index + 1 > m->cap) {
        m->e = realloc(m->e, 2 * m->cap * sizeof *m->e);
        ck_assert_ptr_nonnull(m->e);
        memset(m->e + m->cap, 0, m->cap * sizeof *m->e);
        m->cap *= 2;
    }
    /* A placeholder before the start carries the next offset. */
    m->e[index - 1] = (struct th_model_entry){.offset = offset, .records = 0};
    m->first = index;
    m->last = index - 1;
}

uint64_t th_model_next_offset(const struct th_model *m)
{
    if (m->last == 0)
        return 0;
    return m->e[m->last].offset + m->e[m->last].records;
}

uint64_t th_model_first_offset(const struct th_model *m)
{
    if (m->first > m->last)
        return th_model_next_offset(m);
    return m->e[m->first].offset;
}

uint64_t th_model_index_of_offset(const struct th_model *m, uint64_t o)
{
    if (m->first > m->last)
        return 0;
    uint64_t lo = m->first, hi = m->last, best = 0;
    while (lo <= hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        if (m->e[mid].offset <= o) {
            best = mid;
            lo = mid + 1;
        } else {
            if (mid == 0)
                break;
            hi = mid - 1;
        }
    }
    if (best && o < m->e[best].offset + m->e[best].records)
        return best;
    return 0;
}

uint64_t th_rand(uint64_t *state)
{
    *state += 0x9e3779b97f4a7c15ull;
    uint64_t x = *state;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

uint64_t th_rand_range(uint64_t *state, uint64_t lo, uint64_t hi)
{
    if (hi <= lo)
        return lo;
    return lo + th_rand(state) % (hi - lo + 1);
}

static bool check_model_entry(struct th_store *t, const struct th_model *m,
                              uint64_t i, char *msg, size_t msglen)
{
    const struct th_model_entry *me = &m->e[i];
    if (!th_entry_matches(t, i, me->term, me->seed, me->offset, msg, msglen))
        return false;
    if (me->records == 0)
        return true;
    for (int k = 0; k < 2; k++) {
        uint64_t o = k == 0 ? me->offset : me->offset + me->records - 1;
        struct rl_store_entry out;
        memset(&out, 0, sizeof out);
        int rc = rl_store_read_offset(t->s, o, &out);
        free((void *)out.buf);
        if (rc != 0) {
            snprintf(msg, msglen, "read_offset %" PRIu64 " (entry %" PRIu64 "): %s: %s",
                     o, i, rlog_errname(rc), rl_store_errmsg(t->s));
            return false;
        }
        if (out.index != i || out.offset != me->offset) {
            snprintf(msg, msglen,
                     "read_offset %" PRIu64 ": got index %" PRIu64 " offset %" PRIu64
                     ", want index %" PRIu64 " offset %" PRIu64,
                     o, out.index, out.offset, i, me->offset);
            return false;
        }
        /* A host thread's read of a healthy durable entry is served, and
         * is the same entry byte for byte. */
        struct rl_store_entry sh;
        rc = rl_store_read_offset_shared(t->s, o, &sh);
        bool same = rc == 0 && sh.index == i && sh.offset == me->offset && sh.term == me->term &&
                    sh.len == th_payload_len(i, me->seed) && sh.records == me->records;
        if (same && sh.len > 0) {
            unsigned char *want = malloc(sh.len);
            th_payload_fill(want, sh.len, i, me->seed);
            same = memcmp(want, sh.buf, sh.len) == 0;
            free(want);
        }
        free((void *)sh.buf);
        if (!same) {
            snprintf(msg, msglen, "shared read of offset %" PRIu64 " (entry %" PRIu64 "): %s%s",
                     o, i, rc == 0 ? "another entry" : rc == 1 ? "not served" : rlog_errname(rc),
                     rc == 0 ? " or other bytes" : "");
            return false;
        }
    }
    return true;
}

/* What a host thread's read is not to serve: it leaves it to the loop. */
static bool expect_shared_declines(struct th_store *t, uint64_t offset, char *msg, size_t msglen)
{
    struct rl_store_entry out;
    int rc = rl_store_read_offset_shared(t->s, offset, &out);
    if (rc == 1)
        return true;
    if (rc == 0)
        free((void *)out.buf);
    snprintf(msg, msglen, "shared read of offset %" PRIu64 ": %s, want it left to the loop",
             offset, rc == 0 ? "served" : rlog_errname(rc));
    return false;
}

static bool expect_read(struct th_store *t, uint64_t index, int want, char *msg,
                        size_t msglen)
{
    struct rl_store_entry out;
    memset(&out, 0, sizeof out);
    int rc = rl_store_read(t->s, index, &out);
    if (rc == 0)
        free((void *)out.buf);
    if (rc != want) {
        snprintf(msg, msglen, "read %" PRIu64 ": %s, want %s", index,
                 rlog_errname(rc), rlog_errname(want));
        return false;
    }
    return true;
}

static bool expect_read_offset(struct th_store *t, uint64_t o, int want,
                               char *msg, size_t msglen)
{
    struct rl_store_entry out;
    memset(&out, 0, sizeof out);
    int rc = rl_store_read_offset(t->s, o, &out);
    if (rc == 0)
        free((void *)out.buf);
    if (rc != want) {
        snprintf(msg, msglen, "read_offset %" PRIu64 ": %s, want %s", o,
                 rlog_errname(rc), rlog_errname(want));
        return false;
    }
    return true;
}

bool th_model_matches(struct th_store *t, const struct th_model *m, bool full,
                      unsigned sample, uint64_t *rng, char *msg, size_t msglen)
{
    struct rl_store *s = t->s;
    uint64_t fi = rl_store_first_index(s), la = rl_store_last_index(s);
    if (fi != m->first || la != m->last) {
        snprintf(msg, msglen,
                 "bounds [%" PRIu64 ", %" PRIu64 "], model [%" PRIu64 ", %" PRIu64 "]",
                 fi, la, m->first, m->last);
        return false;
    }
    if (rl_store_next_index(s) != m->last + 1) {
        snprintf(msg, msglen, "next_index %" PRIu64 ", model %" PRIu64,
                 rl_store_next_index(s), m->last + 1);
        return false;
    }
    uint64_t fo = rl_store_first_offset(s), no = rl_store_next_offset(s);
    if (fo != th_model_first_offset(m) || no != th_model_next_offset(m)) {
        snprintf(msg, msglen,
                 "offsets [%" PRIu64 ", %" PRIu64 "), model [%" PRIu64 ", %" PRIu64 ")",
                 fo, no, th_model_first_offset(m), th_model_next_offset(m));
        return false;
    }
    if (!expect_read(t, m->last + 1, RLOG_ENOTFOUND, msg, msglen) ||
        !expect_read(t, m->last + 1000, RLOG_ENOTFOUND, msg, msglen) ||
        !expect_read_offset(t, no, RLOG_ENOTFOUND, msg, msglen) ||
        !expect_shared_declines(t, no, msg, msglen) ||
        !expect_shared_declines(t, no + 1000, msg, msglen))
        return false;
    if (m->first > 1 && (!expect_read(t, m->first - 1, RLOG_ETRIMMED, msg, msglen) ||
                         !expect_read(t, 1, RLOG_ETRIMMED, msg, msglen)))
        return false;
    if (fo > 0 && (!expect_read_offset(t, fo - 1, RLOG_ETRIMMED, msg, msglen) ||
                   !expect_shared_declines(t, fo - 1, msg, msglen)))
        return false;
    if (m->first > m->last)
        return true;
    if (full) {
        for (uint64_t i = m->first; i <= m->last; i++)
            if (!check_model_entry(t, m, i, msg, msglen))
                return false;
        return true;
    }
    if (!check_model_entry(t, m, m->first, msg, msglen) ||
        !check_model_entry(t, m, m->last, msg, msglen))
        return false;
    for (unsigned k = 0; k < sample; k++) {
        uint64_t i = th_rand_range(rng, m->first, m->last);
        if (!check_model_entry(t, m, i, msg, msglen))
            return false;
    }
    return true;
}

bool th_msg_names_position(const char *msg, const char *needle)
{
    const char *p = strstr(msg, needle);
    if (!p)
        return false;
    for (p += strlen(needle); *p; p++)
        if (*p >= '0' && *p <= '9')
            return true;
    return false;
}

void th_fill(struct th_store *t, struct th_model *m, uint64_t *rng, unsigned count,
             unsigned max_batch, uint64_t term, uint64_t seed)
{
    while (count > 0) {
        unsigned n = (unsigned)th_rand_range(rng, 1, max_batch);
        if (n > count)
            n = count;
        uint64_t first = rl_store_next_index(t->s);
        th_append_ok(t, n, term, seed);
        th_model_append(m, first, n, term, seed);
        count -= n;
    }
}
