/*
 * fs — the one thin layer every byte liblog puts on or takes off disk passes
 * through.
 *
 * All functions return 0 or a negative errno (-EIO, -ENOSPC, ...); none of
 * them prints. Short reads/writes of regular files are retried internally, so
 * success always means the whole buffer.
 *
 * Descriptors opened with O_DIRECT work with every call; writes to them must
 * be aligned by the caller (buffer, offset and length).
 *
 * The calls that touch the disk go through a table of operations: the plain
 * system calls (rl_fs_sys) unless a test installs its own. The tests' fault
 * injection (countdown failures, short writes, simulated power loss) is such
 * a table, in test/lib/fault_fs.c: the shipped library carries none of it and
 * takes no lock on these calls.
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
/* The whole of dir/name, malloc'd into *buf (*len bytes): 0, -ENOENT if
 * there is no such file, or another negative errno. */
int rl_fs_read_all(const char *dir, const char *name, unsigned char **buf, size_t *len);

/* The RLOG_E* code for a negative errno from these calls: RLOG_ENOSPC (no
 * space or quota), RLOG_ENOMEM, else RLOG_EIO; 0 for 0. */
int rl_errno_to_rlog(int neg_errno);

/* The operations behind the calls above, with the same contracts. */
struct rl_fs_ops {
    int (*open)(const char *path, int flags, int mode, int *fd_out);
    int (*close)(int fd);
    int (*pread)(int fd, void *buf, size_t len, uint64_t off, size_t *nread);
    int (*pwritev)(int fd, const struct iovec *iov, int iovcnt, uint64_t off);
    int (*fdatasync)(int fd);
    int (*zero_fill)(int fd, uint64_t size);
    int (*unlink)(const char *path);
    int (*rename)(const char *from, const char *to);
    int (*fsync_dir)(const char *dir);
};

/* The plain system calls (EINTR and short transfers handled): the default,
 * and what a test's table calls for the real work. */
extern const struct rl_fs_ops rl_fs_sys;

/* Makes ops (NULL: rl_fs_sys) the table every call above goes through, and
 * returns the previous one. Not synchronised: call it before any thread
 * uses this layer (a test, before main). */
const struct rl_fs_ops *rl_fs_set_ops(const struct rl_fs_ops *ops);

#endif
