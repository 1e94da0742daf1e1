#include "lib/ports.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

/* The lowest port the kernel hands out to outgoing connections: a port
 * at or above it can be taken by any process's connect() between the
 * check here and the test node's listen (address already in use). */
static int ephemeral_low(void)
{
    int lo = 32768, hi = 60999;
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
    if (f) {
        if (fscanf(f, "%d %d", &lo, &hi) != 2)
            lo = 32768;
        fclose(f);
    }
    return lo;
}

static bool bindable(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bool ok = fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

/* Where this process's next search starts: never a port it returned. */
static int cursor;

int th_free_ports(int base, int n)
{
    int lo = TH_PORT_LOW, hi = ephemeral_low();
    if (hi - lo < 4 * n + 100)
        hi = lo + 20000; /* an odd range setting: take the old behaviour */
    int span = hi - lo - n;
    if (!cursor)
        cursor = lo + (int)(((unsigned)base + (unsigned)getpid() * 4u) % (unsigned)span);
    for (int tries = 0; tries < span; tries++) {
        int p = cursor;
        cursor = lo + (cursor - lo + n) % span;
        bool ok = true;
        for (int i = 0; i < n && ok; i++)
            ok = bindable(p + i);
        if (ok)
            return p;
    }
    return base;
}

int th_free_port(int base)
{
    return th_free_ports(base, 1);
}
