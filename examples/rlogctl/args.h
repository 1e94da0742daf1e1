/*
 * rlogctl: parsing shared by the commands' arguments (args.c).
 */
#ifndef RLOGCTL_ARGS_H
#define RLOGCTL_ARGS_H

#include "rlogctl.h"

/* A decimal number, the whole string: 0, or -1. */
int parse_u64(const char *s, uint64_t *out);
int parse_cluster(const char *text, char *list, struct rlog_peer *peers, unsigned max,
                  unsigned *n);
int parse_range(const char *s, uint64_t *from, uint64_t *to_excl, int *single);
int parse_node_id(const char *cmd, const char *s, uint64_t *id);
int check_host_port(const char *cmd, const char *a);

#endif
