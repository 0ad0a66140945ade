"""Binary effects, subgroup interactions and dose–response against R (MatchIt 4.5.1,
sandwich 3.0-2) on the matched lalonde data of tests/reference/lalonde_matchit.json.

The matched data are rebuilt from the R run's weights and subclasses (main run: ratio 1,
caliper 0.2 SD, no replacement: 117 pairs).  R code common to every test:

    data("lalonde", package = "MatchIt"); lalonde$y <- as.numeric(lalonde$re78 > 0)
    js <- jsonlite::fromJSON("tests/reference/lalonde_matchit.json"); main <- js$runs$main
    lalonde$weights <- main$weights; lalonde$subclass <- main$subclass
    md <- lalonde[lalonde$weights > 0, ]
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ppeval.estimate import dose_response, estimate, mcnemar, subgroup_effects
from ppeval.estimate._data import resolve

REF = Path(__file__).parent / "reference"
LAL = json.loads((REF / "lalonde_matchit.json").read_text())
MAIN = LAL["runs"]["main"]
OUT = MAIN["outcome"]


class Matched:
    """Stand-in for ppeval.matching.MatchedSample: anything with a .data DataFrame."""

    def __init__(self, data):
        self.data = data


@pytest.fixture(scope="module")
def md():
    df = pd.read_csv(REF / "lalonde.csv")
    df["y"] = (df.re78 > 0).astype(int)
    df["weight"] = MAIN["weights"]
    df["match_id"] = MAIN["subclass"]
    df["treated"] = df.treat == 1
    return df[df.weight > 0].reset_index(drop=True)


def test_risk_difference_and_odds_ratio_vs_vcovCL(md):
    """R: fit_lm <- lm(y ~ treat, data = md, weights = weights)
       fit_glm <- glm(y ~ treat, data = md, weights = weights, family = quasibinomial)
       sqrt(diag(sandwich::vcovCL(fit_lm, cluster = ~subclass)))   # default: HC1, cadjust
       sqrt(diag(sandwich::vcovCL(fit_glm, cluster = ~subclass, type = "HC1")))
         # (Intercept) 0.1949..., treat 0.27975922553...
    ATT risk difference 0.05128205 (= 89/117 - 83/117), SE 0.05419575."""
    res = estimate(Matched(md), binary="y")
    rd, rr, or_ = res["risk_difference"], res["risk_ratio"], res["odds_ratio"]
    assert rd.estimate == pytest.approx(OUT["lm_coef"][1], abs=1e-10)
    assert rd.estimate == pytest.approx(89 / 117 - 83 / 117, abs=1e-12)
    assert rd.se == pytest.approx(OUT["lm_se_cluster"][1], abs=1e-10)
    assert rd.se == pytest.approx(0.05419575, abs=1e-8)
    assert np.log(or_.estimate) == pytest.approx(OUT["glm_coef"][1], abs=1e-8)
    n, k = 234, 2
    # the JSON's glm SE is vcovCL's glm default (HC0 + cadjust); HC1 adds (n-1)/(n-k)
    assert or_.se == pytest.approx(OUT["glm_se_cluster"][1] * np.sqrt((n - 1) / (n - k)), abs=1e-8)
    assert or_.se == pytest.approx(0.279759225533106, abs=1e-8)
    assert (rd.events_treated, rd.events_comparison, rd.n_treated, rd.n_clusters) == (89, 83, 117, 117)
    assert "vcovCL" in rd.method and "match_id" in rd.method
    assert rr.risk_treated == pytest.approx(89 / 117)


def test_risk_ratio_vs_quasipoisson(md):
    """R: fp <- glm(y ~ treat, data = md, weights = weights, family = quasipoisson)
       coef(fp); sqrt(diag(vcovCL(fp, cluster = ~subclass, type = "HC1")))
       # default type (HC0 for glm): 0.073902628016915134"""
    rr = estimate(Matched(md), binary="y")["risk_ratio"]
    assert np.log(rr.estimate) == pytest.approx(0.069795761935540657, abs=1e-9)
    assert rr.se == pytest.approx(0.074061729660737596, abs=1e-9)


def test_glm_hc0_option_equals_vcovcl_glm_default(md):
    """R: sqrt(diag(vcovCL(fit_glm, cluster = ~subclass)))  # glm default type = HC0"""
    from ppeval.estimate import fit_glm_cluster
    from ppeval.estimate.binary import design_matrix

    d = resolve(Matched(md))
    X = design_matrix(d.df, d.treated, None)
    fit = fit_glm_cluster(md.y.to_numpy(float), X, d.weights, d.cluster, "logit", small_sample="HC0")
    assert fit.bse["treated"] == pytest.approx(OUT["glm_se_cluster"][1], abs=1e-9)
    assert fit.bse["const"] == pytest.approx(OUT["glm_se_cluster"][0], abs=1e-9)
    fitp = fit_glm_cluster(md.y.to_numpy(float), X, d.weights, d.cluster, "log", small_sample="HC0")
    assert fitp.bse["treated"] == pytest.approx(0.073902628016915134, abs=1e-9)


