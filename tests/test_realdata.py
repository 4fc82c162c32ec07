"""Checks on the real FeCrAl labels; skipped where ../shared/data is absent (a user's clone)."""
from collections import Counter
from pathlib import Path

import pytest

from tem_lib.data import load_dataset

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "fecral-3class"
pytestmark = [pytest.mark.realdata,
              pytest.mark.skipif(not REAL.is_dir(), reason=f"{REAL} not present")]


def test_imagej_reader_finds_all_688_defects():
    samples = load_dataset(REAL, classes="fecral")
    assert len(samples) == 8
    counts = Counter(i.category_id for s in samples for i in s.instances)
    assert counts == {1: 353, 2: 199, 3: 136}  # black dot, 1/2<111>, <100>
