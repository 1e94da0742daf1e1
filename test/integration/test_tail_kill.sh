#!/bin/bash
# Subscribers on every node during kill -9 of the leader. A `tail --from 0
# --json` runs on each of the three nodes while a background client appends
# batches of unique records (through whichever node accepts, via
# --cluster-controls) and logs each acknowledged offset with its record; the
# leader is killed with -9 mid-stream, a new one is elected, appends go on,
# the killed node restarts and a new tail from 0 starts on it. At the end:
# every tail on a surviving node, and the restarted node's tail, shows
# offsets 0..N-1 exactly once, in order, byte for byte what `read` serves on
# every node (and the three nodes serve the same); the killed node's
# original tail showed a gap-free, in-order prefix of that log and exited 5
# when its node died; every acknowledged record is at its offset.
. "$(dirname "$0")/lib.sh"
BATCH=${BATCH:-25}

# start_tail I NAME: `tail --from 0 --json` on node I into $T/NAME.out; its
# pid in TAIL_PID[NAME]. Waits until the node logs the new client.
declare -A TAIL_PID=()
start_tail() {
    local before
    before=$(grep -c "tail client .*streaming from offset 0" "$T/n$1.log")
    "$RLOGCTL" tail --control "$(ctl "$1")" --from 0 --json >"$T/$2.out" 2>"$T/$2.err" &
    TAIL_PID[$2]=$!
    EXTRA_PIDS+=($!)
    wait_log "$1" "tail client .*streaming from offset 0" $((before + 1))
}

start_cluster 3 || { not_ok "start a 3-node cluster"; finish; }
L=$(wait_leader) || { not_ok "a leader is elected"; finish; }
ok "node $L is the leader"
for i in 1 2 3; do
    check "a tail --from 0 starts on node $i" start_tail "$i" "tail$i"
done

# The appender: batch k holds records "k<k>-<i>-<nonce>"; an acknowledged
# batch adds "offset<TAB>record" lines to acked.tsv. A batch with an unknown
# outcome (its node killed mid-request) or refused is noted, not retried.
appender() {
    local k=0 nonce=$RANDOM$RANDOM rc
    while [ ! -e "$T/stop" ]; do
        k=$((k + 1))
        seq -f "k$k-%g-$nonce" 1 "$BATCH" >"$T/batch.txt"
        "$RLOGCTL" append --cluster-controls "$(all_controls)" --timeout 10 \
            <"$T/batch.txt" >"$T/batch.off" 2>"$T/batch.err"
        rc=$?
        if [ $rc -eq 0 ]; then
            paste "$T/batch.off" "$T/batch.txt" >>"$T/acked.tsv"
        else
            echo "k$k exit $rc: $(tr '\n' ' ' <"$T/batch.err")" >>"$T/failed.txt"; sleep 0.1
        fi
    done
}
acked() { wc -l <"$T/acked.tsv"; }
wait_acked() { # wait_acked N
    local deadline=$((SECONDS + WAIT))
    while [ "$(acked)" -lt "$1" ] && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
    [ "$(acked)" -ge "$1" ]
}
: >"$T/acked.tsv"; : >"$T/failed.txt"
appender &
AP=$!; EXTRA_PIDS+=("$AP")

check "appends are acknowledged before the kill" wait_acked 2000
check "the tail on leader $L is streaming before the kill" wait_lines "$T/tail$L.out" 1000
before=$(acked)
say "killing leader $L (pid ${NODE_PID[$L]}) after $before acknowledged records; its tail has shown $(wc -l <"$T/tail$L.out")"
kill_node "$L"
wait_exit "${TAIL_PID[tail$L]}"; rc=$?
check "the killed node's tail exits 5 (got $rc: $(head -c 200 "$T/tail$L.err"))" [ $rc -eq 5 ]
NL=$(wait_leader "$L") || { not_ok "a new leader is elected after the kill"; finish; }
ok "node $NL is the new leader"
check "appends continue through the new leader" wait_acked $((before + 1000))
say "restarting node $L"
check "the killed node restarts" start_node "$L"
check "a new tail --from 0 starts on the restarted node $L" start_tail "$L" "tail${L}r"
check "appends continue with the old leader back" wait_acked $(($(acked) + 1000))
touch "$T/stop"
wait_exit "$AP"; rc=$?
check "the appender stops (exit $rc)" [ $rc -eq 0 ]
say "$(acked) records acknowledged; $(wc -l <"$T/failed.txt") batches failed or with unknown outcome"
[ -s "$T/failed.txt" ] && head -n 3 "$T/failed.txt"

