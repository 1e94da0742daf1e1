#!/bin/bash
# An add cut short: node 4 is added while it is down, so libraft makes it a
# spare and waits to catch it up before promoting it; the leader is killed
# (-9) meanwhile. Node 4 stays in the configuration as a non-voter. Added
# again on the new leader once it runs, it must be promoted (before, every
# later add-node failed "server ID already in use" and node 4 was never
# replicated to), catch up, and serve the leader's records.
. "$(dirname "$0")/lib.sh"

three_of_four
seq -f "before-%g" 1 300 | "$RLOGCTL" append --control "$(ctl "$L")" >/dev/null 2>"$T/err" \
    || not_ok "300 appends: $(cat "$T/err")"

"$RLOGCTL" add-node --control "$(ctl "$L")" --timeout 3 4 "$(addr 4)" >"$T/out" 2>"$T/err"; rc=$?
check "add-node 4 while node 4 is not running does not finish (exit $rc: $(head -c 120 "$T/err"))" \
    [ $rc -ne 0 ]
kill_node "$L"
ok "leader $L killed (-9) with the add under way"
NL=$(wait_leader "$L") || { not_ok "a new leader among the others"; finish; }
ok "node $NL leads now"
check "node $NL lists node 4, not as a voter" \
    bash -c "'$RLOGCTL' status --control '$(ctl "$NL")' | grep -q '^peer 4 $(addr 4) ' &&
             ! '$RLOGCTL' status --control '$(ctl "$NL")' | grep -q '^peer 4 $(addr 4) voter'"

CLUSTER=$C4
check "old leader $L restarts" start_node "$L"
check "node 4 starts with --join" start_node 4 --join
N_NODES=4
out=$("$RLOGCTL" add-node --control "$(ctl "$NL")" --timeout 60 4 "$(addr 4)" 2>&1); rc=$?
check "add-node 4 again on node $NL finishes the promotion (exit $rc: $out)" [ $rc -eq 0 ]
check "node $NL lists node 4 as a voter" \
    grep -q "^peer 4 $(addr 4) voter" <("$RLOGCTL" status --control "$(ctl "$NL")")
"$RLOGCTL" add-node --control "$(ctl "$NL")" 4 "$(addr 4)" >/dev/null 2>"$T/err"; rc=$?
check "a third add-node exits 6 (got $rc)" [ $rc -eq 6 ]
check "and says node 4 is already a voter: $(head -n 1 "$T/err")" grep -q "already a voter" "$T/err"
seq -f "after-%g" 1 200 | "$RLOGCTL" append --control "$(ctl "$NL")" >/dev/null 2>"$T/err" \
    || not_ok "200 appends on node $NL: $(cat "$T/err")"
end=$(status_of "$NL" commit_offset)
check "node 4 catches up to commit_offset $end" wait_commit 4 "$end"
read_all "$NL" "$end" >"$T/rL.json" 2>"$T/err" || not_ok "read on $NL: $(cat "$T/err")"
read_all 4 "$end" >"$T/r4.json" 2>"$T/err" || not_ok "read on 4: $(cat "$T/err")"
check "node 4 serves exactly what node $NL serves (0..$((end - 1)))" cmp -s "$T/rL.json" "$T/r4.json"
for i in 1 2 3 4; do
    stop_node "$i"; rc=$?
    check "node $i exits 0 on SIGTERM (got $rc)" [ $rc -eq 0 ]
done
finish
