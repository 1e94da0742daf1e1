#!/usr/bin/env bash
# The nemesis test (issue 6): three node processes on 127.0.0.1 under a
# bounded client load, while a nemesis kills -9 and restarts nodes, pauses
# and resumes them (SIGSTOP/SIGCONT), and cuts, blackholes or delays their
# traffic through a proxy in front of each node; then everything is healed,
# the cluster must converge, and check.py checks the client histories against
# every node's final log.
#
#   test/nemesis/run.sh [DURATION_SECONDS] [SEED]
#
# Environment: DURATION (default 20), SEED (default: random), NEMESIS_NODE,
# PROXY (built binaries; default build/nemesis/...), THREADS (client threads,
# default 4), KEEP=1 keeps the directory (always kept on failure).
# Last line: "nemesis: N passed, N failed"; exit status 1 on any failure.
set -u

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
DURATION=${1:-${DURATION:-20}}
SEED=${2:-${SEED:-$(( (RANDOM << 15) | RANDOM ))}}
NODE_BIN=${NEMESIS_NODE:-$ROOT/build/nemesis/nemesis_node}
PROXY_BIN=${PROXY:-$ROOT/build/nemesis/proxy}
THREADS=${THREADS:-4}
N=3
CONVERGE_WAIT=${CONVERGE_WAIT:-90}
RANDOM=$SEED

for b in "$NODE_BIN" "$PROXY_BIN"; do
    if [ ! -x "$b" ]; then
        echo "nemesis: $b not built (make nemesis builds it)"
        echo "nemesis: 0 passed, 1 failed"
        exit 1
    fi
done

T=$(mktemp -d "${TMPDIR:-/tmp}/rlog-nemesis.XXXXXX") || exit 1
START_NS=$(date +%s%N)
declare -a NODE_PID PROXY_PID STATE
CLIENT_PID=""
FINISHED=0

ts() { local now; now=$(date +%s%N); printf '%d.%03d' $(( (now - START_NS) / 1000000000 )) $(( (now - START_NS) / 1000000 % 1000 )); }
say() { echo "[+$(ts)s] $*" | tee -a "$T/nemesis.log"; }

