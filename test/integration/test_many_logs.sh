#!/bin/bash
# Many logs in one node (rlogctl node --many-logs): three hosts, each a
# host data directory holding logs by name. create-log makes three logs
# through --cluster-controls (one on two hosts only), appends and reads
# with --log show them independent (each starts at offset 0, none shows
# another's records), a third host joins the two-host log (create-log
# --join, add-node --log on its leader), and the errors are clear: no
# --log on a node of many logs, --log on a node of one, an unknown log, a
# bad name, a duplicate create. A host restarted (SIGTERM) reopens its logs
# and catches up; the leader of a log killed (SIGKILL), the log elects
# another and takes appends; a log it cannot open (a create cut short) is
# listed as not open, and finished by create-log. One log's replica failing stop (its directory
# a full tmpfs; root only, else skipped) leaves the host serving its other
# logs. delete-log on every host ends a tail on the log, removes its
# directory and takes it off list-logs.
TEST_LIMIT=${TEST_LIMIT:-60}
WAIT=${WAIT:-15}
. "$(dirname "$0")/lib.sh"

# Segments of 1 MiB + 4 KiB, the smallest rlogctl's batches allow, so that
# a 3 MiB tmpfs fills up (the failed stop below).
NODE_ARGS=(--many-logs --cluster-name itest --election-timeout 500 --heartbeat 50
           --segment-size 1052672)

# start_host I: starts host I, waiting until it answers list-logs.
start_host() {
    local i=$1
    mkdir -p "$T/n$i"
    "$RLOGCTL" node --id "$i" --data "$T/n$i" --cluster "$CLUSTER" "${NODE_ARGS[@]}" \
        >>"$T/n$i.log" 2>&1 &
    NODE_PID[$i]=$!
    local deadline=$((SECONDS + WAIT))
    while [ $SECONDS -lt $deadline ]; do
        if ! kill -0 "${NODE_PID[$i]}" 2>/dev/null; then
            say "host $i exited during startup; its log:"; tail -n 20 "$T/n$i.log"
            NODE_PID[$i]=""
            return 1
        fi
        "$RLOGCTL" list-logs --control "$(ctl "$i")" --timeout 3 >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    say "host $i did not answer list-logs within $WAIT s"
    return 1
}

# log_field I LOG KEY: KEY (role, leader, commit_offset, fatal) of LOG in
# host I's list-logs ("" if not listed or not open).
log_field() {
    "$RLOGCTL" list-logs --control "$(ctl "$1")" --timeout 3 2>/dev/null |
        awk -v n="$2" -v k="$3" '$1 == n && $2 == "open" {
            for (i = 3; i <= NF; i++) if (index($i, k "=") == 1) { print substr($i, length(k) + 2); exit } }'
}

# log_leader LOG [EXCLUDE]: the id of a live host (not EXCLUDE) that leads LOG.
log_leader() {
    local ex=${2:-0} deadline=$((SECONDS + WAIT)) i
    while [ $SECONDS -lt $deadline ]; do
        for ((i = 1; i <= N_NODES; i++)); do
            [ "$i" = "$ex" ] && continue
            alive "$i" || continue
            [ "$(log_field "$i" "$1" role)" = leader ] && { echo "$i"; return 0; }
        done
        sleep 0.1
    done
    say "no live host leads log $1 after $WAIT s"
    return 1
}

# log_commit I LOG N: until host I has LOG's offsets below N committed.
log_commit() {
    local deadline=$((SECONDS + WAIT)) c
    while [ $SECONDS -lt $deadline ]; do
        c=$(log_field "$1" "$2" commit_offset)
        [ -n "$c" ] && [ "$c" -ge "$3" ] && return 0
        sleep 0.1
    done
    say "host $1: log $2's commit_offset ${c:-?} did not reach $3 within $WAIT s"
    return 1
}

