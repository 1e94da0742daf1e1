#include "net/deadline.h"

static void arm(struct rl_deadline *d, uint64_t now);

static void fire(uv_timer_t *t)
{
    struct rl_deadline *d = (struct rl_deadline *)t;
    d->fires_at = 0;
    if (d->due == 0)
        return;
    uint64_t now = uv_now(t->loop);
    if (now < d->due) { /* moved on since it was armed */
        arm(d, now);
        return;
    }
    d->due = 0;
    d->expired(t);
}

static void arm(struct rl_deadline *d, uint64_t now)
{
    d->fires_at = d->due;
    uv_timer_start(&d->timer, fire, d->due - now, 0);
}

void rl_deadline_init(uv_loop_t *loop, struct rl_deadline *d, uv_timer_cb expired, void *data)
{
    uv_timer_init(loop, &d->timer);
    d->timer.data = data;
    d->due = d->fires_at = 0;
    d->expired = expired;
}

void rl_deadline_set(struct rl_deadline *d, uint64_t ms)
{
    if (ms == 0) {
        d->due = 0; /* an armed timer finds nothing due */
        return;
    }
    uint64_t now = uv_now(d->timer.loop);
    d->due = now + ms;
    if (d->fires_at == 0 || d->fires_at > d->due)
        arm(d, now);
}

void rl_deadline_stop(struct rl_deadline *d)
{
    d->due = d->fires_at = 0;
    uv_timer_stop(&d->timer);
}
