"""``bench/RESULTS.md`` keeps the latest run first; each run it replaces moves to ``history/``.

The file is: an introduction, the latest section (from its ``## `` heading), the
``## Earlier runs`` index (one line per file in ``history/``).  ``publish`` moves the latest
section, word for word, to ``history/<date>-<slug>.md``, links it at the end of the index,
and puts the new section in its place.
"""

from __future__ import annotations

import re
from pathlib import Path

INDEX_HEADING = "## Earlier runs"
_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2})")


def history_name(section: str) -> str:
    """``2026-11-28-0409-side-by-side``: the heading's date and time, then its words."""
    heading = section.splitlines()[0].removeprefix("## ").strip()
    found = _DATE.search(heading)
    stamp = "-".join(found.groups()[:3]) + "-" + "".join(found.groups()[3:]) if found else "undated"
    words = re.sub(r"\(.*?\)|\d{4}-\d{2}-\d{2}.*", "", heading).lower()
    slug = "-".join(re.findall(r"[a-z0-9]+", words)) or "run"
    return f"{stamp}-{slug}"


def publish(results: Path, history: Path, section: str) -> Path | None:
    """Put ``section`` first in ``results``; returns where the replaced section went, if any."""
    text = results.read_text()
    if INDEX_HEADING not in text:
        raise ValueError(f"{results} has no '{INDEX_HEADING}' index")
    head, index = text.split(INDEX_HEADING, 1)
    first = head.find("\n## ")
    intro, latest = (head, "") if first < 0 else (head[: first + 1], head[first + 1 :])
    moved = None
    entry = ""
    if latest.strip():
        name = history_name(latest)
        moved = history / f"{name}.md"
        history.mkdir(exist_ok=True)
        moved.write_text(latest.rstrip("\n").replace("](plots/", "](../plots/") + "\n")
        title = latest.splitlines()[0].removeprefix("## ").strip()
        entry = f"- [{name}](history/{name}.md): {title}\n"
    new_index = INDEX_HEADING + index.rstrip("\n") + "\n" + entry
    results.write_text(intro + section.strip("\n") + "\n\n" + new_index)
    return moved
