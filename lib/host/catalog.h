/*
 * catalog — a host's data directory: whose it is (HOST), who holds it
 * (LOCK), and its logs, one store directory each under logs/NAME/, created,
 * found and deleted by name. It knows directories, not Raft: opening a log
 * is the node's (node/hosts.c asks here where, and whether it may).
 *
 * Crash safety rests on two markers in logs/, which no log name can take
 * (names never start with a dot): logs/.creating.NAME exists from before a
 * create makes NAME/ until the log's first open has ended well, so a create
 * cut short is never mistaken for a log to open (it may hold an empty store
 * that would wait for a leader forever, or a half-written bootstrap);
 * logs/.deleting.NAME.N is a deleted log on its way out, renamed there in
 * one step so that no half-deleted store is ever opened, and emptied again
 * by the next rl_catalog_open if a crash stopped the removal.
 */
#ifndef RL_HOST_CATALOG_H
#define RL_HOST_CATALOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RL_LOG_NAME_MAX 63

struct rl_catalog;

/* Takes the host data directory dir (made if missing, 0700): locks it,
 * then checks or writes its HOST file (id, cluster) and finishes any
 * deletion a crash cut short. Returns 0 and *out, or RLOG_EBUSY (another
 * host holds it), RLOG_EIDENTITY (another host's), RLOG_EFOREIGN (a log's
 * own data directory, or a HOST file that is not ours), RLOG_EIO,
 * RLOG_ENOSPC, RLOG_ENOMEM, with the reason in err. */
int rl_catalog_open(const char *dir, uint64_t id, const char *cluster, struct rl_catalog **out,
                    char *err, size_t errlen);
/* Lets go of the directory (its lock). */
void rl_catalog_close(struct rl_catalog *c);

/* 0 if name may name a log (1 to RL_LOG_NAME_MAX of A-Z a-z 0-9 . _ -, not
 * starting with a dot), else RLOG_EINVAL with the reason in err. */
int rl_catalog_check_name(const char *name, char *err, size_t errlen);

/* The log's store directory, dir/logs/NAME, into path. */
void rl_catalog_log_dir(const struct rl_catalog *c, const char *name, char *path, size_t len);

/* One create, open or delete of a name at a time on a host: 0, or RLOG_EBUSY
 * while another is under way (err says so). rl_catalog_release ends it. */
int rl_catalog_claim(struct rl_catalog *c, const char *name, char *err, size_t errlen);
void rl_catalog_release(struct rl_catalog *c, const char *name);

/* Before a create (name claimed): RLOG_EEXISTS if the log is there and
 * its create ended; else marks the create as under way and makes the
 * directory (*resumed: a create cut short is being finished). */
int rl_catalog_begin_create(struct rl_catalog *c, const char *name, bool *resumed, char *err,
                            size_t errlen);
/* After the create's open: ok, the log is created (the marker goes); not
 * ok, nothing of it stays (the directory, renamed away, and the marker go)
 * unless the create was resumed: a store an earlier try opened may have
 * voted or taken entries, and stays for the next try. */
int rl_catalog_end_create(struct rl_catalog *c, const char *name, bool ok, bool resumed,
                          char *err, size_t errlen);

/* Before opening an existing log (name claimed): 0, or RLOG_ENOTFOUND
 * (no such log, or its create did not end) with the reason in err. */
int rl_catalog_check_open(struct rl_catalog *c, const char *name, char *err, size_t errlen);

/* Deletes a closed log (name claimed): RLOG_ENOTFOUND, RLOG_EBUSY (its
 * store is locked: open here or in another process), RLOG_EIO. */
int rl_catalog_delete(struct rl_catalog *c, const char *name, char *err, size_t errlen);

/* fn(arg, name) for each log, created or being created, in strcmp order,
 * until fn returns non-zero. 0, RLOG_EIO or RLOG_ENOMEM (err says why). */
int rl_catalog_list(struct rl_catalog *c, int (*fn)(void *arg, const char *name), void *arg,
                    char *err, size_t errlen);

#endif