# fails DESCRIPTION PATTERN CMD...: CMD exits non-zero with a message on
# stderr matching PATTERN (egrep).
fails() {
    local d=$1 pat=$2; shift 2
    "$@" >"$T/out" 2>"$T/err"; local rc=$?
    if [ $rc -ne 0 ] && grep -Eq -- "$pat" "$T/err"; then
        ok "$d: exit $rc: $(head -n 1 "$T/err")"
    else
        not_ok "$d: exit $rc, stderr '$(head -n 1 "$T/err")', not /$pat/"
    fi
}

test_cleanup() {
    [ "${MOUNTED:-0}" = 1 ] && { umount "$SMALL" 2>/dev/null || umount -l "$SMALL"; }
    MOUNTED=0
}

# gone PATH...: none of them exists.
gone() { local f; for f; do [ ! -e "$f" ] || return 1; done; }

# reads I LOG RANGE: host I's records of LOG in RANGE, one RECORD a line.
reads() { "$RLOGCTL" read --control "$(ctl "$1")" --log "$2" --timeout 10 "$3" 2>"$T/err" | cut -f2; }

pick_ports 4 || { not_ok "pick 4 ports"; finish; }
HOSTS3=$(cut -d, -f1-3 <<<"$CLUSTER")
SINGLE_PORT=${PORTS[3]}
CLUSTER=$HOSTS3
N_NODES=3
C12="$(ctl 1),$(ctl 2)"
C123="$(ctl 1),$(ctl 2),$(ctl 3)"

bad_node "--many-logs without --cluster-name is refused" "needs --cluster-name" \
    --id 1 --data "$T/bad" --cluster "$CLUSTER" --many-logs
bad_node "--many-logs with --join is refused" "join.*does not go with --many-logs" \
    --id 1 --data "$T/bad" --cluster "$CLUSTER" --many-logs --cluster-name itest --join

for i in 1 2 3; do start_host "$i" || { not_ok "start host $i"; finish; }; done
ok "three --many-logs hosts answer list-logs"
check "a new host holds no logs" [ -z "$("$RLOGCTL" list-logs --control "$(ctl 1)")" ]

# ---- create-log ----
out=$("$RLOGCTL" create-log --cluster-controls "$C123" alpha 2>&1); rc=$?
check "create-log alpha on hosts 1..3 (exit $rc)" [ $rc -eq 0 ]
check "it reports each host" [ "$(grep -c '^created log alpha ' <<<"$out")" = 3 ]
"$RLOGCTL" create-log --cluster-controls "$C123" --json beta >"$T/out" 2>"$T/err"; rc=$?
check "create-log --json beta on hosts 1..3 (exit $rc)" [ $rc -eq 0 ]
check "one JSON answer per host" [ "$(grep -c '"log":"beta","created":true}$' "$T/out")" = 3 ]
out=$("$RLOGCTL" create-log --cluster-controls "$C12" --members 1,2 gamma 2>&1); rc=$?
check "create-log gamma --members 1,2 on hosts 1, 2 (exit $rc: $out)" [ $rc -eq 0 ]

fails "a duplicate create-log is refused" "RLOG_EEXISTS" \
    "$RLOGCTL" create-log --control "$(ctl 1)" alpha
fails "a bad name is refused" "RLOG_EINVAL.*not one of" \
    "$RLOGCTL" create-log --control "$(ctl 1)" "bad/name"
fails "a name starting with a dot is refused" "RLOG_EINVAL.*dot" \
    "$RLOGCTL" create-log --control "$(ctl 1)" ".hidden"
fails "a member not among the hosts is refused" "member 9 is not a host" \
    "$RLOGCTL" create-log --control "$(ctl 1)" --members 1,9 delta
check "and nothing was made of them" gone "$T/n1/logs/bad" "$T/n1/logs/delta"

