/*
 * floor — a damaged entry that libraft must load, cut and fetched again
 * without ever voting on the shorter log.
 *
 * libraft loads every entry after its latest snapshot descriptor into
 * memory when it starts. A committed entry there that fails its checksum
 * can be neither handed to it nor repaired in place first (no peer is
 * reachable before libraft starts), and refusing the open would leave a
 * node down for one flipped bit. So the open cuts the log before the first
 * such entry (rl_floor_cut_damaged_tail, before libraft or the node load
 * anything), and the leader brings the cut entries back like any lagging
 * follower's.
 *
 * The cut may drop entries this node acknowledged: a node that forgot one
 * could vote a candidate lacking it into office, and a committed entry
 * would be lost. So before the cut, the log's real end (index and term of
 * its last entry) is written to FLOOR, durably, and until the log is back
 * at least as up to date as that end again the node does not campaign
 * (ticks and TimeoutNow are held, hold.c) and a RequestVote whose
 * candidate's log is behind the floor is dropped: the candidate gets no
 * vote from this node, as from a node that is down. Once the log is back
 * past the floor, FLOOR is removed; a crash before then finds it at the
 * next open.
 *
 * The price is liveness, never safety: while a majority of the voters are
 * cut this way at once, no node can win an election until one of them gets
 * its entries back, which takes a leader. An operator who knows the cut
 * entries are held by a majority elsewhere may remove FLOOR by hand.
 */
#include "raftio/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "common/bytes.h"
#include "common/env.h"
#include "fs/fs.h"

#define FLOOR_NAME "FLOOR"
#define FLOOR_MAGIC 0x31524c46474f4c52ull /* "RLOGFLR1" */
#define FLOOR_SIZE 32u

/* 1: no FLOOR; 0: read into *index, *term; RLOG_E* on a damaged file. */
static int floor_read(const char *dir, uint64_t *index, uint64_t *term, char *err, size_t errlen)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/" FLOOR_NAME, dir);
    int fd, rv = rl_fs_open(path, O_RDONLY, 0, &fd);
    if (rv == -ENOENT)
        return 1;
    if (rv != 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(-rv));
        return rl_errno_to_rlog(rv);
    }
    unsigned char b[FLOOR_SIZE];
    size_t got = 0;
    rv = rl_fs_pread(fd, b, sizeof b, 0, &got);
    rl_fs_close(fd);
    if (rv != 0 || got != sizeof b || rl_get64(b) != FLOOR_MAGIC ||
        rl_get64(b + 24) != XXH3_64bits(b, 24)) {
        /* Without it, the node could vote on a log it knows is short. */
        snprintf(err, errlen, "%s: damaged (it holds the end of a log cut at open: restore it, or "
                 "wipe the data directory and add the node again)", path);
        return RLOG_ECORRUPT;
    }
    *index = rl_get64(b + 8);
    *term = rl_get64(b + 16);
    return 0;
}

static int floor_write(const char *dir, uint64_t index, uint64_t term)
{
    unsigned char b[FLOOR_SIZE];
    rl_put64(b, FLOOR_MAGIC);
    rl_put64(b + 8, index);
    rl_put64(b + 16, term);
    rl_put64(b + 24, XXH3_64bits(b, 24));
    return rl_fs_replace(dir, FLOOR_NAME, b, sizeof b);
}

static void cut_done(struct rl_store_req *req, int status)
{
    int *st = req->data;
    *st = status;
}

/* The term of entry `index` as read whole, or 0. */
static uint64_t term_of(struct rl_store *s, uint64_t index)
{
    struct rl_store_entry e;
    if (index == 0 || rl_store_read(s, index, &e) != 0)
        return 0;
    free((void *)e.buf);
    return e.term;
}

