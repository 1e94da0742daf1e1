/*
 * Wire codec, liblog's own messages: the fetch request and answer, the
 * commit notice, forwarding (append, barrier, their results), a state
 * machine's snapshot install (request, data). Each has its
 * struct, its encoder and its decoder (codec.h says each layout); the fetch
 * answer keeps the AppendEntries layout and is built and read by
 * raft_msg.c's code for it, the others are frames whose bytes are all in
 * one buffer.
 */
#include "wire/internal.h"

#include <stdlib.h>
#include <xxhash.h>

/* ---- liblog's own frames ---------------------------------------------------- */

/* Starts a frame whose bytes are all in one buffer (nothing referenced):
 * allocates it and writes the header but its checksum; *w is then at the
 * body. Seal it with seal_single once the body is written. */
static int single_buffer(struct rl_wire_out *out, uint16_t type, uint64_t body, uint64_t sender,
                         struct wr *w)
{
    memset(out, 0, sizeof *out);
    if (sender == 0 || body > MAX_BODY)
        return RLOG_EINVAL;
    out->head = malloc((size_t)(RL_WIRE_HDR + body));
    out->iov = malloc(sizeof *out->iov);
    if (!out->head || !out->iov) {
        rl_wire_out_free(out);
        return RLOG_ENOMEM;
    }
    out->head_len = (size_t)(RL_WIRE_HDR + body);
    out->n_iov = 1;
    out->total = out->head_len;
    out->iov[0] = (struct rl_wire_iov){out->head, out->head_len};
    rl_wire__hdr_prefix(out->head, type, (uint32_t)body, 0, sender);
    w->p = out->head + RL_WIRE_HDR;
    return 0;
}

static void seal_single(struct rl_wire_out *out)
{
    rl_put64(out->head + 24, XXH3_64bits_withSeed(out->head + RL_WIRE_HDR,
                                                  out->head_len - RL_WIRE_HDR,
                                                  XXH3_64bits(out->head, 24)));
}

/* A frame of n u64 words. */
static int encode_words(uint16_t type, const uint64_t *words, unsigned n, uint64_t sender,
                        struct rl_wire_out *out)
{
    struct wr w;
    int rv = single_buffer(out, type, (uint64_t)n * 8, sender, &w);
    if (rv != 0)
        return rv;
    for (unsigned i = 0; i < n; i++)
        w64(&w, words[i]);
    seal_single(out);
    return 0;
}

/* The checks every decoder of liblog's own frames starts with: the header,
 * the type it decodes, the checksum; then *r reads the body. */
static int open_own(const struct rl_wire_hdr *hdr, const void *body, unsigned type, struct rd *r,
                    char *errmsg, size_t errlen)
{
    int rv = rl_wire__check_hdr(hdr, errmsg, errlen);
    if (rv != 0)
        return rv;
    const char *name = rl_wire__type_names[hdr->type];
    if (hdr->type != type)
        return fail(errmsg, errlen, "%s: not a %s frame", name, rl_wire__type_names[type]);
    if ((rv = rl_wire__check_sum(hdr, body, errmsg, errlen)) != 0)
        return rv;
    *r = (struct rd){body, (const unsigned char *)body + hdr->length, name, errmsg, errlen};
    return 0;
}

static bool fetch_req_valid(const struct rl_wire_fetch_req *m)
{
    return m->first >= 1 && m->budget >= 1;
}

int rl_wire_encode_fetch_req(const struct rl_wire_fetch_req *m, uint64_t sender,
                             struct rl_wire_out *out)
{
    memset(out, 0, sizeof *out);
    if (!fetch_req_valid(m))
        return RLOG_EINVAL;
    uint64_t w[3] = {m->first, m->last, m->budget};
    return encode_words(RL_WIRE_FETCH_REQUEST, w, 3, sender, out);
}

