/* The writer's entry points (writer.c), for the files above it: recover.c
 * and store.c. The files below the writer do not include this. */
#ifndef RL_STORE_WRITER_H
#define RL_STORE_WRITER_H

#include "store/internal.h"

/* writer.c: group commit */
void rl_writer_kick(struct rl_store *s);
void rl_writer_prepare_spare(struct rl_store *s);
/* The size of the next segment file: the first one's, then twice the last
 * one's, up to segment_size (and at least what a waiting entry needs). */
uint64_t rl_writer_next_segment_size(const struct rl_store *s);
/* Ends a close (close.c) once no job is left; nothing if the store is not
 * closing or the end is queued already. */
void rl_writer_finish_close_if_idle(struct rl_store *s);
/* Fails every queued request with `status`; while a job runs, its requests
 * complete when it does and the rest fail right after them (writer.c,
 * fail_queued, says why). Only for a store already latched fatal. */
void rl_writer_fail_all(struct rl_store *s, int status);

#endif
