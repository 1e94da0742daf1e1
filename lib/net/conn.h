/*
 * conn — one peer connection as the raft_io backend sees it: write iovecs
 * (a callback when they are on the socket), read plaintext (a callback per
 * chunk), close. Underneath it is either the plain bytes of a libuv stream
 * or a TLS session (lib/tls) over one; the simulator's connections are
 * plain ones over its own streams.
 *
 * Life: rl_conn_new takes the stream (and the session); rl_conn_start sets
 * the callbacks and starts reading. A TLS connection is "ready" (writes
 * allowed, plaintext flows) once its handshake is done: `ready` fires then,
 * once; a plain one is ready at once (rl_conn_ready). `end` fires at most
 * once, when the connection dies on its own (EOF, read or write error, TLS
 * failure, the deadline): the connection is then closing and no callback
 * but the pending writes' follows. rl_conn_close closes it from the owner's
 * side with no `end` callback. Every accepted write's callback fires exactly
 * once, with 0 or a libuv error (UV_ECANCELED at close), before the memory
 * is freed.
 *
 * Deadline: rl_conn_deadline(c, ms) arms one timer (0 disarms); when it
 * fires, `end` gets RL_CONN_TIMEOUT. The owner decides what it bounds (a
 * handshake, a frame, idleness).
 *
 * Memory: reads land in a per-thread 64 KiB buffer and are handed on at
 * once, so an idle connection holds no read buffer; the TLS session buffers
 * at most its max_buffered bytes per direction; bytes queued for the socket
 * are counted (rl_conn_queued) so the owner can bound them.
 *
 * Thread: the loop's thread only.
 */
#ifndef RL_NET_CONN_H
#define RL_NET_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct rl_tls_session;
struct rl_conn;

/* Why a connection ended. */
enum { RL_CONN_EOF = 1, RL_CONN_ERROR, RL_CONN_TIMEOUT };

struct rl_conn_cbs {
    void (*ready)(void *arg);                                  /* TLS handshake done */
    /* Plaintext; returns the bytes it took: all of them, unless it handed
     * the connection on with rl_conn_set_cbs (the rest then goes there). */
    size_t (*data)(void *arg, const unsigned char *p, size_t n);
    void (*end)(void *arg, int why, const char *msg);          /* RL_CONN_*; closing now */
    /* A virtual connection's carrier heard nothing from the peer for a
     * while (the peer host may be gone; the connection stays). Optional;
     * it must not close any connection. */
    void (*stale)(void *arg);
    void *arg;
};

/* A connection over stream (initialised on its loop, connected; owned from
 * now on, freed at close) and tls (owned; NULL: plain). Sets TCP_NODELAY on
 * TCP streams (Nagle plus delayed ACK stalls pipelined traffic 40 ms).
 * RLOG_ENOMEM (then the stream and session are closed and freed). */
int rl_conn_new(uv_stream_t *stream, struct rl_tls_session *tls, struct rl_conn **out);

/* Sets the callbacks and starts reading (and, for TLS, the handshake).
 * 0 or a libuv error (the owner closes the connection then). */
int rl_conn_start(struct rl_conn *c, const struct rl_conn_cbs *cbs);

/* Replaces the callbacks (from inside one of them, too: a connection handed
 * from the handshake to its user; see `data`). */
void rl_conn_set_cbs(struct rl_conn *c, const struct rl_conn_cbs *cbs);

bool rl_conn_ready(const struct rl_conn *c);
bool rl_conn_is_tls(const struct rl_conn *c);
/* The id the peer's certificate names (TLS, ready): 0 and *id; else -1. */
int rl_conn_peer_cert_id(const struct rl_conn *c, uint64_t *id);

/* Sends the n buffers, in order after every earlier write. cb(arg, status)
 * fires exactly once when they are on the socket (0) or not (a libuv
 * error), unless this returns an error: UV_EINVAL (not ready), UV_ECANCELED
 * (closing), UV_ENOMEM, or the stream's own. The buffers must stay valid
 * until cb in plain mode; TLS copies them (encrypted) at once. */
int rl_conn_write(struct rl_conn *c, const uv_buf_t *bufs, unsigned n,
                  void (*cb)(void *arg, int status), void *arg);

/* Bytes accepted by rl_conn_write (ciphertext for TLS) not yet on the socket. */
size_t rl_conn_queued(const struct rl_conn *c);

/* Arms (ms > 0) or disarms (0) the deadline. */
void rl_conn_deadline(struct rl_conn *c, uint64_t ms);

/* Closes the connection (idempotent): no callback but the pending writes'. */
void rl_conn_close(struct rl_conn *c);

/* A virtual connection: one log's channel over a connection many logs
 * share (lib/host/mux.c). The owner sees an rl_conn like any other; the
 * calls below go to ops, and the implementation feeds it bytes and its
 * end. Its memory is the implementation's to free (rl_conn_free_virtual),
 * once the owner has closed it or been told of its end and the callback
 * has returned. */
struct rl_conn_vops {
    int (*write)(void *impl, const uv_buf_t *bufs, unsigned n, void (*cb)(void *arg, int status),
                 void *arg);
    size_t (*queued)(void *impl);
    void (*deadline)(void *impl, uint64_t ms);
    void (*close)(void *impl); /* the owner's close: no callback after it */
    int (*peer_cert_id)(void *impl, uint64_t *id);
    bool tls;
};
/* A ready virtual connection. RLOG_ENOMEM. */
int rl_conn_new_virtual(const struct rl_conn_vops *ops, void *impl, struct rl_conn **out);
/* Bytes for the owner, as a stream connection's reads are handed on. */
void rl_conn_virtual_data(struct rl_conn *c, const unsigned char *p, size_t n);
/* The carrier has heard nothing from the peer for a while: cbs.stale. */
void rl_conn_virtual_stale(struct rl_conn *c);
/* The channel ended (RL_CONN_*): closing from now on; `end` fires once. */
void rl_conn_virtual_end(struct rl_conn *c, int why, const char *msg);
bool rl_conn_closing(const struct rl_conn *c);
void rl_conn_free_virtual(struct rl_conn *c);

#endif
