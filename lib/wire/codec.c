/*
 * Wire codec, framing: every frame is a 32-byte header (magic, version,
 * type, body length, flags, sender, checksum) and a body of u64 words.
 * The checksum is xxh3-64 of the body, seeded with the hash of the
 * header's first 24 bytes. The bodies of libraft's messages are
 * raft_msg.c's, liblog's own messages are own_msg.c's; wire/internal.h
 * holds what they share and their order.
 *
 * Decoding treats the peer as hostile: the header is checked alone first so
 * the caller never allocates more than max_body, the body checksum before any
 * field is looked at, and then every field against the bytes that remain.
 * Encoding is canonical (zero padding, no spare bytes, booleans 0/1), and
 * the decoder accepts only canonical frames, so a frame that decodes
 * re-encodes to the same bytes. On any error everything allocated so far is
 * released and the message owns nothing.
 */
#include "wire/internal.h"

#include <stdlib.h>
#include <xxhash.h>

const char *const rl_wire__type_names[] = {
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
    [RL_WIRE_CURSOR] = "cursor",
    [RL_WIRE_CURSOR_RESULT] = "cursor_result",
    [RL_WIRE_SNAP_REQUEST] = "snap_request",
    [RL_WIRE_SNAP_DATA] = "snap_data",
    [RL_WIRE_SNAP_HAVE] = "snap_have",
    [RL_WIRE_QUIESCE] = "quiesce",
    [RL_WIRE_QUIESCED] = "quiesced",
    [RL_WIRE_UNQUIESCE] = "unquiesce",
};

static bool known_type(unsigned type)
{
    return (type >= RL_WIRE_APPEND_ENTRIES && type <= RL_WIRE_TIMEOUT_NOW) ||
           type == RL_WIRE_FETCH_REQUEST || type == RL_WIRE_FETCH_RESPONSE ||
           type == RL_WIRE_COMMIT || rl_wire_is_fwd(type);
}

/* Header bytes 0..24 as they are covered by the checksum seed. The decoder
 * rebuilds them from the parsed header, so both sides hash the same bytes. */
void rl_wire__hdr_prefix(unsigned char b[24], uint16_t type, uint32_t length, uint32_t flags,
                         uint64_t sender)
{
    rl_put32(b, RL_WIRE_MAGIC);
    rl_put16(b + 4, RL_WIRE_VERSION);
    rl_put16(b + 6, type);
    rl_put32(b + 8, length);
    rl_put32(b + 12, flags);
    rl_put64(b + 16, sender);
}

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
    case RL_WIRE_CURSOR_RESULT:
        *min = RES_FIXED * 8;
        *exact = false;
        break;
    case RL_WIRE_BARRIER:
        *min = 8;
        break;
    case RL_WIRE_CURSOR:
        *min = 4 * 8; /* request, offset, name length, a name of 1..8 bytes */
        *exact = false;
        break;
    case RL_WIRE_SNAP_REQUEST:
        *min = 5 * 8;
        break;
    case RL_WIRE_SNAP_HAVE:
        *min = 2 * 8;
        break;
    case RL_WIRE_QUIESCE:
    case RL_WIRE_QUIESCED:
    case RL_WIRE_UNQUIESCE:
        *min = 3 * 8;
        break;
    case RL_WIRE_SNAP_DATA:
        *min = 6 * 8; /* a status: no data */
        *exact = false;
        break;
    default:
        *min = 3 * 8;
        break;
    }
}

/* Everything about a header except the magic (which a parsed header no
 * longer carries) and max_body; shared by both decode steps so rl_wire_decode
 * does not depend on its caller having run rl_wire_decode_hdr. */
int rl_wire__check_hdr(const struct rl_wire_hdr *h, char *errmsg, size_t errlen)
{
    if (h->version != RL_WIRE_VERSION)
        return fail(errmsg, errlen, "unsupported wire version %u", (unsigned)h->version);
    if (!known_type(h->type))
        return fail(errmsg, errlen, "unknown message type %u", (unsigned)h->type);
    const char *name = rl_wire__type_names[h->type];
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
    int rv = rl_wire__check_hdr(out, errmsg, errlen);
    if (rv != 0)
        return rv;
    if (out->length > max_body)
        return fail(errmsg, errlen, "%s: body length %u exceeds limit %u",
                    rl_wire__type_names[out->type], (unsigned)out->length, (unsigned)max_body);
    return 0;
}

int rl_wire__check_sum(const struct rl_wire_hdr *hdr, const void *body, char *errmsg,
                       size_t errlen)
{
    unsigned char prefix[24];
    rl_wire__hdr_prefix(prefix, hdr->type, hdr->length, hdr->flags, hdr->sender);
    uint64_t seed = XXH3_64bits(prefix, sizeof prefix);
    uint64_t sum = XXH3_64bits_withSeed(body, hdr->length, seed);
    if (sum != hdr->checksum)
        return fail(errmsg, errlen, "%s: checksum mismatch (body of %u bytes)",
                    rl_wire__type_names[hdr->type], (unsigned)hdr->length);
    return 0;
}

void rl_wire_out_free(struct rl_wire_out *out)
{
    free(out->head);
    free(out->iov);
    memset(out, 0, sizeof *out);
}
