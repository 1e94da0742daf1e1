#!/bin/bash
# Repair of a damaged replica from its peers, while appends continue.
#
# Three `rlogctl node`s with 2 MiB segments and a small read cache (so
# reads of older records come from the segment files). After ~12 MB of
# records, one byte is flipped inside a sealed segment:
#   1. of a running follower: a read through it fails with RLOG_ECORRUPT
#      (never data), the node logs the damaged range, fetches it from a peer
#      and writes it back; its status counts the repaired range;
#   2. of the running leader: the same (the leader never sends the damaged
#      copy: the followers' logs stay identical);
#   3. of a stopped follower whose index file is gone too: it starts anyway
#      (the damage is found by the scan at open), and repairs it.
# A client keeps appending through all of it. At the end every node serves
# byte-identical records 0..N-1, and nothing is left unreadable.
. "$(dirname "$0")/lib.sh"
NODE_ARGS=(--segment-size 2097152 --cache-bytes 65536 -v)

# flip_byte FILE POS: xors one bit of the byte at POS.
flip_byte() {
    local b
    b=$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' ')
    printf "$(printf '\\%03o' $((b ^ 16)))" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}
# sealed_segment I K: node I's K-th segment file (from 1), if a later one
# with entries exists (so it is sealed).
sealed_segment() {
    local files
    mapfile -t files < <(ls "$T/n$1"/seg-*.log 2>/dev/null | sort)
    [ "${#files[@]}" -ge $(($2 + 2)) ] && echo "${files[$(($2 - 1))]}"
}
# damage I K: flips a byte in the middle of node I's K-th segment.
damage() {
    local f
    f=$(sealed_segment "$1" "$2") || return 1
    local size; size=$(stat -c %s "$f")
    flip_byte "$f" $((size / 2 + 12345))
    say "flipped a bit of $(basename "$f") of node $1 at byte $((size / 2 + 12345))"
}
# wait_repaired I N: until node I's status shows >= N repaired ranges and
# nothing unreadable.
wait_repaired() {
    local deadline=$((SECONDS + WAIT)) r u
    while [ $SECONDS -lt $deadline ]; do
        r=$(status_of "$1" repaired_ranges); u=$(status_of "$1" unreadable_entries)
        [ -n "$r" ] && [ "$r" -ge "$2" ] && [ "$u" = 0 ] && return 0
        sleep 0.1
    done
    say "node $1: repaired_ranges ${r:-?} (want $2), unreadable_entries ${u:-?}"
    return 1
}
# read_through I N: reads 0..N-1 on node I (may fail on damage; output kept).
read_through() { read_all "$1" "$2" >"$T/rt$1.json" 2>"$T/rt$1.err"; }

start_cluster 3 || { not_ok "start a 3-node cluster"; finish; }
L=$(wait_leader) || { not_ok "a leader is elected"; finish; }
F=$(( L % 3 + 1 )); G=$(( F % 3 + 1 ))
ok "node $L leads; followers $F and $G"
seq -f "record-%07g-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" 1 200000 >"$T/in1"
"$RLOGCTL" append --control "$(ctl "$L")" <"$T/in1" >"$T/off1" 2>"$T/err1"
check "200000 appends" [ "$(wc -l <"$T/off1")" -eq 200000 ]
for i in 1 2 3; do wait_commit "$i" 200000 >/dev/null; done
check "node $F has sealed segments" sealed_segment "$F" 2

# Appends go on through everything below: ~2000 records/s.
for ((i = 1; i <= 200000; i++)); do
    echo "stream-$i"
    [ $((i % 100)) = 0 ] && sleep 0.05
done | "$RLOGCTL" append --cluster-controls "$(all_controls)" --timeout 20 >"$T/off2" 2>"$T/err2" &
BG=$!
EXTRA_PIDS+=("$BG")

# 1. A running follower.
damage "$F" 2 || not_ok "flip a byte on node $F"
read_through "$F" 200000; rc=$?
say "first read through node $F: exit $rc: $(head -c 300 "$T/rt$F.err")"
# The node may find and repair the damage before this read reaches it (a
# store job or a peer's fetch can read the range first): then the read
# succeeds, and must return exactly what was appended. Either way no
# damaged byte is ever returned.
if [ $rc -ne 0 ]; then
    ok "the damaged record is refused, not returned (exit $rc)"
    check "  with RLOG_ECORRUPT" grep -q "ECORRUPT\|damaged\|checksum" "$T/rt$F.err"
else
    check "the read succeeded only because the damage was found first (log)" \
        grep -q "are damaged here\|damaged here; repaired from" "$T/n$F.log"
    check "  and it returned exactly what was appended, no damaged byte" \
        cmp -s <(sed 's/.*"record":"\(.*\)"}$/\1/' "$T/rt$F.json") "$T/in1"
fi
check "node $F repairs it (status)" wait_repaired "$F" 1
check "  and says so in its log" wait_log "$F" "damaged here; repaired from"
read_through "$F" 200000; rc=$?
check "a read through node $F now succeeds (exit $rc)" [ $rc -eq 0 ]

# 2. The running leader.
damage "$L" 3 || not_ok "flip a byte on node $L"
read_through "$L" 200000
check "the leader repairs it (status)" wait_repaired "$L" 1
check "  and says so in its log" wait_log "$L" "damaged here; repaired from"

# 3. A stopped follower, its index file gone: the damage is found at open.
stop_node "$G"
damage "$G" 2 || not_ok "flip a byte on node $G"
rm -f "${T}/n$G"/seg-*02.idx
check "node $G starts with damage in a sealed segment" start_node "$G"
check "  found at open, then repaired" wait_repaired "$G" 1
check "  and said so in its log" wait_log "$G" "are damaged here"

sleep 1
kill -TERM "$BG" 2>/dev/null; wait "$BG" 2>/dev/null
n2=$(wc -l <"$T/off2")
say "stream client: $n2 records acknowledged during the repairs"
check "appends continued during the repairs ($n2)" [ "$n2" -gt 0 ]
L=$(wait_leader) || { not_ok "a leader at the end"; finish; }
o=$("$RLOGCTL" append --control "$(ctl "$L")" --timeout 10 last 2>&1)
end=$(( ${o:-0} + 1 ))
for i in 1 2 3; do
    wait_commit "$i" "$end" >/dev/null
    read_all "$i" "$end" >"$T/r$i.json" 2>"$T/r$i.err" || not_ok "read 0..$((end - 1)) on node $i: $(cat "$T/r$i.err")"
done
check "node 2 identical to node 1 ($end records)" cmp -s "$T/r1.json" "$T/r2.json"
check "node 3 identical to node 1" cmp -s "$T/r1.json" "$T/r3.json"
check "the first 200000 are what was appended" \
    cmp -s <(head -n 200000 "$T/r1.json" | sed 's/.*"record":"\(.*\)"}$/\1/') "$T/in1"
for i in 1 2 3; do
    say "node $i: $("$RLOGCTL" status --control "$(ctl "$i")" | grep -E 'damaged|repaired|unreadable' | tr '\n' ' ')"
    check "node $i: nothing unreadable" [ "$(status_of "$i" unreadable_entries)" = 0 ]
done
finish
