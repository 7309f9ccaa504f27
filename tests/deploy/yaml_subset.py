"""A reader for the YAML subset ``deploy_manifests.to_yaml`` writes, written separately from it
so that a round trip checks the emitter: block mappings and sequences, plain and double-quoted
(JSON) scalars, ``{}`` and ``[]``, ``|`` literal blocks, and ``---`` between documents.
Anything else is an error, so an emitter that strays from the subset fails loudly."""

from __future__ import annotations

import json
import re
from typing import Any

_INT = re.compile(r"-?[0-9]+")


def load_all(text: str) -> list[Any]:
    documents = []
    for chunk in text.split("---\n"):
        lines = [line for line in chunk.split("\n")]
        while lines and lines[-1] == "":
            lines.pop()
        lines = [line for line in lines if not line.startswith("#")] if lines else lines
        reader = _Reader(lines)
        documents.append(reader.node(0))
        assert reader.at == len(lines), f"unread line {reader.at}: {lines[reader.at]!r}"
    return documents


def _scalar(text: str) -> Any:
    if text.startswith('"'):
        return json.loads(text)
    if text == "{}":
        return {}
    if text == "[]":
        return []
    if text in ("true", "false"):
        return text == "true"
    if text == "null":
        return None
    if _INT.fullmatch(text):
        return int(text)
    assert re.fullmatch(r"[A-Za-z_/][A-Za-z0-9_./-]*", text), f"not a plain scalar: {text!r}"
    return text


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


class _Reader:
    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        self.at = 0

    def node(self, indent: int) -> Any:
        line = self.lines[self.at]
        assert _indent(line) == indent, f"line {self.at}: expected indent {indent}: {line!r}"
        if line[indent:].startswith("- ") or line[indent:] == "-":
            return self.sequence(indent)
        return self.mapping(indent)

    def mapping(self, indent: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        while self.at < len(self.lines) and _indent(self.lines[self.at]) == indent:
            line = self.lines[self.at][indent:]
            if line.startswith("- "):
                break
            key, sep, rest = line.partition(":")
            assert sep, f"line {self.at}: no key: {line!r}"
            key_value = _scalar(key)
            assert key_value not in out, f"duplicate key {key_value!r}"
            out[key_value] = self.value(rest.strip(), indent)
        return out

    def sequence(self, indent: int) -> list[Any]:
        out: list[Any] = []
        while self.at < len(self.lines) and _indent(self.lines[self.at]) == indent:
            line = self.lines[self.at][indent:]
            if not line.startswith("-"):
                break
            rest = line[1:].strip()
            if ":" in rest and not rest.startswith('"'):
                # "- key: value": a mapping whose keys sit two columns in
                self.lines[self.at] = " " * (indent + 2) + rest
                out.append(self.mapping(indent + 2))
            else:
                out.append(self.value(rest, indent))
        return out

    def value(self, rest: str, indent: int) -> Any:
        self.at += 1
        if rest == "|":
            body = []
            pad = indent + 2
            while self.at < len(self.lines) and (
                self.lines[self.at] == "" or _indent(self.lines[self.at]) >= pad
            ):
                body.append(self.lines[self.at][pad:])
                self.at += 1
            while body and body[-1] == "":
                body.pop()
            return "\n".join(body) + "\n"
        if rest:
            return _scalar(rest)
        return self.node(_indent(self.lines[self.at]))