int rl_wire_decode_fetch_req(const struct rl_wire_hdr *hdr, const void *body,
                             struct rl_wire_fetch_req *m, char *errmsg, size_t errlen)
{
    struct rd r;
    unsigned long long first, last, budget;
    int rv;
    memset(m, 0, sizeof *m);
    if ((rv = open_own(hdr, body, RL_WIRE_FETCH_REQUEST, &r, errmsg, errlen)) != 0 ||
        (rv = r64(&r, "first", &first)) != 0 || (rv = r64(&r, "last", &last)) != 0 ||
        (rv = r64(&r, "budget", &budget)) != 0 || (rv = rend(&r)) != 0)
        return rv;
    *m = (struct rl_wire_fetch_req){.first = first, .last = last, .budget = budget};
    if (!fetch_req_valid(m))
        return fail(errmsg, errlen, "%s: first index %llu or budget %llu is 0", r.name, first,
                    budget);
    return 0;
}

static bool commit_valid(const struct rl_wire_commit *m)
{
    return m->term >= 1 && m->index >= 1 && m->entry_term >= 1 && m->entry_term <= m->term;
}

int rl_wire_encode_commit(const struct rl_wire_commit *m, uint64_t sender, struct rl_wire_out *out)
{
    memset(out, 0, sizeof *out);
    if (!commit_valid(m))
        return RLOG_EINVAL;
    uint64_t w[3] = {m->term, m->index, m->entry_term};
    return encode_words(RL_WIRE_COMMIT, w, 3, sender, out);
}

int rl_wire_decode_commit(const struct rl_wire_hdr *hdr, const void *body, struct rl_wire_commit *m,
                          char *errmsg, size_t errlen)
{
    struct rd r;
    unsigned long long term, index, entry_term;
    int rv;
    memset(m, 0, sizeof *m);
    if ((rv = open_own(hdr, body, RL_WIRE_COMMIT, &r, errmsg, errlen)) != 0 ||
        (rv = r64(&r, "term", &term)) != 0 || (rv = r64(&r, "index", &index)) != 0 ||
        (rv = r64(&r, "entry_term", &entry_term)) != 0 || (rv = rend(&r)) != 0)
        return rv;
    *m = (struct rl_wire_commit){.term = term, .index = index, .entry_term = entry_term};
    if (!commit_valid(m))
        return fail(errmsg, errlen, "%s: term %llu, index %llu, entry term %llu: not a committed "
                    "entry of that term", r.name, term, index, entry_term);
    return 0;
}

/* The statuses a fetch answer can carry, as sent (negated). */
static bool fetch_status_known(int status)
{
    return status == 0 || status == RLOG_ETRIMMED || status == RLOG_ECORRUPT;
}

/* ETRIMMED with a restart point: first - 1 > 0 on the wire, the restart
 * term and offset in the words that otherwise hold 0 and `last`. */
static bool fetch_restart(const struct rl_wire_fetch_resp *m)
{
    return m->status == RLOG_ETRIMMED && m->first != 0;
}

/* What the AppendEntries layout can carry without ambiguity. */
static bool fetch_resp_valid(const struct rl_wire_fetch_resp *m)
{
    if (!fetch_status_known(m->status) || (m->n_entries > 0 && m->status != 0))
        return false;
    if (m->status != RLOG_ETRIMMED)
        return m->first >= 1 && m->restart_term == 0 && m->restart_offset == 0;
    if (m->first == 0)
        return m->restart_term == 0 && m->restart_offset == 0;
    return m->first >= 2 && m->last == 0; /* nothing is trimmed before entry 1 */
}

int rl_wire_encode_fetch_resp(const struct rl_wire_fetch_resp *m, uint64_t sender,
                              struct rl_wire_out *out)
{
    memset(out, 0, sizeof *out);
    if (!fetch_resp_valid(m))
        return RLOG_EINVAL;
    bool restart = fetch_restart(m);
    /* The AppendEntries layout, word for word (codec.h); only the layout:
     * the message is never a raft one. */
    struct raft_message shape = {.type = RAFT_IO_APPEND_ENTRIES};
    shape.append_entries = (struct raft_append_entries){
        .term = (uint64_t)-(int64_t)m->status,
        .prev_log_index = m->first ? m->first - 1 : 0,
        .prev_log_term = m->restart_term,
        .leader_commit = restart ? m->restart_offset : m->last,
        .entries = m->entries,
        .n_entries = m->n_entries};
    return rl_wire__encode_frame(&shape, RL_WIRE_FETCH_RESPONSE, sender, out);
}

