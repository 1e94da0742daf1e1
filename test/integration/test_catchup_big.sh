#!/bin/bash
# A follower stopped while 100,000 records are appended rejoins through the
# segment-fetch path, then serves identical records; the same with the
# connection cut halfway through the fetch.
#
# Part 1: three `rlogctl node`s with tiny snapshot settings (a snapshot
# descriptor every 8 raft entries, 16 kept behind it), so a follower that
# missed 100+ entries must fetch them from a peer's segments. A follower is
# stopped (SIGTERM), 100,000 records are appended (one `rlogctl append` of
# `seq` lines: batches of at most 1000 records, one raft entry each), the
# follower restarts with -v, logs "catch-up: fetching entries ...", reaches
# the leader's commit offset, and serves byte-identical records.
#
# Part 2: a second cluster of the nemesis host (build/nemesis/nemesis_node:
# rlogctl with a bind(2) remap, NEMESIS_BIND_MAP) with a proxy
# (build/nemesis/proxy) in front of every node, so the leader's traffic to
# the follower goes through the follower's proxy. The 100,000 records are
# ~21 MB here, fetched in 4 MiB chunks; the proxy delays that traffic by
# DELAY ms (default 300) while the follower fetches, so the fetch takes
# several seconds, and once the first chunk has landed ("catch-up: got ..."
# at -v -v) the proxy drops every connection for DROP seconds (default 1.5),
# then passes again. The follower must ask again, complete the fetch, reach
# the leader's commit offset and serve identical records.
. "$(dirname "$0")/lib.sh"
NEMESIS_NODE=${NEMESIS_NODE:-$ROOT/build/nemesis/nemesis_node}
PROXY=${PROXY:-$ROOT/build/nemesis/proxy}
DELAY=${DELAY:-300}
DROP=${DROP:-1.5}
NREC=100000
# Entries needed for the fetch path: well beyond the 8 + 16 kept in memory.
MIN_ENTRIES=100
NODE_ARGS=(--snapshot-threshold 8 --snapshot-trailing 16)

not_logged() { ! grep -q -- "$2" "$T/n$1.log"; }
# logged I PATTERN: node I's first line matching PATTERN, from "catch-up:" on.
logged() { grep -m1 -- "$2" "$T/n$1.log" | sed 's/.*\(catch-up: \)/\1/'; }
# expected N [PAD]: the JSON lines `read --json` gives for the records
# "%06d-PAD" (or "%d" without PAD) 0..N-1.
expected() {
    if [ -n "${2:-}" ]; then
        seq 0 $(($1 - 1)) | awk -v p="$2" '{ printf "{\"offset\":%d,\"record\":\"%06d-%s\"}\n", $1, $1, p }'
    else
        seq 0 $(($1 - 1)) | awk '{ printf "{\"offset\":%d,\"record\":\"%d\"}\n", $1, $1 }'
    fi
}
# catch_up PART F L [PAD]: the checks after follower F restarted.
catch_up() {
    local p=$1 f=$2 l=$3 pad=${4:-} end i
    end=$(status_of "$l" commit_offset)
    check "part $p: leader $l's commit_offset is $NREC (${end:-?})" [ "${end:-0}" -eq "$NREC" ]
    WAIT=60 wait_commit "$f" "$NREC"
    check "part $p: node $f's commit_offset reaches the leader's ($(status_of "$f" commit_offset) = $NREC)" \
        [ "$(status_of "$f" commit_offset)" = "$NREC" ]
    check "part $p: node $f logs the fetch: $(logged "$f" 'catch-up: fetching entries')" \
        grep -q "catch-up: fetching entries" "$T/n$f.log"
    check "part $p: node $f logs its end: $(logged "$f" 'catch-up: fetched entries')" \
        grep -q "catch-up: fetched entries" "$T/n$f.log"
    expected "$NREC" "$pad" | sha256sum >"$T/want.sha"
    for i in 1 2 3; do
        { read_all "$i" "$NREC" 2>"$T/read$i.err" || echo "read failed"; } | sha256sum >"$T/got$i.sha"
    done
    check "part $p: leader $l serves 0..$((NREC - 1)) as appended ($(cut -c1-16 "$T/got$l.sha"))" \
        cmp -s "$T/got$l.sha" "$T/want.sha"
    for i in 1 2 3; do
        [ "$i" = "$l" ] && continue
        check "part $p: node $i serves the same records ($(cut -c1-16 "$T/got$i.sha"); $(head -c 200 "$T/read$i.err"))" \
            cmp -s "$T/got$i.sha" "$T/got$l.sha"
    done
}
# append_while_down PART L [PAD]: the 100,000 records through leader L.
append_while_down() {
    local p=$1 l=$2 pad=${3:-} i0 i1
    i0=$(status_of "$l" last_index)
    if [ -n "$pad" ]; then
        seq -f "%06g-$pad" 0 $((NREC - 1))
    else
        seq 0 $((NREC - 1))
    fi | "$RLOGCTL" append --control "$(ctl "$l")" --timeout 20 >"$T/off$p" 2>"$T/err$p"
    check "part $p: $NREC appends acknowledged ($(wc -l <"$T/off$p"); $(head -c 200 "$T/err$p"))" \
        [ "$(wc -l <"$T/off$p")" -eq "$NREC" ]
    check "part $p: at offsets 0..$((NREC - 1)) ($(head -n 1 "$T/off$p")..$(tail -n 1 "$T/off$p"))" \
        [ "$(head -n 1 "$T/off$p")-$(tail -n 1 "$T/off$p")" = "0-$((NREC - 1))" ]
    i1=$(status_of "$l" last_index)
    check "part $p: in $((i1 - i0)) raft entries (>= $MIN_ENTRIES; the leader keeps 8 + 16)" \
        [ $((i1 - i0)) -ge $MIN_ENTRIES ]
}

