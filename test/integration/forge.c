/*
 * forge — test helper for the attack tests (test_attack_*.sh): speaks to a
 * node's raft port as an attacker would, with frames made by liblog's own
 * wire codec (lib/wire/) and batch layout (lib/batch/batch.c), so
 * every frame is well formed and correctly checksummed: what stops it must
 * be the node's rules and bounds, not a parse error.
 *
 *   forge [options] HOST:PORT KIND [ARGS...]
 *   forge [--conns N] [--hold MS] unix:PATH none
 *
 * The second form opens N connections to a Unix socket (the CLI's control
 * socket) and holds them: a flood of callers.
 *
 * Options:
 *   --preamble raft|rlog1  how a connection starts (default $FORGE_PREAMBLE,
 *                          else rlog1): libraft 0.15's raft_uv_tcp handshake
 *                          (u64 protocol 1, u64 id, u64 padded address
 *                          length, the address NUL-padded to 8), or liblog's
 *                          32-byte hello ("rlognet1", u32 version 1, u32
 *                          flags 0, u64 id, u64 XXH64 of the cluster name)
 *   --cluster NAME         the cluster name the hello hashes (rlog1)
 *   --from ID              the id claimed, in the preamble and every frame
 *                          (default 99)
 *   --count N              frames sent on each connection (default 1)
 *   --conns N              connections opened (default 1)
 *   --hold MS              keep the connections open this long after sending
 *   --wait MS              then wait up to this long for the node to close
 *                          them (default 300)
 * Kinds (terms and indexes are decimal u64; "max" is 2^64 - 1):
 *   vote TERM                         RequestVote, disrupt_leader set, log
 *                                     claimed at index and term TERM
 *   append TERM PREV PREV_TERM COMMIT NRECS
 *                                     AppendEntries with one entry of NRECS
 *                                     records (term TERM)
 *   trim TERM PREV PREV_TERM COMMIT BEFORE
 *                                     AppendEntries with one trim command
 *   result TERM INDEX                 AppendEntriesResult: success up to INDEX
 *   commit TERM INDEX ENTRY_TERM      liblog's commit notice
 *   fetch-req FIRST LAST BUDGET       a segment fetch request
 *   fetch-resp FIRST NRECS            a fetch answer: one entry at FIRST
 *   crash TERM                        AppendEntries with prev_log_index 0 and
 *                                     one entry (libraft 0.15's remote crash)
 *   half LENGTH SENT                  a frame header claiming LENGTH body
 *                                     bytes, then only SENT of them
 *   none                              the preamble only (idle connections)
 * Prints one line: "forge: KIND: C connections, F frames, B bytes sent;
 * closed by the node: K" and exits 0; exits 1 on bad usage or when not even
 * one connection could be made.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "batch/batch.h"
#include "wire/codec.h"

struct opts {
    const char *preamble, *cluster, *host;
    const char *unix_path; /* unix:PATH: a control socket instead */
    int port;
    uint64_t from;
    unsigned count, conns;
    int hold_ms, wait_ms;
};

static void usage(void)
{
    fprintf(stderr, "usage: forge [--preamble raft|rlog1] [--cluster NAME] [--from ID]"
                    " [--count N] [--conns N] [--hold MS] [--wait MS] HOST:PORT KIND [ARGS]\n"
                    "kinds: vote append trim result commit fetch-req fetch-resp crash half none\n"
                    "(the comment at the top of test/integration/forge.c gives their arguments)\n");
    exit(1);
}

static uint64_t num(const char *s)
{
    if (!strcmp(s, "max"))
        return UINT64_MAX;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 0);
    if (errno || !*s || *end) {
        fprintf(stderr, "forge: not a number: %s\n", s);
        exit(1);
    }
    return v;
}

