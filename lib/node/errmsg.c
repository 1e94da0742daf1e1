/*
 * errmsg — what rlog_errmsg returns: the calling thread's last error
 * message, set by the public calls (and by the loop thread for an append
 * callback's failure); and the names of roles.
 */
#include <stdarg.h>
#include <stdio.h>

#include "node/api.h"

static _Thread_local char tls_err[512];

int rl_fail(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tls_err, sizeof tls_err, fmt, ap);
    va_end(ap);
    return code;
}

void rl_set_errmsg(const char *msg)
{
    snprintf(tls_err, sizeof tls_err, "%s", msg);
}

/* RLOG_EFATAL with the cause after `what` (which ends in ": " or is ""):
 * the loop thread publishes the cause under mu. */
int rl_fail_stopped(rlog *log, const char *what)
{
    char cause[sizeof log->pub_fatal_msg];
    pthread_mutex_lock(&log->mu);
    snprintf(cause, sizeof cause, "%s", log->pub_fatal_msg);
    pthread_mutex_unlock(&log->mu);
    return rl_fail(RLOG_EFATAL, "%s%s", what, cause);
}

const char *rlog_errmsg(rlog *log)
{
    (void)log;
    return tls_err;
}

const char *rlog_role_name(int role)
{
    switch (role) {
    case RLOG_ROLE_LEADER:
        return "leader";
    case RLOG_ROLE_FOLLOWER:
        return "follower";
    case RLOG_ROLE_CANDIDATE:
        return "candidate";
    default:
        return "unavailable";
    }
}
