"""A node loads only what it serves: without a metrics address, TLS or a script, the Prometheus
client, the Lua runtime, replicated objects and the tools above the node stay unimported (each
costs every start time and resident memory); the first ``EVAL`` then loads Lua and works, and
node metrics load the Prometheus client only when first scraped.

One fresh interpreter (``sys.modules`` of the test process is everyone's) parses ``pypaxos
node``'s arguments as the entry point does, starts a one-node ``NodeApp`` in its own loop,
serves ``SET``/``GET`` over the client port, then an ``EVAL``, and prints what was imported
after each step.  The second reading shows that the check sees a module once it is loaded.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from runtime_helpers import write_cluster

OPTIONAL_MODULES = (
    "lupa",
    "prometheus_client",
    "http.server",
    "cryptography",
    "rich",
    "pypaxos.kv.scripts",
    "pypaxos.runtime.metrics",
    "pypaxos.runtime.objects_port",
    "pypaxos.objects",
    "shutil",
)
"""Loaded on first use only: scripts, the metrics port, certificates, replicated objects, and
``shutil`` (with the bz2 and lzma libraries) for a backup's spool."""

TOOL_PACKAGES = (
    "sim", "modelcheck", "cluster", "testing", "explorer", "torture", "bench", "lincheck",
)  # fmt: skip
"""Packages a node never needs: reaching one is an import by accident."""

PROBE = r"""
import asyncio, json, sys
from pypaxos.cli.main import build_parser
from pypaxos.runtime.config import load_config

config_path = sys.argv[1]
build_parser(["node", "--config", config_path, "--id", "1"])  # imports what the entry does
from pypaxos.runtime.app import NodeApp

WATCHED = json.loads(sys.argv[2])
TOOLS = json.loads(sys.argv[3])


def loaded():
    names = [m for m in WATCHED if m in sys.modules]
    names += sorted(m for m in sys.modules if m.split(".")[:2] in [["pypaxos", t] for t in TOOLS])
    return names


def command(*words):
    out = b"*%d\r\n" % len(words)
    for word in words:
        out += b"$%d\r\n%s\r\n" % (len(word), word)
    return out


async def ask(port, *words):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for _ in range(3000):  # -TRYAGAIN until the one node has elected itself (60 s)
            writer.write(command(*words))
            await writer.drain()
            line = await reader.readline()
            if not line.startswith(b"-TRYAGAIN"):
                if line.startswith(b"$") and not line.startswith(b"$-1"):
                    line += await reader.readline()
                return line.decode()
            await asyncio.sleep(0.02)
        return "no leader"
    finally:
        writer.close()


async def main():
    app = NodeApp(load_config(config_path), 1)
    await app.start()
    try:
        port = int(app.member.client.rpartition(":")[2])
        replies = [await ask(port, b"SET", b"k", b"v"), await ask(port, b"GET", b"k")]
        served = loaded()
        replies.append(await ask(port, b"EVAL", b"return redis.call('GET', KEYS[1])", b"1", b"k"))
        after_eval = loaded()
        from pypaxos.runtime.metrics import NodeMetrics  # a node with a metrics address

        metrics = NodeMetrics(1)
        metrics.committed(1)
        metrics.observe_commit(0.001)
        counting = loaded()
        scraped = b"pypaxos_commands_committed_total 1.0" in metrics.exposition()
        print(json.dumps({"replies": replies, "served": served, "after_eval": after_eval,
                          "counting": counting, "scraped": scraped, "after_scrape": loaded()}))
    finally:
        await app.stop()


asyncio.run(main())
"""


def test_a_plain_node_imports_nothing_optional_until_a_script_runs(tmp_path: Path) -> None:
    config = write_cluster(tmp_path, 1)
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(config),
         json.dumps(OPTIONAL_MODULES), json.dumps(TOOL_PACKAGES)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["replies"] == ["+OK\r\n", "$1\r\nv\r\n", "$1\r\nv\r\n"]
    assert report["served"] == []
    # The same check sees the Lua runtime once the first script has loaded it.
    assert {"lupa", "pypaxos.kv.scripts"} <= set(report["after_eval"])
    assert "prometheus_client" not in report["after_eval"]
    # With a metrics address the node counts in plain numbers; the client loads at a scrape.
    assert "prometheus_client" not in report["counting"]
    assert report["scraped"] is True
    assert "prometheus_client" in report["after_scrape"]
