/*
 * wire codec — liblog's framing and encoding of Raft messages (and of our own
 * messages), independent of any socket. Pure functions over buffers.
 *
 * Frame = 32-byte header + body:
 *   0  magic   u32  0x31574c52 ("RLW1" little-endian bytes 'R','L','W','1')
 *   4  version u16  RL_WIRE_VERSION
 *   6  type    u16  RL_WIRE_* below
 *   8  length  u32  body bytes (multiple of 8, <= the decoder's max_body)
 *  12  flags   u32  0 (reserved)
 *  16  sender  u64  raft id of the sending server
 *  24  checksum u64 xxh3-64 of the body, seeded with xxh3-64 of bytes 0..24
 * All integers little-endian. Bodies are sequences of u64 fields; byte
 * strings are a u64 length then the bytes padded with zeros to 8.
 *
 * Validation is strict: any field out of range, a length that does not match
 * the body's content exactly, an unknown type or version, or a checksum
 * mismatch is rejected with RLOG_EPROTO and a message saying what was wrong.
 * Decoding never reads outside the given buffer and never trusts a count
 * before checking it against the bytes actually present.
 */
#ifndef RL_WIRE_CODEC_H
#define RL_WIRE_CODEC_H

#include <raft.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RL_WIRE_MAGIC 0x31574c52u
#define RL_WIRE_VERSION 1u
#define RL_WIRE_HDR 32u

/* Frame types. 1..6 mirror libraft's RAFT_IO_* message types; 64 and up are
 * liblog's own (segment fetch for catch-up, append forwarding). */
enum {
    RL_WIRE_APPEND_ENTRIES = RAFT_IO_APPEND_ENTRIES,
    RL_WIRE_APPEND_ENTRIES_RESULT = RAFT_IO_APPEND_ENTRIES_RESULT,
    RL_WIRE_REQUEST_VOTE = RAFT_IO_REQUEST_VOTE,
    RL_WIRE_REQUEST_VOTE_RESULT = RAFT_IO_REQUEST_VOTE_RESULT,
    RL_WIRE_INSTALL_SNAPSHOT = RAFT_IO_INSTALL_SNAPSHOT,
    RL_WIRE_TIMEOUT_NOW = RAFT_IO_TIMEOUT_NOW,
    RL_WIRE_OWN_FIRST = 64,
    /* Catch-up by segment fetch (lib/raftio/fetch.c; a rewind,
     * lib/raftio/rewind.c, and the repair of damaged entries,
     * lib/node/repair.c, ask with the same request) and the commit notice:
     * struct rl_wire_fetch_req, rl_wire_fetch_resp and rl_wire_commit
     * below, encoded and decoded by their own functions only (rl_wire_decode
     * refuses them). Their bodies keep the layouts of the raft messages they
     * were first sent as (TimeoutNow, AppendEntries), so the bytes are the
     * same as before they had types of their own:
     *  FETCH_REQUEST: first, last, budget (three u64).
     *  FETCH_RESPONSE: as AppendEntries: status (0 or an RLOG_E* code
     *    negated), first - 1 (0 for "none" with RLOG_ETRIMMED),
     *    restart_term (else 0), restart_offset with RLOG_ETRIMMED and a
     *    first, else last; then the entries (headers, then payloads).
     *  COMMIT: term, index, entry_term (three u64). */
    RL_WIRE_FETCH_REQUEST = 64,
    RL_WIRE_FETCH_RESPONSE = 65,
    RL_WIRE_COMMIT = 66,
    /* Append forwarding and the read barrier (lib/node/forward.c). Not raft
     * shapes: encoded and decoded by rl_wire_encode_fwd / rl_wire_decode_fwd
     * only (rl_wire_decode refuses them).
     *  FORWARD: request, producer_id, seq, expect_offset, hash, n, then n
     *    record lengths, then the records back to back (padded to 8).
     *  FORWARD_RESULT, BARRIER_RESULT: request, status (an RLOG_E* code
     *    negated, or 0), offset (the first record's, also with
     *    RLOG_ECONFLICT: where it would have gone; with RLOG_ESEQUENCE, 1 if
     *    the sequence skipped ahead, else 0; the barrier's), and a message
     *    (a byte string of at most RL_WIRE_FWD_MSG_MAX bytes).
     *  BARRIER: request. */
    RL_WIRE_FORWARD = 67,
    RL_WIRE_FORWARD_RESULT = 68,
    RL_WIRE_BARRIER = 69,
    RL_WIRE_BARRIER_RESULT = 70,
    /* A named cursor's commit forwarded to the leader (liblog 0.4):
     *  CURSOR: request, offset, name length (1..64), the name (padded to 8).
     *  CURSOR_RESULT: as FORWARD_RESULT; offset is the index of the entry
     *    that holds the command. */
    RL_WIRE_CURSOR = 71,
    RL_WIRE_CURSOR_RESULT = 72,
    /* A state-machine snapshot installed from a peer (liblog 0.4.1,
     * lib/sm/install.c): the receiver pulls the file a piece at a time.
     *  SNAP_REQUEST: request, need (the file must cover the records before
     *    an offset at least this), next (the file being fetched, by its
     *    next_offset; 0: the sender's newest), pos (byte offset in it),
     *    budget (bytes wanted, 1..RL_WIRE_SNAP_PIECE_MAX).
     *  SNAP_DATA: request, status (an RLOG_E* code negated, or 0), next
     *    (the file's next_offset), size (the file's bytes), pos, data length
     *    (0 with a status), the data (padded to 8).
     *  SNAP_HAVE: request (0), next (the newest snapshot here covers the
     *    records before it): a node's report to the leader, whose
     *    retention trims only behind what a quorum's snapshots cover. */
    RL_WIRE_SNAP_REQUEST = 73,
    RL_WIRE_SNAP_DATA = 74,
    RL_WIRE_SNAP_HAVE = 75,
    /* Quiescence of an idle log on a shared transport (liblog 0.4.3,
     * lib/node/quiet.c): the leader asks its followers to stop their
     * clocks, each answers once it has; nothing else is sent until the log
     * has work again.
     *  QUIESCE, QUIESCED: request (0), term, index (the log's last entry,
     *    committed and stored everywhere).
     *  UNQUIESCE: the same words: a follower whose clock runs again for a
     *    reason of its own asks its leader to run its clock too. */
    RL_WIRE_QUIESCE = 76,
    RL_WIRE_QUIESCED = 77,
    RL_WIRE_UNQUIESCE = 78,
};

