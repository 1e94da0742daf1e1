/* liblog's peer transport (lib/net): the hello refuses every bad field with
 * its own reason; two transports on one loop over 127.0.0.1 connect in
 * plain mode and with mutual TLS, and hand over a connection that carries
 * bytes; a TLS server refuses a client without TLS, a certificate from
 * another CA, and a valid certificate whose hello claims another id, and a
 * client refuses a server whose certificate names another node; none of
 * those reaches the owner. The caps refuse connections over the total and
 * per-address limits, and a connection that sends no hello is closed after
 * the handshake timeout. Certificates come from examples/mkcerts.sh at
 * suite setup (the tests run from the source tree, as `make check` does). */
#include <arpa/inet.h>
#include <check.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/ports.h"
#include "liblog.h"
#include "net/hello.h"
#include "net/net.h"
#include "tls/tls.h"

static char dir[256];

static void suite_setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/liblog-test-net.XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        exit(1);
    }
    char cmd[1024];
    /* a/: the cluster's CA, nodes 1..3; b/: an unrelated CA, nodes 1..2. */
    snprintf(cmd, sizeof cmd,
             "examples/mkcerts.sh %s/a c1 1 2 3 >/dev/null && "
             "examples/mkcerts.sh %s/b c1 1 2 >/dev/null", dir, dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "test_net: %s failed (run from the source tree)\n", cmd);
        exit(1);
    }
}

static void suite_teardown(void)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (dir[0] && system(cmd) != 0)
        fprintf(stderr, "test_net: could not remove %s\n", dir);
}

/* ---- the hello ---------------------------------------------------------------- */

static bool members_1_to_3(void *arg, uint64_t id)
{
    (void)arg;
    return id >= 1 && id <= 3;
}

static const char *check_hello(const unsigned char *in, uint64_t cert_id)
{
    struct rl_hello_expect x = {.self = 1, .cluster_hash = rl_hello_cluster_hash("c1"),
                                .cert_id = cert_id, .is_member = members_1_to_3};
    struct rl_hello h;
    const char *why = NULL;
    int rv = rl_hello_check(in, &x, &h, &why);
    ck_assert(rv == 0 ? why == NULL : why != NULL);
    return rv == 0 ? NULL : why;
}

START_TEST(test_hello_fields)
{
    unsigned char b[RL_HELLO_LEN];
    uint64_t c1 = rl_hello_cluster_hash("c1");
    rl_hello_encode(b, 2, c1);
    ck_assert_int_eq(memcmp(b, "rlognet1\1\0\0\0\0\0\0\0\2\0\0\0\0\0\0\0", 24), 0);
    ck_assert_ptr_null(check_hello(b, 0));
    ck_assert_ptr_null(check_hello(b, 2));

    struct { int at; unsigned char v; const char *why; } bad[] = {
        {0, 'R', "magic"}, {7, '2', "magic"}, {8, 2, "version"}, {11, 1, "version"},
        {12, 1, "shared transport"}, {12, 2, "flags"}, {15, 0x80, "flags"},
    };
    for (unsigned i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        unsigned char m[RL_HELLO_LEN];
        memcpy(m, b, sizeof m);
        m[bad[i].at] = bad[i].v;
        const char *why = check_hello(m, 0);
        ck_assert_msg(why && strstr(why, bad[i].why), "byte %d: %s", bad[i].at, why);
    }
    rl_hello_encode(b, 0, c1);
    ck_assert_ptr_nonnull(strstr(check_hello(b, 0), "no id or this node's own"));
    rl_hello_encode(b, 1, c1);
    ck_assert_ptr_nonnull(strstr(check_hello(b, 0), "no id or this node's own"));
    rl_hello_encode(b, 4, c1);
    ck_assert_ptr_nonnull(strstr(check_hello(b, 0), "not a member"));
    rl_hello_encode(b, 2, c1);
    ck_assert_ptr_nonnull(strstr(check_hello(b, 3), "other than its certificate"));
    rl_hello_encode(b, 2, rl_hello_cluster_hash("c2"));
    ck_assert_ptr_nonnull(strstr(check_hello(b, 0), "another cluster"));
    /* A host's hello (RL_HELLO_HOST) reaches only a host, a node's only a
     * node: each refusal names the mismatch. */
    rl_hello_encode_flags(b, 2, c1, RL_HELLO_HOST);
    ck_assert_int_eq(b[12], 1);
    ck_assert_ptr_nonnull(strstr(check_hello(b, 0), "every node of a cluster must use the same"));
    struct rl_hello_expect host = {.self = 1, .flags = RL_HELLO_HOST,
                                   .cluster_hash = c1, .is_member = members_1_to_3};
    struct rl_hello h;
    const char *why = NULL;
    ck_assert_int_eq(rl_hello_check(b, &host, &h, &why), 0);
    rl_hello_encode(b, 2, c1);
    ck_assert_int_eq(rl_hello_check(b, &host, &h, &why), -1);
    ck_assert_ptr_nonnull(strstr(why, "this address is a host's shared one"));
}
END_TEST

