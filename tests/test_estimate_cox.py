"""Cox model (ppeval.estimate.CoxPH) against R's survival::coxph.

Reference numbers: tests/reference/survival.json, written by tests/reference/survival.R
(R 4.2.2, survival 3.5-3).  Extra numbers computed with the same R are written inline,
with the R code in the test's docstring.
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ppeval.estimate import CoxPH

REF = Path(__file__).parent / "reference"
SURV = json.loads((REF / "survival.json").read_text())
COX = SURV["rossi"]["cox"]
FULL = ["fin", "age", "race", "wexp", "mar", "paro", "prio"]
TOL = 1e-6


@pytest.fixture(scope="module")
def rossi():
    """rossi.csv with R's row-derived columns (cl = ceiling(row/2), w = 1 + row %% 3)."""
    df = pd.read_csv(REF / "rossi.csv")
    row = np.arange(1, len(df) + 1)
    df["cl"] = np.ceil(row / 2).astype(int)
    df["w"] = 1 + row % 3
    return df


def _check(fit, ref, robust=True):
    assert np.max(np.abs(fit.params_.to_numpy() - ref["coef"])) < TOL
    assert np.max(np.abs(fit.se_model_.to_numpy() - ref["se_model"])) < TOL
    assert fit.log_likelihood_ == pytest.approx(ref["loglik"][1], abs=1e-6)
    assert fit.log_likelihood_null_ == pytest.approx(ref["loglik"][0], abs=1e-6)
    assert fit.score_test_ == pytest.approx(ref["score_test"], abs=1e-6)
    assert fit.wald_test_ == pytest.approx(ref["wald_test"], abs=1e-5)
    if robust:
        assert np.max(np.abs(fit.se_robust_.to_numpy() - ref["se_robust"])) < TOL
        assert np.max(np.abs(fit.variance_matrix_.to_numpy() - np.array(ref["var_robust"]))) < TOL
        assert fit.robust_score_test_ == pytest.approx(np.ravel(ref["robust_score_test"])[0], abs=1e-6)


def test_efron_cluster_full_model(rossi):
    """R: coxph(Surv(week, arrest) ~ fin + age + race + wexp + mar + paro + prio,
    data = rossi, ties = "efron", cluster = cl)   # cl = ceiling(row / 2)

    Key number: robust SE of fin 0.19118774859273024 (lifelines gives a different value).
    """
    fit = CoxPH().fit(rossi, "week", "arrest", FULL, cluster_col="cl")
    _check(fit, COX["efron_cluster"])
    assert fit.se_["fin"] == pytest.approx(0.19118774859273024, abs=1e-9)
    assert fit.n_clusters_ == 216


def test_efron_robust_rows(rossi):
    """R: coxph(full, data = rossi, ties = "efron", robust = TRUE)"""
    fit = CoxPH(robust=True).fit(rossi, "week", "arrest", FULL)
    _check(fit, COX["efron_robust"])


@pytest.mark.parametrize("key,cols,ties,weights", [
    ("breslow_cluster", FULL, "breslow", None),
    ("efron_weighted_cluster", FULL, "efron", "w"),
    ("breslow_weighted_cluster", FULL, "breslow", "w"),
    ("fin_cluster", ["fin"], "efron", None),
    ("fin_weighted_cluster", ["fin"], "efron", "w"),
    ("fin_breslow_weighted_cluster", ["fin"], "breslow", "w"),
])
def test_variants_against_r(rossi, key, cols, ties, weights):
    """R (survival.R):
    coxph(full, data = rossi, ties = "breslow", cluster = cl)
    coxph(full, data = rossi, ties = "efron", weights = w, cluster = cl)
    coxph(full, data = rossi, ties = "breslow", weights = w, cluster = cl)
    coxph(Surv(week, arrest) ~ fin, data = rossi, ties = "efron", cluster = cl)
    coxph(Surv(week, arrest) ~ fin, data = rossi, ties = "efron", weights = w, cluster = cl)
    coxph(Surv(week, arrest) ~ fin, data = rossi, ties = "breslow", weights = w, cluster = cl)
    """
    fit = CoxPH(ties=ties).fit(rossi, "week", "arrest", cols, weights_col=weights, cluster_col="cl")
    _check(fit, COX[key])


