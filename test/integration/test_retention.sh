#!/bin/bash
# Retention policies and the time index through rlogctl: a 3-node cluster
# with --retention-bytes keeps exactly the newest records that fit (40-byte
# records: 20000 bytes keep 500) on every node; reads below exit 4; the
# leader counts the records its policy trimmed; kill -9 and restart keeps
# the trim point. offset-for-time on every node (followers, and a node
# rebuilding its index after a restart) gives the leader's answer.
. "$(dirname "$0")/lib.sh"
NODE_ARGS=(--retention-bytes 20000 --retention-check-ms 100)

# 40-byte records, phase P, numbers FROM..TO.
records() { seq -f "$1-%06g-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" "$2" "$3"; }
now_us() { date +%s%6N; }

start_cluster || { not_ok "start the cluster"; finish; }
L=$(wait_leader) || { not_ok "a leader is elected"; finish; }
ok "node $L leads"

"$RLOGCTL" node --id 9 --data "$T/bad" --cluster "9=127.0.0.1:1" --retention-ms 18446744073709552 \
    >/dev/null 2>"$T/err"; rc=$?
check "a retention_ms that overflows is refused (exit $rc: $(head -c 160 "$T/err"))" \
    sh -c "[ $rc -eq 2 ] && grep -q retention_ms '$T/err'"
"$RLOGCTL" offset-for-time --control "$(ctl "$L")" yesterday >/dev/null 2>"$T/err"; rc=$?
check "offset-for-time of a bad TIME exits 1 (got $rc)" [ $rc -eq 1 ]
"$RLOGCTL" offset-for-time --control "$(ctl "$L")" now >"$T/out" 2>"$T/err"; rc=$?
check "offset-for-time on an empty log exits 4 and prints 0 (got $rc, $(cat "$T/out"))" \
    sh -c "[ $rc -eq 4 ] && [ \"\$(cat '$T/out')\" = 0 ]"

records p1 1 1000 | "$RLOGCTL" append --control "$(ctl "$L")" >/dev/null 2>"$T/err" \
    || not_ok "1000 appends: $(cat "$T/err")"
check "node $L commits them" wait_commit "$L" 1000
sleep 0.3
MID=$(now_us)
sleep 0.3
records p2 1 400 | "$RLOGCTL" append --control "$(ctl "$L")" >/dev/null 2>"$T/err" \
    || not_ok "400 more appends: $(cat "$T/err")"
for i in 1 2 3; do
    check "node $i: the policy leaves first_offset 900 (20000 bytes of 40-byte records)" \
        wait_first "$i" 900
    "$RLOGCTL" read --control "$(ctl "$i")" 899 >/dev/null 2>&1; rc=$?
    check "node $i: offset 899 is trimmed (exit $rc)" [ $rc -eq 4 ]
    out=$("$RLOGCTL" read --control "$(ctl "$i")" 900 2>&1 | cut -f2)
    check "node $i: offset 900 is p1-000901 ($out)" [ "${out%%-x*}" = "p1-000901" ]
done
check "leader $L counts 900 records trimmed by its policy" \
    [ "$(status_of "$L" retention_trims)" = 900 ]

# time_on I TIME: offset-for-time on node I, its output and exit status.
time_on() { "$RLOGCTL" offset-for-time --control "$(ctl "$1")" "$2" 2>/dev/null; echo "rc=$?"; }
for i in 1 2 3; do
    check "node $i: offset-for-time between the phases is 1000" \
        [ "$(time_on "$i" "$MID" | tr '\n' ' ')" = "1000 rc=0 " ]
    check "node $i: a time before every record gives first_offset 900" \
        [ "$(time_on "$i" 1 | tr '\n' ' ')" = "900 rc=0 " ]
    check "node $i: a time after every record exits 4 with the commit offset 1400" \
        [ "$(time_on "$i" now | tr '\n' ' ')" = "1400 rc=4 " ]
done
out=$("$RLOGCTL" offset-for-time --control "$(ctl "$L")" -1h 2>&1); rc=$?
check "offset-for-time -1h gives first_offset ($out, exit $rc)" [ "$out" = 900 ]

F=$(( L % 3 + 1 ))
for i in $F $L; do
    say "kill -9 node $i and restart it"
    kill_node "$i"
    start_node "$i" || not_ok "node $i restarts"
done
L2=$(wait_leader) || { not_ok "a leader after the restarts"; finish; }
records p3 1 100 | "$RLOGCTL" append --control "$(ctl "$L2")" >/dev/null 2>"$T/err" \
    || not_ok "100 appends after the restarts: $(cat "$T/err")"
for i in 1 2 3; do
    check "node $i: first_offset moves to 1000 after 100 more records" wait_first "$i" 1000
    check "node $i: offset-for-time between the first phases is still 1000" \
        [ "$(time_on "$i" "$MID" | tr '\n' ' ')" = "1000 rc=0 " ]
    "$RLOGCTL" read --control "$(ctl "$i")" 999 >/dev/null 2>&1; rc=$?
    check "node $i: offset 999 is trimmed (exit $rc)" [ $rc -eq 4 ]
done
for i in 1 2 3; do
    stop_node "$i"; rc=$?
    check "node $i exits 0 on SIGTERM (got $rc)" [ $rc -eq 0 ]
done
finish
