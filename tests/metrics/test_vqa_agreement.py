"""Cohen's kappa and the agreement table against hand-computed values."""

from __future__ import annotations

import math

import pytest

from t2ibench.metrics.vqa_agreement import agreement_table, cohen_kappa


def test_kappa_textbook_example():
    # 50 items: yes/yes 20, yes/no 5, no/yes 10, no/no 15 -> p_o 0.7, p_e 0.5*0.6 + 0.5*0.4 = 0.5, kappa 0.4
    a = [True] * 25 + [False] * 25
    b = [True] * 20 + [False] * 5 + [True] * 10 + [False] * 15
    assert cohen_kappa(a, b) == pytest.approx(0.4)


def test_kappa_edges():
    assert math.isnan(cohen_kappa([True, True], [True, True]))  # both constant: undefined, as in scikit-learn
    assert cohen_kappa([True, False], [False, True]) == pytest.approx(-1.0)


def test_agreement_table_rows():
    rows = agreement_table(["color", "color", "count", "count"], [True, False, True, True], [True, True, True, False],
                           n_boot=100)
    by = {r["group"]: r for r in rows}
    assert list(by) == ["color", "count", "all"]
    assert by["color"]["first"] == 0.5 and by["color"]["second"] == 1.0 and by["color"]["agreement"] == 0.5
    assert by["all"]["difference"] == 0.0 and by["all"]["n"] == 4 and by["all"]["agreement"] == 0.5
    lo, hi = by["all"]["ci"]
    assert lo <= 0.0 <= hi
