/*
 * rlogctl node: the requests of a --many-logs node about its logs: 'Q'
 * list-logs, 'Y' create-log, 'D' delete-log (node_many.c does the work).
 */
#include "node.h"

int get_log_name(struct rd *r, char name[CTL_MAX_LOG_NAME + 1])
{
    uint32_t n = get_u32(r);
    const unsigned char *p = n >= 1 && n <= CTL_MAX_LOG_NAME ? get_bytes(r, n) : NULL;
    if (p == NULL || memchr(p, '\0', n) != NULL) {
        r->bad = 1;
        return -1;
    }
    memcpy(name, p, n);
    name[n] = '\0';
    return 0;
}

/* Whether this node holds many logs; if not, the answer says so. */
static int many_only(const char *cmd, struct buf *out)
{
    if (g_node.many)
        return 1;
    char msg[160];
    snprintf(msg, sizeof msg, "%s: this node holds one log (it was not started with "
             "--many-logs)", cmd);
    put_end(out, RLOG_EINVAL, 0, 0, 0, "", msg);
    return 0;
}

/* One 'q' frame: str name, u8 open, i32 code, str error (not open: why),
 * u32 role, u64 leader_id, u64 commit_offset, i32 fatal, str fatal_msg. */
static void put_log_entry(struct buf *out, struct hosted *h)
{
    struct rlog_status st;
    memset(&st, 0, sizeof st);
    int code = 0;
    char error[512] = "";
    rlog *log = log_enter(h);
    if (log != NULL) {
        code = rlog_status(log, &st);
        if (code != 0)
            snprintf(error, sizeof error, "rlog_status: %s", rlog_errmsg(log));
        log_leave(h);
    } else {
        pthread_mutex_lock(&g_node.mu);
        code = h->closing ? RLOG_ECLOSED : h->open_code;
        snprintf(error, sizeof error, "%s", h->closing ? "being deleted" : h->open_error);
        pthread_mutex_unlock(&g_node.mu);
    }
    size_t at = begin_frame(out);
    put_u8(out, 'q');
    put_str(out, h->name);
    put_u8(out, (uint8_t)(log != NULL));
    put_u32(out, (uint32_t)code);
    put_str(out, error);
    put_u32(out, (uint32_t)st.role);
    put_u64(out, st.leader_id);
    put_u64(out, st.commit_offset);
    put_u32(out, (uint32_t)st.fatal);
    put_str(out, st.fatal_msg);
    end_frame(out, at);
}

void handle_list_logs(struct rd *r, struct buf *out)
{
    if (r->pos != r->len) {
        r->bad = 1;
        put_end(out, RLOG_EPROTO, 0, 0, 0, "", "list-logs: trailing bytes");
        return;
    }
    if (!many_only("list-logs", out))
        return;
    unsigned n;
    struct hosted **all = hosted_hold_all(&n);
    for (unsigned i = 0; i < n; i++)
        put_log_entry(out, all[i]);
    hosted_release_all(all, n);
    put_end(out, 0, 0, n, 0, "", "");
}

/* 'Y' u8 join, u32 n, n x u64 member id (none: every host), str name. */
void handle_create_log(struct rd *r, struct buf *out)
{
    int join = get_u8(r);
    uint32_t n = get_u32(r);
    uint64_t ids[NODE_MAX_PEERS];
    for (uint32_t i = 0; i < n && i < NODE_MAX_PEERS; i++)
        ids[i] = get_u64(r);
    char name[CTL_MAX_LOG_NAME + 1];
    if (r->bad || join > 1 || n > NODE_MAX_PEERS || get_log_name(r, name) != 0 ||
        r->pos != r->len) {
        r->bad = 1;
        put_end(out, RLOG_EPROTO, 0, 0, 0, "", "create-log: malformed request");
        return;
    }
    if (!many_only("create-log", out))
        return;
    char err[512] = "";
    int rc = many_create(name, join, ids, n, err, sizeof err);
    put_end(out, rc, 0, 0, 0, "", rc ? err : "");
}

/* 'D' str name. */
void handle_delete_log(struct rd *r, struct buf *out)
{
    char name[CTL_MAX_LOG_NAME + 1];
    if (get_log_name(r, name) != 0 || r->pos != r->len) {
        r->bad = 1;
        put_end(out, RLOG_EPROTO, 0, 0, 0, "", "delete-log: malformed request");
        return;
    }
    if (!many_only("delete-log", out))
        return;
    char err[512] = "";
    int rc = many_delete(name, err, sizeof err);
    put_end(out, rc, 0, 0, 0, "", rc ? err : "");
}
