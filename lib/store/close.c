/*
 * close — the end of a store's life: once rl_store_close() was called and
 * the writer has no job left (writer.c, rl_writer_finish_close_if_idle),
 * the requests still queued are cancelled, the runner handle closed, and
 * the store freed (rl_store_free, also what a failed open does).
 */
#include <stdlib.h>

#include "common/env.h"
#include "store/internal.h"

void rl_store_free(struct rl_store *s)
{
    for (size_t i = 0; i < s->nsegs; i++)
        rl_segment_free(s->segs[i]);
    rl_segment_free(s->spare);
    free(s->segs);
    free(s->stage);
    free(s->damage);
    rl_dir_close(s);
    pthread_mutex_destroy(&s->meta_mu);
    pthread_mutex_destroy(&s->meta_pub_mu);
    pthread_mutex_destroy(&s->segs_mu);
    free(s->dir);
    free(s);
}

static void close_noop(uv_work_t *w)
{
    (void)w;
}

static void runner_closed(uv_handle_t *h)
{
    struct rl_store *s = h->data;
    void (*cb)(void *) = s->close_cb;
    void *arg = s->close_arg;
    rl_store_free(s);
    if (cb)
        cb(arg);
}

static void close_after(uv_work_t *w, int status)
{
    struct rl_store *s = w->data;
    (void)status;
    void (*cb)(void *) = s->close_cb;
    void *arg = s->close_arg;
    struct rl_store_req *r;
    while ((r = s->head) != NULL) {
        s->head = r->next;
        free(r->headers);
        r->headers = NULL;
        if (r->cb)
            r->cb(r, RLOG_ECANCELED);
    }
    if (s->runner_live) {
        s->runner_live = false;
        uv_close((uv_handle_t *)&s->runner, runner_closed);
        return;
    }
    rl_store_free(s);
    if (cb)
        cb(arg);
}

void rl_store_finish_close(struct rl_store *s)
{
    s->close_queued = true;
    /* Through the loop, so the close callback never runs inside
     * rl_store_close() itself. */
    s->close_work.data = s;
    if (rl_queue_work(s->loop, &s->close_work, close_noop, close_after) != 0)
        abort();
}
