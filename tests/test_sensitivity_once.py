"""Sensitivity analyses computed once, in the estimation stage, for the design actually used.

E-values: one function (:func:`ppeval.estimate.effect_evalues`) with one rare-outcome rule;
the report reads ``res.sensitivity`` and never recomputes. Rosenbaum bounds: the exact bound
for a binary outcome in matched sets of any shape (Rosenbaum 2002, §4.4), checked against a
brute-force enumeration of the sensitivity model, R's ``mantelhaen.test(exact = TRUE)`` and
``fisher.test(or = )`` and the 1:1-pair (``rbounds::binarysens``) formula.
"""

from __future__ import annotations

import itertools
from math import comb, sqrt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ppeval.estimate import effect_evalues, estimate, evalue, rosenbaum_bounds, rosenbaum_sets
from ppeval.estimate.results import Effect

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------ E-values
def _hr_to_rr(hr: float) -> float:
    return (1 - 0.5 ** sqrt(hr)) / (1 - 0.5 ** sqrt(1 / hr))


def _ev(rr: float) -> float:
    rr = 1 / rr if rr < 1 else rr
    return rr + sqrt(rr * (rr - 1))


def test_issue_example_common_and_rare_hazard_ratio():
    """HR 0.6 (0.45 to 0.8). R EValue::evalues.HR(0.6, 0.45, 0.8, rare = FALSE) by hand:
    RR = (1 - 0.5^sqrt(0.6)) / (1 - 0.5^sqrt(1/0.6)) = 0.702564..., E = 1/RR + sqrt(1/RR (1/RR - 1))
    = 2.199622...; the CI limit 0.8 gives RR 0.856773... and E 1.608891...; rare = TRUE: HR as RR,
    E = 1/0.6 + sqrt(1/0.6 * (1/0.6 - 1)) = 2.720759..., CI limit 1/0.8 + sqrt(1.25 * 0.25) = 1.809017..."""
    common = evalue(0.6, 0.45, 0.8, measure="hazard_ratio", rare=False)
    assert common.rr_estimate == pytest.approx(0.702564457, abs=1e-9)
    assert common.evalue == pytest.approx(_ev(_hr_to_rr(0.6)), abs=1e-12)
    assert round(common.evalue, 2) == 2.2
    assert common.evalue_ci == pytest.approx(_ev(_hr_to_rr(0.8)), abs=1e-12)
    assert common.evalue == pytest.approx(2.199622396, abs=1e-9)
    assert common.evalue_ci == pytest.approx(1.608891348, abs=1e-9)
    rare = evalue(0.6, 0.45, 0.8, measure="hazard_ratio", rare=True)
    assert rare.evalue == pytest.approx(1 / 0.6 + sqrt(1 / 0.6 * (1 / 0.6 - 1)), abs=1e-12)
    assert round(rare.evalue, 2) == 2.72
    assert rare.evalue_ci == pytest.approx(1.809016994, abs=1e-9)


def test_one_rule_decides_rare_from_both_arms():
    """Rare = under 15% in each arm (window risks; events / units for a hazard ratio)."""
    hr_rare = Effect("hazard_ratio", 0.6, 0.15, 0.45, 0.8, 0.001, "Cox", n_treated=200, n_comparison=200,
                     events_treated=16, events_comparison=26)   # 8% and 13%
    hr_common = Effect("hazard_ratio", 0.6, 0.15, 0.45, 0.8, 0.001, "Cox", n_treated=200, n_comparison=200,
                       events_treated=16, events_comparison=40)  # 8% and 20%
    or_rare = Effect("odds_ratio", 2.25, 0.2, 1.44, 3.24, 0.001, "logit", window_months=12,
                     risk_treated=0.14, risk_comparison=0.07)
    or_common = Effect("odds_ratio", 2.25, 0.2, 1.44, 3.24, 0.001, "logit", window_months=12,
                       risk_treated=0.16, risk_comparison=0.07)
    t = effect_evalues([hr_rare, hr_common, or_rare, or_common])
    assert t["rare_outcome"].tolist() == [True, False, True, False]
    assert t["outcome_share"].tolist() == pytest.approx([0.13, 0.20, 0.14, 0.16])
    assert t["evalue"].tolist() == pytest.approx([_ev(0.6), _ev(_hr_to_rr(0.6)), _ev(2.25), _ev(1.5)], abs=1e-12)
    assert t["evalue_ci"].tolist() == pytest.approx([_ev(0.8), _ev(_hr_to_rr(0.8)), _ev(1.44), _ev(1.2)], abs=1e-12)
    assert t["rule"].str.startswith("rare").tolist() == [True, False, True, False]


