/*
 * Wire codec, libraft's messages (types 1-6) <-> frames.
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
 * Anything libraft would assert on (entry term 0, unknown entry type or
 * role, server id 0) is refused here, because an assertion reachable from
 * the network is a remote crash. The rest of the decoding rules are
 * codec.c's.
 */
#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t on the stack */
#include "wire/internal.h"

#include <stdlib.h>
#include <xxhash.h>

/* ---- Encoding ------------------------------------------------------------ */

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
int rl_wire__encode_frame(const struct raft_message *msg, uint16_t wire_type, uint64_t sender,
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

    rl_wire__hdr_prefix(out->head, wire_type, (uint32_t)body, 0, sender);
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
    return rl_wire__encode_frame(msg, (uint16_t)msg->type, sender, out);
}

/* ---- Decoding ------------------------------------------------------------ */

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
int rl_wire__decode_entries(struct rd *r, void *body, struct raft_entry **out, unsigned *n_out,
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
    return rl_wire__decode_entries(r, body, &m->entries, &m->n_entries, body_owned);
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

int rl_wire_decode(const struct rl_wire_hdr *hdr, void *body, struct raft_message *msg,
                   bool *body_owned, char *errmsg, size_t errlen)
{
    int rv;

    *body_owned = false;
    rv = rl_wire__check_hdr(hdr, errmsg, errlen);
    if (rv != 0)
        return rv;
    const char *name = rl_wire__type_names[hdr->type];

    if (hdr->type >= RL_WIRE_OWN_FIRST)
        return fail(errmsg, errlen, "%s: not a raft message", name);
    if ((rv = rl_wire__check_sum(hdr, body, errmsg, errlen)) != 0)
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
