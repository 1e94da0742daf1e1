#!/bin/bash
# The control socket checks its caller's credentials (SO_PEERCRED), not only
# its file mode. Needs root (to act as another user) and setpriv: the test
# opens the socket's path to everyone (the file 0666, its directories
# 0711), then a client running as uid 65534 connects: the node must refuse
# it (closing the connection, with a logged line naming the uid), while the
# node's own user is still served.
. "$(dirname "$0")/lib.sh"
if [ "$(id -u)" != 0 ] || ! command -v setpriv >/dev/null; then
    ok "skipped: needs root and setpriv to connect as another user"
    finish
fi
start_cluster 3 || { not_ok "start a 3-node cluster"; finish; }
L=$(wait_leader) || { not_ok "a leader is elected"; finish; }
check "the control socket is created 0600" [ "$(stat -c %a "$(ctl 1)")" = 600 ]
chmod 0711 "$T" "$T/n1" && chmod 0666 "$(ctl 1)"
out=$(setpriv --reuid=65534 --regid=65534 --clear-groups "$RLOGCTL" status --control "$(ctl 1)" --timeout 3 2>&1)
rc=$?
check "uid 65534 gets no status through a socket opened to it (exit $rc: ${out%%$'\n'*})" \
    [ $rc -ne 0 ]
check "node 1 logs the refused caller" wait_log 1 "refused a caller with uid 65534"
check "the node's own user is still served" [ -n "$(status_of 1 role)" ]
check "node 1 alive" alive 1
finish
