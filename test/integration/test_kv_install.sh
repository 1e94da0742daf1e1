#!/bin/bash
# Snapshot install end to end with examples/kv on 127.0.0.1: a 3-node kv
# cluster snapshots every 40 records, takes ~300 writes, snapshots on every
# node and trims the log before those snapshots. Then two nodes that need
# records before the log's first offset must come back by fetching a peer's
# snapshot: node 3, killed with -9 and its data directory wiped, restarted;
# and a fourth node started with --join and added after the trim. Each must
# reach the others' table within INSTALL_WAIT seconds (default 30), say it
# installed a snapshot, and take writes. Then the leader is killed with -9:
# the rest agree and take writes, it comes back; node 4 (if it was not the
# leader) is killed and restarted too, and comes back from its own copy of
# the snapshot; all four hold the same table.
TEST_LIMIT=${TEST_LIMIT:-240}
. "$(dirname "$0")/lib.sh"

KV=${KV:-$(dirname "$RLOGCTL")/kv}
[ -x "$KV" ] || { not_ok "$KV not built (make build/examples/kv)"; finish; }
INSTALL_WAIT=${INSTALL_WAIT:-30}
pick_ports 4 || { not_ok "free ports"; finish; }
C4=$CLUSTER
C3=$(cut -d, -f1-3 <<<"$C4")

# Commands go through q (not lib.sh's ask), which counts each node's
# answers: an answer that comes after q gave up on it is not taken for the
# next command's. $T/askedI: how many answers node I's process owes in all
# in $T/outI, counting the lines earlier processes wrote there (a file, so
# that q works in $(...)).
asked() { cat "$T/asked$1"; }
# q I COMMAND [SECONDS]: node I's answer to COMMAND (bounded: SECONDS,
# default WAIT).
q() {
    local i=$1 n
    n=$(($(asked "$i") + 1))
    echo "$n" >"$T/asked$i"
    echo "$2" >&"${FD[$i]}"
    WAIT=${3:-$WAIT} wait_lines "$T/out$i" "$n" >&2 || return 1
    sed -n "${n}p" "$T/out$i"
}
kv_started() { wc -l <"$T/out$1" >"$T/asked$1"; }
kv_start() { stdin_start "$1" "$KV" "$1" "$C3" "$T/n$1" 40; kv_started "$1"; }
kv_join() { stdin_start 4 "$KV" --join 4 "$C4" "$T/n4" 40; kv_started 4; }
# Node I's kv process is started the way it was first started.
kv_restart() { if [ "$1" = 4 ]; then kv_join; else kv_start "$1"; fi; }
# digest waits (in kv) up to 20 s for the node to apply what is committed.
digest() { q "$1" digest 25 | cut -d' ' -f2-3; }
# kv's status answer, and its fields' numbers for cut -f:
LEGEND="status APPLIED SNAPSHOT_OFFSET TAKEN NEEDS_SNAPSHOT INSTALLED FIRST_OFFSET"
stat_field() { q "$1" status | cut -d' ' -f"$2"; }
F_APPLIED=2 F_SNAP=3 F_TAKEN=4 F_NEEDS=5 F_INSTALLED=6 F_FIRST=7
# st_eq S FIELD VALUE, st_ge S FIELD N: one field of a status answer S.
st_eq() { [ "$(cut -d' ' -f"$2" <<<"$1")" = "$3" ]; }
st_ge() { local v; v=$(cut -d' ' -f"$2" <<<"$1"); [[ "$v" =~ ^[0-9]+$ ]] && [ "$v" -ge "$3" ]; }

# kv_kill I: kill -9, and close our end of its stdin.
kv_kill() {
    kill_node "$1"
    exec {FD[$1]}>&-
}

# leader_of I: the leader node I knows, once it knows one (bounded).
leader_of() {
    local deadline=$((SECONDS + WAIT)) l
    while [ $SECONDS -lt $deadline ]; do
        l=$(q "$1" leader | cut -d' ' -f2)
        [ -n "$l" ] && [ "$l" != 0 ] && { echo "$l"; return 0; }
        sleep 0.2
    done
    say "node $1 knows no leader after $WAIT s"
    return 1
}

