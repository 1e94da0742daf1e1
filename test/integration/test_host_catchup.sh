#!/bin/bash
# test_catchup.sh again with every node's log on a host (rlogctl node
# --host-transport): catch-up by segment fetch over the hosts' shared
# connections (lib/host/mux.c).
CATCHUP_NODE_ARGS="--host-transport --cluster-name itest" exec bash "$(dirname "$0")/test_catchup.sh"