int rl_wire_decode_fetch_resp(const struct rl_wire_hdr *hdr, void *body,
                              struct rl_wire_fetch_resp *m, bool *body_owned, char *errmsg,
                              size_t errlen)
{
    struct rd r;
    unsigned long long status, before, restart_term, word3;
    int rv;
    memset(m, 0, sizeof *m);
    *body_owned = false;
    if ((rv = open_own(hdr, body, RL_WIRE_FETCH_RESPONSE, &r, errmsg, errlen)) != 0 ||
        (rv = r64(&r, "status", &status)) != 0 || (rv = r64(&r, "first - 1", &before)) != 0 ||
        (rv = r64(&r, "restart_term", &restart_term)) != 0 ||
        (rv = r64(&r, "last", &word3)) != 0)
        return rv;
    /* Codes are small; a huge one would overflow the int it becomes. */
    m->status = status > 1000 ? 1 : -(int)status;
    if (!fetch_status_known(m->status))
        return fail(errmsg, errlen, "%s: status %llu is not 0, RLOG_ETRIMMED or RLOG_ECORRUPT",
                    r.name, status);
    if (before == UINT64_MAX)
        return fail(errmsg, errlen, "%s: first index out of range", r.name);
    m->first = m->status == RLOG_ETRIMMED && before == 0 ? 0 : before + 1;
    if (fetch_restart(m)) {
        m->restart_term = restart_term;
        m->restart_offset = word3;
    } else {
        m->last = word3;
        if (restart_term != 0)
            return fail(errmsg, errlen, "%s: restart term %llu without a restart point", r.name,
                        restart_term);
    }
    if ((rv = rl_wire__decode_entries(&r, body, &m->entries, &m->n_entries, body_owned)) != 0)
        return rv;
    if (m->n_entries > 0 && m->status != 0) {
        rl_wire_fetch_resp_release(m, body, false); /* the body stays the caller's */
        *body_owned = false;
        return fail(errmsg, errlen, "%s: entries with status %s", r.name,
                    rlog_strerror(-(int)status));
    }
    return 0;
}

void rl_wire_fetch_resp_release(struct rl_wire_fetch_resp *m, void *body, bool body_owned)
{
    raft_free(m->entries);
    m->entries = NULL;
    m->n_entries = 0;
    if (body_owned)
        raft_free(body);
}

/* ---- Forwarding frames ----------------------------------------------------- */

