# shellcheck shell=bash
# Shared helpers for liblog's multi-process tests (sourced, bash).
#
# Every test runs a 3-node cluster of `rlogctl node` on 127.0.0.1 in a fresh
# mktemp -d directory, bounds every wait, kills whatever it started on exit,
# and ends with one line "N passed, N failed" (exit status 1 on any failure).
# Environment: RLOGCTL (default build/examples/rlogctl), WAIT (seconds per
# wait, default 20), TEST_LIMIT (seconds for the whole test, default 180),
# KEEP=1 keeps the directory (it is always kept, and its logs' tails printed,
# when a check failed). A test that defines a function test_cleanup has it
# called on exit once its processes are gone, before the directory goes
# (to unmount what it mounted there).
set -u

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
RLOGCTL=${RLOGCTL:-$ROOT/build/examples/rlogctl}
WAIT=${WAIT:-20}
TEST_LIMIT=${TEST_LIMIT:-180}
TEST_NAME=$(basename "$0" .sh)
PASS=0
FAIL=0
declare -A NODE_PID=()
# extra `rlogctl node` options for every node a test starts; RLOG_NODE_ARGS
# (words) starts them with, so one test can run again another way
# (test_host_*.sh: over a host's shared transport)
read -ra NODE_ARGS <<<"${RLOG_NODE_ARGS:-}"
EXTRA_PIDS=()
PORTS=()
CLUSTER=""
N_NODES=3
FINISHED=0

if [ ! -x "$RLOGCTL" ]; then
    echo "$TEST_NAME: $RLOGCTL not built (make build/examples/rlogctl)"
    echo "0 passed, 1 failed"
    exit 1
fi

T=$(mktemp -d "${TMPDIR:-/tmp}/rlog-$TEST_NAME.XXXXXX") || exit 1

say() { echo "$TEST_NAME: $*"; }
ok() { PASS=$((PASS + 1)); echo "ok - $*"; }
not_ok() { FAIL=$((FAIL + 1)); echo "not ok - $*"; }
# check DESCRIPTION COMMAND...: ok if the command succeeds.
check() { local d=$1; shift; if "$@"; then ok "$d"; else not_ok "$d"; fi; }

cleanup() {
    local rc=$?
    trap - EXIT TERM INT USR1
    [ -n "${WATCHDOG:-}" ] && kill "$WATCHDOG" 2>/dev/null
    local p
    {
        for p in "${EXTRA_PIDS[@]}" "${NODE_PID[@]}"; do
            [ -n "$p" ] && kill -9 "$p"
        done
        wait
    } 2>/dev/null
    if declare -F test_cleanup >/dev/null; then test_cleanup 2>/dev/null; fi
    if [ "$FINISHED" = 0 ]; then
        not_ok "$TEST_NAME ended early (exit $rc)"
        echo "$PASS passed, $FAIL failed"
    fi
    if [ "$FAIL" -gt 0 ]; then
        local f
        for f in "$T"/n*.log; do
            [ -f "$f" ] || continue
            echo "--- last lines of $f"
            tail -n 15 "$f"
        done
        echo "$TEST_NAME: logs kept in $T"
    elif [ "${KEEP:-0}" = 1 ]; then
        echo "$TEST_NAME: kept $T"
    else
        rm -rf "$T"
    fi
    [ "$FAIL" -eq 0 ] && [ "$FINISHED" = 1 ]
    exit $?
}
on_timeout() {
    not_ok "$TEST_NAME did not finish within $TEST_LIMIT s"
    FINISHED=1
    echo "$PASS passed, $FAIL failed"
    exit 1
}
trap cleanup EXIT
trap 'exit 1' TERM INT
trap on_timeout USR1
# The watchdog: a subshell that signals us after TEST_LIMIT seconds and,
# when killed by cleanup, takes its sleep with it.
(
    trap 'kill "$s" 2>/dev/null; exit 0' TERM
    sleep "$TEST_LIMIT" & s=$!
    wait "$s" && kill -USR1 $$ 2>/dev/null
) >/dev/null 2>&1 &
WATCHDOG=$!

finish() {
    FINISHED=1
    echo "$PASS passed, $FAIL failed"
    exit 0   # cleanup decides the real status
}

port_free() {
    if command -v ss >/dev/null 2>&1; then
        [ -z "$(ss -Htan "( sport = :$1 )" 2>/dev/null)" ]
    else
        ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
    fi
}

# pick_ports N: N free consecutive-ish loopback ports into PORTS and CLUSTER.
# three_of_four: ports for four nodes; nodes 1..3 started as a 3-node
# cluster (CLUSTER=C3; C4 names all four, for a node added later); L is
# the leader. Ends the test if any step fails.
three_of_four() {
    pick_ports 4 || { not_ok "pick 4 ports"; finish; }
    C4=$CLUSTER
    C3=$(cut -d, -f1-3 <<<"$C4")
    CLUSTER=$C3
    N_NODES=3
    local i
    for i in 1 2 3; do start_node "$i" || { not_ok "start node $i"; finish; }; done
    L=$(wait_leader) || { not_ok "a leader is elected"; finish; }
}

