"""Pure helpers of the TCP transport: backoff schedule and address parsing."""

from __future__ import annotations

import random

import pytest

from pypaxos.transport.tcp import TcpConfig, backoff_delay_s, format_address, parse_address


def test_backoff_doubles_then_caps_with_jitter_in_the_upper_half() -> None:
    rng = random.Random(7)
    for attempt in range(40):
        ceiling = min(2.0, 0.05 * 2**attempt)
        delay = backoff_delay_s(attempt, 0.05, 2.0, rng)
        assert ceiling / 2 <= delay <= ceiling


def test_backoff_is_reproducible_from_the_injected_random() -> None:
    first = [backoff_delay_s(a, 0.05, 2.0, random.Random(1)) for a in range(10)]
    again = [backoff_delay_s(a, 0.05, 2.0, random.Random(1)) for a in range(10)]
    assert first == again


def test_backoff_survives_huge_attempt_counts() -> None:
    assert 1.0 <= backoff_delay_s(10**6, 0.05, 2.0, random.Random(0)) <= 2.0


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [("127.0.0.1:7000", "127.0.0.1", 7000), ("node-a:0", "node-a", 0), ("[::1]:9", "::1", 9)],
)
def test_parse_address(text: str, host: str, port: int) -> None:
    assert parse_address(text) == (host, port)
    assert format_address(host, port) == text


@pytest.mark.parametrize("text", ["7000", ":7000", "host:", "host:port", "host:70000"])
def test_parse_address_refuses_junk(text: str) -> None:
    with pytest.raises(ValueError, match=r"address|port"):
        parse_address(text)


def test_config_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        TcpConfig(send_queue_frames_max=0)
    with pytest.raises(ValueError):
        TcpConfig(reconnect_delay_initial_s=3.0, reconnect_delay_max_s=2.0)
