#!/bin/bash
# test_tls_cluster.sh again with every node's log on a host (rlogctl node
# --host-transport): mutual TLS between hosts, impostors refused on the
# host's connection (counted in each log's status too).
RLOG_NODE_ARGS="--host-transport" exec bash "$(dirname "$0")/test_tls_cluster.sh"