# One more append through the leader (a current-term entry at the end), then
# every node must report that commit offset.
L2=$(wait_leader) || { not_ok "a leader exists at the end"; finish; }
off=$("$RLOGCTL" append --control "$(ctl "$L2")" --timeout 10 the-end 2>&1); rc=$?
check "a last append through leader $L2 (exit $rc: $off)" [ $rc -eq 0 ]
[ $rc -eq 0 ] || finish
N=$((off + 1))
for i in 1 2 3; do
    check "node $i reaches commit_offset $N" wait_commit "$i" "$N"
done
c="$(status_of 1 commit_offset) $(status_of 2 commit_offset) $(status_of 3 commit_offset)"
check "the three commit offsets agree ($c)" [ "$c" = "$N $N $N" ]
for i in 1 2 3; do
    if read_all "$i" "$N" >"$T/read$i.json" 2>"$T/read$i.err"; then
        ok "node $i serves every offset 0..$((N - 1))"
    else
        not_ok "node $i serves every offset 0..$((N - 1)): $(cat "$T/read$i.err")"
    fi
done
check "offsets are dense on node 1 (0..$((N - 1)))" \
    awk -F'[:,]' -v n="$N" '$2 != NR - 1 { exit 1 } END { exit NR != n }' "$T/read1.json"
check "node 2 serves what node 1 serves" cmp -s "$T/read1.json" "$T/read2.json"
check "node 3 serves what node 1 serves" cmp -s "$T/read1.json" "$T/read3.json"

# The live tails: all N records, then SIGTERM (exit 0), and exactly the log.
tails=()
for i in 1 2 3; do [ "$i" != "$L" ] && tails+=("tail$i:$i"); done
tails+=("tail${L}r:$L")
for t in "${tails[@]}"; do
    name=${t%%:*}; i=${t#*:}
    check "$name (node $i) shows $N records" wait_lines "$T/$name.out" "$N"
    kill -TERM "${TAIL_PID[$name]}" 2>/dev/null
    wait_exit "${TAIL_PID[$name]}"; rc=$?
    check "$name stops with exit 0 on SIGTERM (got $rc; $(head -c 200 "$T/$name.err"))" [ $rc -eq 0 ]
    check "$name shows offsets 0..$((N - 1)) once each, in order, as node $i serves them ($(wc -l <"$T/$name.out") lines)" \
        cmp -s "$T/$name.out" "$T/read$i.json"
done

# The killed node's original tail: a gap-free, in-order prefix of the log.
K=$(wc -l <"$T/tail$L.out")
check "the killed node's original tail showed records before the kill ($K)" [ "$K" -gt 0 ]
check "... and they are exactly offsets 0..$((K - 1)) of the final log" \
    cmp -s "$T/tail$L.out" <(head -n "$K" "$T/read1.json")

# Every acknowledged (offset, record) pair is in the log.
sed -e 's/^{"offset":\([0-9]*\),"record":"\(.*\)"}$/\1\t\2/' "$T/read1.json" >"$T/log.tsv"
missing=$(sort "$T/acked.tsv" | comm -23 - <(sort "$T/log.tsv") | wc -l)
check "all $(acked) acknowledged records are at their offsets ($missing missing)" [ "$missing" -eq 0 ]
[ "$missing" -gt 0 ] && sort "$T/acked.tsv" | comm -23 - <(sort "$T/log.tsv") | head -n 5
dups=$(cut -f2 "$T/log.tsv" | sort | uniq -d | wc -l)
check "no record appears twice in the log ($dups duplicates)" [ "$dups" -eq 0 ]
finish
