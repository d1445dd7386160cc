"""The ``source`` column of the site table (config/sites.tsv).

Three kinds of source::

    data/lyngen/*.csv                               files: a path or glob (plain, .gz, .zip)
    demo:mainland                                   the embedded synthetic generator
    asc=data/egms/asc/*.zip;desc=data/egms/desc/*.zip   an ascending + descending pair

A pair names two line-of-sight sources of the same area and period, each a
path/glob (both tracks read with the site's format); the site is then the
vertical/east-west decomposition of the two (stage ``decompose``). A demo
pair is ``asc=demo:mainland;desc=demo:mainland`` (one preset, both sides).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from .errors import InputError

TRACKS = ("asc", "desc")
_PAIR = re.compile(r"^\s*(asc|desc)\s*=")


@dataclass(frozen=True)
class SiteSource:
    """A parsed ``source``: ``kind`` is ``files``, ``demo`` or ``pair``.

    ``tracks`` (pairs): ``{"asc": source, "desc": source}``, each a path/glob
    or ``demo:<preset>``; ``preset``: the demo preset (demo sites and demo pairs).
    """

    text: str
    kind: str
    tracks: dict = field(default_factory=dict)
    preset: str | None = None

    @property
    def is_demo(self) -> bool:
        return self.preset is not None


def parse_source(text: str, site: str = "", table: str = "config/sites.tsv") -> SiteSource:
    """Parse one ``source`` cell; InputError (naming the site) for a malformed pair."""
    text = str(text).strip()
    if not _PAIR.match(text):
        if text.startswith("demo:"):
            return SiteSource(text, "demo", preset=text.split(":", 1)[1])
        return SiteSource(text, "files")
    where = f"site '{site}': " if site else ""
    fix = ("write the pair as asc=<path or glob>;desc=<path or glob> (one ascending and one descending "
           "download of the same area), or asc=demo:<preset>;desc=demo:<preset>")
    tracks = {}
    for part in (p for p in text.split(";") if p.strip()):
        key, sep, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or key not in TRACKS or not value:
            raise InputError(f"{where}cannot read '{part.strip()}' of the pair source '{text}'",
                             file=table, column="source", fix=fix)
        if key in tracks:
            raise InputError(f"{where}the pair source '{text}' names '{key}' twice", file=table,
                             column="source", fix=fix)
        tracks[key] = value
    missing = [t for t in TRACKS if t not in tracks]
    if missing:
        raise InputError(f"{where}the pair source '{text}' has no {' and no '.join(missing)} geometry: a "
                         "vertical/east-west decomposition needs one ascending and one descending track",
                         file=table, column="source", fix=fix)
    demo = [tracks[t].startswith("demo:") for t in TRACKS]
    preset = None
    if any(demo):
        presets = {tracks[t].split(":", 1)[1] for t in TRACKS if tracks[t].startswith("demo:")}
        if not all(demo) or len(presets) != 1:
            raise InputError(f"{where}a demo pair needs the same demo:<preset> on both sides, got '{text}'",
                             file=table, column="source", fix="e.g. asc=demo:mainland;desc=demo:mainland")
        preset = presets.pop()
    return SiteSource(text, "pair", tracks, preset)
