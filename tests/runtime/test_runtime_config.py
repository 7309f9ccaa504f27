"""``cluster.toml`` loading: good files load, bad ones name the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from pypaxos.runtime.config import RUNTIME_LIMITS, ConfigError, load_config, render_config

GOOD = """
cluster_id = "c"
data_dir = "state"
fsync = "never"
tick_ms = 5

[timeouts]
heartbeat_ticks = 4

[limits]
queue_max_commands = 100

[[members]]
id = 1
peer = "127.0.0.1:7101"
client = "127.0.0.1:7001"
metrics = "127.0.0.1:7201"

[[members]]
id = 2
peer = "127.0.0.1:7102"
client = "127.0.0.1:7002"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cluster.toml"
    path.write_text(text)
    return path


def test_a_good_file_loads_with_defaults_and_overrides(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD))
    assert config.cluster_id == "c"
    assert config.data_dir == tmp_path / "state"  # relative to the file
    assert config.node_dir(2) == tmp_path / "state" / "node-2"
    assert config.fsync == "never" and config.tick_ms == 5
    assert [m.id for m in config.members] == [1, 2]
    assert config.member(1).metrics == "127.0.0.1:7201"
    assert config.member(2).metrics is None
    multi = config.multi_config()
    assert multi.node_ids == (1, 2)
    assert multi.heartbeat_ticks == 4
    assert multi.queue_max_commands == 100
    assert multi.batch_max_commands == RUNTIME_LIMITS["batch_max_commands"]


def test_the_snapshot_growth_schedule_is_on_by_default_and_can_be_switched_off(
    tmp_path: Path,
) -> None:
    multi = load_config(write(tmp_path, GOOD)).multi_config()
    assert multi.snapshot_growth_percent == RUNTIME_LIMITS["snapshot_growth_percent"] > 0
    text = GOOD.replace("queue_max_commands = 100", "snapshot_growth_percent = 0")
    config = load_config(write(tmp_path, text))
    assert config.multi_config().snapshot_growth_percent == 0  # 0 is allowed here: off
    assert "snapshot_growth_percent = 0" in render_config(config)


def test_minimal_file_takes_the_contract_defaults(tmp_path: Path) -> None:
    text = 'cluster_id = "c"\n[[members]]\nid = 1\npeer = "h:1"\nclient = "h:2"\n'
    config = load_config(write(tmp_path, text))
    assert (config.fsync, config.tick_ms) == ("always", 10)
    assert config.data_dir == tmp_path / "data"
    assert config.thrifty and config.multi_config().thrifty  # a real node is thrifty by default


def test_thrifty_can_be_switched_off(tmp_path: Path) -> None:
    config = load_config(
        write(tmp_path, GOOD.replace("tick_ms = 5", "tick_ms = 5\nthrifty = false"))
    )
    assert not config.thrifty and not config.multi_config().thrifty


def test_reads_default_to_read_index_and_round_trip(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, GOOD)).reads == "read-index"
    config = load_config(write(tmp_path, GOOD.replace("tick_ms = 5", 'tick_ms = 5\nreads = "log"')))
    assert config.reads == "log"
    assert 'reads = "log"' in render_config(config)
    again = tmp_path / "again"
    again.mkdir()
    assert load_config(write(again, render_config(config))).reads == "log"


def test_follower_reads_reach_the_protocol(tmp_path: Path) -> None:
    assert not load_config(write(tmp_path, GOOD)).multi_config().follower_reads
    text = GOOD.replace("tick_ms = 5", "tick_ms = 5\nfollower_reads = true")
    config = load_config(write(tmp_path, text))
    assert config.follower_reads and config.multi_config().follower_reads
    assert "follower_reads = true" in render_config(config)


def test_thrifty_reads_reach_the_protocol_and_survive_a_round_trip(tmp_path: Path) -> None:
    assert not load_config(write(tmp_path, GOOD)).multi_config().thrifty_reads
    text = GOOD.replace("tick_ms = 5", "tick_ms = 5\nthrifty_reads = true")
    config = load_config(write(tmp_path, text))
    assert config.thrifty_reads and config.multi_config().thrifty_reads
    again = load_config(write(tmp_path, render_config(config)))
    assert again.thrifty_reads and again.multi_config().thrifty_reads


