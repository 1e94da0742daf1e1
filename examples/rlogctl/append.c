/*
 * rlogctl append: records from the arguments or stdin's lines, in batches,
 * through the first node that takes them.
 */
#include "client.h"

void usage_append(FILE *f)
{
    fprintf(f,
            "usage: %s append (--control PATH | --cluster-controls P1,P2,...) [--json]\n"
            "                      [--log NAME] [--timeout SEC]\n"
            "                      [--producer ID [--sequence N]] [--expect-offset OFFSET]\n"
            "                      [--] [RECORD...]\n"
            "\n"
            "Appends each RECORD, or each line of stdin (without its newline) when no\n"
            "RECORD is given, and prints the offset of each record once it is committed:\n"
            "one per line, or {\"offset\":N} lines with --json. Stdin lines go in batches\n"
            "of up to %u records.\n"
            "\n"
            "Any node takes appends: a follower forwards them to the leader and answers\n"
            "once they are committed and readable on it. A follower started with\n"
            "--no-forward-appends answers with the leader's id and address instead\n"
            "(exit 3); the control socket is local to each host, so point --control at\n"
            "the leader's node then, or give every local node's socket with\n"
            "--cluster-controls: each batch goes to the first that accepts, and while all\n"
            "refuse (an election in progress) they are tried again until --timeout\n"
            "(default 30 s). A node refuses, and the next is tried, when its answer\n"
            "proves nothing was appended: not the leader, failed stop (RLOG_EFATAL) or\n"
            "shutting down (RLOG_ECLOSED), each before taking the batch, or no node\n"
            "behind its socket. A batch is never resent once a node has accepted it:\n"
            "an error after that (or no answer) may mean it is in the log, so the\n"
            "command stops there and says so.\n"
            "\n"
            "--producer ID (>= 1) makes the appends idempotent (rlog_append_ex): each\n"
            "record is its own call, with sequence numbers N, N+1, ... (--sequence,\n"
            "default 1). The log takes each (ID, sequence) at most once, so a batch in\n"
            "doubt is sent again (to the next node with --cluster-controls) until\n"
            "--timeout, and running the same command again with the same ID, sequence\n"
            "and input appends nothing twice: the offsets printed are the originals.\n"
            "--expect-offset OFFSET makes them conditional: the first record must get\n"
            "OFFSET, each next one the next offset; if the log ends elsewhere nothing is\n"
            "appended (exit 9, the log's actual next offset is printed).\n"
            "\n"
            "Exit status: 0 all appended; 1 usage; 3 not the leader; 5 cannot reach a\n"
            "node; 6 other errors (the RLOG_E* name is printed); 8 in doubt: a node took\n"
            "the batch and then could not tell whether it committed (RLOG_EINDOUBT, no\n"
            "commit within its wait, or no answer): that batch may or may not be in the\n"
            "log; 9 conflict: the log did not end at --expect-offset.\n",
            progname, CLIENT_BATCH_RECORDS);
}

struct appender {
    struct copts *o;
    int fd;
    unsigned cur; /* index into the control list in use */
    uint64_t appended;
};

/* Whether an error answer proves the node appended nothing, so the batch
 * may go to another node: refused before the node took it (no
 * indeterminate flag) for a reason another node may not share. */
static int refused_untaken(const struct end *e)
{
    if (e->flags & FLAG_INDETERMINATE)
        return 0;
    return e->code == RLOG_ENOTLEADER || e->code == RLOG_EFATAL || e->code == RLOG_ECLOSED;
}

/* Sends one batch; tries the next node on a clean refusal (refused_untaken,
 * or unreachable) when several control sockets were given. Returns an exit
 * code. */
