/*
 * submit — the append calls: checks the records, copies them into an op,
 * takes a place among the appends in flight (waiting for room, or
 * RLOG_EAGAIN) and queues the op to the loop thread.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "node/api.h"
#include "node/config.h"

/* Copies the records into a new append op, after checking them. */
static int make_append(rlog *log, const struct rlog_buf *recs, unsigned n, struct rl_op **out)
{
    if (!log || !recs || n == 0)
        return rl_fail(RLOG_EINVAL, "append: no records");
    if (n > log->cfg.batch_max_records)
        return rl_fail(RLOG_ETOOBIG, "append: %u records in one call; batch_max_records is %u", n,
                    log->cfg.batch_max_records);
    size_t total = 0;
    for (unsigned i = 0; i < n; i++) {
        if (recs[i].len && !recs[i].base)
            return rl_fail(RLOG_EINVAL, "append: record %u has no buffer", i);
        if (recs[i].len > log->cfg.max_record_size)
            return rl_fail(RLOG_ETOOBIG, "append: record %u is %zu bytes; max_record_size is %u", i,
                        recs[i].len, log->cfg.max_record_size);
        total += recs[i].len;
    }
    if (total + 4u * n + 64 > log->cfg.batch_max_bytes)
        return rl_fail(RLOG_ETOOBIG, "append: %zu bytes in one call; batch_max_bytes is %u", total,
                    log->cfg.batch_max_bytes);
    pthread_mutex_lock(&log->mu);
    int role = log->pub_role, fatal = log->pub_fatal;
    uint64_t leader = log->pub_leader_id;
    char addr[64] = "";
    if (role != RLOG_ROLE_LEADER && !log->cfg.forward_appends) /* for the error only */
        snprintf(addr, sizeof addr, "%s", log->pub_leader_addr);
    pthread_mutex_unlock(&log->mu);
    if (fatal) /* before the role: a failed node is no one's to ask */
        return rl_fail_stopped(log, "append refused, nothing appended: this node failed stop: ");
    if (role != RLOG_ROLE_LEADER && !log->cfg.forward_appends) {
        if (leader)
            return rl_fail(RLOG_ENOTLEADER, "not the leader; leader is %" PRIu64 " at %s", leader, addr);
        return rl_fail(RLOG_ENOTLEADER, "not the leader; no leader is known yet");
    }
    struct rl_op *op = calloc(1, sizeof *op);
    if (op) {
        op->lens = malloc(n * sizeof *op->lens);
        op->data = malloc(total ? total : 1);
    }
    if (!op || !op->lens || !op->data) {
        if (op) {
            free(op->lens);
            free(op->data);
        }
        free(op);
        return rl_fail(RLOG_ENOMEM, "append: out of memory");
    }
    op->kind = RL_OP_APPEND;
    op->n = n;
    op->bytes = total;
    op->t0_us = rl_now_us(); /* append-to-commit latency (node/metrics.c) */
    size_t pos = 0;
    for (unsigned i = 0; i < n; i++) {
        op->lens[i] = recs[i].len;
        if (recs[i].len)
            memcpy(op->data + pos, recs[i].base, recs[i].len);
        pos += recs[i].len;
    }
    *out = op;
    return 0;
}

static void free_op(struct rl_op *op)
{
    free(op->lens);
    free(op->data);
    free(op->buf);
    free(op);
}

/* Takes a place for op among the appends in flight (backpressure): 0, or
 * RLOG_EAGAIN when full and !wait, or RLOG_ECLOSED if the handle closes
 * while waiting. A call alone over the byte bound is still taken, so no
 * append is refused forever. rl_op_finish gives the place back. */
