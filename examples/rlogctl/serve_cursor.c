/*
 * rlogctl node: the named cursor requests ('C' commit, 'K' get; see
 * cursor.c), each one liblog call inside log_enter/log_leave.
 */
#include "node.h"

void handle_cursor(struct hosted *h, uint8_t op, struct rd *r, struct buf *out)
{
    char name[65];
    uint32_t n = get_u32(r);
    const unsigned char *p = n <= 64 ? get_bytes(r, n) : NULL;
    uint64_t offset = op == 'C' ? get_u64(r) : 0;
    if (p == NULL || r->bad || r->pos != r->len) {
        r->bad = 1;
        put_end(out, RLOG_EPROTO, 0, 0, 0, "", "cursor: malformed request");
        return;
    }
    /* A NUL inside is refused by liblog's own check of the name. */
    memcpy(name, p, n);
    name[n] = '\0';
    if (memchr(p, '\0', n) != NULL)
        name[0] = ' ';
    rlog *log = log_enter(h);
    if (log == NULL) {
        put_refused(out, h);
        return;
    }
    int rc = op == 'C' ? rlog_cursor_commit(log, name, offset)
                       : rlog_cursor_get(log, name, &offset);
    char msg[512];
    snprintf(msg, sizeof msg, "%s", rc ? rlog_errmsg(log) : "");
    log_leave(h);
    if (rc != 0) {
        put_end(out, rc, 0, 0, 0, "", msg);
        return;
    }
    if (op == 'C')
        node_log("cursor %s committed at offset %" PRIu64, name, offset);
    put_end(out, 0, 0, offset, 0, "", "");
}
