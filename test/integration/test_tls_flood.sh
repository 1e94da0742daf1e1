#!/bin/bash
# Connection bounds on a TLS cluster's peer port, from a shell client that
# is not a member: a client sending its handshake one byte a second is
# closed after the handshake timeout (5 s by default); 2,000 idle
# connections are opened at once: beyond the per-address cap (8, the
# peers' own connections from 127.0.0.1 included) they are refused at
# once, and the few accepted are closed after the handshake timeout. The
# node stays up, its status counts what it refused and timed out, its
# memory stays under a bound its configuration implies, and the cluster
# takes appends afterwards.
. "$(dirname "$0")/lib.sh"
"$ROOT/examples/mkcerts.sh" "$T/certs" c1 1 2 3 >/dev/null 2>&1 || { not_ok "mkcerts.sh"; finish; }
pick_ports 3 || { not_ok "pick ports"; finish; }
for i in 1 2 3; do
    start_node "$i" --cluster-name c1 --peer-trusted-ca-file "$T/certs/ca.crt" \
        --peer-cert-file "$T/certs/node-$i.crt" --peer-key-file "$T/certs/node-$i.key" \
        || { not_ok "start TLS node $i"; finish; }
done
L=$(wait_leader) || { not_ok "a leader is elected"; finish; }
F=$(( L % 3 + 1 ))
ok "node $L leads; the floods go to follower $F"
out=$("$RLOGCTL" append --control "$(ctl "$L")" --timeout 10 before 2>&1) || not_ok "append before: $out"
PORT=${PORTS[$((F - 1))]}

# Slow handshake: a TLS record header announcing a 512-byte ClientHello,
# then its bytes one a second.
t0=$(status_of "$F" timed_out_connections)
(
    exec 3<>"/dev/tcp/127.0.0.1/$PORT" || exit 1
    printf '\x16\x03\x01\x02\x00' >&3
    for ((k = 0; k < 10; k++)); do printf '\x01' >&3 2>/dev/null || exit 0; sleep 1; done
) &
slow=$!
EXTRA_PIDS+=("$slow")
wait_exit "$slow"
t1=$(status_of "$F" timed_out_connections)
check "the slow handshake timed out ($t0 -> $t1)" [ "$t1" -gt "$t0" ]
check "node $F logs it" grep -q "no handshake within" "$T/n$F.log"

# 2,000 idle connections.
ulimit -n 4096 2>/dev/null || ulimit -n "$(ulimit -Hn)"
r0=$(status_of "$F" refused_connections); t0=$(status_of "$F" timed_out_connections)
opened=0
declare -a FDS=()
for ((k = 0; k < 2000; k++)); do
    exec {fd}<>"/dev/tcp/127.0.0.1/$PORT" 2>/dev/null || break
    FDS+=("$fd"); opened=$((opened + 1))
done
check "2000 connections opened (got $opened)" [ "$opened" -eq 2000 ]
check "node $F alive during the flood" alive "$F"
rss=$(awk '/^VmRSS/ { print $2 }' "/proc/${NODE_PID[$F]}/status")
# cache_bytes 64 MiB + 64 inbound connections x a 5.25 MiB frame + 64 MiB
# for the process itself: 464 MiB.
check "node $F's RSS ${rss} KiB stays below 464 MiB" [ "${rss:-0}" -lt $((464 * 1024)) ]
# Every one is either refused at once or, once accepted into one of the few
# free slots, closed after the handshake timeout: the node closes them all.
deadline=$((SECONDS + 60))
while :; do
    r1=$(status_of "$F" refused_connections); t1=$(status_of "$F" timed_out_connections)
    [ $((r1 - r0 + t1 - t0)) -ge "$opened" ] && break
    [ $SECONDS -lt $deadline ] || break
    sleep 0.5
done
check "node $F closed all $opened: $((r1 - r0)) refused, $((t1 - t0)) timed out" \
    [ $((r1 - r0 + t1 - t0)) -ge "$opened" ]
check "most were refused at once, over the per-address cap" [ $((r1 - r0)) -ge $((opened / 2)) ]
check "the accepted idle ones timed out" [ $((t1 - t0)) -ge 1 ]
for fd in "${FDS[@]}"; do exec {fd}>&-; done
check "node $F logs refusals (rate-limited)" grep -q "refused: the cap on connections from one address" "$T/n$F.log"
lines=$(grep -c "refused: the cap" "$T/n$F.log")
check "at most 21 warning lines per 10 s for ~2000 refusals (got $lines)" [ "$lines" -le 42 ]

for i in 1 2 3; do check "node $i alive after the floods" alive "$i"; done
L2=$(wait_leader) || { not_ok "a leader after the floods"; finish; }
out=$("$RLOGCTL" append --control "$(ctl "$L2")" --timeout 10 after 2>&1); rc=$?
check "an append after the floods (exit $rc: $out)" [ $rc -eq 0 ]
[ $rc -eq 0 ] && for i in 1 2 3; do check "node $i gets it" wait_commit "$i" $((out + 1)); done
finish
