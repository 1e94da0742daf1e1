#!/bin/bash
# footprint.sh — disk use of a log as it grows (issue 15, item 3): a 3-node
# cluster on 127.0.0.1, node 1's data directory measured with du (allocated
# bytes, as a disk sees them) when the log is empty (cluster formed, no
# record), after one record, and after MIB MiB of records (default 1024).
#   bench/footprint.sh [MIB]        (make bench-footprint)
# Environment: RLOGCTL (default build/examples/rlogctl), RECORD (bytes per
# record, default 8192), KEEP=1 keeps the directory.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
RLOGCTL=${RLOGCTL:-$ROOT/build/examples/rlogctl}
MIB=${1:-1024}
RECORD=${RECORD:-8192}
DIR=$(mktemp -d "${TMPDIR:-/tmp}/rlog-footprint.XXXXXX") || exit 1
declare -A PID=()
cleanup() {
    for p in "${PID[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    [ "${KEEP:-0}" = 1 ] && echo "footprint: kept $DIR" || rm -rf "$DIR"
}
trap cleanup EXIT
die() { echo "footprint: $*" >&2; exit 1; }

base=$((20000 + RANDOM % 20000))
C=1=127.0.0.1:$base,2=127.0.0.1:$((base + 1)),3=127.0.0.1:$((base + 2))
for i in 1 2 3; do
    mkdir -p "$DIR/n$i"
    "$RLOGCTL" node --id "$i" --data "$DIR/n$i" --cluster "$C" >"$DIR/n$i.log" 2>&1 &
    PID[$i]=$!
done
ctl() { echo "$DIR/n$1/control.sock"; }
deadline=$((SECONDS + 30))
until "$RLOGCTL" status --control "$(ctl 1)" --timeout 2 2>/dev/null | grep -Eq "^leader(_id)? +[1-3]"; do
    [ $SECONDS -lt $deadline ] || die "no leader within 30 s: $(tail -n 3 "$DIR/n1.log")"
    sleep 0.2
done
sleep 1 # let the spare segments be made
use() { du -sB1 "$DIR/n1" | awk '{ printf "%.1f MiB", $1 / 1048576 }'; }
files() { ls "$DIR/n1" | grep -c '\.log$'; }
echo "footprint: node 1's data directory (du, allocated bytes; segment files)"
printf '  empty log           %12s  (%s segment files)\n' "$(use)" "$(files)"
echo one | "$RLOGCTL" append --control "$(ctl 1)" >/dev/null || die "append failed"
sleep 1
printf '  one record          %12s  (%s segment files)\n' "$(use)" "$(files)"
n=$((MIB * 1048576 / RECORD))
start=$(date +%s.%N)
python3 -c "
import sys
line = b'x' * ($RECORD - 1) + b'\n'
out = sys.stdout.buffer
for _ in range($n): out.write(line)
" | "$RLOGCTL" append --control "$(ctl 1)" --timeout 120 >/dev/null || die "bulk append failed"
secs=$(echo "$(date +%s.%N) - $start" | bc)
sleep 1
printf '  %5d MiB of records %12s  (%s segment files; appended in %.1f s)\n' "$MIB" "$(use)" "$(files)" "$secs"
