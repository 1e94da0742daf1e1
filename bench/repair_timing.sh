#!/bin/bash
# The whole repair of a damaged 64 MiB segment on a live follower, timed by
# the node itself: three `rlogctl node`s with the default 64 MiB segments,
# ~140 MB of 1000-byte records appended (so the first 64 MiB segment is
# sealed), one bit flipped in the middle of it on a follower, one
# read through it (refused: RLOG_ECORRUPT) finds the damage, and the node's
# log line "repaired from N's copy in T ms" gives the time from finding the
# damage to the rebuilt segment in place (fetch from a peer + write-back).
# Prints that figure; not a test (no assertion on it).
#   RLOGCTL=build/examples/rlogctl bench/repair_timing.sh
. "$(dirname "$0")/../test/integration/lib.sh"
NODE_ARGS=(--cache-bytes 65536 -v)
start_cluster 3 || { not_ok "start a 3-node cluster"; finish; }
L=$(wait_leader) || { not_ok "a leader is elected"; finish; }
F=$(( L % 3 + 1 ))
pad=$(head -c 990 /dev/zero | tr '\0' x)
# A new log's segments grow from ~1 MiB, doubling up to segment_size (64
# MiB): 1+2+...+32 = 63 MiB come first, so ~140 MB of records leave the
# first 64 MiB segment sealed, with another after it.
N=140000
seq -f "%08g-$pad" 1 "$N" >"$T/in"
t0=$SECONDS
"$RLOGCTL" append --control "$(ctl "$L")" --timeout 120 <"$T/in" >"$T/off" 2>"$T/err"
check "$N records of ~1 KB appended in $((SECONDS - t0)) s" [ "$(wc -l <"$T/off")" -eq "$N" ]
wait_commit "$F" "$N" >/dev/null
seg=
for f in "$T/n$F"/seg-*.log; do
    [ "$(stat -c %s "$f")" -ge $((64 << 20)) ] && { seg=$f; break; }
done
next=$(ls "$T/n$F"/seg-*.log | grep -A1 -F "$seg" | sed -n 2p)
check "node $F has a sealed 64 MiB segment" test -n "$seg" -a -n "$next"
size=$(stat -c %s "$seg"); at=$((size / 2 + 4099))
b=$(od -An -tu1 -j "$at" -N1 "$seg" | tr -d ' ')
printf "$(printf '\\%03o' $((b ^ 32)))" | dd of="$seg" bs=1 seek="$at" conv=notrunc status=none
say "flipped a bit at byte $at of $(basename "$seg") ($size bytes) on node $F"
# Reading the whole log walks through the damage (the cache is tiny).
"$RLOGCTL" read --control "$(ctl "$F")" "0-$N" >/dev/null 2>"$T/read.err"
say "read through the damage: $(head -c 200 "$T/read.err")"
check "the node repairs it" wait_log "$F" "damaged here; repaired from"
line=$(grep -m1 "damaged here; repaired from" "$T/n$F.log")
say "$line"
ms=$(echo "$line" | sed -n 's/.* in \([0-9]*\) ms.*/\1/p')
echo "repair_64MiB_segment_end_to_end_ms $ms (segment $size bytes)"
finish
