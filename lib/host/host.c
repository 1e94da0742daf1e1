/*
 * host — the shared loop thread: a wake-up that runs posted calls in order,
 * and a stop that waits for the loop to run out.
 */
#include "host/host.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "liblog.h"

struct rl_host {
    uv_loop_t loop;
    uv_async_t wake;
    uv_thread_t thread;
    pthread_mutex_t mu;
    struct rl_host_call *head, *tail; /* posted, not yet run */
    unsigned logs;
    bool stopping; /* no new log (rl_host_begin_stop) */
    bool ending;   /* the thread ends once its calls have run (rl_host_end_stop) */
};

static void wake_cb(uv_async_t *a)
{
    struct rl_host *h = a->data;
    pthread_mutex_lock(&h->mu);
    struct rl_host_call *calls = h->head;
    h->head = h->tail = NULL;
    bool stop = h->ending;
    pthread_mutex_unlock(&h->mu);
    while (calls) {
        struct rl_host_call *c = calls;
        calls = c->next;
        c->fn(c->arg); /* c may be gone from here on */
    }
    if (stop && !uv_is_closing((uv_handle_t *)&h->wake))
        uv_close((uv_handle_t *)&h->wake, NULL); /* the loop then runs out */
}

static void host_thread(void *arg)
{
    struct rl_host *h = arg;
    /* As a log's own thread does: a peer closing its socket must give
     * EPIPE here, not kill the process with SIGPIPE. */
    sigset_t pipe;
    sigemptyset(&pipe);
    sigaddset(&pipe, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe, NULL);
    uv_run(&h->loop, UV_RUN_DEFAULT);
}

int rl_host_start(struct rl_host **out, char *err, size_t errlen)
{
    *out = NULL;
    struct rl_host *h = calloc(1, sizeof *h);
    if (!h) {
        snprintf(err, errlen, "out of memory");
        return RLOG_ENOMEM;
    }
    int rv = uv_loop_init(&h->loop);
    if (rv != 0) {
        snprintf(err, errlen, "uv_loop_init: %s", uv_strerror(rv));
        free(h);
        return RLOG_EIO;
    }
    uv_async_init(&h->loop, &h->wake, wake_cb);
    h->wake.data = h;
    pthread_mutex_init(&h->mu, NULL);
    if (uv_thread_create(&h->thread, host_thread, h) != 0) {
        snprintf(err, errlen, "cannot start the host's loop thread");
        uv_close((uv_handle_t *)&h->wake, NULL);
        uv_run(&h->loop, UV_RUN_DEFAULT);
        uv_loop_close(&h->loop);
        pthread_mutex_destroy(&h->mu);
        free(h);
        return RLOG_ENOMEM;
    }
    *out = h;
    return 0;
}

uv_loop_t *rl_host_loop(struct rl_host *h)
{
    return &h->loop;
}

uv_thread_t rl_host_thread(const struct rl_host *h)
{
    return h->thread;
}

void rl_host_post(struct rl_host *h, struct rl_host_call *call)
{
    call->next = NULL;
    pthread_mutex_lock(&h->mu);
    if (h->tail)
        h->tail->next = call;
    else
        h->head = call;
    h->tail = call;
    pthread_mutex_unlock(&h->mu);
    uv_async_send(&h->wake);
}

bool rl_host_log_added(struct rl_host *h)
{
    pthread_mutex_lock(&h->mu);
    bool ok = !h->stopping;
    if (ok)
        h->logs++;
    pthread_mutex_unlock(&h->mu);
    return ok;
}

unsigned rl_host_logs(struct rl_host *h)
{
    pthread_mutex_lock(&h->mu);
    unsigned n = h->logs;
    pthread_mutex_unlock(&h->mu);
    return n;
}

bool rl_host_is_self(const struct rl_host *h)
{
    uv_thread_t self = uv_thread_self();
    return uv_thread_equal(&self, &h->thread);
}

int rl_host_begin_stop(struct rl_host *h)
{
    if (rl_host_is_self(h))
        return RLOG_EINVAL;
    pthread_mutex_lock(&h->mu);
    bool busy = h->logs > 0;
    if (!busy)
        h->stopping = true;
    pthread_mutex_unlock(&h->mu);
    return busy ? RLOG_EBUSY : 0;
}

void rl_host_cancel_stop(struct rl_host *h)
{
    pthread_mutex_lock(&h->mu);
    h->stopping = false;
    pthread_mutex_unlock(&h->mu);
}

void rl_host_log_removed(struct rl_host *h)
{
    pthread_mutex_lock(&h->mu);
    h->logs--;
    pthread_mutex_unlock(&h->mu);
}

int rl_host_stop(struct rl_host *h)
{
    int rv = rl_host_begin_stop(h);
    if (rv == 0)
        rl_host_end_stop(h);
    return rv;
}

void rl_host_end_stop(struct rl_host *h)
{
    pthread_mutex_lock(&h->mu);
    h->ending = true;
    pthread_mutex_unlock(&h->mu);
    uv_async_send(&h->wake);
    uv_thread_join(&h->thread);
    /* Every log closed its own handles before its close returned. */
    uv_loop_close(&h->loop);
    pthread_mutex_destroy(&h->mu);
    free(h);
}