#define RL_WIRE_FWD_MSG_MAX 255u
#define RL_WIRE_CURSOR_NAME_MAX 64u
/* The most bytes of a snapshot file one SNAP_DATA carries. */
#define RL_WIRE_SNAP_PIECE_MAX (1u << 20)
/* Records in one FORWARD: the largest batch_max_records a config can have. */
#define RL_WIRE_FWD_MAX_RECORDS (1u << 20)

/* One forwarding frame, either way (the fields its type uses). */
struct rl_wire_fwd {
    uint16_t type;
    uint64_t request;
    /* FORWARD */
    uint64_t producer_id, seq, expect_offset, hash;
    uint32_t n;
    size_t *lens;          /* n lengths; decode: malloc'd */
    unsigned char *data;   /* the records back to back; decode: malloc'd */
    size_t bytes;
    /* CURSOR: the name (NUL-ended; offset below is the cursor's) */
    char cursor[RL_WIRE_CURSOR_NAME_MAX + 1];
    /* SNAP_REQUEST, SNAP_DATA (a piece of the file in data/bytes) */
    uint64_t snap_need, snap_next, snap_pos, snap_size;
    uint32_t snap_budget;
    /* QUIESCE, QUIESCED, UNQUIESCE */
    uint64_t quiet_term, quiet_index;
    /* results */
    int status;
    uint64_t offset;
    char msg[RL_WIRE_FWD_MSG_MAX + 1];
};

/* A fetch request: entries first..last wanted, at most `budget` bytes of
 * payload in the answer (at least one entry is sent). first >= 1. */
struct rl_wire_fetch_req {
    uint64_t first, last, budget;
};

/* A fetch answer. status 0: entries (n_entries, maybe none if the sender has
 * nothing there yet) from index `first`, the sender holding entries up to
 * `last`. RLOG_ECORRUPT: the sender's copy of `first` is damaged (no
 * entries). RLOG_ETRIMMED: the sender dropped the range; it serves from
 * `first` on, entry first - 1 having restart_term and entry first starting
 * at record restart_offset; first 0 when it holds nothing of the range
 * (then `last` is its last index). */
struct rl_wire_fetch_resp {
    int status;
    uint64_t first, last;
    uint64_t restart_term, restart_offset;
    struct raft_entry *entries; /* decode: raft_calloc'd, pointing into the body */
    unsigned n_entries;
};

/* The leader's commit fence passed entry `index` (of term entry_term) in
 * the leader's term `term` (lib/node/visible.c). All three >= 1, entry_term
 * <= term. */
struct rl_wire_commit {
    uint64_t term, index, entry_term;
};

/* Frames of the fetch protocol and the commit notice (types 64..66). */
static inline bool rl_wire_is_own(unsigned type)
{
    return type >= RL_WIRE_FETCH_REQUEST && type <= RL_WIRE_COMMIT;
}

static inline bool rl_wire_is_fwd(unsigned type)
{
    return type >= RL_WIRE_FORWARD && type <= RL_WIRE_UNQUIESCE;
}

struct rl_wire_hdr {
    uint16_t version, type;
    uint32_t length, flags;
    uint64_t sender;
    uint64_t checksum;
};

/* Encoding: the caller gets one contiguous header+fixed-fields buffer plus
 * iovecs pointing at entry payloads (zero copy), so a send is one writev. */
