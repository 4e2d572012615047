"""The console's strings in English, French and Spanish (``static/i18n.json``).

Every string the console shows comes from this table: the login page is rendered from it on the
server, the main page's script loads it after login (``/static/i18n.json``). Each language has
every key (:func:`missing_keys`; the tests fail on a gap). ``{name}`` in a string is filled in by
the caller.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

__all__ = ["DEFAULT", "LANGS", "STATIC", "missing_keys", "pick_language", "strings", "table"]

STATIC = Path(__file__).with_name("static")
LANGS = ("en", "fr", "es")
DEFAULT = "en"


@cache
def table() -> dict[str, dict[str, str]]:
    data = json.loads((STATIC / "i18n.json").read_text(encoding="utf-8"))
    if not isinstance(data, dict) or set(data) != set(LANGS):
        raise ValueError(f"i18n.json must hold exactly the languages {', '.join(LANGS)}")
    return {lang: {str(k): str(v) for k, v in data[lang].items()} for lang in LANGS}


def strings(lang: str) -> dict[str, str]:
    return table()[lang if lang in LANGS else DEFAULT]


def missing_keys() -> dict[str, set[str]]:
    """Per language, the keys some other language has and it lacks (or leaves empty)."""
    t = table()
    every = set().union(*(set(s) for s in t.values()))
    return {lang: {k for k in every if not t[lang].get(k, "").strip()} for lang in LANGS}


def pick_language(asked: str | None, accept_language: str | None) -> str:
    """``asked`` (``?lang=``) if it is one of ours, else the first of ours the browser
    accepts (``Accept-Language``), else English."""
    if asked is not None and asked in LANGS:
        return asked
    for part in (accept_language or "").split(","):
        code = part.split(";", 1)[0].strip().lower()[:2]
        if code in LANGS:
            return code
    return DEFAULT