int rl_wire_encode_fwd(const struct rl_wire_fwd *m, uint64_t sender, struct rl_wire_out *out)
{
    memset(out, 0, sizeof *out);
    uint64_t body;
    size_t msglen = 0;
    switch (m->type) {
    case RL_WIRE_FORWARD: {
        if (m->n == 0 || m->n > RL_WIRE_FWD_MAX_RECORDS || !m->lens ||
            (m->bytes > 0 && !m->data))
            return RLOG_EINVAL;
        uint64_t sum = 0;
        for (uint32_t i = 0; i < m->n; i++)
            sum += m->lens[i];
        if (sum != m->bytes)
            return RLOG_EINVAL;
        body = (FWD_FIXED + (uint64_t)m->n) * 8 + rl_pad8(m->bytes);
        break;
    }
    case RL_WIRE_FORWARD_RESULT:
    case RL_WIRE_BARRIER_RESULT:
    case RL_WIRE_CURSOR_RESULT:
        if (m->status > 0)
            return RLOG_EINVAL;
        msglen = strnlen(m->msg, RL_WIRE_FWD_MSG_MAX);
        body = RES_FIXED * 8 + rl_pad8(msglen);
        break;
    case RL_WIRE_BARRIER:
        body = 8;
        break;
    case RL_WIRE_CURSOR:
        msglen = strnlen(m->cursor, RL_WIRE_CURSOR_NAME_MAX + 1);
        if (msglen == 0 || msglen > RL_WIRE_CURSOR_NAME_MAX)
            return RLOG_EINVAL;
        body = 3 * 8 + rl_pad8(msglen);
        break;
    case RL_WIRE_SNAP_REQUEST:
        if (m->snap_budget == 0 || m->snap_budget > RL_WIRE_SNAP_PIECE_MAX)
            return RLOG_EINVAL;
        body = 5 * 8;
        break;
    case RL_WIRE_SNAP_HAVE:
        body = 2 * 8;
        break;
    case RL_WIRE_QUIESCE:
    case RL_WIRE_QUIESCED:
    case RL_WIRE_UNQUIESCE:
        if (m->quiet_term == 0 || m->quiet_index == 0)
            return RLOG_EINVAL;
        body = 3 * 8;
        break;
    case RL_WIRE_SNAP_DATA:
        if (m->status > 0 || m->bytes > RL_WIRE_SNAP_PIECE_MAX || (m->status && m->bytes) ||
            (m->bytes && !m->data))
            return RLOG_EINVAL;
        body = 6 * 8 + rl_pad8(m->bytes);
        break;
    default:
        return RLOG_EINVAL;
    }
    struct wr w;
    int rv = single_buffer(out, m->type, body, sender, &w);
    if (rv != 0)
        return rv;
    w64(&w, m->request);
    if (m->type == RL_WIRE_FORWARD) {
        w64(&w, m->producer_id);
        w64(&w, m->seq);
        w64(&w, m->expect_offset);
        w64(&w, m->hash);
        w64(&w, m->n);
        for (uint32_t i = 0; i < m->n; i++)
            w64(&w, m->lens[i]);
        if (m->bytes)
            memcpy(w.p, m->data, m->bytes);
        memset(w.p + m->bytes, 0, (size_t)(rl_pad8(m->bytes) - m->bytes));
    } else if (m->type == RL_WIRE_CURSOR) {
        w64(&w, m->offset);
        wbytes(&w, m->cursor, msglen);
    } else if (m->type == RL_WIRE_SNAP_REQUEST) {
        w64(&w, m->snap_need);
        w64(&w, m->snap_next);
        w64(&w, m->snap_pos);
        w64(&w, m->snap_budget);
    } else if (m->type == RL_WIRE_SNAP_HAVE) {
        w64(&w, m->snap_next);
    } else if (m->type == RL_WIRE_QUIESCE || m->type == RL_WIRE_QUIESCED ||
               m->type == RL_WIRE_UNQUIESCE) {
        w64(&w, m->quiet_term);
        w64(&w, m->quiet_index);
    } else if (m->type == RL_WIRE_SNAP_DATA) {
        w64(&w, (uint64_t)-(int64_t)m->status);
        w64(&w, m->snap_next);
        w64(&w, m->snap_size);
        w64(&w, m->snap_pos);
        wbytes(&w, m->data, m->bytes);
    } else if (m->type != RL_WIRE_BARRIER) {
        w64(&w, (uint64_t)-(int64_t)m->status);
        w64(&w, m->offset);
        wbytes(&w, m->msg, msglen);
    }
    seal_single(out);
    return 0;
}

void rl_wire_fwd_free(struct rl_wire_fwd *m)
{
    free(m->lens);
    free(m->data);
    m->lens = NULL;
    m->data = NULL;
}