LA=$(log_leader alpha) || { not_ok "alpha elects a leader"; finish; }
LB=$(log_leader beta) || { not_ok "beta elects a leader"; finish; }
LG=$(log_leader gamma) || { not_ok "gamma elects a leader"; finish; }
ok "each log elects a leader: alpha $LA, beta $LB, gamma $LG"
check "gamma leads on one of its members" [ "$LG" != 3 ]

# ---- appends and reads with --log; the logs are independent ----
out=$("$RLOGCTL" append --control "$(ctl 2)" --log alpha a0 a1 a2 2>&1)
check "3 appends to alpha through host 2 get offsets 0..2" [ "$(echo $out)" = "0 1 2" ]
out=$("$RLOGCTL" append --control "$(ctl 3)" --log beta b0 b1 2>&1)
check "2 appends to beta through host 3 get offsets 0..1" [ "$(echo $out)" = "0 1" ]
out=$("$RLOGCTL" append --control "$(ctl 1)" --log gamma g0 2>&1)
check "an append to gamma through host 1 gets offset 0" [ "$out" = 0 ]
check "host 3 has alpha committed to 3" log_commit 3 alpha 3
check "host 1 has beta committed to 2" log_commit 1 beta 2
check "host 2 has gamma committed to 1" log_commit 2 gamma 1
check "alpha read on host 3 is a0 a1 a2, nothing of beta" [ "$(reads 3 alpha 0- | xargs)" = "a0 a1 a2" ]
check "beta read on host 1 is b0 b1, nothing of alpha" [ "$(reads 1 beta 0- | xargs)" = "b0 b1" ]
check "gamma read on host 2 is g0" [ "$(reads 2 gamma 0- | xargs)" = "g0" ]
"$RLOGCTL" read --control "$(ctl 1)" --log beta 2 >/dev/null 2>&1; rc=$?
check "beta has no offset 2 (exit 4, got $rc)" [ $rc -eq 4 ]

# ---- leaders spread over the hosts (balance_leaders, on by default) ----
# Each log prefers the member its name hashes to (rlogctl partition over
# its members in id order): the lead goes there while the log is idle.
# leads_on I LOG: until host I leads LOG.
leads_on() {
    local deadline=$((SECONDS + WAIT))
    while [ $SECONDS -lt $deadline ]; do
        [ "$(log_field "$1" "$2" role)" = leader ] && return 0
        sleep 0.2
    done
    say "host $1 did not come to lead $2 within $WAIT s"
    return 1
}
PA=$(( $("$RLOGCTL" partition --partitions 3 alpha) + 1 ))
PB=$(( $("$RLOGCTL" partition --partitions 3 beta) + 1 ))
PG=$(( $("$RLOGCTL" partition --partitions 2 gamma) + 1 ))
check "alpha's lead goes to host $PA, its preferred member" leads_on "$PA" alpha
check "beta's lead goes to host $PB" leads_on "$PB" beta
check "gamma's lead goes to host $PG" leads_on "$PG" gamma
LA=$PA LB=$PB LG=$PG

"$RLOGCTL" list-logs --control "$(ctl 1)" >"$T/list" 2>&1
check "list-logs on host 1: alpha beta gamma, in order" \
    [ "$(awk '{ print $1 }' "$T/list" | xargs)" = "alpha beta gamma" ]
check "each open, with no failed stop" [ "$(grep -c ' open role=.* fatal=no$' "$T/list")" = 3 ]
check "list-logs on host 3: alpha beta (no gamma)" \
    [ "$("$RLOGCTL" list-logs --control "$(ctl 3)" | awk '{ print $1 }' | xargs)" = "alpha beta" ]
check "list-logs --json names the leader" \
    grep -q "{\"name\":\"alpha\",\"open\":true,\"role\":\"[a-z]*\",\"leader_id\":$LA," \
    <("$RLOGCTL" list-logs --control "$(ctl 2)" --json)

# ---- the errors ----
fails "status without --log on a node of many logs" \
    "holds many logs; name one with --log NAME \(rlogctl list-logs shows them\)" \
    "$RLOGCTL" status --control "$(ctl 1)"