/* ---- two transports on one loop --------------------------------------------- */

struct side {
    struct rl_net *net;
    struct rl_tls_ctx *tls;
    uint64_t accepted_id;
    struct rl_conn *in;            /* the last inbound conn handed over */
    unsigned accepts;
    char got[64];
    size_t n_got;
    bool closed;
};

struct client {
    struct rl_conn *conn;
    int status;
    bool done;
};

static uv_loop_t loop;

static size_t side_data(void *arg, const unsigned char *p, size_t n)
{
    struct side *s = arg;
    size_t k = n < sizeof s->got - s->n_got ? n : sizeof s->got - s->n_got;
    memcpy(s->got + s->n_got, p, k);
    s->n_got += k;
    return n;
}

static void side_end(void *arg, int why, const char *msg)
{
    struct side *s = arg;
    (void)why;
    (void)msg;
    rl_net_forget(s->net, s->in);
    s->in = NULL;
}

static void side_accept(void *arg, uint64_t id, struct rl_conn *conn)
{
    struct side *s = arg;
    s->accepts++;
    s->accepted_id = id;
    s->in = conn;
    struct rl_conn_cbs cbs = {.data = side_data, .end = side_end, .arg = s};
    rl_conn_set_cbs(conn, &cbs);
}

static size_t ignore(void *arg, const unsigned char *p, size_t n)
{
    (void)arg;
    (void)p;
    return n;
}

static void client_end(void *arg, int why, const char *msg)
{
    struct client *c = arg;
    (void)why;
    (void)msg;
    c->conn = NULL;
}

static void connected(void *arg, struct rl_conn *conn, int status)
{
    struct client *c = arg;
    c->done = true;
    c->status = status;
    c->conn = conn;
    if (conn) {
        struct rl_conn_cbs cbs = {.data = ignore, .end = client_end, .arg = c};
        rl_conn_set_cbs(conn, &cbs);
    }
}

static void side_closed(void *arg)
{
    ((struct side *)arg)->closed = true;
}

static int free_port(void)
{
    return th_free_port(25000);
}

static struct rl_tls_ctx *tls_ctx(const char *ca, const char *cert)
{
    char caf[512], crt[512], key[512], err[256] = "";
    snprintf(caf, sizeof caf, "%s/%s/ca.crt", dir, ca);
    snprintf(crt, sizeof crt, "%s/%s.crt", dir, cert);
    snprintf(key, sizeof key, "%s/%s.key", dir, cert);
    struct rl_tls_config cfg = {.ca_file = caf, .cert_file = crt, .key_file = key};
    struct rl_tls_ctx *c = NULL;
    ck_assert_msg(rl_tls_ctx_new(&cfg, &c, err, sizeof err) == 0, "%s", err);
    return c;
}

static char address[64];

static void side_open(struct side *s, uint64_t self, struct rl_tls_ctx *tls, unsigned max_in,
                      unsigned per_addr, unsigned hs_ms)
{
    memset(s, 0, sizeof *s);
    s->tls = tls;
    struct rl_net_config cfg = {.loop = &loop, .self = self, .address = address,
                                .cluster_hash = rl_hello_cluster_hash("c1"), .tls = tls,
                                .max_inbound = max_in, .max_per_address = per_addr,
                                .handshake_timeout_ms = hs_ms, .is_member = members_1_to_3,
                                .accept = side_accept, .arg = s};
    ck_assert_int_eq(rl_net_new(&cfg, &s->net), 0);
}

static void side_close(struct side *s)
{
    if (s->in) {
        rl_conn_close(s->in);
        rl_net_forget(s->net, s->in);
        s->in = NULL;
    }
    rl_net_close(s->net, side_closed, s);
}

static void tick(uv_timer_t *t)
{
    (void)t;
}

