/*
 * Wire codec: raft messages <-> checksummed frames.
 *
 * Encoding builds one malloc'd "head" holding the 32-byte frame header and
 * every byte of the body that is not an AppendEntries payload; payloads are
 * referenced in place by iovecs (followed by a pointer to static zeros when
 * they need padding), so a send is one writev and a large batch is never
 * copied. The checksum is computed with xxh3's streaming API over the same
 * iovecs, in the order they will hit the wire.
 *
 * AppendEntries bodies put all entry headers (term, type, length) before all
 * payloads. That lets the decoder validate every count and length before it
 * allocates anything proportional to them, and leaves the payloads
 * contiguous and 8-byte aligned inside the receive buffer, so decoded
 * entries can point straight into it (libraft frees it through
 * entries[i].batch, as with its own uv backend).
 *
 * Decoding treats the peer as hostile: the header is checked alone first so
 * the caller never allocates more than max_body, the body checksum before any
 * field is looked at, and then every field against the bytes that remain.
 * Anything libraft would assert on (entry term 0, unknown entry type or role,
 * server id 0) is refused here, because an assertion reachable from the
 * network is a remote crash. Encoding is canonical (zero padding, no spare
 * bytes, booleans 0/1), and the decoder accepts only canonical frames, so
 * a frame that decodes re-encodes to the same bytes. On any error everything
 * allocated so far is released and the message owns nothing.
 */
#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t on the stack */
#include "wire/codec.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "common/bytes.h"
#include "liblog.h"

/* Longest address accepted in a snapshot configuration. */
#define MAX_ADDRESS 255u
/* Cap on configuration size: raft_configuration_add checks duplicates
 * pairwise, so an unbounded count from a peer would cost quadratic time. */
#define MAX_SERVERS 1024u
/* Largest body the u32 length field can carry (a multiple of 8). */
#define MAX_BODY 0xfffffff8u

/* Fixed body sizes, in u64 words. */
#define AE_FIXED 5 /* term, prev_log_index, prev_log_term, leader_commit, n */
#define AE_ENTRY 3 /* term, type, length */
#define IS_FIXED 5 /* term, last_index, last_term, conf_index, n_servers */
#define IS_SERVER 3 /* id, role, address length (+ address bytes) */
#define FWD_FIXED 6 /* request, producer_id, seq, expect_offset, hash, n */
#define RES_FIXED 4 /* request, status, offset, message length */

static const unsigned char zeros[8];

static const char *const type_names[] = {
    [RL_WIRE_APPEND_ENTRIES] = "append_entries",
    [RL_WIRE_APPEND_ENTRIES_RESULT] = "append_entries_result",
    [RL_WIRE_REQUEST_VOTE] = "request_vote",
    [RL_WIRE_REQUEST_VOTE_RESULT] = "request_vote_result",
    [RL_WIRE_INSTALL_SNAPSHOT] = "install_snapshot",
    [RL_WIRE_TIMEOUT_NOW] = "timeout_now",
    [RL_WIRE_FETCH_REQUEST] = "fetch_request",
    [RL_WIRE_FETCH_RESPONSE] = "fetch_response",
    [RL_WIRE_COMMIT] = "commit",
    [RL_WIRE_FORWARD] = "forward",
    [RL_WIRE_FORWARD_RESULT] = "forward_result",
    [RL_WIRE_BARRIER] = "barrier",
    [RL_WIRE_BARRIER_RESULT] = "barrier_result",
};

static bool known_type(unsigned type)
{
    return (type >= RL_WIRE_APPEND_ENTRIES && type <= RL_WIRE_TIMEOUT_NOW) ||
           type == RL_WIRE_FETCH_REQUEST || type == RL_WIRE_FETCH_RESPONSE ||
           type == RL_WIRE_COMMIT || rl_wire_is_fwd(type);
}

/* Header bytes 0..24 as they are covered by the checksum seed. The decoder
 * rebuilds them from the parsed header, so both sides hash the same bytes. */
static void hdr_prefix(unsigned char b[24], uint16_t type, uint32_t length, uint32_t flags,
                       uint64_t sender)
{
    rl_put32(b, RL_WIRE_MAGIC);
    rl_put16(b + 4, RL_WIRE_VERSION);
    rl_put16(b + 6, type);
    rl_put32(b + 8, length);
    rl_put32(b + 12, flags);
    rl_put64(b + 16, sender);
}

