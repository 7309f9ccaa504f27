#!/bin/bash
# One run of the stall measurement in docs/performance.md ("Snapshots"): a 3-node cluster of the
# source tree SRC (PYTHONPATH; this tree: "$PWD/src", another: an unpacked `git archive REV src`),
# tools/commit_gaps.py watching every node, redis-benchmark on the leader, then INFO, RSS, logs.
# usage: tools/stall_ab.sh NAME SRC BASEPORT   (from the repository root; data in /tmp/stall-NAME)
NAME=$1; SRC=$2; PORT=$3
cd "$(dirname "$0")/.."
DATA=/tmp/stall-$NAME
rm -rf $DATA
PYTHONPATH=$SRC .venv/bin/pypaxos cluster up --data $DATA --base-port $PORT --fsync always || exit 1
LEADER=$(.venv/bin/python - <<PY
import redis
for p in ($PORT, $PORT+1, $PORT+2):
    if redis.Redis(port=p).info("paxos").get("paxos_role") == "leader": print(p); break
PY
)
echo "leader $LEADER"
.venv/bin/python tools/commit_gaps.py --ports $PORT,$((PORT+1)),$((PORT+2)) --duration-s 300 > $DATA-gaps.txt 2>&1 &
GAPS=$!
sleep 1
redis-benchmark -p $LEADER -t set -r 1000000 -n 2000000 -P 32 -c 32 > $DATA-bench.txt 2>&1
wait $GAPS
grep -A3 "throughput summary" $DATA-bench.txt
cat $DATA-gaps.txt
for p in $PORT $((PORT+1)) $((PORT+2)); do .venv/bin/python -c "
import redis; t=redis.Redis(port=$p).info('paxos'); print($p, {k: t.get(k) for k in ('paxos_role','applied_index','snapshots_saved','snapshot_fork_ms','ballot')})"; done
grep -h "slow batch\|became leader\|snapshot" $DATA/node-*/*.log 2>/dev/null | tail -20
for n in 1 2 3; do pid=$(cat $DATA/node-$n/node.pid 2>/dev/null | head -1); echo "node $n rss_kib $(ps -o rss= -p $pid)"; done
PYTHONPATH=$SRC .venv/bin/pypaxos cluster down --data $DATA
rm -rf $DATA $DATA-gaps.txt $DATA-bench.txt
