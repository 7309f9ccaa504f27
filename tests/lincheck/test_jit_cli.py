"""``pypaxos lincheck --checker wgl|jit|both`` over files and directories, and its exit codes."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from pypaxos.cli import lincheck as cmd_lincheck
from pypaxos.cli.usage import UsageError


def lincheck(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="pypaxos lincheck")
    cmd_lincheck.add_arguments(parser)
    return cmd_lincheck.run(parser.parse_args(argv))


def write(path: Path, rows: list[tuple[object, str, str, object]]) -> Path:
    lines = [
        json.dumps({"process": p, "type": t, "f": f, "key": "k", "value": v}) for p, t, f, v in rows
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


GOOD = [(1, "invoke", "write", "a"), (1, "ok", "write", "a"), (2, "invoke", "read", None),
        (2, "ok", "read", "a")]  # fmt: skip
STALE = [(1, "invoke", "write", "a"), (1, "ok", "write", "a"), (2, "invoke", "read", None),
         (2, "ok", "read", None)]  # fmt: skip


def test_default_checker_is_unchanged_one_line_and_no_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert lincheck([str(write(tmp_path / "h.jsonl", GOOD))]) == 0
    out = capsys.readouterr().out
    assert out.startswith("linearizable") and "lincheck (" not in out


def test_jit_checker_accepts_and_rejects(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert lincheck([str(write(tmp_path / "good.jsonl", GOOD)), "--checker", "jit"]) == 0
    assert capsys.readouterr().out.startswith("linearizable: 4 events, 2 operations on 1 keys")
    assert lincheck([str(write(tmp_path / "bad.jsonl", STALE)), "--checker", "jit"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("violation") and "returning at line 4 (invoked at line 3)" in out


def test_both_on_one_file_prints_each_verdict_and_a_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert lincheck([str(write(tmp_path / "bad.jsonl", STALE)), "--checker", "both"]) == 1
    out = capsys.readouterr().out
    assert "\nwgl: " in "\n" + out and "\njit: violation" in out
    assert "1 files, 4 events, 0 linearizable, 1 not, 0 undecided, 0 malformed, " in out
    assert "0 disagreements" in out


def test_a_directory_is_checked_file_by_file_in_natural_order(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for seed in (10, 2, 1):
        write(tmp_path / f"seed-{seed}.jsonl", GOOD)
    write(tmp_path / "seed-3.jsonl", STALE)
    (tmp_path / "notes.txt").write_text("not a history\n")
    assert lincheck([str(tmp_path), "--checker", "both"]) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"{tmp_path / 'seed-3.jsonl'}: violation")  # only problems listed
    summary = out.splitlines()[-1]
    assert summary.startswith("lincheck (both): 4 files, 16 events, 3 linearizable, 1 not")
    assert "0 disagreements" in summary and "jit " in summary and "wgl " in summary


def test_files_and_directories_mix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "d").mkdir()
    write(tmp_path / "d" / "a.jsonl", GOOD)
    one = write(tmp_path / "b.jsonl", GOOD)
    assert lincheck([str(tmp_path / "d"), str(one), "--checker", "jit"]) == 0
    assert "lincheck (jit): 2 files, 8 events, 2 linearizable" in capsys.readouterr().out


def test_a_disagreement_exits_3_and_prints_both_verdicts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def wrong(lines: list[str], timeout: float | None) -> cmd_lincheck.Verdict:
        return cmd_lincheck.Verdict("violation", "violation: planted for the test", 0.0)

    monkeypatch.setattr(cmd_lincheck, "_jit", wrong)
    write(tmp_path / "a.jsonl", GOOD)
    write(tmp_path / "b.jsonl", STALE)
    assert lincheck([str(tmp_path), "--checker", "both"]) == 3
    out = capsys.readouterr().out
    assert f"DISAGREEMENT on {tmp_path / 'a.jsonl'}:" in out
    assert "  wgl: linearizable" in out and "  jit: violation: planted for the test" in out
    assert "1 disagreements" in out.splitlines()[-1]


def test_malformed_file_exits_2_alone_or_in_a_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"process": 1, "type": "ok", "f": "read", "key": "k", "value": null}\n')
    with pytest.raises(UsageError):
        lincheck([str(broken), "--checker", "jit"])
    write(tmp_path / "good.jsonl", GOOD)
    assert lincheck([str(tmp_path), "--checker", "both"]) == 2
    assert "1 linearizable, 0 not, 0 undecided, 1 malformed" in capsys.readouterr().out


def test_undecided_exits_3(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = GOOD * 40
    rows = [(i // 2, t, f, v) for i, (_, t, f, v) in enumerate(rows)]
    path = write(tmp_path / "long.jsonl", rows)
    assert lincheck([str(path), "--checker", "jit", "--timeout", "1e-9"]) == 3
    assert "unknown" in capsys.readouterr().out


def test_bad_arguments(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match=r"without \*\.jsonl"):
        lincheck([str(tmp_path / "empty")])
    with pytest.raises(UsageError, match="cannot read"):
        lincheck([str(tmp_path / "missing.jsonl"), "--checker", "jit"])
    with pytest.raises(UsageError, match="only once"):
        lincheck(["-", "-"])
    with pytest.raises(SystemExit):
        lincheck([str(tmp_path), "--checker", "knossos"])