static int fail(char *errmsg, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *errmsg, size_t errlen, const char *fmt, ...)
{
    if (errmsg != NULL && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(errmsg, errlen, fmt, ap);
        va_end(ap);
    }
    return RLOG_EPROTO;
}

/* ---- Encoding ------------------------------------------------------------ */

/* Appends u64 words to the head under construction. */
struct wr {
    unsigned char *p;
};

static void w64(struct wr *w, uint64_t v)
{
    rl_put64(w->p, v);
    w->p += 8;
}

static void wbytes(struct wr *w, const void *src, size_t len)
{
    w64(w, len);
    if (len > 0)
        memcpy(w->p, src, len);
    memset(w->p + len, 0, (size_t)(rl_pad8(len) - len));
    w->p += rl_pad8(len);
}

static bool valid_entry_type(uint64_t type)
{
    return type == RAFT_COMMAND || type == RAFT_BARRIER || type == RAFT_CHANGE;
}

static bool valid_role(uint64_t role)
{
    return role == RAFT_STANDBY || role == RAFT_VOTER || role == RAFT_SPARE;
}

/* Sizes the frame: body bytes, head bytes (header + body minus payloads) and
 * iovec count. Rejects anything the decoder would refuse, so we never send a
 * frame our own peers must drop. */
static int encode_size(const struct raft_message *msg, uint64_t *body, uint64_t *head,
                       uint64_t *n_iov)
{
    *n_iov = 1;
    switch (msg->type) {
    case RAFT_IO_REQUEST_VOTE:
        if (msg->request_vote.candidate_id == 0)
            return RLOG_EINVAL;
        *body = *head = 6 * 8;
        break;
    case RAFT_IO_REQUEST_VOTE_RESULT:
        if ((unsigned)msg->request_vote_result.pre_vote > raft_tribool_false)
            return RLOG_EINVAL;
        *body = *head = 3 * 8;
        break;
    case RAFT_IO_APPEND_ENTRIES_RESULT:
    case RAFT_IO_TIMEOUT_NOW:
        *body = *head = 3 * 8;
        break;
    case RAFT_IO_APPEND_ENTRIES: {
        const struct raft_append_entries *ae = &msg->append_entries;
        if (ae->n_entries > 0 && ae->entries == NULL)
            return RLOG_EINVAL;
        *head = (AE_FIXED + (uint64_t)AE_ENTRY * ae->n_entries) * 8;
        *body = *head;
        for (unsigned i = 0; i < ae->n_entries && *body <= MAX_BODY; i++) {
            const struct raft_entry *e = &ae->entries[i];
            if (e->term == 0 || !valid_entry_type(e->type))
                return RLOG_EINVAL;
            if (e->buf.len > MAX_BODY || (e->buf.len > 0 && e->buf.base == NULL))
                return RLOG_EINVAL;
            *body += rl_pad8(e->buf.len);
            if (e->buf.len > 0)
                *n_iov += e->buf.len % 8 ? 2 : 1;
        }
        break;
    }
    case RAFT_IO_INSTALL_SNAPSHOT: {
        const struct raft_install_snapshot *is = &msg->install_snapshot;
        if (is->conf.n == 0 || is->conf.n > MAX_SERVERS || is->conf.servers == NULL)
            return RLOG_EINVAL;
        if (is->data.len > MAX_BODY || (is->data.len > 0 && is->data.base == NULL))
            return RLOG_EINVAL;
        *body = (IS_FIXED + 1) * 8 + rl_pad8(is->data.len);
        for (unsigned i = 0; i < is->conf.n; i++) {
            const struct raft_server *s = &is->conf.servers[i];
            size_t alen = s->address != NULL ? strlen(s->address) : 0;
            if (s->id == 0 || !valid_role((uint64_t)s->role) || alen == 0 || alen > MAX_ADDRESS)
                return RLOG_EINVAL;
            *body += IS_SERVER * 8 + rl_pad8(alen);
        }
        *head = *body;
        break;
    }
    default:
        return RLOG_EINVAL;
    }
    if (*body > MAX_BODY)
        return RLOG_EINVAL;
    *head += RL_WIRE_HDR;
    return 0;
}

