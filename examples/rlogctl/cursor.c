/*
 * rlogctl cursor-commit and cursor-get: named consumer positions
 * (rlog_cursor_commit(3)), on any node. `tail --cursor` is in read.c.
 */
#include "client.h"

void usage_cursor_commit(FILE *f)
{
    fprintf(f,
            "usage: %s cursor-commit --control PATH [--log NAME] [--json]\n"
            "                             [--timeout SEC] NAME OFFSET\n"
            "\n"
            "Sets the named cursor NAME (1..64 printable ASCII bytes, no spaces) to OFFSET\n"
            "(at most the committed end) on every replica (rlog_cursor_commit), on any\n"
            "node: a follower forwards it to the leader. Returns once the command is\n"
            "committed and shown on this node.\n"
            "\n"
            "Exit status: 0 done; 1 usage; 3 no leader known or reachable (nothing\n"
            "committed); 5 cannot reach the node; 6 other errors (RLOG_EINVAL: OFFSET is\n"
            "beyond the committed end); 8 in doubt (commit again).\n",
            progname);
}

void usage_cursor_get(FILE *f)
{
    fprintf(f,
            "usage: %s cursor-get --control PATH [--log NAME] [--json]\n"
            "                          [--timeout SEC] NAME\n"
            "\n"
            "Prints the named cursor's offset as this node knows it (rlog_cursor_get).\n"
            "\n"
            "Exit status: 0 done; 1 usage; 4 no such cursor (RLOG_ENOTFOUND), or this\n"
            "node cannot know it (RLOG_ETRIMMED: it caught up past a trim; ask another\n"
            "node); 5 cannot reach the node; 6 other errors.\n",
            progname);
}

/* The request: type, the name's length and bytes, then (commit) the offset. */
int cmd_cursor(const char *cmd, struct copts *o, int argc, char **argv)
{
    int commit = strcmp(cmd, "cursor-commit") == 0;
    void (*help)(FILE *) = commit ? usage_cursor_commit : usage_cursor_get;
    uint64_t offset = 0;
    if (argc != (commit ? 2 : 1)) {
        fprintf(stderr, "%s %s: takes %s\n", progname, cmd, commit ? "NAME OFFSET" : "NAME");
        help(stderr);
        return EXIT_USAGE;
    }
    size_t n = strlen(argv[0]);
    if (n == 0 || n > 64) {
        fprintf(stderr, "%s %s: NAME must be 1..64 bytes\n", progname, cmd);
        return EXIT_USAGE;
    }
    if (commit && parse_u64(argv[1], &offset) != 0) {
        fprintf(stderr, "%s %s: OFFSET must be a number, not '%s'\n", progname, cmd, argv[1]);
        return EXIT_USAGE;
    }
    struct buf req = {0};
    size_t at = begin_request(&req, o, commit ? 'C' : 'K');
    put_u32(&req, (uint32_t)n);
    buf_put(&req, argv[0], n);
    if (commit)
        put_u64(&req, offset);
    end_frame(&req, at);
    struct end e;
    int rc = call_node(o, cmd, &req, &e, NULL, NULL);
    free(req.p);
    if (rc != 0)
        return rc;
    if (e.code != 0)
        return report_error(cmd, &e);
    if (o->json) {
        printf("{\"cursor\":");
        json_string(stdout, (const unsigned char *)argv[0], n);
        printf(",\"offset\":%" PRIu64 "}\n", commit ? offset : e.value);
    } else if (!commit) {
        printf("%" PRIu64 "\n", e.value);
    }
    fflush(stdout);
    return 0;
}
