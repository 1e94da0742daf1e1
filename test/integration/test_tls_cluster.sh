#!/bin/bash
# A 3-node cluster with mutual TLS (certificates from examples/mkcerts.sh):
# it elects, appends and serves identical reads, and every node reports
# peer_security tls. Then two impostors run as node 2 on another port,
# each a real `rlogctl node` trying to win elections: one with a
# certificate from another CA, one with a valid certificate of node 3 while
# claiming id 2. Neither is ever heard: the nodes' term and records do not
# move, their refusal counters and logs show the refused handshakes, and
# the cluster keeps taking appends. Last, TLS without a key file and a
# non-loopback cluster without TLS are refused at start with messages that
# name the fix.
. "$(dirname "$0")/lib.sh"
MKCERTS=$ROOT/examples/mkcerts.sh

"$MKCERTS" "$T/certs" c1 1 2 3 >/dev/null 2>&1 || { not_ok "mkcerts.sh for CA a"; finish; }
"$MKCERTS" "$T/other" c1 2 >/dev/null 2>&1 || { not_ok "mkcerts.sh for CA b"; finish; }
tls() { # tls CA_DIR CERT_ID: the TLS flags of a node using DIR's CA and node CERT_ID's pair
    echo --cluster-name c1 --peer-trusted-ca-file "$1/ca.crt" --peer-cert-file "$1/node-$2.crt" \
        --peer-key-file "$1/node-$2.key"
}

pick_ports 4 || { not_ok "pick ports"; finish; }
P4=${PORTS[3]}
CLUSTER=$(cut -d, -f1-3 <<<"$CLUSTER")
N_NODES=3
# shellcheck disable=SC2046
for i in 1 2 3; do start_node "$i" $(tls "$T/certs" "$i") || { not_ok "start TLS node $i"; finish; }; done
L=$(wait_leader) || { not_ok "a leader is elected over TLS"; finish; }
ok "node $L leads the TLS cluster"
for i in 1 2 3; do
    check "node $i reports peer_security tls" [ "$(status_of "$i" peer_security)" = tls ]
done
check "the log does not call the cluster insecure" bash -c "! grep -q INSECURE '$T'/n1.log"
seq -f "tls-%g" 1 300 | "$RLOGCTL" append --control "$(ctl "$L")" >/dev/null 2>"$T/err" \
    || not_ok "300 appends: $(cat "$T/err")"
end=$(status_of "$L" commit_offset)
check "300 records committed (commit_offset $end)" [ "${end:-0}" -ge 300 ]
read_all "$L" "$end" >"$T/before.json" 2>/dev/null
for i in 1 2 3; do
    check "node $i catches up to $end" wait_commit "$i" "$end"
    read_all "$i" "$end" >"$T/r$i.json" 2>/dev/null
    check "node $i serves the leader's records" cmp -s "$T/before.json" "$T/r$i.json"
done

# impostor NAME ARGS...: runs a rogue node 2 listening on P4 for 4 s
# (several election timeouts), then kills it.
impostor() {
    local name=$1; shift
    mkdir -p "$T/$name"
    "$RLOGCTL" node --id 2 --data "$T/$name" --address "127.0.0.1:$P4" \
        --cluster "1=$(addr 1),2=127.0.0.1:$P4,3=$(addr 3)" --election-timeout 300 --heartbeat 50 \
        "$@" >"$T/$name.log" 2>&1 &
    local p=$!
    EXTRA_PIDS+=("$p")
    sleep 4
    kill -9 "$p" 2>/dev/null; wait "$p" 2>/dev/null
}
refusals() { # total rejected_handshakes of nodes 1 and 3
    echo $(( $(status_of 1 rejected_handshakes) + $(status_of 3 rejected_handshakes) ))
}
for case in other-ca other-id; do
    term=$(status_of "$L" term); r0=$(refusals)
    # shellcheck disable=SC2046
    if [ $case = other-ca ]; then
        impostor rogue-$case $(tls "$T/other" 2)
        why="TLS handshake"
    else
        impostor rogue-$case $(tls "$T/certs" 3)
        why="other than its certificate"
    fi
    r1=$(refusals)
    check "$case: nodes 1 and 3 refused the impostor's handshakes ($r0 -> $r1)" [ "$r1" -gt "$r0" ]
    check "$case: a node logs why ($why)" grep -q "$why" "$T/n1.log" "$T/n3.log"
    for i in 1 2 3; do check "$case: node $i alive" alive "$i"; done
    check "$case: the term did not move ($term)" [ "$(status_of "$L" term)" = "$term" ]
    check "$case: node $L still leads" [ "$(status_of "$L" role)" = leader ]
    read_all "$L" "$end" >"$T/after.json" 2>/dev/null
    check "$case: no record changed" cmp -s "$T/before.json" "$T/after.json"
    check "$case: nothing appended ($end)" [ "$(status_of "$L" commit_offset)" = "$end" ]
done
out=$("$RLOGCTL" append --control "$(ctl "$L")" --timeout 10 after 2>&1); rc=$?
check "an append after the impostors (exit $rc: $out)" [ $rc -eq 0 ]
for i in 1 2 3; do check "node $i gets it" wait_commit "$i" $((end + 1)); done

# Refused at start, with the fix in the message.
mkdir -p "$T/bad1" "$T/bad2"
out=$("$RLOGCTL" node --id 1 --data "$T/bad1" --cluster "1=127.0.0.1:$P4" \
      --peer-trusted-ca-file "$T/certs/ca.crt" --peer-cert-file "$T/certs/node-1.crt" 2>&1); rc=$?
check "TLS without a key file is refused (exit $rc)" [ $rc -ne 0 ]
check "the message names tls_key_file: $out" grep -q "tls_key_file is missing" <<<"$out"
out=$("$RLOGCTL" node --id 1 --data "$T/bad1" --cluster "1=127.0.0.1:$P4" \
      --peer-trusted-ca-file "$T/certs/ca.crt" --peer-cert-file "$T/certs/node-1.crt" \
      --peer-key-file "$T/nonexistent.key" 2>&1); rc=$?
check "an unreadable key file is refused (exit $rc)" [ $rc -ne 0 ]
check "the message names the file: $out" grep -q "nonexistent.key" <<<"$out"
out=$("$RLOGCTL" node --id 1 --data "$T/bad2" --cluster "1=192.0.2.1:$P4" --address 192.0.2.1:$P4 2>&1); rc=$?
check "a non-loopback cluster without TLS is refused (exit $rc)" [ $rc -ne 0 ]
check "the message says how to fix it: $out" grep -q -- "--insecure" <<<"$out"
finish
