#!/bin/bash
# run-cluster.sh — `make run`: a 3-node liblog cluster on this host, driven
# step by step with rlogctl: elect, append through the leader, read on a
# follower, kill -9 the leader, elect again, append, restart the old leader,
# watch it catch up, read the new records on it, stop everything.
#
# Everything lives in a mktemp -d directory on 127.0.0.1 ports chosen free.
# The nodes talk mutual TLS 1.3: examples/mkcerts.sh makes a throwaway CA and
# one certificate per node (naming cluster "run" and the node's id) in
# DIR/certs first.
# Every wait is bounded (WAIT seconds, default 20); any failure stops the run
# with a message and a non-zero exit, and the trap kills what is left.
# Environment: RLOGCTL (default build/examples/rlogctl), WAIT, KEEP=1 to keep
# the directory (data and node logs).
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
RLOGCTL=${RLOGCTL:-$ROOT/build/examples/rlogctl}
MKCERTS=$ROOT/examples/mkcerts.sh
WAIT=${WAIT:-20}
STEPS=9
STEP=0
declare -A PID=()

[ -x "$RLOGCTL" ] || { echo "run-cluster: $RLOGCTL is not built" >&2; exit 1; }
DIR=$(mktemp -d "${TMPDIR:-/tmp}/rlog-cluster.XXXXXX") || exit 1

cleanup() {
    local rc=$? p
    trap - EXIT INT TERM
    for p in "${PID[@]}"; do [ -n "$p" ] && kill -9 "$p" 2>/dev/null; done
    wait 2>/dev/null
    if [ $rc -ne 0 ] || [ "${KEEP:-0}" = 1 ]; then
        echo "run-cluster: data and node logs kept in $DIR"
    else
        rm -rf "$DIR"
    fi
    exit $rc
}
trap cleanup EXIT
trap 'echo "run-cluster: interrupted"; exit 130' INT TERM

step() { STEP=$((STEP + 1)); echo "[$STEP/$STEPS] $*"; }
info() { echo "      $*"; }
die() {
    echo "run-cluster: FAILED at step $STEP: $*" >&2
    local i
    for i in 1 2 3; do
        [ -f "$DIR/n$i.log" ] && { echo "--- node $i log (last lines):" >&2; tail -n 8 "$DIR/n$i.log" >&2; }
    done
    exit 1
}

ctl() { echo "$DIR/n$1/control.sock"; }
field() { "$RLOGCTL" status --control "$(ctl "$1")" --timeout 3 2>/dev/null | awk -v k="$2" '$1 == k { print $2; exit }'; }
alive() { [ -n "${PID[$1]:-}" ] && kill -0 "${PID[$1]}" 2>/dev/null; }

port_free() {
    if command -v ss >/dev/null 2>&1; then
        [ -z "$(ss -Htan "( sport = :$1 )" 2>/dev/null)" ]
    else
        ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
    fi
}

start() { # start I
    local i=$1 deadline=$((SECONDS + WAIT))
    mkdir -p "$DIR/n$i"
    "$RLOGCTL" node --id "$i" --data "$DIR/n$i" --cluster "$CLUSTER" --cluster-name run \
        --peer-trusted-ca-file "$DIR/certs/ca.crt" --peer-cert-file "$DIR/certs/node-$i.crt" \
        --peer-key-file "$DIR/certs/node-$i.key" >>"$DIR/n$i.log" 2>&1 &
    PID[$i]=$!
    while [ -z "$(field "$i" role)" ]; do
        alive "$i" || die "node $i exited: $(tail -n 3 "$DIR/n$i.log")"
        [ $SECONDS -lt $deadline ] || die "node $i did not answer within $WAIT s"
        sleep 0.1
    done
    info "node $i running (pid ${PID[$i]}, 127.0.0.1:${PORT[$i]}, log $DIR/n$i.log)"
}

wait_leader() { # wait_leader [EXCLUDE] -> sets LEADER
    local ex=${1:-0} deadline=$((SECONDS + WAIT)) i
    while [ $SECONDS -lt $deadline ]; do
        for i in 1 2 3; do
            [ "$i" = "$ex" ] && continue
            alive "$i" && [ "$(field "$i" role)" = leader ] && { LEADER=$i; return 0; }
        done
        sleep 0.2
    done
    die "no leader elected within $WAIT s"
}

append() { # append I RECORD... -> prints offsets
    local out rc
    out=$("$RLOGCTL" append --control "$(ctl "$1")" --timeout 10 "${@:2}" 2>&1); rc=$?
    [ $rc -eq 0 ] || die "append through node $1 failed (exit $rc): $out"
    echo "$out"
}