def test_hc0_variant_reproduces_convention(md):
    """The small-sample factor is what separates vcovCL's HC1 from HC0:
    R: vcovCL(fit_lm, cluster = ~subclass, type = "HC0", cadjust = FALSE)."""
    res = estimate(Matched(md), binary="y")
    lpm = res.models["linear[y]"]
    G, n, k = lpm.n_clusters, lpm.n, lpm.k
    hc0 = res["risk_difference"].se / np.sqrt(G / (G - 1) * (n - 1) / (n - k))
    assert hc0 == pytest.approx(OUT["lm_se_cluster_HC0_noadj"][1], abs=1e-10)


def test_g_computation_delta_method(md):
    """R: fa <- glm(y ~ treat + age + educ + race + married + nodegree + re74 + re75,
                    data = md, weights = weights, family = quasibinomial)
       V <- vcovCL(fa, cluster = ~subclass, type = "HC1"); tr <- md[md$treat == 1, ]
       X1/X0 <- model.matrix(~ ..., transform(tr, treat = 1 / 0)); wt <- tr$weights
       m1 <- plogis(X1 %*% coef(fa)); p1 <- sum(wt * m1) / sum(wt)   (same for p0)
       g1 <- colSums(wt * as.vector(m1 * (1 - m1)) * X1) / sum(wt)    (same for g0)
       rd <- p1 - p0; se_rd <- sqrt(t(g1 - g0) %*% V %*% (g1 - g0))
       glr <- g1 / p1 - g0 / p0; glo <- g1 / (p1 (1 - p1)) - g0 / (p0 (1 - p0))"""
    cov = ["age", "educ", "race", "married", "nodegree", "re74", "re75"]
    res = estimate(Matched(md), binary="y", adjust=cov)
    fit = res.models["logistic_adjusted[y]"]
    assert fit.params["treated"] == pytest.approx(1.6725505283519820e-01, abs=1e-8)
    assert fit.bse["treated"] == pytest.approx(3.0221330567889698e-01, abs=1e-8)
    rd, rr, or_ = res["risk_difference"], res["risk_ratio"], res["odds_ratio"]
    assert rd.extra["adjusted_risk_treated"] == pytest.approx(0.760683760683695809, abs=1e-9)
    assert rd.extra["adjusted_risk_comparison"] == pytest.approx(0.730322820179484244, abs=1e-9)
    assert rd.estimate == pytest.approx(0.030360940504211564, abs=1e-9)
    assert rd.se == pytest.approx(0.055025706035018093, abs=1e-8)
    assert np.log(rr.estimate) == pytest.approx(0.040731058100240171, abs=1e-9)
    assert rr.se == pytest.approx(0.074005039010277274, abs=1e-8)
    assert np.log(or_.estimate) == pytest.approx(0.160170817108230695, abs=1e-9)
    assert or_.se == pytest.approx(0.289999254668658946, abs=1e-8)
    assert "g-computation" in rd.method


def test_mcnemar_and_rosenbaum_on_pairs(md):
    """R: yt <- lalonde$y[pairs$treated]; yc <- lalonde$y[pairs$control]
       tab <- table(factor(yt, 0:1), factor(yc, 0:1))     # n10 = 23, n01 = 17
       mcnemar.test(tab)                 # 0.625, p 0.42919530044034926
       mcnemar.test(tab, correct = FALSE) # 0.9, p 0.34278171114791145
       binom.test(23, 40)$p.value         # 0.42959050784338715"""
    mc = mcnemar(md.treated.to_numpy(), md.y.to_numpy(), md.match_id.to_numpy())
    assert (mc.n11, mc.n10, mc.n01, mc.n00) == (66, 23, 17, 11)
    assert mc.statistic == pytest.approx(0.625, abs=1e-12)
    assert mc.p_value == pytest.approx(0.42919530044034926, abs=1e-12)
    assert mc.p_value_uncorrected == pytest.approx(0.34278171114791145, abs=1e-12)
    assert mc.p_exact == pytest.approx(0.42959050784338715, abs=1e-12)
    res = estimate(Matched(md), binary="y")
    assert res.tests["mcnemar[y]"].n10 == 23
    rb = res.tests["rosenbaum[y]"]
    assert rb.gamma_critical == 1.0  # not significant even without hidden bias


