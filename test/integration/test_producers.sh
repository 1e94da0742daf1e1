#!/bin/bash
# Exactly once through any node: `rlogctl append --producer` sends each
# record with a producer id and sequence number. Running the same command
# twice appends nothing twice (the original offsets are printed); streams
# through every node while the leader is killed -9 and restarted, each
# client sending again whatever ended in doubt, leave every record in the
# final log exactly once, on every node. Conditional appends
# (--expect-offset): one at the end succeeds, a stale one exits 9 naming the
# actual end, and appends nothing.
. "$(dirname "$0")/lib.sh"
N=${N:-600}

start_cluster 3 || { not_ok "start a 3-node cluster"; finish; }
L=$(wait_leader) || { not_ok "a leader is elected"; finish; }
F=$(( L % 3 + 1 ))
ok "node $L leads"

# 1. The same command twice.
seq -f "again-%g" 1 50 >"$T/again.txt"
"$RLOGCTL" append --control "$(ctl "$F")" --producer 77 <"$T/again.txt" >"$T/again1.off" 2>"$T/err"; rc=$?
check "50 records with producer 77 on follower $F (exit $rc: $(head -c 200 "$T/err"))" [ $rc -eq 0 ]
c1=$(status_of "$L" commit_offset)
"$RLOGCTL" append --control "$(ctl "$L")" --producer 77 <"$T/again.txt" >"$T/again2.off" 2>"$T/err"; rc=$?
check "the same command again, on the leader (exit $rc)" [ $rc -eq 0 ]
check "  prints the same offsets" cmp -s "$T/again1.off" "$T/again2.off"
c2=$(status_of "$L" commit_offset)
check "  and appends nothing (commit_offset $c1 -> $c2)" [ "$c1" = "$c2" ]
"$RLOGCTL" append --control "$(ctl "$L")" --producer 77 --sequence 3 other >/dev/null 2>"$T/err"; rc=$?
check "sequence 3 again with another record is refused (exit $rc)" [ $rc -eq 6 ]
check "  with RLOG_ESEQUENCE" grep -q RLOG_ESEQUENCE "$T/err"
"$RLOGCTL" append --control "$(ctl "$L")" --sequence 3 x >/dev/null 2>&1; rc=$?
check "--sequence without --producer is a usage error (exit $rc)" [ $rc -eq 1 ]

# 2. Conditional appends.
end=$(status_of "$L" commit_offset)
o=$("$RLOGCTL" append --control "$(ctl "$F")" --expect-offset "$end" cond-a 2>"$T/err"); rc=$?
check "a conditional append expecting $end succeeds there (exit $rc, offset $o)" [ $rc -eq 0 ] && [ "$o" = "$end" ]
"$RLOGCTL" append --control "$(ctl "$L")" --expect-offset "$end" cond-b >/dev/null 2>"$T/err"; rc=$?
check "a second one expecting $end exits 9 (exit $rc)" [ $rc -eq 9 ]
check "  naming the actual end $((end + 1))" grep -q "next offset is $((end + 1))" "$T/err"
check "  and cond-b is nowhere" [ -z "$(read_all "$L" $((end + 1)) | grep cond-b)" ]

# 3. Streams through every node while the leader is killed and restarted.
for c in 1 2 3; do
    seq -f "p$c-%g" 1 "$N" >"$T/in$c"
    # Each client starts at a different node; in doubt it sends again to the next.
    ctls=$(ctl "$c"),$(ctl $((c % 3 + 1))),$(ctl $(((c + 1) % 3 + 1)))
    ( while read -r line; do echo "$line"; sleep 0.005; done <"$T/in$c" ) |
        "$RLOGCTL" append --cluster-controls "$ctls" --producer $((100 + c)) --timeout 60 \
            >"$T/out$c" 2>"$T/err$c" &
    PIDS[$c]=$!
    EXTRA_PIDS+=("${PIDS[$c]}")
done
wait_lines "$T/out1" 100 >/dev/null
L=$(wait_leader) || not_ok "a leader before the kill"
at=$(cat "$T/out1" "$T/out2" "$T/out3" | wc -l)
say "kill -9 of leader $L with $at of $((3 * N)) records acknowledged"
kill_node "$L"
check "the kill came while the clients were appending" [ "$at" -lt $((3 * N)) ]
sleep 1
check "node $L restarts" start_node "$L"
for c in 1 2 3; do
    wait_exit "${PIDS[$c]}"; rc=$?
    check "client $c (producer $((100 + c))) ends with exit 0 (exit $rc: $(grep -v 'sending it again' "$T/err$c" | head -c 300))" [ $rc -eq 0 ]
    check "  and printed $N offsets" [ "$(wc -l <"$T/out$c")" -eq "$N" ]
    resent=$(grep -c "sending it again" "$T/err$c")
    say "client $c sent $resent calls again"
done
L=$(wait_leader) || { not_ok "a leader at the end"; finish; }
end=$(status_of "$L" commit_offset)
for i in 1 2 3; do
    wait_commit "$i" "$end" >/dev/null
    read_all "$i" "$end" >"$T/all$i.json" 2>"$T/rerr$i" || not_ok "read 0..$((end - 1)) on node $i: $(cat "$T/rerr$i")"
done
check "nodes 1 and 2 hold the same log ($end records)" cmp -s "$T/all1.json" "$T/all2.json"
check "nodes 1 and 3 hold the same log" cmp -s "$T/all1.json" "$T/all3.json"
for c in 1 2 3; do
    sed -n "s/.*\"record\":\"\\(p$c-[0-9]*\\)\"}$/\\1/p" "$T/all1.json" | sort >"$T/got$c"
    sort "$T/in$c" >"$T/want$c"
    check "client $c: every record in the log exactly once" cmp -s "$T/got$c" "$T/want$c"
    # The offsets printed are where the records are.
    paste "$T/out$c" "$T/in$c" | head -n 20 >"$T/pairs$c"
    bad=0
    while IFS=$'\t' read -r off rec; do
        grep -q "^{\"offset\":$off,\"record\":\"$rec\"}$" "$T/all1.json" || bad=$((bad + 1))
    done <"$T/pairs$c"
    check "client $c: the printed offsets hold its records" [ $bad -eq 0 ]
done
finish