cleanup() {
    local rc=$?
    trap - EXIT TERM INT
    local p
    {
        for p in "${NODE_PID[@]}"; do [ -n "$p" ] && kill -CONT "$p"; done
        for p in $CLIENT_PID "${NODE_PID[@]}" "${PROXY_PID[@]}"; do
            [ -n "$p" ] && kill -9 "$p"
        done
        wait
    } 2>/dev/null
    if [ "$FINISHED" = 0 ]; then
        echo "nemesis: interrupted or failed before the check (exit $rc)"
        echo "nemesis: 0 passed, 1 failed"
        [ "$rc" = 0 ] && rc=1
    fi
    if [ "$rc" != 0 ] || [ "${KEEP:-0}" = 1 ]; then
        echo "nemesis: seed $SEED; logs kept in $T"
    else
        rm -rf "$T"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 1' TERM INT

# Ports: node i listens on PORT_BASE+i (remapped by NEMESIS_BIND_MAP); the
# cluster configuration lists the proxy port PORT_BASE+10+i for node i.
pick_base() {
    local tries=0 base i busy
    while [ $tries -lt 50 ]; do
        # below the ephemeral range (32768-), which outgoing connections use
        base=$(( 20000 + (($$ + tries * 7919 + SEED) % 120) * 100 ))
        busy=0
        for i in 1 2 3 11 12 13; do
            if (exec 3<>/dev/tcp/127.0.0.1/$((base + i))) 2>/dev/null; then busy=1; break; fi
        done
        [ $busy = 0 ] && { echo $base; return; }
        tries=$((tries + 1))
    done
    echo 0
}
BASE=$(pick_base)
if [ "$BASE" = 0 ]; then echo "nemesis: no free ports"; exit 1; fi
real_port() { echo $((BASE + $1)); }
proxy_port() { echo $((BASE + 10 + $1)); }
CLUSTER=""
for i in $(seq 1 $N); do CLUSTER="$CLUSTER${CLUSTER:+,}$i=127.0.0.1:$(proxy_port "$i")"; done
CONTROLS=""
for i in $(seq 1 $N); do CONTROLS="$CONTROLS${CONTROLS:+,}$T/n$i.sock"; done

# Small snapshot window and segments, so catch-up by segment fetch and
# segment rollover happen under the nemesis too.
SNAP_T=$(( 16 + RANDOM % 64 ))
SNAP_L=$(( 16 + RANDOM % 128 ))
SEG=$(( (256 + RANDOM % 1024) * 4096 ))

start_node() {
    local i=$1
    echo "=== start at +$(ts)s" >> "$T/n$i.log"
    NEMESIS_BIND_MAP="$(proxy_port "$i"):$(real_port "$i")" \
        "$NODE_BIN" node --id "$i" --data "$T/n$i" --cluster "$CLUSTER" \
        --control "$T/n$i.sock" -v --snapshot-threshold $SNAP_T --snapshot-trailing $SNAP_L \
        --segment-size $((SEG > 1114112 ? SEG : 1114112 + 4096 * 16)) \
        >> "$T/n$i.log" 2>&1 &
    NODE_PID[$i]=$!
    STATE[$i]=up
    echo "$i start $(stat -c %s "$T/n$i.log")" >> "$T/events"
}

set_rule() { # proxy index, rule
    printf '%s\n' "$2" > "$T/p$1.rule.tmp" && mv "$T/p$1.rule.tmp" "$T/p$1.rule"
}

node_status() { "$NODE_BIN" status "$T/n$1.sock" 2>/dev/null; }
leader_of() { # prints the id of a node that says it leads, or nothing
    local i
    for i in $(seq 1 $N); do
        [ "${STATE[$i]}" = up ] || continue
        node_status "$i" | grep -q ' role=leader ' && { echo "$i"; return; }
    done
}

say "seed $SEED, duration ${DURATION}s, dir $T, ports $BASE+{1..3} behind proxies $BASE+{11..13}"
say "snapshot threshold $SNAP_T trailing $SNAP_L"
for i in $(seq 1 $N); do
    set_rule "$i" pass
    "$PROXY_BIN" "$(proxy_port "$i")" "$(real_port "$i")" "$T/p$i.rule" >> "$T/p$i.log" 2>&1 &
    PROXY_PID[$i]=$!
done
for i in $(seq 1 $N); do start_node "$i"; done

# Wait (bounded) for a leader before the load starts.
for _ in $(seq 1 100); do [ -n "$(leader_of)" ] && break; sleep 0.2; done
say "leader at start: $(leader_of)"

MAX_OPS=$(( DURATION * 400 + 1000 ))
"$NODE_BIN" client --controls "$CONTROLS" --history "$T/history" --client-id 1 \
    --threads "$THREADS" --duration "$DURATION" --max-ops "$MAX_OPS" --seed "$SEED" \
    --op-timeout 4000 > "$T/client.out" 2>&1 &
CLIENT_PID=$!

# ---- the nemesis -----------------------------------------------------------
# Faults: kill (kill -9, restart later), pause (SIGSTOP, SIGCONT later),
# isolate (the node's inbound and outbound links dropped), cutin (only its
# inbound dropped: it still talks, nobody answers), blackhole (its links
# swallow bytes), delay (its inbound traffic delayed). At most two faults at
# once; each heals after 0.3-4 s. Nodes are picked at random, the leader
# preferred half of the time.
declare -a HEAL_AT FAULT
for i in $(seq 1 $N); do HEAL_AT[$i]=0; FAULT[$i]=""; done
now_ms() { echo $(( ($(date +%s%N) - START_NS) / 1000000 )); }
N_FAULTS=0
declare -A FAULT_COUNT=()

heal() {
    local i=$1 f=${FAULT[$1]} j
    case "$f" in
    kill)
        start_node "$i"
        say "restart node $i (pid ${NODE_PID[$i]})" ;;
    pause)
        kill -CONT "${NODE_PID[$i]}" 2>/dev/null
        say "SIGCONT node $i" ;;
    isolate|cutin|blackhole|delay)
        for j in $(seq 1 $N); do set_rule "$j" pass; done
        say "heal links of node $i" ;;
    esac
    FAULT[$i]=""
    HEAL_AT[$i]=0
}

