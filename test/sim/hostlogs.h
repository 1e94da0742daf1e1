/*
 * hostlogs — the simulator's logs beside the primary (host mode, world.h):
 * a workload on each, a checker per log at the end, and the isolation
 * rule: a log fails stop only when a fault touched its own store (one
 * confined to it, or the whole disk), never because another log's store
 * on the same host failed.
 */
#ifndef RL_SIM_HOSTLOGS_H
#define RL_SIM_HOSTLOGS_H

#include <stdbool.h>
#include <stddef.h>

/* Starts the workload (two appenders per log) once the world is up. */
void hl_start(void);
void hl_stop_load(void);
/* The primary counts in the isolation rule too (the hosts scenario,
 * whose faults are all confined or whole). */
void hl_strict_primary(bool on);
/* Arms a disk fault of a kind (0 write EIO, 1 fdatasync EIO, 2 full) on
 * n, confined to log k's store (0: the primary's), the whole disk (k <
 * 0), or, with HL_ANY, either at random. */
#define HL_ANY (-2)
struct sim_node;
void hl_arm_fault(struct sim_node *n, int kind, int k);
/* After healing: reopens what is down; true once every log has every
 * replica up, one leader, all alike, nothing in flight. */
bool hl_converged(void);
/* Reads every replica of every log (call until true), then checks. */
bool hl_collected(void);
/* NULL, or why the history of some log is wrong (the first failure). */
const char *hl_check(void);
/* The isolation rule's verdict so far (NULL: kept), and a summary. */
const char *hl_isolation(void);
unsigned long hl_confined_stops(void);
void hl_summary(char *buf, size_t len);
void hl_free(void);

#endif
