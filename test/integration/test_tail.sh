#!/bin/bash
# `rlogctl tail`: a tail from 0 on a follower, while batches are appended
# through the leader, shows every record exactly once, in order, as the log
# serves it; `--from-end --count 5` shows exactly the next 5 records appended
# and exits 0; SIGINT stops a tail with exit 0; a tail client killed with -9,
# or one that stops reading, does not disturb the node (appends continue; the
# stalled one is dropped, and the node's stderr says so); a node shutting
# down ends its tails with exit 5.
. "$(dirname "$0")/lib.sh"


start_cluster 3 || { not_ok "start a 3-node cluster"; finish; }
L=$(wait_leader) || { not_ok "a leader is elected"; finish; }
F=$(( L % 3 + 1 ))
ok "node $L is the leader; tails run on follower $F"

# 1. From 0 on a follower while appending through the leader.
"$RLOGCTL" tail --control "$(ctl "$F")" --from 0 --json >"$T/tail0.out" 2>"$T/tail0.err" &
TP=$!; EXTRA_PIDS+=("$TP")
check "the tail starts on node $F" wait_log "$F" "tail client .*streaming from offset 0" 1
N=0
for b in 1 2 3 4 5; do
    seq -f "batch$b-%g" 1 $((b * 100)) |
        "$RLOGCTL" append --control "$(ctl "$L")" >/dev/null 2>"$T/err" ||
        not_ok "append batch $b: $(cat "$T/err")"
    N=$((N + b * 100))
done
"$RLOGCTL" append --control "$(ctl "$L")" one two three >/dev/null 2>"$T/err" ||
    not_ok "append one two three: $(cat "$T/err")"
N=$((N + 3))
check "the tail shows $N records" wait_lines "$T/tail0.out" "$N"
kill -INT "$TP"; wait_exit "$TP"; rc=$?
check "SIGINT stops the tail with exit 0 (got $rc; $(head -c 200 "$T/tail0.err"))" [ $rc -eq 0 ]
check "exactly $N lines ($(wc -l <"$T/tail0.out"))" [ "$(wc -l <"$T/tail0.out")" -eq "$N" ]
read_all "$L" "$N" >"$T/read.json" 2>"$T/err" || not_ok "read 0..$((N - 1)) on the leader: $(cat "$T/err")"
check "each record once, in order, as read serves them" cmp -s "$T/tail0.out" "$T/read.json"
check "offsets are 0..$((N - 1))" \
    awk -F'[:,]' -v n="$N" '$2 != NR - 1 { exit 1 } END { exit NR != n }' "$T/tail0.out"
check "the node logs the tail client's end" wait_log "$F" "tail client .* went away" 1

# 2. --from-end --count 5: exactly the next five records, then exit 0.
"$RLOGCTL" tail --control "$(ctl "$F")" --from-end --count 5 >"$T/tail5.out" 2>"$T/tail5.err" &
TP=$!; EXTRA_PIDS+=("$TP")
check "the --from-end tail starts at $N" wait_log "$F" "tail client .*streaming from offset $N\$" 1
"$RLOGCTL" append --control "$(ctl "$L")" n1 n2 n3 >"$T/off" 2>"$T/err" || not_ok "append: $(cat "$T/err")"
"$RLOGCTL" append --control "$(ctl "$L")" n4 n5 n6 n7 n8 >>"$T/off" 2>"$T/err" || not_ok "append: $(cat "$T/err")"
wait_exit "$TP"; rc=$?
check "tail --count 5 exits 0 by itself (got $rc; $(head -c 200 "$T/tail5.err"))" [ $rc -eq 0 ]
printf '%s\tn%s\n' "$N" 1 $((N + 1)) 2 $((N + 2)) 3 $((N + 3)) 4 $((N + 4)) 5 >"$T/want5"
check "it shows exactly n1..n5 at offsets $N..$((N + 4))" cmp -s "$T/tail5.out" "$T/want5"
check "the node logs the end: 'done after 5 records'" wait_log "$F" "tail client .*: done after 5 records\$"
timeout "$WAIT" "$RLOGCTL" tail --control "$(ctl "$F")" --from 0 --count 1 >"$T/tail1.out" 2>&1
check "tail --from 0 --count 1 shows one record" [ "$(wc -l <"$T/tail1.out")" -eq 1 ]
check "and the node logs 'done after 1 record', singular" wait_log "$F" "tail client .*: done after 1 record\$"
[ "$(head -n 1 "$T/off")" = "$N" ] || say "note: n1 got offset $(head -n 1 "$T/off")"
N=$((N + 8))