# ---- part 1: rlogctl nodes, plain loopback --------------------------------
start_cluster 3 || { not_ok "start a 3-node cluster (${NODE_ARGS[*]})"; finish; }
L=$(wait_leader) || { not_ok "a leader is elected"; finish; }
F=$((L % 3 + 1))
ok "part 1: node $L is the leader; follower $F will be stopped"
stop_node "$F"; rc=$?
check "part 1: follower $F stops on SIGTERM (exit $rc)" [ $rc -eq 0 ]
t0=$SECONDS
append_while_down 1 "$L"
say "part 1: appended in $((SECONDS - t0)) s; restarting node $F with -v"
check "part 1: node $F restarts" start_node "$F" -v
catch_up 1 "$F" "$L"
F1=$F

# Part 1's nodes go; their directories and logs move to $T/part1.
for i in 1 2 3; do stop_node "$i" || say "part 1: node $i exited $? on SIGTERM"; done
mkdir -p "$T/part1" && mv "$T"/n[123] "$T"/n[123].log "$T/part1/"
if [ "$FAIL" -gt 0 ]; then
    for f in "$T"/part1/n*.log; do echo "--- last lines of $f"; tail -n 15 "$f"; done
fi

# ---- part 2: nemesis hosts behind proxies, the connection cut mid-fetch ---
for b in "$NEMESIS_NODE" "$PROXY"; do
    if [ ! -x "$b" ]; then
        not_ok "part 2: $b not built (make build/nemesis/nemesis_node build/nemesis/proxy)"
        finish
    fi
