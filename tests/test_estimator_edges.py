"""Estimator edge cases of issue 15 item 4: constant binary outcomes, constant or aliased
adjustment covariates, covariate names that collide with the model's own columns, and
zero-weight rows in Efron's tie correction.  Numbers are R 4.2.2 (survival 3.5-3,
sandwich 3.0-2) or closed forms; the R code is in each test's docstring.

The lalonde tests use the matched data of tests/test_estimate_binary.py (MatchIt 4.5.1,
ratio 1, caliper 0.2 SD: 117 pairs), built in R as::

    library(sandwich); options(digits = 17)
    lalonde <- read.csv("tests/reference/lalonde.csv"); lalonde$y <- as.numeric(lalonde$re78 > 0)
    main <- jsonlite::fromJSON("tests/reference/lalonde_matchit.json")$runs$main
    lalonde$weights <- main$weights; lalonde$subclass <- main$subclass
    md <- lalonde[lalonde$weights > 0, ]
    md$k <- 5; md$age2 <- 2 * md$age + 1; md$black <- as.numeric(md$race == "black")
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ppeval.errors import DataError
from ppeval.estimate import CoxPH, estimate, fit_glm_cluster
from ppeval.estimate.binary import CONSTANT_OUTCOME_NOTE, aliased_columns, design_matrix

REF = Path(__file__).parent / "reference"
COV = ["age", "educ", "race", "married", "nodegree", "re74", "re75"]

#: R's g-computation on md (the gcomp() of test_g_computation_delta_method in
#: tests/test_estimate_binary.py): glm(quasibinomial) + vcovCL(type = "HC1") + delta method
R_GCOMP = dict(rd=0.030360940504211564, se_rd=0.055025706035018100,
               lrr=0.040731058100240171, se_rr=0.074005039010277260,
               lor=0.160170817108230529, se_or=0.289999254668659057,
               b_treat=0.167255052835198204, se_b_treat=0.302213305678896982)


class Matched:
    """Stand-in for a matched sample: anything with a ``.data`` DataFrame."""

    def __init__(self, data: pd.DataFrame):
        self.data = data


@pytest.fixture(scope="module")
def md() -> pd.DataFrame:
    main = json.loads((REF / "lalonde_matchit.json").read_text())["runs"]["main"]
    df = pd.read_csv(REF / "lalonde.csv")
    df["y"] = (df.re78 > 0).astype(int)
    df["weight"] = main["weights"]
    df["match_id"] = main["subclass"]
    df["treated"] = df.treat == 1
    df = df[df.weight > 0].reset_index(drop=True)
    return df.assign(k=5.0, age2=2 * df.age + 1, black=(df.race == "black").astype(float))


def _assert_gcomp(res, tol_se: float = 1e-8) -> None:
    rd, rr, or_ = res["risk_difference"], res["risk_ratio"], res["odds_ratio"]
    assert rd.estimate == pytest.approx(R_GCOMP["rd"], abs=1e-9)
    assert rd.se == pytest.approx(R_GCOMP["se_rd"], abs=tol_se)
    assert math.log(rr.estimate) == pytest.approx(R_GCOMP["lrr"], abs=1e-9)
    assert rr.se == pytest.approx(R_GCOMP["se_rr"], abs=tol_se)
    assert math.log(or_.estimate) == pytest.approx(R_GCOMP["lor"], abs=1e-9)
    assert or_.se == pytest.approx(R_GCOMP["se_or"], abs=tol_se)
    fit = res.models["logistic_adjusted[y]"]
    assert fit.params["treated"] == pytest.approx(R_GCOMP["b_treat"], abs=1e-8)
    assert fit.bse["treated"] == pytest.approx(R_GCOMP["se_b_treat"], abs=1e-8)


# --------------------------------------------------------------------------------------
# (a) a binary outcome equal for every unit


@pytest.mark.parametrize("value", [0, 1])
@pytest.mark.parametrize("adjust", [None, ["x"]])
def test_constant_outcome_gives_a_difference_of_exactly_zero(value, adjust):
    """R: d <- data.frame(treat = rep(c(1, 0), each = 6), y = 0,
                          w = c(1, 1, 1, 1, 1, 1, 1, 0.5, 0.5, 2, 1, 1), s = c(1:6, 1:6))
       f <- lm(y ~ treat, data = d, weights = w); coef(f); sqrt(diag(vcovCL(f, cluster = ~s)))
       # treat 0, SE 0; summary(f): t value NaN, Pr(>|t|) NaN ("essentially perfect fit")
       d$y <- 1: coef treat 1.8448595596976316e-16, vcovCL SE 1.3740203598645378e-16,
       # summary p 0.217 (rounding noise, not a p-value)
       glm(y ~ treat, weights = w, family = quasibinomial)  # intercept -24.6 (y = 0), +24.6 (y = 1)
    ppeval: RD exactly 0, SE 0, CI [0, 0], p NaN with the note; RR and OR not estimable."""
    df = pd.DataFrame({"treated": np.repeat([True, False], 6), "y": value,
                       "weight": [1, 1, 1, 1, 1, 1, 1, 0.5, 0.5, 2, 1, 1],
                       "match_id": np.tile(np.arange(6), 2), "x": np.arange(12.0) % 5})
    res = estimate(Matched(df), binary="y", adjust=adjust)
    assert res.estimable
    rd = res["risk_difference"]
    assert (rd.estimate, rd.se, rd.ci_low, rd.ci_high) == (0.0, 0.0, 0.0, 0.0)
    assert math.isnan(rd.p_value)
    assert rd.extra["note"] == CONSTANT_OUTCOME_NOTE == "the outcome is the same for every unit: no difference is possible"
    assert CONSTANT_OUTCOME_NOTE in rd.method
    assert (rd.risk_treated, rd.risk_comparison) == (float(value), float(value))
    why = "no unit in either arm had the event" if value == 0 else "every unit in both arms had the event"
    for m in ("risk_ratio", "odds_ratio"):
        e = res[m]
        assert not e.estimable and math.isnan(e.estimate) and math.isnan(e.se)
        assert e.reason == f"{CONSTANT_OUTCOME_NOTE} ({why})"
    # 1:1 pairs: McNemar with no discordant pair (exact p 1), no crash in the Rosenbaum step
    assert res.tests["mcnemar[y]"].p_exact == 1.0


def test_separation_is_still_not_estimable():
    """Outcome = arm (every treated unit had the event, no comparison unit did): R's lm gives
    1 with SE 0, a number from nothing, so the difference stays not estimable (unchanged)."""
    t = np.arange(20) % 2 == 0
    res = estimate(pd.DataFrame({"treated": t, "y": t.astype(int)}), binary="y")
    assert not res.estimable and "complete separation" in res["risk_difference"].reason


# --------------------------------------------------------------------------------------
# (b) constant or aliased covariates in adjust=


def test_aliased_columns_follow_r_lm_fit(md):
    """R: coef(lm(y ~ treat + age + k + educ + black + race + age2, data = md, weights = weights))
       # NA: k (constant), racewhite (= 1 - black - racehispan), age2 (= 2 age + 1);
       # black is kept because it comes before race (the first of collinear columns stays)"""
    X = design_matrix(md, md.treated.to_numpy(), ["age", "k", "educ", "black", "race", "age2"])
    assert list(X.columns) == ["const", "treated", "age", "k", "educ", "black", "race[hispan]", "race[white]", "age2"]
    assert aliased_columns(X.to_numpy(), md.weight.to_numpy()) == [3, 7, 8]
    # race before black: R's model.matrix order, black is the one dropped
    X2 = design_matrix(md, md.treated.to_numpy(), ["race", "black"])
    assert [X2.columns[j] for j in aliased_columns(X2.to_numpy())] == ["black"]
    # a zero column and an exact copy; a column aliased only to rounding (1e-9 relative) too
    Z = np.column_stack([np.ones(5), np.arange(5.0), np.zeros(5), np.arange(5.0),
                         np.arange(5.0) + 1e-9 * np.array([1, -1, 0, 1, -1])])
    assert aliased_columns(Z) == [2, 3, 4]
    assert aliased_columns(Z[:, [0, 1]]) == []


