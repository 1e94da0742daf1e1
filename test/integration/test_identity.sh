#!/bin/bash
# A data directory knows whose it is: node 3's directory started as node 2,
# a node started with another cluster's --cluster, a --cluster that puts a
# member elsewhere than the stored membership, and a named cluster opened
# under another name (or none) are all refused with RLOG_EIDENTITY and a
# message naming both sides, and change nothing. A directory without an
# IDENTITY file (an older liblog's) is adopted at its first good open.
# The cluster restarts with its own configuration and still serves its
# records.
. "$(dirname "$0")/lib.sh"

start_cluster 3 || { not_ok "start a 3-node cluster"; finish; }
L=$(wait_leader) || { not_ok "a leader is elected"; finish; }
"$RLOGCTL" append --control "$(ctl "$L")" r0 r1 r2 >/dev/null 2>"$T/err" || not_ok "append: $(cat "$T/err")"
for i in 1 2 3; do wait_commit "$i" 3 >/dev/null; done
read_all "$L" 3 >"$T/before.json"
for i in 1 2 3; do
    check "node $i's directory has an IDENTITY file" [ -s "$T/n$i/IDENTITY" ]
    stop_node "$i" || not_ok "node $i stops cleanly"
done
check "node 3's IDENTITY names node 3" grep -qx "node 3" "$T/n3/IDENTITY"
cp "$T/n3/IDENTITY" "$T/id3.before"

# refused DESCRIPTION PATTERN ARGS...: `rlogctl node ARGS` is refused with
# RLOG_EIDENTITY and a message matching PATTERN.
refused() { local d=$1 pat=$2; shift 2; bad_node "$d" "RLOG_EIDENTITY: .*$pat" "$@"; }

refused "node 3's directory started as node 2" "belongs to node 3, not node 2" \
    --id 2 --data "$T/n3" --cluster "$CLUSTER"
check "the refused open left node 3's IDENTITY as it was" cmp -s "$T/id3.before" "$T/n3/IDENTITY"

# Another cluster: same ids, other ports.
pick_other() {
    local p=$1
    while ! port_free "$p" || [[ " ${PORTS[*]} " == *" $p "* ]]; do p=$((p + 1)); done
    echo "$p"
}
Q1=$(pick_other $((PORTS[2] + 10))); Q2=$(pick_other $((Q1 + 1))); Q3=$(pick_other $((Q2 + 1)))
OTHER="1=127.0.0.1:$Q1,2=127.0.0.1:$Q2,3=127.0.0.1:$Q3"
refused "node 1 started with another cluster's --cluster" \
    "node 1 at $(addr 1) in its stored cluster configuration, but config.address is 127.0.0.1:$Q1" \
    --id 1 --data "$T/n1" --cluster "$OTHER"
MOVED="1=$(addr 1),2=127.0.0.1:$Q2,3=$(addr 3)"
refused "a --cluster that puts node 2 elsewhere than the stored membership" \
    "config.peers has node 2 at 127.0.0.1:$Q2, but the cluster stored in .* has it at $(addr 2)" \
    --id 1 --data "$T/n1" --cluster "$MOVED"
SWAPPED="1=$(addr 1),2=$(addr 3),3=$(addr 2)"
refused "a --cluster that swaps nodes 2 and 3" "config.peers has node 2 at $(addr 3)" \
    --id 1 --data "$T/n1" --cluster "$SWAPPED"

# An older liblog's directory (no IDENTITY) is adopted at its next good
# open; a refused one records nothing.
rm "$T/n1/IDENTITY"
refused "node 1's directory without IDENTITY, with another cluster's --cluster" \
    "but config.address is 127.0.0.1:$Q1" --id 1 --data "$T/n1" --cluster "$OTHER"
check "the refused open recorded no identity" [ ! -e "$T/n1/IDENTITY" ]
for i in 1 2 3; do start_node "$i" || not_ok "node $i restarts with its own configuration"; done
check "node 1's directory was adopted: IDENTITY written again" grep -qx "node 1" "$T/n1/IDENTITY"
check "and its log says so" grep -q "adopted" "$T/n1.log"
L=$(wait_leader) || not_ok "a leader after the restart"
check "the restarted cluster still serves r0..r2" cmp -s "$T/before.json" <(read_all "$L" 3)
check "and takes appends" bash -c "'$RLOGCTL' append --control '$(ctl "$L")' --timeout 10 r3 >/dev/null"
for i in 1 2 3; do stop_node "$i" || not_ok "node $i stops cleanly"; done

# A named cluster (one node, so it runs alone).
N1="1=127.0.0.1:$Q1"
timeout "$WAIT" "$RLOGCTL" node --id 1 --data "$T/named" --cluster "$N1" --cluster-name alpha \
    >"$T/named.log" 2>&1 &
P=$!
EXTRA_PIDS+=("$P")
deadline=$((SECONDS + WAIT))
until "$RLOGCTL" status --control "$T/named/control.sock" 2>/dev/null | grep -q "^role leader" ||
    [ $SECONDS -ge $deadline ]; do sleep 0.1; done
kill -TERM $P 2>/dev/null
wait_exit $P; rc=$?
check "a node of cluster alpha runs and stops cleanly (exit $rc)" [ $rc -eq 0 ]
check "its IDENTITY records cluster alpha" grep -qx "cluster alpha" "$T/named/IDENTITY"
refused "cluster alpha's directory opened as cluster beta" "belongs to cluster alpha, not cluster beta" \
    --id 1 --data "$T/named" --cluster "$N1" --cluster-name beta
refused "cluster alpha's directory opened with no cluster name" \
    "belongs to cluster alpha, but config.cluster_name is not set" \
    --id 1 --data "$T/named" --cluster "$N1"
refused "a derived-name directory opened as cluster alpha" "belongs to cluster peers-[0-9a-f]{16} .*, not cluster alpha" \
    --id 2 --data "$T/n2" --cluster "$CLUSTER" --cluster-name alpha
finish