pick_ports() {
    local n=$1 base tries=0 i
    while [ $tries -lt 50 ]; do
        tries=$((tries + 1))
        # below the ephemeral range (32768-): a node's outgoing
        # connections must not take a port another node is to listen on
        base=$((20000 + RANDOM % 12000))
        PORTS=()
        for ((i = 0; i < n; i++)); do
            port_free $((base + i)) || continue 2
            PORTS+=($((base + i)))
        done
        CLUSTER=""
        for ((i = 1; i <= n; i++)); do
            CLUSTER+="${CLUSTER:+,}$i=127.0.0.1:${PORTS[$((i - 1))]}"
        done
        N_NODES=$n
        return 0
    done
    say "no free ports found"
    return 1
}

ctl() { echo "$T/n$1/control.sock"; }
addr() { echo "127.0.0.1:${PORTS[$(($1 - 1))]}"; }
all_controls() { local i s=""; for ((i = 1; i <= N_NODES; i++)); do s+="${s:+,}$(ctl $i)"; done; echo "$s"; }

# status_of I KEY: one field of node I's plain status ("" if unreachable).
status_of() {
    "$RLOGCTL" status --control "$(ctl "$1")" --timeout 3 2>/dev/null | awk -v k="$2" '$1 == k { print $2; exit }'
}

# start_node I [extra args]: starts node I and waits until it answers status.
start_node() {
    local i=$1; shift
    mkdir -p "$T/n$i"
    "$RLOGCTL" node --id "$i" --data "$T/n$i" --cluster "$CLUSTER" ${NODE_ARGS[@]+"${NODE_ARGS[@]}"} "$@" \
        >>"$T/n$i.log" 2>&1 &
    NODE_PID[$i]=$!
    local deadline=$((SECONDS + WAIT))
    while [ $SECONDS -lt $deadline ]; do
        if ! kill -0 "${NODE_PID[$i]}" 2>/dev/null; then
            say "node $i exited during startup; its log:"; tail -n 20 "$T/n$i.log"
            NODE_PID[$i]=""
            return 1
        fi
        [ -n "$(status_of "$i" role)" ] && return 0
        sleep 0.1
    done
    say "node $i did not answer status within $WAIT s"
    return 1
}

start_cluster() {
    local i
    pick_ports "${1:-3}" || return 1
    for ((i = 1; i <= N_NODES; i++)); do start_node "$i" || return 1; done
}

alive() { [ -n "${NODE_PID[$1]:-}" ] && kill -0 "${NODE_PID[$1]}" 2>/dev/null; }

# wait_leader [EXCLUDE]: prints the id of the leader once a live node (not
# EXCLUDE) reports role leader and every other live node names it.
wait_leader() {
    local ex=${1:-0} deadline=$((SECONDS + WAIT)) i l
    while [ $SECONDS -lt $deadline ]; do
        l=""
        for ((i = 1; i <= N_NODES; i++)); do
            [ "$i" = "$ex" ] && continue
            alive "$i" || continue
            [ "$(status_of "$i" role)" = leader ] && l=$i
        done
        if [ -n "$l" ]; then
            local agree=1
            for ((i = 1; i <= N_NODES; i++)); do
                { [ "$i" = "$ex" ] || [ "$i" = "$l" ] || ! alive "$i"; } && continue
                [ "$(status_of "$i" leader)" = "$l" ] || agree=0
            done
            [ $agree = 1 ] && { echo "$l"; return 0; }
        fi
        sleep 0.2
    done
    return 1
}

# wait_commit I N: until node I's commit_offset >= N.
wait_commit() {
    local deadline=$((SECONDS + WAIT)) c
    while [ $SECONDS -lt $deadline ]; do
        c=$(status_of "$1" commit_offset)
        [ -n "$c" ] && [ "$c" -ge "$2" ] && return 0
        sleep 0.1
    done
    say "node $1: commit_offset ${c:-?} did not reach $2 within $WAIT s"
    return 1
}

# wait_first I OFF: until node I's first_offset is OFF.
wait_first() {
    local deadline=$((SECONDS + WAIT))
    while [ $SECONDS -lt $deadline ]; do
        [ "$(status_of "$1" first_offset)" = "$2" ] && return 0
        sleep 0.1
    done
    say "node $1: first_offset $(status_of "$1" first_offset), not $2, after $WAIT s"
    return 1
}

# stop_node I [SIGNAL]: SIGTERM (or SIGNAL), bounded wait; returns the
# exit status (or 124).
stop_node() {
    local i=$1 p=${NODE_PID[$1]:-} deadline=$((SECONDS + WAIT)) sig=${2:-TERM}
    [ -z "$p" ] && return 0
    kill -"$sig" "$p" 2>/dev/null
    while kill -0 "$p" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
    if kill -0 "$p" 2>/dev/null; then
        say "node $i ignored SIGTERM for $WAIT s; killing it"
        kill -9 "$p"; wait "$p" 2>/dev/null; NODE_PID[$i]=""
        return 124
    fi
    wait "$p"; local rc=$?
    NODE_PID[$i]=""
    return $rc
}

