#!/bin/bash
# Quiet logs on hosts (lib/node/quiet.c): every node's log on a host
# (rlogctl node --host-transport). Once idle, the log goes quiet on all
# three nodes (rlog_quiet 1) and its members stop sending each other
# anything (the per-member byte counters stand still). Then the leader's
# process is paused (SIGSTOP: its connections stay open and it says
# nothing): the others notice its host's connection fall silent, run
# their clocks again, elect a leader and take an append. Resumed, the old
# leader follows and holds the record. The same once more with the
# leader killed (its connections end).
RLOG_NODE_ARGS="--host-transport --cluster-name itest"
. "$(dirname "$0")/lib.sh"

# mval FILE SAMPLE: the value of one sample in a metrics text.
mval() { awk -v s="$2" '$1 == s { print $2; exit }' "$1"; }
metrics_of() { "$RLOGCTL" metrics --control "$(ctl "$1")" --timeout 3 2>/dev/null; }
quiet_of() { metrics_of "$1" | awk -v s="rlog_quiet{node=\"$1\",log=\"itest\"}" '$1 == s { print $2; exit }'; }
# sent_of I: bytes node I sent its log's members, all together.
sent_of() { metrics_of "$1" | awk '$1 ~ /^rlog_peer_sent_bytes_total/ { s += $2 } END { print s + 0 }'; }
# wait_quiet I...: until each node reports its log quiet.
wait_quiet() {
    local deadline=$((SECONDS + WAIT)) i all
    while [ $SECONDS -lt $deadline ]; do
        all=1
        for i in "$@"; do [ "$(quiet_of "$i")" = 1 ] || all=0; done
        [ $all = 1 ] && return 0
        sleep 0.2
    done
    for i in "$@"; do say "node $i: rlog_quiet $(quiet_of "$i")"; done
    return 1
}

start_cluster 3 || { not_ok "start a 3-node cluster on hosts"; finish; }
L=$(wait_leader) || { not_ok "a leader is elected"; finish; }
ok "node $L is the leader"
o=$("$RLOGCTL" append --control "$(ctl "$L")" --timeout 10 before-quiet 2>&1)
check "an append before the log goes quiet ($o)" [ "$o" = 0 ]
check "the log goes quiet on all three nodes" wait_quiet 1 2 3
for i in 1 2 3; do a[$i]=$(sent_of "$i"); done
sleep 2
for i in 1 2 3; do
    b=$(sent_of "$i")
    check "node $i sent its members nothing in 2 s of quiet (${a[$i]} -> $b bytes)" [ "$b" = "${a[$i]}" ]
done
check "a read on a quiet follower" sh -c "'$RLOGCTL' read --control '$(ctl $(( L % 3 + 1 )))' --timeout 5 0 | grep -q before-quiet"
check "the log is still quiet after the read" wait_quiet 1 2 3

# 1. The leader pauses: silence, not an end.
kill -STOP "${NODE_PID[$L]}"
N=$(wait_leader "$L") || { not_ok "a new leader while node $L is paused"; kill -CONT "${NODE_PID[$L]}"; finish; }
ok "node $N leads while node $L is paused"
o=$("$RLOGCTL" append --control "$(ctl "$N")" --timeout 10 during-pause 2>&1)
check "an append while the old leader is paused ($o)" [ "$o" = 1 ]
kill -CONT "${NODE_PID[$L]}"
check "the old leader, resumed, holds it" wait_commit "$L" 2
check "it reads the record" sh -c "'$RLOGCTL' read --control '$(ctl "$L")' --timeout 5 1 | grep -q during-pause"

# 2. Quiet again, and the leader is killed: its connections end.
check "the log goes quiet again" wait_quiet 1 2 3
kill_node "$N"
M=$(wait_leader "$N") || { not_ok "a new leader after node $N was killed"; finish; }
ok "node $M leads after node $N was killed"
o=$("$RLOGCTL" append --control "$(ctl "$M")" --timeout 10 after-kill 2>&1)
check "an append after the kill ($o)" [ "$o" = 2 ]
check "node $N restarts" start_node "$N"
check "and catches up" wait_commit "$N" 3
finish
