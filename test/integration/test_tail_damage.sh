#!/bin/bash
# A flipped byte among the entries libraft must load at open (after the
# latest snapshot descriptor; here there is none, so that is every entry):
# the node used to refuse to start. Now it cuts its log before the damage,
# records its old end in FLOOR, takes the cut entries back from the leader
# and only then campaigns or votes for a candidate behind that end again.
#   1. a follower, stopped, damaged, restarted: it starts, says what it cut,
#      catches up, removes FLOOR, counts the range repaired, and serves
#      byte-identical records;
#   2. the leader, the same: another node leads meanwhile;
#   3. a damaged FLOOR file refuses the open with a clear message.
. "$(dirname "$0")/lib.sh"
NODE_ARGS=(--snapshot-threshold 1000000 --snapshot-trailing 1000000 -v)

# flip_byte FILE POS: xors one bit of the byte at POS.
flip_byte() {
    local b
    b=$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' ')
    printf "$(printf '\\%03o' $((b ^ 8)))" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}
# damage I: flips a byte half way into node I's first segment (full of
# committed entries, later entries after it).
damage() {
    local f
    f=$(ls "$T/n$1"/seg-*.log | sort | head -n 1)
    flip_byte "$f" 400000
    say "flipped a bit of $(basename "$f") of node $1 at byte 400000"
}
same_records() { # same_records I J N
    read_all "$1" "$3" >"$T/a.json" 2>/dev/null && read_all "$2" "$3" >"$T/b.json" 2>/dev/null &&
        cmp -s "$T/a.json" "$T/b.json"
}
wait_status_ge() { # wait_status_ge I FIELD N
    local deadline=$((SECONDS + WAIT)) v
    while [ $SECONDS -lt $deadline ]; do
        v=$(status_of "$1" "$2")
        [ -n "$v" ] && [ "$v" -ge "$3" ] && return 0
        sleep 0.1
    done
    say "node $1: $2 ${v:-?} (want >= $3)"
    return 1
}
no_floor() { # no_floor I: FLOOR gone (bounded wait)
    local deadline=$((SECONDS + WAIT))
    while [ -e "$T/n$1/FLOOR" ]; do
        [ $SECONDS -lt $deadline ] || return 1
        sleep 0.1
    done
}

start_cluster 3 || { not_ok "start a 3-node cluster"; finish; }
L=$(wait_leader) || { not_ok "a leader is elected"; finish; }
F=$(( L % 3 + 1 ))
ok "node $L leads; follower $F"
seq -f "record-%07g-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" 1 40000 >"$T/in1"
"$RLOGCTL" append --control "$(ctl "$L")" <"$T/in1" >"$T/off1" 2>"$T/err1"
check "40000 appends" [ "$(wc -l <"$T/off1")" -eq 40000 ]
for i in 1 2 3; do wait_commit "$i" 40000 >/dev/null; done

# 1. A follower.
stop_node "$F"
damage "$F"
check "node $F starts with damage in an entry libraft must load" start_node "$F"
check "  it cut its log before the damage (log)" wait_log "$F" "libraft must load it: the log is cut before it"
check "  and gets the cut entries back, then votes again (log)" \
    wait_log "$F" "voting and campaigning again"
check "  FLOOR is removed" no_floor "$F"
check "  status counts the range repaired" wait_status_ge "$F" repaired_ranges 1
"$RLOGCTL" append --control "$(ctl "$L")" after-1 >/dev/null 2>&1
wait_commit "$F" 40001 >/dev/null
check "  node $F serves the same records as the leader" same_records "$F" "$L" 40001

# 2. The leader.
stop_node "$L"
damage "$L"
check "the damaged old leader $L starts" start_node "$L"
check "  it cut its log (log)" wait_log "$L" "libraft must load it: the log is cut before it"
N=$(wait_leader) || not_ok "a leader while node $L is cut"
"$RLOGCTL" append --control "$(ctl "$N")" --timeout 10 after-2 >/dev/null 2>&1 ||
    not_ok "append through the new leader $N"
check "  node $L gets its entries back and votes again" wait_log "$L" "voting and campaigning again"
check "  FLOOR is removed" no_floor "$L"
wait_commit "$L" 40002 >/dev/null
for i in 1 2 3; do
    check "node $i serves all 40002 records, identical to node $N's" same_records "$i" "$N" 40002
done
check "the first 40000 are what was appended" \
    cmp -s <(read_all "$N" 40000 2>/dev/null | sed 's/.*"record":"\(.*\)"}$/\1/') "$T/in1"

# 3. A damaged FLOOR file: the node cannot know how far it may vote.
G=$(( N % 3 + 1 ))
stop_node "$G"
printf 'garbage, not a floor' >"$T/n$G/FLOOR"
if start_node "$G" 2>/dev/null; then
    not_ok "a damaged FLOOR refuses the open"
else
    ok "a damaged FLOOR refuses the open"
fi
check "  naming the file" grep -q "FLOOR: damaged" "$T/n$G.log"
finish