kill_node() {
    local p=${NODE_PID[$1]:-}
    [ -n "$p" ] && { kill -9 "$p"; wait "$p"; } 2>/dev/null
    NODE_PID[$1]=""
}

# read_all I N: node I's records 0..N-1 as JSON lines into stdout.
read_all() {
    [ "$2" -eq 0 ] && return 0
    "$RLOGCTL" read --control "$(ctl "$1")" --json --timeout 30 "0-$(($2 - 1))"
}

# wait_lines FILE N: until FILE has at least N lines.
wait_lines() {
    local deadline=$((SECONDS + WAIT))
    while [ $SECONDS -lt $deadline ]; do
        [ "$(wc -l 2>/dev/null <"$1" || echo 0)" -ge "$2" ] && return 0
        sleep 0.1
    done
    say "$1 has $(wc -l <"$1") lines, not $2, after $WAIT s"
    return 1
}
# wait_log I PATTERN [N]: until node I's stderr has N (default 1) lines
# matching PATTERN; polled every 20 ms, since tests act on these lines.
wait_log() {
    local n=${3:-1} deadline=$((SECONDS + WAIT))
    while [ $SECONDS -lt $deadline ]; do
        [ "$(grep -c -- "$2" "$T/n$1.log")" -ge "$n" ] && return 0
        sleep 0.02
    done
    say "node $1's log has no $n lines matching '$2' after $WAIT s"
    return 1
}
# wait_exit PID: bounded wait for a background process; its exit status.
wait_exit() {
    local deadline=$((SECONDS + WAIT))
    while kill -0 "$1" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
    if kill -0 "$1" 2>/dev/null; then kill -9 "$1" 2>/dev/null; wait "$1" 2>/dev/null; return 124; fi
    wait "$1"
}

# bad_node DESCRIPTION PATTERN ARGS...: `rlogctl node ARGS` must refuse to
# run: exit non-zero by itself (not killed by a signal, such as an abort)
# within WAIT seconds, printing a message matching PATTERN (egrep, -i).
# Its output stays in $T/bad.out.
bad_node() {
    local d=$1 pat=$2; shift 2
    # A subshell of two commands, so that the shell reporting a signal
    # ("Aborted") is that subshell, writing to the file.
    (timeout -k 2 "$WAIT" "$RLOGCTL" node "$@"; exit $?) >"$T/bad.out" 2>&1; local rc=$?
    local msg; msg=$(grep -v -e '^ *$' -e ' Aborted ' "$T/bad.out" | head -n 1)
    if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then not_ok "$d: still running after $WAIT s"; return; fi
    if [ $rc -eq 0 ]; then not_ok "$d: exit 0"; return; fi
    if [ $rc -gt 128 ]; then not_ok "$d: killed by signal $((rc - 128)) (exit $rc): $msg"; return; fi
    if grep -Eiq "$pat" "$T/bad.out"; then
        ok "$d: exit $rc: $msg"
    else
        not_ok "$d: exit $rc, but no message matching /$pat/: $msg"
    fi
}

# ---- example programs driven through their stdin (kv, events) ----
declare -A FD=()
# stdin_start I PROGRAM ARGS...: node I reading commands from the fifo
# $T/in$I (kept open here on fd FD[I]), answers appended to $T/out$I,
# stderr to $T/n$I.log.
stdin_start() {
    local i=$1 fd
    shift
    rm -f "$T/in$i"
    mkfifo "$T/in$i"
    "$@" <"$T/in$i" >>"$T/out$i" 2>>"$T/n$i.log" &
    NODE_PID[$i]=$!
    exec {fd}>"$T/in$i"
    FD[$i]=$fd
}
# ask I COMMAND: sends it and prints its answer (bounded wait). One
# command at a time per node, so its answer is the next line.
ask() {
    local i=$1 n
    n=$(($(wc -l <"$T/out$i") + 1))
    echo "$2" >&"${FD[$i]}"
    wait_lines "$T/out$i" "$n" >&2 || return 1
    sed -n "${n}p" "$T/out$i"
}

# ---- named cursors through rlogctl ----
# cursor_get I NAME: node I's value ("" and the exit status in $T/rc).
cursor_get() {
    "$RLOGCTL" cursor-get --control "$(ctl "$1")" --timeout 5 "$2" 2>"$T/gerr"
    echo $? >"$T/rc"
}
# wait_cursor I NAME VALUE: until node I reads VALUE for NAME.
wait_cursor() {
    local deadline=$((SECONDS + WAIT)) v
    while [ $SECONDS -lt $deadline ]; do
        v=$(cursor_get "$1" "$2")
        [ "$v" = "$3" ] && return 0
        sleep 0.1
    done
    say "node $1: cursor $2 is '${v}' ($(cat "$T/gerr")), not $3, after $WAIT s"
    return 1
}