static int append_batch(struct appender *a, struct rlog_buf *recs, unsigned n)
{
    struct copts *o = a->o;
    struct buf req = {0};
    bool idempotent = o->producer != 0, with_opts = idempotent || o->has_expect;
    size_t at = begin_request(&req, o, with_opts ? 'O' : 'A');
    if (with_opts) {
        put_u64(&req, o->producer);
        put_u64(&req, o->producer ? o->sequence + a->appended : 0);
        put_u64(&req, o->has_expect ? o->expect + a->appended : UINT64_MAX);
    }
    put_u32(&req, n);
    for (unsigned i = 0; i < n; i++) {
        put_u32(&req, (uint32_t)recs[i].len);
        buf_put(&req, recs[i].base, recs[i].len);
    }
    end_frame(&req, at);
    if (req.len - 4 > CTL_MAX_FRAME) {
        fprintf(stderr, "%s append: a batch of %u %s is too large to send (%zu bytes)\n",
                progname, n, plural(n, "record", "records"), req.len);
        free(req.p);
        return EXIT_USAGE;
    }
    unsigned tries = o->n_controls ? o->n_controls : 1;
    struct end last_end;
    int have_end = 0;
    char why[512] = "";
    /* With several control sockets, refusals (refused_untaken, unreachable)
     * are retried round after round until --timeout: an election in progress
     * resolves itself. Nothing was appended by a refused request. */
    int64_t deadline = now_ms() + o->timeout_ms;
    for (unsigned round = 0;; round++) {
        if (round > 0) {
            if ((tries == 1 && !idempotent) || now_ms() + 100 >= deadline)
                break;
            struct timespec nap = {0, 100 * 1000000L};
            nanosleep(&nap, NULL);
        }
        for (unsigned t = 0; t < tries; t++) {
            const char *path = ctl_path(o, a->cur);
            if (a->fd < 0)
                a->fd = ctl_connect(path, why, sizeof why);
            if (a->fd >= 0 && send_request(a->fd, &req, o->timeout_ms, why, sizeof why) == 0) {
                struct end e;
                if (recv_answer(a->fd, o->timeout_ms, &e, NULL, NULL, why, sizeof why) != 0) {
                    if (idempotent && now_ms() + 100 < deadline) {
                        /* Sent again below: the log takes it at most once. */
                        fprintf(stderr, "%s append: %s: %s; sending it again\n", progname, path,
                                why);
                        goto next_node;
                    }
                    /* Sent but no answer: the outcome is unknown, do not resend. */
                    if (n == 1)
                        fprintf(stderr, "%s append: %s: %s; the last record may or may not be "
                                "in the log\n", progname, path, why);
                    else
                        fprintf(stderr, "%s append: %s: %s; the last %u records may or may not "
                                "be in the log\n", progname, path, why, n);
                    free(req.p);
                    return EXIT_UNREACHABLE;
                }
                if (e.code == 0) {
                    for (unsigned i = 0; i < n; i++) {
                        if (o->json)
                            printf("{\"offset\":%" PRIu64 "}\n", e.value + i);
                        else
                            printf("%" PRIu64 "\n", e.value + i);
                    }
                    fflush(stdout);
                    a->appended += n;
                    free(req.p);
                    return 0;
                }
                if (e.code == RLOG_ECONFLICT) {
                    fprintf(stderr, "%s append: conflict: the log's next offset is %" PRIu64
                            ", not %" PRIu64 "; nothing appended (%s)\n", progname, e.value,
                            o->expect + a->appended, e.msg);
                    free(req.p);
                    return EXIT_CONFLICT;
                }
                /* With a producer, a batch in doubt is sent again. */
                bool again = idempotent && (e.code == RLOG_EINDOUBT || e.code == RLOG_ETIMEOUT ||
                                            (e.flags & FLAG_INDETERMINATE));
                if (!(refused_untaken(&e) || again) || (tries == 1 && !idempotent)) {
                    free(req.p);
                    return report_error("append", &e);
                }
                if (again && round == 0)
                    fprintf(stderr, "%s append: %s: %s: %s; sending it again\n", progname, path,
                            rlog_errname(e.code), e.msg);
                if (e.code != RLOG_ENOTLEADER && round == 0) /* why a node was passed */
                    fprintf(stderr, "%s append: %s refused the batch (%s: %s); trying the next "
                            "node\n", progname, path, rlog_errname(e.code), e.msg);
                last_end = e;
                have_end = 1;
            } else if (tries == 1 && !idempotent) {
                break;
            }
        next_node:
            if (a->fd >= 0)
                close(a->fd);
            a->fd = -1;
            a->cur = (a->cur + 1) % tries;
        }
    }
    free(req.p);
    if (have_end)
        return report_error("append", &last_end);
    fail_unreachable("append", why[0] ? why : "no node reachable");
    return EXIT_UNREACHABLE;
}

