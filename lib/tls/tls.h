/*
 * tls — a mutual TLS 1.3 session over memory buffers (OpenSSL 3), with each
 * peer's node id bound to its certificate. Loop-agnostic: no sockets, no
 * timers, no threads. The transport feeds it the bytes the network delivered
 * and sends the bytes it produces; this layer only turns ciphertext into
 * plaintext and back, and says who the peer is.
 *
 * Happy path (client and server alike):
 *   rl_tls_session_new()        the client's ClientHello is ready at once
 *   loop: send rl_tls_take_output() bytes to the peer;
 *         rl_tls_feed() the peer's bytes; rl_tls_read() until *got == 0;
 *   rl_tls_handshake_done()     true: the peer's certificate chains to the
 *                               configured CA and names exactly one node id
 *   rl_tls_peer_id()            that id, for the caller to compare with the id
 *                               the peer claims and with the membership
 *   rl_tls_write() plaintext, rl_tls_take_output() its ciphertext;
 *   rl_tls_shutdown() to close, rl_tls_session_free().
 *
 * Identity: a node's certificate carries exactly one subjectAltName URI of
 * the form rlog://<cluster>/<id>, <id> in decimal (1..2^63-1, no sign, no
 * leading zero). URIs of other schemes are ignored. If the configuration
 * names a cluster, the URI's cluster must be that one. The check runs inside
 * the certificate verification, so a refused certificate fails the handshake
 * (with an alert the transport can still send) on the side that checks it.
 * Host names are not checked: the id is the identity.
 *
 * Failure: an error from OpenSSL, a refused peer, a cap exceeded by input or
 * by OpenSSL's own output, or the peer's close latches: the session is dead,
 * every later call returns the same code, rl_tls_errmsg() says why. Not
 * latched: RLOG_EINVAL for a bad argument or call, RLOG_ETOOBIG from
 * rl_tls_write, RLOG_ECLOSED from rl_tls_write after rl_tls_shutdown. rl_tls_take_output() still works
 * after a failure, so an alert OpenSSL queued can be sent before closing.
 *
 * In TLS 1.3 the client finishes its handshake before the server has checked
 * the client's certificate: a server that refuses it tells the client with an
 * alert, which the client sees as RLOG_EPROTO from its next rl_tls_read().
 * Nothing the client writes is ever read by such a server.
 *
 * Memory: a session buffers at most max_buffered bytes of ciphertext in each
 * direction (plus OpenSSL's own one-record buffers, about 2 x 17 KiB). Input
 * beyond it is refused with RLOG_ETOOBIG (latched: a peer must not be able to
 * grow it); output beyond it makes rl_tls_write() return RLOG_ETOOBIG without
 * writing anything (not latched: take the output, or give up on a peer that
 * does not read).
 *
 * Threads: an rl_tls_ctx may be shared by threads once created (OpenSSL's
 * SSL_CTX is); a session belongs to one thread at a time. Every call clears
 * the calling thread's OpenSSL error queue before it uses OpenSSL and leaves
 * it empty. Not part of the public API (hidden symbols).
 */
#ifndef RL_TLS_TLS_H
#define RL_TLS_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Default cap on the ciphertext a session buffers in each direction. The
 * transport feeds reads of up to 64 KiB and drains plaintext after each, so
 * at most one partial TLS record (< 17 KiB) stays between feeds. */
#define RL_TLS_DEFAULT_MAX_BUFFERED (256u * 1024u)
/* A session refuses a cap below this (one full TLS record and a margin). */
#define RL_TLS_MIN_MAX_BUFFERED (32u * 1024u)

struct rl_tls_config {
    const char *ca_file;   /* PEM: the CA(s) every peer certificate must chain to */
    const char *cert_file; /* PEM: this node's certificate (chain), leaf first */
    const char *key_file;  /* PEM: its private key (unencrypted: no prompt) */
    const char *cluster;   /* peers' URIs must name it; NULL or "": any cluster */
    size_t max_buffered;   /* per direction, bytes; 0: RL_TLS_DEFAULT_MAX_BUFFERED */
};

struct rl_tls_ctx;
struct rl_tls_session;

/* rl_tls_ctx_new - loads the CA, the certificate and its key, checks that
 * they match, and makes a context for TLS 1.3 only (minimum and maximum),
 * peer verification required on both sides (a client without a certificate
 * is refused), no session tickets or resumption. Only ca_file is trusted
 * (never the system's CA store). The strings of cfg are copied.
 * On success *out owns the context (free it with rl_tls_ctx_free after all
 * its sessions). Errors: RLOG_EINVAL (missing field, unreadable or bad file,
 * key not matching the certificate, max_buffered too small, cluster with a
 * '/'), RLOG_ENOMEM. On error, err (if not NULL, errlen > 0) gets a message
 * naming the file and OpenSSL's reason; *out is NULL. */