# 3. A tail client killed with -9 (on the leader, mid-stream).
"$RLOGCTL" tail --control "$(ctl "$L")" --from 0 >"$T/tailk.out" 2>/dev/null &
TP=$!; EXTRA_PIDS+=("$TP")
check "a tail on the leader streams" wait_lines "$T/tailk.out" 100
seq -f "live-%g" 1 2000 | "$RLOGCTL" append --control "$(ctl "$L")" >/dev/null 2>&1 &
AP=$!; EXTRA_PIDS+=("$AP")
sleep 0.2
kill -9 "$TP"; wait "$TP" 2>/dev/null
wait_exit "$AP"; rc=$?
check "appends running across the kill complete (exit $rc)" [ $rc -eq 0 ]
N=$((N + 2000))
off=$("$RLOGCTL" append --control "$(ctl "$L")" --timeout 10 after-kill 2>&1); rc=$?
check "the leader takes appends after the kill (exit $rc: $off)" [ $rc -eq 0 -a "$off" = "$N" ]
N=$((N + 1))
check "the leader logs the vanished tail client" wait_log "$L" "tail client .* went away" 1
check "node $L is alive and still the leader" [ "$(status_of "$L" role)" = leader ]

# 4. A tail client that stops reading: bounded buffering on the node, then
# it is dropped; meanwhile appends and other tails go on.
mkfifo "$T/fifo"
exec 7<>"$T/fifo"   # holds the FIFO open and never reads it
"$RLOGCTL" tail --control "$(ctl "$F")" --from 0 >"$T/fifo" 2>/dev/null &
SP=$!; EXTRA_PIDS+=("$SP")
"$RLOGCTL" tail --control "$(ctl "$F")" --from-end >"$T/tailf.out" 2>/dev/null &
TP=$!; EXTRA_PIDS+=("$TP")
check "both tails start" wait_log "$F" "tail client .*streaming from offset" 4
pad=$(printf 'x%.0s' $(seq 1 200))
seq -f "bulk-%g-$pad" 1 40000 | "$RLOGCTL" append --control "$(ctl "$L")" >/dev/null 2>"$T/err"; rc=$?
check "8 MiB of appends go through while a tail client reads nothing (exit $rc)" [ $rc -eq 0 ]
N=$((N + 40000))
check "node $F commits them all" wait_commit "$F" "$N"
check "the reading tail keeps up" wait_lines "$T/tailf.out" 40000
WAIT=$((WAIT + 15)) wait_log "$F" "dropping tail client .*cannot keep up" 1
check "node $F drops the stalled client and says so: $(grep -m1 'dropping tail' "$T/n$F.log" | cut -c1-160)" \
    grep -q "dropping tail client .*cannot keep up" "$T/n$F.log"
rss=$(awk '/^VmRSS/ { print $2 }' "/proc/${NODE_PID[$F]}/status" 2>/dev/null)
say "node $F RSS after the drop: ${rss:-?} kB"
kill -9 "$SP" 2>/dev/null; wait "$SP" 2>/dev/null
exec 7>&-
off=$("$RLOGCTL" append --control "$(ctl "$L")" --timeout 10 after-drop 2>&1); rc=$?
check "appends continue after the drop (exit $rc: $off)" [ $rc -eq 0 -a "$off" = "$N" ]
N=$((N + 1))
wait_commit "$F" "$N" >/dev/null
# last_line_is FILE OFFSET: until FILE's last line is that offset's record.
last_line_is() {
    local deadline=$((SECONDS + WAIT))
    while [ $SECONDS -lt $deadline ]; do
        [ "$(tail -n 1 "$1" | cut -f1)" = "$2" ] && return 0
        sleep 0.1
    done
    return 1
}
check "the reading tail shows every record up to $((N - 1))" last_line_is "$T/tailf.out" $((N - 1))

# 5. The node goes away: SIGTERM ends the running tail with exit 5.
stop_node "$F"; rc=$?
check "node $F exits 0 on SIGTERM with a tail open (got $rc)" [ $rc -eq 0 ]
wait_exit "$TP"; rc=$?
check "the tail exits 5 when its node shuts down (got $rc)" [ $rc -eq 5 ]
"$RLOGCTL" tail --control "$(ctl "$L")" >/dev/null 2>"$T/err" &
TP=$!; EXTRA_PIDS+=("$TP")
wait_log "$L" "tail client .*streaming from offset" 2 >/dev/null
kill_node "$L"
wait_exit "$TP"; rc=$?
check "a tail whose node is killed -9 exits 5 (got $rc: $(head -c 200 "$T/err"))" [ $rc -eq 5 ]
"$RLOGCTL" tail --control "$(ctl "$L")" 2>"$T/err"; rc=$?
check "tail of a missing socket exits 5 (got $rc)" [ $rc -eq 5 ]
"$RLOGCTL" tail --control "$(ctl "$L")" --from 1 --from-end 2>/dev/null; rc=$?
check "--from with --from-end is a usage error (got $rc)" [ $rc -eq 1 ]
"$RLOGCTL" read --control "$(ctl "$L")" --count 3 0 2>/dev/null; rc=$?
check "--count outside tail is a usage error (got $rc)" [ $rc -eq 1 ]
finish