def test_databases_bound_select(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, GOOD)).databases == 16
    config = load_config(write(tmp_path, GOOD.replace("tick_ms = 5", "tick_ms = 5\ndatabases = 4")))
    assert config.databases == 4 and "databases = 4" in render_config(config)
    for bad in ("0", "17", '"x"'):
        with pytest.raises(ConfigError, match="databases"):
            load_config(
                write(tmp_path, GOOD.replace("tick_ms = 5", f"tick_ms = 5\ndatabases = {bad}"))
            )


def test_the_state_digest_is_off_unless_asked_for_and_round_trips(tmp_path: Path) -> None:
    assert not load_config(write(tmp_path, GOOD)).state_digest
    text = GOOD.replace("tick_ms = 5", "tick_ms = 5\nstate_digest = true")
    config = load_config(write(tmp_path, text))
    assert config.state_digest and "state_digest = true" in render_config(config)
    with pytest.raises(ConfigError, match="state_digest"):
        load_config(write(tmp_path, GOOD.replace("tick_ms = 5", "tick_ms = 5\nstate_digest = 0")))


@pytest.mark.parametrize(
    ("change", "key", "message"),
    [
        (('cluster_id = "c"', ""), "cluster_id", "missing"),
        (('fsync = "never"', 'fsync = "sometimes"'), "fsync", "always"),
        (("tick_ms = 5", "tick_ms = 0"), "tick_ms", "must be in"),
        (("tick_ms = 5", 'tick_ms = "5"'), "tick_ms", "must be an integer"),
        (("tick_ms = 5", "tick_ms = 5\nbogus = 1"), "bogus", "unknown key"),
        (("tick_ms = 5", "tick_ms = 5\nthrifty = 1"), "thrifty", "true or false"),
        (
            ("tick_ms = 5", 'tick_ms = 5\nreads = "leases"'),
            "reads",
            '"log" or "read-index" or "lease"',
        ),
        (("tick_ms = 5", "tick_ms = 5\nfollower_reads = 1"), "follower_reads", "true or false"),
        (("tick_ms = 5", "tick_ms = 5\nthrifty_reads = 1"), "thrifty_reads", "true or false"),
        (
            ("heartbeat_ticks = 4", "heartbeat_ticks = 4\nwindow_slots = 2"),
            "timeouts.window_slots",
            "unknown key",
        ),
        (("heartbeat_ticks = 4", "heartbeat_ticks = true"), "timeouts.heartbeat_ticks", "integer"),
        (
            ("queue_max_commands = 100", "log_window_slots = 3"),
            "timeouts/limits",
            "log_window_slots",
        ),
        (
            ("queue_max_commands = 100", "snapshot_growth_percent = 101"),
            "limits.snapshot_growth_percent",
            "must be in [0, 100]",
        ),
        (("id = 2", "id = 1"), "members[1].id", "duplicate node id 1"),
        (("id = 2", "id = -2"), "members[1].id", "must be in"),
        (('client = "127.0.0.1:7002"', ""), "members[1].client", "missing"),
        (('client = "127.0.0.1:7002"', 'client = "nowhere"'), "members[1].client", "host:port"),
        (('client = "127.0.0.1:7002"', 'client = "127.0.0.1:7001"'), "members[1].client", "also"),
        (('metrics = "127.0.0.1:7201"', 'metric = "x:1"'), "members[0].metric", "unknown key"),
    ],
)
def test_bad_values_name_the_file_and_key(
    tmp_path: Path, change: tuple[str, str], key: str, message: str
) -> None:
    old, new = change
    assert old in GOOD
    path = write(tmp_path, GOOD.replace(old, new, 1))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.key == key
    assert message in caught.value.message
    assert str(path) in str(caught.value)


def test_no_members_and_not_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="members"):
        load_config(write(tmp_path, 'cluster_id = "c"\n'))
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "cluster_id = \n"))
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.toml")


def test_unknown_member_id(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD))
    with pytest.raises(ConfigError, match="no member with id 9"):
        config.member(9)