static void encode_body(const struct raft_message *msg, struct wr *w)
{
    switch (msg->type) {
    case RAFT_IO_REQUEST_VOTE: {
        const struct raft_request_vote *rv = &msg->request_vote;
        w64(w, rv->term);
        w64(w, rv->candidate_id);
        w64(w, rv->last_log_index);
        w64(w, rv->last_log_term);
        w64(w, rv->disrupt_leader ? 1 : 0);
        w64(w, rv->pre_vote ? 1 : 0);
        break;
    }
    case RAFT_IO_REQUEST_VOTE_RESULT: {
        const struct raft_request_vote_result *rr = &msg->request_vote_result;
        w64(w, rr->term);
        w64(w, rr->vote_granted ? 1 : 0);
        w64(w, (uint64_t)rr->pre_vote);
        break;
    }
    case RAFT_IO_APPEND_ENTRIES: {
        const struct raft_append_entries *ae = &msg->append_entries;
        w64(w, ae->term);
        w64(w, ae->prev_log_index);
        w64(w, ae->prev_log_term);
        w64(w, ae->leader_commit);
        w64(w, ae->n_entries);
        for (unsigned i = 0; i < ae->n_entries; i++) {
            w64(w, ae->entries[i].term);
            w64(w, ae->entries[i].type);
            w64(w, ae->entries[i].buf.len);
        }
        break;
    }
    case RAFT_IO_APPEND_ENTRIES_RESULT: {
        const struct raft_append_entries_result *ar = &msg->append_entries_result;
        w64(w, ar->term);
        w64(w, ar->rejected);
        w64(w, ar->last_log_index);
        break;
    }
    case RAFT_IO_INSTALL_SNAPSHOT: {
        const struct raft_install_snapshot *is = &msg->install_snapshot;
        w64(w, is->term);
        w64(w, is->last_index);
        w64(w, is->last_term);
        w64(w, is->conf_index);
        w64(w, is->conf.n);
        for (unsigned i = 0; i < is->conf.n; i++) {
            const struct raft_server *s = &is->conf.servers[i];
            w64(w, s->id);
            w64(w, (uint64_t)s->role);
            wbytes(w, s->address, strlen(s->address));
        }
        /* The data is copied, not referenced: the contract only promises
         * that entry payloads outlive the frame, and a liblog snapshot is
         * a small descriptor anyway. */
        wbytes(w, is->data.base, is->data.len);
        break;
    }
    case RAFT_IO_TIMEOUT_NOW: {
        const struct raft_timeout_now *tn = &msg->timeout_now;
        w64(w, tn->term);
        w64(w, tn->last_log_index);
        w64(w, tn->last_log_term);
        break;
    }
    }
}

/* Encodes msg (its type picks the body's layout) as a frame of type
 * wire_type. */
static int encode_frame(const struct raft_message *msg, uint16_t wire_type, uint64_t sender,
                        struct rl_wire_out *out)
{
    uint64_t body, head, n_iov;
    int rv;

    memset(out, 0, sizeof *out);
    if (sender == 0)
        return RLOG_EINVAL;
    rv = encode_size(msg, &body, &head, &n_iov);
    if (rv != 0)
        return rv;

    out->head = malloc((size_t)head);
    if (out->head == NULL)
        return RLOG_ENOMEM;
    out->iov = malloc((size_t)n_iov * sizeof *out->iov);
    if (out->iov == NULL) {
        free(out->head);
        out->head = NULL;
        return RLOG_ENOMEM;
    }
    out->head_len = (size_t)head;
    out->n_iov = (unsigned)n_iov;
    out->total = RL_WIRE_HDR + body;

    hdr_prefix(out->head, wire_type, (uint32_t)body, 0, sender);
    struct wr w = {out->head + RL_WIRE_HDR};
    encode_body(msg, &w);

    unsigned k = 0;
    out->iov[k++] = (struct rl_wire_iov){out->head, out->head_len};
    if (msg->type == RAFT_IO_APPEND_ENTRIES) {
        const struct raft_append_entries *ae = &msg->append_entries;
        for (unsigned i = 0; i < ae->n_entries; i++) {
            size_t len = ae->entries[i].buf.len;
            if (len == 0)
                continue;
            out->iov[k++] = (struct rl_wire_iov){ae->entries[i].buf.base, len};
            if (len % 8)
                out->iov[k++] = (struct rl_wire_iov){zeros, (size_t)(rl_pad8(len) - len)};
        }
    }

