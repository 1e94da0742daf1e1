#!/bin/bash
# A node that was down while a member was added, and comes back while the
# added member leads: its stored configuration does not name the leader.
# Restarted with the current membership in --cluster (as README's Limits
# say to), it must follow that leader: catch up to its commit offset and
# serve the same records. (Before liblog took a listed peer the stored
# configuration lacks, it dropped every message of the new leader.)
. "$(dirname "$0")/lib.sh"

three_of_four
S=$(( L % 3 + 1 ))
ok "node $L leads the 3-node cluster; node $S will miss the add"
seq -f "before-%g" 1 300 | "$RLOGCTL" append --control "$(ctl "$L")" >/dev/null 2>"$T/err" \
    || not_ok "300 appends: $(cat "$T/err")"
end=$(status_of "$L" commit_offset)
check "node $S has the first records" wait_commit "$S" "$end"
stop_node "$S"; rc=$?
check "node $S stops (exit $rc)" [ $rc -eq 0 ]

CLUSTER=$C4
check "node 4 starts with --join" start_node 4 --join
out=$("$RLOGCTL" add-node --control "$(ctl "$L")" --timeout 60 4 "$(addr 4)" 2>&1); rc=$?
check "add-node 4 while node $S is down (exit $rc: $out)" [ $rc -eq 0 ]
N_NODES=4
out=$("$RLOGCTL" transfer --control "$(ctl "$L")" 4 2>&1); rc=$?
check "leadership goes to node 4 (exit $rc: $out)" [ $rc -eq 0 ]
NL=$(wait_leader "$S") || { not_ok "a leader after the transfer"; finish; }
check "node 4 leads (got $NL)" [ "$NL" = 4 ]
seq -f "after-%g" 1 300 | "$RLOGCTL" append --control "$(ctl 4)" >/dev/null 2>"$T/err" \
    || not_ok "300 appends on node 4: $(cat "$T/err")"
end=$(status_of 4 commit_offset)

check "node $S restarts with the 4-node --cluster" start_node "$S"
check "node $S catches up to node 4's commit_offset $end" wait_commit "$S" "$end"
read_all 4 "$end" >"$T/r4.json" 2>"$T/err" || not_ok "read on 4: $(cat "$T/err")"
read_all "$S" "$end" >"$T/rS.json" 2>"$T/err" || not_ok "read on $S: $(cat "$T/err")"
check "node $S serves exactly what node 4 serves (0..$((end - 1)))" cmp -s "$T/r4.json" "$T/rS.json"
check "node $S now lists node 4 as a voter" \
    grep -q "^peer 4 $(addr 4) voter" <("$RLOGCTL" status --control "$(ctl "$S")")
check "node $S logged no drop of node 4's messages" \
    bash -c "! grep -q 'message from 4 .*not a member' '$T/n$S.log'"
for i in 1 2 3 4; do
    stop_node "$i"; rc=$?
    check "node $i exits 0 on SIGTERM (got $rc)" [ $rc -eq 0 ]
done
finish
