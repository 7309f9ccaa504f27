"""The latest benchmark run goes first in RESULTS.md; the one it replaces moves to history/."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent.parent


def _module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("results_file", ROOT / "bench/results_file.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_new_run_replaces_the_latest_which_moves_to_history(tmp_path: Path) -> None:
    results_file = _module()
    results = tmp_path / "RESULTS.md"
    old = "## Side by side (issue 7), 2026-11-28 04:09 UTC\n\n![plot](plots/a.png)\nold figures\n"
    results.write_text(
        f"# Benchmark results\n\nIntro.\n\n{old}\n## Earlier runs\n\n- [x](h/x.md): X\n"
    )
    new = "## Side by side (issue 7), 2026-12-07 07:00 UTC\n\nnew figures\n"
    moved = results_file.publish(results, tmp_path / "history", new)
    assert moved == tmp_path / "history" / "2026-11-28-0409-side-by-side.md"
    assert moved.read_text() == old.replace("](plots/", "](../plots/")
    text = results.read_text()
    assert text.index("new figures") < text.index("## Earlier runs")
    assert "old figures" not in text
    name = "2026-11-28-0409-side-by-side"
    title = "Side by side (issue 7), 2026-11-28 04:09 UTC"
    assert text.endswith(f"- [x](h/x.md): X\n- [{name}](history/{name}.md): {title}\n")


def test_the_real_results_file_has_the_shape_publish_expects() -> None:
    text = (ROOT / "bench" / "RESULTS.md").read_text()
    assert text.count(_module().INDEX_HEADING) == 1
    assert text.index("\n## ") < text.index(_module().INDEX_HEADING)
