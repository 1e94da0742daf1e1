#!/bin/bash
# RequestVotes flooding the held queue (lib/raftio/hold.c). While appends are
# being written, RequestVote and TimeoutNow wait (libraft 0.15 must not vote
# on entries not yet durable); at held_max (64) the oldest is dropped. Under
# an append load, VOTE_BURSTS (default 5) bursts of 1,000 RequestVotes at
# the leader's own term (harmless to Raft: a leader does not vote at its
# term), claiming a follower's id; then one more burst without load. The
# leader keeps leading at its term, and the attack.sh checks hold. Whether a
# burst lands while an append is in flight depends on timing (how long a
# write and fdatasync take here), so held_dropped is shown, not asserted:
# test/unit/test_bounds.c checks the bound itself deterministically.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/attack.sh"
VOTE_BURSTS=${VOTE_BURSTS:-5}
NODE_ARGS+=(--election-timeout 3000)

attack_setup 10
F=$(others "$L" | head -n 1)
t=$(status_of "$L" term)
# The load: 2 clients, 1,500 records of 64 KiB each (some seconds of
# appends), waited for once the bursts are done.
load() {
    awk 'BEGIN { s = "v"; while (length(s) < 65536) s = s s; s = substr(s, 1, 65536);
                 for (i = 0; i < 1500; i++) print s }' |
        "$RLOGCTL" append --control "$(ctl "$L")" --timeout 60 >/dev/null 2>&1
}
load & LOAD1=$!
load & LOAD2=$!
for ((b = 1; b <= VOTE_BURSTS; b++)); do
    forge_to "$L" "--from $F --count 1000" vote "$t" >/dev/null
done
dropped=$(status_of "$L" held_dropped)
say "leader $L: held_dropped $dropped after $VOTE_BURSTS bursts of 1,000 under load"
if [ "${dropped:-0}" -gt 0 ]; then
    check "leader $L logged the first drop" grep -q "held elections: .* dropping the oldest" "$T/n$L.log"
fi
wait "$LOAD1" "$LOAD2"
# The load appended records: they are part of the state now.
N_RECORDS=$(status_of "$L" commit_offset)
for i in 1 2 3; do wait_commit "$i" "$N_RECORDS" >/dev/null; done
check "leader $L still leads at term $t" [ "$(status_of "$L" role) $(status_of "$L" term)" = "leader $t" ]
baseline
say "$(forge_to "$L" "--from $F --count 1000" vote "$t")"
untouched "1,000 RequestVotes at the leader's term claiming follower $F, without load"
finish
