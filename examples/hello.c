/*
 * hello — the smallest program on liblog's public API: opens a one-node log
 * in DIR (listening on 127.0.0.1:PORT), appends each argument as a record,
 * reads every committed record back and prints it, and closes the log.
 *
 *   hello DIR PORT [RECORD...]
 *
 * A one-node log commits as soon as its own disk has a record; the same
 * calls work unchanged on a three-node cluster (see README.md). The install
 * test (test/install/run) builds this file against an installed liblog with
 * pkg-config alone.
 */
#include <liblog.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: hello DIR PORT [RECORD...]\n");
        return 1;
    }
    char address[64];
    snprintf(address, sizeof address, "127.0.0.1:%s", argv[2]);
    struct rlog_peer self = {1, address};
    struct rlog_config cfg;
    rlog_config_init(&cfg);
    cfg.id = 1;
    cfg.address = address;
    cfg.data_dir = argv[1];
    cfg.peers = &self;
    cfg.n_peers = 1;

    rlog *log;
    char err[256];
    int rv = rlog_open(&cfg, &log, err, sizeof err);
    if (rv != 0) {
        fprintf(stderr, "hello: %s: %s\n", rlog_errname(rv), err);
        return 2;
    }
    for (int i = 3; i < argc; i++) {
        uint64_t off;
        /* A fresh one-node log elects itself first: until then, not leader. */
        for (int tries = 0; (rv = rlog_append(log, argv[i], strlen(argv[i]), &off)) ==
                                RLOG_ENOTLEADER && tries < 100; tries++) {
            rlog_iter *it;
            if (rlog_iter_open(log, 0, UINT64_MAX, &it) == 0) {
                rlog_iter_wait(it, 50);
                rlog_iter_close(it);
            }
        }
        if (rv != 0) {
            fprintf(stderr, "hello: append: %s: %s\n", rlog_errname(rv), rlog_errmsg(log));
            rlog_close(log);
            return 3;
        }
    }
    struct rlog_status st;
    rlog_status(log, &st);
    for (uint64_t off = st.first_offset; off < st.commit_offset; off++) {
        void *rec;
        size_t len;
        if ((rv = rlog_read(log, off, &rec, &len)) != 0) {
            fprintf(stderr, "hello: read %" PRIu64 ": %s\n", off, rlog_errname(rv));
            rlog_close(log);
            return 4;
        }
        printf("%" PRIu64 "\t%.*s\n", off, (int)len, (const char *)rec);
        rlog_free(rec);
    }
    return rlog_close(log) == 0 ? 0 : 5;
}
