/* What the files of lib/wire share. Nothing here is visible outside it.
 *
 * The files, bottom first: each calls only functions of the files listed
 * above it (test/check-layers checks it in make check):
 *
 *   codec.c     framing: the header and its checks, the checksum, the
 *               type names, freeing an encoded frame
 *   raft_msg.c  libraft's messages (types 1-6): sizes, bodies, the frame
 *               of iovecs (also the fetch answer's), decoders
 *   own_msg.c   liblog's own messages: fetch request and answer, commit
 *               notice, forwarding; each with its struct, encoder, decoder
 */
#ifndef RL_WIRE_INTERNAL_H
#define RL_WIRE_INTERNAL_H

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/bytes.h"
#include "liblog.h"
#include "wire/codec.h"

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

/* The body writer and reader every encoder and decoder uses, word by word,
 * and the error they return. Each file that includes this has its own
 * copies, as when all were one file's static functions: the compiler makes
 * the same choices about inlining them (declared inline, it inlines r64
 * into callers whose reads it then cannot prove initialized, and warns). */
#define WIRE_LOCAL static __attribute__((unused))

WIRE_LOCAL int fail(char *errmsg, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

WIRE_LOCAL int fail(char *errmsg, size_t errlen, const char *fmt, ...)
{
    if (errmsg != NULL && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(errmsg, errlen, fmt, ap);
        va_end(ap);
    }
    return RLOG_EPROTO;
}

/* Appends u64 words to the head under construction. */
struct wr {
    unsigned char *p;
};

WIRE_LOCAL void w64(struct wr *w, uint64_t v)
{
    rl_put64(w->p, v);
    w->p += 8;
}

WIRE_LOCAL void wbytes(struct wr *w, const void *src, size_t len)
{
    w64(w, len);
    if (len > 0)
        memcpy(w->p, src, len);
    memset(w->p + len, 0, (size_t)(rl_pad8(len) - len));
    w->p += rl_pad8(len);
}

/* Bounds-checked reader over the body. */
struct rd {
    const unsigned char *p, *end;
    const char *name; /* message type, for error messages */
    char *errmsg;
    size_t errlen;
};

WIRE_LOCAL size_t left(const struct rd *r)
{
    return (size_t)(r->end - r->p);
}

WIRE_LOCAL int r64(struct rd *r, const char *field, unsigned long long *v)
{
    if (left(r) < 8)
        return fail(r->errmsg, r->errlen, "%s: body ends before %s", r->name, field);
    *v = rl_get64(r->p);
    r->p += 8;
    return 0;
}

WIRE_LOCAL int rbool(struct rd *r, const char *field, bool *v)
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
WIRE_LOCAL int rpadded(struct rd *r, const char *what, unsigned long long len,
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

WIRE_LOCAL int rend(struct rd *r)
{
    if (left(r) != 0)
        return fail(r->errmsg, r->errlen, "%s: %zu trailing bytes after last field", r->name,
                    left(r));
    return 0;
}

/* codec.c */
extern const char *const rl_wire__type_names[];
void rl_wire__hdr_prefix(unsigned char b[24], uint16_t type, uint32_t length, uint32_t flags,
                         uint64_t sender);
int rl_wire__check_hdr(const struct rl_wire_hdr *h, char *errmsg, size_t errlen);
int rl_wire__check_sum(const struct rl_wire_hdr *hdr, const void *body, char *errmsg,
                       size_t errlen);

/* raft_msg.c */
int rl_wire__encode_frame(const struct raft_message *msg, uint16_t wire_type, uint64_t sender,
                          struct rl_wire_out *out);
int rl_wire__decode_entries(struct rd *r, void *body, struct raft_entry **out, unsigned *n_out,
                            bool *body_owned);

#endif