inject() {
    local i=$1 kind=$2 dur=$3 j others
    others=""
    for j in $(seq 1 $N); do [ "$j" != "$i" ] && others="$others${others:+,}$j"; done
    case "$kind" in
    kill)
        kill -9 "${NODE_PID[$i]}" 2>/dev/null
        wait "${NODE_PID[$i]}" 2>/dev/null
        STATE[$i]=down
        echo "$i killed" >> "$T/events"
        say "kill -9 node $i (pid ${NODE_PID[$i]}) for ${dur}ms" ;;
    pause)
        kill -STOP "${NODE_PID[$i]}" 2>/dev/null
        say "SIGSTOP node $i for ${dur}ms" ;;
    isolate)
        set_rule "$i" drop
        for j in $(seq 1 $N); do [ "$j" != "$i" ] && set_rule "$j" "drop from $i"; done
        say "isolate node $i (drop $i<->{$others}) for ${dur}ms" ;;
    cutin)
        set_rule "$i" drop
        say "cut inbound traffic of node $i (drop {$others}->$i) for ${dur}ms" ;;
    blackhole)
        set_rule "$i" blackhole
        for j in $(seq 1 $N); do [ "$j" != "$i" ] && set_rule "$j" "blackhole from $i"; done
        say "blackhole node $i's links for ${dur}ms" ;;
    delay)
        local d=$(( 20 + RANDOM % 300 ))
        set_rule "$i" "delay $d"
        say "delay traffic to node $i by ${d}ms for ${dur}ms" ;;
    esac
    FAULT[$i]=$kind
    HEAL_AT[$i]=$(( $(now_ms) + dur ))
    N_FAULTS=$((N_FAULTS + 1))
    FAULT_COUNT[$kind]=$(( ${FAULT_COUNT[$kind]:-0} + 1 ))
}

# A node that exits by itself is recorded (check.py wants its log to say
# why) and started again.
check_exits() {
    local i rc
    for i in $(seq 1 $N); do
        [ "${STATE[$i]}" = up ] || continue
        if ! kill -0 "${NODE_PID[$i]}" 2>/dev/null; then
            wait "${NODE_PID[$i]}" 2>/dev/null
            rc=$?
            STATE[$i]=down
            echo "$i exited $rc" >> "$T/events"
            say "node $i exited by itself with status $rc"
            if [ "${FAULT[$i]}" = "" ] || [ "${FAULT[$i]}" != kill ]; then
                [ "${FAULT[$i]}" = pause ] && FAULT[$i]=""
                start_node "$i"
                say "restart node $i after its exit (pid ${NODE_PID[$i]})"
            fi
        fi
    done
}

