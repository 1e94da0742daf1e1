#!/bin/bash
# Named consumer positions through rlogctl (rlog_cursor_commit(3)): a
# cursor committed through a follower is read back on every node; tail
# --cursor starts there; bad names, unknown cursors and offsets beyond the
# end fail clearly; kill -9 of the leader and restarts keep every value;
# after a trim that a killed follower misses, the cluster keeps its cursors
# across restarts, and the follower (caught up past the trim) says it
# cannot know the older ones (exit 4, RLOG_ETRIMMED) instead of a wrong value,
# while cursors committed after its catch-up read back exactly.
. "$(dirname "$0")/lib.sh"
NODE_ARGS=(--snapshot-threshold 8 --snapshot-trailing 8 --segment-size 2097152)

start_cluster 3 || { not_ok "start 3 nodes"; finish; }
L=$(wait_leader) || { not_ok "a leader is elected"; finish; }
F=$(( L % 3 + 1 ))
O=$(( F % 3 + 1 ))
ok "node $L leads"
seq -f "rec-%g" 1 100 | "$RLOGCTL" append --control "$(ctl "$L")" >/dev/null 2>"$T/err" \
    || not_ok "100 appends: $(cat "$T/err")"

commit() { "$RLOGCTL" cursor-commit --control "$(ctl "$1")" --timeout 30 "$2" "$3" 2>"$T/err"; }

commit "$F" proj.orders 50; rc=$?
check "cursor-commit through follower $F (exit $rc: $(cat "$T/err"))" [ $rc -eq 0 ]
check "follower $F reads its own commit at once" [ "$(cursor_get "$F" proj.orders)" = 50 ]
for i in 1 2 3; do check "node $i reads proj.orders = 50" wait_cursor "$i" proj.orders 50; done
commit "$L" other 10 || not_ok "commit other on the leader: $(cat "$T/err")"
commit "$O" proj.orders 60 || not_ok "commit proj.orders 60 on $O: $(cat "$T/err")"
check "a later commit replaces the value" wait_cursor "$F" proj.orders 60
out=$("$RLOGCTL" cursor-get --control "$(ctl "$O")" --json proj.orders 2>&1)
check "cursor-get --json ($out)" [ "$out" = '{"cursor":"proj.orders","offset":60}' ]

cursor_get "$O" never.committed >/dev/null
check "an unknown cursor exits 4 ($(cat "$T/gerr"))" [ "$(cat "$T/rc")" = 4 ]
check "and says RLOG_ENOTFOUND" grep -q RLOG_ENOTFOUND "$T/gerr"
commit "$F" "has space" 1; rc=$?
check "a name with a space exits 6 (got $rc)" [ $rc -eq 6 ]
check "and says why: $(cat "$T/err")" grep -q "space" "$T/err"
commit "$F" "$(printf 'x%.0s' $(seq 1 65))" 1; rc=$?
check "a 65-byte name exits 1 (got $rc)" [ $rc -eq 1 ]
commit "$F" far 100000; rc=$?
check "an offset beyond the committed end exits 6 (got $rc)" [ $rc -eq 6 ]
check "and says why: $(cat "$T/err")" grep -q "beyond the committed end" "$T/err"
cursor_get "$F" far >/dev/null
check "and commits nothing" [ "$(cat "$T/rc")" = 4 ]

"$RLOGCTL" tail --control "$(ctl "$O")" --cursor proj.orders --count 3 --timeout 10 >"$T/tail" 2>"$T/err"
check "tail --cursor starts at the cursor ($(head -n 1 "$T/tail" | tr '\t' ' '))" \
    [ "$(cut -f1 "$T/tail" | tr '\n' ' ')" = "60 61 62 " ]
"$RLOGCTL" tail --control "$(ctl "$O")" --cursor nosuch --from 98 --count 2 --timeout 10 >"$T/tail" 2>"$T/err"
check "tail --cursor of an unknown cursor starts at --from" \
    [ "$(cut -f1 "$T/tail" | tr '\n' ' ')" = "98 99 " ]

