#!/bin/bash
# Membership through rlogctl: a 4th node started with --join is added with
# add-node on the leader (add-node on a follower exits 3 naming the leader),
# catches up to the leader's commit offset and serves identical records;
# leadership is transferred to it; an old node is removed; the 3-node
# cluster that is left keeps taking appends and all its nodes agree.
. "$(dirname "$0")/lib.sh"

three_of_four
F=$(( L % 3 + 1 ))
ok "node $L leads the 3-node cluster $C3"
seq -f "before-%g" 1 2000 | "$RLOGCTL" append --control "$(ctl "$L")" >/dev/null 2>"$T/err" \
    || not_ok "2000 appends: $(cat "$T/err")"

CLUSTER=$C4
check "node 4 starts with --join and the 4-node --cluster" start_node 4 --join
check "its log says it is joining" grep -q "joining a running cluster" "$T/n4.log"
check "node 4 has no records yet" [ "$(status_of 4 commit_offset)" = 0 ]

"$RLOGCTL" add-node --control "$(ctl "$F")" 4 "$(addr 4)" >"$T/out" 2>"$T/err"; rc=$?
check "add-node on follower $F exits 3 (got $rc)" [ $rc -eq 3 ]
check "and names the leader: $(head -n 1 "$T/err")" \
    grep -q "not the leader; leader is $L at $(addr "$L")" "$T/err"
check "nothing on stdout" [ ! -s "$T/out" ]

out=$("$RLOGCTL" add-node --control "$(ctl "$L")" --timeout 60 4 "$(addr 4)" 2>&1); rc=$?
check "add-node 4 on leader $L (exit $rc: $out)" [ $rc -eq 0 ]
check "it prints 'added node 4 at $(addr 4)'" [ "$out" = "added node 4 at $(addr 4)" ]
N_NODES=4
"$RLOGCTL" add-node --control "$(ctl "$L")" 4 "$(addr 4)" >/dev/null 2>"$T/err"; rc=$?
check "adding node 4 again exits 6 (got $rc: $(head -c 150 "$T/err"))" [ $rc -eq 6 ]
check "the leader lists node 4 as a voter" \
    grep -q "^peer 4 $(addr 4) voter" <("$RLOGCTL" status --control "$(ctl "$L")")
seq -f "after-add-%g" 1 500 | "$RLOGCTL" append --control "$(ctl "$L")" >/dev/null 2>"$T/err" \
    || not_ok "500 appends after the add: $(cat "$T/err")"
end=$(status_of "$L" commit_offset)
check "node 4 catches up to the leader's commit_offset $end" wait_commit 4 "$end"
read_all "$L" "$end" >"$T/rL.json" 2>"$T/err" || not_ok "read on $L: $(cat "$T/err")"
read_all 4 "$end" >"$T/r4.json" 2>"$T/err" || not_ok "read on 4: $(cat "$T/err")"
check "node 4 serves exactly what the leader serves (0..$((end - 1)))" cmp -s "$T/rL.json" "$T/r4.json"

"$RLOGCTL" transfer --control "$(ctl "$F")" 4 >/dev/null 2>"$T/err"; rc=$?
check "transfer on follower $F exits 3 (got $rc)" [ $rc -eq 3 ]
out=$("$RLOGCTL" transfer --control "$(ctl "$L")" 4 2>&1); rc=$?
check "transfer to 4 on leader $L (exit $rc: $out)" [ $rc -eq 0 ]
NL=$(wait_leader) || { not_ok "a leader after the transfer"; finish; }
check "node 4 is the leader now (got $NL)" [ "$NL" = 4 ]

"$RLOGCTL" remove-node --control "$(ctl "$L")" "$L" >/dev/null 2>"$T/err"; rc=$?
check "remove-node on the old leader, now a follower, exits 3 (got $rc)" [ $rc -eq 3 ]
out=$("$RLOGCTL" remove-node --control "$(ctl 4)" --json "$L" 2>&1); rc=$?
check "remove-node $L on leader 4 (exit $rc: $out)" [ $rc -eq 0 ]
check "--json prints {\"removed\":$L}" [ "$out" = "{\"removed\":$L}" ]
check "the leader no longer lists node $L" \
    bash -c "! '$RLOGCTL' status --control '$(ctl 4)' | grep -q '^peer $L '"
stop_node "$L"; rc=$?
say "removed node $L stopped (exit $rc)"

off=$(seq -f "after-remove-%g" 1 500 | "$RLOGCTL" append --control "$(ctl 4)" --timeout 10 2>"$T/err"); rc=$?
check "the cluster keeps taking appends (exit $rc: $(head -c 150 "$T/err"))" [ $rc -eq 0 ]
check "500 offsets printed, from $end on ($(head -n 1 <<<"$off")..)" \
    [ "$(wc -l <<<"$off")" -eq 500 -a "$(head -n 1 <<<"$off")" = "$end" ]
NL=$(wait_leader "$L") || { not_ok "a leader among the remaining nodes"; finish; }
end=$(status_of "$NL" commit_offset)
for i in 1 2 3 4; do
    [ "$i" = "$L" ] && continue
    if wait_commit "$i" "$end"; then ok "node $i reaches commit_offset $end"; else not_ok "node $i reaches commit_offset $end"; fi
    read_all "$i" "$end" >"$T/end$i.json" 2>"$T/err" || not_ok "read on $i: $(cat "$T/err")"
done
check "the remaining nodes serve identical logs" \
    bash -c "cd '$T' && cmp -s end4.json end$F.json && cmp -s end4.json \$(ls end*.json | tail -n 1)"
check "offsets dense 0..$((end - 1))" \
    awk -F'[:,]' -v n="$end" '$2 != NR - 1 { exit 1 } END { exit NR != n }' "$T/end4.json"
for i in 1 2 3 4; do
    [ "$i" = "$L" ] && continue
    stop_node "$i"; rc=$?
    check "node $i exits 0 on SIGTERM (got $rc)" [ $rc -eq 0 ]
done
finish
