/*
 * rlogctl offset-for-time: rlog_offset_for_time on any node, for a time
 * given as microseconds since the Unix epoch or relative to now.
 */
#include "client.h"

#include <ctype.h>
#include <time.h>

void usage_offset_for_time(FILE *f)
{
    fprintf(f,
            "usage: %s offset-for-time --control PATH [--log NAME] [--json]\n"
            "                               [--timeout SEC] TIME\n"
            "\n"
            "Prints the offset of the first committed record whose batch time (the\n"
            "leader's wall clock when it formed the record's batch), or an earlier\n"
            "record's, is at or after TIME (rlog_offset_for_time), on any node.\n"
            "TIME is microseconds since the Unix epoch, `now`, or now minus a duration:\n"
            "`now-5m` or `-5m` (units us, ms, s, m, h, d), measured by this host's clock.\n"
            "\n"
            "Exit status: 0 found; 4 no committed record that late (the commit offset\n"
            "is printed, then the error); 1 usage; 5 cannot reach the node; 6 other errors.\n",
            progname);
}

/* TIME as above into microseconds since the epoch; -1 if it is not one. */
static int parse_time(const char *s, uint64_t *out)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t now = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
    if (isdigit((unsigned char)s[0]))
        return parse_u64(s, out);
    if (strncmp(s, "now", 3) == 0)
        s += 3;
    if (!*s) {
        *out = now;
        return 0;
    }
    if (*s++ != '-' || !isdigit((unsigned char)*s))
        return -1;
    char *end;
    errno = 0;
    unsigned long long n = strtoull(s, &end, 10);
    static const struct { const char *name; uint64_t us; } units[] = {
        {"us", 1}, {"ms", 1000}, {"s", 1000000}, {"m", 60000000},
        {"h", 3600000000ull}, {"d", 86400000000ull}};
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (strcmp(end, units[i].name) == 0) {
            if (errno || n > UINT64_MAX / units[i].us)
                return -1;
            uint64_t ago = n * units[i].us;
            *out = now > ago ? now - ago : 0;
            return 0;
        }
    return -1;
}

int cmd_offset_for_time(struct copts *o, int argc, char **argv)
{
    uint64_t t;
    if (argc != 1 || parse_time(argv[0], &t) != 0) {
        if (argc == 1)
            fprintf(stderr, "%s offset-for-time: TIME must be microseconds since the epoch, "
                    "now, or now-DURATION (e.g. -5m), not '%s'\n", progname, argv[0]);
        else
            fprintf(stderr, "%s offset-for-time: expected one TIME\n", progname);
        usage_offset_for_time(stderr);
        return EXIT_USAGE;
    }
    struct buf req = {0};
    size_t at = begin_request(&req, o, 'Z');
    put_u64(&req, t);
    end_frame(&req, at);
    struct end e;
    int rc = call_node(o, "offset-for-time", &req, &e, NULL, NULL);
    free(req.p);
    if (rc != 0)
        return rc;
    if (e.code != 0 && e.code != RLOG_ENOTFOUND)
        return report_error("offset-for-time", &e);
    if (o->json)
        printf("{\"time_us\":%" PRIu64 ",\"offset\":%" PRIu64 ",\"found\":%s}\n", t, e.value,
               e.code == 0 ? "true" : "false");
    else
        printf("%" PRIu64 "\n", e.value);
    fflush(stdout);
    return e.code == 0 ? 0 : report_error("offset-for-time", &e);
}