struct rl_wire_out {
    unsigned char *head;   /* malloc'd: frame header + all non-payload bytes */
    size_t head_len;
    struct rl_wire_iov {
        const void *base;
        size_t len;
    } *iov;                /* malloc'd; iov[0] is head; then payloads/padding/trailers */
    unsigned n_iov;
    uint64_t total;        /* header + body bytes */
};

/* Encodes a raft message (types 1..6) as a frame from `sender`. Returns 0, RLOG_ENOMEM,
 * or RLOG_EINVAL (unknown type, a field that cannot be represented).
 * The payload buffers of AppendEntries entries must stay valid until the
 * frame is sent; free with rl_wire_out_free(). */
int rl_wire_encode(const struct raft_message *msg, uint64_t sender, struct rl_wire_out *out);
void rl_wire_out_free(struct rl_wire_out *out);

/* Checks a received frame header. max_body bounds the body length (the
 * caller's memory budget). Returns 0 or RLOG_EPROTO with errmsg filled. */
int rl_wire_decode_hdr(const unsigned char hdr[RL_WIRE_HDR], uint32_t max_body,
                       struct rl_wire_hdr *out, char *errmsg, size_t errlen);

/* Verifies the body checksum and decodes it into *msg (type-specific fields;
 * msg->server_id = hdr->sender, msg->server_address = NULL).
 * `body` must have been allocated with raft_malloc() and ownership passes to
 * the decoded message when it has entries: AppendEntries entries point into
 * body with entries[i].batch = body (libraft frees it with raft_free when it
 * releases the entries), and msg->append_entries.entries is raft_malloc'd.
 * For other types body stays the caller's; InstallSnapshot's configuration
 * is decoded with raft_configuration_* calls and its data is a raft_malloc'd
 * copy. Set *body_owned to true when ownership moved.
 * Returns 0, RLOG_EPROTO (errmsg says why), RLOG_ENOMEM. On error nothing is
 * owned by *msg. */
int rl_wire_decode(const struct rl_wire_hdr *hdr, void *body, struct raft_message *msg,
                   bool *body_owned, char *errmsg, size_t errlen);

/* Frees what rl_wire_decode allocated for a message that was NOT handed to
 * libraft (entries array, body if owned, snapshot conf and data). */
void rl_wire_message_release(struct raft_message *msg, void *body, bool body_owned);

/* Encodes a forwarding frame from `sender`, everything copied into the
 * frame (a forwarded call may be answered before its frame is written).
 * 0, RLOG_ENOMEM, or RLOG_EINVAL (a field that cannot be represented). */
int rl_wire_encode_fwd(const struct rl_wire_fwd *m, uint64_t sender, struct rl_wire_out *out);
/* Verifies and decodes a forwarding frame (body stays the caller's): 0,
 * RLOG_EPROTO (errmsg says why) or RLOG_ENOMEM. A FORWARD's lens and data
 * are malloc'd (free with rl_wire_fwd_free); limits beyond the frame's own
 * consistency (record sizes, counts) are the receiver's to check. */
int rl_wire_decode_fwd(const struct rl_wire_hdr *hdr, const void *body, struct rl_wire_fwd *m,
                       char *errmsg, size_t errlen);
void rl_wire_fwd_free(struct rl_wire_fwd *m);

/* The fetch protocol and the commit notice, as the forwarding frames: each
 * encoder returns 0, RLOG_ENOMEM or RLOG_EINVAL (a field the decoder would
 * refuse); each decoder verifies the header and checksum and every field,
 * returning 0, RLOG_EPROTO (errmsg says why) or RLOG_ENOMEM. A fetch
 * answer's entry payloads are referenced, not copied: they must stay valid
 * until the frame is sent. Its decoder takes `body` as rl_wire_decode does
 * (raft_malloc'd; *body_owned set when the entries point into it); release
 * with rl_wire_fetch_resp_release. */
int rl_wire_encode_fetch_req(const struct rl_wire_fetch_req *m, uint64_t sender,
                             struct rl_wire_out *out);
int rl_wire_decode_fetch_req(const struct rl_wire_hdr *hdr, const void *body,
                             struct rl_wire_fetch_req *m, char *errmsg, size_t errlen);
int rl_wire_encode_fetch_resp(const struct rl_wire_fetch_resp *m, uint64_t sender,
                              struct rl_wire_out *out);
int rl_wire_decode_fetch_resp(const struct rl_wire_hdr *hdr, void *body,
                              struct rl_wire_fetch_resp *m, bool *body_owned, char *errmsg,
                              size_t errlen);
/* Frees the decoded entries array, and body if owned. */
void rl_wire_fetch_resp_release(struct rl_wire_fetch_resp *m, void *body, bool body_owned);
int rl_wire_encode_commit(const struct rl_wire_commit *m, uint64_t sender, struct rl_wire_out *out);
int rl_wire_decode_commit(const struct rl_wire_hdr *hdr, const void *body, struct rl_wire_commit *m,
                          char *errmsg, size_t errlen);

#endif