/* Runs the loop until *flag or ms pass (a bound, not a timing assertion). */
static void run_until(bool *flag, unsigned ms)
{
    uv_update_time(&loop);
    uint64_t end = uv_now(&loop) + ms;
    uv_timer_t t;
    uv_timer_init(&loop, &t);
    uv_timer_start(&t, tick, 10, 10);
    while (!(flag && *flag) && uv_now(&loop) < end)
        uv_run(&loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
}

static void setup(void)
{
    ck_assert_int_eq(uv_loop_init(&loop), 0);
    snprintf(address, sizeof address, "127.0.0.1:%d", free_port());
}

static void teardown_sides(struct side *server, struct side *client, struct client *c)
{
    if (c && c->conn)
        rl_conn_close(c->conn);
    side_close(server);
    side_close(client);
    run_until(&client->closed, 5000);
    run_until(&server->closed, 5000);
    ck_assert(server->closed && client->closed);
    rl_tls_ctx_free(server->tls);
    rl_tls_ctx_free(client->tls);
    uv_run(&loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(uv_loop_close(&loop), 0);
}

/* Client node `self` with ctls connects to node `target` (the server: node 1
 * with stls), then sends 6 bytes if it could. */
static void connect_pair(struct side *server, struct side *client, struct client *c,
                         struct rl_tls_ctx *stls, uint64_t self, struct rl_tls_ctx *ctls,
                         uint64_t target)
{
    setup();
    side_open(server, 1, stls, 64, 8, 5000);
    side_open(client, self, ctls, 64, 8, 5000);
    char err[128];
    ck_assert_msg(rl_net_listen(server->net, err, sizeof err) == 0, "%s", err);
    memset(c, 0, sizeof *c);
    ck_assert_int_eq(rl_net_connect(client->net, target, address, connected, c), 0);
    run_until(&c->done, 5000);
    ck_assert(c->done);
    if (c->conn) { /* send bytes: they arrive only if the server took us */
        static char msg[] = "frames";
        uv_buf_t b = uv_buf_init(msg, 6);
        rl_conn_write(c->conn, &b, 1, NULL, NULL);
    }
    bool never = false;
    run_until(&never, 300);
}

static void expect_accepted(struct side *server, struct client *c, uint64_t id)
{
    ck_assert_int_eq(c->status, 0);
    ck_assert_int_eq(server->accepts, 1);
    ck_assert_uint_eq(server->accepted_id, id);
    ck_assert_uint_eq(server->n_got, 6);
    ck_assert_int_eq(memcmp(server->got, "frames", 6), 0);
}

static void expect_refused(struct side *server)
{
    struct rl_net_stats st;
    rl_net_stats(server->net, &st);
    ck_assert_int_eq(server->accepts, 0);
    ck_assert_uint_eq(server->n_got, 0);
    ck_assert_uint_ge(st.rejected_handshakes, 1);
}

START_TEST(test_plain)
{
    struct side s, k;
    struct client c;
    connect_pair(&s, &k, &c, NULL, 2, NULL, 1);
    expect_accepted(&s, &c, 2);
    teardown_sides(&s, &k, &c);
}
END_TEST

START_TEST(test_tls_good)
{
    struct side s, k;
    struct client c;
    connect_pair(&s, &k, &c, tls_ctx("a", "a/node-1"), 2, tls_ctx("a", "a/node-2"), 1);
    expect_accepted(&s, &c, 2);
    ck_assert(rl_conn_is_tls(s.in));
    teardown_sides(&s, &k, &c);
}
END_TEST

START_TEST(test_tls_client_without_tls)
{
    struct side s, k;
    struct client c;
    connect_pair(&s, &k, &c, tls_ctx("a", "a/node-1"), 2, NULL, 1);
    expect_refused(&s);
    teardown_sides(&s, &k, &c);
}
END_TEST

START_TEST(test_tls_other_ca)
{
    struct side s, k;
    struct client c;
    /* Node 2's certificate from CA b, trusting CA a: the server refuses it. */
    connect_pair(&s, &k, &c, tls_ctx("a", "a/node-1"), 2, tls_ctx("a", "b/node-2"), 1);
    expect_refused(&s);
    teardown_sides(&s, &k, &c);
}
END_TEST

START_TEST(test_tls_claims_other_id)
{
    struct side s, k;
    struct client c;
    /* A valid certificate of node 3 whose hello claims node 2. */
    connect_pair(&s, &k, &c, tls_ctx("a", "a/node-1"), 2, tls_ctx("a", "a/node-3"), 1);
    expect_refused(&s);
    teardown_sides(&s, &k, &c);
}
END_TEST

START_TEST(test_tls_server_is_other_node)
{
    struct side s, k;
    struct client c;
    /* The client means node 1; the server's certificate is node 3's. */
    connect_pair(&s, &k, &c, tls_ctx("a", "a/node-3"), 2, tls_ctx("a", "a/node-2"), 1);
    ck_assert_int_ne(c.status, 0);
    ck_assert_int_eq(s.accepts, 0);
    struct rl_net_stats st;
    rl_net_stats(k.net, &st);
    ck_assert_uint_eq(st.rejected_handshakes, 1);
    teardown_sides(&s, &k, &c);
}
END_TEST

static int raw_connect(void)
{
    int port = atoi(strrchr(address, ':') + 1);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert(connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0);
    return fd;
}

/* A blocking OpenSSL client without a certificate, on its own thread (the
 * test's thread runs the server's loop): its TLS 1.3 handshake completes on
 * its side, it sends a valid hello claiming node 2, and the server refuses
 * it for want of a certificate. */
struct nocert {
    int port;
    atomic_bool done;
    int read_rv; /* SSL_read's result: <= 0, the server's alert or close */
};

static void *nocert_client(void *arg)
{
    struct nocert *n = arg;
    char caf[512];
    snprintf(caf, sizeof caf, "%s/a/ca.crt", dir);
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_load_verify_file(ctx, caf);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)n->port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    n->read_rv = 1;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0) {
        SSL *ssl = SSL_new(ctx);
        SSL_set_fd(ssl, fd);
        if (SSL_connect(ssl) == 1) {
            unsigned char hello[RL_HELLO_LEN];
            rl_hello_encode(hello, 2, rl_hello_cluster_hash("c1"));
            SSL_write(ssl, hello, sizeof hello);
            char b[16];
            n->read_rv = SSL_read(ssl, b, sizeof b);
        } else {
            n->read_rv = 0;
        }
        SSL_free(ssl);
    }
    close(fd);
    SSL_CTX_free(ctx);
    ERR_clear_error();
    atomic_store(&n->done, true);
    return NULL;
}