int rl_tls_ctx_new(const struct rl_tls_config *cfg, struct rl_tls_ctx **out, char *err,
                   size_t errlen);

/* rl_tls_ctx_free - frees a context (NULL is a no-op). Its sessions must
 * have been freed first. */
void rl_tls_ctx_free(struct rl_tls_ctx *ctx);

/* rl_tls_session_new - a session on ctx as server (accepts) or client
 * (connects; its ClientHello is then pending in the output). ctx must
 * outlive the session. Errors: RLOG_EINVAL (NULL argument), RLOG_ENOMEM,
 * RLOG_EPROTO (OpenSSL refused to start the handshake); *out is NULL then. */
int rl_tls_session_new(struct rl_tls_ctx *ctx, bool is_server, struct rl_tls_session **out);

/* rl_tls_session_free - frees a session and everything it buffers (NULL is
 * a no-op). Sends nothing: see rl_tls_shutdown. */
void rl_tls_session_free(struct rl_tls_session *s);

/* rl_tls_feed - hands the session len bytes the peer sent (copied; the
 * caller keeps its buffer) and advances the handshake if it is not done.
 * Returns 0 (the bytes are queued; the handshake may have finished and may
 * have queued output), RLOG_ETOOBIG (the input would exceed max_buffered:
 * the caller did not drain rl_tls_read), RLOG_EPROTO (the handshake failed:
 * garbage, wrong version, a certificate refused here or an alert from the
 * peer; rl_tls_errmsg says which), RLOG_EINVAL (NULL with len > 0). The last
 * three latch except RLOG_EINVAL. */
int rl_tls_feed(struct rl_tls_session *s, const void *cipher, size_t len);

/* rl_tls_read - decrypts up to cap bytes of plaintext into buf. Advances the
 * handshake first if it is not done. *got == 0 with 0 returned means "want
 * more input": feed more. Returns 0, RLOG_ECLOSED (the peer closed the
 * session cleanly: no more plaintext will come), RLOG_EPROTO (bad record,
 * refused handshake, alert from the peer), RLOG_ETOOBIG (the output the
 * session had to queue in reply would exceed max_buffered), RLOG_EINVAL. */
int rl_tls_read(struct rl_tls_session *s, void *buf, size_t cap, size_t *got);

/* rl_tls_write - encrypts len bytes of plaintext (copied) into the output,
 * all or nothing. Only once the handshake is done (else RLOG_EINVAL).
 * Returns 0, RLOG_ETOOBIG if the output would exceed max_buffered (nothing
 * written, not latched: take the output and retry), RLOG_EPROTO,
 * RLOG_ECLOSED (after rl_tls_shutdown), or the latched error. */
int rl_tls_write(struct rl_tls_session *s, const void *plain, size_t len);

/* rl_tls_pending_output - ciphertext bytes waiting to be sent. */
size_t rl_tls_pending_output(const struct rl_tls_session *s);

/* rl_tls_take_output - moves up to cap bytes of pending ciphertext into buf
 * (the caller's; the session forgets them), *got how many. Works in every
 * state, including after a failure (the alert to send). Returns 0 or
 * RLOG_EINVAL. */
int rl_tls_take_output(struct rl_tls_session *s, void *buf, size_t cap, size_t *got);

/* rl_tls_shutdown - queues a close_notify alert (send the output, then close
 * the connection; before the handshake is done there is nothing to queue).
 * Later rl_tls_write calls return RLOG_ECLOSED. Returns 0, RLOG_EINVAL,
 * RLOG_EPROTO, or the latched error. */
int rl_tls_shutdown(struct rl_tls_session *s);

/* rl_tls_handshake_done - true once the handshake finished here: the peer's
 * certificate chained to the CA and carried a valid id (see above for the
 * client's side of the client certificate). False after a failure. */
bool rl_tls_handshake_done(const struct rl_tls_session *s);

/* rl_tls_peer_id - the node id the peer's certificate names. Returns 0,
 * RLOG_EINVAL (handshake not done, or the session failed). */
int rl_tls_peer_id(const struct rl_tls_session *s, uint64_t *id);

/* rl_tls_errmsg - why the session failed ("" if it did not). Valid until the
 * session is freed. */
const char *rl_tls_errmsg(const struct rl_tls_session *s);

/* rl_tls_uri_id - parses a subjectAltName URI: 0 and *id if it is
 * rlog://<cluster>/<id> with a valid id and, when cluster is neither NULL
 * nor "", that cluster; else RLOG_EPROTO with a reason in err. Exposed for
 * tests; uri need not be NUL-terminated. */
int rl_tls_uri_id(const char *uri, size_t len, const char *cluster, uint64_t *id, char *err,
                  size_t errlen);

#endif
