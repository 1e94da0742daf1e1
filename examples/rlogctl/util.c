/*
 * rlogctl: small utilities every part of the program uses (clock, counts in
 * messages, allocation that cannot fail).
 */
#include "rlogctl.h"

int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* `one` or `many`, as the count n wants ("1 record", "2 records"). */
const char *plural(uint64_t n, const char *one, const char *many)
{
    return n == 1 ? one : many;
}

void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL) {
        fprintf(stderr, "%s: out of memory\n", progname);
        exit(EXIT_ERROR);
    }
    return p;
}