def test_subgroup_linear_and_logistic(md):
    """R: ls <- lm(y ~ treat * married, data = md, weights = weights)
       fs <- glm(y ~ treat * married, data = md, weights = weights, family = quasibinomial)
       coef(.); sqrt(diag(vcovCL(., cluster = ~subclass, type = "HC1")))"""
    d = resolve(Matched(md))
    tab = subgroup_effects(d, "married", y=md.y.to_numpy())
    assert tab.loc[0, "estimate"] == pytest.approx(0.0025773195876285251, abs=1e-10)
    assert tab.loc[0, "se"] == pytest.approx(0.063059646803210509, abs=1e-10)
    assert tab.loc[1, "estimate"] == pytest.approx(0.0025773195876285251 + 0.1913620743517653877, abs=1e-10)
    z = 0.1913620743517653877 / 0.146332834016606045
    assert tab.loc[0, "interaction_chisq"] == pytest.approx(z**2, rel=1e-9)
    lg = subgroup_effects(d, "married", y=md.y.to_numpy(), measure="odds_ratio")
    assert np.log(lg.loc[0, "estimate"]) == pytest.approx(0.013793322132398565, abs=1e-8)
    assert lg.loc[0, "se"] == pytest.approx(0.33739624093888682, abs=1e-8)
    assert lg.loc[0, "interaction_chisq"] == pytest.approx((0.941718122894841136 / 0.78312510893047749) ** 2, rel=1e-7)


def test_subgroup_three_levels_wald(md):
    """R: lr <- lm(y ~ treat * race, data = md, weights = weights)
       Vr <- vcovCL(lr, cluster = ~subclass, type = "HC1"); ii <- grep(":", names(coef(lr)))
       W <- t(coef(lr)[ii]) %*% solve(Vr[ii, ii]) %*% coef(lr)[ii]   # 4.6111569772284273
       pchisq(W, 2, lower.tail = FALSE)                              # 0.099701108012149917"""
    tab = subgroup_effects(resolve(Matched(md)), "race", y=md.y.to_numpy())
    assert list(tab.level) == ["black", "hispan", "white"]
    assert tab.loc[0, "interaction_chisq"] == pytest.approx(4.611156977228427323, abs=1e-8)
    assert tab.loc[0, "interaction_p"] == pytest.approx(0.099701108012149917, abs=1e-9)
    assert tab.loc[0, "interaction_df"] == 2
    assert tab.loc[1, "estimate"] == pytest.approx(0.0068710359408031847 + 0.3264622973925283, abs=1e-10)


def test_subgroup_hazard_ratio_interaction():
    """R: rossi$cl <- ceiling(row / 2)
       f4 <- coxph(Surv(week, arrest) ~ fin * wexp, data = rossi, cluster = cl)
       coef(f4); f4$var"""
    rossi = pd.read_csv(REF / "rossi.csv")
    rossi["treated"] = rossi.fin == 1
    rossi["cl"] = np.arange(len(rossi)) // 2
    d = resolve(rossi, cluster="cl")
    tab = subgroup_effects(d, "wexp", durations=rossi.week.to_numpy(), events=rossi.arrest.to_numpy())
    b = [-0.408309875223209662, -0.617115016441571296, 0.068558955099239635]
    V = np.array([[0.064177110790055072, 0.028820429529403488, -0.065652835224894679],
                  [0.028820429529403488, 0.065603117937336392, -0.064948798791990892],
                  [-0.065652835224894679, -0.064948798791990892, 0.148943553923521710]])
    assert np.log(tab.loc[0, "estimate"]) == pytest.approx(b[0], abs=1e-8)
    assert tab.loc[0, "se"] == pytest.approx(np.sqrt(V[0, 0]), abs=1e-8)
    assert np.log(tab.loc[1, "estimate"]) == pytest.approx(b[0] + b[2], abs=1e-8)
    assert tab.loc[1, "se"] == pytest.approx(np.sqrt(V[0, 0] + V[2, 2] + 2 * V[0, 2]), abs=1e-8)
    assert tab.loc[0, "interaction_chisq"] == pytest.approx(b[2] ** 2 / V[2, 2], rel=1e-7)


def test_dose_response_vs_r(md):
    """R: dr <- glm(y ~ educ, data = md[md$treat == 1, ], family = binomial)
       coef(dr); sqrt(diag(vcovCL(dr, cluster = ~subclass, type = "HC1")))"""
    tr = md[md.treated]
    r = dose_response(tr, "educ", binary="y", cluster="match_id", per=1)
    assert np.log(r["trend"].estimate) == pytest.approx(0.02482699034833858, abs=1e-8)
    assert r["trend"].se == pytest.approx(0.10491483603835533, abs=1e-8)
    bands = dose_response(tr, "educ", binary="y", per=1, bands=[0, 9, 12, np.inf])["bands"]
    assert list(bands.n) == [tr.educ.lt(9).sum(), tr.educ.between(9, 11).sum(), tr.educ.ge(12).sum()]


def test_known_risk_difference_is_covered():
    """2,000 units in 1,000 pairs, true risks 0.45 vs 0.30 (RD 0.15, RR 1.5): the 95%
    CIs cover the truth."""
    rng = np.random.default_rng(11)
    n = 2000
    t = np.arange(n) % 2 == 0
    y = rng.random(n) < np.where(t, 0.45, 0.30)
    df = pd.DataFrame({"treated": t, "y": y, "match_id": np.arange(n) // 2, "weight": 1.0})
    res = estimate(Matched(df), binary="y")
    rd, rr = res["risk_difference"], res["risk_ratio"]
    assert rd.ci_low < 0.15 < rd.ci_high
    assert rr.ci_low < 1.5 < rr.ci_high
