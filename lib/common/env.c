#include "common/env.h"

#include <sys/random.h>
#include <time.h>

const struct rl_env *rl_env;

int rl_queue_work(uv_loop_t *loop, uv_work_t *req, uv_work_cb work, uv_after_work_cb after)
{
    if (rl_env)
        return rl_env->queue_work(loop, req, work, after);
    return uv_queue_work(loop, req, work, after);
}

int rl_transport_init(struct raft_uv_transport *t, uv_loop_t *loop)
{
    return rl_env && rl_env->transport_init ? rl_env->transport_init(t, loop) : RAFT_INVALID;
}

void rl_transport_fini(struct raft_uv_transport *t)
{
    if (rl_env && rl_env->transport_fini)
        rl_env->transport_fini(t);
}

void rl_block_turn(uv_loop_t *loop)
{
    if (rl_env)
        rl_env->block_turn(loop);
    else
        uv_run(loop, UV_RUN_ONCE);
}

int rl_random(void *buf, size_t len)
{
    if (rl_env) {
        rl_env->random(buf, len);
        return 0;
    }
    return getrandom(buf, len, 0) == (ssize_t)len ? 0 : -1;
}

uint64_t rl_unix_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}