def test_no_events_in_an_arm_gives_no_crash():
    """A ratio not estimated is skipped; a CI limit of 0 or infinity has no E-value of its own."""
    nan = float("nan")
    gone = Effect.not_estimable("hazard_ratio", "no events in the comparison arm", method="Cox")
    open_ci = Effect("risk_ratio", 2.0, nan, 0.0, float("inf"), 0.4, "ratio", window_months=12,
                     risk_treated=0.2, risk_comparison=0.1)
    t = effect_evalues([gone, open_ci])
    assert len(t) == 1
    assert t.loc[0, "evalue"] == pytest.approx(2 + sqrt(2))
    assert t.loc[0, "evalue_ci"] is None or pd.isna(t.loc[0, "evalue_ci"])


# ------------------------------------------------------------------------------ Rosenbaum
#: (n, m, c, a): units, served, with the event, served with the event, per matched set
SETS = [(3, 1, 1, 1), (3, 1, 2, 1), (4, 1, 1, 0), (4, 2, 2, 2), (2, 1, 1, 1), (5, 2, 3, 2),
        (3, 1, 1, 1), (6, 1, 2, 1), (3, 2, 1, 1), (4, 1, 2, 1)]


def _units(sets):
    t, y, s = [], [], []
    for k, (n, m, c, a) in enumerate(sets):
        t += [1] * m + [0] * (n - m)
        y += [1] * a + [0] * (m - a) + [1] * (c - a) + [0] * (n - m - (c - a))
        s += [k] * n
    return np.array(t, bool), np.array(y), np.array(s)


def _enumerate(sets, gamma: float) -> dict[int, float]:
    """Distribution of T by enumerating every assignment of m served units in each set,
    with probability proportional to gamma^(served units with the event): the sensitivity
    model with the unobserved covariate equal to the outcome (which attains the bound)."""
    total = {0: 1.0}
    for n, m, c, _ in sets:
        y = [1] * c + [0] * (n - c)
        dist: dict[int, float] = {}
        for z in itertools.combinations(range(n), m):
            a = sum(y[i] for i in z)
            dist[a] = dist.get(a, 0.0) + gamma ** a
        s = sum(dist.values())
        new: dict[int, float] = {}
        for a1, p1 in total.items():
            for a2, w in dist.items():
                new[a1 + a2] = new.get(a1 + a2, 0.0) + p1 * w / s
        total = new
    return total


def test_bounds_equal_brute_force_enumeration():
    t, y, s = _units(SETS)
    rb = rosenbaum_sets(t, y, s, gammas=[1, 2, 3])
    T = sum(x[3] for x in SETS)
    assert rb.statistic == T == 11
    assert rb.direction == "more events in treated"
    for i, g in enumerate([1.0, 2.0, 3.0]):
        upper = sum(p for a, p in _enumerate(SETS, g).items() if a >= T)
        lower = sum(p for a, p in _enumerate(SETS, 1 / g).items() if a >= T)
        assert rb.table.loc[i, "p_upper"] == pytest.approx(upper, rel=1e-12)
        assert rb.table.loc[i, "p_lower"] == pytest.approx(lower, rel=1e-12)
    # the critical gamma puts the upper bound at alpha
    g = rb.gamma_critical
    assert 2 < g < 3
    assert sum(p for a, p in _enumerate(SETS, g).items() if a >= T) == pytest.approx(0.05, abs=1e-9)


