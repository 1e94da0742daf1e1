#!/bin/bash
# 250 fetch requests in one burst (issue 11: 14 KB of them took a node to
# 1.06 GB RSS and caused an election). The leader holds 24 MiB of records,
# so that each request could make it read 4 MiB. From a non-member (id 99)
# the requests are dropped by the sender rules; claiming a follower's id they
# pass those rules, and the serving bounds (one answer per peer at a time,
# fetch_serve_max answers and fetch_serve_bytes bytes in all) drop all but
# the first: rlog_status counts them (fetch_serve_refused). Afterwards the
# attack.sh checks: alive, terms and records untouched, peak RSS bounded,
# appends work.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/attack.sh"
TEST_LIMIT=${TEST_LIMIT:-240}
NODE_ARGS+=(--election-timeout 3000)

attack_setup 4
# 24 MiB of 128 KiB records, through the leader.
awk 'BEGIN { s = "x"; while (length(s) < 131072) s = s s; s = substr(s, 1, 131072);
             for (i = 0; i < 192; i++) print s }' |
    "$RLOGCTL" append --control "$(ctl "$L")" --timeout 60 >/dev/null ||
    { not_ok "append 24 MiB"; finish; }
N_RECORDS=$((N_RECORDS + 192))
for i in 1 2 3; do wait_commit "$i" "$N_RECORDS" || { not_ok "node $i commits 24 MiB"; finish; }; done
baseline
li=$(status_of "$L" last_index)
F=$(others "$L" | head -n 1)
say "leader $L: last index $li, peak RSS $(( $(rss_kib "$L") >> 10 )) MiB before the floods (limit $RSS_LIMIT_MIB MiB)"

say "$(forge_to "$L" "--count 250" fetch-req 1 "$li" 4194304)"
untouched "250 fetch requests from non-member 99 to leader $L"
check "none of them was served: fetch_serve_refused stays 0 on node $L" \
    [ "$(status_of "$L" fetch_serve_refused)" = 0 ]

out=$(forge_to "$L" "--from $F --count 250" fetch-req 1 "$li" 4194304)
say "$out"
untouched "250 fetch requests claiming follower $F to leader $L"
refused=$(status_of "$L" fetch_serve_refused)
say "leader $L: fetch_serve_refused $refused, peak RSS $(( $(rss_kib "$L") >> 10 )) MiB"
if [[ "$out" == *"closed by the node: 0" ]]; then
    # The node took the preamble (in insecure mode a claimed member id is
    # taken on trust), so the requests reached the serving side: the bounds
    # must have dropped most. (A node that closed the connection at the
    # preamble, e.g. liblog's hello against libraft's transport, saw none.)
    check "the serving bounds dropped at least 200 of the 250 (fetch_serve_refused $refused)" \
        [ "${refused:-0}" -ge 200 ]
    check "node $L logged the first refusal" grep -q "not serving a fetch request from $F" "$T/n$L.log"
fi
finish
