"""Smoke tests of the benchmark's own arithmetic: the load generator's accounting and latency
recording (against a tiny fake Redis server whose behaviour is known exactly), the CPU-per-write
arithmetic (against a fake ``/proc``), and one short real run on a 3-node cluster.

No timing thresholds: the assertions are about counts and about bounds that hold on any
machine (a reply delayed by the server by D cannot be measured as faster than D).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
from pathlib import Path

import pytest

from pypaxos.bench import loadgen, procstat, redis_benchmark
from pypaxos.bench.cluster_bench import ClusterBenchConfig, bench_cluster, usable_rate
from pypaxos.bench.stats import Summary, percentile
from pypaxos.cli import bench as bench_cmd
from pypaxos.cli.usage import UsageError
from pypaxos.transport.resp import RespParser

SERVER_DELAY_S = 0.02
ERROR_EVERY = 7  # the fake server answers every 7th request with an error


class FakeRedis:
    """Answers SET with +OK and GET with a bulk string after SERVER_DELAY_S, every
    ERROR_EVERY-th request (counted over all connections) with ``-BUSY``."""

    def __init__(self) -> None:
        self.received = 0
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        parser = RespParser()
        try:
            while data := await reader.read(65536):
                commands = parser.feed(data)
                await asyncio.sleep(SERVER_DELAY_S)
                replies = []
                for command in commands:
                    self.received += 1
                    if self.received % ERROR_EVERY == 0:
                        replies.append(b"-BUSY proposal queue full\r\n")
                    elif command[0].upper() == b"SET":
                        replies.append(b"+OK\r\n")
                    else:
                        replies.append(b"$1\r\nv\r\n")
                writer.write(b"".join(replies))
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()


@pytest.mark.parametrize("command", ["set", "get"])
def test_loadgen_counts_every_request_and_records_each_latency(command: str) -> None:
    async def scenario() -> tuple[loadgen.LoadResult, int]:
        fake = FakeRedis()
        port = await fake.start()
        spec = loadgen.LoadSpec("127.0.0.1", port, clients=3, pipeline=4, duration_s=0.5,
                                command=command, value_bytes=16)  # fmt: skip
        result = await loadgen.run_load(spec)
        await fake.stop()
        return result, fake.received

    result, received = asyncio.run(scenario())
    assert result.ok > 0
    # Every request the server saw is accounted for exactly once.
    assert result.ok + result.errors + result.late == received
    assert result.error_kinds == {"BUSY": result.errors}
    assert result.errors == received // ERROR_EVERY
    # One latency per counted reply, none below the delay the server added.
    assert len(result.latencies_us) == result.ok
    assert min(result.latencies_us) >= SERVER_DELAY_S * 1e6
    assert result.throughput == result.ok / 0.5
    assert result.latency_us(0.5) <= result.latency_us(0.99) <= max(result.latencies_us)


def test_loadgen_counts_a_refused_connection_as_an_error() -> None:
    async def scenario() -> None:
        server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
        port = int(server.sockets[0].getsockname()[1])
        spec = loadgen.LoadSpec("127.0.0.1", port, clients=2, pipeline=3, duration_s=0.2)
        result = await loadgen.run_load(spec)
        server.close()
        assert result.ok == 0
        assert result.errors == 6
        assert result.error_kinds == {"connection closed": 6}

    asyncio.run(scenario())


def test_loadgen_counts_requests_never_answered_as_failed_after_the_drain() -> None:
    async def scenario() -> None:
        held: list[asyncio.StreamWriter] = []

        async def read_never_answer(reader: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            held.append(w)
            while await reader.read(65536):
                pass

        server = await asyncio.start_server(read_never_answer, "127.0.0.1", 0)
        port = int(server.sockets[0].getsockname()[1])
        spec = loadgen.LoadSpec("127.0.0.1", port, clients=2, pipeline=3, duration_s=0.1,
                                drain_s=0.2)  # fmt: skip
        result = await loadgen.run_load(spec)
        for writer in held:
            writer.close()
        server.close()
        assert (result.ok, result.late, result.errors) == (0, 0, 6)
        assert result.error_kinds == {"no reply": 6}

    asyncio.run(scenario())


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(100, 0, -1)]
    assert percentile(values, 0.5) == 50
    assert percentile(values, 0.99) == 99
    assert percentile(values, 1.0) == 100
    assert percentile(values, 0.0) == 1
    summary = Summary.of([10.0, 12.0, 14.0])
    assert (summary.median, summary.low, summary.high) == (12.0, 10.0, 14.0)
    assert summary.spread_pct == pytest.approx(50 * 4 / 12)


def test_cpu_per_op_from_a_fake_proc(tmp_path: Path) -> None:
    ticks = procstat.CLOCK_TICKS_PER_S
    for pid, (utime, stime) in {11: (3 * ticks, ticks), 12: (ticks, 0)}.items():
        (tmp_path / str(pid)).mkdir()
        # A command name with spaces and a parenthesis, as /proc allows.
        # Reaped children's user and system time after them (a snapshot writer's 2 s).
        fields = ["S"] + ["0"] * 10 + [str(utime), str(stime), str(2 * ticks), "0"] + ["0"] * 30
        (tmp_path / str(pid) / "stat").write_text(f"{pid} (py node) x) " + " ".join(fields))
        (tmp_path / str(pid) / "status").write_text("Name:\tpy\nVmRSS:\t  2048 kB\n")
    assert procstat.cpu_ticks(11, tmp_path) == 4 * ticks
    assert procstat.cpu_seconds([11, 12], tmp_path) == 5.0
    assert procstat.cpu_ticks_with_children(11, tmp_path) == 6 * ticks
    assert procstat.cpu_seconds_with_children([11, 12], tmp_path) == 9.0
    assert procstat.rss_kib(12, tmp_path) == 2048
    # Each thread's schedstat: nanoseconds on a CPU first; a thread with a damaged line is
    # left out (one that ended between the listing and the read looks the same).
    for tid, text in {"11": "1500 20 3\n", "13": "2500 7 1\n", "14": "\n"}.items():
        (tmp_path / "11" / "task" / tid).mkdir(parents=True)
        (tmp_path / "11" / "task" / tid / "schedstat").write_text(text)
    assert procstat.scheduled_cpu_ns(11, tmp_path) == 4000
    # 5 s of CPU before, 5.25 s after, 10,000 writes: 25 microseconds a write.
    assert procstat.cpu_us_per_op(5.0, 5.25, 10_000) == pytest.approx(25.0)
    assert procstat.cpu_us_per_op(1.0, 2.0, 0) != procstat.cpu_us_per_op(1.0, 2.0, 0)  # NaN


def test_cpu_seconds_of_this_process_grows_with_work() -> None:
    before = procstat.cpu_seconds([os.getpid()])
    total = 0
    while procstat.cpu_seconds([os.getpid()]) == before:
        total += sum(range(10_000))
    assert procstat.cpu_seconds([os.getpid()]) > before


def test_redis_benchmark_csv_is_parsed() -> None:
    text = (
        '"test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms",'
        '"p99_latency_ms","max_latency_ms"\n'
        '"SET","5294.12","46.100","2.000","46.690","90.000","132.250","200.100"\n'
    )
    [row] = redis_benchmark.parse_csv(text, 1000)
    assert (row.test, row.rps, row.p50_ms, row.p99_ms) == ("set", 5294.12, 46.69, 132.25)
    assert redis_benchmark.requests_for(1000.0, 3.0, 4, 2) == 3000
    assert redis_benchmark.requests_for(10.0, 1.0, 64, 16) == 20 * 64 * 16


def test_a_run_that_stopped_early_does_not_size_the_next_one() -> None:
    # redis-benchmark stops at the first error reply: that run's throughput is NaN.
    assert usable_rate(float("nan"), 2_000.0) == 2_000.0
    assert usable_rate(0.0, 2_000.0) == 2_000.0
    assert usable_rate(5_000.0, 2_000.0) == 5_000.0
    assert redis_benchmark.requests_for(usable_rate(float("nan"), 2_000.0), 3.0, 1, 16) == 6_000


@pytest.mark.timeout(120)
def test_a_short_run_on_a_real_three_node_cluster(tmp_path: Path) -> None:
    config = ClusterBenchConfig(
        nodes=3, fsync="never", clients=(2,), pipelines=(2,), commands=("set",),
        tools=("loadgen",), duration_s=1.0, runs=2, data_root=tmp_path,
    )  # fmt: skip
    result = asyncio.run(bench_cluster(config))
    [point] = result["points"]
    assert point["errors"] == 0
    for run in point["runs"]:
        served = run["ok"] + run["late"]
        assert run["ok"] > 0
        assert run["cpu_s"] > 0
        assert run["cpu_us_per_op"] == pytest.approx(run["cpu_s"] * 1e6 / served)
        assert run["throughput"] == run["ok"] / 1.0
    assert point["throughput"]["runs"] == 2
    assert list(tmp_path.iterdir()) == []  # the data directory was removed


@pytest.mark.timeout(120)
@pytest.mark.skipif(
    shutil.which("redis-benchmark") is None, reason="needs Debian's redis-tools (make test)"
)
def test_extra_points_run_after_the_grid_with_redis_benchmark(tmp_path: Path) -> None:
    config = ClusterBenchConfig(
        nodes=3, fsync="never", clients=(1,), pipelines=(1,), commands=("set",),
        tools=("redis-benchmark",), extra_points=((4, 8),), duration_s=0.5, runs=1,
        data_root=tmp_path,
    )  # fmt: skip
    result = asyncio.run(bench_cluster(config))
    grid, extra = result["points"]
    assert (grid["tool"], grid["clients"], grid["pipeline"]) == ("redis-benchmark", 1, 1)
    assert (extra["tool"], extra["clients"], extra["pipeline"]) == ("redis-benchmark", 4, 8)
    assert extra["throughput"]["median"] > 0
    assert not extra["leader_changed"]


@pytest.mark.timeout(120)
def test_extra_points_are_redis_benchmark_only_and_one_client_gets_its_own_runs(
    tmp_path: Path,
) -> None:
    config = ClusterBenchConfig(
        nodes=3, fsync="never", clients=(1, 2), pipelines=(1,), commands=("set",),
        tools=("loadgen",), extra_points=((4, 8),), duration_s=0.5, runs=1, one_client_runs=3,
        data_root=tmp_path,
    )  # fmt: skip
    result = asyncio.run(bench_cluster(config))
    points = result["points"]
    assert [(p["tool"], p["clients"]) for p in points] == [("loadgen", 1), ("loadgen", 2)]
    assert [len(p["runs"]) for p in points] == [3, 1]
    assert points[0]["throughput"]["runs"] == 3


@pytest.mark.parametrize(
    ("text", "points"), [("128x32", ((128, 32),)), ("1x1,64x16,", ((1, 1), (64, 16)))]
)
def test_extra_points_option_parses_clients_by_pipeline(
    text: str, points: tuple[tuple[int, int], ...]
) -> None:
    parser = argparse.ArgumentParser()
    bench_cmd.add_arguments(parser)
    assert parser.parse_args(["--extra-points", text]).extra_points == points
    assert parser.parse_args([]).extra_points == ()


@pytest.mark.parametrize("text", ["128", "128x", "x32", "0x16", "4x-1", "ax2", "4*8"])
def test_extra_points_option_refuses_what_is_not_clients_by_pipeline(
    text: str, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = argparse.ArgumentParser()
    bench_cmd.add_arguments(parser)
    with pytest.raises(SystemExit) as stop:
        parser.parse_args(["--extra-points", text])
    assert stop.value.code == 2
    assert "--extra-points" in capsys.readouterr().err


def test_a_data_root_that_is_not_a_directory_is_refused_before_anything_starts(
    tmp_path: Path,
) -> None:
    parser = argparse.ArgumentParser()
    bench_cmd.add_arguments(parser)
    missing = tmp_path / "no-such-dir"
    with pytest.raises(UsageError) as refused:
        bench_cmd.run(parser.parse_args(["--data-root", str(missing)]))
    assert str(missing) in str(refused.value)
    assert not missing.exists()
