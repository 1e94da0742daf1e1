/*
 * cluster3 — a 3-node liblog cluster in the calling process on 127.0.0.1,
 * for the benches: data under <dir>/<name>-<pid>, ports from base_port.
 * The caller may adjust each node's configuration (a state machine, say)
 * through `tune` before it opens.
 */
#ifndef RL_BENCH_CLUSTER3_H
#define RL_BENCH_CLUSTER3_H

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "liblog.h"

struct cluster3 {
    char top[512];
    char addrs[3][32], dirs[3][600];
    struct rlog_peer peers[3];
    rlog *nodes[3];
    int leader;
};

/* Opens node i (again, after a close): 0, or 1 with the reason on stderr. */
static inline int cluster3_open_node(struct cluster3 *c, int i,
                                     void (*tune)(int i, struct rlog_config *cfg))
{
    struct rlog_config cfg;
    rlog_config_init(&cfg);
    cfg.id = (uint64_t)i + 1;
    cfg.address = c->addrs[i];
    cfg.data_dir = c->dirs[i];
    cfg.peers = c->peers;
    cfg.n_peers = 3;
    if (tune)
        tune(i, &cfg);
    char err[256];
    if (rlog_open(&cfg, &c->nodes[i], err, sizeof err) != 0) {
        fprintf(stderr, "open: %s\n", err);
        return 1;
    }
    return 0;
}

/* Opens the three nodes and waits (up to 10 s) for a leader: 0, or 1 with
 * the reason on stderr. */
static inline int cluster3_open(struct cluster3 *c, const char *dir, const char *name,
                                int base_port, void (*tune)(int i, struct rlog_config *cfg))
{
    snprintf(c->top, sizeof c->top, "%s/%s-%d", dir, name, (int)getpid());
    for (int i = 0; i < 3; i++) {
        snprintf(c->addrs[i], sizeof c->addrs[i], "127.0.0.1:%d", base_port + i);
        snprintf(c->dirs[i], sizeof c->dirs[i], "%s/n%d", c->top, i + 1);
        c->peers[i] = (struct rlog_peer){(uint64_t)i + 1, c->addrs[i]};
    }
    for (int i = 0; i < 3; i++)
        if (cluster3_open_node(c, i, tune) != 0)
            return 1;
    c->leader = -1;
    for (int t = 0; t < 400 && c->leader < 0; t++) {
        usleep(25000);
        for (int i = 0; i < 3; i++) {
            struct rlog_status st;
            if (rlog_status(c->nodes[i], &st) == 0 && st.role == RLOG_ROLE_LEADER)
                c->leader = i;
        }
    }
    if (c->leader < 0) {
        fprintf(stderr, "no leader\n");
        return 1;
    }
    return 0;
}

/* Closes the nodes and removes their data: 0, or 1 if it could not. */
static inline int cluster3_close(struct cluster3 *c)
{
    char cmd[600];
    for (int i = 0; i < 3; i++)
        rlog_close(c->nodes[i]);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", c->top);
    return system(cmd) == 0 ? 0 : 1;
}

#endif
