"""Praat TextGrid files (long and short text formats) -> tiers of labelled intervals.

Praat reads text files as a stream of values (numbers, "strings", <flags>) and ignores the "xmin =",
"item [1]:" decoration, so one token reader covers both formats. Errors name the file and line.
"""

from __future__ import annotations

import bisect
import os
import re
from dataclasses import dataclass
from pathlib import Path


class TextGridError(ValueError):
    """A TextGrid that cannot be parsed; the message names the file and line."""


@dataclass(frozen=True)
class Interval:
    start: float
    end: float
    label: str


_TOKEN = re.compile(
    r'(?P<string>"(?:[^"]|"")*")'
    r"|(?P<comment>![^\n]*)"
    r"|(?P<index>\[[^\]\n]*\])"
    r"|(?P<flag><exists>|<absent>)"
    r"|(?P<number>[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)(?![\w.])"
    r"|(?P<word>[A-Za-z_]\w*)"
    r"|(?P<punct>[=:?])"
    r"|(?P<space>\s+)"
    r"|(?P<other>.)",
    re.DOTALL,
)


@dataclass(frozen=True)
class _Token:
    kind: str  # "string", "number" or "flag"
    value: str
    line: int


class _Reader:
    def __init__(self, text: str, source: str):
        self.source = source
        self.tokens: list[_Token] = []
        newlines = [i for i, c in enumerate(text) if c == "\n"]
        for m in _TOKEN.finditer(text):
            kind = m.lastgroup
            line = bisect.bisect_right(newlines, m.start()) + 1
            if kind == "other":
                what = "unterminated string" if m.group() == '"' else f"unexpected character {m.group()!r}"
                raise TextGridError(f"{source}:{line}: {what}")
            if kind in ("string", "number", "flag"):
                value = m.group()[1:-1].replace('""', '"') if kind == "string" else m.group()
                self.tokens.append(_Token(kind, value, line))
        self.pos = 0

    def _next(self, kind: str, what: str) -> _Token:
        if self.pos >= len(self.tokens):
            last = self.tokens[-1].line if self.tokens else 1
            raise TextGridError(f"{self.source}:{last}: unexpected end of file, expected {what}")
        tok = self.tokens[self.pos]
        if tok.kind != kind:
            raise TextGridError(f"{self.source}:{tok.line}: expected {what}, found {tok.kind} {tok.value!r}")
        self.pos += 1
        return tok

    def string(self, what: str) -> str:
        return self._next("string", what).value

    def number(self, what: str) -> tuple[float, int]:
        tok = self._next("number", what)
        return float(tok.value), tok.line

    def count(self, what: str) -> int:
        tok = self._next("number", what)
        value = float(tok.value)
        if value < 0 or value != int(value):
            raise TextGridError(f"{self.source}:{tok.line}: {what} must be a whole number >= 0, got {tok.value}")
        return int(value)

    def flag(self, what: str) -> str:
        return self._next("flag", what).value


def _read_text(path: Path) -> str:
    data = path.read_bytes()
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return data.decode("utf-16")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise TextGridError(f"{path}: not UTF-8 or UTF-16 text ({exc})") from exc


def parse_textgrid(path_or_text: str | os.PathLike) -> dict[str, list[Interval]]:
    """Interval tiers of a Praat TextGrid (long or short text format), by tier name.

    A str holding a newline or "ooTextFile" is parsed as the file's content, anything else is a path.
    Point tiers (TextTier) are skipped. Raises TextGridError naming the file and line on malformed input.
    """
    if isinstance(path_or_text, str) and ("\n" in path_or_text or "ooTextFile" in path_or_text):
        text, source = path_or_text, "<TextGrid text>"
    else:
        path = Path(path_or_text)
        try:
            text = _read_text(path)
        except OSError as exc:
            raise TextGridError(f"{path}: cannot read TextGrid ({exc})") from exc
        source = str(path)
    r = _Reader(text, source)
    file_type = r.string('file type "ooTextFile"')
    if not file_type.startswith("ooTextFile"):
        raise TextGridError(f"{source}:1: not a Praat text file (file type {file_type!r})")
    object_class = r.string('object class "TextGrid"')
    if object_class != "TextGrid":
        raise TextGridError(f"{source}:{r.tokens[1].line}: object class is {object_class!r}, not 'TextGrid'")
    r.number("TextGrid xmin")
    r.number("TextGrid xmax")
    if r.flag("<exists> or <absent>") == "<absent>":
        return {}
    tiers: dict[str, list[Interval]] = {}
    for _ in range(r.count("number of tiers")):
        tier_class = r.string("tier class")
        name = r.string("tier name")
        r.number("tier xmin")
        r.number("tier xmax")
        n = r.count("number of intervals/points")
        if tier_class == "IntervalTier":
            intervals = []
            for _ in range(n):
                start, line = r.number("interval xmin")
                end, _ = r.number("interval xmax")
                label = r.string("interval text")
                if end < start:
                    raise TextGridError(
                        f"{source}:{line}: interval [{start}, {end}] of tier {name!r} ends before it starts"
                    )
                intervals.append(Interval(start, end, label))
            if name in tiers:
                raise TextGridError(f"{source}: two interval tiers named {name!r}")
            tiers[name] = intervals
        elif tier_class in ("TextTier", "PointTier"):
            for _ in range(n):
                r.number("point time")
                r.string("point mark")
        else:
            tok = r.tokens[r.pos - 5]
            raise TextGridError(f"{source}:{tok.line}: unknown tier class {tier_class!r}")
    return tiers
