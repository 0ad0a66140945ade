"""Propensity models: against R's glm on lalonde, encodings, errors, common support."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest
from scripts import load_script

from ppeval.propensity import PropensityError, PropensityScore, propensity

matplotlib.use("Agg")

REF = Path(__file__).parent / "reference"
LALONDE_COVS = ["age", "educ", "race", "married", "nodegree", "re74", "re75"]


def load_lalonde() -> pd.DataFrame:
    """MatchIt's lalonde rebuilt from causaldata (tests/reference/README.md)."""
    return load_script("tests/reference/build_lalonde_from_causaldata.py").load_lalonde()


@pytest.fixture(scope="module")
def lalonde() -> pd.DataFrame:
    return load_lalonde()


@pytest.fixture(scope="module")
def ref() -> dict:
    return json.loads((REF / "lalonde_matchit.json").read_text())


def test_logistic_against_R_glm(lalonde, ref):
    """Coefficients, SEs and linear predictor equal R's glm on lalonde.

    R (tests/reference/lalonde_matchit.R)::

        data("lalonde", package = "MatchIt")
        ps_fit <- glm(treat ~ age + educ + race + married + nodegree + re74 + re75,
                      family = binomial, data = lalonde)
        coef(ps_fit); sqrt(diag(vcov(ps_fit)))
        lp <- predict(ps_fit, type = "link"); sd(lp)

    R's IRLS stops when the relative change in deviance is below 1e-8 and computes the SEs
    from the working weights of the previous iteration, so its SEs are themselves only good
    to about 1e-5 (relative); ppeval iterates to 1e-12.
    """
    ps = propensity(lalonde, "treat", LALONDE_COVS)
    s = ps.summary
    assert list(s.index) == ["(Intercept)", "age", "educ", "race_hispan", "race_white",
                             "married", "nodegree", "re74", "re75"]
    np.testing.assert_allclose(s["coef"], ref["ps_model"]["coef"], rtol=1e-6)
    np.testing.assert_allclose(s["se"], ref["ps_model"]["se"], rtol=5e-5)
    np.testing.assert_allclose(ps.logit_, ref["lp"], atol=1e-6)
    np.testing.assert_allclose(ps.score_, ref["ps"], atol=1e-7)
    assert np.std(ps.logit_, ddof=1) == pytest.approx(ref["sd_lp"], abs=1e-7)
    # score and logit are aligned to the data's index
    assert ps.score_.index.equals(lalonde.index)
    assert ps.n_treated_ == 185 and ps.n_control_ == 429
    assert s.loc["educ", "odds_ratio"] == pytest.approx(np.exp(ref["ps_model"]["coef"][2]), rel=1e-6)
    assert ps.auc_ == pytest.approx(0.8744, abs=5e-4)


def test_categorical_levels_first_dropped_and_category_order():
    rng = np.random.default_rng(0)
    n = 600
    g = pd.Categorical(rng.choice(["low", "mid", "high"], n), categories=["low", "mid", "high"])
    df = pd.DataFrame({"g": g, "year": rng.choice([2016, 2017, 2018], n), "x": rng.normal(size=n)})
    df["treated"] = rng.random(n) < 0.4
    ps = propensity(df, "treated", ["g", "year", "x"], categorical=["year"])
    assert list(ps.summary.index) == ["(Intercept)", "g_mid", "g_high", "year_2017",
                                      "year_2018", "x"]
    assert ps.kinds_ == {"g": "categorical", "year": "categorical", "x": "numeric"}
    # indicator columns are exactly the level memberships
    assert (ps.design_["g_high"] == (df["g"] == "high")).all()


