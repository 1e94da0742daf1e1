/* State shared by the files of lib/net. Nothing here is visible outside it.
 *
 * The files, bottom first: each calls only functions of the files listed
 * above it, never one below (test/check-layers checks it in make check):
 *
 *   hello.c    the hello's bytes and its checks (pure; hello.h)
 *   conn.c     a connection: plain or TLS over a libuv stream (conn.h)
 *   common.c   what the others share: the log lines (warnings
 *              rate-limited), "host:port" split, forgetting an inbound
 *              connection (rl_net_forget), releasing a closed net
 *   listen.c   the listener: caps, the server's side of the handshake
 *   connect.c  outbound connects: resolve, TCP, TLS, the client's checks
 *   seam.c     the simulator's transport behind the same calls
 *   net.c      the API (net.h): each call to the real transport or the seam
 */
#ifndef RL_NET_INTERNAL_H
#define RL_NET_INTERNAL_H

#include <raft.h>
#include <raft/uv.h>

#include "net/hello.h"
#include "net/net.h"

/* An inbound connection: handshaking, then handed on (and still counted). */
struct in_entry {
    struct rl_net *net;
    struct rl_conn *conn;
    char ip[64];
    bool handed;
    unsigned char hello[RL_HELLO_LEN];
    size_t got;
    struct in_entry *next, *prev;
};

/* An outbound connect under way (connect.c). */
struct out_req {
    struct rl_net *net;
    uint64_t id;
    char host[256], port[8];
    void (*cb)(void *arg, struct rl_conn *conn, int status);
    void *arg;
    uv_getaddrinfo_t gai;
    bool resolving;
    uv_tcp_t *tcp;           /* until the conn owns it */
    uv_connect_t creq;
    struct rl_conn *conn;
    uv_timer_t timer;
    bool done;               /* cb fired */
    int handles;             /* open handles of its own (timer, tcp) */
    struct raft_uv_connect seam_req; /* seam.c */
    struct out_req *next, *prev;
};

struct rl_net {
    struct rl_net_config cfg;
    char address[256];
    uint64_t hello_id;           /* what our hello claims */
    unsigned char hello[RL_HELLO_LEN];
    uv_tcp_t listener;
    uv_timer_t closer;           /* closed last: makes close asynchronous */
    bool listener_open;
    struct in_entry *ins;
    unsigned n_in;
    struct out_req *outs;
    int busy;                    /* handles and requests not yet called back */
    bool closing;
    void (*close_cb)(void *arg);
    void *close_arg;
    struct rl_net_stats stats;
    uint64_t warn_window;         /* start of the current warning window */
    unsigned warned;              /* warnings logged in it */
    /* The simulator's transport (seam.c), when rl_env supplies one. */
    bool seam;
    struct raft_uv_transport uvt;
};

/* common.c */
void rl_net__log(struct rl_net *net, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A warning, rate-limited; the rest at debug level. */
void rl_net__warn(struct rl_net *net, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Splits "host:port" ("[v6]:port" too). 0 or -1. */
int rl_net__split(const char *address, char *host, size_t hostlen, char *port, size_t portlen);
/* Releases the net once closing and nothing is outstanding. */
void rl_net__maybe_done(struct rl_net *net);

/* listen.c */
int rl_net__listen(struct rl_net *net, char *err, size_t errlen);
void rl_net__close_inbound(struct rl_net *net);

/* connect.c */
int rl_net__connect(struct rl_net *net, uint64_t id, const char *address,
                    void (*cb)(void *, struct rl_conn *, int), void *arg);
void rl_net__cancel_outbound(struct rl_net *net);

/* seam.c */
int rl_net__seam_init(struct rl_net *net);
int rl_net__seam_listen(struct rl_net *net, char *err, size_t errlen);
int rl_net__seam_connect(struct rl_net *net, uint64_t id, const char *address,
                         void (*cb)(void *, struct rl_conn *, int), void *arg);
void rl_net__seam_close(struct rl_net *net);

#endif
