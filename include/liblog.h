/*
 * liblog — an embeddable, Raft-replicated, durable append-only log.
 *
 * This header is the whole public contract. Every public name starts with
 * rlog_ / RLOG_; nothing else is exported from liblog.so.
 *
 * Conventions (they hold for every function unless its comment says
 * otherwise):
 *  - Functions returning int return 0 on success or a negative RLOG_E* code.
 *  - Functions are thread-safe unless stated otherwise.
 *  - Strings returned by the library are static and must not be freed.
 */
#ifndef LIBLOG_H
#define LIBLOG_H

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) && __GNUC__ >= 4
#define RLOG_API __attribute__((visibility("default")))
#else
#define RLOG_API
#endif

/* ---- Version ------------------------------------------------------------
 * Compile-time version of the header; rlog_version() gives the version of
 * the library actually linked, which may differ under dynamic linking. */
#define RLOG_VERSION_MAJOR 0
#define RLOG_VERSION_MINOR 1
#define RLOG_VERSION_PATCH 0
#define RLOG_VERSION_STRING "0.1.0"
/* One comparable number: major * 10000 + minor * 100 + patch. */
#define RLOG_VERSION_NUMBER \
    (RLOG_VERSION_MAJOR * 10000 + RLOG_VERSION_MINOR * 100 + RLOG_VERSION_PATCH)

/* rlog_version - the linked library's version as RLOG_VERSION_NUMBER. */
RLOG_API int rlog_version(void);

/* rlog_version_string - the linked library's version as "MAJOR.MINOR.PATCH". */
RLOG_API const char *rlog_version_string(void);

/* ---- Errors -------------------------------------------------------------
 * Every failure is one of these codes, always negative. The table below is
 * the single source of the enum, rlog_errname() and rlog_strerror().
 * A detailed message naming the file, field or position accompanies each
 * error where the API offers one (a per-handle message buffer). */
#define RLOG_ERRNO_MAP(X)                                                      \
    X(INVAL, 1, "invalid argument")                                           \
    X(NOMEM, 2, "out of memory")                                              \
    X(IO, 3, "input/output error")                                            \
    X(NOSPC, 4, "no space left on device")                                    \
    X(CORRUPT, 5, "data corruption detected")                                 \
    X(VERSION, 6, "unsupported data format version")                          \
    X(FOREIGN, 7, "not a liblog data directory")                              \
    X(BUSY, 8, "data directory in use by another handle or process")          \
    X(FATAL, 9, "handle failed stop after a storage error")                   \
    X(NOTFOUND, 10, "no such entry")                                          \
    X(TRIMMED, 11, "offset was trimmed by retention")                         \
    X(TOOBIG, 12, "record or entry too large")                                \
    X(CANCELED, 13, "operation canceled")                                     \
    X(CLOSED, 14, "handle is closing or closed")                              \
    X(NOTLEADER, 15, "this node is not the leader")                           \
    X(TIMEOUT, 16, "operation timed out")                                     \
    X(PROTO, 17, "protocol error")

enum rlog_errno {
#define RLOG__ERR_ENUM(name, num, msg) RLOG_E##name = -(num),
    RLOG_ERRNO_MAP(RLOG__ERR_ENUM)
#undef RLOG__ERR_ENUM
};

/* rlog_strerror - a short English description of an RLOG_E* code (or
 * "success" for 0, "unknown error" for anything else). Never NULL. */
RLOG_API const char *rlog_strerror(int err);

/* rlog_errname - the code's name, e.g. "RLOG_ECORRUPT" ("RLOG_OK" for 0,
 * "RLOG_EUNKNOWN" for anything else). Never NULL. */
RLOG_API const char *rlog_errname(int err);

#ifdef __cplusplus
}
#endif
#endif /* LIBLOG_H */
