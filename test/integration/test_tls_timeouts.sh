#!/bin/bash
# Partial-frame and idle timeouts on inbound peer connections (a loopback
# cluster, plain mode, with --peer-frame-timeout 1000 --peer-idle-timeout
# 2000): a connection that sends a hello and half a frame is closed after
# the frame timeout, one that sends a hello and nothing more after the idle
# timeout, both counted and logged. The members' own connections that go
# quiet are closed the same way, and the cluster still elects and appends
# (a peer reconnects when it has something to send).
. "$(dirname "$0")/lib.sh"
le() { local v=$1 n=$2 i s=""; for ((i = 0; i < n; i++)); do s+="\\x$(printf %02x $(((v >> (8 * i)) & 255)))"; done; printf "$s"; }
hello() { printf 'rlognet1'; le 1 4; le 0 4; le "$1" 8; le 0 8; }
header() { printf 'RLW1'; le 1 2; le "$1" 2; le "$2" 4; le 0 4; le 99 8; le 0 8; }

NODE_ARGS=(--peer-frame-timeout 1000 --peer-idle-timeout 2000)
start_cluster 3 || { not_ok "start a 3-node cluster"; finish; }
L=$(wait_leader) || { not_ok "a leader is elected"; finish; }
F=$(( L % 3 + 1 ))
ok "node $L leads"
PORT=${PORTS[$((F - 1))]}

t0=$(status_of "$F" timed_out_connections)
exec {half}<>"/dev/tcp/127.0.0.1/$PORT"
{ hello "$L"; header 1 64; head -c 10 /dev/zero; } >&$half
exec {idle}<>"/dev/tcp/127.0.0.1/$PORT"
hello "$L" >&$idle
check "node $F closes the half frame" wait_log "$F" "a frame not finished within 1000 ms"
check "node $F closes the idle connection" wait_log "$F" "no frame for 2000 ms"
exec {half}>&- {idle}>&-
t1=$(status_of "$F" timed_out_connections)
check "timed_out_connections counts both ($t0 -> $t1)" [ $((t1 - t0)) -ge 2 ]

sleep 3   # every quiet member connection has timed out by now
for i in 1 2 3; do check "node $i alive" alive "$i"; done
out=$("$RLOGCTL" append --control "$(ctl "$L")" --timeout 10 one 2>&1); rc=$?
check "an append (exit $rc: $out)" [ $rc -eq 0 ]
"$RLOGCTL" transfer --control "$(ctl "$L")" >/dev/null 2>&1
L2=$(wait_leader) || { not_ok "a leader after a transfer"; finish; }
out=$("$RLOGCTL" append --control "$(ctl "$L2")" --timeout 10 two 2>&1); rc=$?
check "an append through leader $L2 (exit $rc: $out)" [ $rc -eq 0 ]
[ $rc -eq 0 ] && for i in 1 2 3; do check "node $i gets it" wait_commit "$i" $((out + 1)); done
finish
