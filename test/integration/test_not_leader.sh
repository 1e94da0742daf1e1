#!/bin/bash
# Appends to a follower started with --no-forward-appends are refused with the not-leader error naming the
# leader's id and address; nothing is appended; --cluster-controls finds the
# leader; reads beyond the end give RLOG_ENOTFOUND.
. "$(dirname "$0")/lib.sh"

NODE_ARGS+=(--no-forward-appends) # forwarding: test_forward.sh
start_cluster 3 || { not_ok "start a 3-node cluster"; finish; }
L=$(wait_leader) || { not_ok "a leader is elected"; finish; }
ok "node $L is the leader"
F=$(( L % 3 + 1 ))
before=$(status_of "$L" last_offset)

"$RLOGCTL" append --control "$(ctl "$F")" hello >"$T/out" 2>"$T/err"; rc=$?
check "append to follower $F exits 3 (got $rc)" [ $rc -eq 3 ]
check "the error names the leader: $(head -n 1 "$T/err")" \
    grep -q "not the leader; leader is $L at $(addr "$L")" "$T/err"
check "no offset printed" [ ! -s "$T/out" ]
"$RLOGCTL" append --control "$(ctl "$F")" --json <<<"a line" >"$T/out" 2>"$T/err"; rc=$?
check "stdin append to a follower exits 3 too" [ $rc -eq 3 ]
sleep 0.5
check "nothing was appended by the refused requests" [ "$(status_of "$L" last_offset)" = "$before" ]

# The client tries each control socket; the follower is first in the list.
list="$(ctl "$F"),$(ctl "$L")"
off=$("$RLOGCTL" append --cluster-controls "$list" --json one two 2>"$T/err"); rc=$?
check "--cluster-controls follower,leader appends (exit $rc)" [ $rc -eq 0 ]
check "--json prints one {\"offset\":N} per record" \
    [ "$(grep -c '^{"offset":[0-9]*}$' <<<"$off")" -eq 2 ]
o1=$(head -n 1 <<<"$off" | tr -dc 0-9)
check "the follower serves the record once committed" wait_commit "$F" $((o1 + 2))
check "read on the follower gives it back" \
    [ "$("$RLOGCTL" read --control "$(ctl "$F")" "$o1")" = "$o1	one" ]

"$RLOGCTL" read --control "$(ctl "$F")" 999999 >"$T/out" 2>"$T/err"; rc=$?
check "read beyond the end exits 4 (got $rc)" [ $rc -eq 4 ]
check "and names RLOG_ENOTFOUND: $(cat "$T/err")" grep -q RLOG_ENOTFOUND "$T/err"
c=$(status_of "$F" commit_offset)
check "and says which offsets are committed (0..$((c - 1))) and the next ($c)" \
    grep -q "offset 999999 is not committed here (offsets 0..$((c - 1)) are; the log's next offset is $c)" "$T/err"

# Usage errors: exit 1 with a message.
"$RLOGCTL" read --control "$(ctl "$F")" 5-2 2>"$T/err"; rc=$?
check "bad range exits 1" [ $rc -eq 1 ]
"$RLOGCTL" append 2>"$T/err"; rc=$?
check "append without --control exits 1" [ $rc -eq 1 ]
"$RLOGCTL" status --control "$T/nonexistent.sock" 2>"$T/err"; rc=$?
check "status of a missing socket exits 5" [ $rc -eq 5 ]

# The follower's log names the leader.
check "the follower's stderr logs its leader" grep -Eq "leader is (now )?$L at $(addr "$L")" "$T/n$F.log"
check "the leader's stderr logs 'became leader in term'" grep -q "became leader in term" "$T/n$L.log"
for i in 1 2 3; do
    stop_node "$i"; rc=$?
    check "node $i exits 0 on SIGTERM (got $rc)" [ $rc -eq 0 ]
done
finish
