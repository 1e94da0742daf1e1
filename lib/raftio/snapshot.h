/*
 * snapshot — liblog's Raft snapshots are descriptors, not data: the log is
 * its own snapshot. A descriptor records the last index and term it covers
 * and the cluster configuration as of then, so libraft can restart with a
 * bounded in-memory tail. Stored in <dir>/SNAPSHOT, replaced atomically
 * (write temp, fdatasync, rename, fsync dir) and checksummed.
 */
#ifndef RL_RAFTIO_SNAPSHOT_H
#define RL_RAFTIO_SNAPSHOT_H

#include <raft.h>
#include <stdint.h>

/* visible: the highest index liblog had shown (its commit fence) when the
 * descriptor was written; everything up to it is known committed.
 * reset_offset: RL_SNAPSHOT_NO_RESET, or this descriptor was written to
 * reset the log to start after `index` with that record offset (catch-up
 * past a peer's trim point); if the log still ends before `index`, the
 * reset was interrupted and is done again at open. */
#define RL_SNAPSHOT_NO_RESET UINT64_MAX
struct rl_snapshot_desc {
    uint64_t index, term, conf_index, visible, reset_offset;
    struct raft_configuration conf; /* owned */
};

/* 0 (found), 1 (no descriptor yet), RLOG_ECORRUPT, RLOG_EIO, RLOG_ENOMEM;
 * errmsg says which file and why. */
int rl_snapshot_load(const char *dir, struct rl_snapshot_desc *out, char *errmsg, size_t errlen);
/* Durably replaces the descriptor. 0 or a negative errno. */
int rl_snapshot_save(const char *dir, uint64_t index, uint64_t term, uint64_t conf_index,
                     uint64_t visible, uint64_t reset_offset,
                     const struct raft_configuration *conf);
void rl_snapshot_desc_close(struct rl_snapshot_desc *d);

#endif
