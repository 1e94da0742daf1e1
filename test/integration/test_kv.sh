#!/bin/bash
# examples/kv, a replicated key-value store on the state-machine API, on 3
# nodes driven through their stdin: writes on any node with apply results,
# the same table everywhere, a node killed with -9 and restarted restores
# its snapshot and applies only what follows, and a whole-cluster restart.
. "$(dirname "$0")/lib.sh"

KV=${KV:-$(dirname "$RLOGCTL")/kv}
[ -x "$KV" ] || { not_ok "$KV not built (make build/examples/kv)"; finish; }
pick_ports 3 || { not_ok "free ports"; finish; }

kv_start() { stdin_start "$1" "$KV" "$1" "$CLUSTER" "$T/n$1" 40; }
digest() { ask "$1" digest | cut -d' ' -f2-3; }

for i in 1 2 3; do : >"$T/out$i"; kv_start $i; done

a=$(ask 1 "set k0 v0")
check "a write through node 1 is applied: $a" [ "${a%% *}" = ok ]
bad=0
for ((k = 1; k < 150; k++)); do
    i=$((k % 3 + 1))
    r=$(ask $i "set k$k value-$k") || { bad=$((bad + 1)); break; }
    [ "${r%% *}" = ok ] || bad=$((bad + 1))
done
check "149 writes spread over the three nodes all applied ($bad failed)" [ $bad -eq 0 ]
r=$(ask 2 "del k7")
check "del of a present key through node 2: $r" [ "${r%% *}" = ok ]
r=$(ask 3 "del k7")
check "del of a key already gone says so (apply's result): $r" [ "${r%% *}" = missing ]
r=$(ask 3 "get k8")
check "a read after a write elsewhere sees it: $r" [ "$r" = "value value-8" ]
d1=$(digest 1); d2=$(digest 2); d3=$(digest 3)
check "every node holds the same table ($d1 / $d2 / $d3)" [ "$d1" = "$d2" ] && [ "$d2" = "$d3" ]
check "the table has 149 keys" [ "${d1#* }" = 149 ]
s=$(ask 2 status)
check "node 2 took snapshots (every 40 records): $s" [ "$(echo "$s" | cut -d' ' -f4)" -ge 2 ]

snap=$(echo "$s" | cut -d' ' -f3)
kill -9 "${NODE_PID[2]}"; wait "${NODE_PID[2]}" 2>/dev/null
exec {FD[2]}>&-
for ((k = 150; k < 200; k++)); do ask 1 "set k$k value-$k" >/dev/null; done
kv_start 2
d1=$(digest 1); d2=$(digest 2)
check "node 2 after kill -9 and restart holds the same table ($d1 / $d2)" [ "$d1" = "$d2" ]
s=$(ask 2 status)
check "it restored its snapshot of records before $snap instead of applying the whole log: $s" \
    [ "$(echo "$s" | cut -d' ' -f3)" -ge "$snap" ] && [ "$snap" -gt 0 ]

for i in 1 2 3; do echo quit >&"${FD[$i]}"; done
for i in 1 2 3; do wait_exit "${NODE_PID[$i]}"; rc=$?; check "node $i closes cleanly on quit (exit $rc)" [ $rc -eq 0 ]; exec {FD[$i]}>&-; done
for i in 1 2 3; do kv_start $i; done
d3=$(digest 3)
check "after a whole-cluster restart node 3 holds the same table ($d3)" [ "$d3" = "$d1" ]
r=$(ask 1 "get k199")
check "and serves the last write: $r" [ "$r" = "value value-199" ]
finish
