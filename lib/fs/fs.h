/*
 * fs — the one thin layer every byte liblog puts on or takes off disk passes
 * through, so tests can inject faults by countdown (SQLite's test6.c, raft's
 * test/lib/fault.h are the models).
 *
 * All functions return 0 or a negative errno (-EIO, -ENOSPC, ...); none of
 * them prints. Short reads/writes of regular files are retried internally, so
 * success always means the whole buffer.
 *
 * Descriptors opened with O_DIRECT work with every call; writes to them must
 * be aligned by the caller (buffer, offset and length), except that fault
 * injection reads pre-images and writes short-write prefixes through a
 * buffered descriptor of the same file.
 *
 * Fault injection (tests only; process-global, thread-safe):
 *  - fail the k-th write / fdatasync / preallocation with a chosen errno,
 *    optionally after writing part of the buffer (a short write);
 *  - simulate power loss at the k-th fdatasync: every byte written since the
 *    last successful fdatasync of its file is rolled back to what was there
 *    before (optionally keeping the first tear_bytes of the newest write, a
 *    torn write), and from then on every call fails with -EIO as if the
 *    machine were gone. Directory operations (create, rename, unlink) are
 *    modelled as immediately durable.
 */
#ifndef RL_FS_H
#define RL_FS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

int rl_fs_open(const char *path, int flags, int mode, int *fd_out);
int rl_fs_close(int fd);
int rl_fs_pread(int fd, void *buf, size_t len, uint64_t off, size_t *nread);
int rl_fs_pwrite(int fd, const void *buf, size_t len, uint64_t off);
int rl_fs_pwritev(int fd, const struct iovec *iov, int iovcnt, uint64_t off);
int rl_fs_fdatasync(int fd);
/* Creates blocks for [0, size) by writing zeros (measured faster to overwrite
 * later than fallocate'd or appended space on ext4), fdatasync'd 256 KiB at a
 * time so concurrent appends never queue behind a whole segment's worth. */
int rl_fs_zero_fill(int fd, uint64_t size);
int rl_fs_file_size(int fd, uint64_t *size);
int rl_fs_unlink(const char *path);
int rl_fs_rename(const char *from, const char *to);
int rl_fs_fsync_dir(const char *dir);
/* Durably replaces dir/name with buf: writes dir/name.tmp, fdatasyncs it,
 * renames it over dir/name and fsyncs dir. A crash leaves the old file or
 * the new one, never a mix (a stale name.tmp at worst). */
int rl_fs_replace(const char *dir, const char *name, const void *buf, size_t len);

/* The RLOG_E* code for a negative errno from these calls: RLOG_ENOSPC (no
 * space or quota), RLOG_ENOMEM, else RLOG_EIO; 0 for 0. */
int rl_errno_to_rlog(int neg_errno);

struct rl_fs_faults {
    unsigned write_fail_at;   /* 1-based count of writes; 0 = never */
    int write_errno;          /* e.g. EIO, ENOSPC */
    size_t write_short_bytes; /* bytes written before the failure */
    unsigned sync_fail_at;    /* 1-based count of fdatasyncs; 0 = never */
    int sync_errno;
    unsigned zero_fill_fail_at; /* 1-based count of zero fills; 0 = never */
    int zero_fill_errno;
    int disk_full;            /* nonzero: every zero fill fails with ENOSPC
                                 (overwriting space already made works) */
    unsigned crash_at_sync;   /* simulate power loss at this fdatasync */
    long tear_bytes;          /* with crash: keep this many bytes of the
                                 newest write; < 0 keeps none */
    int no_direct;            /* nonzero: opening with O_DIRECT fails with
                                 EINVAL, like a file system without it */
};

struct rl_fs_counters {
    uint64_t writes, syncs, zero_fills, bytes_written;
};

void rl_fs_faults_set(const struct rl_fs_faults *f);
void rl_fs_faults_clear(void);
/* 1 once a simulated crash has happened (until rl_fs_faults_clear). */
int rl_fs_crashed(void);
void rl_fs_counters(struct rl_fs_counters *out);

/* Domains: the simulator runs several machines in one process, each with its
 * own disk. A thread acts within one domain at a time (the process's own by
 * default); the fault calls above apply to the current one. */
struct rl_fs_domain;
struct rl_fs_domain *rl_fs_domain_new(void);
void rl_fs_domain_free(struct rl_fs_domain *d);
/* Makes d (NULL: the process's) current for this thread; returns the
 * previous one. */
struct rl_fs_domain *rl_fs_domain_enter(struct rl_fs_domain *d);
/* Power loss now in the current domain (armed by rl_fs_faults_set): rolls
 * back everything not fdatasync'd, keeping tear_bytes of the newest write
 * when > 0; later calls fail with -EIO until rl_fs_faults_clear. */
void rl_fs_crash(long tear_bytes);

#endif