fails "append without --log" "name one with --log" "$RLOGCTL" append --control "$(ctl 1)" x
fails "an unknown log" "RLOG_ENOTFOUND: this node has no log named nosuch" \
    "$RLOGCTL" read --control "$(ctl 1)" --log nosuch 0
fails "gamma on host 3, which does not hold it" "no log named gamma" \
    "$RLOGCTL" status --control "$(ctl 3)" --log gamma
fails "create-log takes no --log" "takes no --log" \
    "$RLOGCTL" create-log --control "$(ctl 1)" --log alpha alpha
mkdir -p "$T/s"
"$RLOGCTL" node --id 1 --data "$T/s" --cluster "1=127.0.0.1:$SINGLE_PORT" >"$T/s.log" 2>&1 &
SINGLE=$!
EXTRA_PIDS+=("$SINGLE")
for _ in $(seq 50); do "$RLOGCTL" status --control "$T/s/control.sock" >/dev/null 2>&1 && break; sleep 0.1; done
fails "--log on a node of one log" "holds one log.*drop --log alpha" \
    "$RLOGCTL" status --control "$T/s/control.sock" --log alpha
fails "list-logs on a node of one log" "not started with --many-logs" \
    "$RLOGCTL" list-logs --control "$T/s/control.sock"
kill "$SINGLE"; wait "$SINGLE" 2>/dev/null
# Malformed requests for a log: an empty name; a name and no request.
RAWSEND=${RAWSEND:-$ROOT/build/itest/rawsend}
if [ -x "$RAWSEND" ]; then
    printf '\0\0\0\005@\0\0\0\0' | "$RAWSEND" unix "$(ctl 1)" >/dev/null 2>&1
    printf '\0\0\0\012@\0\0\0\005alpha' | "$RAWSEND" unix "$(ctl 1)" >/dev/null 2>&1
    check "host 1 rejects malformed requests for a log" \
        wait_log 1 "rejected a malformed request (type 0x40" 2
    check "and serves on" [ -n "$(log_field 1 alpha role)" ]
else
    not_ok "$RAWSEND not built"
fi

# ---- a replica joins the two-host log ----
out=$("$RLOGCTL" create-log --control "$(ctl 3)" --join gamma 2>&1); rc=$?
check "create-log --join gamma on host 3 (exit $rc: $out)" [ $rc -eq 0 ]
LG=$(log_leader gamma) || not_ok "gamma has a leader"
out=$("$RLOGCTL" add-node --control "$(ctl "$LG")" --log gamma --timeout 20 3 "$(addr 3)" 2>&1)
rc=$?
check "add-node --log gamma 3 on its leader $LG (exit $rc: $out)" [ $rc -eq 0 ]
check "host 3 catches up on gamma" log_commit 3 gamma 1
check "and reads g0 there" [ "$(reads 3 gamma 0 | xargs)" = "g0" ]

# ---- metrics: one exposition, the logs apart ----
"$RLOGCTL" metrics --control "$(ctl 1)" >"$T/metrics" 2>&1
check "metrics without --log: alpha's samples, labelled" grep -q 'log="alpha"' "$T/metrics"
check "and beta's" grep -q 'log="beta"' "$T/metrics"
check "each family once" [ "$(grep -c '^# TYPE rlog_term ' "$T/metrics")" = 1 ]
check "metrics --log beta: beta's only" \
    bash -c "! \"$RLOGCTL\" metrics --control \"$(ctl 1)\" --log beta | grep -q 'log=\"alpha\"'"

