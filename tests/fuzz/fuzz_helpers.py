"""Shared pieces of the fuzz tests: hypothesis settings, the corpus, byte mutations.

Every fuzz test runs a bounded, derandomized number of examples (so ``make test`` is quick and
CI sees the same inputs every run) and replays the corpus in ``tests/fuzz/corpus/<target>/``,
one file per interesting input, as explicit cases.  ``PYPAXOS_FUZZ_EXAMPLES=N`` runs N random
(not derandomized) examples per test instead, for a longer hunt (``make fuzz`` runs 20,000);
a failure prints the input and hypothesis's ``@reproduce_failure`` blob.  Add what a hunt
finds to the corpus, as a file, so that every later run replays it.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

CORPUS = Path(__file__).parent / "corpus"
FUZZ_EXAMPLES_ENV = "PYPAXOS_FUZZ_EXAMPLES"


def fuzz_examples(default: int) -> int:
    value = os.environ.get(FUZZ_EXAMPLES_ENV, "")
    return int(value) if value else default


def fuzz_settings(default_examples: int) -> settings:
    """``default_examples`` derandomized examples, or ``$PYPAXOS_FUZZ_EXAMPLES`` random ones."""
    hunting = bool(os.environ.get(FUZZ_EXAMPLES_ENV))
    return settings(
        max_examples=fuzz_examples(default_examples),
        deadline=None,  # wall-clock limits make CI flaky; linearity is asserted structurally
        derandomize=not hunting,
        database=None,
        print_blob=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


def corpus_files(target: str) -> list[Path]:
    """The corpus of ``target``, sorted by name (a missing corpus is a test failure)."""
    files = sorted(p for p in (CORPUS / target).iterdir() if p.is_file())
    assert files, f"no corpus in {CORPUS / target}"
    return files


def corpus_bytes(target: str) -> list[bytes]:
    return [p.read_bytes() for p in corpus_files(target)]


@st.composite
def mutated(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    """A seed (or random bytes) with a few flips, truncations, insertions and splices."""
    data = bytearray(draw(st.sampled_from(seeds)) if seeds else b"")
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["flip", "truncate", "insert", "delete", "splice"]))
        at = draw(st.integers(0, len(data)))
        if kind == "flip" and at < len(data):
            data[at] ^= draw(st.integers(1, 255))
        elif kind == "truncate":
            del data[at:]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 16))]
        elif kind == "splice" and seeds:
            other = draw(st.sampled_from(seeds))
            data[at:at] = other[: draw(st.integers(0, len(other)))]
    return bytes(data)


def chunkings(data: bytes, cuts: list[int]) -> list[bytes]:
    """``data`` cut at the given offsets (sorted, clipped): what one connection might read."""
    points = sorted({min(max(c, 0), len(data)) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points)] or [b""]
