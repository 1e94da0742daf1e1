#!/bin/bash
# A follower whose disk fills up fails stop where a supervisor can see it:
# its data directory is a 3 MiB tmpfs, appends through the leader fill it,
# and the node logs the cause, keeps answering status and reads for a while
# (--failstop-linger; appends refused with RLOG_EFATAL), then exits with
# status 7. `rlogctl append --cluster-controls` with the failed node first
# passes it over (refused while it lingers, no socket once it is gone). Once
# the disk has room again, a restart brings the node back up to date.
# Mounting needs root: without it the test says why and skips.
. "$(dirname "$0")/lib.sh"

SMALL=$T/n3                       # node 3's data directory, a small tmpfs
LINGER_MS=6000
mkdir -p "$SMALL"
if ! out=$(mount -t tmpfs -o size=3m,mode=0755 tmpfs "$SMALL" 2>&1); then
    say "skipped: cannot mount a 3 MiB tmpfs for the full disk (root needed): $out"
    finish
fi
MOUNTED=1
positive() { [ "${1:-0}" -gt 0 ]; }
test_cleanup() {
    [ "${MOUNTED:-0}" = 1 ] && { umount "$SMALL" 2>/dev/null || umount -l "$SMALL"; }
    MOUNTED=0
}

# The smallest segments rlogctl's 1 MiB batches allow (1 MiB + 4 KiB): two
# fit on the tmpfs with the metadata, so the third cannot be made.
NODE_ARGS=(--segment-size 1052672)
pick_ports 3 || { not_ok "pick ports"; finish; }
for i in 1 2; do start_node "$i" || { not_ok "start node $i"; finish; }; done
start_node 3 --failstop-linger "$LINGER_MS" || { not_ok "start node 3 on the tmpfs"; finish; }
L=$(wait_leader) || { not_ok "a leader is elected"; finish; }
if [ "$L" = 3 ]; then
    "$RLOGCTL" transfer --control "$(ctl 3)" 1 >/dev/null 2>&1
    L=$(wait_leader) || { not_ok "a leader is elected after the hand-off"; finish; }
fi
check "node 3 (the small disk) is a follower; node $L leads" [ "$L" != 3 ]

# 3,000 records of ~1 KB: more than the tmpfs holds.
awk 'BEGIN { pad = sprintf("%990s", ""); gsub(/ /, "x", pad);
             for (i = 0; i < 3000; i++) printf "r%05d-%s\n", i, pad }' >"$T/records"
"$RLOGCTL" append --control "$(ctl "$L")" --timeout 60 <"$T/records" >"$T/offsets" 2>"$T/append.err"
rc=$?
check "the leader keeps appending with one follower (exit $rc, $(wc -l <"$T/offsets") offsets)" \
    [ $rc -eq 0 ]
check "node 3 logs the failed stop with its cause" wait_log 3 "failed stop: RLOG_ENOSPC"
check "the cause names the file and the full disk: $(grep -m1 'failed stop' "$T/n3.log")" \
    grep -q "failed stop: RLOG_ENOSPC: storage failure: .*seg-.*No space left on device" "$T/n3.log"

# While it lingers: status says it failed and why, with its term and offsets.
"$RLOGCTL" status --control "$(ctl 3)" >"$T/status3" 2>&1
check "status shows role unavailable" grep -qx "role unavailable" "$T/status3"
check "status shows fatal RLOG_ENOSPC and the cause" \
    grep -q "^fatal RLOG_ENOSPC storage failure: .*No space left on device" "$T/status3"
term=$(awk '$1 == "term" { print $2 }' "$T/status3")
c3=$(awk '$1 == "commit_offset" { print $2 }' "$T/status3")
check "status keeps the real term ($term)" positive "$term"
check "and the commit offset as at the stop ($c3)" positive "$c3"
"$RLOGCTL" read --control "$(ctl 3)" "0-$((c3 - 1))" >"$T/read3" 2>"$T/read3.err"; rc=$?
check "the failed node serves its $c3 committed records (exit $rc)" \
    [ $rc -eq 0 -a "$(wc -l <"$T/read3")" -eq "$c3" ]
check "and they are the records appended" \
    cmp -s <(cut -f2 "$T/read3") <(head -n "$c3" "$T/records")
"$RLOGCTL" append --control "$(ctl 3)" refused >"$T/out" 2>"$T/err"; rc=$?
check "an append to it exits 6 (got $rc)" [ $rc -eq 6 ]
check "refused with RLOG_EFATAL naming the cause: $(head -n 1 "$T/err")" \
    grep -q "RLOG_EFATAL: append refused, nothing appended.*No space left" "$T/err"

# --cluster-controls passes over the failed node (first in the list).
list="$(ctl 3),$(ctl 1),$(ctl 2)"
"$RLOGCTL" append --cluster-controls "$list" while-lingering >"$T/out" 2>"$T/err"; rc=$?
check "--cluster-controls with the failed node first appends (exit $rc)" \
    [ $rc -eq 0 -a -s "$T/out" ]
check "saying the failed node refused: $(head -n 1 "$T/err")" \
    grep -q "refused the batch (RLOG_EFATAL" "$T/err"

# Then it exits, non-zero and distinctly, for its supervisor.
wait_exit "${NODE_PID[3]}"; rc=$?
NODE_PID[3]=""
check "node 3 exits with status 7 after the linger (got $rc)" [ $rc -eq 7 ]
check "its last line says it closed the log for the supervisor" \
    grep -q "log closed; exiting with status 7 for the supervisor" "$T/n3.log"
"$RLOGCTL" append --cluster-controls "$list" after-exit >"$T/out" 2>"$T/err"; rc=$?
check "--cluster-controls passes over its dead socket too (exit $rc)" [ $rc -eq 0 -a -s "$T/out" ]

# Room again, a restart, and it catches up.
mount -o remount,size=64m "$SMALL"
check "node 3 restarts once the disk has room" start_node 3
end=$(status_of "$L" commit_offset)
check "and catches up to commit_offset $end" wait_commit 3 "$end"
check "and reports no failure" [ "$(status_of 3 fatal)" = no ]
finish