done
# Six ports: node i really listens on REAL[i-1] and advertises PX[i-1],
# where its proxy listens.
pick_ports 6 || { not_ok "part 2: six free ports"; finish; }
REAL=("${PORTS[@]:0:3}")
PX=("${PORTS[@]:3:3}")
PORTS=("${PX[@]}")
# shellcheck disable=SC2034 # read by lib.sh
N_NODES=3
CLUSTER=""
for i in 1 2 3; do CLUSTER+="${CLUSTER:+,}$i=127.0.0.1:${PX[$((i - 1))]}"; done
set_rule() { # set_rule I RULE: the rule of node I's proxy
    printf '%s\n' "$2" >"$T/p$1.rule.tmp" && mv "$T/p$1.rule.tmp" "$T/p$1.rule"
}
declare -A PROXY_PID=()
start_proxy() { # start_proxy I: node I's proxy, with the rule in $T/pI.rule
    "$PROXY" "${PX[$(($1 - 1))]}" "${REAL[$(($1 - 1))]}" "$T/p$1.rule" >>"$T/p$1.log" 2>&1 &
    PROXY_PID[$1]=$!
    EXTRA_PIDS+=($!)
}
stop_proxy() { # stop_proxy I: SIGTERM, bounded wait
    local p=${PROXY_PID[$1]} deadline=$((SECONDS + WAIT)) keep=() x
    kill -TERM "$p" 2>/dev/null
    while kill -0 "$p" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.05; done
    kill -9 "$p" 2>/dev/null
    wait "$p" 2>/dev/null
    for x in "${EXTRA_PIDS[@]}"; do [ "$x" != "$p" ] && keep+=("$x"); done
    EXTRA_PIDS=("${keep[@]}")
    PROXY_PID[$1]=""
}
for i in 1 2 3; do set_rule "$i" pass; start_proxy "$i"; done
# start_proxied I [extra args]: lib.sh's start_node, with the nemesis host
# (whose `status` command is not rlogctl's) and node I's bind remap.
start_proxied() {
    local i=$1; shift
    mkdir -p "$T/n$i"
    NEMESIS_BIND_MAP="${PX[$((i - 1))]}:${REAL[$((i - 1))]}" \
        "$NEMESIS_NODE" node --id "$i" --data "$T/n$i" --cluster "$CLUSTER" "${NODE_ARGS[@]}" "$@" \
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
for i in 1 2 3; do
    start_proxied "$i" || { not_ok "part 2: start node $i behind its proxy"; finish; }
done
L=$(wait_leader) || { not_ok "part 2: a leader is elected"; finish; }
F=$((L % 3 + 1))
[ "$F" = "$F1" ] && F=$((F % 3 + 1))
ok "part 2: node $L is the leader; follower $F will be stopped, the leader's traffic to it goes through proxy :${PX[$((F - 1))]}"
stop_node "$F"; rc=$?
check "part 2: follower $F stops on SIGTERM (exit $rc)" [ $rc -eq 0 ]
# Its proxy stays up: the leader's connections to it are accepted and then
# closed, so an InstallSnapshot can be lost on the way; liblog sets libraft's
# install_snapshot_timeout to four election timeouts (not 30 s) for that.
PAD=$(printf 'x%.0s' $(seq 1 200))
t0=$SECONDS
append_while_down 2 "$L" "$PAD"
say "part 2: appended in $((SECONDS - t0)) s; restarting node $F with -v -v, then its proxy, delaying its inbound traffic by $DELAY ms"
wait_proxy() { # wait_proxy I TEXT: until proxy I logs TEXT
    local deadline=$((SECONDS + WAIT))
    while [ $SECONDS -lt $deadline ]; do
        grep -qF -- "$2" "$T/p$1.log" && return 0
        sleep 0.02
    done
    return 1
}
set_rule "$F" "delay $DELAY"
check "part 2: node $F's proxy has the delay rule" wait_proxy "$F" "rule: delay $DELAY"
check "part 2: node $F restarts" start_proxied "$F" -v -v
if wait_log "$F" "catch-up: got [0-9]* entries"; then
    set_rule "$F" drop
    wait_proxy "$F" "rule: drop"
    got=$(sed -n 's/.*catch-up: got \([0-9]*\) entries.*/\1/p' "$T/n$F.log" | awk '{ s += $1 } END { print s + 0 }')
    target=$(grep -m1 "catch-up: fetching entries" "$T/n$F.log" | sed 's/.*fetching entries [0-9]*\.\.\([0-9]*\) .*/\1/')
    check "part 2: the connection is cut mid-fetch (after $got of ${target:-?} entries)" \
        not_logged "$F" "catch-up: fetched entries"
    sleep "$DROP"
    set_rule "$F" pass
    say "part 2: connections to node $F passed again after ${DROP} s; $(grep -c 'dropped by rule' "$T/p$F.log") dropped by the proxy"
else
    not_ok "part 2: node $F starts fetching (first chunk logged)"
    set_rule "$F" pass
fi
catch_up 2 "$F" "$L" "$PAD"
check "part 2: node $F asked again: $(logged "$F" 'asking again')" \
    grep -q "catch-up: no answer for entry .*asking again" "$T/n$F.log"
finish
