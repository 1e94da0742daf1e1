#!/bin/bash
# examples/events, an event-sourced projection on the log API and a named
# cursor, on 3 nodes driven through their stdin: events appended on every
# node, the same balances everywhere and equal to the sums kept here; a
# follower killed with -9 in the middle of the events (twice, once right
# after its own append, while its projection is saving) comes back with
# every event counted exactly once; each node's cursor projection-N reads
# the same through `rlogctl cursor-get` on every node; a damaged state file
# is refused, a lost one rebuilt from the log whatever the cursor says.
. "$(dirname "$0")/lib.sh"

EV=${EV:-$(dirname "$RLOGCTL")/events}
[ -x "$EV" ] || { not_ok "$EV not built (make build/examples/events)"; finish; }
pick_ports 3 || { not_ok "free ports"; finish; }
declare -A SUM=()
EVENTS=0 LAST=0

# ev_start I: node I, its control socket at ctl I (for rlogctl).
ev_start() { stdin_start "$1" "$EV" "$1" "$CLUSTER" "$T/n$1" "$(ctl "$1")"; }
# event I KIND ACCOUNT AMOUNT: appended through node I; the expected sums
# follow only what the node acknowledged.
BAD=0
event() {
    local r
    r=$(ask "$1" "$2 $3 $4") || { BAD=$((BAD + 1)); return 1; }
    if [ "${r%% *}" != ok ]; then say "node $1: $2 $3 $4: $r"; BAD=$((BAD + 1)); return 1; fi
    [ "$2" = deposit ] && SUM[$3]=$((${SUM[$3]:-0} + $4)) || SUM[$3]=$((${SUM[$3]:-0} - $4))
    EVENTS=$((EVENTS + 1))
    LAST=${r#ok }
}
ACCTS=(alice bob carol dave)
round() { # round FROM TO NODES...: events FROM..TO-1 spread over NODES
    local k from=$1 to=$2; shift 2
    local nodes=("$@")
    for ((k = from; k < to; k++)); do
        local kind=deposit
        ((k % 4 == 3)) && kind=withdraw
        event "${nodes[$((k % ${#nodes[@]}))]}" $kind "${ACCTS[$((k % 4))]}" $((k % 17 + 1))
    done
}
expected() {
    local a s="balances $EVENTS"
    for a in $(printf '%s\n' "${!SUM[@]}" | sort); do s+=" $a=${SUM[$a]}"; done
    echo "$s"
}
# victim: a node that is not the leader (so acknowledged appends elsewhere
# are never in doubt because of the kill).
victim() { # victim ORDER...: the first follower in that order
    local i
    for i in "$@"; do [ "$(status_of "$i" role)" = follower ] && { echo "$i"; return; }; done
    echo 3
}

for i in 1 2 3; do : >"$T/out$i"; ev_start $i; done

r=$(ask 1 "deposit alice 0")
check "a zero amount is refused: $r" [ "${r%%:*}" = "error RLOG_EINVAL" ]
r=$(ask 2 "withdraw bad=name 5")
check "a bad account name is refused: $r" [ "${r%%:*}" = "error RLOG_EINVAL" ]
round 0 90 1 2 3
check "90 events appended through the three nodes ($BAD failed)" [ $BAD -eq 0 ]
want=$(expected)
for i in 1 2 3; do
    b=$(ask $i balances)
    check "node $i's balances equal the sums ($b)" [ "$b" = "$want" ]
done
r=$(ask 3 "balance carol")
check "balance of one account: $r" [ "$r" = "balance carol ${SUM[carol]}" ]

for kill_round in 1 2; do
    v=$(victim $((kill_round + 1)) $((kill_round % 3 + 1)) $(((kill_round + 1) % 3 + 1)))
    others=()
    for i in 1 2 3; do [ "$i" != "$v" ] && others+=("$i"); done
    round $((kill_round * 1000)) $((kill_round * 1000 + 20)) 1 2 3
    # Right after its own append is acknowledged, the victim's projection is
    # folding it in: saving its state or committing its cursor.
    event "$v" deposit erin 7
    kill -9 "${NODE_PID[$v]}"; wait "${NODE_PID[$v]}" 2>/dev/null
    exec {FD[$v]}>&-
    round $((kill_round * 1000 + 20)) $((kill_round * 1000 + 60)) "${others[@]}"
    check "round $kill_round: events appended around the kill of node $v ($BAD failed)" [ $BAD -eq 0 ]
    ev_start "$v"
    round $((kill_round * 1000 + 60)) $((kill_round * 1000 + 70)) 1 2 3
    want=$(expected)
    for i in 1 2 3; do
        b=$(ask $i balances)
        check "round $kill_round: node $i's balances equal the sums after node $v's restart ($b)" \
            [ "$b" = "$want" ]
    done
done

end=$((LAST + 1))
for i in 1 2 3; do
    for j in 1 2 3; do
        check "rlogctl cursor-get on node $j: projection-$i reaches $end" wait_cursor "$j" "projection-$i" "$end"
    done
    p=$(ask $i position)
    check "node $i's position: its state and its cursor both cover $end ($p)" [ "$p" = "position $end $end" ]
done

for i in 1 2 3; do echo quit >&"${FD[$i]}"; done
for i in 1 2 3; do wait_exit "${NODE_PID[$i]}"; rc=$?; check "node $i closes cleanly on quit (exit $rc)" [ $rc -eq 0 ]; exec {FD[$i]}>&-; done
for i in 1 2 3; do ev_start $i; done
b=$(ask 2 balances)
check "after a whole-cluster restart node 2 has the same balances ($b)" [ "$b" = "$want" ]

# The state file decides what is counted: damaged, the node refuses to
# start; lost, the cursor (now ahead of it) is not trusted and the node
# rebuilds from the log.
echo quit >&"${FD[2]}"; wait_exit "${NODE_PID[2]}"; exec {FD[2]}>&-
head -n 2 "$T/n2.projection" >"$T/n2.tmp" && mv "$T/n2.tmp" "$T/n2.projection"
"$EV" 2 "$CLUSTER" "$T/n2" </dev/null >/dev/null 2>"$T/bad.out"; rc=$?
check "a damaged state file is refused (exit $rc): $(grep -v INSECURE "$T/bad.out")" \
    [ $rc -eq 1 ] && grep -q "not a projection state file" "$T/bad.out"
rm "$T/n2.projection"
ev_start 2
b=$(ask 2 balances)
check "with its state file gone node 2 rebuilds the same balances ($b)" [ "$b" = "$want" ]
check "saying it does not trust its cursor" wait_log 2 "past the state file's 0: rebuilding"
for i in 1 2 3; do echo quit >&"${FD[$i]}"; done
for i in 1 2 3; do wait_exit "${NODE_PID[$i]}"; exec {FD[$i]}>&-; done
finish
