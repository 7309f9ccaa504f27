#!/bin/sh
# Starts one pypaxos node in a container: `pypaxos node --config FILE --id N [ARGS...]`.
#
# The id is $PYPAXOS_ID, or else the host name's ($HOSTNAME's) ordinal plus one: a StatefulSet's pod
# pypaxos-0 is node 1, pypaxos-2 node 3 (compose and podman name their hosts the same way).
# The node refuses a peer secret file that others may read, and an orchestrator's secret
# files are group-readable (Kubernetes with fsGroup) or owned by another user (compose), so
# the secret is copied from $PYPAXOS_PEER_SECRET_SOURCE into a private file first, where
# cluster.toml's peer_secret_file names it.
set -eu

config=${PYPAXOS_CONFIG:-/etc/pypaxos/cluster.toml}
secret_source=${PYPAXOS_PEER_SECRET_SOURCE:-/run/secrets/pypaxos/peer-secret}
secret_copy=${PYPAXOS_PEER_SECRET:-/run/pypaxos/peer.secret}

fail() {
    echo "pypaxos-entrypoint: $*" >&2
    exit 2
}

if [ -z "${PYPAXOS_ID:-}" ]; then
    host=${HOSTNAME:-$(cat /proc/sys/kernel/hostname)}
    ordinal=${host##*-}
    case $ordinal in
        0) ;;
        '' | *[!0-9]* | 0*) fail "set PYPAXOS_ID, or name the host NAME-ORDINAL (got '$host')" ;;
    esac
    PYPAXOS_ID=$((ordinal + 1))
fi

if [ -f "$secret_source" ]; then
    mkdir -p "$(dirname "$secret_copy")" || fail "cannot make the folder of $secret_copy"
    (umask 077 && cat "$secret_source" >"$secret_copy.tmp" && mv "$secret_copy.tmp" "$secret_copy") \
        || fail "cannot copy the peer secret $secret_source to $secret_copy"
fi

exec pypaxos node --config "$config" --id "$PYPAXOS_ID" "$@"