static void put_le(unsigned char *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

/* The bytes a connection starts with, into buf; their length. */
static size_t preamble(const struct opts *o, unsigned char *buf)
{
    if (!strcmp(o->preamble, "raft")) {
        /* The address a member would announce; libraft takes it on trust
         * and liblog never reads it. */
        char addr[96];
        snprintf(addr, sizeof addr, "%s:%d", o->host, o->port);
        size_t len = (strlen(addr) + 1 + 7) / 8 * 8;
        put_le(buf, 1, 8);
        put_le(buf + 8, o->from, 8);
        put_le(buf + 16, len, 8);
        memset(buf + 24, 0, len);
        memcpy(buf + 24, addr, strlen(addr));
        return 24 + len;
    }
    memcpy(buf, "rlognet1", 8);
    put_le(buf + 8, 1, 4);
    put_le(buf + 12, 0, 4);
    put_le(buf + 16, o->from, 8);
    const char *name = o->cluster ? o->cluster : "";
    put_le(buf + 24, XXH64(name, strlen(name), 0), 8);
    return 32;
}

/* A sealed batch of n records "forged-<i>" (raft_malloc'd). */
static void *records(unsigned n, size_t *len)
{
    struct rl_batch_builder b;
    rl_batch_builder_init(&b);
    for (unsigned i = 0; i < n; i++) {
        char rec[32];
        int l = snprintf(rec, sizeof rec, "forged-%u", i);
        if (rl_batch_add(&b, rec, (size_t)l) != 0) {
            fprintf(stderr, "forge: cannot build a batch\n");
            exit(1);
        }
    }
    void *buf = rl_batch_seal(&b, 1, len);
    rl_batch_builder_free(&b);
    if (!buf) {
        fprintf(stderr, "forge: out of memory\n");
        exit(1);
    }
    return buf;
}

struct frame {
    unsigned char *bytes;
    size_t len;
};

/* The frame an encoder made (rv its result), in one contiguous buffer. */
static struct frame flatten(int rv, struct rl_wire_out *out)
{
    if (rv != 0) {
        fprintf(stderr, "forge: the codec refuses this message (%d)\n", rv);
        exit(1);
    }
    struct frame f = {malloc((size_t)out->total), 0};
    if (!f.bytes)
        exit(1);
    for (unsigned i = 0; i < out->n_iov; i++) {
        memcpy(f.bytes + f.len, out->iov[i].base, out->iov[i].len);
        f.len += out->iov[i].len;
    }
    rl_wire_out_free(out);
    return f;
}

/* Encodes msg from o->from into one contiguous frame. */
static struct frame encode(const struct opts *o, const struct raft_message *msg)
{
    struct rl_wire_out out;
    return flatten(rl_wire_encode(msg, o->from, &out), &out);
}

/* An AppendEntries carrying one entry of payload buf. */
static struct frame entries_frame(const struct opts *o, uint64_t term, uint64_t prev,
                                  uint64_t prev_term, uint64_t commit, void *buf, size_t len)
{
    struct raft_entry e = {.term = term ? term : 1, .type = RAFT_COMMAND,
                           .buf = {.base = buf, .len = len}};
    struct raft_message m = {.type = RAFT_IO_APPEND_ENTRIES, .server_id = o->from};
    m.append_entries = (struct raft_append_entries){.term = term, .prev_log_index = prev,
                                                    .prev_log_term = prev_term,
                                                    .leader_commit = commit,
                                                    .entries = &e, .n_entries = 1};
    struct frame f = encode(o, &m);
    raft_free(buf);
    return f;
}

/* The frame KIND ARGS describe. For `half`, the header and SENT body bytes. */
static struct frame build(const struct opts *o, const char *kind, int argc, char **argv)
{
    struct raft_message m = {.server_id = o->from};
#define NEED(n)          \
    do {                 \
        if (argc != (n)) \
            usage();     \
    } while (0)
    if (!strcmp(kind, "vote")) {
        NEED(1);
        uint64_t t = num(argv[0]);
        m.type = RAFT_IO_REQUEST_VOTE;
        m.request_vote = (struct raft_request_vote){.term = t, .candidate_id = o->from,
                                                    .last_log_index = t, .last_log_term = t,
                                                    .disrupt_leader = true};
        return encode(o, &m);
    }
    if (!strcmp(kind, "append") || !strcmp(kind, "trim")) {
        NEED(5);
        size_t len;
        void *buf = !strcmp(kind, "append") ? records((unsigned)num(argv[4]), &len)
                                            : rl_batch_trim(num(argv[4]), 1, &len);
        return entries_frame(o, num(argv[0]), num(argv[1]), num(argv[2]), num(argv[3]), buf, len);
    }
    if (!strcmp(kind, "crash")) {
        NEED(1);
        size_t len;
        void *buf = records(1, &len);
        return entries_frame(o, num(argv[0]), 0, 0, 1, buf, len);
    }
    if (!strcmp(kind, "fetch-resp")) {
        NEED(2);
        size_t len;
        void *buf = records((unsigned)num(argv[1]), &len);
        struct raft_entry e = {.term = 1, .type = RAFT_COMMAND, .buf = {.base = buf, .len = len}};
        struct rl_wire_fetch_resp r = {.first = num(argv[0]), .last = num(argv[0]),
                                       .entries = &e, .n_entries = 1};
        struct rl_wire_out out;
        struct frame f = flatten(rl_wire_encode_fetch_resp(&r, o->from, &out), &out);
        raft_free(buf);
        return f;
    }
    if (!strcmp(kind, "result")) {
        NEED(2);
        m.type = RAFT_IO_APPEND_ENTRIES_RESULT;
        m.append_entries_result = (struct raft_append_entries_result){
            .term = num(argv[0]), .rejected = 0, .last_log_index = num(argv[1])};
        return encode(o, &m);
    }
    if (!strcmp(kind, "commit")) {
        NEED(3);
        struct rl_wire_commit c = {.term = num(argv[0]), .index = num(argv[1]),
                                   .entry_term = num(argv[2])};
        struct rl_wire_out out;
        return flatten(rl_wire_encode_commit(&c, o->from, &out), &out);
    }
    if (!strcmp(kind, "fetch-req")) {
        NEED(3);
        struct rl_wire_fetch_req r = {.first = num(argv[0]), .last = num(argv[1]),
                                      .budget = num(argv[2])};
        struct rl_wire_out out;
        return flatten(rl_wire_encode_fetch_req(&r, o->from, &out), &out);
    }
    if (!strcmp(kind, "half")) {
        NEED(2);
        uint64_t length = num(argv[0]), sent = num(argv[1]);
        if (length > UINT32_MAX || length % 8 || sent >= length)
            usage();
        /* A real AppendEntries header; its checksum cannot match a body
         * that never comes, and the node never gets to check it. */
        struct frame f = {calloc(1, RL_WIRE_HDR + (size_t)sent), RL_WIRE_HDR + (size_t)sent};
        if (!f.bytes)
            exit(1);
        memcpy(f.bytes, "RLW1", 4);
        put_le(f.bytes + 4, RL_WIRE_VERSION, 2);
        put_le(f.bytes + 6, RAFT_IO_APPEND_ENTRIES, 2);
        put_le(f.bytes + 8, length, 4);
        put_le(f.bytes + 16, o->from, 8);
        return f;
    }
    if (!strcmp(kind, "none")) {
        NEED(0);
        return (struct frame){NULL, 0};
    }
#undef NEED
    usage();
    return (struct frame){NULL, 0};
}

static int write_all(int fd, const unsigned char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Whether the node closed fd (EOF or reset) within ms. Anything it sends
 * is read and dropped. */
static int closed_within(int fd, int ms)
{
    int64_t until = now_ms() + ms;
    for (;;) {
        int left = (int)(until - now_ms());
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int r = poll(&p, 1, left > 0 ? left : 0);
        if (r <= 0)
            return 0;
        char buf[4096];
        ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
            return 1;
    }
}

int main(int argc, char **argv)
{
    struct opts o = {.preamble = getenv("FORGE_PREAMBLE"), .from = 99, .count = 1, .conns = 1,
                     .wait_ms = 300};
    if (!o.preamble || !*o.preamble)
        o.preamble = "rlog1";
    int i = 1;
    for (; i + 1 < argc && !strncmp(argv[i], "--", 2); i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (!strcmp(k, "--preamble"))
            o.preamble = v;
        else if (!strcmp(k, "--cluster"))
            o.cluster = v;
        else if (!strcmp(k, "--from"))
            o.from = num(v);
        else if (!strcmp(k, "--count"))
            o.count = (unsigned)num(v);
        else if (!strcmp(k, "--conns"))
            o.conns = (unsigned)num(v);
        else if (!strcmp(k, "--hold"))
            o.hold_ms = (int)num(v);
        else if (!strcmp(k, "--wait"))
            o.wait_ms = (int)num(v);
        else
            usage();
    }
    if (strcmp(o.preamble, "raft") && strcmp(o.preamble, "rlog1"))
        usage();
    if (argc - i < 2)
        usage();
    static char host[64];
    const char *colon = strrchr(argv[i], ':');
    if (!colon || (size_t)(colon - argv[i]) >= sizeof host)
        usage();
    if (!strncmp(argv[i], "unix:", 5)) {
        o.unix_path = argv[i] + 5;
        o.host = "unix";
    } else {
        memcpy(host, argv[i], (size_t)(colon - argv[i]));
        o.host = host;
        o.port = (int)num(colon + 1);
    }
    const char *kind = argv[i + 1];
    struct frame f = build(&o, kind, argc - i - 2, argv + i + 2);

    /* Many idle connections need as many descriptors. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < o.conns + 64) {
        rl.rlim_cur = rl.rlim_max < o.conns + 64 ? rl.rlim_max : o.conns + 64;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    int *fds = calloc(o.conns ? o.conns : 1, sizeof *fds);
    if (!fds)
        return 1;
    unsigned char pre[160];
    size_t pre_len = preamble(&o, pre);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)o.port)};
    struct sockaddr_un su = {.sun_family = AF_UNIX};
    if (o.unix_path) {
        if (strlen(o.unix_path) >= sizeof su.sun_path)
            usage();
        strcpy(su.sun_path, o.unix_path);
        pre_len = 0; /* a control socket: no preamble */
    } else if (inet_pton(AF_INET, o.host, &sa.sin_addr) != 1) {
        usage();
    }
    unsigned failed = 0;
    unsigned made = 0;
    uint64_t frames = 0, bytes = 0;
    for (unsigned c = 0; c < o.conns; c++) {
        int fd = socket(o.unix_path ? AF_UNIX : AF_INET, SOCK_STREAM, 0);
        /* A full Unix listen queue blocks connect; this bounds the wait. */
        struct timeval tv = {.tv_usec = 20000};
        if (fd >= 0)
            setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        int rc = fd < 0 ? -1
                 : o.unix_path ? connect(fd, (struct sockaddr *)&su, sizeof su)
                               : connect(fd, (struct sockaddr *)&sa, sizeof sa);
        if (rc != 0) {
            if (fd >= 0)
                close(fd);
            if (++failed == 1)
                fprintf(stderr, "forge: connection %u: %s\n", c + 1, strerror(errno));
            continue;
        }
        fds[made++] = fd;
        /* A node that refuses the preamble closes at once: the frames then
         * find a reset connection, which is an answer too. */
        if (write_all(fd, pre, pre_len) != 0)
            continue;
        bytes += pre_len;
        for (unsigned k = 0; k < o.count && f.len; k++) {
            if (write_all(fd, f.bytes, f.len) != 0)
                break;
            frames++;
            bytes += f.len;
        }
    }
    if (o.hold_ms > 0)
        usleep((useconds_t)o.hold_ms * 1000);
    unsigned closed = 0;
    for (unsigned c = 0; c < made; c++)
        closed += (unsigned)closed_within(fds[c], c == 0 ? o.wait_ms : 0);
    for (unsigned c = 0; c < made; c++)
        close(fds[c]);
    printf("forge: %s: %u connections (%u failed), %" PRIu64 " frames, %" PRIu64
           " bytes sent; closed by the node: %u\n", kind, made, failed, frames, bytes, closed);
    free(fds);
    free(f.bytes);
    return made ? 0 : 1;
}