@pytest.mark.parametrize("key,ties,weights", [("efron", "efron", None),
                                              ("breslow", "breslow", None),
                                              ("efron_weighted", "efron", "w")])
def test_model_based_fits(rossi, key, ties, weights):
    """R: coxph(full, data = rossi, ties = "efron"); ties = "breslow"; weights = w"""
    fit = CoxPH(ties=ties).fit(rossi, "week", "arrest", FULL, weights_col=weights)
    _check(fit, COX[key], robust=False)
    assert fit.se_robust_ is None


def test_dfbeta_residuals(rossi):
    """R: fit1 <- coxph(Surv(week, arrest) ~ fin, data = rossi, weights = w, ties = "efron",
                        cluster = cl)
    residuals(fit1, type = "dfbeta")                       # weighted, one per row
    residuals(fit1, type = "dfbeta", collapse = rossi$cl)
    residuals(fit1, type = "score", weighted = FALSE)
    """
    ref = COX["fin_weighted_cluster"]
    fit = CoxPH().fit(rossi, "week", "arrest", ["fin"], weights_col="w", cluster_col="cl")
    dfb = fit.dfbeta_[:, 0]
    assert np.max(np.abs(dfb - ref["dfbeta"])) < 1e-10
    collapsed = pd.Series(dfb).groupby(rossi["cl"].to_numpy()).sum().to_numpy()
    assert np.max(np.abs(collapsed - ref["dfbeta_collapsed_by_cl"])) < 1e-10
    score = fit.score_residuals_[:, 0] / rossi["w"].to_numpy()
    assert np.max(np.abs(score - ref["score_resid_unweighted"])) < 1e-10
    assert np.sum(collapsed**2) == pytest.approx(ref["var_robust"][0][0], abs=1e-12)


def test_lifelines_cluster_se_differs_from_r(rossi):
    """lifelines' cluster_col SE ignores ties (issue 5: 0.1960 vs R 0.2009 in the issue's
    case); ours equals R's coxph(..., cluster = cl) for the same model."""
    from lifelines import CoxPHFitter

    df = rossi[["week", "arrest"] + FULL + ["cl"]]
    ll = CoxPHFitter().fit(df, "week", "arrest", cluster_col="cl")
    ours = CoxPH().fit(rossi, "week", "arrest", FULL, cluster_col="cl")
    ref = COX["efron_cluster"]["se_robust"][0]
    assert ours.se_["fin"] == pytest.approx(ref, abs=1e-9)
    assert abs(ll.standard_errors_["fin"] - ref) > 1e-4


def test_strata_weights_cluster(rossi):
    """R: f <- coxph(Surv(week, arrest) ~ fin + age + strata(wexp), data = rossi,
                     weights = w, cluster = cl)
    coef(f); sqrt(diag(f$var)); sqrt(diag(f$naive.var))
    """
    fit = CoxPH().fit(rossi, "week", "arrest", ["fin", "age"], weights_col="w",
                      cluster_col="cl", strata="wexp")
    np.testing.assert_allclose(fit.params_, [-0.444264792780500073, -0.050493219158774312], atol=TOL)
    np.testing.assert_allclose(fit.se_, [0.202864412437453040, 0.028420435099949907], atol=TOL)
    np.testing.assert_allclose(fit.se_model_, [0.135073882877399659, 0.015337739629144299], atol=TOL)


