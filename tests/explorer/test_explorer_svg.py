"""The SVG sequence diagram is well-formed XML with one arrow per event and every name shown."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from pypaxos.explorer.svg import Arrow, Mark, render_diagram, sequence_svg

NS = "{http://www.w3.org/2000/svg}"

EVENTS = [
    (0.0, "P1", "A1", "Prepare 0.4"),
    (0.0, "P1", "A2", "Prepare 0.4"),
    (3.5, "A1", "P1", "Promise 0.4 accepted=⊥"),
    (4.0, "A2", "P1", "Promise 0.4 accepted=⊥"),
    (9.0, "P1", "A1", "Accept 0.4 <x & y>"),
]


def texts(root: ET.Element) -> list[str]:
    return ["".join(t.itertext()) for t in root.iter(f"{NS}text")]


def arrows(root: ET.Element) -> list[ET.Element]:
    return [g for g in root.iter(f"{NS}g") if g.get("class", "").startswith("msg ")]


def test_trace_renders_one_arrow_per_event_with_names_and_labels() -> None:
    svg = sequence_svg(["P1", "A1", "A2"], EVENTS, title="seed 7")
    root = ET.fromstring(svg)
    assert root.tag == f"{NS}svg"
    assert len(arrows(root)) == len(EVENTS)
    shown = texts(root)
    for name in ("P1", "A1", "A2", "seed 7"):
        assert name in shown
    for _, _, _, label in EVENTS:
        assert label in shown  # escaped in the file, intact once parsed
    assert "3.5" in shown and "9" in shown  # times in the margin


def test_trace_colours_arrows_by_message_kind() -> None:
    root = ET.fromstring(sequence_svg(["P1", "A1", "A2"], EVENTS))
    kinds = [g.get("class", "").split()[1] for g in arrows(root)]
    assert kinds == ["Prepare", "Prepare", "Promise", "Promise", "Accept"]
    lines = [g.find(f"{NS}line") for g in arrows(root)]
    assert lines[0] is not None and lines[2] is not None
    assert lines[0].get("stroke") != lines[2].get("stroke")


def test_unknown_actor_in_an_event_gets_a_lifeline_too() -> None:
    root = ET.fromstring(sequence_svg(["P1"], [(1, "P1", "Z9", "Hello")]))
    assert "Z9" in texts(root)


def test_empty_trace_is_still_a_valid_svg() -> None:
    root = ET.fromstring(sequence_svg(["P1", "A1"], []))
    assert arrows(root) == []
    assert {"P1", "A1"} <= set(texts(root))


def test_lost_pending_and_marks_are_drawn_distinctly() -> None:
    svg = render_diagram(
        ["P1", "A1"],
        [
            Arrow(1, 2, "P1", "A1", "Prepare 0.4", outcome="dropped"),
            Arrow(1, 3, "P1", "A1", "Prepare 0.4", outcome="pending"),
        ],
        [Mark(1, "P1", "propose x", "propose"), Mark(2, "A1", "crash", "crash")],
    )
    root = ET.fromstring(svg)
    classes = [g.get("class") for g in root.iter(f"{NS}g")]
    assert "msg Prepare dropped" in classes
    assert "msg Prepare pending" in classes
    assert "mark propose" in classes and "mark crash" in classes
    assert "Prepare 0.4 (dropped)" in texts(root)
