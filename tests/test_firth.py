"""Firth's penalised logistic regression for the propensity model under separation.

Checked against R ``brglm2`` on the endometrial data (Heinze & Schemper 2002), against the
closed form for a 2x2 table (Firth = the log odds with 1/2 added to every cell), and for
the fall-back from maximum likelihood when the arms are separated.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ppeval.propensity import PropensityError, propensity

REF = Path(__file__).parent / "reference"


def test_firth_equals_brglm2_on_endometrial():
    """Coefficients and SEs equal R brglm2 (MPL_Jeffreys) to 1e-6 on the endometrial data.

    The data: 79 endometrial cancer patients, HG (histology grade, 1 = high) on NV
    (neovasculation), PI (pulsatility index) and EH (endometrium height). Every NV = 1
    patient has HG = 1, so NV separates the outcome quasi-completely and the ML coefficient
    of NV is infinite (glm stops at 18.19). The CSV is ``data("endometrial", package =
    "brglm2")`` written by the script below. Reference numbers from R 4.2.2, brglm2 0.9
    (Debian r-cran-brglm2 0.9+dfsg-1)::

        library(brglm2)
        data("endometrial", package = "brglm2")
        write.csv(endometrial, "tests/reference/endometrial.csv", row.names = FALSE)
        fit <- glm(HG ~ NV + PI + EH, family = binomial("logit"), data = endometrial,
                   method = "brglm_fit", type = "MPL_Jeffreys", epsilon = 1e-12, maxit = 500)
        options(digits = 15)
        summary(fit)$coefficients
        #                       Estimate         Std. Error
        # (Intercept)  3.7745597136470281 1.4886916634356548
        # NV           2.9292733531970940 1.5507637294530388
        # PI          -0.0347517598704338 0.0395781473477631
        # EH          -2.6041639252936548 0.7760176425015610

    (4.3045 is the intercept of the ordinary ML fit, not of Firth's.)
    """
    d = pd.read_csv(REF / "endometrial.csv")
    assert d.shape == (79, 4) and int(d["HG"].sum()) == 30
    ps = propensity(d, "HG", ["NV", "PI", "EH"], separation="firth")
    coef = ps.summary["coef"].to_numpy()
    se = ps.summary["se"].to_numpy()
    np.testing.assert_allclose(coef, [3.7745597136470281, 2.9292733531970940, -0.0347517598704338, -2.6041639252936548],
                               rtol=0, atol=1e-6)
    np.testing.assert_allclose(se, [1.4886916634356548, 1.5507637294530388, 0.0395781473477631, 0.7760176425015610],
                               rtol=0, atol=1e-6)
    assert ps.separation_ == "covariate 'NV' occurs only among treated units"
    assert ps.notes_ == ["the propensity model was fitted with Firth's penalised likelihood because covariate 'NV' "
                         "occurs only among treated units (ordinary maximum likelihood has no finite estimate then)"]
    assert "Firth" in ps.summary.attrs["model"]
    # the same data refused by default, with the way out named
    with pytest.raises(PropensityError, match=r"covariate 'NV' occurs only among treated units.*separation='firth'"):
        propensity(d, "HG", ["NV", "PI", "EH"])


def test_firth_two_by_two_is_half_added_to_every_cell():
    """One binary covariate: Firth's estimates are the logits of the table with 1/2 added.

    A saturated model's penalised score equations are those of the counts plus 1/2 (Firth
    1993, Heinze & Schemper 2002), so with a zero cell: intercept = log(0.5 / 20.5), slope =
    log(8.5 / 12.5) - log(0.5 / 20.5), and SEs sqrt(1/a + 1/b) of the Firth-fitted cell
    counts (n p, n (1 - p)). R brglm2 0.9 gives the same numbers::

        x <- c(rep(0, 20), rep(1, 20)); y <- c(rep(0, 20), rep(1, 8), rep(0, 12))
        fit <- glm(y ~ x, family = binomial, method = "brglm_fit", type = "MPL_Jeffreys", epsilon = 1e-12)
        summary(fit)$coefficients[, 1:2]
        #              Estimate       Std. Error
        # (Intercept) -3.71357206670431 1.46670362111611
        # x            3.32790958589232 1.53582190502669
    """
    x = np.r_[np.zeros(20), np.ones(20)]
    t = np.r_[np.zeros(20), np.ones(8), np.zeros(12)]  # x = 0: no treated unit (zero cell)
    df = pd.DataFrame({"x": x, "treated": t.astype(int)})
    ps = propensity(df, "treated", ["x"], separation="firth")
    b0 = np.log(0.5 / 20.5)
    b1 = np.log(8.5 / 12.5) - b0
    np.testing.assert_allclose(ps.summary["coef"], [b0, b1], rtol=0, atol=1e-9)
    # fitted probabilities p0 = 0.5/21, p1 = 8.5/21: var(b0) = 1/(n p0 (1-p0)), var(b1) adds arm 1's
    p0, p1 = 0.5 / 21, 8.5 / 21
    v0, v1 = 1 / (20 * p0 * (1 - p0)), 1 / (20 * p1 * (1 - p1))
    np.testing.assert_allclose(ps.summary["se"], [np.sqrt(v0), np.sqrt(v0 + v1)], rtol=0, atol=1e-9)
    np.testing.assert_allclose(ps.summary["coef"], [-3.71357206670431, 3.32790958589232], rtol=0, atol=1e-9)
    np.testing.assert_allclose(ps.summary["se"], [1.46670362111611, 1.53582190502669], rtol=0, atol=1e-9)
    assert "units with 'x' = 0 are all comparison" in ps.separation_


def test_tiny_separated_data_give_finite_coefficients():
    """30 units, x separates the arms completely: ML has no maximum, Firth is finite."""
    rng = np.random.default_rng(5)
    x = np.r_[rng.uniform(0, 1, 15), rng.uniform(1.5, 3, 15)]
    z = rng.normal(size=30)
    df = pd.DataFrame({"x": x, "z": z, "treated": np.r_[np.zeros(15), np.ones(15)].astype(int)})
    with pytest.raises(PropensityError, match=r"complete separation: covariate 'x' separates the arms"):
        propensity(df, "treated", ["x", "z"])
    ps = propensity(df, "treated", ["x", "z"], separation="firth")
    s = ps.summary
    assert np.isfinite(s[["coef", "se"]].to_numpy()).all()
    assert ps.estimator_.converged
    # the slope is large and positive but finite, and the scores are not 0 or 1
    assert 1 < s.loc["x", "coef"] < 20
    assert ps.score_.between(1e-6, 1 - 1e-6).all()
    assert ps.separation_ == "covariate 'x' separates the arms"
    # the penalised likelihood is at its maximum: its numerical gradient is zero
    Z = np.column_stack([np.ones(30), x, z])

    def pen(b):
        eta = Z @ b
        mu = 1 / (1 + np.exp(-eta))
        info = (Z * (mu * (1 - mu))[:, None]).T @ Z
        return np.sum(df["treated"] * eta - np.logaddexp(0, eta)) + 0.5 * np.linalg.slogdet(info)[1]

    b = s["coef"].to_numpy()
    grad = [(pen(b + 1e-6 * e) - pen(b - 1e-6 * e)) / 2e-6 for e in np.eye(3)]
    np.testing.assert_allclose(grad, 0, atol=1e-5)


def test_separation_by_a_combination_falls_back_to_firth():
    """a + b > 0 separates the arms (neither alone does): ML diverges, Firth is used and said."""
    rng = np.random.default_rng(3)
    n = 400
    df = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})
    df["treated"] = (df["a"] + df["b"] > 0).astype(int)
    ps = propensity(df, "treated", ["a", "b"], separation="firth")
    assert np.isfinite(ps.summary["coef"]).all()
    assert ps.separation_.startswith("a combination of covariates separates the arms")
    # the penalty keeps the two slopes equal, as the data are symmetric in a and b
    assert abs(ps.summary.loc["a", "coef"] / ps.summary.loc["b", "coef"] - 1) < 0.2


def test_no_separation_keeps_the_ml_fit():
    """Without separation the Firth option changes nothing: the ML fit, no note."""
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"x": rng.normal(size=500)})
    df["treated"] = (rng.random(500) < 1 / (1 + np.exp(-df["x"]))).astype(int)
    ml = propensity(df, "treated", ["x"])
    fi = propensity(df, "treated", ["x"], separation="firth")
    pd.testing.assert_frame_equal(ml.summary, fi.summary)
    assert fi.separation_ is None and fi.notes_ == []
    with pytest.raises(PropensityError, match=r"separation must be one of \('firth', 'refuse'\)"):
        propensity(df, "treated", ["x"], separation="exact")


def test_constant_covariates_left_out_with_a_note_without_numpy_repr():
    """constant="drop": a constant covariate (numeric or categorical) is left out and said so."""
    df = pd.DataFrame({"x": np.arange(40.0), "k": 3.0, "year": np.int64(2016), "treated": [0, 1] * 20})
    with pytest.raises(PropensityError) as info:
        propensity(df, "treated", ["x", "year"], categorical=["year"])
    assert str(info.value).startswith("covariate 'year' is constant (every unit has year = 2016)")
    assert "np." not in str(info.value)
    ps = propensity(df, "treated", ["x", "k", "year"], categorical=["year"], constant="drop")
    assert ps.covariates == ["x"]
    assert ps.left_out_ == {"k": "every unit has k = 3", "year": "every unit has year = 2016"}
    assert ps.notes_ == ["covariates constant in this cohort and left out of the propensity model: "
                         "k (every unit has k = 3); year (every unit has year = 2016)"]
    assert list(ps.summary.index) == ["(Intercept)", "x"]
    with pytest.raises(PropensityError, match="every covariate is constant"):
        propensity(df, "treated", ["k", "year"], constant="drop")


def test_constant_covariates_left_out_the_same_way_for_gradient_boosting():
    rng = np.random.default_rng(8)
    df = pd.DataFrame({"x": rng.normal(size=200), "year": np.int64(2016), "treated": [0, 1] * 100})
    ps = propensity(df, "treated", ["x", "year"], model="gbm", categorical=["year"], constant="drop")
    assert ps.covariates == ["x"] and list(ps.summary.index) == ["x"]
    assert ps.left_out_ == {"year": "every unit has year = 2016"}
    assert ps.separation_ is None
