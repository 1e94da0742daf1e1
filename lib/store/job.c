/*
 * job — what every job of the writer shares: recording its failure. Kept
 * below the files that do the jobs' work (write_append.c, write_edit.c)
 * and the queue that runs them (writer.c).
 */
#include <stdarg.h>
#include <stdio.h>

#include "store/job.h"

void rl_job_fail(struct rl_batch *b, int err, const char *fmt, ...)
{
    if (b->err)
        return;
    b->err = err;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b->errmsg, sizeof b->errmsg, fmt, ap);
    va_end(ap);
}