START_TEST(test_tls_client_without_cert)
{
    struct side s, k;
    setup();
    side_open(&s, 1, tls_ctx("a", "a/node-1"), 64, 8, 5000);
    side_open(&k, 2, NULL, 64, 8, 5000);
    char err[128];
    ck_assert_msg(rl_net_listen(s.net, err, sizeof err) == 0, "%s", err);
    struct nocert n = {.port = atoi(strrchr(address, ':') + 1)};
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, nocert_client, &n), 0);
    for (int i = 0; i < 500 && !atomic_load(&n.done); i++) {
        bool never = false;
        run_until(&never, 10);
    }
    pthread_join(t, NULL);
    ck_assert(atomic_load(&n.done));
    ck_assert_int_le(n.read_rv, 0);
    expect_refused(&s);
    teardown_sides(&s, &k, NULL);
}
END_TEST

START_TEST(test_caps_and_timeout)
{
    struct side s, k;
    setup();
    side_open(&s, 1, NULL, 3, 2, 200);
    side_open(&k, 2, NULL, 64, 8, 5000);
    char err[128];
    ck_assert_msg(rl_net_listen(s.net, err, sizeof err) == 0, "%s", err);
    int fds[4];
    for (int i = 0; i < 4; i++)
        fds[i] = raw_connect();
    bool never = false;
    run_until(&never, 100);
    struct rl_net_stats st;
    rl_net_stats(s.net, &st);
    /* Two from 127.0.0.1 fit the per-address cap; two more are refused. */
    ck_assert_uint_eq(st.refused_connections, 2);
    ck_assert_uint_eq(st.timed_out_handshakes, 0);
    run_until(&never, 600);
    rl_net_stats(s.net, &st);
    ck_assert_uint_eq(st.timed_out_handshakes, 2);
    /* Each socket sees its close (EOF or reset), none stays open. */
    for (int i = 0; i < 4; i++) {
        char b;
        ck_assert(read(fds[i], &b, 1) <= 0);
        close(fds[i]);
    }
    teardown_sides(&s, &k, NULL);
}
END_TEST

int main(void)
{
    Suite *su = suite_create("net");
    TCase *tc = tcase_create("hello");
    tcase_add_test(tc, test_hello_fields);
    suite_add_tcase(su, tc);
    tc = tcase_create("transport");
    tcase_add_unchecked_fixture(tc, suite_setup, suite_teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_plain);
    tcase_add_test(tc, test_tls_good);
    tcase_add_test(tc, test_tls_client_without_tls);
    tcase_add_test(tc, test_tls_client_without_cert);
    tcase_add_test(tc, test_tls_other_ca);
    tcase_add_test(tc, test_tls_claims_other_id);
    tcase_add_test(tc, test_tls_server_is_other_node);
    tcase_add_test(tc, test_caps_and_timeout);
    suite_add_tcase(su, tc);
    SRunner *sr = srunner_create(su);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
