#!/bin/bash
# Retention through rlogctl trim: a follower is killed, the cluster appends
# and trims past the end of its log; restarted, it resets its log to where
# the leader's segments begin, catches up, and serves exactly the leader's
# records from the trim point on (older offsets: exit 4, trimmed). A fourth
# node added after the trim does the same; it takes the lead, an old node is
# removed, and a trim on the new leader reaches every member. Bad trims:
# on a follower exit 3, beyond the committed end exit 6.
. "$(dirname "$0")/lib.sh"
NODE_ARGS=(--snapshot-threshold 8 --snapshot-trailing 8 --segment-size 2097152)

pick_ports 4 || { not_ok "pick 4 ports"; finish; }
C4=$CLUSTER
CLUSTER=$(cut -d, -f1-3 <<<"$C4")
N_NODES=3
for i in 1 2 3; do start_node "$i" || { not_ok "start node $i"; finish; }; done
L=$(wait_leader) || { not_ok "a leader is elected"; finish; }
F=$(( L % 3 + 1 ))
O=$(( F % 3 + 1 ))
ok "node $L leads; node $F will lag"
seq -f "before-%g" 1 1000 | "$RLOGCTL" append --control "$(ctl "$L")" >/dev/null 2>"$T/err" \
    || not_ok "1000 appends: $(cat "$T/err")"
wait_commit "$F" 1000 >/dev/null
say "killing follower $F"
kill_node "$F"

# Many raft entries (one per line from a slow producer), then bulk bytes
# across several 2 MiB segments, so the leader's snapshots move on.
for i in $(seq 1 300); do echo "entry-$i"; sleep 0.002; done |
    "$RLOGCTL" append --control "$(ctl "$L")" >/dev/null 2>"$T/err" \
    || not_ok "300 single-record appends: $(cat "$T/err")"
seq -f "bulk-%08g-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" 1 40000 |
    "$RLOGCTL" append --control "$(ctl "$L")" >/dev/null 2>"$T/err" \
    || not_ok "40000 bulk appends: $(cat "$T/err")"
end=$(status_of "$L" commit_offset)
P=$((end - 2000))

"$RLOGCTL" trim --control "$(ctl "$O")" "$P" >/dev/null 2>"$T/err"; rc=$?
check "trim on follower $O exits 3 (got $rc)" [ $rc -eq 3 ]
"$RLOGCTL" trim --control "$(ctl "$L")" $((end + 1)) >/dev/null 2>"$T/err"; rc=$?
check "trim beyond the committed end $end exits 6 (got $rc)" [ $rc -eq 6 ]
check "and says why: $(head -n 1 "$T/err")" grep -q "beyond the committed end" "$T/err"
out=$("$RLOGCTL" trim --control "$(ctl "$L")" "$P" 2>&1); rc=$?
check "trim $P on leader $L (exit $rc: $out)" [ $rc -eq 0 ]
out=$("$RLOGCTL" trim --control "$(ctl "$L")" --json 5 2>&1); rc=$?
check "a trim behind it does nothing and succeeds ($out)" [ $rc -eq 0 ]
for i in $L $O; do
    check "node $i: first_offset $P" [ "$(status_of "$i" first_offset)" = "$P" ]
    "$RLOGCTL" read --control "$(ctl "$i")" $((P - 1)) >/dev/null 2>&1; rc=$?
    check "node $i: reading offset $((P - 1)) exits 4 (got $rc)" [ $rc -eq 4 ]
done
seq -f "after-trim-%g" 1 100 | "$RLOGCTL" append --control "$(ctl "$L")" >/dev/null 2>"$T/err" \
    || not_ok "100 appends after the trim: $(cat "$T/err")"
end=$(status_of "$L" commit_offset)

# read_from I FROM END: node I's records FROM..END-1 as JSON lines.
read_from() {
    "$RLOGCTL" read --control "$(ctl "$1")" --json --timeout 30 "$2-$(($3 - 1))"
}
# same_as_leader I: node I caught up and serves the leader's records from P.
same_as_leader() {
    local i=$1
    check "node $i reaches commit_offset $end" wait_commit "$i" "$end"
    check "node $i: first_offset $P" wait_first "$i" "$P"
    read_from "$L" "$P" "$end" >"$T/rL.json" 2>"$T/err" || not_ok "read on $L: $(cat "$T/err")"
    read_from "$i" "$P" "$end" >"$T/r$i.json" 2>"$T/err" || not_ok "read on $i: $(cat "$T/err")"
    check "node $i serves exactly the leader's records $P..$((end - 1))" \
        cmp -s "$T/rL.json" "$T/r$i.json"
    "$RLOGCTL" read --control "$(ctl "$i")" 0 >/dev/null 2>&1; rc=$?
    check "node $i: offset 0 is trimmed (exit $rc)" [ $rc -eq 4 ]
}

say "restarting node $F"
check "node $F restarts" start_node "$F" -v
WAIT=60 same_as_leader "$F"
check "node $F's log shows the reset" wait_log "$F" "this log restarts there"

CLUSTER=$C4
check "node 4 starts with --join" start_node 4 --join -v
out=$("$RLOGCTL" add-node --control "$(ctl "$L")" --timeout 60 4 "$(addr 4)" 2>&1); rc=$?
check "add-node 4 after the trim (exit $rc: $out)" [ $rc -eq 0 ]
N_NODES=4
WAIT=60 same_as_leader 4
check "node 4's log shows the reset" wait_log 4 "this log restarts there"

out=$("$RLOGCTL" transfer --control "$(ctl "$L")" 4 2>&1); rc=$?
check "transfer to 4 (exit $rc: $out)" [ $rc -eq 0 ]
NL=$(wait_leader) || { not_ok "a leader after the transfer"; finish; }
check "node 4 leads (got $NL)" [ "$NL" = 4 ]
for t in $(seq 1 50); do
    "$RLOGCTL" remove-node --control "$(ctl 4)" "$L" >"$T/out" 2>"$T/err"; rc=$?
    grep -q RLOG_EBUSY "$T/err" || break
    sleep 0.1
done
check "remove-node $L on leader 4 (exit $rc: $(head -c 150 "$T/err"))" [ $rc -eq 0 ]
stop_node "$L"
seq -f "after-remove-%g" 1 100 | "$RLOGCTL" append --control "$(ctl 4)" >/dev/null 2>"$T/err" \
    || not_ok "100 appends on the new leader: $(cat "$T/err")"
end=$(status_of 4 commit_offset)
P=$((end - 50))
out=$("$RLOGCTL" trim --control "$(ctl 4)" "$P" 2>&1); rc=$?
check "trim $P on the new leader (exit $rc: $out)" [ $rc -eq 0 ]
L=4
for i in $F $O; do
    same_as_leader "$i"
done
for i in 4 $F $O; do
    stop_node "$i"; rc=$?
    check "node $i exits 0 on SIGTERM (got $rc)" [ $rc -eq 0 ]
done
finish
