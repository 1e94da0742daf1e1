#!/bin/bash
# Writes on any node: appends through a follower's control socket are
# forwarded to the leader, acknowledged once committed, and read back on
# every node; `rlogctl barrier` on a follower covers an append made on the
# leader just before and the follower serves it at once; then kill -9 of
# the leader during a stream of follower appends: every acknowledged
# (offset, record) is in the final log, on every node, and no record twice.
. "$(dirname "$0")/lib.sh"
BATCH=${BATCH:-20}

start_cluster 3 || { not_ok "start a 3-node cluster"; finish; }
L=$(wait_leader) || { not_ok "a leader is elected"; finish; }
ok "node $L is the leader"
F=$(( L % 3 + 1 ))
G=$(( F % 3 + 1 ))

off=$("$RLOGCTL" append --control "$(ctl "$F")" one two three 2>"$T/err"); rc=$?
check "append of 3 records on follower $F exits 0 (rc $rc: $(head -c 200 "$T/err"))" [ $rc -eq 0 ]
check "it prints three dense offsets" [ "$(wc -l <<<"$off")" -eq 3 ]
o1=$(head -n 1 <<<"$off")
check "the follower serves the first one at once" \
    [ "$("$RLOGCTL" read --control "$(ctl "$F")" "$o1")" = "$o1	one" ]
for i in 1 2 3; do
    check "node $i reaches offset $((o1 + 3))" wait_commit "$i" $((o1 + 3))
    check "node $i reads back the forwarded records" \
        [ "$("$RLOGCTL" read --control "$(ctl "$i")" "$o1-$((o1 + 2))" | cut -f2 | tr '\n' ' ')" = "one two three " ]
done
seq -f "stdin-%g" 1 100 | "$RLOGCTL" append --control "$(ctl "$G")" >"$T/stdin.off" 2>"$T/err"; rc=$?
check "100 stdin lines on follower $G exit 0 (rc $rc)" [ $rc -eq 0 ]
check "and print 100 offsets" [ "$(wc -l <"$T/stdin.off")" -eq 100 ]

# Barrier: an append acknowledged by the leader is below it, and readable
# on the follower right after.
lo=$("$RLOGCTL" append --control "$(ctl "$L")" leader-rec 2>"$T/err") || not_ok "append on the leader: $(cat "$T/err")"
b=$("$RLOGCTL" barrier --control "$(ctl "$F")" 2>"$T/err"); rc=$?
check "barrier on follower $F exits 0 (rc $rc: $(head -c 200 "$T/err"))" [ $rc -eq 0 ]
check "it is past the leader's append ($b > $lo)" [ "${b:-0}" -gt "${lo:-0}" ]
check "the follower reads that append right after" \
    [ "$("$RLOGCTL" read --control "$(ctl "$F")" "$lo")" = "$lo	leader-rec" ]
bj=$("$RLOGCTL" barrier --control "$(ctl "$L")" --json 2>"$T/err"); rc=$?
check "barrier on the leader with --json: $bj" [ $rc -eq 0 ] && grep -Eq '^\{"barrier":[0-9]+\}$' <<<"$bj"
"$RLOGCTL" barrier --control "$(ctl "$F")" extra >/dev/null 2>&1; rc=$?
check "barrier with an argument is a usage error (exit $rc)" [ $rc -eq 1 ]
fa=$("$RLOGCTL" status --control "$(ctl "$F")" --json | grep -o '"forwarded_appends":[0-9]*' | cut -d: -f2)
check "status counts forwarded appends on follower $F (${fa:-none})" [ "${fa:-0}" -ge 1 ]

# kill -9 of the leader while two clients append through the followers.
appender() { # appender ID NODE
    local a=$1 node=$2 k=0 nonce=$RANDOM$RANDOM rc
    while [ ! -e "$T/stop" ]; do
        k=$((k + 1))
        seq -f "f${a}k$k-%g-$nonce" 1 "$BATCH" >"$T/batch$a.txt"
        "$RLOGCTL" append --control "$(ctl "$node")" --timeout 10 \
            <"$T/batch$a.txt" >"$T/batch$a.off" 2>"$T/batch$a.err"
        rc=$?
        if [ $rc -eq 0 ]; then
            paste "$T/batch$a.off" "$T/batch$a.txt" >>"$T/acked$a.tsv"
        else
            echo "f${a}k$k rc=$rc $(tr '\n' ' ' <"$T/batch$a.err")" >>"$T/failed$a.txt"; sleep 0.1
        fi
    done
}
acked() { cat "$T"/acked[0-9]*.tsv 2>/dev/null | wc -l; }
wait_acked() {
    local deadline=$((SECONDS + WAIT))
    while [ "$(acked)" -lt "$1" ] && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
    [ "$(acked)" -ge "$1" ]
}
: >"$T/acked1.tsv"; : >"$T/acked2.tsv"; : >"$T/failed1.txt"; : >"$T/failed2.txt"
appender 1 "$F" & APP=($!); EXTRA_PIDS+=($!)
appender 2 "$G" & APP+=($!); EXTRA_PIDS+=($!)
check "follower appends are acknowledged before the kill" wait_acked 400
before=$(acked)
say "killing leader $L after $before acknowledged records"
kill_node "$L"
NL=$(wait_leader "$L") || { not_ok "a new leader is elected after the kill"; finish; }
ok "node $NL is the new leader"
check "follower appends continue after the kill" wait_acked $((before + 400))
check "the killed node restarts" start_node "$L"
touch "$T/stop"
wait "${APP[@]}"
cat "$T"/acked?.tsv >"$T/acked.tsv"
cat "$T"/failed?.txt >"$T/failed.txt"
say "$(acked) records acknowledged through followers; $(wc -l <"$T/failed.txt") batches failed"
[ -s "$T/failed.txt" ] && head -n 3 "$T/failed.txt"

L2=$(wait_leader) || { not_ok "a leader exists at the end"; finish; }
end=$(status_of "$L2" commit_offset)
for i in 1 2 3; do
    check "node $i caught up to commit_offset $end" wait_commit "$i" "$end"
    read_all "$i" "$end" >"$T/read$i.json" 2>"$T/read$i.err" || not_ok "node $i reads 0..$((end - 1))"
done
check "node 2 is identical to node 1" cmp -s "$T/read1.json" "$T/read2.json"
check "node 3 is identical to node 1" cmp -s "$T/read1.json" "$T/read3.json"
sed -e 's/^{"offset":\([0-9]*\),"record":"\(.*\)"}$/\1\t\2/' "$T/read1.json" >"$T/log.tsv"
missing=$(sort "$T/acked.tsv" | comm -23 - <(sort "$T/log.tsv") | wc -l)
check "all $(acked) acknowledged records are at their offsets ($missing missing)" [ "$missing" -eq 0 ]
dups=$(cut -f2 "$T/log.tsv" | sort | uniq -d | wc -l)
check "no record appears twice ($dups duplicates)" [ "$dups" -eq 0 ]
for i in 1 2 3; do
    stop_node "$i"; rc=$?
    check "node $i exits 0 on SIGTERM (got $rc)" [ $rc -eq 0 ]
done
finish