wait_commit() { # wait_commit I N
    local deadline=$((SECONDS + WAIT)) c
    while :; do
        c=$(field "$1" commit_offset)
        [ -n "$c" ] && [ "$c" -ge "$2" ] && return 0
        [ $SECONDS -lt $deadline ] || die "node $1 commit_offset is ${c:-?}, not $2, after $WAIT s"
        sleep 0.1
    done
}

# ---- 1. start
base=$((20000 + RANDOM % 12000)) # below the ephemeral range
for ((t = 0; t < 50; t++)); do
    port_free $base && port_free $((base + 1)) && port_free $((base + 2)) && break
    base=$((20000 + RANDOM % 12000)) # below the ephemeral range
done
PORT=([1]=$base [2]=$((base + 1)) [3]=$((base + 2)))
CLUSTER="1=127.0.0.1:${PORT[1]},2=127.0.0.1:${PORT[2]},3=127.0.0.1:${PORT[3]}"
step "starting 3 nodes in $DIR (cluster $CLUSTER, mutual TLS)"
"$MKCERTS" "$DIR/certs" run 1 2 3 || die "mkcerts.sh failed (is openssl installed?)"
info "CA and node certificates in $DIR/certs"
for i in 1 2 3; do start $i; done

# ---- 2. leader
step "waiting for a leader"
wait_leader
info "node $LEADER is the leader (term $(field "$LEADER" term))"
F=$((LEADER % 3 + 1))

# ---- 3. append
step "appending 5 records through leader $LEADER"
offs=$(append "$LEADER" "hello" "from" "liblog" "record four" "record five") || exit 1
first=$(head -n 1 <<<"$offs"); last=$(tail -n 1 <<<"$offs")
info "offsets $first..$last"

# ---- 4. read on a follower
step "reading offsets $first-$last back through follower $F"
wait_commit "$F" $((last + 1))
"$RLOGCTL" read --control "$(ctl "$F")" "$first-$last" | sed 's/^/      /'
[ "${PIPESTATUS[0]}" -eq 0 ] || die "read on follower $F failed"

# ---- 5. status
step "cluster status"
for i in 1 2 3; do
    info "node $i: $("$RLOGCTL" status --control "$(ctl "$i")" --json)"
done
[ "$(field 1 peer_security)" = tls ] || die "node 1 does not report peer_security tls"
info "peers talk mutual TLS (peer_security tls)"

# ---- 6. kill the leader
OLD=$LEADER
step "killing leader $OLD (pid ${PID[$OLD]}) with SIGKILL; waiting for a new leader"
kill -9 "${PID[$OLD]}"; wait "${PID[$OLD]}" 2>/dev/null; PID[$OLD]=""
wait_leader "$OLD"
info "node $LEADER is the new leader (term $(field "$LEADER" term))"

# ---- 7. append through the new leader
step "appending 3 records through new leader $LEADER"
offs=$(append "$LEADER" "after the crash" "still" "here") || exit 1
nfirst=$(head -n 1 <<<"$offs"); nlast=$(tail -n 1 <<<"$offs")
info "offsets $nfirst..$nlast"

# ---- 8. restart the old leader
step "restarting node $OLD; waiting until it has caught up"
start "$OLD"
target=$(field "$LEADER" commit_offset)
wait_commit "$OLD" "$target"
info "node $OLD commit_offset $(field "$OLD" commit_offset) = leader's $target; role $(field "$OLD" role)"
"$RLOGCTL" read --control "$(ctl "$OLD")" "$nfirst-$nlast" | sed 's/^/      /'
[ "${PIPESTATUS[0]}" -eq 0 ] || die "read of the new records on node $OLD failed"

# ---- 9. stop
step "stopping all nodes with SIGTERM"
for i in 1 2 3; do
    p=${PID[$i]}
    kill -TERM "$p"
    deadline=$((SECONDS + WAIT))
    while kill -0 "$p" 2>/dev/null; do
        [ $SECONDS -lt $deadline ] || die "node $i did not exit within $WAIT s of SIGTERM"
        sleep 0.1
    done
    wait "$p"; rc=$?
    PID[$i]=""
    [ $rc -eq 0 ] || die "node $i exited with status $rc: $(tail -n 2 "$DIR/n$i.log")"
    info "node $i stopped cleanly"
done
echo "run-cluster: all $STEPS steps passed"