static int decode_forward(struct rd *r, struct rl_wire_fwd *m)
{
    unsigned long long n, producer, seq, expect, hash;
    int rv;
    if ((rv = r64(r, "producer_id", &producer)) != 0 || (rv = r64(r, "seq", &seq)) != 0 ||
        (rv = r64(r, "expect_offset", &expect)) != 0 || (rv = r64(r, "hash", &hash)) != 0 ||
        (rv = r64(r, "record count", &n)) != 0)
        return rv;
    m->producer_id = producer;
    m->seq = seq;
    m->expect_offset = expect;
    m->hash = hash;
    /* Checked before allocating: no more lengths than the body holds. */
    if (n == 0 || n > RL_WIRE_FWD_MAX_RECORDS || n > left(r) / 8)
        return fail(r->errmsg, r->errlen, "%s: record count %llu out of range", r->name, n);
    const unsigned char *lens = r->p;
    r->p += n * 8;
    uint64_t sum = 0;
    for (unsigned long long i = 0; i < n; i++) {
        uint64_t len = rl_get64(lens + 8 * i);
        if (len > left(r) || sum + len > left(r))
            return fail(r->errmsg, r->errlen, "%s: record %llu length %llu exceeds body",
                        r->name, i, (unsigned long long)len);
        sum += len;
    }
    const unsigned char *bytes;
    if ((rv = rpadded(r, "records", sum, &bytes)) != 0 || (rv = rend(r)) != 0)
        return rv;
    m->lens = malloc((size_t)n * sizeof *m->lens);
    m->data = malloc(sum ? (size_t)sum : 1);
    if (!m->lens || !m->data) {
        rl_wire_fwd_free(m);
        return RLOG_ENOMEM;
    }
    for (unsigned long long i = 0; i < n; i++)
        m->lens[i] = (size_t)rl_get64(lens + 8 * i);
    memcpy(m->data, bytes, (size_t)sum);
    m->n = (uint32_t)n;
    m->bytes = (size_t)sum;
    return 0;
}

static int decode_result(struct rd *r, struct rl_wire_fwd *m)
{
    unsigned long long status, offset, len;
    const unsigned char *bytes;
    int rv;
    if ((rv = r64(r, "status", &status)) != 0 || (rv = r64(r, "offset", &offset)) != 0 ||
        (rv = r64(r, "message length", &len)) != 0)
        return rv;
    m->offset = offset;
    /* Codes are small; a huge one would overflow the int it becomes. */
    if (status > 1000)
        return fail(r->errmsg, r->errlen, "%s: status %llu out of range", r->name, status);
    if (len > RL_WIRE_FWD_MSG_MAX)
        return fail(r->errmsg, r->errlen, "%s: message of %llu bytes, at most %u", r->name, len,
                    RL_WIRE_FWD_MSG_MAX);
    if ((rv = rpadded(r, "message", len, &bytes)) != 0 || (rv = rend(r)) != 0)
        return rv;
    if (memchr(bytes, 0, (size_t)len))
        return fail(r->errmsg, r->errlen, "%s: message holds a NUL byte", r->name);
    m->status = -(int)status;
    memcpy(m->msg, bytes, (size_t)len);
    m->msg[len] = '\0';
    return 0;
}

static int decode_cursor(struct rd *r, struct rl_wire_fwd *m)
{
    unsigned long long offset, len;
    const unsigned char *bytes;
    int rv;
    if ((rv = r64(r, "offset", &offset)) != 0 || (rv = r64(r, "name length", &len)) != 0)
        return rv;
    if (len == 0 || len > RL_WIRE_CURSOR_NAME_MAX)
        return fail(r->errmsg, r->errlen, "%s: name of %llu bytes, 1..%u", r->name, len,
                    RL_WIRE_CURSOR_NAME_MAX);
    if ((rv = rpadded(r, "name", len, &bytes)) != 0 || (rv = rend(r)) != 0)
        return rv;
    if (memchr(bytes, 0, (size_t)len))
        return fail(r->errmsg, r->errlen, "%s: name holds a NUL byte", r->name);
    m->offset = offset;
    memcpy(m->cursor, bytes, (size_t)len);
    m->cursor[len] = '\0';
    return 0;
}

static int decode_snap_request(struct rd *r, struct rl_wire_fwd *m)
{
    unsigned long long need, next, pos, budget;
    int rv;
    if ((rv = r64(r, "need", &need)) != 0 || (rv = r64(r, "next", &next)) != 0 ||
        (rv = r64(r, "pos", &pos)) != 0 || (rv = r64(r, "budget", &budget)) != 0 ||
        (rv = rend(r)) != 0)
        return rv;
    if (budget == 0 || budget > RL_WIRE_SNAP_PIECE_MAX)
        return fail(r->errmsg, r->errlen, "%s: budget %llu, 1..%u", r->name, budget,
                    RL_WIRE_SNAP_PIECE_MAX);
    m->snap_need = need;
    m->snap_next = next;
    m->snap_pos = pos;
    m->snap_budget = (uint32_t)budget;
    return 0;
}

