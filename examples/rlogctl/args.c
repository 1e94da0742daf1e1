/*
 * rlogctl: parsing shared by the commands' arguments: numbers, the node's
 * --cluster list, read's offset ranges, node ids and HOST:PORT addresses.
 * Each function says what is wrong on stderr (where the caller does not).
 */
#include "args.h"

int parse_u64(const char *s, uint64_t *out)
{
    if (s == NULL || *s < '0' || *s > '9')
        return -1;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0')
        return -1;
    *out = (uint64_t)v;
    return 0;
}

/* Splits --cluster `text` ("ID=HOST:PORT,...") in `list`, a copy of it that
 * peers[] then point into. Syntax only: the meaning (duplicate ids, own id
 * present, address valid...) is rlog_open's to check, and it names the
 * field. An empty entry ("1=a,,2=b", a leading or trailing comma) is
 * refused: it is a typo, and skipping it could drop a peer unnoticed.
 * Returns 0, or -1 after saying what is wrong. */
int parse_cluster(const char *text, char *list, struct rlog_peer *peers, unsigned max,
                         unsigned *n)
{
    *n = 0;
    if (*list == '\0') {
        fprintf(stderr, "%s node: --cluster is empty\n", progname);
        return -1;
    }
    for (char *tok = list, *next; tok != NULL; tok = next) {
        next = strchr(tok, ',');
        if (next != NULL)
            *next++ = '\0';
        if (*tok == '\0') {
            fprintf(stderr, "%s node: --cluster '%s': entry %u is empty (a doubled, leading or "
                    "trailing comma?)\n", progname, text, *n + 1);
            return -1;
        }
        char *eq = strchr(tok, '=');
        if (eq == NULL || eq[1] == '\0') {
            fprintf(stderr, "%s node: --cluster entry '%s' is not ID=HOST:PORT\n", progname, tok);
            return -1;
        }
        *eq = '\0';
        if (*n == max) {
            fprintf(stderr, "%s node: --cluster has more than %u entries\n", progname, max);
            return -1;
        }
        if (parse_u64(tok, &peers[*n].id) != 0) {
            fprintf(stderr, "%s node: --cluster id '%s' is not a number\n", progname, tok);
            return -1;
        }
        peers[(*n)++].address = eq + 1;
    }
    return 0;
}

int parse_range(const char *s, uint64_t *from, uint64_t *to_excl, int *single)
{
    const char *dash = strchr(s, '-');
    char tmp[64];
    if (dash == NULL) {
        *single = 1;
        if (parse_u64(s, from) != 0 || *from == UINT64_MAX)
            return -1;
        *to_excl = *from + 1;
        return 0;
    }
    *single = 0;
    size_t k = (size_t)(dash - s);
    if (k == 0 || k >= sizeof tmp)
        return -1;
    memcpy(tmp, s, k);
    tmp[k] = '\0';
    if (parse_u64(tmp, from) != 0)
        return -1;
    if (dash[1] == '\0') {
        *to_excl = UINT64_MAX;
        return 0;
    }
    uint64_t to;
    if (parse_u64(dash + 1, &to) != 0 || to < *from || to == UINT64_MAX)
        return -1;
    *to_excl = to + 1;
    return 0;
}

int parse_node_id(const char *cmd, const char *s, uint64_t *id)
{
    if (parse_u64(s, id) != 0 || *id == 0) {
        fprintf(stderr, "%s %s: node id must be a number >= 1, not '%s'\n", progname, cmd, s);
        return -1;
    }
    return 0;
}

/* The shape of HOST:PORT, before sending it: a port that is a number but
 * not a port gets its own message. The node checks the rest. 0 or -1. */
int check_host_port(const char *cmd, const char *a)
{
    const char *colon = strrchr(a, ':');
    uint64_t port;
    if (colon == NULL || colon == a || strlen(a) > 255 || parse_u64(colon + 1, &port) != 0) {
        fprintf(stderr, "%s %s: address '%s' is not HOST:PORT\n", progname, cmd, a);
        return -1;
    }
    if (port < 1 || port > 65535) {
        fprintf(stderr, "%s %s: address '%s': port %s is out of range (1..65535)\n", progname,
                cmd, a, colon + 1);
        return -1;
    }
    return 0;
}
