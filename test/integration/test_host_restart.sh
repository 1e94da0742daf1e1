#!/bin/bash
# test_restart.sh again with every node's log on a host (rlogctl node
# --host-transport): one listener and one connection per peer host, each
# log's messages in a channel of its own (lib/host/mux.c).
RLOG_NODE_ARGS="--host-transport --cluster-name itest" exec bash "$(dirname "$0")/test_restart.sh"
