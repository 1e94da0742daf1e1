#!/bin/bash
# A follower that missed far more than the leader keeps in memory catches up
# (with tiny snapshot settings, by fetching the missing range from a peer's
# segments): killed with -9, it misses hundreds of raft entries, restarts,
# reaches the leader's commit offset, and serves identical records; the
# cluster then survives losing the old leader with the caught-up node in the
# quorum. CATCHUP_NODE_ARGS adds node options (e.g. -v to see the catch-up).
. "$(dirname "$0")/lib.sh"
# shellcheck disable=SC2206 # CATCHUP_NODE_ARGS is split into words on purpose
NODE_ARGS=(--snapshot-threshold 8 --snapshot-trailing 8 --segment-size 2097152 ${CATCHUP_NODE_ARGS:-})

start_cluster 3 || { not_ok "start a 3-node cluster (${NODE_ARGS[*]})"; finish; }
L=$(wait_leader) || { not_ok "a leader is elected"; finish; }
F=$(( L % 3 + 1 ))
ok "node $L is the leader; node $F will lag"
seq -f "before-%g" 1 1000 | "$RLOGCTL" append --control "$(ctl "$L")" >/dev/null 2>"$T/err" \
    || not_ok "1000 appends: $(cat "$T/err")"
wait_commit "$F" 1000 >/dev/null
say "killing follower $F (pid ${NODE_PID[$F]})"
kill_node "$F"

# Many small raft entries: a slow producer makes rlogctl send one batch per line.
for i in $(seq 1 400); do echo "entry-$i"; sleep 0.002; done |
    "$RLOGCTL" append --control "$(ctl "$L")" >"$T/off1" 2>"$T/err1"
check "400 single-record appends while node $F is down ($(wc -l <"$T/off1") acknowledged)" \
    [ "$(wc -l <"$T/off1")" -eq 400 ]
# And a lot of bytes: ~7 MiB in big batches, across several 2 MiB segments.
seq -f "bulk-%08g-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" 1 60000 |
    "$RLOGCTL" append --control "$(ctl "$L")" >"$T/off2" 2>"$T/err2"
check "60000 bulk appends ($(wc -l <"$T/off2") acknowledged)" [ "$(wc -l <"$T/off2")" -eq 60000 ]
idx=$(status_of "$L" last_index)
say "leader's raft last_index is now $idx"

say "restarting node $F"
check "node $F restarts" start_node "$F"
end=$(status_of "$L" commit_offset)
WAIT=60 wait_commit "$F" "$end"
check "node $F catches up to commit_offset $end" [ "$(status_of "$F" commit_offset)" -ge "$end" ]
for i in 1 2 3; do
    read_all "$i" "$end" >"$T/r$i.json" 2>"$T/r$i.err" || not_ok "read 0..$((end - 1)) on node $i: $(cat "$T/r$i.err")"
done
check "node $F serves exactly what leader $L serves" cmp -s "$T/r$L.json" "$T/r$F.json"
O=$(( F % 3 + 1 )); [ "$O" = "$L" ] && O=$(( O % 3 + 1 ))
check "node $O too" cmp -s "$T/r$L.json" "$T/r$O.json"
check "offsets dense 0..$((end - 1))" awk -F'[:,]' -v n="$end" '$2 != NR - 1 { exit 1 } END { exit NR != n }' "$T/r$L.json"
grep -Ei 'fetch|snapshot|catch' "$T/n$F.log" | head -n 3 | sed "s/^/$TEST_NAME: node $F log: /"

# The caught-up node must be a sound member: lose the old leader.
say "killing leader $L"
kill_node "$L"
NL=$(wait_leader "$L") || { not_ok "a new leader among $F and $O"; finish; }
ok "node $NL leads"
o=$("$RLOGCTL" append --control "$(ctl "$NL")" --timeout 10 after 2>&1); rc=$?
check "append through the new leader (exit $rc: $o)" [ $rc -eq 0 ]
check "it lands right after the old end ($o = $end)" [ "$o" = "$end" ]
for i in $F $O; do
    wait_commit "$i" $((end + 1)) >/dev/null
    got=$("$RLOGCTL" read --control "$(ctl "$i")" "$end" 2>&1)
    check "node $i serves it" [ "$got" = "$end	after" ]
done
finish