@pytest.mark.parametrize("cov, dropped", [
    (["age", "k", "educ", "race", "married", "age2", "nodegree", "re74", "re75"], ["k", "age2"]),
    (["age", "educ", "black", "race", "married", "nodegree", "re74", "re75"], ["race[white]"]),
])
def test_aliased_covariates_are_dropped_as_r_does(md, cov, dropped):
    """R (with gcomp() as tests/test_estimate_binary.py::test_g_computation_delta_method, on the
    non-NA coefficients; vcovCL drops the aliased columns itself):
       fa <- glm(y ~ treat + age + k + educ + race + married + age2 + nodegree + re74 + re75,
                 data = md, weights = weights, family = quasibinomial)
       coef(fa)[is.na(coef(fa))]   # k NA, age2 NA
       # rd 0.030360940504211564, se 0.055025706035018100; log RR 0.040731058100240171,
       # se 0.074005039010277260; log OR 0.160170817108230529, se 0.289999254668659057;
       # treat 0.167255052835198204, vcovCL SE 0.302213305678896982 -- the numbers without k, age2
       fa2 <- glm(y ~ treat + age + educ + black + race + married + nodegree + re74 + re75, ...)
       coef(fa2)[is.na(coef(fa2))] # racewhite NA; rd 0.030360940504211675, se 0.055025706035018093"""
    res = estimate(Matched(md), binary="y", adjust=cov)
    _assert_gcomp(res)
    for e in res.effects:
        assert e.estimable and e.extra["dropped_covariates"] == dropped
        for c in dropped:
            assert c in e.method
    assert "as R does (an NA coefficient)" in res["risk_difference"].method
    if "k" in dropped:
        assert "k (constant among the rows analysed)" in res["risk_difference"].method
        assert "age2 (a linear combination of the treatment and the covariates before it)" in res["risk_difference"].method
    fit = res.models["logistic_adjusted[y]"]
    assert not set(dropped) & set(fit.params.index) and fit.k == 10


