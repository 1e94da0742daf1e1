/*
 * deadline — a timer for a deadline that moves on almost every event (a
 * connection's frame and idle deadlines are set again on every frame).
 * Restarting a libuv timer is a heap removal and insertion; with a timer
 * per connection or channel and a frame per heartbeat, that was 6 % of the
 * CPU of a host idling 900 logs (perf, bench_idle -m shared). Here a later
 * due time only records itself: the armed timer fires at the earlier one,
 * finds the deadline moved, and arms again for what is left. A sooner due
 * time re-arms at once, so a deadline never fires late; 0 disarms it.
 *
 * The owner closes `timer` itself (uv_close), after rl_deadline_stop.
 * `expired` gets the timer, whose data is the owner's pointer.
 * Thread: the loop's thread only.
 */
#ifndef RL_NET_DEADLINE_H
#define RL_NET_DEADLINE_H

#include <stdint.h>
#include <uv.h>

struct rl_deadline {
    uv_timer_t timer;  /* first: the timer callback finds the deadline by it */
    uint64_t due;      /* loop time the deadline passes; 0: none */
    uint64_t fires_at; /* loop time the armed timer fires; 0: not armed */
    uv_timer_cb expired;
};

void rl_deadline_init(uv_loop_t *loop, struct rl_deadline *d, uv_timer_cb expired, void *data);
/* Passes ms from now (0: never). */
void rl_deadline_set(struct rl_deadline *d, uint64_t ms);
void rl_deadline_stop(struct rl_deadline *d);

#endif
