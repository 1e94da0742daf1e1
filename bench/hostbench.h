/*
 * hostbench — what bench_idle and bench_hosts share: a monotonic clock in
 * seconds, free loopback ports below the kernel's ephemeral range (as the
 * tests' ports are), and a log_fn that shows errors only (the INSECURE
 * notice of every loopback replica is known).
 */
#ifndef RL_BENCH_HOSTBENCH_H
#define RL_BENCH_HOSTBENCH_H

#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static inline double hb_now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* The next port at or above *next that nothing listens on; -1 if none
 * below 32000. */
static inline int hb_free_port(int *next)
{
    for (; *next < 32000; (*next)++) {
        int s = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)*next),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        int ok = s >= 0 && bind(s, (struct sockaddr *)&a, sizeof a) == 0;
        if (s >= 0)
            close(s);
        if (ok)
            return (*next)++;
    }
    return -1;
}

static inline void hb_quiet(void *arg, int level, const char *line)
{
    (void)arg;
    if (level >= 3)
        fprintf(stderr, "%s\n", line);
}

#endif
