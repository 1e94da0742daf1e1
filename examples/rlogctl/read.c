/*
 * rlogctl read and tail: committed records by offset or range, and a stream
 * of them as they commit.
 */
#include "client.h"

/* ---- read ---- */

void usage_read(FILE *f)
{
    fprintf(f,
            "usage: %s read --control PATH [--log NAME] [--json]\n"
            "                    [--timeout SEC] OFFSET | FROM-TO | FROM-\n"
            "\n"
            "Prints committed records: OFFSET one record; FROM-TO the records FROM..TO\n"
            "(both included); FROM- every committed record from FROM on. Works on any node.\n"
            "Plain output: OFFSET<TAB>RECORD per line (raw bytes). --json: one\n"
            "{\"offset\":N,\"record\":\"...\"} line per record; a record that is not valid\n"
            "UTF-8 is given as \"record_base64\" instead.\n"
            "\n"
            "Exit status: 0 ok; 1 usage; 4 a record is not committed (yet), beyond the end\n"
            "or trimmed (the RLOG_E* name is printed); 5 cannot reach the node; 6 other.\n",
            progname);
}

int cmd_read(struct copts *o, int argc, char **argv)
{
    if (argc != 1) {
        fprintf(stderr, "%s read: expected one OFFSET, FROM-TO or FROM- argument\n", progname);
        usage_read(stderr);
        return EXIT_USAGE;
    }
    uint64_t from, to;
    int single;
    if (parse_range(argv[0], &from, &to, &single) != 0) {
        fprintf(stderr, "%s read: bad offset or range '%s' (OFFSET, FROM-TO with FROM <= TO, "
                "or FROM-)\n", progname, argv[0]);
        return EXIT_USAGE;
    }
    struct buf req = {0};
    size_t at = begin_request(&req, o, single ? 'G' : 'R');
    put_u64(&req, from);
    if (!single)
        put_u64(&req, to);
    end_frame(&req, at);
    struct end e;
    int rc = call_node(o, "read", &req, &e, print_record, o);
    free(req.p);
    if (rc != 0)
        return rc;
    return e.code == 0 ? 0 : report_error("read", &e);
}

/* ---- tail ---- */

void usage_tail(FILE *f)
{
    fprintf(f,
            "usage: %s tail --control PATH [--log NAME] [--from OFFSET | --from-end]\n"
            "                    [--cursor NAME] [--count N] [--json] [--timeout SEC]\n"
            "\n"
            "Streams committed records as they commit, in order and each once, in the\n"
            "format of `read` (OFFSET<TAB>RECORD lines, or --json lines), flushing after\n"
            "each. Works on any node. Starts at OFFSET (history first, then live), or by\n"
            "default (--from-end) at the node's commit offset when the tail starts, and\n"
            "runs until N records were shown (--count), SIGINT/SIGTERM, or the node goes\n"
            "away. --cursor NAME starts at the named cursor's offset (cursor-get) when\n"
            "it exists, else as above; the tail does not move the cursor (cursor-commit\n"
            "does). The node sends a keepalive every second while the log is quiet;\n"
            "--timeout (default 30 s) is how long a silent node is waited for.\n"
            "\n"
            "The node buffers at most %u MiB for a tail and pauses it while the buffer is\n"
            "full; a client that then reads nothing for %d s is dropped.\n"
            "\n"
            "Exit status: 0 --count reached, or stopped by SIGINT/SIGTERM; 1 usage; 4 OFFSET\n"
            "was trimmed; 5 cannot reach the node, or it went away (shut down, killed, or\n"
            "silent for --timeout); 6 other errors.\n",
            progname, CTL_TAIL_BUFFER >> 20, CTL_TAIL_STALL_MS / 1000);
}

