#!/bin/bash
# Graceful stops and restarts: SIGTERM of the leader while a client streams
# appends (rlog_close hands leadership over; every acknowledged record stays),
# a full-cluster restart (all data back, appends continue at the next offset),
# and a minority left alone (appends fail within a bound, committed records
# stay readable).
. "$(dirname "$0")/lib.sh"

start_cluster 3 || { not_ok "start a 3-node cluster"; finish; }
L=$(wait_leader) || { not_ok "a leader is elected"; finish; }
ok "node $L is the leader"
seq -f "first-%g" 1 2000 >"$T/in1"
"$RLOGCTL" append --control "$(ctl "$L")" <"$T/in1" >"$T/off1" 2>"$T/err1"
check "2000 appends through the leader" [ "$(wc -l <"$T/off1")" -eq 2000 ]

# 1. SIGTERM the leader under load.
seq -f "stream-%g" 1 200000 >"$T/in2"
"$RLOGCTL" append --cluster-controls "$(all_controls)" --timeout 20 <"$T/in2" >"$T/off2" 2>"$T/err2" &
BG=$!
EXTRA_PIDS+=("$BG")
sleep 1
say "SIGTERM to leader $L (pid ${NODE_PID[$L]}) after $(wc -l <"$T/off2") of 200000 stream records were acknowledged"
stop_node "$L"; rc=$?
check "the leader exits 0 on SIGTERM under load (got $rc)" [ $rc -eq 0 ]
check "its log says it closed cleanly" grep -q "closed cleanly" "$T/n$L.log"
wait "$BG"; rc=$?
n2=$(wc -l <"$T/off2")
say "stream client: exit $rc, $n2 of 200000 acknowledged; $(tr '\n' ' ' <"$T/err2")"
NL=$(wait_leader "$L") || { not_ok "a new leader after the SIGTERM"; finish; }
ok "node $NL leads after the handover"
check "the stopped node restarts" start_node "$L"

# 2. Full-cluster restart. Node 1 gets SIGHUP while paused (what the
# kernel sends a stopped process whose session went away), then SIGCONT:
# it closes cleanly and says why, as on SIGTERM.
kill -STOP "${NODE_PID[1]}"
kill -HUP "${NODE_PID[1]}"
kill -CONT "${NODE_PID[1]}"
stop_node 1 HUP; rc=$?
check "node 1 exits 0 on SIGHUP while paused (got $rc)" [ $rc -eq 0 ]
check "its log names SIGHUP and a clean close" \
    sh -c "grep -q 'received SIGHUP, shutting down' '$T/n1.log' && grep -q 'closed cleanly' '$T/n1.log'"
for i in 2 3; do
    stop_node "$i"; rc=$?
    check "node $i exits 0 on SIGTERM (got $rc)" [ $rc -eq 0 ]
done
for i in 1 2 3; do check "node $i restarts on its data" start_node "$i"; done
L=$(wait_leader) || { not_ok "a leader after the full restart"; finish; }
ok "node $L leads after the full restart"
o=$("$RLOGCTL" append --control "$(ctl "$L")" --timeout 10 after-restart 2>&1); rc=$?
check "append after the restart (exit $rc, offset $o)" [ $rc -eq 0 ]
end=$(( ${o:-0} + 1 ))
check "it lands after everything acknowledged before ($((2000 + n2)) records)" [ "${o:-0}" -ge $((2000 + n2)) ]
for i in 1 2 3; do
    wait_commit "$i" "$end" >/dev/null
    read_all "$i" "$end" >"$T/r$i.json" 2>"$T/r$i.err" || not_ok "read 0..$((end - 1)) on node $i: $(cat "$T/r$i.err")"
done
check "node 2 identical to node 1" cmp -s "$T/r1.json" "$T/r2.json"
check "node 3 identical to node 1" cmp -s "$T/r1.json" "$T/r3.json"
check "offsets dense 0..$((end - 1))" awk -F'[:,]' -v n="$end" '$2 != NR - 1 { exit 1 } END { exit NR != n }' "$T/r1.json"
sed -e 's/^{"offset":\([0-9]*\),"record":"\(.*\)"}$/\1\t\2/' "$T/r1.json" | sort >"$T/log.tsv"
{ paste "$T/off1" "$T/in1"; paste "$T/off2" <(head -n "$n2" "$T/in2"); } | sort >"$T/acked.tsv"
missing=$(comm -23 "$T/acked.tsv" "$T/log.tsv" | wc -l)
check "every acknowledged record is at its offset ($missing missing)" [ "$missing" -eq 0 ]

# 3. A minority cannot append; it still serves what was committed.
F1=$(( L % 3 + 1 )); F2=$(( F1 % 3 + 1 ))
stop_node "$F1"; stop_node "$F2"
say "stopped nodes $F1 and $F2; node $L is alone"
start=$SECONDS
"$RLOGCTL" append --control "$(ctl "$L")" --timeout 10 lonely >"$T/out" 2>"$T/err"; rc=$?
check "an append on the minority fails (exit $rc after $((SECONDS - start)) s: $(head -n 1 "$T/err"))" [ $rc -ne 0 ]
check "and prints no offset" [ ! -s "$T/out" ]
got=$("$RLOGCTL" read --control "$(ctl "$L")" "$o" 2>&1)
check "the minority still serves committed offset $o ($got)" [ "$got" = "$o	after-restart" ]
finish