def test_gamma_one_is_the_exact_mantel_haenszel_test_of_r():
    """R: d <- data.frame(t, y, s)   # the SETS units
       tab <- table(factor(d$t, 1:0), factor(d$y, 1:0), d$s)
       mantelhaen.test(tab, exact = TRUE, alternative = "greater")$p.value  # 0.00097736625514403363
    One set (5 units, 2 served, 3 with the event, both served with it):
       fisher.test(matrix(c(2, 1, 0, 2), 2), or = 2,   alternative = "greater")$p.value  # 0.48000000000000009
       fisher.test(matrix(c(2, 1, 0, 2), 2), or = 0.5, alternative = "greater")$p.value  # 0.15789473684210531"""
    t, y, s = _units(SETS)
    rb = rosenbaum_sets(t, y, s, gammas=[1])
    assert rb.p_value == pytest.approx(0.00097736625514403363, rel=1e-12)
    t1, y1, s1 = _units([(5, 2, 3, 2)])
    one = rosenbaum_sets(t1, y1, s1, gammas=[2])
    assert one.table.loc[0, "p_upper"] == pytest.approx(0.48000000000000009, rel=1e-12)
    assert one.table.loc[0, "p_lower"] == pytest.approx(0.15789473684210531, rel=1e-12)


def test_pairs_reduce_to_binarysens():
    """1:1 pairs: 8 pairs with the event in the served unit only, 2 in the comparison unit
    only, plus concordant pairs (which add nothing): Γ = 1 gives 56/1024, Γ = 2 gives
    17664/59049 (binomial tails), as rosenbaum_bounds(8, 2)."""
    sets = [(2, 1, 1, 1)] * 8 + [(2, 1, 1, 0)] * 2 + [(2, 1, 2, 1)] * 5 + [(2, 1, 0, 0)] * 7
    t, y, s = _units(sets)
    rb = rosenbaum_sets(t, y, s, gammas=[1, 2])
    ref = rosenbaum_bounds(8, 2, gammas=[1, 2])
    assert rb.design == "1:1 pairs" and (rb.n10, rb.n01) == (8, 2) and rb.n_sets == 10
    assert rb.table.loc[0, "p_upper"] == pytest.approx(56 / 1024, abs=1e-15)
    assert rb.table.loc[1, "p_upper"] == pytest.approx(17664 / 59049, abs=1e-15)
    assert rb.table[["p_lower", "p_upper"]].to_numpy() == pytest.approx(ref.table[["p_lower", "p_upper"]].to_numpy(), abs=1e-15)
    assert rb.gamma_critical == ref.gamma_critical == 1.0
    # the other direction: flipped arms give the same bounds
    flipped = rosenbaum_sets(~t, y, s, gammas=[1, 2])
    assert flipped.direction == "fewer events in treated"
    assert flipped.table["p_upper"].to_numpy() == pytest.approx(rb.table["p_upper"].to_numpy(), abs=1e-15)
    lower = sum(comb(10, k) * (1 / 3) ** k * (2 / 3) ** (10 - k) for k in range(8, 11))
    assert rb.table.loc[1, "p_lower"] == pytest.approx(lower, abs=1e-15)


class _Matched:
    def __init__(self, data):
        self.data = data


def test_estimate_bounds_every_matched_set_of_a_ratio_two_design():
    """1:2 sets (and a few 1:1): estimate() bounds the design as matched, on every set; the
    pairs-only McNemar test is not given."""
    rng = np.random.default_rng(4)
    k = 150
    size = np.where(rng.random(k) < 0.8, 3, 2)
    sets = np.repeat(np.arange(k), size)
    first = np.r_[True, sets[1:] != sets[:-1]]
    y = (rng.random(sets.size) < np.where(first, 0.45, 0.3)).astype(int)
    df = pd.DataFrame({"treated": first, "y": y, "match_id": sets, "weight": np.where(first, 1.0, 1 / (size[sets] - 1))})
    res = estimate(_Matched(df), binary="y")
    rb = res.tests["rosenbaum[y]"]
    assert "mcnemar[y]" not in res.tests
    ref = rosenbaum_sets(first, y, sets)
    assert rb.table.to_numpy() == pytest.approx(ref.table.to_numpy(), abs=1e-15)
    g = df.groupby("match_id").agg(c=("y", "sum"), n=("y", "size"))
    informative = ((g.c > 0) & (g.c < g.n)).sum()
    assert rb.n_sets == informative > 80
    assert rb.design == "matched sets of 2 to 3 units"
    assert rb.n_treated + rb.n_comparison == int(g.n[(g.c > 0) & (g.c < g.n)].sum())
    assert rb.p_value < 0.05 < rb.table["p_upper"].iloc[-1]
    assert rb.gamma_critical > 1


