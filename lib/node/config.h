/*
 * config — the configuration's defaults (rlog_config_init) and checks
 * (node/config.c).
 */
#ifndef RL_NODE_CONFIG_H
#define RL_NODE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "liblog.h"

#define DEFAULT_SEGMENT (64u << 20)
#define DEFAULT_MAX_RECORD (512u << 10)
#define DEFAULT_BATCH_BYTES (1u << 20)
#define DEFAULT_BATCH_RECORDS 8192u
#define DEFAULT_CACHE (64u << 20)
#define DEFAULT_APPENDS_IN_FLIGHT 16384u
#define DEFAULT_APPEND_BYTES_IN_FLIGHT (256ull << 20)
#define DEFAULT_FETCH_SERVE_MAX 4u
#define DEFAULT_FETCH_SERVE_BYTES (16u << 20)
#define RL_MAX_CURSORS_LIMIT (1u << 20) /* rlog_config.max_cursors */
#define DEFAULT_HELD_MAX 64u
#define DEFAULT_MAX_FORWARD_BYTES (64ull << 20)

enum { RL_ADDR_OK, RL_ADDR_SYNTAX, RL_ADDR_PORT_RANGE };

/* "host:port" with a non-empty host and a decimal port in 1..65535:
 * RL_ADDR_OK (the host is copied out), RL_ADDR_SYNTAX, or RL_ADDR_PORT_RANGE
 * (a number, but not a port: worth its own message). */
int rl_check_address(const char *a, char *host, size_t hostlen);
/* The message for a bad address in `field`; RLOG_EINVAL. */
int rl_bad_address(char *err, size_t errlen, const char *field, const char *a, int problem);
/* 127.0.0.0/8, ::1, localhost: where plain text is allowed by default. */
bool rl_is_loopback(const char *host);
/* 0, or RLOG_EINVAL with err naming the first bad field. */
int rl_config_validate(const struct rlog_config *c, char *err, size_t errlen);
/* A cluster name: at most RL_CLUSTER_NAME_MAX printable ASCII characters,
 * no spaces ("" is no name). */
bool rl_valid_cluster_name(const char *name);

#endif
