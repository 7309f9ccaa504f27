#!/bin/sh
# Starts one pypaxos node in a container: `pypaxos node --config FILE --id N [ARGS...]`.
#
# The id is $PYPAXOS_ID, or else the host name's ($HOSTNAME's) ordinal plus one: a StatefulSet's pod
# pypaxos-0 is node 1, pypaxos-2 node 3 (compose and podman name their hosts the same way).
# The node refuses a peer secret file that others may read, and an orchestrator's secret
# files are group-readable (Kubernetes with fsGroup) or owned by another user (compose), so
# the secret is copied from $PYPAXOS_PEER_SECRET_SOURCE into a private file first, where
# cluster.toml's peer_secret_file names it.
#
# A node with no data yet (no identity.json in $PYPAXOS_DATA_DIR/node-N) joins the running
# cluster as a learner, `--join $PYPAXOS_JOIN --user $PYPAXOS_JOIN_USER` with the password from
# $PYPAXOS_PASSWORD_SOURCE, when it is not one of cluster.toml's initial_members (a StatefulSet
# scaled up) or the cluster is `bootstrapped = true` (a first voter whose volume was lost: the
# cluster refuses it while it is still a voter, so it fails until `pypaxos member remove N`,
# then joins afresh).  The operator promotes it.  At the first start (not bootstrapped) the
# first voters start empty, as voters.
set -eu

config=${PYPAXOS_CONFIG:-/etc/pypaxos/cluster.toml}
secret_source=${PYPAXOS_PEER_SECRET_SOURCE:-/run/secrets/pypaxos/peer-secret}
secret_copy=${PYPAXOS_PEER_SECRET:-/run/pypaxos/peer.secret}
data_dir=${PYPAXOS_DATA_DIR:-/var/lib/pypaxos}
password_source=${PYPAXOS_PASSWORD_SOURCE:-$(dirname "$secret_source")/password}

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

initial=
bootstrapped=
if [ -f "$config" ]; then
    initial=$(sed -n 's/^initial_members *= *\[\(.*\)\].*/\1/p' "$config" | tr -d ' ')
    bootstrapped=$(sed -n 's/^bootstrapped *= *\([a-z]*\).*/\1/p' "$config")
fi
if [ -n "${PYPAXOS_JOIN:-}" ] && [ ! -e "$data_dir/node-$PYPAXOS_ID/identity.json" ]; then
    first_voter=no
    case ",$initial," in
        ,,) first_voter=yes ;; # no initial_members: every listed member is a first voter
        *",$PYPAXOS_ID,"*) first_voter=yes ;;
    esac
    case $first_voter,$bootstrapped in
        yes,true | no,*)
            if [ -n "${PYPAXOS_JOIN_USER:-}" ]; then
                [ -f "$password_source" ] || fail "joining needs the password in $password_source"
                PYPAXOS_PASSWORD=$(cat "$password_source")
                export PYPAXOS_PASSWORD
                set -- --user "$PYPAXOS_JOIN_USER" "$@"
            fi
            echo "pypaxos-entrypoint: node $PYPAXOS_ID joins the cluster at $PYPAXOS_JOIN" >&2
            set -- --join "$PYPAXOS_JOIN" "$@"
            ;;
    esac
fi

exec pypaxos node --config "$config" --id "$PYPAXOS_ID" "$@"
