#!/bin/bash
# Garbage on a node's raft port (not the control socket): random bytes, bad
# hellos (lib/net/hello.h), then after a valid hello claiming a member's id
# (plain loopback mode trusts it) a frame with a bad magic, a truncated
# frame, a huge length, an unknown type. The node stays up, still
# serves status and appends, and its stderr logs why it rejected the peer.
# Then garbage on the control socket: the node stays up there too.
. "$(dirname "$0")/lib.sh"
RAWSEND=${RAWSEND:-$ROOT/build/itest/rawsend}
[ -x "$RAWSEND" ] || { not_ok "$RAWSEND not built"; finish; }

# le64 V / le32 V / le16 V: little-endian bytes as printf escapes.
le() { local v=$1 n=$2 i s=""; for ((i = 0; i < n; i++)); do s+="\\x$(printf %02x $(((v >> (8 * i)) & 255)))"; done; printf "$s"; }
le64() { le "$1" 8; }
le32() { le "$1" 4; }
le16() { le "$1" 2; }
# hello ID [VERSION]: liblog's 32-byte hello ("rlognet1", version, flags 0,
# the claimed id, a cluster hash: these clusters have derived names, whose
# hash is not compared).
hello() { printf 'rlognet1'; le32 "${2:-1}"; le32 0; le64 "$1"; le64 0; }
# header TYPE LENGTH: a liblog wire header (magic "RLW1", version 1).
header() { printf 'RLW1'; le16 1; le16 "$1"; le32 "$2"; le32 0; le64 99; le64 0; }

# inject NODE DESCRIPTION [PATTERN]: sends stdin to NODE's raft port, then
# checks the node is still up and answering, and (given PATTERN, egrep -i) that
# its stderr logged a reason for the rejection. Cases that libraft's own
# handshake rejects (before liblog sees the connection) get no PATTERN.
# Feed it with `< <(...)`, not a pipe: a pipe would run it in a subshell and
# lose its counts.
inject() {
    local n=$1 d=$2 pat=${3:-} before
    alive "$n" || { echo "skip - $d: node $n is down"; cat >/dev/null; return; }
    before=$(wc -l <"$T/n$n.log")
    "$RAWSEND" tcp 127.0.0.1 "${PORTS[$((n - 1))]}" >"$T/raw.out" 2>&1 || { not_ok "$d: cannot connect: $(cat "$T/raw.out")"; return; }
    sleep 0.3
    if alive "$n" && [ -n "$(status_of "$n" role)" ]; then ok "$d: node $n still up"; else not_ok "$d: node $n died or stopped answering"; fi
    [ -z "$pat" ] && return
    local line
    line=$(tail -n +$((before + 1)) "$T/n$n.log" | grep -Ei -m1 "$pat")
    if [ -n "$line" ]; then ok "$d: node $n logs why: ${line#*: }"; else not_ok "$d: node $n logs a reason matching /$pat/"; fi
}

start_cluster 3 || { not_ok "start a 3-node cluster"; finish; }
L=$(wait_leader) || { not_ok "a leader is elected"; finish; }
F=$(( L % 3 + 1 ))
ok "node $L is the leader, node $F a follower"
"$RLOGCTL" append --control "$(ctl "$L")" before >/dev/null 2>&1
for n in $L $F; do
    M=$L; [ "$n" = "$L" ] && M=$F   # a member other than n, to impersonate
    inject $n "HTTP request" "hello" < <(printf 'GET / HTTP/1.1\r\nHost: x\r\n\r\n')
    inject $n "4 KiB of random bytes" "hello magic" < <(head -c 4096 /dev/urandom)
    inject $n "hello with version 2" "hello version" < <(hello "$M" 2)
    inject $n "hello claiming non-member 99" "not a member" < <({ hello 99; header 1 64; head -c 64 /dev/zero; })
    inject $n "hello claiming node $n's own id" "own" < <(hello "$n")
    inject $n "hello cut short" "inside its hello" < <(printf 'rlognet1'; le32 1)
    inject $n "hello as $M, then random bytes (bad magic)" "magic" < <({ hello "$M"; head -c 256 /dev/urandom; })
    inject $n "hello as $M, then a truncated frame" "trunc|short|closed|inside|EOF|incomplete" < <({ hello "$M"; header 1 64; head -c 10 /dev/urandom; })
    inject $n "hello as $M, then a frame with a huge length" "length|limit|large" < <({ hello "$M"; header 1 $((0xFFFFFFF8)); head -c 64 /dev/urandom; })
    inject $n "hello as $M, then an unknown frame type" "type" < <({ hello "$M"; header 999 8; head -c 8 /dev/zero; })
    inject $n "hello as $M, then a body length not a multiple of 8" "multiple|length" < <({ hello "$M"; header 1 13; head -c 16 /dev/zero; })
    inject $n "hello as $M, then a frame with a bad checksum" "checksum" < <({ hello "$M"; header 1 64; head -c 64 /dev/urandom; })
done

# The cluster still works.
L2=$(wait_leader) || { not_ok "a leader exists after the garbage"; finish; }
out=$("$RLOGCTL" append --control "$(ctl "$L2")" --timeout 10 after 2>&1); rc=$?
check "append through leader $L2 after the garbage (exit $rc: $out)" [ $rc -eq 0 ]
if [ $rc -eq 0 ]; then
    for i in 1 2 3; do
        check "node $i serves the new record" wait_commit "$i" $((out + 1))
        check "node $i reads it back" [ "$("$RLOGCTL" read --control "$(ctl "$i")" "$out" 2>&1)" = "$out	after" ]
    done
fi

# Garbage on the control socket.
# (On node F, or on any node still up if F went down above.)
for n in $F 1 2 3; do alive "$n" && { F=$n; break; }; done
C=$(ctl "$F")
cinject() {
    local d=$1
    "$RAWSEND" unix "$C" >"$T/raw.out" 2>&1 || { not_ok "control $d: cannot connect"; return; }
    if alive "$F" && [ -n "$(status_of "$F" role)" ]; then ok "control socket, $d: node $F still up"; else not_ok "control socket, $d: node $F died"; fi
}
cinject "random bytes" < <(head -c 4096 /dev/urandom)
cinject "a 4 GiB frame length" < <(printf '\xff\xff\xff\xff')
cinject "a zero frame length" < <(printf '\x00\x00\x00\x00')
cinject "a truncated frame" < <(printf '\x00\x00\x01\x00AAAA')
cinject "an unknown request" < <(printf '\x00\x00\x00\x01Z')
cinject "an append claiming 65535 records" < <(printf '\x00\x00\x00\x09A\x00\x00\xff\xff\x00\x00\x00\x05')
cinject "an append record longer than its frame" < <(printf '\x00\x00\x00\x0cA\x00\x00\x00\x01\xff\xff\xff\xffxxx')
cinject "a read with a short offset" < <(printf '\x00\x00\x00\x05G\x00\x00\x00\x01')
cinject "a read range with end < from" < <(printf '\x00\x00\x00\x11R\x00\x00\x00\x00\x00\x00\x00\x09\x00\x00\x00\x00\x00\x00\x00\x01')
check "the follower's control log names a rejection" grep -q "control: " "$T/n$F.log"
finish
