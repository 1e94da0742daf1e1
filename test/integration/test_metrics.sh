#!/bin/bash
# Metrics: three nodes, each with --metrics-address. Scrapes with curl pass
# `promtool check metrics`; appends move the leader's records/bytes appended
# and append-to-commit counts by what was appended, the followers' fdatasync
# counts, and the bytes each side counts per member; `rlogctl metrics`
# prints the same families. Bad requests (garbage, a header over 8 KiB,
# another path, another method, connections over the cap) get their status
# or are closed, and the node keeps serving. A metrics address in use stops
# the start.
. "$(dirname "$0")/lib.sh"
N=1000
SINGLES=20

for tool in curl promtool; do
    command -v $tool >/dev/null || { not_ok "$tool installed (.ci/install-deps)"; finish; }
done

start_metrics_cluster() {
    pick_ports 3 || return 1
    local base i
    for ((base = 20000 + RANDOM % 20000; ; base += 3)); do
        port_free $base && port_free $((base + 1)) && port_free $((base + 2)) &&
            ! [[ " ${PORTS[*]} " == *" $base "* || " ${PORTS[*]} " == *" $((base + 1)) "* ||
                 " ${PORTS[*]} " == *" $((base + 2)) "* ]] && break
    done
    for i in 1 2 3; do
        MPORT[$i]=$((base + i - 1))
        start_node $i --metrics-address "127.0.0.1:${MPORT[$i]}" || return 1
    done
}
declare -A MPORT=()
url() { echo "http://127.0.0.1:${MPORT[$1]}/metrics"; }
# scrape I FILE: the body of node I's /metrics into FILE (headers in FILE.h).
scrape() { curl -sf --max-time 10 -D "$2.h" -o "$2" "$(url "$1")"; }
# mval FILE SERIES: the value of one sample (empty if absent).
mval() { awk -v k="$2" '$1 == k { print $2; exit }' "$1"; }
# at_least VALUE MIN: VALUE is a number >= MIN.
at_least() { [[ "$1" =~ ^[0-9]+$ ]] && [ "$1" -ge "$2" ]; }
# status_code CURL-ARGS...: the HTTP status curl got.
status_code() { curl -s --max-time 10 -o /dev/null -w '%{http_code}' "$@"; }
# raw_status I BYTES: the status line node I answers to BYTES sent as is.
raw_status() {
    local fd line
    exec {fd}<>"/dev/tcp/127.0.0.1/${MPORT[$1]}" || return 1
    printf '%b' "$2" >&$fd
    IFS= read -r -t 10 line <&$fd
    exec {fd}>&-
    printf '%s\n' "${line%$'\r'}"
}

start_metrics_cluster || { not_ok "start 3 nodes with --metrics-address"; finish; }
ok "3 nodes started, metrics on ports ${MPORT[*]}"
L=$(wait_leader) || { not_ok "a leader is elected within $WAIT s"; finish; }
ok "node $L is the leader"
F=$(( L % 3 + 1 ))

for i in 1 2 3; do
    check "node $i: GET /metrics answers 200" scrape $i "$T/before$i.txt"
    check "node $i: Content-Type text/plain; version=0.0.4" \
        grep -qi '^Content-Type: text/plain; version=0.0.4' "$T/before$i.txt.h"
    if promtool check metrics <"$T/before$i.txt" >"$T/promtool$i.out" 2>&1; then
        ok "node $i: promtool check metrics passes, no warning"
    else
        not_ok "node $i: promtool check metrics: $(head -n 3 "$T/promtool$i.out")"
    fi
done

seq -f "metrics-record-%06g" 1 $N >"$T/in.txt"
bytes=$(awk '{ s += length($0) } END { print s + 0 }' "$T/in.txt")
"$RLOGCTL" append --control "$(ctl "$L")" --timeout 60 <"$T/in.txt" >/dev/null 2>"$T/append.err"
check "$N records appended through the leader" [ $? -eq 0 ]
singles_ok=1
for ((k = 0; k < SINGLES; k++)); do
    "$RLOGCTL" append --control "$(ctl "$L")" "single-$k" >/dev/null 2>>"$T/append.err" || singles_ok=0
done
check "$SINGLES one-record appends through the leader" [ $singles_ok = 1 ]
for i in 1 2 3; do wait_commit $i $((N + SINGLES)) >/dev/null; done
for i in 1 2 3; do scrape $i "$T/after$i.txt"; done

# delta NAME NODE SERIES: after - before for node NODE's SERIES.
delta() {
    local b a
    b=$(mval "$T/before$2.txt" "$3"); a=$(mval "$T/after$2.txt" "$3")
    [ -n "$b" ] && [ -n "$a" ] && echo $((a - b)) || echo "missing"
}
n="{node=\"$L\"}"
single_bytes=$(( $(for ((k = 0; k < SINGLES; k++)); do printf 'single-%d' $k; done | wc -c) ))
d=$(delta x "$L" "rlog_appended_records_total$n")
check "leader: rlog_appended_records_total moved by $((N + SINGLES)) ($d)" [ "$d" = $((N + SINGLES)) ]
d=$(delta x "$L" "rlog_appended_bytes_total$n")
check "leader: rlog_appended_bytes_total moved by $((bytes + single_bytes)) ($d)" \
    [ "$d" = $((bytes + single_bytes)) ]
