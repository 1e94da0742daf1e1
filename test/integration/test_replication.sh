#!/bin/bash
# Three nodes; 10,000 appends through the leader (stdin, batched by rlogctl);
# every node then serves identical records at identical offsets.
. "$(dirname "$0")/lib.sh"
N=10000

start_cluster 3 || { not_ok "start a 3-node cluster"; finish; }
ok "3 nodes started on ports ${PORTS[*]}"
L=$(wait_leader) || { not_ok "a leader is elected within $WAIT s"; finish; }
ok "node $L is the leader"

seq -f "record-%06g $(date +%s%N) the quick brown fox" 0 $((N - 1)) >"$T/in.txt"
if "$RLOGCTL" append --control "$(ctl "$L")" --timeout 60 <"$T/in.txt" >"$T/offsets.txt" 2>"$T/append.err"; then
    ok "$N appends through the leader"
else
    not_ok "$N appends through the leader: $(cat "$T/append.err")"
fi
check "one offset printed per record" [ "$(wc -l <"$T/offsets.txt")" -eq $N ]
first=$(head -n 1 "$T/offsets.txt")
check "offsets are dense and increasing" \
    awk -v f="${first:-x}" 'NR == 1 && $1 != f { exit 1 } $1 != f + NR - 1 { exit 1 }' "$T/offsets.txt"

end=$(( ${first:-0} + N ))
for i in 1 2 3; do
    if wait_commit "$i" "$end"; then ok "node $i committed $end records"; else not_ok "node $i committed $end records"; fi
done
for i in 1 2 3; do
    if read_all "$i" "$end" >"$T/read$i.json" 2>"$T/read$i.err"; then
        ok "node $i serves offsets 0..$((end - 1))"
    else
        not_ok "node $i serves offsets 0..$((end - 1)): $(cat "$T/read$i.err")"
    fi
done
check "node 2 serves exactly what node 1 serves" cmp -s "$T/read1.json" "$T/read2.json"
check "node 3 serves exactly what node 1 serves" cmp -s "$T/read1.json" "$T/read3.json"
check "$end records read on node 1" [ "$(wc -l <"$T/read1.json")" -eq "$end" ]
check "offsets in the read are 0..$((end - 1))" \
    awk -F'[:,]' '$2 != NR - 1 { exit 1 }' "$T/read1.json"
# The records appended are the last N, in input order.
tail -n $N "$T/read1.json" | sed -e 's/^{"offset":[0-9]*,"record":"//' -e 's/"}$//' >"$T/back.txt"
check "the records read back are the records appended, in order" cmp -s "$T/in.txt" "$T/back.txt"
for i in 1 2 3; do
    sum=$(sha256sum <"$T/read$i.json" | cut -c1-16)
    say "node $i: sha256 $sum"
done
finish
