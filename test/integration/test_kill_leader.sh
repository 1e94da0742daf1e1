#!/bin/bash
# kill -9 of the leader during a stream of appends. Background clients
# (APPENDERS, default 3) append batches of unique records (trying every node's
# control socket) and log each acknowledged offset with its record. After a
# new leader is elected and the killed node restarts, every acknowledged
# offset holds its record on all three nodes, the three logs are identical,
# offsets are dense, every batch is in the log whole or not at all, and no
# batch refused up front is in it.
. "$(dirname "$0")/lib.sh"
BATCH=${BATCH:-50}

start_cluster 3 || { not_ok "start a 3-node cluster"; finish; }
L=$(wait_leader) || { not_ok "a leader is elected"; finish; }
ok "node $L is the leader"

# Appender a: its batch k holds records "a<a>k<k>-<i>-<nonce>"; an acknowledged
# batch adds "offset<TAB>record" lines to acked<a>.tsv. A batch whose outcome
# is unknown (node killed mid-request) goes to unknown<a>.txt, one refused by
# every node to refused<a>.txt; neither is retried.
appender() { # appender ID
    local a=$1 k=0 nonce=$RANDOM$RANDOM rc
    while [ ! -e "$T/stop" ]; do
        k=$((k + 1))
        seq -f "a${a}k$k-%g-$nonce" 1 "$BATCH" >"$T/batch$a.txt"
        "$RLOGCTL" append --cluster-controls "$(all_controls)" --timeout 10 \
            <"$T/batch$a.txt" >"$T/batch$a.off" 2>"$T/batch$a.err"
        rc=$?
        if [ $rc -eq 0 ]; then
            paste "$T/batch$a.off" "$T/batch$a.txt" >>"$T/acked$a.tsv"
        elif [ $rc -eq 5 ] || grep -q "may or may not" "$T/batch$a.err"; then
            echo "a${a}k$k $(tr '\n' ' ' <"$T/batch$a.err")" >>"$T/unknown$a.txt"; sleep 0.1
        else # refused up front by every node: must not be in the log
            echo "a${a}k$k $(tr '\n' ' ' <"$T/batch$a.err")" >>"$T/refused$a.txt"; sleep 0.1
        fi
    done
}
acked() { cat "$T"/acked[0-9]*.tsv 2>/dev/null | wc -l; }
wait_acked() { # wait_acked N
    local deadline=$((SECONDS + WAIT))
    while [ "$(acked)" -lt "$1" ] && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
    [ "$(acked)" -ge "$1" ]
}

APPENDERS=${APPENDERS:-3}
APP=()
for ((a = 1; a <= APPENDERS; a++)); do
    : >"$T/acked$a.tsv"; : >"$T/unknown$a.txt"; : >"$T/refused$a.txt"
    appender $a &
    APP+=($!)
    EXTRA_PIDS+=($!)
done
check "appends are acknowledged before the kill" wait_acked 1000
before=$(acked)
say "killing leader $L (pid ${NODE_PID[$L]}) after $before acknowledged records"
kill_node "$L"
NL=$(wait_leader "$L") || { not_ok "a new leader is elected after the kill"; finish; }
ok "node $NL is the new leader"
check "appends continue through the new leader" wait_acked $((before + 1000))
say "restarting node $L"
check "the killed node restarts" start_node "$L"
check "appends continue with the old leader back" wait_acked $(($(acked) + 500))
touch "$T/stop"
wait "${APP[@]}"
cat "$T"/acked?.tsv >"$T/acked.tsv"
cat "$T"/unknown?.txt >"$T/unknown.txt"
cat "$T"/refused?.txt >"$T/refused.txt"
say "$(acked) records acknowledged; $(wc -l <"$T/unknown.txt") batches with unknown outcome, $(wc -l <"$T/refused.txt") refused"
[ -s "$T/refused.txt" ] && head -n 5 "$T/refused.txt"

# Every node must reach the leader's commit offset.
L2=$(wait_leader) || { not_ok "a leader exists at the end"; finish; }
end=$(status_of "$L2" commit_offset)
for i in 1 2 3; do
    if wait_commit "$i" "$end"; then ok "node $i caught up to commit_offset $end"; else not_ok "node $i caught up to commit_offset $end"; fi
done
for i in 1 2 3; do
    if read_all "$i" "$end" >"$T/read$i.json" 2>"$T/read$i.err"; then
        ok "node $i serves every offset 0..$((end - 1))"
    else
        not_ok "node $i serves every offset 0..$((end - 1)): $(cat "$T/read$i.err")"
    fi
done
check "offsets are dense on node 1 (0..$((end - 1)))" \
    awk -F'[:,]' -v n="$end" '$2 != NR - 1 { exit 1 } END { exit NR != n }' "$T/read1.json"
check "node 2 is identical to node 1" cmp -s "$T/read1.json" "$T/read2.json"
check "node 3 is identical to node 1" cmp -s "$T/read1.json" "$T/read3.json"
# Every acknowledged (offset, record) pair is in the log.
sed -e 's/^{"offset":\([0-9]*\),"record":"\(.*\)"}$/\1\t\2/' "$T/read1.json" >"$T/log.tsv"
missing=$(sort "$T/acked.tsv" | comm -23 - <(sort "$T/log.tsv") | wc -l)
check "all $(acked) acknowledged records are at their offsets ($missing missing)" [ "$missing" -eq 0 ]
[ "$missing" -gt 0 ] && sort "$T/acked.tsv" | comm -23 - <(sort "$T/log.tsv") | head -n 5
# A batch is one contiguous run of offsets: all of it or none of it is in
# the log, and a refused batch none of it.
cut -f2 "$T/log.tsv" | sed 's/-.*//' | sort | uniq -c | awk '{ print $2, $1 }' >"$T/per_batch.txt"
partial=$(awk -v b="$BATCH" '$2 != b' "$T/per_batch.txt" | wc -l)
check "every batch in the log is whole ($partial partial)" [ "$partial" -eq 0 ]
[ "$partial" -gt 0 ] && awk -v b="$BATCH" '$2 != b' "$T/per_batch.txt" | head -n 5
bad_refused=$(cut -d' ' -f1 "$T/refused.txt" | grep -Fxf - <(cut -d' ' -f1 "$T/per_batch.txt") | wc -l)
check "no refused batch is in the log ($bad_refused found)" [ "$bad_refused" -eq 0 ]
in_log_unknown=$(cut -d' ' -f1 "$T/unknown.txt" | grep -Fxf - <(cut -d' ' -f1 "$T/per_batch.txt") | wc -l)
say "$in_log_unknown of $(wc -l <"$T/unknown.txt") batches with unknown outcome made it into the log"
dups=$(cut -f2 "$T/log.tsv" | sort | uniq -d | wc -l)
check "no record appears twice ($dups duplicates)" [ "$dups" -eq 0 ]
finish