say "kill -9 leader $L"
kill_node "$L"
NL=$(wait_leader "$L") || { not_ok "a new leader"; finish; }
ok "node $NL leads"
for i in 1 2 3; do
    [ "$i" = "$L" ] && continue
    check "node $i still reads proj.orders = 60 and other = 10" \
        eval 'wait_cursor "$i" proj.orders 60 && wait_cursor "$i" other 10'
done
commit "$NL" proj.orders 70 || not_ok "commit on the new leader: $(cat "$T/err")"
check "the killed node restarts" start_node "$L"
check "it reads the commit made while it was down" wait_cursor "$L" proj.orders 70
check "and the older one" wait_cursor "$L" other 10
L=$NL

# A follower misses cursor commands that a trim then drops from the log.
F=$(( L % 3 + 1 ))
O=$(( F % 3 + 1 ))
say "killing follower $F; cursors committed, log appended and trimmed without it"
kill_node "$F"
commit "$L" while.down 20 || not_ok "commit while.down: $(cat "$T/err")"
commit "$O" proj.orders 80 || not_ok "commit proj.orders 80: $(cat "$T/err")"
seq -f "bulk-%08g-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" 1 40000 |
    "$RLOGCTL" append --control "$(ctl "$L")" >/dev/null 2>"$T/err" \
    || not_ok "40000 bulk appends: $(cat "$T/err")"
for i in $(seq 1 30); do echo "entry-$i"; sleep 0.002; done |
    "$RLOGCTL" append --control "$(ctl "$L")" >/dev/null 2>"$T/err" \
    || not_ok "30 single-record appends: $(cat "$T/err")"
end=$(status_of "$L" commit_offset)
P=$((end - 100))
out=$("$RLOGCTL" trim --control "$(ctl "$L")" "$P" 2>&1); rc=$?
check "trim $P on leader $L (exit $rc: $out)" [ $rc -eq 0 ]

say "restarting the two live nodes: the trimmed log keeps its cursors"
for i in $L $O; do
    stop_node "$i"; rc=$?
    check "node $i exits 0 on SIGTERM (got $rc)" [ $rc -eq 0 ]
done
for i in $L $O; do check "node $i restarts" start_node "$i"; done
LIVE="$L $O"
L=$(wait_leader "$F") || { not_ok "a leader after the restart"; finish; }
for i in $LIVE; do
    check "node $i: proj.orders = 80, other = 10, while.down = 20 after trim and restart" \
        eval 'wait_cursor "$i" proj.orders 80 && wait_cursor "$i" other 10 && wait_cursor "$i" while.down 20'
done

say "restarting follower $F: it catches up past the trim"
check "node $F restarts" start_node "$F" -v
check "node $F reaches commit_offset $end" wait_commit "$F" "$end"
check "node $F's log shows the reset" wait_log "$F" "this log restarts there"
check "node $F's log says its cursor table has a gap" wait_log "$F" "cursor table: the log was reset"
v=$(cursor_get "$F" while.down)
check "node $F: a cursor committed before the trim is unknown there, exit 4 (got '$v', $(cat "$T/rc"))" \
    [ "$(cat "$T/rc")" = 4 ] && [ -z "$v" ]
check "with RLOG_ETRIMMED and why: $(cat "$T/gerr")" grep -q "RLOG_ETRIMMED.*ask another node" "$T/gerr"
commit "$F" proj.orders 90 || not_ok "commit through $F after its catch-up: $(cat "$T/err")"
for i in 1 2 3; do check "node $i: proj.orders = 90" wait_cursor "$i" proj.orders 90; done
check "node $F still says it cannot know 'other'" eval 'cursor_get "$F" other >/dev/null; [ "$(cat "$T/rc")" = 4 ]'
for i in 1 2 3; do
    stop_node "$i"; rc=$?
    check "node $i exits 0 on SIGTERM (got $rc)" [ $rc -eq 0 ]
done
finish