def test_missing_indicator_drop_and_error():
    rng = np.random.default_rng(1)
    n = 500
    df = pd.DataFrame({"x": rng.normal(size=n), "c": rng.choice(["a", "b"], n)})
    df["treated"] = (rng.random(n) < 1 / (1 + np.exp(-df["x"]))).astype(int)
    df.loc[:29, "x"] = np.nan
    df.loc[40:44, "c"] = None
    ps = propensity(df, "treated", ["x", "c"])
    assert {"x_missing", "c_missing"} <= set(ps.summary.index)
    assert ps.score_.notna().all()
    assert ps.design_["x_missing"].sum() == 30 and ps.design_["c_missing"].sum() == 5
    # the fill value is the observed mean
    assert ps.design_.loc[0, "x"] == pytest.approx(df["x"].mean())

    dropped = propensity(df, "treated", ["x", "c"], missing="drop")
    assert dropped.score_.isna().sum() == 35
    assert dropped.common_support_["without_score"].sum() == 35

    with pytest.raises(PropensityError, match=r"missing covariate values: x \(30\), c \(<11\)"):
        propensity(df, "treated", ["x", "c"], missing="error")


def test_error_constant_covariate_named():
    df = pd.DataFrame({"x": np.arange(40.0), "k": 3.0, "treated": [0, 1] * 20})
    with pytest.raises(PropensityError, match=r"covariate 'k' is constant \(every unit has k = 3\)"):
        propensity(df, "treated", ["x", "k"])
    df["s"] = "same"
    with pytest.raises(PropensityError, match=r"covariate 's' is constant"):
        propensity(df, "treated", ["x", "s"])


def test_error_empty_and_tiny_arm_give_counts():
    df = pd.DataFrame({"x": np.arange(50.0), "treated": 0})
    with pytest.raises(PropensityError, match=r"the treated arm has 0 unit\(s\) \(the other arm 50\)"):
        propensity(df, "treated", ["x"])
    df.loc[:2, "treated"] = 1
    with pytest.raises(PropensityError, match=r"the treated arm has <11 unit\(s\) \(the other arm 47\); at least 5"):
        propensity(df, "treated", ["x"])


def test_error_quasi_separation_names_covariate_and_level():
    rng = np.random.default_rng(2)
    n = 300
    df = pd.DataFrame({"x": rng.normal(size=n),
                       "county": rng.choice(["Adams", "Boone", "Clay"], n)})
    df["treated"] = (rng.random(n) < 0.4).astype(int)
    df.loc[df["county"] == "Clay", "treated"] = 1  # every Clay unit is treated
    with pytest.raises(PropensityError) as e:
        propensity(df, "treated", ["x", "county"])
    msg = str(e.value)
    assert "quasi-complete separation" in msg
    assert "covariate 'county' level 'Clay' occurs only among treated units" in msg


def test_error_complete_separation_numeric():
    df = pd.DataFrame({"x": np.r_[np.arange(20.0), np.arange(30.0, 50.0)],
                       "z": np.tile([0.0, 1.0], 20), "treated": [0] * 20 + [1] * 20})
    with pytest.raises(PropensityError, match=r"complete separation: covariate 'x' separates the arms"):
        propensity(df, "treated", ["z", "x"])


def test_error_separation_by_a_combination_names_a_covariate():
    rng = np.random.default_rng(3)
    n = 400
    df = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})
    df["treated"] = (df["a"] + df["b"] > 0).astype(int)  # separated by a + b, not by a or b
    with pytest.raises(PropensityError, match=r"separation.*coefficient of covariate '[ab]' diverges"):
        propensity(df, "treated", ["a", "b"])


def test_error_collinear_covariates():
    rng = np.random.default_rng(4)
    df = pd.DataFrame({"a": rng.normal(size=200), "b": rng.normal(size=200)})
    df["c"] = 2 * df["a"] - df["b"]
    df["treated"] = (rng.random(200) < 0.5).astype(int)
    with pytest.raises(PropensityError, match=r"covariate 'c' is collinear.*'a', 'b'"):
        propensity(df, "treated", ["a", "b", "c"])


