/*
 * errors — the error message and the recovery note of a store, the two
 * helpers every file of the store uses (so they sit below all of them).
 * Codes come from the RLOG_E* set; errno values are mapped by
 * rl_errno_to_rlog (fs/fs.h).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "store/internal.h"

int rl_store_fail(struct rl_store *s, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->errmsg, sizeof s->errmsg, fmt, ap);
    va_end(ap);
    return code;
}

void rl_store_add_note(struct rl_store *s, const char *fmt, ...)
{
    size_t used = strlen(s->note);
    if (used + 3 >= sizeof s->note)
        return;
    if (used) {
        strcpy(s->note + used, "; ");
        used += 2;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->note + used, sizeof s->note - used, fmt, ap);
    va_end(ap);
}
