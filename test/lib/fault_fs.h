/*
 * fault_fs — fault injection for lib/fs, for tests only (SQLite's test6.c,
 * raft's test/lib/fault.h are the models). Linking test/lib/fault_fs.c
 * installs its table of operations (rl_fs_set_ops) before main, so every
 * file the program opens is known to it; production builds never link it.
 * Process-global and thread-safe:
 *  - fail the k-th write / fdatasync / preallocation with a chosen errno,
 *    optionally after writing part of the buffer (a short write);
 *  - simulate power loss at the k-th fdatasync: every byte written since the
 *    last successful fdatasync of its file is rolled back to what was there
 *    before (optionally keeping the first tear_bytes of the newest write, a
 *    torn write), and from then on every call fails with -EIO as if the
 *    machine were gone. Directory operations (create, rename, unlink) are
 *    modelled as immediately durable.
 * Pre-images and short-write prefixes of O_DIRECT files are read and
 * written through a buffered descriptor of the same file (they are not
 * aligned).
 */
#ifndef RL_TEST_FAULT_FS_H
#define RL_TEST_FAULT_FS_H

#include <stddef.h>
#include <stdint.h>

#include "fs/fs.h"

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
    /* Not NULL: the faults (and their counts) apply only to files whose
     * path starts with it, as if only that directory's disk failed (copied
     * by rl_fs_faults_set). */
    const char *only_under;
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
