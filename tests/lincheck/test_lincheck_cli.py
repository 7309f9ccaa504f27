"""``pypaxos lincheck``: exit codes and what it prints."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pypaxos.cli.main import main


def write_history(path: Path, *events: tuple[int, str, str, object]) -> Path:
    path.write_text(
        "".join(
            json.dumps({"process": p, "type": t, "f": f, "key": "k1", "value": v}) + "\n"
            for p, t, f, v in events
        )
    )
    return path


GOOD = (
    (1, "invoke", "write", "v1"),
    (2, "invoke", "read", None),
    (1, "ok", "write", "v1"),
    (2, "ok", "read", "v1"),
)
STALE = (
    (1, "invoke", "write", "v1"),
    (1, "ok", "write", "v1"),
    (1, "invoke", "write", "v2"),
    (1, "ok", "write", "v2"),
    (2, "invoke", "read", None),
    (2, "ok", "read", "v1"),
)


def test_linearizable_history_exits_0_with_a_one_line_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_history(tmp_path / "good.jsonl", *GOOD)
    assert main(["lincheck", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    assert out.startswith("linearizable: 2 operations, 1 keys")
    assert " s\n" in out


def test_violation_exits_1_and_names_the_key_and_operations(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_history(tmp_path / "stale.jsonl", *STALE)
    assert main(["lincheck", str(path), "--timeout", "30"]) == 1
    out = capsys.readouterr().out
    assert "NOT linearizable" in out
    assert "key 'k1'" in out
    assert 'read k1 -> "v1"   (process 2, lines 5..6)' in out
    assert 'lines 3..4  process    1  write k1 "v2"' in out
    assert 'orders that get this far leave the register at: "v2"' in out


def test_missing_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lincheck", str(tmp_path / "absent.jsonl")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_malformed_file_exits_2_naming_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_history(tmp_path / "bad.jsonl", *GOOD)
    path.write_text(path.read_text() + "{oops\n")
    assert main(["lincheck", str(path)]) == 2
    assert "line 5: not valid JSON" in capsys.readouterr().err


def test_binary_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "blob"
    path.write_bytes(b"\xff\xfe\x00garbage")
    assert main(["lincheck", str(path)]) == 2
    assert "not UTF-8" in capsys.readouterr().err


def test_bad_timeout_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_history(tmp_path / "good.jsonl", *GOOD)
    assert main(["lincheck", str(path), "--timeout", "0"]) == 2
    assert "--timeout" in capsys.readouterr().err


def test_timeout_exits_3_undecided(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    events = [(p, "invoke", "write", f"v{p}") for p in range(18)]
    events += [(99, "invoke", "read", None), (99, "ok", "read", "ghost")]
    events += [(p, "ok", "write", f"v{p}") for p in range(18)]
    path = write_history(tmp_path / "hard.jsonl", *events)
    assert main(["lincheck", str(path), "--timeout", "0.2"]) == 3
    assert "undecided" in capsys.readouterr().out


def test_subprocess_reads_stdin_and_has_help() -> None:
    text = "".join(
        json.dumps({"process": p, "type": t, "f": f, "key": "k1", "value": v}) + "\n"
        for p, t, f, v in STALE
    )
    done = subprocess.run(
        [sys.executable, "-m", "pypaxos", "lincheck", "-"],
        input=text,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert "NOT linearizable" in done.stdout
    shown = subprocess.run(
        [sys.executable, "-m", "pypaxos", "lincheck", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert shown.returncode == 0
    assert "--timeout SECONDS" in shown.stdout
    usage = subprocess.run(
        [sys.executable, "-m", "pypaxos", "lincheck"], capture_output=True, text=True, check=False
    )
    assert usage.returncode == 2
