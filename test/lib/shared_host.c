/*
 * With LIBLOG_TEST_SHARED_HOST=1 in the environment, every rlog_open of a
 * test binary opens its log on one shared host loop thread (lib/host): the
 * unit tests of clusters then check that a log on a borrowed loop opens,
 * serves and closes exactly as one with its own thread (make check runs
 * the cluster tests both ways). Off otherwise: nothing changes.
 *
 * The host starts on the first open in each process, not at load: Check
 * forks a child per test, and a thread started in the parent does not
 * exist in the child.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "host/host.h"
#include "node/node.h"

static pthread_mutex_t host_mu = PTHREAD_MUTEX_INITIALIZER;
static struct rl_host *host;
static pid_t host_pid;

static struct rl_host *shared_host_get(void)
{
    pthread_mutex_lock(&host_mu);
    if (!host || host_pid != getpid()) {
        char err[256];
        if (rl_host_start(&host, err, sizeof err) != 0) {
            fprintf(stderr, "LIBLOG_TEST_SHARED_HOST: %s\n", err);
            abort();
        }
        host_pid = getpid();
    }
    struct rl_host *h = host;
    pthread_mutex_unlock(&host_mu);
    return h;
}

__attribute__((constructor)) static void shared_host_on(void)
{
    const char *on = getenv("LIBLOG_TEST_SHARED_HOST");
    if (on && strcmp(on, "1") == 0)
        rl_shared_host = shared_host_get;
}

__attribute__((destructor)) static void shared_host_stop(void)
{
    if (!host || host_pid != getpid())
        return;
    /* A test that leaves a log open just exits: the host stays (EBUSY). */
    if (rl_host_stop(host) == 0)
        host = NULL;
}
