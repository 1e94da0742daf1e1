#!/bin/bash
# Bad configurations: rlogctl node exits non-zero with a message naming the
# problem, and a running cluster's data is untouched.
. "$(dirname "$0")/lib.sh"

start_cluster 3 || { not_ok "start a 3-node cluster"; finish; }
L=$(wait_leader) || { not_ok "a leader is elected"; finish; }
"$RLOGCTL" append --control "$(ctl "$L")" r0 r1 r2 >"$T/off" 2>&1
check "three records appended" [ "$(wc -l <"$T/off")" -eq 3 ]
for i in 1 2 3; do wait_commit "$i" 3 >/dev/null; done
read_all 1 3 >"$T/before.json"
P=$((PORTS[2] + 1)); port_free $P || P=$((PORTS[0] - 1))

mkdir -p "$T/x"
bad_node "duplicate ids" "duplicate|peers" \
    --id 1 --data "$T/x/dup" --control "$T/x/c1" --address 127.0.0.1:$P --cluster "1=127.0.0.1:$P,1=127.0.0.1:$((P + 1))"
bad_node "own id missing from the cluster" "id|peers" \
    --id 4 --data "$T/x/missing" --control "$T/x/c2" --address 127.0.0.1:$P --cluster "1=127.0.0.1:$P,2=127.0.0.1:$((P + 1))"
bad_node "address 'nohost'" "address" \
    --id 1 --data "$T/x/nohost" --control "$T/x/c3" --cluster "1=nohost,2=127.0.0.1:$((P + 1))"
bad_node "address with a bad port" "port 99999 is out of range \(1\.\.65535\)" \
    --id 1 --data "$T/x/badport" --control "$T/x/c4" --cluster "1=127.0.0.1:99999,2=127.0.0.1:$((P + 1))"
bad_node "a peer's port out of range" "config.peers\[1\].address .*: port 0 is out of range" \
    --id 1 --data "$T/x/badport2" --control "$T/x/c4" --cluster "1=127.0.0.1:$P,2=127.0.0.1:0"
bad_node "--address not matching its --cluster entry" "address" \
    --id 1 --data "$T/x/mismatch" --control "$T/x/c5" --address 127.0.0.1:$((P + 2)) --cluster "1=127.0.0.1:$P,2=127.0.0.1:$((P + 1))"
bad_node "peer id 0" "id|peers" \
    --id 1 --data "$T/x/zero" --control "$T/x/c6" --cluster "0=127.0.0.1:$((P + 1)),1=127.0.0.1:$P"
bad_node "data dir in use by running node 2 (another cluster's config)" "busy|in use|lock|data_dir|EBUSY" \
    --id 2 --data "$T/n2" --control "$T/x/c7" --cluster "2=127.0.0.1:$P,5=127.0.0.1:$((P + 1))"
bad_node "data dir in use by running node 2 (its own config)" "busy|in use|lock|data_dir|EBUSY" \
    --id 2 --data "$T/n2" --control "$T/x/c8" --cluster "$CLUSTER"
bad_node "same id and data dir as running node 1" "busy|in use|lock|data_dir|EBUSY" \
    --id 1 --data "$T/n1" --cluster "$CLUSTER"
bad_node "--cluster without '='" "cluster" --id 1 --data "$T/x/syntax" --cluster "127.0.0.1:$P"
bad_node "--cluster with an empty entry" "entry 2 is empty" \
    --id 1 --data "$T/x/empty" --cluster "1=127.0.0.1:$P,,2=127.0.0.1:$((P + 1))"
bad_node "--cluster with a trailing comma" "entry 3 is empty" \
    --id 1 --data "$T/x/trailing" --cluster "1=127.0.0.1:$P,2=127.0.0.1:$((P + 1)),"
bad_node "no --cluster" "required" --id 1 --data "$T/x/noclust"

# rlog_open errors print the error name and exit 2.
timeout "$WAIT" "$RLOGCTL" node --id 1 --data "$T/x/dup2" --control "$T/x/c9" \
    --cluster "1=127.0.0.1:$P,1=127.0.0.1:$((P + 1))" 2>"$T/err"; rc=$?
check "rlog_open errors exit 2 (got $rc)" [ $rc -eq 2 ]
check "and name the code (RLOG_EINVAL): $(head -n 1 "$T/err")" grep -q RLOG_EINVAL "$T/err"

# The running cluster is untouched: same nodes, control sockets, records.
for i in 1 2 3; do
    check "node $i still running" alive "$i"
    check "node $i control socket still answers" [ -n "$(status_of "$i" role)" ]
done
for i in 1 2 3; do
    read_all "$i" 3 >"$T/after$i.json" 2>&1
    check "node $i still serves the same 3 records" cmp -s "$T/before.json" "$T/after$i.json"
done
L=$(wait_leader) || not_ok "a leader after the bad starts"
check "the cluster still appends" bash -c "'$RLOGCTL' append --control '$(ctl "$L")' --timeout 10 r3 >/dev/null"
finish
