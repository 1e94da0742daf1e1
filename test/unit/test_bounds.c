/* The bound on held RequestVote/TimeoutNow messages (lib/raftio/hold.c):
 * at held_max the oldest is dropped and counted, the newest are delivered
 * in arrival order once appends are done, and nothing leaks (ASan), not
 * even when a close frees what is still held. */
#include <check.h>
#include <stdlib.h>

#include "raftio/internal.h"

static uint64_t delivered[16];
static unsigned n_delivered;

static void recv_cb(struct raft_io *rio, struct raft_message *msg)
{
    (void)rio;
    ck_assert_uint_lt(n_delivered, 16);
    delivered[n_delivered++] = msg->request_vote.term;
}

static struct io *io_with(unsigned held_max, struct raft_io *rio)
{
    struct io *io = calloc(1, sizeof *io);
    ck_assert_ptr_nonnull(io);
    io->rio = rio;
    rio->impl = io;
    io->recv_cb = recv_cb;
    io->appends = 1; /* elections wait */
    rl_io_set_bounds(rio, &(struct rl_io_bounds){.fetch_serve_max = 1,
                                                 .fetch_serve_bytes = 1u << 20,
                                                 .held_max = held_max});
    n_delivered = 0;
    return io;
}

/* A RequestVote of term `term` from node 2, its body raft_malloc'd as a
 * decoded frame's is (and not owned by the message). */
static void hold_vote(struct io *io, uint64_t term)
{
    struct raft_message m = {.type = RAFT_IO_REQUEST_VOTE, .server_id = 2};
    m.request_vote.term = term;
    m.request_vote.candidate_id = 2;
    void *body = raft_malloc(48);
    ck_assert_ptr_nonnull(body);
    rl_io__hold(io, &m, body, false, "127.0.0.1:9002");
}

START_TEST(test_full_queue_drops_the_oldest)
{
    struct raft_io rio = {0};
    struct io *io = io_with(3, &rio);
    for (uint64_t t = 1; t <= 5; t++)
        hold_vote(io, t);
    struct rl_io_bound_stats st;
    rl_io_bound_stats(&rio, &st);
    ck_assert_uint_eq(st.held_dropped, 2);
    ck_assert_uint_eq(io->harden.held, 3);
    ck_assert_uint_eq(n_delivered, 0);
    io->appends = 0;
    rl_io__release_held(io);
    ck_assert_uint_eq(n_delivered, 3);
    ck_assert_uint_eq(delivered[0], 3);
    ck_assert_uint_eq(delivered[1], 4);
    ck_assert_uint_eq(delivered[2], 5);
    ck_assert_ptr_null(io->held_head);
    ck_assert_uint_eq(io->harden.held, 0);
    free(io);
}
END_TEST

START_TEST(test_below_the_bound_nothing_is_dropped)
{
    struct raft_io rio = {0};
    struct io *io = io_with(64, &rio);
    for (uint64_t t = 1; t <= 10; t++)
        hold_vote(io, t);
    struct rl_io_bound_stats st;
    rl_io_bound_stats(&rio, &st);
    ck_assert_uint_eq(st.held_dropped, 0);
    io->appends = 0;
    rl_io__release_held(io);
    ck_assert_uint_eq(n_delivered, 10);
    for (unsigned i = 0; i < 10; i++)
        ck_assert_uint_eq(delivered[i], i + 1);
    free(io);
}
END_TEST

START_TEST(test_zero_bound_holds_one)
{
    struct raft_io rio = {0};
    struct io *io = io_with(0, &rio);
    hold_vote(io, 7);
    hold_vote(io, 8);
    ck_assert_uint_eq(io->harden.held, 1);
    io->appends = 0;
    rl_io__release_held(io);
    ck_assert_uint_eq(n_delivered, 1);
    ck_assert_uint_eq(delivered[0], 8);
    free(io);
}
END_TEST

/* A close frees held messages as io.c does (release, then the struct): a
 * held RequestVote keeps no frame body that could leak there (ASan). */
START_TEST(test_held_messages_keep_no_body)
{
    struct raft_io rio = {0};
    struct io *io = io_with(8, &rio);
    hold_vote(io, 1);
    hold_vote(io, 2);
    while (io->held_head) {
        struct held *h = io->held_head;
        ck_assert_ptr_null(h->body);
        io->held_head = h->next;
        rl_wire_message_release(&h->msg, h->body, h->owned);
        free(h);
    }
    free(io);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("bounds");
    TCase *tc = tcase_create("held");
    tcase_add_test(tc, test_full_queue_drops_the_oldest);
    tcase_add_test(tc, test_below_the_bound_nothing_is_dropped);
    tcase_add_test(tc, test_zero_bound_holds_one);
    tcase_add_test(tc, test_held_messages_keep_no_body);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