static int decode_snap_data(struct rd *r, struct rl_wire_fwd *m)
{
    unsigned long long status, next, size, pos, len;
    const unsigned char *bytes;
    int rv;
    if ((rv = r64(r, "status", &status)) != 0 || (rv = r64(r, "next", &next)) != 0 ||
        (rv = r64(r, "size", &size)) != 0 || (rv = r64(r, "pos", &pos)) != 0 ||
        (rv = r64(r, "data length", &len)) != 0)
        return rv;
    if (status > 1000)
        return fail(r->errmsg, r->errlen, "%s: status %llu out of range", r->name, status);
    if (len > RL_WIRE_SNAP_PIECE_MAX || (status && len))
        return fail(r->errmsg, r->errlen, "%s: %llu bytes of data%s", r->name, len,
                    status ? " with a status" : "");
    /* pos + len cannot wrap: both are checked against size first. */
    if (!status && (pos > size || len > size - pos))
        return fail(r->errmsg, r->errlen, "%s: bytes %llu..%llu of a file of %llu", r->name, pos,
                    pos + len, size);
    if ((rv = rpadded(r, "data", len, &bytes)) != 0 || (rv = rend(r)) != 0)
        return rv;
    m->data = malloc(len ? (size_t)len : 1);
    if (!m->data)
        return RLOG_ENOMEM;
    memcpy(m->data, bytes, (size_t)len);
    m->bytes = (size_t)len;
    m->status = -(int)status;
    m->snap_next = next;
    m->snap_size = size;
    m->snap_pos = pos;
    return 0;
}

int rl_wire_decode_fwd(const struct rl_wire_hdr *hdr, const void *body, struct rl_wire_fwd *m,
                       char *errmsg, size_t errlen)
{
    memset(m, 0, sizeof *m);
    int rv = rl_wire__check_hdr(hdr, errmsg, errlen);
    if (rv != 0)
        return rv;
    const char *name = rl_wire__type_names[hdr->type];
    if (!rl_wire_is_fwd(hdr->type))
        return fail(errmsg, errlen, "%s: not a forwarding frame", name);
    if ((rv = rl_wire__check_sum(hdr, body, errmsg, errlen)) != 0)
        return rv;
    struct rd r = {body, (const unsigned char *)body + hdr->length, name, errmsg, errlen};
    m->type = hdr->type;
    unsigned long long request;
    if ((rv = r64(&r, "request", &request)) != 0)
        return rv;
    m->request = request;
    switch (hdr->type) {
    case RL_WIRE_FORWARD:
        return decode_forward(&r, m);
    case RL_WIRE_BARRIER:
        return rend(&r);
    case RL_WIRE_CURSOR:
        return decode_cursor(&r, m);
    case RL_WIRE_SNAP_REQUEST:
        return decode_snap_request(&r, m);
    case RL_WIRE_SNAP_DATA:
        return decode_snap_data(&r, m);
    case RL_WIRE_SNAP_HAVE: {
        unsigned long long next;
        if ((rv = r64(&r, "next", &next)) != 0 || (rv = rend(&r)) != 0)
            return rv;
        m->snap_next = next;
        return 0;
    }
    case RL_WIRE_QUIESCE:
    case RL_WIRE_QUIESCED:
    case RL_WIRE_UNQUIESCE: {
        unsigned long long term, index;
        if ((rv = r64(&r, "term", &term)) != 0 || (rv = r64(&r, "index", &index)) != 0 ||
            (rv = rend(&r)) != 0)
            return rv;
        if (term == 0 || index == 0)
            return fail(errmsg, errlen, "%s: term %llu or index %llu is 0", name, term, index);
        m->quiet_term = term;
        m->quiet_index = index;
        return 0;
    }
    default:
        return decode_result(&r, m);
    }
}