def test_covariate_constant_only_among_the_rows_analysed(md):
    """A covariate that varies in the sample but not among the rows whose window outcome is
    observed is dropped there (closed form: the same model without it)."""
    df = md.assign(y=md.y.astype(float), z=np.where(md.index % 3 == 0, 1.0, 7.0))
    df.loc[df.z == 1.0, "y"] = np.nan  # the outcome is observed only where z = 7
    with_z = estimate(Matched(df), binary="y", adjust=["age", "z", "educ"])
    without = estimate(Matched(df), binary="y", adjust=["age", "educ"])
    for m in ("risk_difference", "risk_ratio", "odds_ratio"):
        assert with_z[m].estimate == pytest.approx(without[m].estimate, abs=1e-12)
        assert with_z[m].se == pytest.approx(without[m].se, abs=1e-12)
    assert with_z["risk_difference"].extra["dropped_covariates"] == ["z"]


def test_rank_deficient_matrix_is_refused_not_inverted(md):
    """fit_glm_cluster used to invert the singular matrix (SEs a few percent off, or
    LinAlgError); now it names the aliased column."""
    X = design_matrix(md, md.treated.to_numpy(), ["age", "age2"])
    with pytest.raises(np.linalg.LinAlgError, match="'age2' are constant or a linear combination"):
        fit_glm_cluster(md.y.to_numpy(float), X, md.weight.to_numpy(), None, "logit")


# --------------------------------------------------------------------------------------
# (c) covariate names that collide with the model's own columns


def test_covariate_named_const_is_refused_and_renamed_gives_r(md):
    """A covariate named const used to replace the intercept silently.  It is refused with
    the fix in the message; renamed, it gives R's numbers (here const = age: R as in
    test_aliased_covariates_are_dropped_as_r_does without k and age2)."""
    df = md.drop(columns="age").assign(const=md.age)
    cov = ["const"] + COV[1:]
    with pytest.raises(DataError, match=r"covariate 'const' has the name of the model's intercept column; "
                                        r"rename it before adjusting for it \(e.g. df.rename\(columns=\{'const': 'const_x'\}\)\)"):
        estimate(Matched(df), binary="y", adjust=cov)
    _assert_gcomp(estimate(Matched(df.rename(columns={"const": "const_x"})), binary="y", adjust=["const_x"] + COV[1:]))


def test_other_collisions_are_refused(md):
    """A covariate named treated (the treatment column is called something else), and a
    column named like another covariate's dummy, would each overwrite a model column."""
    df = md.rename(columns={"treated": "fin"}).assign(treated=md.married)
    with pytest.raises(DataError, match="covariate 'treated' has the name of the model's treatment indicator column"):
        estimate(Matched(df), binary="y", treatment="fin", adjust=["age", "treated"])
    df2 = md.assign(**{"race[white]": md.nodegree})
    with pytest.raises(DataError, match=r"the dummy column 'race\[white\]' of covariate 'race' has the name of a column "
                                        r"of another covariate \('race\[white\]'\)"):
        estimate(Matched(df2), binary="y", adjust=["race[white]", "race"])
    # a covariate listed twice is one column, as in R's y ~ a + a
    _assert_gcomp(estimate(Matched(md), binary="y", adjust=COV + ["age"]))


# --------------------------------------------------------------------------------------
# (d) zero-weight rows in the Cox model (Efron ties)

