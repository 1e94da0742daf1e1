/*
 * nemesis_node — the test host of the nemesis test (test/nemesis/run.sh).
 *
 * One binary that embeds liblog, with four commands:
 *
 *   nemesis_node node ...      exactly `rlogctl node` (rlogctl's own code,
 *                              linked from build/examples/librlogctl.a: all
 *                              of examples/rlogctl/ but main.c), plus a
 *                              loopback port remap of bind(2): with
 *                              NEMESIS_BIND_MAP=Q:P in the environment, a
 *                              bind to port Q binds port P instead. The node advertises (and its peers
 *                              dial) 127.0.0.1:Q, where the nemesis proxy
 *                              listens and forwards to the node's real port P.
 *                              liblog requires config.address to equal the
 *                              node's own peer entry and listens on it, so
 *                              without a library `listen_address` this remap
 *                              is what puts a proxy in front of a node.
 *   nemesis_node client ...    bounded client load: appends unique records
 *                              through whichever node leads, reads from any
 *                              node, and writes one history line per event.
 *   nemesis_node status ...    one line of a node's status (for the driver).
 *   nemesis_node dump ...      a node's whole committed log, one line per
 *                              record (offset, hex bytes), for the checker.
 *
 * The client, status and dump commands speak rlogctl's control protocol to
 * the nodes' control sockets, reusing its code.
 */
#define _GNU_SOURCE 1

#include "rlogctl.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/syscall.h>

/* ---- bind(2) remap --------------------------------------------------------
 * Defined in the executable, this bind() interposes on libuv's (a shared
 * library's) calls. Only AF_INET binds to the mapped port are changed. */
__attribute__((visibility("default"))) int bind(int fd, __CONST_SOCKADDR_ARG addr, socklen_t len)
{
    const struct sockaddr *sa = addr.__sockaddr__;
    static int from = -1, to = -1;
    if (from < 0) {
        const char *m = getenv("NEMESIS_BIND_MAP");
        int a, b;
        if (m && sscanf(m, "%d:%d", &a, &b) == 2 && a > 0 && a < 65536 && b > 0 && b < 65536) {
            from = a;
            to = b;
        } else {
            from = 0;
        }
    }
    if (from > 0 && sa && sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
        struct sockaddr_in sin;
        memcpy(&sin, sa, sizeof sin);
        if (ntohs(sin.sin_port) == from) {
            sin.sin_port = htons((uint16_t)to);
            return (int)syscall(SYS_bind, fd, &sin, (socklen_t)sizeof sin);
        }
    }
    return (int)syscall(SYS_bind, fd, sa, len);
}

/* ---- shared helpers -------------------------------------------------------- */

static int64_t nm_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* One request/answer nm_exchange on a fresh connection. Returns 0 with *e filled,
 * -1 if the connection could not be made (nothing was sent), -2 if the
 * request may have been sent but no answer came (why says what happened). */
static int nm_exchange(const char *path, const struct buf *req, int timeout_ms, struct end *e,
                    int (*on_data)(void *arg, const unsigned char *p, size_t len), void *arg,
                    char *why, size_t whylen)
{
    int fd = ctl_connect(path, why, whylen);
    if (fd < 0)
        return -1;
    int rc = 0;
    if (send_request(fd, req, timeout_ms, why, whylen) != 0)
        rc = -2;
    else if (recv_answer(fd, timeout_ms, e, on_data, arg, why, whylen) != 0)
        rc = -2;
    close(fd);
    return rc;
}

struct nstatus {
    uint64_t id, term, leader_id, first, commit, last, last_index, commit_index;
    uint32_t role, fatal;
    char leader_addr[128];
};

static int nm_on_status(void *arg, const unsigned char *p, size_t len)
{
    struct nstatus *s = arg;
    struct rd r = {.p = p, .len = len};
    if (get_u8(&r) != 'S')
        return -1;
    s->id = get_u64(&r);
    s->role = get_u32(&r);
    s->term = get_u64(&r);
    s->leader_id = get_u64(&r);
    get_str(&r, s->leader_addr, sizeof s->leader_addr);
    s->first = get_u64(&r);
    s->commit = get_u64(&r);
    s->last = get_u64(&r);
    s->last_index = get_u64(&r);
    s->commit_index = get_u64(&r);
    s->fatal = get_u32(&r);
    return r.bad ? -1 : 0;
}

