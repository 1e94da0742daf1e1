/*
 * env — the three things a deterministic simulator must own and production
 * takes from the operating system: deferred (threadpool) work, the message
 * transport, and randomness. Time needs no seam here: every timer and clock
 * in liblog reads libuv's loop time, which the simulator controls from
 * outside.
 *
 * Production never sets rl_env, and every call below is then the plain libuv
 * / getrandom call; peers are reached through liblog's own transport
 * (lib/net: TCP, mutual TLS, the hello). The simulator (test/sim) sets it once, before
 * any node opens, and runs every node's loop on its own single thread.
 */
#ifndef RL_COMMON_ENV_H
#define RL_COMMON_ENV_H

#include <raft.h>
#include <raft/uv.h>
#include <stddef.h>
#include <uv.h>

struct rl_env {
    /* Runs work(req) and then after(req, 0) later, on the loop's thread. */
    int (*queue_work)(uv_loop_t *loop, uv_work_t *req, uv_work_cb work, uv_after_work_cb after);
    /* Fills t with the simulator's transport, which lib/net then uses
     * instead of TCP: listen, connect (streams of the loop's, the peer's
     * id told by the world: no hello, no TLS) and close. */
    int (*transport_init)(struct raft_uv_transport *t, uv_loop_t *loop);
    /* Releases what transport_init allocated, after t's close callback. */
    void (*transport_fini)(struct raft_uv_transport *t);
    /* One turn of the loop for a caller that must wait inside a call
     * (bootstrap), so deferred work must make progress now. */
    void (*block_turn)(uv_loop_t *loop);
    /* Random bytes for seeds and identities. */
    void (*random)(void *buf, size_t len);
};

extern const struct rl_env *rl_env;

int rl_queue_work(uv_loop_t *loop, uv_work_t *req, uv_work_cb work, uv_after_work_cb after);
/* The simulator's transport (RAFT_INVALID when rl_env supplies none). */
int rl_transport_init(struct raft_uv_transport *t, uv_loop_t *loop);
void rl_transport_fini(struct raft_uv_transport *t);
/* Waits for and runs at least one event of loop (uv_run UV_RUN_ONCE). */
void rl_block_turn(uv_loop_t *loop);
/* 0, or -1 if the system could not supply len random bytes. */
int rl_random(void *buf, size_t len);
/* The wall clock, microseconds since the Unix epoch (batch times): not
 * libuv's loop time, which is monotonic. The simulator owns it through
 * clock_gettime, like the loop time. */
uint64_t rl_unix_us(void);

#endif
