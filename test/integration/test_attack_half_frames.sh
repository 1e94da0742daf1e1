#!/bin/bash
# Half-sent frames (issue 11: 4 frames claiming 512 MiB each, most of their
# bodies sent, held 2 GB). Claiming a follower's id (so that a hello from a
# member is let through), 4 connections to the leader each send a frame
# header claiming 512 MiB, then HALF_SENT_MIB (default 64) MiB of its body,
# and stay open a while. The leader's peak RSS must stay under the bound
# attack.sh derives from its configuration: a node must refuse a frame
# longer than its configured maximum at the header (or at least never hold
# more than a bounded amount of partial frames). Then the attack.sh checks.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/attack.sh"
HALF_SENT_MIB=${HALF_SENT_MIB:-64}
NODE_ARGS+=(--election-timeout 3000)

attack_setup 10
F=$(others "$L" | head -n 1)
say "$(forge_to "$L" "--from $F --conns 4 --hold 1000" half $((512 << 20)) $((HALF_SENT_MIB << 20)))"
say "leader $L: peak RSS $(( $(rss_kib "$L") >> 10 )) MiB (limit $RSS_LIMIT_MIB MiB)"
untouched "4 frames claiming 512 MiB, $HALF_SENT_MIB MiB of each sent, claiming follower $F, to leader $L"
say "$(forge_to "$L" "--conns 4 --hold 1000" half $((512 << 20)) $((HALF_SENT_MIB << 20)))"
untouched "the same from non-member 99"
finish