static int nm_get_status(const char *path, int timeout_ms, struct nstatus *s, struct end *e,
                      char *why, size_t whylen)
{
    struct buf req = {0};
    size_t at = begin_frame(&req);
    put_u8(&req, 'S');
    end_frame(&req, at);
    memset(s, 0, sizeof *s);
    int rc = nm_exchange(path, &req, timeout_ms, e, nm_on_status, s, why, whylen);
    free(req.p);
    if (rc == 0 && e->code != 0) {
        snprintf(why, whylen, "%s: %.200s", rlog_errname(e->code), e->msg);
        return -3;
    }
    return rc;
}

static void nm_hex(char *dst, const unsigned char *p, size_t n)
{
    static const char d[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        dst[2 * i] = d[p[i] >> 4];
        dst[2 * i + 1] = d[p[i] & 15];
    }
    dst[2 * n] = '\0';
}

/* ---- status ---------------------------------------------------------------- */

static int nm_cmd_status(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: nemesis_node status CONTROL_PATH\n");
        return EXIT_USAGE;
    }
    struct nstatus s;
    struct end e;
    char why[512];
    if (nm_get_status(argv[1], 3000, &s, &e, why, sizeof why) != 0) {
        printf("unreachable %s\n", why);
        return EXIT_UNREACHABLE;
    }
    printf("id=%" PRIu64 " role=%s term=%" PRIu64 " leader=%" PRIu64 " first=%" PRIu64
           " commit=%" PRIu64 " last=%" PRIu64 " last_index=%" PRIu64 " commit_index=%" PRIu64
           " fatal=%u\n",
           s.id, rlog_role_name((int)s.role), s.term, s.leader_id, s.first, s.commit, s.last,
           s.last_index, s.commit_index, s.fatal);
    return 0;
}

/* ---- dump ------------------------------------------------------------------ */

struct dump_ctx {
    FILE *out;
    uint64_t next;
    int bad;
};

static int on_dump_record(void *arg, const unsigned char *p, size_t len)
{
    struct dump_ctx *d = arg;
    struct rd r = {.p = p, .len = len};
    if (get_u8(&r) != 'r')
        return -1;
    uint64_t off = get_u64(&r);
    if (r.bad)
        return -1;
    size_t n = len - r.pos;
    char *h = malloc(2 * n + 1);
    if (!h)
        return -1;
    nm_hex(h, p + r.pos, n);
    fprintf(d->out, "%" PRIu64 " %s\n", off, h);
    free(h);
    d->next = off + 1;
    return 0;
}

static int nm_cmd_dump(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: nemesis_node dump CONTROL_PATH OUT_FILE\n");
        return EXIT_USAGE;
    }
    FILE *out = fopen(argv[2], "w");
    if (!out) {
        fprintf(stderr, "dump: %s: %s\n", argv[2], strerror(errno));
        return EXIT_ERROR;
    }
    struct nstatus s;
    struct end e;
    char why[512];
    if (nm_get_status(argv[1], 5000, &s, &e, why, sizeof why) != 0) {
        fprintf(out, "# error status: %s\n", why);
        fclose(out);
        fprintf(stderr, "dump %s: %s\n", argv[1], why);
        return EXIT_UNREACHABLE;
    }
    fprintf(out, "# status id=%" PRIu64 " role=%s term=%" PRIu64 " leader=%" PRIu64
                 " first=%" PRIu64 " commit=%" PRIu64 " last=%" PRIu64 " fatal=%u\n",
            s.id, rlog_role_name((int)s.role), s.term, s.leader_id, s.first, s.commit, s.last,
            s.fatal);
    struct buf req = {0};
    size_t at = begin_frame(&req);
    put_u8(&req, 'R');
    put_u64(&req, s.first);
    put_u64(&req, UINT64_MAX);
    end_frame(&req, at);
    struct dump_ctx d = {.out = out, .next = s.first};
    int rc = nm_exchange(argv[1], &req, 60000, &e, on_dump_record, &d, why, sizeof why);
    free(req.p);
    if (rc != 0 || e.code != 0) {
        fprintf(out, "# error read: %s\n",
                rc ? why : e.msg[0] ? e.msg : rlog_errname(e.code));
        fclose(out);
        fprintf(stderr, "dump %s: read failed\n", argv[1]);
        return EXIT_ERROR;
    }
    fprintf(out, "# end %" PRIu64 "\n", d.next);
    if (fclose(out) != 0)
        return EXIT_ERROR;
    return 0;
}

