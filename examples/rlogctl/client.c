/*
 * rlogctl: what the client commands share: reaching a node through one of
 * the control sockets given, one request and its answer, reporting an
 * error answer as a message and an exit status, and printing records
 * (plain, or JSON with base64 for bytes that are not UTF-8).
 */
#include "client.h"

void fail_unreachable(const char *cmd, const char *why)
{
    fprintf(stderr, "%s %s: %s\n", progname, cmd, why);
}

/* Prints an error end frame; returns the exit code. */
int report_error(const char *cmd, const struct end *e)
{
    if (e->code == RLOG_ENOTLEADER) {
        if (e->flags & FLAG_INDETERMINATE)
            fprintf(stderr, "%s %s: leadership lost before commit: %s\n", progname, cmd, e->msg);
        if (e->leader_id)
            fprintf(stderr, "%s %s: not the leader; leader is %" PRIu64 " at %s\n", progname,
                    cmd, e->leader_id, e->leader_addr);
        else
            fprintf(stderr, "%s %s: not the leader; leader unknown (election in progress?)\n",
                    progname, cmd);
        return EXIT_NOTLEADER;
    }
    fprintf(stderr, "%s %s: %s: %s\n", progname, cmd, rlog_errname(e->code),
            e->msg[0] ? e->msg : rlog_strerror(e->code));
    if (e->code == RLOG_ENOTFOUND || e->code == RLOG_ETRIMMED)
        return EXIT_NOTFOUND;
    if (e->code == RLOG_EPROTO)
        return EXIT_UNREACHABLE;
    if (e->code == RLOG_EINDOUBT || (e->flags & FLAG_INDETERMINATE))
        return EXIT_INDOUBT;
    return EXIT_ERROR;
}

void json_string(FILE *f, const unsigned char *p, size_t n)
{
    fputc('"', f);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = p[i];
        switch (ch) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        case '\b': fputs("\\b", f); break;
        case '\f': fputs("\\f", f); break;
        default:
            if (ch < 0x20 || ch == 0x7f)
                fprintf(f, "\\u%04x", ch);
            else
                fputc(ch, f);
        }
    }
    fputc('"', f);
}

static int valid_utf8(const unsigned char *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = p[i];
        size_t k;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            k = 1;
            cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            k = 2;
            cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            k = 3;
            cp = c & 0x07;
        } else {
            return 0;
        }
        if (n - i <= k)
            return 0;
        for (size_t j = 1; j <= k; j++) {
            if ((p[i + j] & 0xc0) != 0x80)
                return 0;
            cp = cp << 6 | (p[i + j] & 0x3f);
        }
        if ((k == 1 && cp < 0x80) || (k == 2 && cp < 0x800) || (k == 3 && cp < 0x10000) ||
            cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += k + 1;
    }
    return 1;
}

static void base64(FILE *f, const unsigned char *p, size_t n)
{
    static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    fputc('"', f);
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < n)
            v |= p[i + 2];
        fputc(t[v >> 18 & 63], f);
        fputc(t[v >> 12 & 63], f);
        fputc(i + 1 < n ? t[v >> 6 & 63] : '=', f);
        fputc(i + 2 < n ? t[v & 63] : '=', f);
    }
    fputc('"', f);
}

int print_record(void *arg, const unsigned char *p, size_t len)
{
    const struct copts *o = arg;
    struct rd r = {.p = p, .len = len};
    if (get_u8(&r) != 'r')
        return -1;
    uint64_t off = get_u64(&r);
    if (r.bad)
        return -1;
    const unsigned char *rec = p + r.pos;
    size_t n = len - r.pos;
    if (o->json) {
        printf("{\"offset\":%" PRIu64 ",", off);
        if (valid_utf8(rec, n)) {
            fputs("\"record\":", stdout);
            json_string(stdout, rec, n);
        } else {
            fputs("\"record_base64\":", stdout);
            base64(stdout, rec, n);
        }
        fputs("}\n", stdout);
    } else {
        printf("%" PRIu64 "\t", off);
        fwrite(rec, 1, n, stdout);
        fputc('\n', stdout);
    }
    return 0;
}

const char *ctl_path(const struct copts *o, unsigned i)
{
    return o->n_controls ? o->controls[i] : o->control;
}

size_t begin_request(struct buf *b, const struct copts *o, uint8_t type)
{
    size_t at = begin_frame(b);
    if (o->log != NULL) {
        put_u8(b, '@');
        put_str(b, o->log);
    }
    put_u8(b, type);
    return at;
}

int connect_any(const struct copts *o, const char *cmd)
{
    char why[512] = "";
    unsigned tries = o->n_controls ? o->n_controls : 1;
    for (unsigned i = 0; i < tries; i++) {
        int fd = ctl_connect(ctl_path(o, i), why, sizeof why);
        if (fd >= 0)
            return fd;
    }
    fail_unreachable(cmd, why);
    return -1;
}

/* Connects, sends one request, and receives its data frames (passed to
 * on_data, which may be NULL) up to the end frame. Returns 0, or
 * EXIT_UNREACHABLE after saying why. */
int call_node(const struct copts *o, const char *cmd, const struct buf *req, struct end *e,
                     int (*on_data)(void *arg, const unsigned char *p, size_t len), void *arg)
{
    int fd = connect_any(o, cmd);
    if (fd < 0)
        return EXIT_UNREACHABLE;
    char why[512];
    int rc = send_request(fd, req, o->timeout_ms, why, sizeof why);
    if (rc == 0)
        rc = recv_answer(fd, o->timeout_ms, e, on_data, arg, why, sizeof why);
    close(fd);
    fflush(stdout);
    if (rc != 0) {
        fail_unreachable(cmd, why);
        return EXIT_UNREACHABLE;
    }
    return 0;
}
