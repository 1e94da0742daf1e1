/*
 * net — liblog's own peer transport: listen, connect and the handshake that
 * says who a peer is, over TCP, with mutual TLS 1.3 (lib/tls) or plain;
 * what it hands on is an authenticated connection (conn.h) with the peer's
 * id. Driven from the node's libuv loop; no threads of its own.
 *
 * A connection's life: the client connects and (TLS) completes the
 * handshake, checks that the server's certificate names the node it meant
 * to reach, and sends the hello (hello.h); the server reads exactly the
 * hello, within handshake_timeout_ms of the accept, and checks it against
 * the configuration (and the certificate). Only then does either side hand
 * the connection on. Anything else is closed, counted and logged (at most
 * 20 warnings in 10 s; the rest at debug level); it never reaches libraft.
 *
 * Bounds on the server side: inbound connections in total (handshaking or
 * handed on) and per source address; a connection over either cap is
 * closed at once. The owner reports each handed-on inbound connection it
 * closes (rl_net_forget), so the counts stay true.
 *
 * The simulator's seam: when rl_env supplies a transport (test/sim), the
 * same calls go to it instead, and its connections (already identified by
 * the world) become plain conns with no hello.
 *
 * Thread: the loop's thread only.
 */
#ifndef RL_NET_NET_H
#define RL_NET_NET_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "net/conn.h"

struct rl_tls_ctx;
struct rl_net;
struct rl_net_stats;

/* A transport shared by many logs (lib/host/mux.c): a net given one
 * listens and connects through it instead of with sockets of its own. Its
 * log is named by the net's cluster_hash. listen registers the net (an
 * error with a reason: another log of that name); connect opens a channel
 * to the host at address, calling cb exactly once, never from inside the
 * call unless it returns an error; unlisten (at rl_net_close) forgets the
 * net and fails its connects under way with UV_ECANCELED, now. Inbound
 * channels reach the net through rl_net_hand_on. */
struct rl_net_via {
    void *mux;
    bool tls;            /* the shared connections are TLS */
    unsigned tick_phase; /* ms: where in a tick period the host's logs tick */
    int (*listen)(void *mux, struct rl_net *net, char *err, size_t errlen);
    void (*unlisten)(void *mux, struct rl_net *net);
    int (*connect)(void *mux, struct rl_net *net, uint64_t id, const char *address,
                   void (*cb)(void *arg, struct rl_conn *conn, int status), void *arg);
    /* What the shared connections refused: added to each log's own. */
    void (*stats)(void *mux, struct rl_net_stats *st);
};

struct rl_net_config {
    uv_loop_t *loop;
    uint64_t self;              /* this node's id */
    const char *address;        /* "host:port" to listen on */
    uint64_t cluster_hash;      /* rl_hello_cluster_hash of the recorded name */
    /* The name was derived from a peers list, not given: members that
     * joined later derive another, so the hash is sent but not compared. */
    bool any_cluster;
    struct rl_tls_ctx *tls;     /* NULL: plain (insecure or loopback) */
    unsigned max_inbound;       /* inbound connections in total */
    unsigned max_per_address;   /* inbound connections from one IP address */
    unsigned handshake_timeout_ms;
    /* Membership: the configuration, or the node being added. */
    bool (*is_member)(void *arg, uint64_t id);
    /* An inbound connection from member `id`, handed on: the owner sets
     * its callbacks (rl_conn_set_cbs) before returning, and calls
     * rl_net_forget when it closes it. */
    void (*accept)(void *arg, uint64_t id, struct rl_conn *conn);
    void (*log)(void *arg, int level, const char *line);
    void *arg;
    const struct rl_net_via *via; /* NULL: sockets of its own */
    uint32_t hello_flags;         /* RL_HELLO_HOST for a host's own net, else 0 */
};

/* What the transport refused (since open). */
struct rl_net_stats {
    uint64_t refused_connections;  /* over the total or per-address cap */
    uint64_t rejected_handshakes;  /* bad hello, refused certificate, TLS failure */
    uint64_t timed_out_handshakes; /* no complete handshake in time */
};

/* Makes a transport (cfg copied; address too). 0, or RLOG_ENOMEM. */
int rl_net_new(const struct rl_net_config *cfg, struct rl_net **out);

/* Starts listening. 0, or a libuv error with a reason in err. */
int rl_net_listen(struct rl_net *net, char *err, size_t errlen);

/* Connects to node id at address. cb(arg, conn, 0) with a ready
 * connection (the callee sets its callbacks before returning), or
 * cb(arg, NULL, status) with a libuv error (UV_ECANCELED at close); fires
 * exactly once, never from inside this call, unless this returns an error. */
int rl_net_connect(struct rl_net *net, uint64_t id, const char *address,
                   void (*cb)(void *arg, struct rl_conn *conn, int status), void *arg);

/* The owner closed an inbound connection `accept` handed it. */
void rl_net_forget(struct rl_net *net, struct rl_conn *conn);

void rl_net_stats(const struct rl_net *net, struct rl_net_stats *st);

/* For a shared transport (struct rl_net_via): the log's key (its
 * cluster_hash), whether id may talk to it (a member, or the node being
 * added), an inbound channel from id handed to its owner, and a refused
 * one counted and logged (rate-limited) with why. */
uint64_t rl_net_key(const struct rl_net *net);
bool rl_net_member(const struct rl_net *net, uint64_t id);
void rl_net_hand_on(struct rl_net *net, uint64_t id, struct rl_conn *conn);
void rl_net_refuse(struct rl_net *net, uint64_t id, const char *why);

/* Stops listening, fails pending connects (UV_ECANCELED, now), closes
 * handshakes under way; cb(arg) once everything is released. The owner
 * closes the connections it was handed. */
void rl_net_close(struct rl_net *net, void (*cb)(void *arg), void *arg);

#endif