/* ---- client ---------------------------------------------------------------- */

#define MAX_NODES 9

static struct {
    const char *ctl[MAX_NODES];
    unsigned n_nodes;
    unsigned client_id;
    int hist_fd;
    pthread_mutex_t mu;
    int64_t deadline;     /* monotonic ms */
    long max_ops;
    long ops;             /* ops started, all threads */
    unsigned leader_hint; /* index + 1, 0 unknown */
    uint64_t max_acked;   /* highest acknowledged offset + 1 */
    int op_timeout_ms;
    int read_pct;
    long n_ok, n_fail, n_unknown, n_read, n_readmiss;
} C = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void hist(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void hist(const char *fmt, ...)
{
    char line[8192];
    int n = snprintf(line, sizeof line, "%" PRId64 " ", nm_wall_ms());
    va_list ap;
    va_start(ap, fmt);
    n += vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (n > (int)sizeof line - 2)
        n = (int)sizeof line - 2;
    line[n++] = '\n';
    pthread_mutex_lock(&C.mu);
    ssize_t w = write(C.hist_fd, line, (size_t)n); /* O_APPEND: one write per line */
    pthread_mutex_unlock(&C.mu);
    (void)w;
}

static uint64_t rng_next(uint64_t *s)
{
    /* splitmix64 */
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Takes one op from the budget; 0 when time or ops are used up. */
static int take_op(void)
{
    pthread_mutex_lock(&C.mu);
    int ok = now_ms() < C.deadline && C.ops < C.max_ops;
    if (ok)
        C.ops++;
    pthread_mutex_unlock(&C.mu);
    return ok;
}

static void nm_one_line(char *s)
{
    for (; *s; s++)
        if (*s == '\n' || *s == '\r')
            *s = ' ';
}

static void nm_do_append(unsigned thr, uint64_t seq, uint64_t *rng)
{
    pthread_mutex_lock(&C.mu);
    unsigned node = C.leader_hint ? C.leader_hint - 1
                                  : (unsigned)(rng_next(rng) % C.n_nodes);
    pthread_mutex_unlock(&C.mu);
    unsigned n = 1 + (unsigned)(rng_next(rng) % 3);
    char recs[3][64];
    char list[200] = "";
    struct buf req = {0};
    size_t at = begin_frame(&req);
    put_u8(&req, 'A');
    put_u32(&req, n);
    for (unsigned i = 0; i < n; i++) {
        snprintf(recs[i], sizeof recs[i], "c%u.%u-%" PRIu64 "-%u-%08" PRIx64, C.client_id, thr,
                 seq, i, rng_next(rng) & 0xffffffffu);
        put_u32(&req, (uint32_t)strlen(recs[i]));
        buf_put(&req, recs[i], strlen(recs[i]));
        if (i)
            strcat(list, ",");
        strcat(list, recs[i]);
    }
    end_frame(&req, at);
    char opid[64];
    snprintf(opid, sizeof opid, "%u.%u.%" PRIu64, C.client_id, thr, seq);
    hist("invoke %s append node=%u n=%u %s", opid, node + 1, n, list);
    struct end e;
    char why[512] = "";
    int rc = nm_exchange(C.ctl[node], &req, C.op_timeout_ms, &e, NULL, NULL, why, sizeof why);
    free(req.p);
    nm_one_line(why);
    if (rc == -1) {
        hist("fail %s connect %s", opid, why);
        pthread_mutex_lock(&C.mu);
        C.n_fail++;
        if (C.leader_hint == node + 1)
            C.leader_hint = 0;
        pthread_mutex_unlock(&C.mu);
        return;
    }
    if (rc != 0) {
        hist("unknown %s %s", opid, why);
        pthread_mutex_lock(&C.mu);
        C.n_unknown++;
        if (C.leader_hint == node + 1)
            C.leader_hint = 0;
        pthread_mutex_unlock(&C.mu);
        return;
    }
    nm_one_line(e.msg);
    pthread_mutex_lock(&C.mu);
    if (e.code == 0) {
        C.n_ok++;
        if (e.value + n > C.max_acked)
            C.max_acked = e.value + n;
        C.leader_hint = node + 1;
    } else {
        if (e.flags & FLAG_INDETERMINATE)
            C.n_unknown++;
        else
            C.n_fail++;
        if (e.code == RLOG_ENOTLEADER && e.leader_id >= 1 && e.leader_id <= C.n_nodes)
            C.leader_hint = (unsigned)e.leader_id;
        else if (e.code == RLOG_ENOTLEADER || e.code == RLOG_ETIMEOUT || e.code == RLOG_ECLOSED)
            C.leader_hint = 0;
    }
    pthread_mutex_unlock(&C.mu);
    if (e.code == 0)
        hist("ok %s offset=%" PRIu64, opid, e.value);
    else if (e.flags & FLAG_INDETERMINATE)
        hist("unknown %s %s %s", opid, rlog_errname(e.code), e.msg);
    else
        hist("fail %s %s %s", opid, rlog_errname(e.code), e.msg);
}

struct read_ctx {
    uint64_t off;
    int got;
    char *hex;
};

static int nm_on_read(void *arg, const unsigned char *p, size_t len)
{
    struct read_ctx *c = arg;
    struct rd r = {.p = p, .len = len};
    if (get_u8(&r) != 'r')
        return -1;
    c->off = get_u64(&r);
    if (r.bad || c->got)
        return -1;
    size_t n = len - r.pos;
    c->hex = malloc(2 * n + 1);
    if (!c->hex)
        return -1;
    nm_hex(c->hex, p + r.pos, n);
    c->got = 1;
    return 0;
}

static void nm_do_read(unsigned thr, uint64_t seq, uint64_t *rng)
{
    pthread_mutex_lock(&C.mu);
    uint64_t hi = C.max_acked;
    pthread_mutex_unlock(&C.mu);
    unsigned node = (unsigned)(rng_next(rng) % C.n_nodes);
    /* Mostly recent offsets (where a wrong answer is likeliest), some old. */
    uint64_t off;
    if (hi == 0)
        off = 0;
    else if (rng_next(rng) % 4)
        off = hi - 1 - (rng_next(rng) % (hi < 50 ? hi : 50));
    else
        off = rng_next(rng) % hi;
    if (rng_next(rng) % 8 == 0)
        off = hi + (rng_next(rng) % 4); /* beyond what we know to be acked */
    struct buf req = {0};
    size_t at = begin_frame(&req);
    put_u8(&req, 'G');
    put_u64(&req, off);
    end_frame(&req, at);
    struct end e;
    char why[512] = "";
    struct read_ctx c = {0};
    int rc = nm_exchange(C.ctl[node], &req, C.op_timeout_ms, &e, nm_on_read, &c, why, sizeof why);
    free(req.p);
    pthread_mutex_lock(&C.mu);
    if (rc == 0 && e.code == 0 && c.got)
        C.n_read++;
    else
        C.n_readmiss++;
    pthread_mutex_unlock(&C.mu);
    if (rc == 0 && e.code == 0 && c.got) {
        if (c.off != off)
            hist("readbad %u.%u.%" PRIu64 " node=%u asked=%" PRIu64 " answered=%" PRIu64,
                 C.client_id, thr, seq, node + 1, off, c.off);
        hist("read %u.%u.%" PRIu64 " node=%u offset=%" PRIu64 " %s", C.client_id, thr, seq,
             node + 1, c.off, c.hex);
    }
    free(c.hex);
}

struct thr_arg {
    unsigned idx;
    uint64_t seed;
};

static void *client_worker(void *p)
{
    struct thr_arg *a = p;
    uint64_t rng = a->seed, seq = 0;
    while (take_op()) {
        seq++;
        long pause_us = (long)(rng_next(&rng) % 5000);
        if ((int)(rng_next(&rng) % 100) < C.read_pct) {
            nm_do_read(a->idx, seq, &rng);
        } else {
            pthread_mutex_lock(&C.mu);
            long before = C.n_ok;
            unsigned hint = C.leader_hint;
            pthread_mutex_unlock(&C.mu);
            nm_do_append(a->idx, seq, &rng);
            pthread_mutex_lock(&C.mu);
            int failed = C.n_ok == before, new_hint = C.leader_hint != 0 && C.leader_hint != hint;
            pthread_mutex_unlock(&C.mu);
            /* No leader known: back off instead of burning the op budget. */
            if (failed && !new_hint)
                pause_us += 20000 + (long)(rng_next(&rng) % 50000);
        }
        /* bounded load: a short random pause between ops */
        struct timespec ts = {0, pause_us * 1000};
        nanosleep(&ts, NULL);
    }
    return NULL;
}

static int nm_cmd_client(int argc, char **argv)
{
    static const struct option opts[] = {
        {"controls", required_argument, NULL, 'c'}, {"history", required_argument, NULL, 'H'},
        {"client-id", required_argument, NULL, 'i'}, {"threads", required_argument, NULL, 't'},
        {"duration", required_argument, NULL, 'd'}, {"max-ops", required_argument, NULL, 'm'},
        {"seed", required_argument, NULL, 's'},     {"op-timeout", required_argument, NULL, 'o'},
        {"read-pct", required_argument, NULL, 'r'}, {NULL, 0, NULL, 0},
    };
    const char *controls = NULL, *history = NULL;
    unsigned threads = 4;
    double duration = 20;
    uint64_t seed = 1;
    C.client_id = 1;
    C.max_ops = 100000;
    C.op_timeout_ms = 5000;
    C.read_pct = 20;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'c': controls = optarg; break;
        case 'H': history = optarg; break;
        case 'i': C.client_id = (unsigned)atoi(optarg); break;
        case 't': threads = (unsigned)atoi(optarg); break;
        case 'd': duration = atof(optarg); break;
        case 'm': C.max_ops = atol(optarg); break;
        case 's': seed = strtoull(optarg, NULL, 0); break;
        case 'o': C.op_timeout_ms = atoi(optarg); break;
        case 'r': C.read_pct = atoi(optarg); break;
        default:
            fprintf(stderr, "usage: nemesis_node client --controls P1,P2,P3 --history FILE "
                            "[--client-id N] [--threads N] [--duration S] [--max-ops N] "
                            "[--seed N] [--op-timeout MS] [--read-pct N]\n");
            return EXIT_USAGE;
        }
    }
    if (!controls || !history || threads < 1 || threads > 64 || duration <= 0 ||
        duration > 86400 || C.max_ops < 1 || C.op_timeout_ms < 100) {
        fprintf(stderr, "nemesis_node client: bad or missing arguments\n");
        return EXIT_USAGE;
    }
    char *list = strdup(controls);
    for (char *save = NULL, *tok = strtok_r(list, ",", &save); tok && C.n_nodes < MAX_NODES;
         tok = strtok_r(NULL, ",", &save))
        C.ctl[C.n_nodes++] = tok;
    if (C.n_nodes == 0)
        return EXIT_USAGE;
    C.hist_fd = open(history, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (C.hist_fd < 0) {
        fprintf(stderr, "client: %s: %s\n", history, strerror(errno));
        return EXIT_ERROR;
    }
    C.deadline = now_ms() + (int64_t)(duration * 1000);
    hist("start client=%u threads=%u duration=%.1f max_ops=%ld seed=%" PRIu64, C.client_id,
         threads, duration, C.max_ops, seed);
    pthread_t tid[64];
    struct thr_arg args[64];
    for (unsigned i = 0; i < threads; i++) {
        args[i].idx = i;
        args[i].seed = seed * 1000003u + i * 7919u + C.client_id;
        if (pthread_create(&tid[i], NULL, client_worker, &args[i]) != 0) {
            fprintf(stderr, "client: pthread_create failed\n");
            threads = i;
            break;
        }
    }
    for (unsigned i = 0; i < threads; i++)
        pthread_join(tid[i], NULL);
    hist("end ops=%ld ok=%ld fail=%ld unknown=%ld reads=%ld readmiss=%ld", C.ops, C.n_ok,
         C.n_fail, C.n_unknown, C.n_read, C.n_readmiss);
    printf("client %u: ops=%ld appends ok=%ld fail=%ld unknown=%ld reads ok=%ld miss=%ld\n",
           C.client_id, C.ops, C.n_ok, C.n_fail, C.n_unknown, C.n_read, C.n_readmiss);
    close(C.hist_fd);
    free(list);
    return 0;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    if (argc >= 2 && strcmp(argv[1], "client") == 0)
        return nm_cmd_client(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "status") == 0)
        return nm_cmd_status(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "dump") == 0)
        return nm_cmd_dump(argc - 1, argv + 1);
    progname = "nemesis_node";
    return rlogctl_main(argc, argv);
}