int cmd_tail(struct copts *o, int argc, char **argv)
{
    if (argc != 0) {
        fprintf(stderr, "%s tail: unexpected argument '%s'\n", progname, argv[0]);
        usage_tail(stderr);
        return EXIT_USAGE;
    }
    /* SIGINT/SIGTERM end the tail cleanly: read through a signalfd. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    int sfd = signalfd(-1, &sigs, SFD_CLOEXEC | SFD_NONBLOCK);
    if (sfd < 0) {
        fprintf(stderr, "%s tail: signalfd: %s\n", progname, strerror(errno));
        return EXIT_ERROR;
    }
    int fd = connect_any(o, "tail");
    if (fd < 0) {
        close(sfd);
        return EXIT_UNREACHABLE;
    }
    struct buf req = {0};
    size_t at = begin_request(&req, o, 'T');
    put_u64(&req, o->from_set ? o->from : UINT64_MAX);
    put_u64(&req, o->count);
    if (o->cursor) {
        put_u32(&req, (uint32_t)strlen(o->cursor));
        buf_put(&req, o->cursor, strlen(o->cursor));
    }
    end_frame(&req, at);
    char why[1200] = "";
    int rc = send_request(fd, &req, o->timeout_ms, why, sizeof why) == 0 ? -1 : EXIT_UNREACHABLE;
    free(req.p);
    struct end e;
    while (rc < 0) {
        struct pollfd pfd[2] = {{.fd = fd, .events = POLLIN}, {.fd = sfd, .events = POLLIN}};
        int pr = poll(pfd, 2, o->timeout_ms);
        if (pr < 0) {
            if (errno == EINTR)
                continue;
            snprintf(why, sizeof why, "poll: %s", strerror(errno));
            rc = EXIT_UNREACHABLE;
            break;
        }
        if (pr == 0) {
            snprintf(why, sizeof why, "no word from the node for %d s", o->timeout_ms / 1000);
            rc = EXIT_UNREACHABLE;
            break;
        }
        if (pfd[1].revents & POLLIN) {
            rc = 0; /* SIGINT/SIGTERM: a clean stop */
            break;
        }
        unsigned char *p;
        size_t len;
        char tmp[256];
        int fr = recv_frame(fd, &p, &len, now_ms() + o->timeout_ms, tmp, sizeof tmp);
        if (fr <= 0) {
            snprintf(why, sizeof why, "%s", fr == 0 ? "the node closed the connection (did it "
                     "stop?)" : tmp);
            rc = EXIT_UNREACHABLE;
            break;
        }
        if (p[0] == 'E') {
            if (decode_end(p, len, &e) != 0) {
                snprintf(why, sizeof why, "malformed answer from the node");
                rc = EXIT_UNREACHABLE;
            } else {
                rc = e.code == 0 ? 0 : e.code == RLOG_ECLOSED ? EXIT_UNREACHABLE
                                                               : report_error("tail", &e);
                if (e.code == RLOG_ECLOSED) /* shut down, or (--log) the log deleted */
                    snprintf(why, sizeof why, "%s: %s", o->log ? "the tail ended" :
                             "the node went away", e.msg);
            }
        } else if (p[0] == 'r') {
            if (print_record(o, p, len) != 0) {
                snprintf(why, sizeof why, "malformed record frame from the node");
                rc = EXIT_UNREACHABLE;
            } else if (fflush(stdout) != 0) {
                /* A closed pipe (`| head`) ends the tail quietly. */
                rc = errno == EPIPE ? 0 : EXIT_ERROR;
                if (rc)
                    fprintf(stderr, "%s tail: writing stdout: %s\n", progname, strerror(errno));
            }
        } else if ((p[0] != 't' && p[0] != 'k') || len != 9) {
            snprintf(why, sizeof why, "unexpected answer frame from the node");
            rc = EXIT_UNREACHABLE;
        }
        free(p);
    }
    close(fd);
    close(sfd);
    if (rc == EXIT_UNREACHABLE)
        fail_unreachable("tail", why);
    return rc;
}