# ------------------------------------------------------------------------------ committed extract
@pytest.fixture(scope="module")
def committed():
    import ppeval
    from ppeval.report import build

    ev = ppeval.Evaluation.from_toml(ROOT / "data/synthetic/eval.toml")
    return ev, build(ev)


def test_report_e_values_are_the_estimation_stage_ones(committed, monkeypatch):
    """Every E-value in the report is the one in res.sensitivity, and a report built with
    evalue() disabled and one number changed in res.sensitivity shows that number."""
    import importlib

    est_mod = importlib.import_module("ppeval.estimate")
    sens_mod = importlib.import_module("ppeval.estimate.sensitivity")
    from ppeval.report import build

    ev, content = committed
    published = pd.DataFrame(content["sensitivity"])
    assert len(published) >= 10
    for _, row in published.iterrows():
        t = ev.estimates[row["outcome"]].sensitivity
        w = t["window_months"].astype("Float64")
        hit = t[(t["measure"] == row["measure"]) & ((w == row["window_months"]) if pd.notna(row["window_months"]) else w.isna())]
        assert len(hit) == 1
        assert row["e_value"] == pytest.approx(float(hit["evalue"].iloc[0]), abs=1e-9)
        assert bool(row["rare_outcome"]) == bool(hit["rare_outcome"].iloc[0])

    def boom(*a, **k):
        raise AssertionError("the report recomputed an E-value")

    monkeypatch.setattr(sens_mod, "evalue", boom)
    monkeypatch.setattr(est_mod, "evalue", boom)
    tab = ev.estimates["tpr"].sensitivity
    i = tab.index[tab["measure"] == "hazard_ratio"][0]
    old = tab.loc[i, "evalue"]
    tab.loc[i, "evalue"] = 7.654321
    try:
        again = pd.DataFrame(build(ev)["sensitivity"])
    finally:
        tab.loc[i, "evalue"] = old
    got = again[(again.outcome == "tpr") & (again.measure == "hazard_ratio")]["e_value"]
    assert got.tolist() == [7.654321]


def test_report_rosenbaum_is_the_estimation_stage_bound_on_all_matched_sets(committed):
    """The committed extract is matched in sibling blocks (sets of 2 to 6): the bound uses
    every informative set, not the pure 1:1 pairs, and the words say so."""
    ev, content = committed
    h = content["headline"][0]
    col = f"{'reunified' if h.outcome == 'reunification' else h.outcome}_{h.window_months}m"
    rb = ev.estimates[h.outcome].tests[f"rosenbaum[{col}]"]
    pub = content["results"]["sensitivity"]["rosenbaum"]
    assert pub["outcome"] == col and pub["design"] == "matched sets"
    assert pub["informative_sets"]["sets"] == rb.n_sets == 56
    assert (pub["informative_sets"]["n_treated"], pub["informative_sets"]["n_comparison"]) == (91, 111)
    pure_pairs = ev.matched.data.groupby("match_id")["treated"].agg(["size", "sum"])
    assert rb.n_sets > ((pure_pairs["size"] == 2) & (pure_pairs["sum"] == 1)).sum()
    # the set-level test recomputed from the rows
    d = ev.matched.data[["match_id", "treated", col]].dropna()
    ref = rosenbaum_sets(d["treated"].astype(bool).to_numpy(), d[col].astype(float).to_numpy(), d["match_id"].to_numpy())
    assert pub["p_value_no_hidden_bias"] == pytest.approx(ref.p_value, rel=1e-9)
    assert [r["p_upper"] for r in pub["table"]] == pytest.approx(ref.table["p_upper"].tolist(), rel=1e-9)
    text = content["rosenbaum_text"]
    assert "1:1 pairs, McNemar" not in text and "56 matched sets" in text
    # headline not significant and the set test not significant: no conclusion to overturn
    assert (h.effects["risk_difference"]["p_value"] >= 0.05) and "no conclusion for hidden bias to overturn" in text
