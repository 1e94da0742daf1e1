#!/bin/bash
# 2,000 idle connections to the leader's raft port (issue 11: they all stayed
# open), each with a preamble claiming non-member 99 (refused outright once
# liblog's own hello is in place) and then 2,000 claiming a follower's id,
# held for IDLE_HOLD_MS (default 3000). However many the node's connection
# caps let in, the nodes stay alive, their RSS bounded and their state
# untouched, and appends work afterwards (attack.sh).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/attack.sh"
IDLE_HOLD_MS=${IDLE_HOLD_MS:-3000}
NODE_ARGS+=(--election-timeout 3000)

attack_setup 10
F=$(others "$L" | head -n 1)
say "$(forge_to "$L" "--conns 2000 --hold $IDLE_HOLD_MS" none)"
untouched "2,000 idle connections from non-member 99 to leader $L"
say "$(forge_to "$L" "--from $F --conns 2000 --hold $IDLE_HOLD_MS" none)"
untouched "2,000 idle connections claiming follower $F to leader $L"
say "leader $L: peak RSS $(( $(rss_kib "$L") >> 10 )) MiB (limit $RSS_LIMIT_MIB MiB)"
finish
