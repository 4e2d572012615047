"""Every string of the console in every language: a missing key fails here."""

from __future__ import annotations

import re
from pathlib import Path

from bridge.console.i18n import LANGS, missing_keys, pick_language, strings, table
from bridge.console.state import FLOOR_STATES, MESSAGE_STATES, TALKER_STATES

STATIC = Path(__file__).resolve().parents[2] / "bridge" / "console" / "static"
# Keys the page builds from a prefix and a value the console state produces.
FAMILIES = {
    "floor.": FLOOR_STATES,
    "msg.": MESSAGE_STATES,
    "talker.": TALKER_STATES,
    "priority.": ("normal", "high", "emergency"),
    "role.": ("dispatcher", "member", "observer"),
    # the state's alarm kinds (freshness-* all show as alarm.freshness, others as alarm.other)
    "alarm.": ("forgery", "clone", "emergency-unsigned", "binding-refused", "freshness", "other"),
    # incident operations and their outcomes (bridge.console.incident)
    "incident.op.": ("open", "add", "remove", "end"),
    "incident.": ("pending", "done", "failed"),
}


def keys_the_page_uses() -> set[str]:
    html = (STATIC / "index.html").read_text()
    js = (STATIC / "console.js").read_text()
    used = set(re.findall(r'data-i18n="([^"]+)"', html))
    literals = set(re.findall(r'"([a-z][a-z-]*\.[a-z][\w.-]*)"', js)) - {"crossband.lang"}
    used |= {k for k in literals if not k.endswith(".")}  # a prefix: checked below
    for prefix in re.findall(r'"([a-z][a-z.]*\.)"\s*\+', js):
        assert prefix in FAMILIES, f"console.js builds keys from {prefix!r}: list its values"
        used |= {prefix + v for v in FAMILIES[prefix]}
    return used


def test_every_key_the_page_uses_is_in_every_language() -> None:
    used = keys_the_page_uses()
    assert {"app.title", "floor.denied", "talker.forgery", "status.unreachable"} <= used
    for lang in LANGS:
        missing = used - set(strings(lang))
        assert not missing, f"{lang} lacks {sorted(missing)}"


def test_every_language_has_every_key_non_empty() -> None:
    assert missing_keys() == {lang: set() for lang in LANGS}
    assert len(table()["en"]) == len(table()["fr"]) == len(table()["es"]) > 60


def test_placeholders_agree_across_languages() -> None:
    for key, text in strings("en").items():
        want = set(re.findall(r"\{(\w+)\}", text))
        for lang in LANGS:
            assert set(re.findall(r"\{(\w+)\}", strings(lang)[key])) == want, (lang, key)


def test_language_choice() -> None:
    assert pick_language("fr", "es-MX,es;q=0.9") == "fr"
    assert pick_language(None, "es-MX,es;q=0.9") == "es"
    assert pick_language("de", "de-DE, fr;q=0.5") == "fr"
    assert pick_language(None, None) == "en"