# ---- a host restarted reopens its logs and catches up; one it cannot ----
stop_node 2; rc=$?
check "host 2 stops on SIGTERM with exit 0 (got $rc)" [ $rc -eq 0 ]
LA=$(log_leader alpha) || not_ok "alpha leads without host 2"
out=$("$RLOGCTL" append --control "$(ctl "$LA")" --log alpha a3 2>&1)
check "alpha takes an append without host 2 (offset $out)" [ "$out" = 3 ]
# A create cut short on host 2 while it is down: liblog's marker of a
# create under way (lib/host/catalog.c), and the log's directory.
touch "$T/n2/logs/.creating.half" && mkdir "$T/n2/logs/half"
check "host 2 starts again" start_host 2
check "its log says three of its four logs opened" grep -q "3 of 4 logs open" "$T/n2.log"
check "and why the half-made one did not" \
    grep -q "log half: cannot open it: RLOG_ENOTFOUND.*serving the other logs" "$T/n2.log"
check "list-logs shows it not open, with the error" \
    grep -q "^half not-open error=RLOG_ENOTFOUND " <("$RLOGCTL" list-logs --control "$(ctl 2)")
fails "a request to it says it is not open" "RLOG_ENOTFOUND: log half is not open" \
    "$RLOGCTL" status --control "$(ctl 2)" --log half
out=$("$RLOGCTL" create-log --control "$(ctl 2)" --members 2 half 2>&1); rc=$?
check "create-log finishes it (exit $rc: $out)" [ $rc -eq 0 ]
check "and it is open now" grep -q "^half open " <("$RLOGCTL" list-logs --control "$(ctl 2)")
check "host 2 catches up on alpha" log_commit 2 alpha 4
check "and reads a3 there" [ "$(reads 2 alpha 3 | xargs)" = "a3" ]
check "host 2 lists alpha beta gamma half open" \
    [ "$("$RLOGCTL" list-logs --control "$(ctl 2)" | awk '$2 == "open" { print $1 }' | xargs)" = "alpha beta gamma half" ]
out=$("$RLOGCTL" delete-log --control "$(ctl 2)" half 2>&1) || not_ok "delete-log half: $out"

# ---- alpha's leader killed: alpha elects another, appends go on ----
LA=$(log_leader alpha) || not_ok "alpha has a leader"
kill_node "$LA"
ok "alpha's leader, host $LA, killed (SIGKILL)"
NEW=$(log_leader alpha "$LA") || not_ok "alpha elects another leader"
check "alpha's new leader (${NEW:-none}) is another host" [ "${NEW:-$LA}" != "$LA" ]
OTHER=$(( (LA % 3) + 1 ))
out=$("$RLOGCTL" append --control "$(ctl "$OTHER")" --log alpha a4 2>&1)
check "an append to alpha through host $OTHER (offset $out)" [ "$out" = 4 ]
out=$("$RLOGCTL" append --cluster-controls "$C123" --log beta b2 2>/dev/null)
check "beta takes appends too (offset $out)" [ "$out" = 2 ]
check "host $LA starts again" start_host "$LA"
check "and catches up on alpha" log_commit "$LA" alpha 5

# ---- one log's replica fails stop; the host serves its other logs ----
SMALL=$T/n3/logs/small
NEXT_ALPHA=5 # alpha's next offset
out=$("$RLOGCTL" create-log --cluster-controls "$C123" small 2>&1) || not_ok "create-log small: $out"
log_commit 3 small 0 >/dev/null
stop_node 3
mv "$SMALL" "$T/small.orig" && mkdir "$SMALL"
if ! err=$(mount -t tmpfs -o size=3m,mode=0755 tmpfs "$SMALL" 2>&1); then
    say "failed stop of one log skipped: cannot mount a 3 MiB tmpfs (root needed): $err"
    rmdir "$SMALL"; mv "$T/small.orig" "$SMALL"
    check "host 3 starts again" start_host 3