# writes FROM TO NODE...: "set kK value-K" for K in FROM..TO-1, K-th through
# the NODEs in turn; each node's share is sent at once (the nodes write
# concurrently, each one command at a time). A write answered in doubt
# (RLOG_EINDOUBT: the leader changed while it was forwarded) is sent again
# through the same node, as a client would (a set is idempotent). BAD: how
# many were not answered "ok" in the end; their answers go to $T/bad.
writes() {
    local from=$1 to=$2; shift 2
    local nodes=("$@") n=$# i k j m r start=() want=() answers
    BAD=0
    : >"$T/bad"
    for ((j = 0; j < n; j++)); do
        i=${nodes[$j]}
        start[$j]=$(asked "$i")
        want[$j]=0
        for ((k = from + j; k < to; k += n)); do
            echo "set k$k value-$k"
            want[$j]=$((want[j] + 1))
        done >&"${FD[$i]}"
        echo $((start[j] + want[j])) >"$T/asked$i"
    done
    for ((j = 0; j < n; j++)); do
        i=${nodes[$j]}
        # Each write may wait out an election (kv retries for 10 s).
        WAIT=$((WAIT + 2 * want[j])) wait_lines "$T/out$i" $((start[j] + want[j])) >&2
        mapfile -t answers < <(sed -n "$((start[j] + 1)),$((start[j] + want[j]))p" "$T/out$i")
        for ((m = 0; m < want[j]; m++)); do
            k=$((from + j + m * n))
            r=${answers[$m]:-}
            if [[ "$r" == "error RLOG_EINDOUBT"* ]]; then
                say "set k$k through node $i in doubt, sent again: $r"
                r=$(q "$i" "set k$k value-$k")
            fi
            [[ "$r" == "ok "* ]] && continue
            BAD=$((BAD + 1))
            echo "k$k through node $i: ${r:-no answer}" >>"$T/bad"
        done
    done
}

# caught_up I APPLIED SECONDS: until node I applies (needs_snapshot 0) and
# has applied every record before APPLIED, polling its status (which never
# waits). Bounded; says where it stood when it gives up.
caught_up() {
    local deadline=$((SECONDS + $3)) s="" a needs
    while [ $SECONDS -lt $deadline ]; do
        alive "$1" || { say "node $1 exited (see $T/n$1.log)"; return 1; }
        s=$(q "$1" status) || break
        read -r _ a _ _ needs _ <<<"$s"
        [ "$needs" = 0 ] && [[ "$a" =~ ^[0-9]+$ ]] && [ "$a" -ge "$2" ] && return 0
        sleep 0.2
    done
    say "node $1 did not apply up to $2 within $3 s; its last answer: '${s}' ($LEGEND)"
    return 1
}

# applying I: node I's state machine is applying (needs no snapshot); says
# where it stands if not.
applying() {
    local s
    s=$(q "$1" status)
    st_eq "$s" $F_NEEDS 0 && return 0
    say "node $1 is not applying: '$s' ($LEGEND)"
    return 1
}

# same_table REF I...: every node I holds node REF's table (digest and key
# count; each digest is taken after a barrier). A node that is not applying
# fails at once: its digest would wait out kv's 20 s.
same_table() {
    local ref i d all=1
    for i in "$@"; do applying "$i" || all=0; done
    [ $all = 1 ] || return 1
    ref=$(digest "$1"); shift
    [ -n "$ref" ] || { say "no digest from the reference node"; return 1; }
    for i in "$@"; do
        d=$(digest "$i")
        [ "$d" = "$ref" ] || { say "node $i: digest '$d', not '$ref'"; all=0; }
    done
    [ $all = 1 ]
}

# ---- a. three nodes, ~300 writes, one table ----
for i in 1 2 3; do : >"$T/out$i"; kv_start "$i"; done
a=$(q 1 "set k0 value-0")
check "a write through node 1 is applied: $a" [ "${a%% *}" = ok ]
writes 1 300 1 2 3
check "299 writes spread over the three nodes all applied ($BAD not: $(head -c 200 "$T/bad"))" \
    [ "$BAD" = 0 ]
KEYS=300
check "every node holds the same table" same_table 1 2 3
d1=$(digest 1)
check "of $KEYS keys ($d1)" [ "${d1#* }" = $KEYS ]
for i in 1 2 3; do
    s=$(q "$i" status)
    check "node $i took automatic snapshots (every 40 records): $s" st_ge "$s" $F_TAKEN 5
