/* recover.c, for store.c only. */
#ifndef RL_STORE_RECOVER_H
#define RL_STORE_RECOVER_H

#include "store/internal.h"

/* Rebuilds s's state from its files at open (recover.c says how), once
 * rl_dir_open() has locked the directory and loaded the metadata. 0 or an
 * RLOG_E* with errmsg set (and the recovery note filled). */
int rl_store_recover(struct rl_store *s);

#endif