else
    MOUNTED=1
    cp -a "$T/small.orig/." "$SMALL/"
    check "host 3 starts again, its replica of small on a 3 MiB tmpfs" start_host 3
    LS=$(log_leader small)
    if [ "$LS" = 3 ]; then
        "$RLOGCTL" transfer --control "$(ctl 3)" --log small 1 >/dev/null 2>&1
        LS=$(log_leader small 3)
    fi
    awk 'BEGIN { pad = sprintf("%990s", ""); gsub(/ /, "x", pad);
                 for (i = 0; i < 3000; i++) printf "r%05d-%s\n", i, pad }' >"$T/records"
    "$RLOGCTL" append --control "$(ctl "${LS:-1}")" --log small --timeout 30 <"$T/records" \
        >/dev/null 2>"$T/err"; rc=$?
    check "small takes 3000 records of 1 KB with host 3 failing (exit $rc)" [ $rc -eq 0 ]
    check "host 3 logs small's failed stop, naming it" wait_log 3 "log small: failed stop: RLOG_ENOSPC"
    check "host 3 keeps running" alive 3
    check "list-logs on host 3 shows small open, failed" \
        grep -q "^small open role=unavailable .* fatal=RLOG_ENOSPC " \
        <("$RLOGCTL" list-logs --control "$(ctl 3)")
    check "status --log small on host 3 shows the failed stop" \
        grep -q "^fatal RLOG_ENOSPC " <("$RLOGCTL" status --control "$(ctl 3)" --log small)
    fails "an append to small on host 3 is refused" "RLOG_EFATAL" \
        "$RLOGCTL" append --control "$(ctl 3)" --log small x
    out=$("$RLOGCTL" append --control "$(ctl 3)" --log alpha a-after 2>&1)
    check "alpha takes an append through host 3 (offset $out)" [ "$out" = $NEXT_ALPHA ]
    NEXT_ALPHA=$((NEXT_ALPHA + 1))
    stop_node 3; rc=$?
    check "host 3 still stops on SIGTERM with exit 0 (got $rc)" [ $rc -eq 0 ]
    check "saying a log had failed stop" grep -q "1 log had failed stop" "$T/n3.log"
    test_cleanup
    rm -rf "$SMALL" && mv "$T/small.orig" "$SMALL"
    check "host 3 starts again with small's directory as it was before" start_host 3
fi
"$RLOGCTL" delete-log --cluster-controls "$C123" small >/dev/null 2>&1 || not_ok "delete-log small"

# ---- delete-log beta on every host ----
"$RLOGCTL" tail --control "$(ctl 1)" --log beta --from 0 >"$T/tail" 2>"$T/tail.err" &
TAIL=$!
EXTRA_PIDS+=("$TAIL")
check "a tail on beta streams its records" wait_lines "$T/tail" 3
out=$("$RLOGCTL" delete-log --cluster-controls "$C123" beta 2>&1); rc=$?
check "delete-log beta on hosts 1..3 (exit $rc: $out)" [ $rc -eq 0 ]
check "it reports each host" [ "$(grep -c '^deleted log beta ' <<<"$out")" = 3 ]
wait_exit "$TAIL"; rc=$?
check "the tail on beta ends (exit $rc)" [ $rc -eq 5 ]
check "saying the log is being deleted" grep -q "being deleted" "$T/tail.err"
check "beta's directory is gone on every host" \
    gone "$T/n1/logs/beta" "$T/n2/logs/beta" "$T/n3/logs/beta"
check "list-logs no longer shows it" \
    [ "$("$RLOGCTL" list-logs --control "$(ctl 3)" | awk '{ print $1 }' | xargs)" = "alpha gamma" ]
fails "requests to beta fail as an unknown log" "no log named beta" \
    "$RLOGCTL" append --control "$(ctl 1)" --log beta x
fails "delete-log of a log that is gone" "RLOG_ENOTFOUND" \
    "$RLOGCTL" delete-log --control "$(ctl 2)" beta
out=$("$RLOGCTL" append --control "$(ctl 3)" --log alpha a5 2>&1)
check "alpha still takes appends (offset $out)" [ "$out" = $NEXT_ALPHA ]
for i in 1 2 3; do
    check "host $i is still running" alive "$i"
done
finish