def test_counting_process_entry():
    """(start, stop] rows, weights and clusters.
    R: cr <- read.csv("tests/reference/cr_fixture.csv")
       cr$start <- pmax(0, cr$time - 5 - (cr$id %% 7))
       g <- coxph(Surv(start, time, status == 1) ~ group + x, data = cr, weights = w2,
                  cluster = id)
       coef(g); sqrt(diag(g$var))
    """
    cr = pd.read_csv(REF / "cr_fixture.csv")
    cr["start"] = np.maximum(0, cr.time - 5 - cr.id % 7)
    cr["e"] = (cr.status == 1).astype(int)
    fit = CoxPH().fit(cr, "time", "e", ["group", "x"], weights_col="w2", cluster_col="id",
                      entry_col="start")
    np.testing.assert_allclose(fit.params_, [-0.019384579977630288, 0.020073741724695209], atol=TOL)
    np.testing.assert_allclose(fit.se_, [0.169912377912915274, 0.076416442302533541], atol=TOL)


def test_ph_test_matches_cox_zph(rossi):
    """R: z1 <- cox.zph(coxph(full, data = rossi, cluster = cl))            # transform "km"
       z2 <- cox.zph(coxph(Surv(week, arrest) ~ fin + age, data = rossi, weights = w,
                           cluster = cl))
       z3 <- cox.zph(coxph(Surv(week, arrest) ~ fin + age, data = rossi, ties = "breslow"))
       z$table[, "chisq"]
    """
    z1 = CoxPH().fit(rossi, "week", "arrest", FULL, cluster_col="cl").ph_test()
    ref1 = [0.062429751358085220, 5.973981653418425353, 2.068265387480523021,
            4.224595633421592389, 1.011021564435754083, 0.018383299168965285,
            0.520584250303012475, 17.694415254454966657]
    np.testing.assert_allclose(z1["chisq"], ref1, atol=1e-8)
    assert z1.loc["GLOBAL", "p"] == pytest.approx(0.013427506785675091, abs=1e-9)
    z2 = CoxPH().fit(rossi, "week", "arrest", ["fin", "age"], weights_col="w", cluster_col="cl").ph_test()
    np.testing.assert_allclose(z2["chisq"], [0.043143744550996045, 22.737994954440658546,
                                             22.833448266273698835], atol=1e-8)
    z3 = CoxPH(ties="breslow").fit(rossi, "week", "arrest", ["fin", "age"]).ph_test()
    np.testing.assert_allclose(z3["chisq"], [0.023513988868416859, 6.048206404409882886,
                                             6.052456613169630906], atol=1e-8)


def test_robust_false_with_cluster_is_an_error(rossi):
    with pytest.raises(ValueError, match="robust=False"):
        CoxPH(robust=False).fit(rossi, "week", "arrest", ["fin"], cluster_col="cl")


def test_summary_and_html(rossi):
    fit = CoxPH().fit(rossi, "week", "arrest", ["fin"], cluster_col="cl")
    s = fit.summary
    assert list(s.index) == ["fin"]
    assert s.loc["fin", "exp(coef)"] == pytest.approx(np.exp(-0.36906921027551315), rel=1e-9)
    assert s.loc["fin", "robust se"] == pytest.approx(0.1871346995102936, abs=1e-9)
    assert "<table" in fit._repr_html_()


def test_known_hazard_ratio_is_covered():
    """Simulation with a known HR of 0.6: 2,000 units in 1,000 pairs, exponential times,
    administrative censoring, integer days (ties): the 95% CI covers 0.6."""
    rng = np.random.default_rng(20240601)
    n = 2000
    t = np.arange(n) % 2 == 0
    T = rng.exponential(np.where(t, 1 / (0.6 * 0.004), 1 / 0.004))
    C = rng.uniform(100, 600, n)
    df = pd.DataFrame({"days": np.ceil(np.minimum(T, C)), "e": (T <= C).astype(int),
                       "treated": t.astype(float), "pair": np.arange(n) // 2})
    fit = CoxPH().fit(df, "days", "e", ["treated"], cluster_col="pair")
    lo, hi = fit.summary.iloc[0, 6], fit.summary.iloc[0, 7]
    assert lo < 0.6 < hi
    assert abs(fit.hazard_ratios_["treated"] - 0.6) < 0.08
