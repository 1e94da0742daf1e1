#!/usr/bin/env bash
# mkcerts.sh DIR CLUSTER ID... — throwaway certificates for a liblog cluster
# with mutual TLS: a CA and, per node id, a certificate and key whose
# subjectAltName is URI:rlog://CLUSTER/ID (the node's identity) and
# IP:127.0.0.1.
#
#   DIR/ca.crt  DIR/ca.key         the CA (made once; reused if present, so
#                                  running again adds nodes to the same CA)
#   DIR/node-ID.crt DIR/node-ID.key  one pair per ID
#
# Keys are Ed25519, files 0600, DIR 0700. For tests and trying things out:
# a real deployment keeps the CA key offline and sets its own lifetimes.
set -euo pipefail

usage() { echo "usage: $0 DIR CLUSTER ID..." >&2; exit 2; }
[ $# -ge 3 ] || usage
dir=$1 cluster=$2
shift 2

# The same rules as the library's (lib/tls/tls.c): a cluster of 1..64 bytes
# of [A-Za-z0-9._-]; ids decimal, 1..2^63-1, no leading zero.
if ! [[ $cluster =~ ^[A-Za-z0-9._-]{1,64}$ ]]; then
    echo "mkcerts: bad cluster name '$cluster' (1..64 of [A-Za-z0-9._-])" >&2; exit 2
fi
for id in "$@"; do
    if ! [[ $id =~ ^[1-9][0-9]{0,18}$ ]] ||
       { [ ${#id} -eq 19 ] && [[ $id > 9223372036854775807 ]]; }; then
        echo "mkcerts: bad node id '$id' (1..9223372036854775807)" >&2; exit 2
    fi
done

command -v openssl >/dev/null || { echo "mkcerts: openssl not found" >&2; exit 1; }
umask 077
mkdir -p "$dir"
chmod 0700 "$dir"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# openssl, quiet unless it fails.
ossl() { openssl "$@" 2>"$tmp/err" || { cat "$tmp/err" >&2; exit 1; }; }

if [ ! -f "$dir/ca.key" ] || [ ! -f "$dir/ca.crt" ]; then
    ossl genpkey -algorithm ed25519 -out "$dir/ca.key"
    ossl req -x509 -new -key "$dir/ca.key" -days 3650 \
        -subj "/CN=liblog CA $cluster" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -out "$dir/ca.crt"
fi

for id in "$@"; do
    key="$dir/node-$id.key" crt="$dir/node-$id.crt"
    ossl genpkey -algorithm ed25519 -out "$key"
    ossl req -new -key "$key" -subj "/CN=$cluster node $id" -out "$tmp/req.csr"
    cat >"$tmp/ext.cnf" <<EOF
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth,clientAuth
subjectAltName=URI:rlog://$cluster/$id,IP:127.0.0.1
EOF
    ossl x509 -req -in "$tmp/req.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" \
        -set_serial "0x$(openssl rand -hex 16)" -days 825 \
        -extfile "$tmp/ext.cnf" -out "$crt"
    chmod 0600 "$key" "$crt"
done
chmod 0600 "$dir/ca.key" "$dir/ca.crt"