COX = pd.DataFrame({
    "time": [1, 2, 2, 2, 3, 4, 4, 5, 6, 6, 7, 8.0],
    "event": [1, 1, 1, 1, 0, 1, 1, 1, 1, 0, 1, 0],
    "x": [1, 0, 1, 1, 0, 1, 0, 0, 1, 0, 1, 0.0],
    "w": [1, 2, 0, 1, 1, 0.5, 0, 1.5, 1, 1, 2, 1],
    "id": [1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6],
})


def test_cox_zero_weight_rows_are_left_out_as_r():
    """R refuses zero weights; on the rows kept:
       coxph(Surv(time, event) ~ x, data = d, weights = w)   # Error: Invalid weights, must be >0
       p <- d[d$w > 0, ]
       f <- coxph(Surv(time, event) ~ x, data = p, weights = w, robust = FALSE)
       # coef 0.43345494885161456, se 0.69647967015142309, loglik -17.046008086545665 -16.847972914376101
       sqrt(vcov(coxph(Surv(time, event) ~ x, data = p, weights = w, cluster = id)))  # 0.35380349767789449
       coxph(..., data = p, weights = w, robust = FALSE, ties = "breslow")
       # coef 0.44240326604827157, se 0.69695855821809172
    The deaths of weight 0 at times 2 and 4 used to count in Efron's d (3 and 2 instead of 2
    and 1): coef 0.432402, se 0.696318, robust se 0.361250 (2% off)."""
    f = CoxPH().fit(COX, "time", "event", ["x"], weights_col="w")
    assert f.params_["x"] == pytest.approx(0.43345494885161456, abs=1e-9)
    assert f.se_["x"] == pytest.approx(0.69647967015142309, abs=1e-9)
    assert f.log_likelihood_null_ == pytest.approx(-17.046008086545665, abs=1e-9)
    assert f.log_likelihood_ == pytest.approx(-16.847972914376101, abs=1e-9)
    assert f.n_events_ == 7  # events of positive weight
    fc = CoxPH().fit(COX, "time", "event", ["x"], weights_col="w", cluster_col="id")
    assert fc.se_["x"] == pytest.approx(0.35380349767789449, abs=1e-9)
    fb = CoxPH(ties="breslow").fit(COX, "time", "event", ["x"], weights_col="w")
    assert fb.params_["x"] == pytest.approx(0.44240326604827157, abs=1e-9)
    assert fb.se_["x"] == pytest.approx(0.69695855821809172, abs=1e-9)


@pytest.mark.parametrize("ties", ["efron", "breslow"])
def test_cox_zero_weight_rows_equal_dropping_them(ties):
    """Closed form: a fit with rows of weight 0 equals the fit without them, for (start,
    stop] rows and strata too; their score residuals are 0, the others' unchanged."""
    rng = np.random.default_rng(3)
    n = 300
    d = pd.DataFrame({"time": rng.integers(1, 15, n).astype(float), "event": rng.random(n) < 0.7,
                      "x": rng.normal(size=n), "g": rng.random(n) < 0.5, "id": rng.integers(0, 80, n),
                      "w": rng.choice([0.0, 0.5, 1.0, 2.0], n)})
    d["start"] = np.floor(d.time * rng.random(n) * 0.5) - 1  # below time: start < stop
    kept = d[d.w > 0].reset_index(drop=True)
    for kw in ({}, {"entry_col": "start"}, {"strata": "g"}):
        a = CoxPH(ties=ties).fit(d, "time", "event", ["x"], weights_col="w", cluster_col="id", **kw)
        b = CoxPH(ties=ties).fit(kept, "time", "event", ["x"], weights_col="w", cluster_col="id", **kw)
        assert a.params_["x"] == pytest.approx(b.params_["x"], abs=1e-10)
        assert a.se_model_["x"] == pytest.approx(b.se_model_["x"], abs=1e-10)
        assert a.se_["x"] == pytest.approx(b.se_["x"], abs=1e-10)
        assert a.log_likelihood_ == pytest.approx(b.log_likelihood_, abs=1e-9)
        res = a.score_residuals_
        assert np.all(res[d.w.to_numpy() == 0] == 0)
        np.testing.assert_allclose(res[d.w.to_numpy() > 0], b.score_residuals_, atol=1e-10)


def test_cox_only_zero_weight_events_is_no_events():
    d = COX.assign(w=np.where(COX.event == 1, 0.0, 1.0))
    with pytest.raises(ValueError, match="no events: the Cox model cannot be fitted"):
        CoxPH().fit(d, "time", "event", ["x"], weights_col="w")
