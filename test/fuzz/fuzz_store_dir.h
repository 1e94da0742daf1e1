/*
 * A data directory for the recovery fuzz target and the corpus generator:
 * a FORMAT file with a fixed dir-id (so segment headers from the corpus
 * match it) and metadata copies built from chosen fields.
 */
#ifndef FUZZ_STORE_DIR_H
#define FUZZ_STORE_DIR_H

#include <stddef.h>
#include <stdint.h>

#define FZ_DIR_ID 0x7a7a75665f676f6cull
#define FZ_SEGMENT_SIZE (64u << 10)
#define FZ_SEGMENT_NAME "seg-0000000000000001.log"
#define FZ_META_SIZE 96u
/* Generation of the metadata written when an input brings none: newer than
 * any frame the corpus generator writes, so its frames are acceptable. */
#define FZ_DEFAULT_GEN (1u << 20)

/* Writes dir/FORMAT for FZ_DIR_ID. 0 or -1 (errno set). */
int fz_write_format(const char *dir);
/* Encodes a metadata copy (96 bytes) with dir_id FZ_DIR_ID. */
void fz_meta_encode(unsigned char buf[FZ_META_SIZE], uint64_t seq, uint32_t gen,
                    uint64_t first_index, uint64_t first_offset);
/* Recomputes a metadata copy's checksum (bytes 88..96). */
void fz_meta_seal(unsigned char buf[FZ_META_SIZE]);
/* Whole-file write (O_TRUNC). 0 or -1. */
int fz_write_file(const char *dir, const char *name, const void *buf, size_t len);

#endif
