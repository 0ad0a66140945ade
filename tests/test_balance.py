"""Balance: MatchIt's summary() on lalonde (the default convention), cobalt's raw binary option, verdict and plots."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest
from scripts import load_script

from ppeval.balance import BalanceError, balance
from ppeval.matching import match
from ppeval.plots import OKABE_ITO, love_plot, overlap_plot
from ppeval.propensity import PropensityScore, propensity

matplotlib.use("Agg")

REF = Path(__file__).parent / "reference"
LALONDE_COVS = ["age", "educ", "race", "married", "nodegree", "re74", "re75"]
RUNS = {
    "main": dict(ratio=1, replace=False, caliper_sd=0.2),
    "ratio2": dict(ratio=2, replace=False, caliper_sd=0.2),
    "replace": dict(ratio=1, replace=True, caliper_sd=0.2),
    "nocaliper": dict(ratio=1, replace=False, caliper_sd=None),
}
# MatchIt summary() column -> ppeval balance column stem
COLUMNS = {
    "Means Treated": "mean_treated",
    "Means Control": "mean_control",
    "Std. Mean Diff.": "smd",
    "Var. Ratio": "variance_ratio",
    "eCDF Mean": "ecdf_mean",
    "eCDF Max": "ecdf_max",
}


@pytest.fixture(scope="module")
def lalonde() -> pd.DataFrame:
    return load_script("tests/reference/build_lalonde_from_causaldata.py").load_lalonde()


@pytest.fixture(scope="module")
def ref() -> dict:
    return json.loads((REF / "lalonde_matchit.json").read_text())


@pytest.fixture(scope="module")
def ps_lalonde(lalonde):
    return propensity(lalonde, "treat", LALONDE_COVS)


@pytest.mark.parametrize("run", list(RUNS))
def test_balance_equals_matchit_summary(run, ref, ps_lalonde):
    """Every number of MatchIt's summary() before and after matching, to 1e-6.

    MatchIt standardizes binary covariates too (variance p(1-p)), so the comparison uses
    ``binary="std"``; the SD is the treated group's in the full sample (cobalt and MatchIt
    agree on this for the ATT). R (tests/reference/lalonde_matchit.R)::

        m <- matchit(treat ~ age + educ + race + married + nodegree + re74 + re75,
                     data = lalonde, method = "nearest", distance = lp_scaled,
                     m.order = "largest", caliper = 0.2, std.caliper = TRUE)  # per run
        m$distance <- lp                  # report the distance row on the logit scale
        s <- summary(m); s$sum.all; s$sum.matched
    """
    m = match(ps_lalonde, **RUNS[run])
    tab = balance(m, binary="std", distance=True).table.set_index("covariate")
    tab.index = [c.replace("race_", "race") for c in tab.index]  # R's dummy names
    worst = 0.0
    for key, when in (("summary_all", "before"), ("summary_matched", "after")):
        r = dict(ref["runs"][run][key])
        rows = r.pop("rows")
        assert list(tab.index) == rows
        for rcol, stem in COLUMNS.items():
            theirs = np.array([np.nan if v is None else v for v in r[rcol]], dtype=float)
            mine = tab.loc[rows, f"{stem}_{when}"].to_numpy(dtype=float)
            assert np.array_equal(np.isnan(theirs), np.isnan(mine)), (key, rcol)
            # means of earnings are in dollars: compare relative to the size of the number
            diff = np.nanmax(np.abs(mine - theirs) / np.maximum(1, np.abs(theirs)))
            worst = max(worst, diff)
            assert diff < 1e-6, (run, key, rcol, diff)
    assert worst < 1e-6
    # the headline number: max |SMD| over covariates after matching
    assert tab["smd_after"].drop("distance").abs().max() == pytest.approx(
        ref["runs"][run]["max_abs_smd_matched_covariates"], abs=1e-6)


def test_cobalt_binary_raw_and_treated_sd(ps_lalonde, lalonde):
    bal = balance(match(ps_lalonde), binary="raw")
    t = bal.table.set_index("covariate")
    assert bal.s_d_denom == "treated" and "unweighted full sample" in t.attrs["smd_denominator"]
    # binary rows: raw difference in proportions (cobalt's bal.tab default, asked for here)
    assert t.attrs["binary_convention"] == "raw" and "raw difference in proportions" in t.attrs["binary"]
    row = t.loc["married"]
    assert row["type"] == "binary"
    assert row["smd_before"] == pytest.approx(row["mean_treated_before"] - row["mean_control_before"])
    assert np.isnan(row["variance_ratio_before"])
    # continuous rows: treated SD of the unmatched sample, for before and after alike
    tr = lalonde["treat"] == 1
    sd = lalonde.loc[tr, "age"].std(ddof=1)
    a = t.loc["age"]
    assert a["smd_before"] == pytest.approx((a["mean_treated_before"] - a["mean_control_before"]) / sd)
    assert a["smd_after"] == pytest.approx((a["mean_treated_after"] - a["mean_control_after"]) / sd)
    # every level of the categorical has a row
    assert {"race_black", "race_hispan", "race_white"} <= set(t.index)


def test_pooled_denominator(ps_lalonde, lalonde):
    bal = balance(match(ps_lalonde), s_d_denom="pooled")
    tr = lalonde["treat"] == 1
    v = lalonde.groupby(tr)["re74"].var(ddof=1)
    sd = np.sqrt((v[True] + v[False]) / 2)
    row = bal.table.set_index("covariate").loc["re74"]
    assert row["sd_denominator"] == pytest.approx(sd)
    assert bal.table.attrs["s_d_denom"] == "pooled"


def test_weighted_after_statistics_closed_form():
    # ratio 2 with replacement and a caliper of 1.6 SD (0.497 on the logit):
    # t0 (logit 0.3) takes c3 (0.5) then c2 (0.0); t1 (-0.2) takes c2, and c3 is too far
    df = pd.DataFrame({"treated": [1, 1, 0, 0], "x": [1.0, 3.0, 2.0, 6.0]})
    ps = PropensityScore.from_logit(df, "treated", [0.3, -0.2, 0.0, 0.5], ["x"])
    m = match(ps, ratio=2, replace=True, caliper_sd=1.6)
    assert sorted(zip(m.pairs["treated"], m.pairs["control"], strict=True)) == [(0, 2), (0, 3), (1, 2)]
    w = m.data["weight"]
    # raw control weights: c2 = 1/2 + 1 = 1.5, c3 = 1/2 -> sum 2 = number of controls
    assert w[[2, 3]].tolist() == pytest.approx([1.5, 0.5])
    row = balance(m).table.iloc[0]
    assert row["mean_control_after"] == pytest.approx((1.5 * 2 + 0.5 * 6) / 2)  # 3.0
    sd_t = np.std([1.0, 3.0], ddof=1)
    assert row["smd_after"] == pytest.approx((2.0 - 3.0) / sd_t)
    # reliability-weighted variance: sum wn (x - m)^2 / (1 - sum wn^2) = 3 / 0.375 = 8
    assert row["variance_ratio_after"] == pytest.approx(2.0 / 8.0)
    # weighted eCDFs on the full sample's values 1, 2, 3, 6: |0.5-0|, |0.5-0.75|, |1-0.75|, 0
    assert row["ecdf_max_after"] == pytest.approx(0.5)
    assert row["ecdf_mean_after"] == pytest.approx((0.5 + 0.25 + 0.25 + 0) / 4)


def test_missing_values_and_levels_absent_after_matching():
    rng = np.random.default_rng(5)
    n = 800
    df = pd.DataFrame({"x": rng.normal(size=n), "g": rng.choice(["a", "b", "c"], n)})
    df["treated"] = (rng.random(n) < 1 / (1 + np.exp(1 - df["x"]))).astype(int)
    df.loc[:49, "x"] = np.nan
    ps = propensity(df, "treated", ["x", "g"])
    bal = balance(match(ps), covariates=["x", "g"])
    names = bal.table["covariate"].tolist()
    assert names == ["x", "x_missing", "g_a", "g_b", "g_c"]
    miss = bal.table.set_index("covariate").loc["x_missing"]
    t = df["treated"] == 1
    assert miss["mean_treated_before"] == pytest.approx(df.loc[t, "x"].isna().mean())
    # a level nobody in the matched sample has still gets a row (not silently zero)
    df2 = pd.DataFrame({"x": rng.normal(size=n), "g": rng.choice(["a", "b"], n)})
    df2["treated"] = (rng.random(n) < 0.3).astype(int)
    df2.loc[0, ["g", "treated", "x"]] = ["rare", 0, 50.0]  # far outside the caliper
    bal2 = balance(match(PropensityScore.from_logit(df2, "treated", df2["x"], ["x", "g"])))
    rare = bal2.table.set_index("covariate").loc["g_rare"]
    assert rare["mean_control_before"] == pytest.approx(1 / (df2["treated"] == 0).sum())
    assert rare["mean_control_after"] == 0.0 and rare["smd_after"] == 0.0


def test_verdict_thresholds(ps_lalonde):
    bal = balance(match(ps_lalonde))
    v = bal.verdict.set_index("covariate")
    # married: |SMD| 0.284 after matching (MatchIt's convention) -> fails; educ: continuous, VR 0.48 -> fails
    assert not v.loc["married", "smd_ok"]
    assert v.loc["educ", "smd_ok"] and not v.loc["educ", "variance_ratio_ok"]
    assert not bal.passed
    loose = balance(match(ps_lalonde), thresholds=(0.3, (0.1, 10)))
    assert loose.passed
    assert loose.verdict.attrs["rule"] == "|SMD| < 0.3 and variance ratio (continuous covariates) in [0.1, 10]"
    assert bal.max_abs_smd_before > bal.max_abs_smd_after


def test_balance_on_propensity_only_and_errors(ps_lalonde):
    b = balance(ps_lalonde)
    assert b.table["smd_after"].isna().all() and b.table["smd_before"].notna().all()
    with pytest.raises(BalanceError, match="s_d_denom must be"):
        balance(ps_lalonde, s_d_denom="control")
    with pytest.raises(BalanceError, match="covariate 'zzz' is not in the data"):
        balance(ps_lalonde, covariates=["zzz"])


def test_love_and_overlap_plots(ps_lalonde):
    import matplotlib.pyplot as plt

    m = match(ps_lalonde)
    bal = balance(m)
    fig, (a1, a2) = plt.subplots(1, 2)
    ax = love_plot(bal, ax=a1)
    assert ax is a1
    # largest |SMD| before: race_white, -1.88 in MatchIt's summary() (binary rows standardized)
    assert [t.get_text() for t in ax.get_yticklabels()][-1] == "race_white"
    assert ax.get_xlabel() == ("Absolute standardized mean difference "
                               "(binary covariates by the treated group's sqrt(p(1 − p)))")
    assert any(abs(line.get_xdata()[0] - 0.1) < 1e-12 for line in ax.get_lines())
    ax2 = overlap_plot(m, ax=a2)
    assert ax2 is a2
    labels = [t.get_text() for t in ax2.get_legend().get_texts()]
    assert labels[:2] == ["Treated (n=185)", "Comparison (n=429)"]
    assert "Comparison, matched (weighted)" in labels
    assert bal.love_plot().get_title() == "Covariate balance"
    assert OKABE_ITO["blue"] == "#0072B2"
    plt.close("all")