static int take_place(rlog *log, struct rl_op *op, bool wait)
{
    uint64_t max_n = log->cfg.max_appends_in_flight ? log->cfg.max_appends_in_flight
                                                    : DEFAULT_APPENDS_IN_FLIGHT;
    uint64_t max_b = log->cfg.max_append_bytes_in_flight ? log->cfg.max_append_bytes_in_flight
                                                         : DEFAULT_APPEND_BYTES_IN_FLIGHT;
    pthread_mutex_lock(&log->mu);
    for (;;) {
        bool room = log->appends_in_flight < max_n &&
                    (log->appends_in_flight == 0 || log->append_bytes_in_flight + op->bytes <= max_b);
        if (room || !log->accepting || !wait)
            break;
        pthread_cond_wait(&log->room_cv, &log->mu);
    }
    int rv = 0;
    if (!log->accepting)
        rv = rl_fail(RLOG_ECLOSED, "append: the handle is closing");
    else if (log->appends_in_flight >= max_n)
        rv = rl_fail(RLOG_EAGAIN, "append refused, nothing appended: %lu appends in flight on this "
                  "handle (max_appends_in_flight %" PRIu64 "); retry once some have completed",
                  log->appends_in_flight, max_n);
    else if (log->appends_in_flight > 0 && log->append_bytes_in_flight + op->bytes > max_b)
        rv = rl_fail(RLOG_EAGAIN, "append refused, nothing appended: %" PRIu64 " bytes of appends in "
                  "flight on this handle, %zu more would pass max_append_bytes_in_flight %" PRIu64
                  "; retry once some have completed", log->append_bytes_in_flight, op->bytes, max_b);
    if (rv == 0) {
        log->appends_in_flight++;
        log->append_bytes_in_flight += op->bytes;
        op->counted = true;
    }
    pthread_mutex_unlock(&log->mu);
    return rv;
}

void rlog_append_opts_init(struct rlog_append_opts *o)
{
    if (o)
        *o = (struct rlog_append_opts){.expect_offset = RLOG_ANY_OFFSET};
}

/* An append op with opts applied, or an error (nothing appended). */
static int make_append_ex(rlog *log, const struct rlog_append_opts *o, const struct rlog_buf *recs,
                          unsigned n, struct rl_op **out)
{
    if (o && o->producer_id && o->sequence == 0)
        return rl_fail(RLOG_EINVAL, "append: producer %" PRIu64 " needs a sequence number >= 1",
                    o->producer_id);
    int rv = make_append(log, recs, n, out);
    if (rv != 0)
        return rv;
    struct rl_op *op = *out;
    if (o && o->expect_offset != RLOG_ANY_OFFSET) {
        op->expect = true;
        op->expect_offset = o->expect_offset;
    }
    if (o && o->producer_id) {
        op->producer_id = o->producer_id;
        op->seq = o->sequence;
        op->hash = rl_batch_hash_lens(op->data, op->bytes, op->lens, op->n);
    }
    return 0;
}

int rlog_append_ex_async(rlog *log, const struct rlog_append_opts *opts,
                         const struct rlog_buf *recs, unsigned n, rlog_append_cb cb, void *arg)
{
    struct rl_op *op;
    int rv = make_append_ex(log, opts, recs, n, &op);
    if (rv != 0)
        return rv;
    op->cb = cb;
    op->cb_arg = arg;
    if ((rv = take_place(log, op, false)) == 0 && (rv = rl_submit(log, op)) != 0)
        rl_give_back_place(log, op);
    if (rv != 0)
        free_op(op);
    return rv;
}

int rlog_append_ex(rlog *log, const struct rlog_append_opts *opts, const struct rlog_buf *recs,
                   unsigned n, uint64_t *first_offset)
{
    struct rl_op *op;
    int rv = make_append_ex(log, opts, recs, n, &op);
    if (rv != 0)
        return rv;
    if (rl_on_loop_thread(log))
        rv = rl_fail(RLOG_EINVAL, "blocking call from a liblog callback would deadlock");
    else if ((rv = take_place(log, op, true)) == 0 && (rv = rl_run_blocking(log, op)) != 0)
        rl_give_back_place(log, op); /* not submitted, or answered: a no-op then */
    if ((rv == 0 || rv == RLOG_ECONFLICT) && first_offset)
        *first_offset = op->first_offset;
    free_op(op);
    return rv;
}

int rlog_append_async(rlog *log, const struct rlog_buf *recs, unsigned n, rlog_append_cb cb,
                      void *arg)
{
    return rlog_append_ex_async(log, NULL, recs, n, cb, arg);
}

int rlog_append_batch(rlog *log, const struct rlog_buf *recs, unsigned n, uint64_t *first_offset)
{
    return rlog_append_ex(log, NULL, recs, n, first_offset);
}

int rlog_append(rlog *log, const void *rec, size_t len, uint64_t *offset)
{
    struct rlog_buf b = {.base = rec, .len = len};
    return rlog_append_batch(log, &b, 1, offset);
}