int rl_floor_cut_damaged_tail(struct rl_store *s, const char *dir,
                              uint64_t needed, uint64_t *cut_at, char *err, size_t errlen)
{
    *cut_at = 0;
    uint64_t last = rl_store_last_index(s), from = rl_store_first_index(s);
    if (needed > from)
        from = needed;
    for (uint64_t i = from; i <= last && !*cut_at; i++) {
        struct rl_store_entry e;
        int rv = rl_store_read(s, i, &e);
        if (rv == 0)
            free((void *)e.buf);
        else if (rv == RLOG_ECORRUPT)
            *cut_at = i;
        else {
            snprintf(err, errlen, "%s", rl_store_errmsg(s));
            return rv;
        }
    }
    if (!*cut_at)
        return 0;
    /* The cut goes where the damaged range begins: that position is known
     * from the good frame before it. A range that begins at or before the
     * snapshot descriptor's entry cannot be cut there (libraft needs that
     * entry in the log): the open is refused as before. */
    struct rl_store_damage dmg[64];
    size_t nd = rl_store_damaged(s, dmg, 64);
    for (size_t k = 0; k < nd && k < 64; k++)
        if (dmg[k].first_index < *cut_at && dmg[k].last_index >= *cut_at)
            *cut_at = dmg[k].first_index;
    if (*cut_at < needed) {
        snprintf(err, errlen, "entries from %" PRIu64 " on fail their checksum, up to after the "
                 "snapshot descriptor's entry %" PRIu64 ": libraft needs them, and the log cannot "
                 "be cut before that entry (%s)", *cut_at, needed - 1, rl_store_errmsg(s));
        *cut_at = 0;
        return RLOG_ECORRUPT;
    }
    /* The floor: this log's real end. A damaged last entry leaves its term
     * unknown; the current term bounds it from above (stricter, never
     * looser). */
    uint64_t floor_index = last, floor_term = term_of(s, last), old_index, old_term;
    if (!floor_term)
        floor_term = rl_store_term(s);
    int rv = floor_read(dir, &old_index, &old_term, err, errlen);
    if (rv < 0)
        return rv;
    if (rv == 0 && (old_term > floor_term || (old_term == floor_term && old_index > floor_index))) {
        floor_index = old_index; /* a cut before this one is not undone yet */
        floor_term = old_term;
    }
    if ((rv = floor_write(dir, floor_index, floor_term)) != 0) {
        snprintf(err, errlen, "%s/" FLOOR_NAME ": %s", dir, strerror(-rv));
        return rl_errno_to_rlog(rv);
    }
    int status = 1;
    struct rl_store_req req = {.data = &status};
    rv = rl_store_truncate(s, &req, *cut_at, cut_done);
    while (rv == 0 && status == 1)
        rl_store_turn(s);
    if (rv == 0)
        rv = status;
    if (rv != 0) {
        snprintf(err, errlen, "cutting the log before damaged entry %" PRIu64 ": %s", *cut_at,
                 rl_store_errmsg(s));
        return rv;
    }
    return 0;
}

int rl_io__floor_load(struct io *io, char *err, size_t errlen)
{
    uint64_t index, term;
    int rv = floor_read(io->dir, &index, &term, err, errlen);
    if (rv < 0)
        return rv;
    if (rv == 0) {
        io->floor_index = index;
        io->floor_term = term;
        /* Removed at once if the log is back past it (nothing is held
         * yet to release). */
        rl_io__floor_check(io);
    }
    return 0;
}

bool rl_io__vote_below_floor(const struct io *io, const struct raft_message *msg)
{
    if (!io->floor_index || msg->type != RAFT_IO_REQUEST_VOTE)
        return false;
    const struct raft_request_vote *rv = &msg->request_vote;
    return rv->last_log_term < io->floor_term ||
           (rv->last_log_term == io->floor_term && rv->last_log_index < io->floor_index);
}

/* Whether the log is back at least as up to date as the floor (Raft's
 * comparison: last term, then last index): then libraft's own vote rule is
 * at least as strict as the floor's. A log whose end a new leader replaced
 * with entries of a later term passes too, though shorter. */
static bool past_floor(struct io *io)
{
    uint64_t last = rl_store_last_index(io->store), term;
    if (!last || !rl_io__entry_term(io, last, &term))
        return false;
    return term > io->floor_term || (term == io->floor_term && last >= io->floor_index);
}

/* Removes FLOOR once the log is back past it: true then, and what waited
 * for it (held elections) may go (the caller releases them). */
bool rl_io__floor_check(struct io *io)
{
    if (!io->floor_index || io->closing || io->fatal || !past_floor(io))
        return false;
    char path[4200];
    snprintf(path, sizeof path, "%s/" FLOOR_NAME, io->dir);
    int rv = rl_fs_unlink(path);
    if (rv == 0 || rv == -ENOENT)
        rv = rl_fs_fsync_dir(io->dir);
    if (rv != 0) {
        rl_io__log(io, 2, "removing %s: %s (tried again after the next append)", path,
                   strerror(-rv));
        return false;
    }
    rl_io__log(io, 2, "the log is back at entry %" PRIu64 " (past the end it had before a damaged "
               "entry was cut at open): voting and campaigning again", io->floor_index);
    io->floor_index = io->floor_term = 0;
    io->floors_cleared++;
    return true;
}

bool rl_io_floor(struct raft_io *rio, uint64_t *index, unsigned long *cleared)
{
    struct io *io = rio->impl;
    if (cleared)
        *cleared = io->floors_cleared;
    if (index)
        *index = io->floor_index;
    return io->floor_index != 0;
}