def test_bad_arguments():
    df = pd.DataFrame({"age": np.arange(40.0), "treated": [0, 1] * 20})
    with pytest.raises(PropensityError, match=r"'agee' is not in the data; did you mean 'age'"):
        propensity(df, "treated", ["agee"])
    with pytest.raises(PropensityError, match="give the covariates"):
        propensity(df, "treated")
    with pytest.raises(PropensityError, match="model must be one of"):
        propensity(df, "treated", ["age"], model="probit")
    with pytest.raises(PropensityError, match="index has repeated labels"):
        propensity(df.set_index(np.zeros(40)), "treated", ["age"])
    bad = df.assign(treated=[0, 2] * 20)
    with pytest.raises(PropensityError, match="must be 0/1 or True/False; found 2"):
        propensity(bad, "treated", ["age"])


def test_common_support_counts_and_ranges():
    # scores given directly: treated 0.3..0.9, comparison 0.1..0.7
    lg = np.log(np.array([0.3, 0.5, 0.9, 0.1, 0.4, 0.7]) / (1 - np.array([0.3, 0.5, 0.9, 0.1, 0.4, 0.7])))
    df = pd.DataFrame({"treated": [1, 1, 1, 0, 0, 0]})
    for rule, disc in [("none", []), ("treated", [2]), ("control", [3]), ("both", [2, 3])]:
        ps = PropensityScore.from_logit(df, "treated", lg, common_support=rule)
        assert list(np.flatnonzero(ps.discarded_)) == disc, rule
    ps = PropensityScore.from_logit(df, "treated", lg, common_support="both")
    cs = ps.common_support_
    assert cs.loc["treated", "discarded"] == 1 and cs.loc["comparison", "discarded"] == 1
    assert cs.loc["treated", "score_max"] == pytest.approx(0.5)
    assert cs.loc["comparison", "score_min"] == pytest.approx(0.4)


def test_propensity_common_support_option(lalonde):
    ps = propensity(lalonde, "treat", LALONDE_COVS, common_support="treated")
    # treated scores above the largest comparison score are discarded
    s, t = ps.score_, ps.treated_
    expected = int((t & (s > s[~t].max())).sum() + (t & (s < s[~t].min())).sum())
    assert int(ps.discarded_.sum()) == expected == ps.common_support_.loc["treated", "discarded"]
    assert expected > 0


def test_gbm_model_is_reproducible_and_bounded(lalonde):
    a = propensity(lalonde, "treat", LALONDE_COVS, model="gbm", random_state=1)
    b = propensity(lalonde, "treat", LALONDE_COVS, model="gbm", random_state=1)
    assert np.array_equal(a.score_, b.score_)
    assert ((a.score_ > 0) & (a.score_ < 1)).all()
    np.testing.assert_allclose(a.logit_, np.log(a.score_ / (1 - a.score_)), atol=1e-9)
    assert a.auc_ > 0.9  # boosting fits the training data more closely than the glm
    assert set(a.summary.columns) == {"importance", "importance_sd"}
    assert a.summary["importance"].idxmax() in {"race_white", "re74", "age", "married"}


def test_auc_is_mann_whitney():
    df = pd.DataFrame({"treated": [1, 1, 0, 0, 0]})
    ps = PropensityScore.from_logit(df, "treated", [2.0, 0.0, 1.0, -1.0, 0.0])
    # pairs (t, c): (2>1,2>-1,2>0)=3, (0<1, 0>-1, 0=0 -> 0.5)=1.5  => 4.5/6
    assert ps.auc_ == pytest.approx(0.75)


def test_repr_and_plot(lalonde):
    ps = propensity(lalonde, "treat", LALONDE_COVS)
    assert "c-statistic 0.874" in ps._repr_html_()
    assert repr(ps).startswith("PropensityScore(model='logistic', treated=185, comparison=429")
    ax = ps.plot()
    assert ax.get_xlabel() == "Logit of the propensity score"
    heights = [p.get_height() for p in ax.patches]
    assert sum(h for h in heights if h > 0) == 185 and -sum(h for h in heights if h < 0) == 429
