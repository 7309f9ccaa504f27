"""What ``pypaxos node`` imports before it serves: the node's own packages, not the linter,
the simulator, the cluster tools, the certificate library, the Prometheus client or Lua (each
one is megabytes of resident memory in every node process; they are imported when
``--machine``, ``--join``, a metrics address or a script needs them)."""

from __future__ import annotations

import subprocess
import sys

NOT_AT_START = (
    "pypaxos.testing",
    "pypaxos.sim",
    "pypaxos.cluster",
    "pypaxos.client",
    "pypaxos.cli.lint_machine",
    "pypaxos.cli.remote",
    "cryptography",
    # Loaded on first use (tests/runtime/test_runtime_start_imports.py starts a node): the
    # metrics port's Prometheus client, the first script's Lua, ``--machine`` 's objects.
    "prometheus_client",
    "pypaxos.runtime.metrics",
    "lupa",
    "pypaxos.kv.scripts",
    "pypaxos.objects",
    "pypaxos.runtime.objects_port",
    # ``shutil`` loads the bz2 and lzma libraries: a backup's spool removal imports it.
    "shutil",
    "bz2",
    "lzma",
)


def test_a_node_imports_only_what_it_serves_with() -> None:
    script = "import sys, pypaxos.cli.node\nprint('\\n'.join(sorted(sys.modules)))\n"
    loaded = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    ).stdout.split()
    assert "pypaxos.runtime.app" in loaded  # the probe imported the node for real
    unwanted = [m for m in loaded if m.startswith(NOT_AT_START)]
    assert unwanted == []