    XXH3_state_t st;
    XXH3_INITSTATE(&st);
    XXH3_64bits_reset_withSeed(&st, XXH3_64bits(out->head, 24));
    XXH3_64bits_update(&st, out->head + RL_WIRE_HDR, out->head_len - RL_WIRE_HDR);
    for (unsigned i = 1; i < k; i++)
        XXH3_64bits_update(&st, out->iov[i].base, out->iov[i].len);
    rl_put64(out->head + 24, XXH3_64bits_digest(&st));
    return 0;
}

int rl_wire_encode(const struct raft_message *msg, uint64_t sender, struct rl_wire_out *out)
{
    /* Only libraft's types: liblog's own have their own encoders. */
    if (msg->type >= RL_WIRE_OWN_FIRST) {
        memset(out, 0, sizeof *out);
        return RLOG_EINVAL;
    }
    return encode_frame(msg, (uint16_t)msg->type, sender, out);
}

void rl_wire_out_free(struct rl_wire_out *out)
{
    free(out->head);
    free(out->iov);
    memset(out, 0, sizeof *out);
}

/* ---- Decoding ------------------------------------------------------------ */

/* The smallest body each type can have, and whether that is also its only
 * size. Checked on the header alone so the caller does not allocate a body
 * that can only be rejected. */
static void body_shape(unsigned type, uint32_t *min, bool *exact)
{
    *exact = true;
    switch (type) {
    case RL_WIRE_REQUEST_VOTE:
        *min = 6 * 8;
        break;
    case RL_WIRE_APPEND_ENTRIES:
    case RL_WIRE_FETCH_RESPONSE:
        *min = AE_FIXED * 8;
        *exact = false;
        break;
    case RL_WIRE_INSTALL_SNAPSHOT:
        /* One server with a one-byte address, and the data length. */
        *min = (IS_FIXED + IS_SERVER + 1 + 1) * 8;
        *exact = false;
        break;
    case RL_WIRE_FORWARD:
        *min = (FWD_FIXED + 1 + 1) * 8; /* one record: its length and bytes */
        *exact = false;
        break;
    case RL_WIRE_FORWARD_RESULT:
    case RL_WIRE_BARRIER_RESULT:
        *min = RES_FIXED * 8;
        *exact = false;
        break;
    case RL_WIRE_BARRIER:
        *min = 8;
        break;
    default:
        *min = 3 * 8;
        break;
    }
}

/* Everything about a header except the magic (which a parsed header no
 * longer carries) and max_body; shared by both decode steps so rl_wire_decode
 * does not depend on its caller having run rl_wire_decode_hdr. */
static int check_hdr(const struct rl_wire_hdr *h, char *errmsg, size_t errlen)
{
    if (h->version != RL_WIRE_VERSION)
        return fail(errmsg, errlen, "unsupported wire version %u", (unsigned)h->version);
    if (!known_type(h->type))
        return fail(errmsg, errlen, "unknown message type %u", (unsigned)h->type);
    const char *name = type_names[h->type];
    if (h->flags != 0)
        return fail(errmsg, errlen, "%s: reserved flags 0x%x set", name, (unsigned)h->flags);
    if (h->sender == 0)
        return fail(errmsg, errlen, "%s: sender id 0", name);
    if (h->length % 8 != 0)
        return fail(errmsg, errlen, "%s: body length %u not a multiple of 8", name,
                    (unsigned)h->length);
    uint32_t min;
    bool exact;
    body_shape(h->type, &min, &exact);
    if (exact && h->length != min)
        return fail(errmsg, errlen, "%s: body length %u, expected %u", name,
                    (unsigned)h->length, (unsigned)min);
    if (h->length < min)
        return fail(errmsg, errlen, "%s: body length %u, expected at least %u", name,
                    (unsigned)h->length, (unsigned)min);
    return 0;
}

