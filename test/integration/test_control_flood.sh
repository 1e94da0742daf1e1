#!/bin/bash
# The CLI's control socket under a flood (issue 11: under a 1,024-descriptor
# limit the accept loop spun on EMFILE and wrote 811 MB of log lines). Node 1
# runs with `ulimit -n 64`; forge opens 300 connections to its control
# socket and holds them for FLOOD_HOLD_MS (default 3000). The node must run
# out of descriptors (its log says so: otherwise this test proves nothing),
# log at most about one accept line a second, stay alive, and answer status
# and take appends once the flood is gone. The socket itself is 0600.
. "$(dirname "$0")/lib.sh"
FORGE=${FORGE:-$ROOT/build/itest/forge}
[ -x "$FORGE" ] || { not_ok "$FORGE not built (make build/itest/forge)"; finish; }
FLOOD_HOLD_MS=${FLOOD_HOLD_MS:-3000}

cat >"$T/lowfd" <<EOS
#!/bin/bash
ulimit -n 64
exec "$RLOGCTL" "\$@"
EOS
chmod +x "$T/lowfd"
pick_ports 3 || { not_ok "free ports"; finish; }
RLOGCTL="$T/lowfd" start_node 1 || { not_ok "node 1 starts under ulimit -n 64"; finish; }
{ start_node 2 && start_node 3; } || { not_ok "nodes 2 and 3 start"; finish; }
L=$(wait_leader) || { not_ok "a leader is elected"; finish; }
ok "cluster up, leader $L; node 1 runs with at most 64 descriptors"
check "the control socket is a socket of mode 0600 (srw-------)" \
    [ "$(stat -c %A "$(ctl 1)")" = "srw-------" ]

before=$(wc -c <"$T/n1.log")
t0=$SECONDS
say "$("$FORGE" --conns 300 --hold "$FLOOD_HOLD_MS" "unix:$(ctl 1)" none 2>&1 | tail -n 1)"
sleep 1.5 # the node resumes accepting within a second and sees the flood gone
flood_s=$((SECONDS - t0))
added=$(($(wc -c <"$T/n1.log") - before))
tail -c "$added" "$T/n1.log" >"$T/flood.log"
lines=$(grep -c "control: accept" "$T/flood.log")
check "node 1 ran out of descriptors during the flood (its log says so)" \
    grep -q "control: accept: Too many open files; not accepting for" "$T/flood.log"
max_lines=$((flood_s + 2))
check "at most $max_lines accept lines for the flood of about $flood_s s (got $lines, $added bytes of log)" \
    [ "$lines" -le "$max_lines" ]
check "node 1 alive after the flood" alive 1
check "node 1 answers status after the flood" [ -n "$(status_of 1 role)" ]
out=$("$RLOGCTL" append --control "$(ctl "$L")" --timeout 10 after-flood 2>&1)
check "an append through leader $L after the flood (got '$out')" [ "$out" = 0 ]
check "node 1 commits it" wait_commit 1 1
grep -E "control: accept" "$T/flood.log" | head -n 3 | while read -r l; do say "log: $l"; done
finish
