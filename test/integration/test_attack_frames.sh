#!/bin/bash
# Forged frames against a 3-node insecure loopback cluster (issue 11): from a
# non-member (id 99) to the leader and to a follower, RequestVote with a huge
# term and with term 2^64-1, AppendEntries with records and with a trim at
# the next term, AppendEntriesResult, a commit notice, a fetch request and
# an unasked fetch answer, and libraft 0.15's crash frame (prev_log_index 0,
# huge term); then, claiming a member's id, the messages the sender rules
# refuse even from a member (a commit notice from a node that does not lead,
# a leader's message at the term the target leads, terms above 2^63, a fetch
# answer nobody asked for). After each: every node alive, terms unchanged,
# no record added or removed, RSS bounded, appends still work (attack.sh).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/attack.sh"
TEST_LIMIT=${TEST_LIMIT:-280}
NODE_ARGS+=(--election-timeout 3000)

attack_setup 20
HUGE=$((1 << 62))

# next_term / last_index: the values a forgery must beat to do harm.
term_now() { status_of "$L" term; }
last_now() { status_of "$L" last_index; }

F=$(others "$L" | head -n 1)
for target in "$L" "$F"; do
    role=$([ "$target" = "$L" ] && echo leader || echo follower)
    t=$(term_now); li=$(last_now)
    say "node $target ($role): term $t, last index $li"
    say "$(forge_to "$target" "" vote $HUGE)"
    untouched "RequestVote term 2^62 from 99 to the $role"
    say "$(forge_to "$target" "" vote max)"
    untouched "RequestVote term 2^64-1 from 99 to the $role"
    t=$(term_now); li=$(last_now)
    say "$(forge_to "$target" "" append $((t + 1)) "$li" "$t" $((li + 1)) 5)"
    untouched "AppendEntries with 5 records at term $((t + 1)) from 99 to the $role"
    t=$(term_now); li=$(last_now)
    say "$(forge_to "$target" "" trim $((t + 1)) "$li" "$t" $((li + 1)) "$N_RECORDS")"
    untouched "AppendEntries with a trim of every record at term $((t + 1)) from 99 to the $role"
    t=$(term_now); li=$(last_now)
    say "$(forge_to "$target" "" result "$t" $((li + 10)))"
    untouched "AppendEntriesResult at term $t from 99 to the $role"
    say "$(forge_to "$target" "" commit "$t" $((li + 10)) "$t")"
    untouched "commit notice at term $t from 99 to the $role"
    say "$(forge_to "$target" "" fetch-req 1 "$li" 4194304)"
    untouched "fetch request from 99 to the $role"
    say "$(forge_to "$target" "" fetch-resp $((li + 1)) 5)"
    untouched "fetch answer from 99 to the $role"
    say "$(forge_to "$target" "" crash $HUGE)"
    untouched "crash frame (prev_log_index 0, term 2^62) from 99 to the $role"
done

# Claiming a member's id: what the sender rules refuse even from a member.
read -r F1 F2 <<<"$(others "$L" | tr '\n' ' ')"
t=$(term_now); li=$(last_now)
say "$(forge_to "$F2" "--from $F1" commit "$t" $((li + 10)) "$t")"
untouched "commit notice claiming follower $F1 (not the leader) to follower $F2"
t=$(term_now); li=$(last_now)
say "$(forge_to "$L" "--from $F1" append "$t" "$li" "$t" $((li + 1)) 5)"
untouched "AppendEntries at the leader's own term $t claiming $F1, to leader $L"
say "$(forge_to "$L" "--from $F1" vote max)"
untouched "RequestVote term 2^64-1 claiming member $F1, to leader $L"
say "$(forge_to "$F2" "--from $F1" crash max)"
untouched "crash frame at term 2^64-1 claiming member $F1, to follower $F2"
t=$(term_now); li=$(last_now)
say "$(forge_to "$F2" "--from $L" fetch-resp $((li + 1)) 5)"
untouched "fetch answer nobody asked for, claiming leader $L, to follower $F2"

# Every refusal above was for a reason the node names (unless the preamble
# itself was refused, after liblog's own hello: then nothing reaches a frame).
if [ "$FORGE_PREAMBLE" = raft ]; then
    check "the nodes log why they dropped forged frames" \
        grep -q "dropping a type .* message from 99 .*: the sender is not a member" "$T"/n*.log
    check "the refused commit notice is logged" grep -q "commit notice from a node not known to lead" "$T"/n*.log
fi
finish