d=$(delta x "$L" "rlog_append_commit_seconds_count$n")
check "leader: rlog_append_commit_seconds_count moved by at least $((SINGLES + 1)) ($d)" \
    at_least "$d" $((SINGLES + 1))
inf=$(mval "$T/after$L.txt" "rlog_append_commit_seconds_bucket{node=\"$L\",le=\"+Inf\"}")
cnt=$(mval "$T/after$L.txt" "rlog_append_commit_seconds_count$n")
check "leader: the +Inf bucket equals the count ($inf = $cnt)" [ "${inf:-x}" = "${cnt:-y}" ]
d=$(delta x "$L" "rlog_entry_records_sum$n")
check "leader: rlog_entry_records_sum moved by at least $((N + SINGLES)) ($d)" \
    at_least "$d" $((N + SINGLES))
for i in 1 2 3; do
    [ $i = "$L" ] && continue
    d=$(delta x $i "rlog_store_sync_seconds_count{node=\"$i\"}")
    check "follower $i: rlog_store_sync_seconds_count moved ($d)" at_least "$d" 1
    d=$(delta x "$L" "rlog_peer_sent_bytes_total{node=\"$L\",peer=\"$i\"}")
    check "leader: bytes sent to $i moved by at least $bytes ($d)" at_least "$d" "$bytes"
    d=$(delta x $i "rlog_peer_received_bytes_total{node=\"$i\",peer=\"$L\"}")
    check "follower $i: bytes received from $L moved by at least $bytes ($d)" \
        at_least "$d" "$bytes"
    c=$(mval "$T/after$L.txt" "rlog_peer_connected{node=\"$L\",peer=\"$i\"}")
    check "leader: connected to $i ($c)" [ "$c" = 1 ]
done
r=$(mval "$T/after$L.txt" "rlog_role{node=\"$L\",role=\"leader\"}")
check "leader: rlog_role{role=\"leader\"} is 1" [ "$r" = 1 ]

# rlogctl metrics: the same families, and valid too.
"$RLOGCTL" metrics --control "$(ctl "$F")" >"$T/ctl$F.txt" 2>"$T/ctl.err"
check "rlogctl metrics on node $F exits 0" [ $? -eq 0 ]
check "rlogctl metrics passes promtool" sh -c "promtool check metrics <'$T/ctl$F.txt' >/dev/null 2>&1"
check "rlogctl metrics prints the families /metrics serves" \
    cmp -s <(grep '^# TYPE' "$T/ctl$F.txt") <(grep '^# TYPE' "$T/after$F.txt")

# Bad requests, then the node still serves.
check "another path: 404" [ "$(status_code "http://127.0.0.1:${MPORT[$F]}/other")" = 404 ]
check "another method: 405" [ "$(status_code -X POST "$(url "$F")")" = 405 ]
check "garbage: 400" [ "$(raw_status "$F" 'GARBAGE\r\n\r\n')" = "HTTP/1.1 400 Bad Request" ]
check "a request line without a version: 400" \
    [ "$(raw_status "$F" 'GET /metrics\r\n\r\n')" = "HTTP/1.1 400 Bad Request" ]
big=$(head -c 9000 /dev/zero | tr '\0' a)
check "a header over 8 KiB: 431" [ "$(status_code -H "X-Big: $big" "$(url "$F")")" = 431 ]
# More idle connections than the cap (16): the extra ones are closed at
# once, the rest time out, and scrapes work again.
fds=()
for ((k = 0; k < 20; k++)); do exec {fd}<>"/dev/tcp/127.0.0.1/${MPORT[$F]}" && fds+=($fd); done
closed=0
for fd in "${fds[@]}"; do
    if IFS= read -r -t 0.5 _ <&$fd; [ $? -eq 1 ]; then closed=$((closed + 1)); fi
done
check "connections over the cap are closed (${closed} of ${#fds[@]})" [ $closed -ge 4 ]
served=0
deadline=$((SECONDS + WAIT))
while [ $SECONDS -lt $deadline ]; do
    scrape "$F" "$T/late.txt" && { served=1; break; }
    sleep 0.5
done
check "idle connections time out and node $F serves again" [ $served = 1 ]
for fd in "${fds[@]}"; do exec {fd}>&-; done
check "node $F is still running" alive "$F"

bad_node "a metrics address in use stops the start" "metrics-address.*in use" \
    --id 1 --data "$T/other" --cluster "$CLUSTER" --metrics-address "127.0.0.1:${MPORT[1]}"
finish
