"""Recovery audit: no count from 1 to 10 can be solved back from the published balance statistics.

The solver is independent of the report code: for every binary covariate in tables/balance.csv,
an eCDF maximum (for a 0/1 variable, the difference in proportions) is turned back into a count
by exact fractions ``k/n`` for every arm size ``n`` an attacker could try (the published one, or
all candidates when it is hidden).
"""
from __future__ import annotations

import shutil
from fractions import Fraction
from pathlib import Path

import pandas as pd
import pytest

from ppeval.report.publish import hidden_binary_covariates, publish_rosenbaum
from tests.test_hardening_suppression import SMALL_EXTRACT, run_cli

THRESHOLD = 11


def solve_counts(value: float, sizes: range, digits: int = 6) -> set[tuple[int, int]]:
    """(k, n) with ``k/n`` equal to ``value`` at the published precision and ``1 <= k < THRESHOLD``."""
    out = set()
    tol = 0.5 * 10 ** (-(digits - 1)) * max(abs(value), 1e-12) * 1.0001
    for n in sizes:
        for k in range(1, THRESHOLD):
            if k <= n and abs(float(Fraction(k, n)) - abs(value)) <= tol:
                out.add((k, n))
    return out


def leaks(balance_csv: Path, n_after: tuple[int, int]) -> list[tuple[str, int]]:
    t = pd.read_csv(balance_csv)
    found = []
    for _, r in t[t["type"] == "binary"].iterrows():
        v = r.get("ecdf_max_after")
        if pd.isna(v) or v == 0:
            continue
        for k, _n in solve_counts(float(v), range(n_after[0], n_after[0] + 1)):
            found.append((r["covariate"], k))
    return found


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    d = tmp_path_factory.mktemp("audit")
    shutil.copytree(SMALL_EXTRACT, d / "data")
    out = d / "report"
    status, _o, err = run_cli("-q", "report", str(d / "data" / "eval.toml"), "--out", str(out))
    assert status == 0, err
    return out


def test_planted_leak_is_found(tmp_path):
    """The solver can fail: a published 1/94 is one unit in an arm of 94."""
    p = tmp_path / "balance.csv"
    pd.DataFrame({"covariate": ["x"], "type": ["binary"], "ecdf_max_after": [float(f"{1/94:.6g}")]}).to_csv(p, index=False)
    assert leaks(p, (94, 94)) == [("x", 1)]


def test_no_binary_ecdf_gives_a_small_count(report):
    import json
    res = json.loads((report / "results.json").read_text())
    n = res["matching"]["treated_matched"]["n"] if isinstance(res["matching"]["treated_matched"], dict) else res["matching"]["treated_matched"]
    assert n, "matched size published"
    assert leaks(report / "tables" / "balance.csv", (int(n), int(n))) == []


def test_hidden_rule_and_rosenbaum():
    t = pd.DataFrame({"covariate": ["a", "b", "c"], "type": ["binary", "binary", "continuous"],
                      "mean_treated_before": [0.5, 1 / 94, 0.3], "mean_control_before": [0.5, 0.5, 0.3],
                      "mean_treated_after": [0.5, 0.5, 0.3], "mean_control_after": [0.5, 0.5, 0.3]})
    sizes = {"before_t": 94, "before_c": 200, "after_t": 94, "after_c": 94}
    assert hidden_binary_covariates(t, sizes, THRESHOLD).tolist() == [False, True, False]
    assert hidden_binary_covariates(t, sizes, THRESHOLD, {"before_t": True}).tolist() == [True, True, False]
    rb = {"outcome": "x", "gamma_critical": 1.3, "table": [{"gamma": 1, "p": 0.5}]}
    assert publish_rosenbaum(rb, (5, 4), THRESHOLD)["table"] is None
    assert publish_rosenbaum(rb, (5, 4), THRESHOLD)["gamma_critical"] is None
    assert publish_rosenbaum(rb, (15, 0), THRESHOLD) is rb