int rl_wire_decode_hdr(const unsigned char hdr[RL_WIRE_HDR], uint32_t max_body,
                       struct rl_wire_hdr *out, char *errmsg, size_t errlen)
{
    uint32_t magic = rl_get32(hdr);
    if (magic != RL_WIRE_MAGIC)
        return fail(errmsg, errlen, "bad frame magic 0x%08x", (unsigned)magic);
    out->version = rl_get16(hdr + 4);
    out->type = rl_get16(hdr + 6);
    out->length = rl_get32(hdr + 8);
    out->flags = rl_get32(hdr + 12);
    out->sender = rl_get64(hdr + 16);
    out->checksum = rl_get64(hdr + 24);
    int rv = check_hdr(out, errmsg, errlen);
    if (rv != 0)
        return rv;
    if (out->length > max_body)
        return fail(errmsg, errlen, "%s: body length %u exceeds limit %u",
                    type_names[out->type], (unsigned)out->length, (unsigned)max_body);
    return 0;
}

/* Bounds-checked reader over the body. */
struct rd {
    const unsigned char *p, *end;
    const char *name; /* message type, for error messages */
    char *errmsg;
    size_t errlen;
};

static size_t left(const struct rd *r)
{
    return (size_t)(r->end - r->p);
}

static int r64(struct rd *r, const char *field, unsigned long long *v)
{
    if (left(r) < 8)
        return fail(r->errmsg, r->errlen, "%s: body ends before %s", r->name, field);
    *v = rl_get64(r->p);
    r->p += 8;
    return 0;
}

static int rbool(struct rd *r, const char *field, bool *v)
{
    unsigned long long x;
    int rv = r64(r, field, &x);
    if (rv != 0)
        return rv;
    if (x > 1)
        return fail(r->errmsg, r->errlen, "%s: %s is %llu, not 0 or 1", r->name, field,
                    x);
    *v = x == 1;
    return 0;
}

/* Takes `len` bytes plus their padding, which must be zero. `what` names the
 * string in error messages ("entry 3", "server 0 address"). */
static int rpadded(struct rd *r, const char *what, unsigned long long len,
                   const unsigned char **bytes)
{
    if (len > left(r) || rl_pad8(len) > left(r))
        return fail(r->errmsg, r->errlen, "%s: %s length %llu exceeds body", r->name, what,
                    len);
    *bytes = r->p;
    size_t n = (size_t)len, padded = (size_t)rl_pad8(len);
    if (memcmp(r->p + n, zeros, padded - n) != 0)
        return fail(r->errmsg, r->errlen, "%s: %s has nonzero padding", r->name, what);
    r->p += padded;
    return 0;
}

static int rend(struct rd *r)
{
    if (left(r) != 0)
        return fail(r->errmsg, r->errlen, "%s: %zu trailing bytes after last field", r->name,
                    left(r));
    return 0;
}

static int decode_request_vote(struct rd *r, struct raft_request_vote *m)
{
    unsigned long long cand;
    int rv;
    if ((rv = r64(r, "term", &m->term)) != 0 || (rv = r64(r, "candidate_id", &cand)) != 0 ||
        (rv = r64(r, "last_log_index", &m->last_log_index)) != 0 ||
        (rv = r64(r, "last_log_term", &m->last_log_term)) != 0 ||
        (rv = rbool(r, "disrupt_leader", &m->disrupt_leader)) != 0 ||
        (rv = rbool(r, "pre_vote", &m->pre_vote)) != 0)
        return rv;
    if (cand == 0)
        return fail(r->errmsg, r->errlen, "%s: candidate_id 0", r->name);
    m->candidate_id = cand;
    return rend(r);
}

static int decode_request_vote_result(struct rd *r, struct raft_request_vote_result *m)
{
    unsigned long long pre;
    int rv;
    if ((rv = r64(r, "term", &m->term)) != 0 ||
        (rv = rbool(r, "vote_granted", &m->vote_granted)) != 0 ||
        (rv = r64(r, "pre_vote", &pre)) != 0)
        return rv;
    if (pre > raft_tribool_false)
        return fail(r->errmsg, r->errlen, "%s: pre_vote is %llu, not a tribool", r->name,
                    pre);
    m->pre_vote = (raft_tribool)pre;
    return rend(r);
}

