"""The large-data scenario's pieces: the stall detectors, the fill, the arithmetic of memory per
key and of the report, and one tiny run of the whole scenario on real processes.

The stall detectors are shown to catch a planted stall (a fake server that freezes its commit
index, or its replies, for a known time): the only assertions about time are lower bounds
that hold on any machine (a freeze of D cannot be measured as shorter than D).
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest

from pypaxos.bench import redis_benchmark, scale, stall
from pypaxos.transport.resp import RespParser


def _bench_module(name: str) -> ModuleType:
    """A script of bench/ (a directory of scripts, not a package), loaded from its file."""
    path = Path(__file__).resolve().parents[2] / "bench" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


report_scale = _bench_module("report_scale")

FREEZE_S = 0.3


# --- the pure analysis ---------------------------------------------------------------------


def test_longest_gap_finds_the_widest_interval_and_counts_those_over_100ms() -> None:
    times = [5.0, 5.05, 5.1, 5.6, 5.65, 5.9, 5.92]  # gaps .05 .05 .5 .05 .25 .02, unsorted below
    gaps = stall.longest_gap(list(reversed(times)))
    assert gaps.longest_s == pytest.approx(0.5)
    assert gaps.longest_from_s == pytest.approx(5.1)
    assert gaps.over_100ms == 2
    assert gaps.moves == len(times)
    # where each of them began and how long it was, to line up with the nodes' own timings
    assert [(round(a, 3), round(b, 3)) for a, b in gaps.spans_over_100ms] == [
        (5.1, 0.5),
        (5.65, 0.25),
    ]


def test_longest_gap_of_fewer_than_two_times_is_zero() -> None:
    assert stall.longest_gap([]).longest_s == 0.0
    assert stall.longest_gap([3.0]).longest_s == 0.0


def _sample(at_s: float, node: str, commit: int, ballot: str = "1.1") -> stall.InfoSample:
    return stall.InfoSample(at_s, node, commit, ballot, ballot.rpartition(".")[2])


def test_progress_counts_only_moves_of_the_clusters_highest_commit_index() -> None:
    samples = [
        _sample(0.00, "a", 10), _sample(0.01, "b", 8),
        _sample(0.05, "a", 20), _sample(0.06, "b", 15),  # b catching up: not progress
        _sample(0.10, "a", 30), _sample(0.11, "b", 30),
        # the leader freezes: nothing moves from 0.10 to 0.90
        _sample(0.50, "a", 30), _sample(0.51, "b", 30),
        _sample(0.90, "a", 31), _sample(0.95, "b", 31),
    ]  # fmt: skip
    assert stall.progress_times(samples) == [0.05, 0.10, 0.90]
    gaps = stall.progress_gaps(samples)
    assert gaps.longest_s == pytest.approx(0.8)
    assert gaps.longest_from_s == pytest.approx(0.10)


def test_leader_changes_count_new_ballots_on_any_node() -> None:
    steady = [_sample(t, n, 1, "3.1") for t in (0.0, 0.1) for n in "ab"]
    assert stall.leader_changes(steady) == 0
    moved = [*steady, _sample(0.2, "b", 1, "4.2"), _sample(0.3, "a", 1, "5.1")]
    assert stall.leader_changes(moved) == 2
    assert stall.leader_changes([_sample(0.0, "a", 1, "")]) == 0  # no leader known yet


def test_a_candidates_ballot_that_won_nothing_is_no_leader_change() -> None:
    def seen(at_s: float, node: str, ballot: str, role: str) -> stall.InfoSample:
        return stall.InfoSample(at_s, node, 1, ballot, "", role)

    samples = [
        seen(0.0, "a", "3.1", "leader"), seen(0.0, "b", "3.1", "follower"),
        seen(0.1, "b", "4.2", "candidate"),  # b stands and loses
        seen(0.2, "a", "5.1", "leader"),  # a is elected again at a higher ballot
        seen(0.3, "c", "6.3", "candidate"),
    ]  # fmt: skip
    assert stall.leader_changes(samples) == 1


REDIS_BENCHMARK_PLAIN = (
    b"SET: rps=0.0 (overall: -nan) avg_msec=-nan (overall: -nan)\r"
    b"SET: rps=1000.0 (overall: 1000.0) avg_msec=1.0 (overall: 1.0)\r"
    b"SET: rps=0.0 (overall: 800.0) avg_msec=-nan (overall: 1.0)\r"
    b"SET: rps=0.0 (overall: 600.0) avg_msec=-nan (overall: 1.0)\r"
    b"SET: rps=2000.0 (overall: 900.0) avg_msec=1.0 (overall: 1.0)\r"
    b"SET: rps=0.0 (overall: 850.5) avg_msec=-nan (overall: 1.0)\r"
    b"SET: rps=500.0 (overall: 860.0) avg_msec=1.0 (overall: 1.0)\r"
    b"====== SET ======\n  300000 requests completed in 2.46 seconds\n"
    b"Summary:\n  throughput summary: 121951.22 requests per second\n"
    b"  latency summary (msec):\n          avg       min       p50       p95       p99       max\n"
    b"        0.178     0.024     0.127     0.231     2.031     8.527\n"
)


def test_redis_benchmark_progress_lines_give_the_intervals_without_a_reply() -> None:
    rates = stall.interval_rates(REDIS_BENCHMARK_PLAIN)
    assert rates == [0.0, 1000.0, 0.0, 0.0, 2000.0, 0.0, 500.0]
    zeros, longest_s = stall.zero_intervals(rates)
    assert zeros == 3  # the leading one (before the first reply) is not a stall
    assert longest_s == pytest.approx(2 * stall.REDIS_BENCHMARK_INTERVAL_S)
    assert stall.overall_rate(REDIS_BENCHMARK_PLAIN) == pytest.approx(860.0)


def test_redis_benchmark_plain_summary_is_parsed() -> None:
    text = REDIS_BENCHMARK_PLAIN.decode().replace("\r", "\n")
    (result,) = redis_benchmark.parse_summary(text, 300000)
    assert (result.test, result.rps, result.p50_ms, result.p99_ms, result.max_ms) == (
        "set", 121951.22, 0.127, 2.031, 8.527,
    )  # fmt: skip


def test_memory_per_key_is_resident_bytes_over_keys_and_growth_over_the_empty_process() -> None:
    total, growth = scale.bytes_per_key(rss_kib=300_000, baseline_kib=100_000, keys=1_000_000)
    assert total == pytest.approx(300_000 * 1024 / 1_000_000)
    assert growth == pytest.approx(200_000 * 1024 / 1_000_000)
    assert all(x != x for x in scale.bytes_per_key(1, 1, 0))  # NaN, not a division error


def test_sizes_parse_and_print_in_both_directions() -> None:
    assert scale.parse_sizes("100k, 1m,10M,2500") == (100_000, 1_000_000, 10_000_000, 2500)
    assert [scale.size_name(n) for n in (100_000, 1_000_000, 2500)] == ["100k", "1m", "2500"]
    for bad in ("", "0", "k", "-5"):
        with pytest.raises(ValueError):
            scale.parse_sizes(bad)


def test_a_size_that_would_not_fit_in_memory_is_skipped_with_its_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(scale, "available_kib", lambda: 1024 * 1024)  # 1 GiB
    cfg = scale.ScaleConfig()
    assert scale.fits(100_000, 1000.0, cfg, tmp_path) is None  # 0.3 GB for 3 nodes
    reason = scale.fits(1_000_000, 1000.0, cfg, tmp_path)  # 2.8 GiB
    assert reason is not None and "GiB" in reason


def test_a_larger_size_is_estimated_from_the_largest_size_measured() -> None:
    assert scale.bytes_per_key_estimate({}) == scale.PRIOR_BYTES_PER_KEY
    # 100k keys carry the empty process (938 B/key), 1m far less of it (345): 10m is sized
    # from 1m's figure, whatever order the sizes were measured in.
    assert scale.bytes_per_key_estimate({100_000: 938.0, 1_000_000: 345.0}) == 345.0
    assert scale.bytes_per_key_estimate({1_000_000: 345.0, 100_000: 938.0}) == 345.0


def test_fill_commands_use_redis_benchmarks_key_names_and_parse_back() -> None:
    value = b"v%s" * 10  # a % in the value must not be taken for a format
    commands = RespParser().feed(scale.set_commands(998, 3, value))
    assert commands == [[b"SET", b"key:%012d" % i, value] for i in (998, 999, 1000)]


def test_fill_replies_are_split_by_line_and_anything_else_is_refused() -> None:
    lines, rest = scale.split_replies(b"+OK\r\n-TRYAGAIN no leader\r\n+OK\r\n+O", 5)
    assert lines == [b"+OK", b"-TRYAGAIN no leader", b"+OK"] and rest == b"+O"
    lines, rest = scale.split_replies(b"+OK\r\n+OK\r\n", 1)
    assert lines == [b"+OK"] and rest == b"+OK\r\n"
    with pytest.raises(scale.FillError):
        scale.split_replies(b"$3\r\nabc\r\n", 1)


# --- report arithmetic ---------------------------------------------------------------------


def _system(tput: float, stall_s: float, changes: int, per_key: float, restart_s: float) -> dict:
    phase = {
        "worst_s": stall_s, "leader_changes": changes,
        "commit_gap": {"longest_s": stall_s, "over_100ms": int(stall_s > 0.1)},
        "probe_gap": {"longest_s": stall_s / 2},
    }  # fmt: skip
    return {
        "load": {"throughput": tput, "aborted": []},
        "fill": {"rate": tput},
        "stall": {"fill": phase, "load": phase},
        "memory": {"bytes_per_key": per_key, "settled_bytes_per_key": per_key * 0.9},
        "restart": {"caught_up_s": restart_s, "serving_s": restart_s},
        "wipe": {"caught_up_s": 2.0, "transfer_mb_per_s": 150.0, "moved_bytes": 300e6,
                 "snapshot_transfer_mb_per_s": 400.0, "snapshot_receive_ms": 750},
    }  # fmt: skip


def test_report_rows_and_targets_from_synthetic_sizes() -> None:
    data = {
        "scale": [
            {"keys": 100_000, "name": "100k",
             "pypaxos": _system(100_000, 0.05, 0, 600, 1.0),
             "redis": _system(200_000, 0.02, 0, 400, 1.0)},
            {"keys": 1_000_000, "name": "1m",
             "pypaxos": _system(80_000, 0.4, 1, 700, 5.0),
             "redis": _system(200_000, 0.02, 0, 350, 2.0)},
            {"keys": 10_000_000, "name": "10m", "skipped": "needs 20 GiB"},
        ]
    }  # fmt: skip
    table = report_scale.rows(data)
    assert [r["name"] for r in table] == ["100k", "1m", "10m"]
    assert table[1]["memory_ratio"] == pytest.approx(2.0)
    assert table[1]["restart_ratio"] == pytest.approx(2.5)
    assert table[1]["stall_s"] == pytest.approx(0.4)
    assert table[1]["leader_changes"] == 2  # one in each phase
    verdicts = {goal.split(" ")[0] + goal.split(" ")[1]: met for goal, _, met in
                report_scale.targets(table)}  # fmt: skip
    assert verdicts["noleader"] is False  # 400 ms and two leader changes
    assert verdicts["throughputat"] is False  # 80,000 < 90% of 100,000
    assert verdicts["residentmemory"] is False  # 1.5x at 100k, 2x at 1m
    assert verdicts["restartwithin"] is False  # 2.5x at 1m
    assert verdicts["snapshottransfer"] is True
    data["scale"][0]["pypaxos"]["leader_changes_logged"] = 1  # one the polls missed
    text = "\n".join(report_scale.section(data))
    assert "skipped: needs 20 GiB" in text and "| 1m | 80,000 | 200,000 | 0.40 |" in text
    assert "| 0 (1 logged) |" in text
    # Both rates, labelled: the whole rebuild (the target's verdict) and the transfer alone.
    assert "| 2.00 | 150.0 | 400.0 (750) |" in text
    assert "1m: 150.0 MB/s whole rebuild (400.0 MB/s the transfer alone)" in text
    assert "1m: 630 against Redis's 315 B/key (2.00x)" in text  # the settled reading
    data["scale"][1]["pypaxos"]["wipe"] = {
        "error": "stayed at index 0", "log_errors": ["ERROR x: MessageTooLarge"],
        "caught_up_s": None, "transfer_mb_per_s": None,
    }  # fmt: skip
    text = "\n".join(report_scale.section(data))
    assert "At 1m keys the wiped follower did not catch up: stayed at index 0" in text
    assert "MessageTooLarge" in text


def test_the_snapshot_transfer_rate_is_the_received_bytes_over_the_nodes_receive_time() -> None:
    info = {"snapshot_first_chunk_ms": "412", "snapshot_receive_ms": "800",
            "snapshot_receive_bytes": "120000000"}  # fmt: skip
    timing = scale.received_snapshot_timing(info)
    assert timing["snapshot_first_chunk_ms"] == 412
    assert timing["snapshot_transfer_mb_per_s"] == pytest.approx(150.0)
    none_installed = {"snapshot_first_chunk_ms": "0", "snapshot_receive_ms": "0",
                      "snapshot_receive_bytes": "0"}  # fmt: skip
    assert scale.received_snapshot_timing(none_installed)["snapshot_transfer_mb_per_s"] is None
    assert scale.received_snapshot_timing({})["snapshot_receive_bytes"] is None


# --- the detectors and the fill against a fake server ---------------------------------------


class FakeNode:
    """A server that answers ``SET`` (every ``refuse_every``-th with ``-TRYAGAIN``, storing the
    rest) and ``INFO`` (a commit index that grows with each answer), and can freeze: its
    commit index and its replies stop for ``FREEZE_S`` once ``freeze()`` is called."""

    def __init__(self, refuse_every: int = 0) -> None:
        self.refuse_every = refuse_every
        self.received = 0
        self.stored: set[bytes] = set()
        self.commit_index = 0
        self.frozen_until = 0.0
        self.applied_max = 10**9  # where its applied index stops (a stuck recovery)
        self.server: asyncio.Server | None = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    def freeze(self) -> None:
        self.frozen_until = time.monotonic() + FREEZE_S

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        parser = RespParser()
        try:
            while data := await reader.read(65536):
                replies = []
                for command in parser.feed(data):
                    if (wait := self.frozen_until - time.monotonic()) > 0:
                        await asyncio.sleep(wait)
                    replies.append(self._answer(command))
                writer.write(b"".join(replies))
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    def _answer(self, command: list[bytes]) -> bytes:
        if command[0].upper() == b"INFO":
            self.commit_index += 1
            applied = min(self.commit_index, self.applied_max)
            body = b"# Paxos\r\npaxos_role:leader\r\nballot:1.1\r\n"
            body += b"commit_index:%d\r\napplied_index:%d\r\n" % (self.commit_index, applied)
            return b"$%d\r\n%s\r\n" % (len(body), body)
        self.received += 1
        if self.refuse_every and self.received % self.refuse_every == 0:
            return b"-TRYAGAIN no leader\r\n"
        self.stored.add(command[1])
        return b"+OK\r\n"


def test_fill_writes_every_key_again_until_none_is_refused() -> None:
    async def main() -> tuple[scale.FillResult, FakeNode]:
        node = FakeNode(refuse_every=7)
        address = await node.start()
        try:
            return await scale.fill(address, 5000, 16, connections=3, batch=100), node
        finally:
            await node.stop()

    result, node = asyncio.run(main())
    assert node.stored == {b"key:%012d" % i for i in range(5000)}
    assert result.errors == node.received - 5000 > 0  # every refusal was written again
    assert result.error_kinds == {"TRYAGAIN": result.errors}


def test_the_detectors_catch_a_planted_freeze() -> None:
    async def main() -> tuple[stall.Gaps, stall.Gaps]:
        node = FakeNode()
        address = await node.start()
        watch = scale.Watch.start(address, [address])
        try:
            await asyncio.sleep(0.3)
            node.freeze()
            await asyncio.sleep(FREEZE_S + 0.3)
        finally:
            await watch.stop()
            await node.stop()
        assert watch.poller is not None
        return stall.progress_gaps(watch.poller.samples), watch.probe.gaps()

    commit_gaps, probe_gaps = asyncio.run(main())
    assert commit_gaps.longest_s >= FREEZE_S * 0.99
    assert probe_gaps.longest_s >= FREEZE_S * 0.99
    assert commit_gaps.moves > 3 and probe_gaps.moves > 3  # it ran before and after


def test_a_recovery_whose_applied_index_stops_is_reported_stuck() -> None:
    async def main() -> None:
        node = FakeNode()
        node.applied_max = 5
        address = await node.start()
        try:
            answered_s, caught_up_s = await scale._wait_caught_up(address, 3, 30.0, 0.3)
            assert answered_s is not None and caught_up_s >= answered_s  # reached 3: fine
            with pytest.raises(scale.RecoveryStuckError, match="stayed at index 5"):
                await scale._wait_caught_up(address, 1000, 30.0, 0.3)
        finally:
            await node.stop()

    asyncio.run(main())


def test_the_last_distinct_error_lines_of_a_node_log_explain_a_stuck_recovery(
    tmp_path: Path,
) -> None:
    log = tmp_path / "node.log"
    log.write_text(
        "08:00:00 INFO a: started\n"
        "08:00:01 ERROR a: cannot send to 2: MessageTooLarge\n"
        "08:00:02 WARNING a: slow batch\n"
        "08:00:03 ERROR a: cannot send to 2: MessageTooLarge\n"
        "08:00:04 ERROR a: something else\n"
    )
    assert scale._log_errors(log) == [
        "ERROR a: something else", "ERROR a: cannot send to 2: MessageTooLarge",
    ]  # fmt: skip
    assert scale._log_errors(tmp_path / "missing.log") == []


# --- the whole scenario, tiny, on real processes ---------------------------------------------


@pytest.mark.skipif(
    not (shutil.which("redis-benchmark") and shutil.which("redis-server")),
    reason="needs Debian's redis-tools and redis-server",
)
def test_a_tiny_scale_run_on_a_real_cluster_and_redis(tmp_path: Path) -> None:
    cfg = scale.ScaleConfig(sizes=(2000,), run_s=0.5, data_root=tmp_path)
    (entry,) = asyncio.run(scale.bench_scale(cfg))
    assert "skipped" not in entry, entry
    for system in ("pypaxos", "redis"):
        result = entry[system]
        assert "failed" not in result, result
        assert result["fill"]["keys"] == 2000
        assert result["load"]["throughput"] > 0
        assert result["memory"]["keys"] >= 2000  # and the probe's few keys
        assert result["memory"]["bytes_per_key"] > 0
        assert result["memory"]["settled_bytes_per_key"] > 0
        assert result["stall"]["load"]["probe_acks"] >= 0
    ours = entry["pypaxos"]
    assert ours["stall"]["load"]["info_samples"] > 0
    assert ours["leader_changes_logged"] >= 0  # the first election is not a change
    assert ours["restart"]["caught_up_s"] is not None
    assert ours["wipe"]["goal_index"] > 0
    assert isinstance(ours["wipe"]["snapshot_receive_bytes"], int)  # the node's INFO was read
    assert entry["redis"]["restart"]["serving_s"] > 0
    assert list(tmp_path.iterdir()) == []  # the data directories are gone


def test_nodes_started_inside_cached_bytecode_keep_their_bytecode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    monkeypatch.delenv("PYTHONPYCACHEPREFIX", raising=False)
    with scale.cached_bytecode(tmp_path / "pycache"):
        assert "PYTHONDONTWRITEBYTECODE" not in os.environ
        assert os.environ["PYTHONPYCACHEPREFIX"] == str(tmp_path / "pycache")
        code = "import sys; print(sys.dont_write_bytecode, sys.pycache_prefix)"
        shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert shown.stdout.split() == ["False", str(tmp_path / "pycache")]
        # Compiled before any node starts, as an installer would have: a node's first start
        # compiles nothing (its garbage would count in the empty process's memory).
        assert list((tmp_path / "pycache").rglob("cli/node.*.pyc"))
        assert list((tmp_path / "pycache").rglob("runtime/app.*.pyc"))
    assert os.environ["PYTHONDONTWRITEBYTECODE"] == "1"  # as it was
    assert "PYTHONPYCACHEPREFIX" not in os.environ


# --- --limits ------------------------------------------------------------------------------


def test_limits_parse_known_keys_and_refuse_the_rest() -> None:
    assert scale.parse_limits("") == {}
    assert scale.parse_limits("snapshot_growth_percent=100, log_retained_bytes_max=4096") == {
        "snapshot_growth_percent": 100,
        "log_retained_bytes_max": 4096,
    }
    refused = {
        "no_such_key=1": "unknown",
        "snapshot_growth_percent": "KEY=VALUE",
        "snapshot_growth_percent=ten": "integer",
        "snapshot_growth_percent=101": "range",
        "log_window_slots=0": "range",
        "window_slots=4,window_slots=8": "twice",
    }
    for text, reason in refused.items():
        with pytest.raises(scale.LimitsError) as caught:
            scale.parse_limits(text)
        assert reason in caught.value.reason, (text, caught.value.reason)