done

# ---- b. snapshots everywhere, then a trim before them, more writes ----
min=""
for i in 1 2 3; do
    s=$(q "$i" snapshot)
    check "snapshot on node $i: $s" [ "${s%% *}" = snapshot ]
    o=${s#snapshot }
    [[ "$o" =~ ^[0-9]+$ ]] || o=0
    [ -z "$min" ] || [ "$o" -lt "$min" ] && min=$o
done
L=$(leader_of 1) || { not_ok "a leader is known"; finish; }
F=$((L % 3 + 1))
say "node $L leads; the snapshots cover records before $min at least"
# Strictly before every node's newest snapshot, well past the log's start:
# no node's log holds the records the first snapshots replaced.
P=$((min - 10))
check "the trim point $P is well into the log" [ "$P" -ge 200 ]
r=$(q "$F" "trim $P")
check "trim on follower $F is refused, naming the leader: $r" \
    grep -q "^error RLOG_ENOTLEADER: trim: .*leader is $L at $(addr "$L")" <<<"$r"
s=$(q "$F" status)
check "and trims nothing: $s" st_eq "$s" $F_FIRST 0
r=$(q "$L" "trim $P")
check "trim $P on leader $L: $r" [ "$r" = ok ]
for i in 1 2 3; do
    deadline=$((SECONDS + WAIT))
    while [ "$(stat_field "$i" $F_FIRST)" != "$P" ] && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
    s=$(q "$i" status)
    check "node $i's log starts at $P now: $s" st_eq "$s" $F_FIRST "$P"
    check "and its state machine goes on applying" st_eq "$s" $F_NEEDS 0
done
r=$(q "$L" "trim 5")
check "a trim behind the current point succeeds: $r" [ "$r" = ok ]
s=$(q "$L" status)
check "and does nothing: $s" st_eq "$s" $F_FIRST "$P"
r=$(q 2 "get k3")
check "a key written before the trim point is still in the table: $r" [ "$r" = "value value-3" ]
writes 300 400 1 2 3
KEYS=400
check "100 more writes after the trim all applied ($BAD not: $(head -c 200 "$T/bad"))" [ "$BAD" = 0 ]

# ---- c. node 3 wiped: back by snapshot install ----
kv_kill 3
rm -rf "$T/n3"
check "node 3 killed with -9 and its data directory wiped" [ ! -e "$T/n3" ]
writes 400 430 1 2
KEYS=430
check "30 writes while node 3 is away all applied ($BAD not)" [ "$BAD" = 0 ]
ref=$(q 1 digest)
target=$(cut -d' ' -f4 <<<"$ref")
say "node 1: $ref"
kv_start 3
t0=$SECONDS
check "wiped node 3 applies up to $target again within $INSTALL_WAIT s (snapshot install)" \
    caught_up 3 "$target" "$INSTALL_WAIT"
say "node 3 took $((SECONDS - t0)) s"
s=$(q 3 status)
say "node 3: $s"
check "node 3's log starts at the trim point $P: it could not replay from 0" st_eq "$s" $F_FIRST "$P"
check "node 3 installed a snapshot from a peer" st_ge "$s" $F_INSTALLED 1
check "its snapshot covers the trimmed records (before $P or later)" st_ge "$s" $F_SNAP "$P"
check "node 3 needs no snapshot any more" st_eq "$s" $F_NEEDS 0
check "node 3 holds the same table as nodes 1 and 2" same_table 1 2 3
r=$(q 3 "set k430 value-430")
check "a write through node 3 is applied there: $r" [ "${r%% *}" = ok ]
r=$(q 1 "get k430")
check "and node 1 reads it: $r" [ "$r" = "value value-430" ]
KEYS=431

# ---- d. a fourth node added after the trim ----
: >"$T/out4"
kv_join
sleep 0.5
check "node 4 runs, started with --join" alive 4
s=$(q 4 status)
check "node 4 holds nothing yet: $s" st_eq "$s" $F_APPLIED 0
L=$(leader_of 1) || { not_ok "a leader is known"; finish; }
r=$(q "$L" "add 4 $(addr 4)" 90)
check "add 4 $(addr 4) on leader $L: $r" [ "$r" = ok ]
r=$(q "$L" "add 4 $(addr 4)")
check "adding it again is refused: $r" grep -q "^error RLOG_EINVAL: add: " <<<"$r"
writes 431 461 1 2 3
KEYS=461
check "30 writes through nodes 1-3 with node 4 a member all applied ($BAD not)" [ "$BAD" = 0 ]
ref=$(q 1 digest)
target=$(cut -d' ' -f4 <<<"$ref")
t0=$SECONDS
check "added node 4 applies up to $target within $INSTALL_WAIT s (snapshot install)" \
    caught_up 4 "$target" "$INSTALL_WAIT"
say "node 4 took $((SECONDS - t0)) s"
s=$(q 4 status)
say "node 4: $s"
check "node 4's log starts at the trim point $P" st_eq "$s" $F_FIRST "$P"
check "node 4 installed a snapshot from a peer" st_ge "$s" $F_INSTALLED 1
check "its snapshot covers the trimmed records (before $P or later)" st_ge "$s" $F_SNAP "$P"
check "node 4 needs no snapshot any more" st_eq "$s" $F_NEEDS 0
check "node 4 holds the same table as nodes 1-3" same_table 1 2 3 4
r=$(q 4 "set k461 value-461")
check "a write through node 4 is applied there: $r" [ "${r%% *}" = ok ]
r=$(q 2 "get k461")
check "and node 2 reads it: $r" [ "$r" = "value value-461" ]
KEYS=462

# ---- e. the leader killed: the rest go on; it comes back ----
L=$(leader_of 1) || { not_ok "a leader is known"; finish; }
kv_kill "$L"
rest=()
for i in 1 2 3 4; do [ "$i" = "$L" ] || rest+=("$i"); done
say "killed leader $L with -9; nodes ${rest[*]} go on (writing at once, through the election)"
writes 462 492 "${rest[@]}"
KEYS=492
check "30 writes through nodes ${rest[*]} after its death all applied ($BAD not: $(head -c 200 "$T/bad"))" \
    [ "$BAD" = 0 ]
NL=$(leader_of "${rest[0]}")
check "node ${rest[0]} follows a new leader: ${NL:-none}" [ "${NL:-$L}" != "$L" ]
check "nodes ${rest[*]} hold the same table" same_table "${rest[@]}"
ref=$(q "${rest[0]}" digest)
target=$(cut -d' ' -f4 <<<"$ref")
kv_restart "$L"
check "node $L, restarted, applies up to $target" caught_up "$L" "$target" "$INSTALL_WAIT"
# A node that came in by install, restarted: it restores the copy it keeps
# (the installed snapshot or a later one of its own) with no new install.
if [ "$L" != 4 ]; then
    kv_kill 4
    writes 492 502 1 2 3
    KEYS=502
    check "10 writes while node 4 is away all applied ($BAD not)" [ "$BAD" = 0 ]
    ref=$(q 1 digest)
    target=$(cut -d' ' -f4 <<<"$ref")
    kv_restart 4
    check "node 4, killed with -9 and restarted, applies up to $target" \
        caught_up 4 "$target" "$INSTALL_WAIT"
    s=$(q 4 status)
    check "from a snapshot of its own directory, with no new install: $s" st_eq "$s" $F_INSTALLED 0
fi

# ---- every node, the same table ----
check "all four nodes hold the same table" same_table 1 2 3 4
d=$(digest "$L")
check "of $KEYS keys ($d)" [ "${d#* }" = $KEYS ]
for i in 1 2 3 4; do
    if applying "$i"; then
        r=$(q "$i" "get k$((KEYS - 1))")
        check "node $i serves the last write: $r" [ "$r" = "value value-$((KEYS - 1))" ]
    else
        not_ok "node $i serves the last write (not asked: it is not applying)"
    fi
done
for i in 1 2 3 4; do echo quit >&"${FD[$i]}"; done
for i in 1 2 3 4; do
    wait_exit "${NODE_PID[$i]}"; rc=$?
    NODE_PID[$i]=""
    check "node $i closes cleanly on quit (exit $rc)" [ $rc -eq 0 ]
done
finish