static int decode_append_entries_result(struct rd *r, struct raft_append_entries_result *m)
{
    int rv;
    if ((rv = r64(r, "term", &m->term)) != 0 || (rv = r64(r, "rejected", &m->rejected)) != 0 ||
        (rv = r64(r, "last_log_index", &m->last_log_index)) != 0)
        return rv;
    return rend(r);
}

static int decode_timeout_now(struct rd *r, struct raft_timeout_now *m)
{
    int rv;
    if ((rv = r64(r, "term", &m->term)) != 0 ||
        (rv = r64(r, "last_log_index", &m->last_log_index)) != 0 ||
        (rv = r64(r, "last_log_term", &m->last_log_term)) != 0)
        return rv;
    return rend(r);
}

/* The entries part of an AppendEntries-shaped body, from its count on, to
 * the end of the body: *entries NULL for none. */
static int decode_entries(struct rd *r, void *body, struct raft_entry **out, unsigned *n_out,
                          bool *body_owned)
{
    unsigned long long n;
    int rv;
    *out = NULL;
    *n_out = 0;
    if ((rv = r64(r, "n_entries", &n)) != 0)
        return rv;
    /* Checked before allocating: the array is sized by what the body can
     * actually hold, never by the peer's claim. */
    if (n > left(r) / (AE_ENTRY * 8))
        return fail(r->errmsg, r->errlen, "%s: entry count %llu exceeds body", r->name,
                    n);
    if (n == 0)
        return rend(r); /* heartbeat: libraft expects entries == NULL */

    struct raft_entry *entries = raft_calloc((size_t)n, sizeof *entries);
    if (entries == NULL)
        return RLOG_ENOMEM;
    char what[48];
    for (unsigned long long i = 0; i < n; i++) {
        unsigned long long term, type, len;
        snprintf(what, sizeof what, "entry %llu header", i);
        if ((rv = r64(r, what, &term)) != 0 || (rv = r64(r, what, &type)) != 0 ||
            (rv = r64(r, what, &len)) != 0)
            goto err_after_entries;
        if (term == 0) {
            rv = fail(r->errmsg, r->errlen, "%s: entry %llu term 0", r->name,
                      i);
            goto err_after_entries;
        }
        if (!valid_entry_type(type)) {
            rv = fail(r->errmsg, r->errlen, "%s: entry %llu type %llu invalid", r->name,
                      i, type);
            goto err_after_entries;
        }
        /* Payloads follow all headers, so this bound is loose; rpadded()
         * below checks exactly. It keeps len representable in size_t. */
        if (len > left(r)) {
            rv = fail(r->errmsg, r->errlen, "%s: entry %llu length %llu exceeds body", r->name,
                      i, len);
            goto err_after_entries;
        }
        entries[i].term = term;
        entries[i].type = (unsigned short)type;
        entries[i].buf.len = (size_t)len;
    }
    for (unsigned long long i = 0; i < n; i++) {
        const unsigned char *bytes;
        snprintf(what, sizeof what, "entry %llu", i);
        if ((rv = rpadded(r, what, entries[i].buf.len, &bytes)) != 0)
            goto err_after_entries;
        /* As libraft's own backend does: empty payloads get a NULL base. */
        entries[i].buf.base = entries[i].buf.len > 0 ? (void *)bytes : NULL;
        entries[i].batch = body;
    }
    if ((rv = rend(r)) != 0)
        goto err_after_entries;
    *out = entries;
    *n_out = (unsigned)n;
    *body_owned = true;
    return 0;

err_after_entries:
    raft_free(entries);
    return rv;
}

static int decode_append_entries(struct rd *r, void *body, struct raft_append_entries *m,
                                 bool *body_owned)
{
    int rv;
    m->entries = NULL;
    m->n_entries = 0;
    if ((rv = r64(r, "term", &m->term)) != 0 ||
        (rv = r64(r, "prev_log_index", &m->prev_log_index)) != 0 ||
        (rv = r64(r, "prev_log_term", &m->prev_log_term)) != 0 ||
        (rv = r64(r, "leader_commit", &m->leader_commit)) != 0)
        return rv;
    return decode_entries(r, body, &m->entries, &m->n_entries, body_owned);
}