KINDS=(kill kill pause pause isolate isolate cutin blackhole delay)
END_MS=$(( DURATION * 1000 ))
while [ "$(now_ms)" -lt "$END_MS" ]; do
    sleep 0.$(( 2 + RANDOM % 6 ))
    check_exits
    t=$(now_ms)
    active=0
    for i in $(seq 1 $N); do
        if [ -n "${FAULT[$i]}" ]; then
            if [ "${HEAL_AT[$i]}" -le "$t" ]; then heal "$i"; else active=$((active + 1)); fi
        fi
    done
    # inject about every second; a second concurrent fault one time in four
    [ $(( RANDOM % 2 )) = 0 ] || continue
    [ "$active" -ge 2 ] && continue
    [ "$active" -ge 1 ] && [ $(( RANDOM % 4 )) != 0 ] && continue
    kind=${KINDS[$(( RANDOM % ${#KINDS[@]} ))]}
    # link faults are global rules on the proxies: one link fault at a time
    if [ "$kind" != kill ] && [ "$kind" != pause ]; then
        busy=0
        for i in $(seq 1 $N); do case "${FAULT[$i]}" in isolate|cutin|blackhole|delay) busy=1;; esac; done
        [ $busy = 1 ] && kind=pause
    fi
    target=""
    if [ $(( RANDOM % 2 )) = 0 ]; then target=$(leader_of); fi
    [ -z "$target" ] && target=$(( 1 + RANDOM % N ))
    [ -n "${FAULT[$target]}" ] && continue
    inject "$target" "$kind" $(( 300 + RANDOM % 3700 ))
done

# ---- heal, converge, check -------------------------------------------------
say "heal everything"
for i in $(seq 1 $N); do [ -n "${FAULT[$i]}" ] && heal "$i"; done
for i in $(seq 1 $N); do set_rule "$i" pass; kill -CONT "${NODE_PID[$i]}" 2>/dev/null; done
check_exits
for i in $(seq 1 $N); do [ "${STATE[$i]}" = up ] || start_node "$i"; done

# The client stops by itself at DURATION; its ops time out after 4 s.
for _ in $(seq 1 300); do kill -0 "$CLIENT_PID" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$CLIENT_PID" 2>/dev/null; then
    say "client did not stop in time; killing it"
    kill -9 "$CLIENT_PID"
fi
wait "$CLIENT_PID" 2>/dev/null
CLIENT_PID=""
say "client: $(tail -n 1 "$T/client.out")"

# One more append through the leader (a current-term entry), then wait until
# every node reports the same commit offset and the same leader.
say "waiting up to ${CONVERGE_WAIT}s for convergence"
"$NODE_BIN" client --controls "$CONTROLS" --history "$T/history" --client-id 2 --threads 1 \
    --duration 30 --max-ops 20 --seed "$SEED" --read-pct 0 --op-timeout 4000 \
    > "$T/client2.out" 2>&1
converged=0
deadline=$(( $(now_ms) + CONVERGE_WAIT * 1000 ))
while [ "$(now_ms)" -lt "$deadline" ]; do
    check_exits
    line=""
    for i in $(seq 1 $N); do
        s=$(node_status "$i")
        line="$line ${s:-unreachable}"
        commits[$i]=$(sed -n 's/.* commit=\([0-9]*\) .*/\1/p' <<<"$s")
        lasts[$i]=$(sed -n 's/.* last=\([0-9]*\) .*/\1/p' <<<"$s")
        leaders[$i]=$(sed -n 's/.* leader=\([0-9]*\) .*/\1/p' <<<"$s")
    done
    if [ -n "${commits[1]}" ] && [ "${commits[1]}" = "${commits[2]}" ] && \
       [ "${commits[1]}" = "${commits[3]}" ] && [ "${commits[1]}" = "${lasts[1]}" ] && \
       [ "${lasts[1]}" = "${lasts[2]}" ] && [ "${lasts[1]}" = "${lasts[3]}" ] && \
       [ "${leaders[1]}" != 0 ] && [ "${leaders[1]}" = "${leaders[2]}" ] && \
       [ "${leaders[1]}" = "${leaders[3]}" ]; then
        converged=1
        break
    fi
    sleep 0.5
done
for i in $(seq 1 $N); do say "node $i: $(node_status "$i")"; done
if [ $converged = 1 ]; then say "converged at commit offset ${commits[1]}"; else say "did NOT converge within ${CONVERGE_WAIT}s"; fi

for i in $(seq 1 $N); do
    "$NODE_BIN" dump "$T/n$i.sock" "$T/dump$i" 2>>"$T/nemesis.log" || say "dump of node $i failed"
done
faults=""
for k in "${!FAULT_COUNT[@]}"; do faults="$faults $k=${FAULT_COUNT[$k]}"; done
say "faults injected: $N_FAULTS ($faults )"

# Graceful stop; a clean exit is part of the check (exit status 0 expected).
for i in $(seq 1 $N); do kill -TERM "${NODE_PID[$i]}" 2>/dev/null; done
for i in $(seq 1 $N); do
    rc=124
    for _ in $(seq 1 150); do kill -0 "${NODE_PID[$i]}" 2>/dev/null || { wait "${NODE_PID[$i]}"; rc=$?; break; }; sleep 0.1; done
    echo "$i stopped $rc" >> "$T/events"
    NODE_PID[$i]=""
done

python3 "$ROOT/test/nemesis/check.py" --dir "$T" --nodes $N --converged $converged \
    | tee "$T/check.out"
result=$(tail -n 1 "$T/check.out")
FINISHED=1
case "$result" in
"nemesis: "*" passed, 0 failed") exit 0 ;;
*) exit 1 ;;
esac
