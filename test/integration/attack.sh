# shellcheck shell=bash
# Shared by the attack tests (test_attack_*.sh; sourced after lib.sh): a
# 3-node insecure loopback cluster, an attacker (forge) that sends well-formed,
# checksummed frames, and the checks every attack must pass:
#   every node alive; each node's term unchanged; no record added or removed
#   (full reads of every node compared before and after); each node's peak
#   RSS (VmHWM) below a bound derived from its configuration; and appends
#   keep working afterwards.
#
# The connection preamble: FORGE_PREAMBLE=raft speaks libraft 0.15's
# raft_uv_tcp handshake (what nodes expect before liblog's own transport),
# rlog1 (the default) liblog's 32-byte hello. Once the hello is in place, a
# non-member is refused before any frame is read: an attack may then end in
# "connection closed" instead of "frame dropped"; the checks are the same.
FORGE=${FORGE:-$ROOT/build/itest/forge}
FORGE_PREAMBLE=${FORGE_PREAMBLE:-rlog1}
export FORGE_PREAMBLE
[ -x "$FORGE" ] || { not_ok "$FORGE not built (make build/itest/forge)"; finish; }

# The nodes' memory: a 16 MiB read cache, a small raft window (16 + 16
# entries of at most batch_max_bytes = 1 MiB), and the default serving
# bounds (fetch_serve_bytes 16 MiB). CONST_MIB is the rest, as in
# test_rss.sh (executable, threads, buffers in flight): measured there at
# most ~28 MiB above cache + window; 64 gives room on a loaded machine.
CACHE_MIB=16
WINDOW_MIB=32
FETCH_SERVE_MIB=16
CONST_MIB=${CONST_MIB:-64}
RSS_LIMIT_MIB=${RSS_LIMIT_MIB:-$((CACHE_MIB + WINDOW_MIB + FETCH_SERVE_MIB + CONST_MIB))}
RSS_ASSERT=${RSS_ASSERT:-1}
NODE_ARGS=(--cache-bytes $((CACHE_MIB << 20)) --snapshot-threshold 16 --snapshot-trailing 16)
CLUSTER_NAME=""
N_RECORDS=0
L=""

# rss_kib I [VmHWM|VmRSS]: node I's memory, from /proc.
rss_kib() { awk -v k="${2:-VmHWM}:" '$1 == k { print $2 }' "/proc/${NODE_PID[$1]}/status" 2>/dev/null; }

# attack_setup [RECORDS]: cluster up, a leader in L, RECORDS records (default
# 20) committed everywhere, the cluster's name read from node 1's IDENTITY.
attack_setup() {
    local n=${1:-20}
    start_cluster 3 || { not_ok "start a 3-node cluster"; finish; }
    L=$(wait_leader) || { not_ok "a leader is elected"; finish; }
    CLUSTER_NAME=$(awk '$1 == "cluster" { print $2 }' "$T/n1/IDENTITY")
    seq 1 "$n" | sed 's/^/setup-/' | "$RLOGCTL" append --control "$(ctl "$L")" --timeout 30 >/dev/null ||
        { not_ok "append $n setup records"; finish; }
    N_RECORDS=$n
    local i
    for i in 1 2 3; do wait_commit "$i" "$n" || { not_ok "node $i commits the setup records"; finish; }; done
    ok "cluster of 3 (leader $L, cluster $CLUSTER_NAME, preamble $FORGE_PREAMBLE), $n records"
    baseline
}

# forge_to I "OPTIONS" KIND ARGS...: runs forge against node I's raft port
# (OPTIONS: forge's own, e.g. "--from 2 --count 250"); prints its last line.
forge_to() {
    local i=$1 opts=$2; shift 2
    # shellcheck disable=SC2086
    "$FORGE" --preamble "$FORGE_PREAMBLE" --cluster "$CLUSTER_NAME" $opts "$(addr "$i")" "$@" 2>&1 |
        tail -n 1
}

# The state the checks compare with: each node's term and full read.
declare -A TERM_OF=()
baseline() {
    local i
    for i in 1 2 3; do
        TERM_OF[$i]=$(status_of "$i" term)
        read_all "$i" "$N_RECORDS" >"$T/before.$i" 2>&1
        # Peak RSS from here on (Linux: 5 resets VmHWM to the current RSS),
        # so each attack is measured on its own.
        echo 5 >"/proc/${NODE_PID[$i]}/clear_refs" 2>/dev/null
    done
}

# untouched DESCRIPTION: the checks above, after an attack; then one append
# through the leader, committed on every node, becomes part of the baseline.
untouched() {
    local d=$1 i bad="" rss
    sleep "${SETTLE:-0.5}" # what the attack set off has happened by now
    for i in 1 2 3; do
        alive "$i" || { bad+=" node $i died;"; continue; }
        local t; t=$(status_of "$i" term)
        [ "$t" = "${TERM_OF[$i]}" ] || bad+=" node $i term ${TERM_OF[$i]} -> ${t:-?};"
        local c; c=$(status_of "$i" commit_offset)
        [ "$c" = "$N_RECORDS" ] || bad+=" node $i commit_offset $N_RECORDS -> ${c:-?};"
        read_all "$i" "$N_RECORDS" >"$T/after.$i" 2>&1
        cmp -s "$T/before.$i" "$T/after.$i" || bad+=" node $i records differ;"
        # One record past the end must still be missing (nothing added).
        "$RLOGCTL" read --control "$(ctl "$i")" --timeout 3 "$N_RECORDS" >/dev/null 2>&1 &&
            bad+=" node $i has a record at $N_RECORDS;"
        rss=$(rss_kib "$i")
        if [ "$RSS_ASSERT" = 1 ] && [ -n "$rss" ] && [ $((rss >> 10)) -ge "$RSS_LIMIT_MIB" ]; then
            bad+=" node $i peak RSS $((rss >> 10)) MiB >= $RSS_LIMIT_MIB MiB;"
        fi
    done
    if [ -z "$bad" ]; then
        ok "$d: every node alive, terms, records and RSS untouched"
    else
        not_ok "$d:$bad"
    fi
    local l; l=$(wait_leader) || { not_ok "$d: no leader afterwards"; return; }
    L=$l
    local out lag=""; out=$("$RLOGCTL" append --control "$(ctl "$L")" --timeout 10 "after-$N_RECORDS" 2>&1)
    if [ "$out" = "$N_RECORDS" ]; then
        N_RECORDS=$((N_RECORDS + 1))
        for i in 1 2 3; do wait_commit "$i" "$N_RECORDS" >/dev/null || lag=1; done
        if [ -z "$lag" ]; then ok "$d: an append afterwards commits everywhere"; else not_ok "$d: the append after it did not reach every node"; fi
    else
        not_ok "$d: append afterwards: $out"
    fi
    baseline
}

# others I: the two node ids other than I.
others() { local i; for i in 1 2 3; do [ "$i" != "$1" ] && echo "$i"; done; }