static int decode_server(struct rd *r, unsigned long long i, struct raft_configuration *conf)
{
    unsigned long long id, role, alen;
    const unsigned char *addr;
    char what[48], buf[MAX_ADDRESS + 1];
    int rv;

    snprintf(what, sizeof what, "server %llu", i);
    if ((rv = r64(r, what, &id)) != 0 || (rv = r64(r, what, &role)) != 0 ||
        (rv = r64(r, what, &alen)) != 0)
        return rv;
    if (id == 0)
        return fail(r->errmsg, r->errlen, "%s: server %llu id 0", r->name,
                    i);
    if (!valid_role(role))
        return fail(r->errmsg, r->errlen, "%s: server %llu role %llu invalid", r->name,
                    i, role);
    if (alen == 0)
        return fail(r->errmsg, r->errlen, "%s: server %llu address empty", r->name,
                    i);
    if (alen > MAX_ADDRESS)
        return fail(r->errmsg, r->errlen, "%s: server %llu address length %llu exceeds %u",
                    r->name, i, alen, MAX_ADDRESS);
    snprintf(what, sizeof what, "server %llu address", i);
    if ((rv = rpadded(r, what, alen, &addr)) != 0)
        return rv;
    if (memchr(addr, '\0', (size_t)alen) != NULL)
        return fail(r->errmsg, r->errlen, "%s: server %llu address contains NUL", r->name,
                    i);
    memcpy(buf, addr, (size_t)alen);
    buf[alen] = '\0';

    switch (raft_configuration_add(conf, id, buf, (int)role)) {
    case 0:
        return 0;
    case RAFT_NOMEM:
        return RLOG_ENOMEM;
    case RAFT_DUPLICATEID:
        return fail(r->errmsg, r->errlen, "%s: server %llu duplicate id %llu", r->name,
                    i, id);
    case RAFT_DUPLICATEADDRESS:
        return fail(r->errmsg, r->errlen, "%s: server %llu duplicate address", r->name,
                    i);
    default:
        return fail(r->errmsg, r->errlen, "%s: server %llu rejected by libraft", r->name,
                    i);
    }
}

static int decode_install_snapshot(struct rd *r, struct raft_install_snapshot *m)
{
    unsigned long long n, dlen;
    const unsigned char *data;
    int rv;

    raft_configuration_init(&m->conf);
    m->data.base = NULL;
    m->data.len = 0;
    if ((rv = r64(r, "term", &m->term)) != 0 ||
        (rv = r64(r, "last_index", &m->last_index)) != 0 ||
        (rv = r64(r, "last_term", &m->last_term)) != 0 ||
        (rv = r64(r, "conf_index", &m->conf_index)) != 0 ||
        (rv = r64(r, "n_servers", &n)) != 0)
        return rv;
    if (n == 0)
        return fail(r->errmsg, r->errlen, "%s: configuration has no servers", r->name);
    if (n > MAX_SERVERS)
        return fail(r->errmsg, r->errlen, "%s: server count %llu exceeds %u", r->name,
                    n, MAX_SERVERS);
    if (n > left(r) / ((IS_SERVER + 1) * 8))
        return fail(r->errmsg, r->errlen, "%s: server count %llu exceeds body", r->name,
                    n);
    for (unsigned long long i = 0; i < n; i++)
        if ((rv = decode_server(r, i, &m->conf)) != 0)
            goto err_after_conf;

    if ((rv = r64(r, "data length", &dlen)) != 0 || (rv = rpadded(r, "data", dlen, &data)) != 0 ||
        (rv = rend(r)) != 0)
        goto err_after_conf;
    if (dlen > 0) {
        m->data.base = raft_malloc((size_t)dlen);
        if (m->data.base == NULL) {
            rv = RLOG_ENOMEM;
            goto err_after_conf;
        }
        memcpy(m->data.base, data, (size_t)dlen);
        m->data.len = (size_t)dlen;
    }
    return 0;

err_after_conf:
    raft_configuration_close(&m->conf);
    raft_configuration_init(&m->conf);
    return rv;
}

