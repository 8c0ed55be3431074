"""The failure classes of the reliability report point at tests that exist (a renamed test would
otherwise count as 0 of 0 in the report, silently)."""

from __future__ import annotations

import re
from pathlib import Path

from reliability_catalogue.classes import CLASSES

ROOT = Path(__file__).resolve().parents[1]


def test_every_class_selects_existing_tests():
    assert len({c.what for c in CLASSES}) == len(CLASSES)
    assert any(c.origin == "own search" for c in CLASSES)
    for cls in CLASSES:
        assert cls.tests, cls.what
        for selector in cls.tests:
            path, _, expr = selector.partition(" -k ")
            text = (ROOT / path).read_text()
            names = re.findall(r"^def (test_\w+)", text, flags=re.M)
            assert names, selector
            words = [w for w in re.findall(r"\w+", expr) if w not in ("and", "or", "not")]
            for word in words:  # every keyword matches at least one test of the file
                assert any(word in n for n in names), (selector, word)
