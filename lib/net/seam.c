/*
 * seam — the simulator's transport (rl_env, test/sim/world.c) behind
 * lib/net's calls. The world connects nodes with in-memory streams and
 * tells each side who the other is, so there is no hello and no TLS here:
 * its streams become plain conns, handed on as the real ones are.
 */
#include "net/internal.h"

#include <stdlib.h>
#include <string.h>

#include "common/env.h"
#include "liblog.h"

struct seam_req {
    struct raft_uv_connect req;
    struct rl_net *net;
    void (*cb)(void *arg, struct rl_conn *conn, int status);
    void *arg;
};

int rl_net__seam_init(struct rl_net *net)
{
    int rv = rl_transport_init(&net->uvt, net->cfg.loop);
    if (rv == 0)
        rv = net->uvt.init(&net->uvt, net->cfg.self, net->address);
    if (rv != 0)
        return RLOG_EIO;
    net->uvt.data = net;
    net->seam = true;
    return 0;
}

static void free_handle(uv_handle_t *h)
{
    free(h);
}

/* A started plain conn over stream, not yet with callbacks (the owner sets
 * them before the loop reads anything), or NULL. */
static struct rl_conn *wrap(uv_stream_t *stream)
{
    struct rl_conn *conn;
    if (rl_conn_new(stream, NULL, &conn) != 0)
        return NULL;
    struct rl_conn_cbs none = {0};
    if (rl_conn_start(conn, &none) != 0) {
        rl_conn_close(conn);
        return NULL;
    }
    return conn;
}

static void accepted(struct raft_uv_transport *t, raft_id id, const char *address,
                     struct uv_stream_s *stream)
{
    struct rl_net *net = t->data;
    (void)address;
    struct in_entry *e = net->closing ? NULL : calloc(1, sizeof *e);
    if (!e) {
        uv_close((uv_handle_t *)stream, free_handle);
        return;
    }
    if (!(e->conn = wrap(stream))) {
        free(e);
        return;
    }
    e->net = net;
    e->handed = true;
    strcpy(e->ip, "sim");
    e->next = net->ins;
    if (net->ins)
        net->ins->prev = e;
    net->ins = e;
    net->n_in++;
    net->cfg.accept(net->cfg.arg, id, e->conn);
}

int rl_net__seam_listen(struct rl_net *net, char *err, size_t errlen)
{
    int rv = net->uvt.listen(&net->uvt, accepted);
    if (rv != 0)
        snprintf(err, errlen, "%s", net->uvt.errmsg);
    return rv == 0 ? 0 : UV_EIO;
}

static void connected(struct raft_uv_connect *req, struct uv_stream_s *stream, int status)
{
    struct seam_req *s = req->data;
    struct rl_net *net = s->net;
    struct rl_conn *conn = NULL;
    if (status == 0 && net->closing) {
        uv_close((uv_handle_t *)stream, free_handle);
        status = RAFT_CANCELED;
    }
    if (status == 0 && !(conn = wrap(stream)))
        status = RAFT_NOMEM;
    s->cb(s->arg, conn, status == 0 ? 0 : status == RAFT_CANCELED ? UV_ECANCELED : UV_ECONNREFUSED);
    free(s);
    net->busy--;
    rl_net__maybe_done(net);
}

int rl_net__seam_connect(struct rl_net *net, uint64_t id, const char *address,
                         void (*cb)(void *, struct rl_conn *, int), void *arg)
{
    struct seam_req *s = calloc(1, sizeof *s);
    if (!s)
        return UV_ENOMEM;
    *s = (struct seam_req){.net = net, .cb = cb, .arg = arg};
    s->req.data = s;
    if (net->uvt.connect(&net->uvt, &s->req, id, address, connected) != 0) {
        free(s);
        return UV_ECONNREFUSED;
    }
    net->busy++;
    return 0;
}

static void closed(struct raft_uv_transport *t)
{
    struct rl_net *net = t->data;
    rl_transport_fini(t);
    net->busy--;
    rl_net__maybe_done(net);
}

void rl_net__seam_close(struct rl_net *net)
{
    net->busy++;
    net->uvt.close(&net->uvt, closed);
}