static int check_sum(const struct rl_wire_hdr *hdr, const void *body, char *errmsg,
                     size_t errlen)
{
    unsigned char prefix[24];
    hdr_prefix(prefix, hdr->type, hdr->length, hdr->flags, hdr->sender);
    uint64_t seed = XXH3_64bits(prefix, sizeof prefix);
    uint64_t sum = XXH3_64bits_withSeed(body, hdr->length, seed);
    if (sum != hdr->checksum)
        return fail(errmsg, errlen, "%s: checksum mismatch (body of %u bytes)",
                    type_names[hdr->type], (unsigned)hdr->length);
    return 0;
}

int rl_wire_decode(const struct rl_wire_hdr *hdr, void *body, struct raft_message *msg,
                   bool *body_owned, char *errmsg, size_t errlen)
{
    int rv;

    *body_owned = false;
    rv = check_hdr(hdr, errmsg, errlen);
    if (rv != 0)
        return rv;
    const char *name = type_names[hdr->type];

    if (hdr->type >= RL_WIRE_OWN_FIRST)
        return fail(errmsg, errlen, "%s: not a raft message", name);
    if ((rv = check_sum(hdr, body, errmsg, errlen)) != 0)
        return rv;

    msg->type = hdr->type;
    msg->server_id = hdr->sender;
    msg->server_address = NULL;
    struct rd r = {body, (const unsigned char *)body + hdr->length, name, errmsg, errlen};
    switch (hdr->type) {
    case RL_WIRE_REQUEST_VOTE:
        return decode_request_vote(&r, &msg->request_vote);
    case RL_WIRE_REQUEST_VOTE_RESULT:
        return decode_request_vote_result(&r, &msg->request_vote_result);
    case RL_WIRE_APPEND_ENTRIES:
        return decode_append_entries(&r, body, &msg->append_entries, body_owned);
    case RL_WIRE_APPEND_ENTRIES_RESULT:
        return decode_append_entries_result(&r, &msg->append_entries_result);
    case RL_WIRE_INSTALL_SNAPSHOT:
        return decode_install_snapshot(&r, &msg->install_snapshot);
    default:
        return decode_timeout_now(&r, &msg->timeout_now);
    }
}

void rl_wire_message_release(struct raft_message *msg, void *body, bool body_owned)
{
    switch (msg->type) {
    case RAFT_IO_APPEND_ENTRIES:
        raft_free(msg->append_entries.entries);
        msg->append_entries.entries = NULL;
        msg->append_entries.n_entries = 0;
        break;
    case RAFT_IO_INSTALL_SNAPSHOT:
        raft_configuration_close(&msg->install_snapshot.conf);
        raft_configuration_init(&msg->install_snapshot.conf);
        raft_free(msg->install_snapshot.data.base);
        msg->install_snapshot.data.base = NULL;
        msg->install_snapshot.data.len = 0;
        break;
    default:
        break;
    }
    if (body_owned)
        raft_free(body);
}

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
    hdr_prefix(out->head, type, (uint32_t)body, 0, sender);
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
    int rv = check_hdr(hdr, errmsg, errlen);
    if (rv != 0)
        return rv;
    const char *name = type_names[hdr->type];
    if (hdr->type != type)
        return fail(errmsg, errlen, "%s: not a %s frame", name, type_names[type]);
    if ((rv = check_sum(hdr, body, errmsg, errlen)) != 0)
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
    return encode_frame(&shape, RL_WIRE_FETCH_RESPONSE, sender, out);
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
    if ((rv = decode_entries(&r, body, &m->entries, &m->n_entries, body_owned)) != 0)
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
        if (m->status > 0)
            return RLOG_EINVAL;
        msglen = strnlen(m->msg, RL_WIRE_FWD_MSG_MAX);
        body = RES_FIXED * 8 + rl_pad8(msglen);
        break;
    case RL_WIRE_BARRIER:
        body = 8;
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

int rl_wire_decode_fwd(const struct rl_wire_hdr *hdr, const void *body, struct rl_wire_fwd *m,
                       char *errmsg, size_t errlen)
{
    memset(m, 0, sizeof *m);
    int rv = check_hdr(hdr, errmsg, errlen);
    if (rv != 0)
        return rv;
    const char *name = type_names[hdr->type];
    if (!rl_wire_is_fwd(hdr->type))
        return fail(errmsg, errlen, "%s: not a forwarding frame", name);
    if ((rv = check_sum(hdr, body, errmsg, errlen)) != 0)
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
    default:
        return decode_result(&r, m);
    }
}
