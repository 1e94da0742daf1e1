/*
 * mux — one connection per peer host for every log on this host (issue
 * 16, step 3). The host listens on one address and keeps one outbound
 * connection per peer host (TLS and the hello as lib/net does for a log:
 * the host's certificate names the host's id); each log's messages travel
 * in a channel of its own on it, and each channel is an rl_conn to the
 * log's transport (lib/raftio), which does not know the difference.
 *
 * On the connection, records:
 *
 *   offset  size  field
 *   0       4     type, u32 LE: 1 OPEN, 2 DATA, 3 CLOSE (of key 0: a keepalive)
 *   4       4     length of the payload that follows, u32 LE (0 but DATA)
 *   8       8     the log's key, u64 LE: XXH64 of its cluster name
 *   16      4     XXH32 (seed 0) of bytes 0..16
 *
 * A DATA payload is the log's own frames (checksummed there), at most
 * RL_MUX_MAX_RECORD bytes, handed to the channel as it arrives (nothing
 * is buffered here). Channels are opened by the side that connected, one
 * per log key on a connection; an OPEN reaches a log only if the
 * connection's host is a member of that log's configuration (or the node
 * being added): else CLOSE goes back and the log counts a refused
 * handshake. An OPEN on an open key, a bad check or type, or a length over
 * the cap ends the connection, and with it its channels.
 *
 * Writes queued in one loop turn (every log's heartbeats after a tick, say)
 * go out as one write per connection, just before the loop polls.
 *
 * Keepalives: an outbound connection that carried nothing for 100 ms gets
 * a CLOSE of key 0 (no log's key: a no-op for the peer, of this version
 * or 0.4.2). An inbound one that brought nothing for 500 ms tells its
 * channels (rl_conn_cbs.stale): their logs may be quiet, waiting on that
 * host (lib/node/quiet.c), and run their clocks again.
 *
 * Bounds: RL_MUX_MAX_QUEUED bytes queued per connection (control records
 * past it are dropped, channel writes fail); an inbound connection with no
 * byte for 60 s is closed; the host's rl_net caps inbound connections in
 * all and per address, and bounds the handshake.
 *
 * Thread: the host's loop thread only (a host with an address has one).
 */
#ifndef RL_HOST_MUX_H
#define RL_HOST_MUX_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "net/net.h"

#define RL_MUX_MAX_RECORD (64u << 20)
/* Bytes queued on one connection, all its channels together: beyond it a
 * channel's write fails (UV_ENOBUFS) and its log treats the peer as slow. */
#define RL_MUX_MAX_QUEUED (256u << 20)

struct rl_mux;
struct rl_tls_ctx;

struct rl_mux_config {
    uv_loop_t *loop;
    uint64_t self;          /* the host's id: its id in every log */
    const char *address;    /* "host:port" to listen on */
    uint64_t cluster_hash;  /* of the hosts' cluster name (the hello's) */
    struct rl_tls_ctx *tls; /* NULL: plain */
    unsigned max_inbound, max_per_address, handshake_timeout_ms;
    void (*log)(void *arg, int level, const char *line);
    void *log_arg;
};

/* Listens. 0, or RLOG_ENOMEM / RLOG_EIO with err filled. */
int rl_mux_start(const struct rl_mux_config *cfg, struct rl_mux **out, char *err, size_t errlen);
/* What a log's transport is given to use it (rl_net_config.via). */
const struct rl_net_via *rl_mux_via(struct rl_mux *m);
/* Whether writes are queued for the loop's next turn (a caller that steps
 * the loop itself, the simulator, turns it again before waiting). */
bool rl_mux_flush_due(const struct rl_mux *m);
/* Closes the listener and every connection; cb(arg) once all is released.
 * The logs closed first. */
void rl_mux_close(struct rl_mux *m, void (*cb)(void *arg), void *arg);

#endif