/* Appends stdin's lines. Lines are gathered into batches of up to
 * CLIENT_BATCH_RECORDS records / CLIENT_BATCH_BYTES bytes; a batch is also
 * sent as soon as stdin has nothing more to read right now, so a slow
 * producer (`tail -f ... | rlogctl append`) does not wait for a full batch. */
static int append_stdin(struct appender *a, struct rlog_buf *recs)
{
    /* With a producer or an expected offset, one record per call: the
     * sequence numbers and offsets do not depend on how stdin arrives. */
    unsigned per_call = a->o->producer || a->o->has_expect ? 1 : CLIENT_BATCH_RECORDS;
    struct buf in = {0};        /* bytes read, not yet consumed */
    size_t start = 0;           /* first unconsumed byte of in */
    struct buf batch = {0};     /* the records of the pending batch, back to back */
    size_t lens[CLIENT_BATCH_RECORDS];
    unsigned n = 0;
    int eof = 0, rc = 0;
    while (rc == 0) {
        /* Move complete lines (or, at EOF, the unterminated rest) into the batch. */
        while (n < per_call && batch.len < CLIENT_BATCH_BYTES) {
            unsigned char *nl = in.len > start ? memchr(in.p + start, '\n', in.len - start) : NULL;
            size_t len;
            if (nl != NULL)
                len = (size_t)(nl - (in.p + start));
            else if (eof && in.len > start)
                len = in.len - start;
            else
                break;
            buf_put(&batch, in.p + start, len);
            lens[n++] = len;
            start += len + (nl != NULL);
        }
        struct pollfd pfd = {.fd = STDIN_FILENO, .events = POLLIN};
        int full = n == per_call || batch.len >= CLIENT_BATCH_BYTES;
        if (n > 0 && (full || eof || poll(&pfd, 1, 0) == 0)) {
            size_t off = 0;
            for (unsigned i = 0; i < n; i++) {
                recs[i].base = batch.p + off;
                recs[i].len = lens[i];
                off += lens[i];
            }
            rc = append_batch(a, recs, n);
            n = 0;
            batch.len = 0;
            continue;
        }
        if (eof)
            break;
        /* Compact, then read more. */
        if (start > 0) {
            memmove(in.p, in.p + start, in.len - start);
            in.len -= start;
            start = 0;
        }
        buf_reserve(&in, 65536);
        ssize_t r = read(STDIN_FILENO, in.p + in.len, in.cap - in.len);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "%s append: reading stdin: %s\n", progname, strerror(errno));
            rc = EXIT_ERROR;
            break;
        }
        if (r == 0)
            eof = 1;
        in.len += (size_t)r;
    }
    free(in.p);
    free(batch.p);
    return rc;
}

int cmd_append(struct copts *o, int argc, char **argv)
{
    struct appender a = {.o = o, .fd = -1};
    struct rlog_buf *recs = xmalloc(CLIENT_BATCH_RECORDS * sizeof *recs);
    int rc = 0;
    unsigned per_call = o->producer || o->has_expect ? 1 : CLIENT_BATCH_RECORDS;
    if (argc > 0) {
        for (int i = 0; i < argc && rc == 0;) {
            unsigned n = 0;
            size_t bytes = 0;
            while (i < argc && n < per_call &&
                   (n == 0 || bytes + strlen(argv[i]) <= CLIENT_BATCH_BYTES)) {
                recs[n].base = argv[i];
                recs[n].len = strlen(argv[i]);
                bytes += recs[n].len;
                n++;
                i++;
            }
            rc = append_batch(&a, recs, n);
        }
    } else {
        rc = append_stdin(&a, recs);
    }
    if (a.fd >= 0)
        close(a.fd);
    free(recs);
    if (rc != 0 && a.appended == 1)
        fprintf(stderr, "%s append: 1 record was appended before the error (its offset is "
                "printed)\n", progname);
    else if (rc != 0 && a.appended > 1)
        fprintf(stderr, "%s append: %" PRIu64 " records were appended before the error (their "
                "offsets are printed)\n", progname, a.appended);
    return rc;
}
