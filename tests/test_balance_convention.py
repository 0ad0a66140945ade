"""Balance in MatchIt's convention: binary covariates standardized, the verdict drawn on it.

MatchIt's ``summary.matchit()`` (``standardize = TRUE``, its default) computes every
covariate's "Std. Mean Diff." in ``bal1var()`` (R/match.qoi.R, 4.5.1 and 4.7.2 alike) as the
difference in weighted means over ``sqrt(wvar(x[treated], bin.var, s.weights))``, and
``wvar()`` (R/utils.R) is p(1 - p) for a 0/1 variable: binary covariates are standardized by
the treated group's sqrt(p_t(1 - p_t)) in the unmatched sample. cobalt's ``bal.tab()`` by
default does not (raw difference in proportions); ppeval's verdicts follow MatchIt.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scripts import load_script

from ppeval.balance import balance
from ppeval.estimate import estimate
from ppeval.matching import match
from ppeval.plots import love_plot
from ppeval.propensity import PropensityScore, propensity
from ppeval.report.content import balance_text
from ppeval.report.publish import published_balance

LALONDE_COVS = ["age", "educ", "race", "married", "nodegree", "re74", "re75"]


@pytest.fixture(scope="module")
def lalonde() -> pd.DataFrame:
    return load_script("tests/reference/build_lalonde_from_causaldata.py").load_lalonde()


def test_binary_std_smd_equals_matchit_summary_on_lalonde(lalonde):
    """Binary covariates' standardized SMDs equal MatchIt 4.5.1's summary() "Std. Mean Diff.".

    R 4.2.2, MatchIt 4.5.1 (tests/reference/lalonde_matchit.R, run ``main``; the scaled
    distance works around MatchIt 4.5.1's integer truncation, see tests/reference/README.md)::

        library(MatchIt); data(lalonde)
        f <- treat ~ age + educ + race + married + nodegree + re74 + re75
        lp <- predict(glm(f, data = lalonde, family = binomial))
        m <- matchit(f, data = lalonde, method = "nearest", distance = lp * 1e9 / diff(range(lp)),
                     m.order = "largest", caliper = 0.2, std.caliper = TRUE)
        s <- summary(m)      # standardize = TRUE (default)
        rows <- c("married", "nodegree", "raceblack", "racehispan")
        print(s$sum.all[rows, "Std. Mean Diff."], digits = 17)
        print(s$sum.matched[rows, "Std. Mean Diff."], digits = 17)
        # the raw difference in proportions: standardize = FALSE, "Mean Diff."
        print(summary(m, standardize = FALSE)$sum.matched[rows, "Mean Diff."], digits = 17)

    (Re-run on Debian's r-cran-matchit 4.5.1 for this test: the same digits as
    tests/reference/lalonde_matchit.json.)

    The raw difference in proportions (cobalt's default) is kept beside it, labelled.
    """
    before = {"married": -0.8263092723407163, "nodegree": 0.2449702322720187,
              "race_black": 1.7615418898154271, "race_hispan": -0.34984254159842165}
    after = {"married": -0.2836936188407456, "nodegree": 0.2631972665621984,
             "race_black": 0.04701696204626468, "race_hispan": -0.036142226223616}
    raw_after = {"married": -0.1111111111111111049, "nodegree": 0.1196581196581196771,
                 "race_black": 0.0170940170940170333, "race_hispan": -0.0085470085470085444}
    # MatchIt's Means Treated / Means Control after matching (117 pairs)
    means_after = {"married": (0.17094017094017094, 0.28205128205128205),
                   "nodegree": (0.7350427350427351, 0.6153846153846154)}
    m = match(propensity(lalonde, "treat", LALONDE_COVS), ratio=1, caliper_sd=0.2)
    bal = balance(m)  # the default is MatchIt's convention
    assert bal.binary == "std"
    tab = bal.table.set_index("covariate")
    for name in before:
        assert tab.at[name, "type"] == "binary"
        assert tab.at[name, "smd_before"] == pytest.approx(before[name], abs=1e-9)
        assert tab.at[name, "smd_after"] == pytest.approx(after[name], abs=1e-9)
        assert tab.at[name, "diff_prop_after"] == pytest.approx(raw_after[name], abs=1e-12)
    for name, (pt, pc) in means_after.items():
        assert tab.at[name, "diff_prop_after"] == pytest.approx(pt - pc, abs=1e-12)
        # the standardizer is the treated SD *before* matching, by hand
        p0 = lalonde.loc[lalonde["treat"] == 1, name].mean()
        assert tab.at[name, "smd_after"] == pytest.approx((pt - pc) / np.sqrt(p0 * (1 - p0)), abs=1e-12)
    # MatchIt's max |Std. Mean Diff.| over the covariates after matching: married
    assert bal.max_abs_smd_after == pytest.approx(0.2836936188407456, abs=1e-9)
    raw = balance(m, binary="raw").table.set_index("covariate")
    assert raw.at["married", "smd_after"] == pytest.approx(0.17094017094017094 - 0.28205128205128205, abs=1e-12)
    assert not bal.passed and "married 0.28" in bal.explain()


def _fixture(p_t_ones: int = 5, c_ones_matched: int = 2):
    """100 served units, 5 with x = 1 (p_t = 0.05, SD sqrt(0.05 * 0.95) = 0.218); each has one
    comparison unit at nearly its score, 2 of which have x = 1; 100 more comparison units lie
    far away. After matching the difference in proportions is 0.03 (< 0.1), standardized
    0.03 / 0.218 = 0.138 (> 0.1)."""
    n = 100
    score = np.linspace(-1, 1, n)
    xt = np.zeros(n)
    xt[:p_t_ones] = 1
    xc = np.zeros(n)
    xc[-c_ones_matched:] = 1
    far = np.full(n, 8.0) + np.linspace(0, 1, n)
    df = pd.DataFrame({
        "treated": np.r_[np.ones(n), np.zeros(2 * n)].astype(int),
        "x": np.r_[xt, xc, np.ones(n)],
        "z": np.r_[score, score + 1e-6, far],
    })
    ps = PropensityScore.from_logit(df, "treated", df["z"], ["x"])
    return match(ps, caliper_sd=None)


def test_verdict_follows_the_standardized_smd():
    """Raw difference 0.03 (< 0.1) but standardized 0.138 (> 0.1): not balanced, and said so."""
    m = _fixture()
    bal = balance(m)
    row = bal.table.set_index("covariate").loc["x"]
    assert row["diff_prop_after"] == pytest.approx(0.03, abs=1e-12)
    assert row["smd_after"] == pytest.approx(0.03 / np.sqrt(0.05 * 0.95), abs=1e-12)  # 0.1376
    assert not bal.passed
    assert bal.max_abs_smd_after == pytest.approx(0.1376, abs=1e-4)
    # cobalt's raw convention would have called it balanced: the default no longer does
    assert balance(m, binary="raw").passed
    text = bal.explain()
    assert text.startswith("Not balanced: 1 covariate row differs by 0.1 SD or more after matching (x 0.14")
    assert "exact matching on x" in text and "interpret them with care" in text
    assert "Matching exactly on x (matching.exact in the config)" in balance_text(bal, ["x"])
    sentence = balance_text(bal, ["x"])
    assert sentence.startswith("After matching 1 characteristic still differed between the groups by 0.1 "
                               "standard deviations or more (X 0.14; largest standardized difference 0.14)")
    assert "not alike on every characteristic" in sentence and "read them with care" in sentence
    assert "looked alike" not in sentence
    # the balanced case reads the other way, from the same number
    ok = balance(_fixture(c_ones_matched=5))
    assert ok.passed and ok.max_abs_smd_after == pytest.approx(0.0, abs=1e-12)
    assert balance_text(ok, ["x"]).startswith("After matching the two groups looked alike on every characteristic")


def test_love_plot_axis_label_says_the_convention():
    import matplotlib

    matplotlib.use("Agg")
    m = _fixture()
    assert love_plot(balance(m)).get_xlabel() == (
        "Absolute standardized mean difference (binary covariates by the treated group's sqrt(p(1 − p)))")
    assert love_plot(balance(m, binary="raw")).get_xlabel() == (
        "Absolute standardized mean difference (binary covariates: difference in proportions)")
    assert love_plot(balance(m), absolute=False).get_xlabel().startswith("Standardized mean difference (binary")


def test_publication_withholds_the_standardized_statistic():
    """A binary row with a small cell loses its standardized SMD, its raw difference and its
    denominator (sqrt(p_t(1 - p_t)) gives p_t back); with the served size before matching
    hidden, a binary SMD after matching goes too (its denominator is a share of that size)."""
    m = _fixture()
    bal = balance(m)
    sizes = {"before_t": 100, "before_c": 200, "after_t": 100, "after_c": 100}
    pub = published_balance(bal, sizes, 11)  # 5 served with x = 1: below 11
    row = pub.table.set_index("covariate").loc["x"]
    for col in ("smd_before", "smd_after", "diff_prop_before", "diff_prop_after", "sd_denominator",
                "mean_treated_before", "ecdf_max_after"):
        assert np.isnan(row[col]), col
    assert pub.passed is False  # the verdict keeps the true value
    # 20 of 100 with x = 1: every cell publishable, but the served size before matching hidden
    m2 = _fixture(p_t_ones=20, c_ones_matched=20)
    bal2 = balance(m2)
    shown = published_balance(bal2, sizes, 11).table.set_index("covariate").loc["x"]
    assert np.isfinite(shown["smd_after"]) and np.isfinite(shown["diff_prop_after"])
    hidden = published_balance(bal2, sizes, 11, {"before_t": True}).table.set_index("covariate").loc["x"]
    assert np.isnan(hidden["smd_after"]) and np.isnan(hidden["sd_denominator"])
    assert np.isfinite(hidden["diff_prop_after"])  # a difference of matched proportions pins no hidden size


def test_estimate_reads_the_treatment_column_of_the_matched_sample():
    """propensity(rossi, treatment="fin") -> match -> estimate(m, duration=, event=) uses ``fin``
    (it used to fail with "column 'treated' not found"), the same as naming it."""
    from pathlib import Path

    rossi = pd.read_csv(Path(__file__).parent / "reference" / "rossi.csv")
    m = match(propensity(rossi, treatment="fin", covariates=["age", "prio", "wexp", "mar", "paro"]))
    assert "treated" not in m.data.columns
    got = estimate(m, duration="week", event="arrest").to_frame()
    named = estimate(m, duration="week", event="arrest", treatment="fin").to_frame()
    hr = got.set_index("measure").loc["hazard_ratio"]
    assert hr["estimate"] == named.set_index("measure").loc["hazard_ratio", "estimate"]
    assert int(hr["n_treated"]) == int(m.data["fin"].sum())
    # the Cox hazard ratio of financial aid on the matched rows, as lifelines 0.30.3's CoxPHFitter
    # (Efron ties, matching weights) gives it on the same rows
    from lifelines import CoxPHFitter

    d = m.data[["week", "arrest", "fin", "weight"]].astype(float)
    cph = CoxPHFitter().fit(d, "week", "arrest", weights_col="weight", robust=True)
    assert hr["estimate"] == pytest.approx(float(np.exp(cph.params_["fin"])), rel=1e-6)
