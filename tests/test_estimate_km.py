"""Kaplan–Meier, log-rank and restricted mean survival time against R's survival.

References: tests/reference/survival.json from tests/reference/survival.R.
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ppeval.estimate import KaplanMeier, logrank_test, rmst_difference

REF = Path(__file__).parent / "reference"
KM = json.loads((REF / "survival.json").read_text())["rossi"]["km"]


@pytest.fixture(scope="module")
def rossi():
    df = pd.read_csv(REF / "rossi.csv")
    row = np.arange(1, len(df) + 1)
    df["cl"] = np.ceil(row / 2).astype(int)
    df["w"] = 1 + row % 3
    return df


def _compare(tab, ref, se_scale=None):
    cols = {"time": "time", "n_risk": "n_risk", "n_event": "n_event", "n_censor": "n_censor",
            "surv": "surv", "cumhaz": "cumhaz", "lower": "lower", "upper": "upper"}
    for ours, theirs in cols.items():
        diff = np.abs(tab[ours].to_numpy(float) - np.array(ref[theirs], float))
        assert np.nanmax(diff) < 1e-10, ours
    se = tab["std_err"].to_numpy() * (tab["surv"].to_numpy() if se_scale == "surv" else 1)
    assert np.nanmax(np.abs(se - np.array(ref["std_err"], float))) < 1e-10


def test_km_unweighted(rossi):
    """R: survfit(Surv(week, arrest) ~ fin, data = rossi)   # std.err = se of log S"""
    km = KaplanMeier().fit(rossi.week, rossi.arrest, groups=rossi.fin)
    assert km.variance_ == "greenwood"
    for g in (0, 1):
        _compare(km.table_[km.table_.group == g], KM["unweighted"]["strata"][f"fin={g}"])


def test_km_case_weights_greenwood(rossi):
    """R: survfit(Surv(week, arrest) ~ fin, data = rossi, weights = w)
    (integer weights: Greenwood with case weights; n.risk is weighted)"""
    km = KaplanMeier().fit(rossi.week, rossi.arrest, weights=rossi.w, groups=rossi.fin)
    for g in (0, 1):
        tab = km.table_[km.table_.group == g]
        _compare(tab, KM["weighted"]["strata"][f"fin={g}"])
        # unweighted at-risk counts sit beside the weighted curve
        assert tab["n_risk_unweighted"].iloc[0] == 216


def test_km_weighted_robust_ij(rossi):
    """R: survfit(Surv(week, arrest) ~ fin, data = rossi, weights = w, robust = TRUE, id = row)
    survival 3.5-3 reports std.err = SE of S for this fit (its CI still uses SE/S on the
    log scale); our std_err is the SE of log S, so std_err * surv equals R's std.err."""
    km = KaplanMeier(variance="ij").fit(rossi.week, rossi.arrest, weights=rossi.w, groups=rossi.fin)
    for g in (0, 1):
        _compare(km.table_[km.table_.group == g], KM["weighted_robust"]["strata"][f"fin={g}"],
                 se_scale="surv")


def test_logrank(rossi):
    """R: survdiff(Surv(week, arrest) ~ fin, data = rossi)"""
    lr = logrank_test(rossi.week, rossi.arrest, rossi.fin)
    ref = KM["logrank"]
    assert lr["chisq"] == pytest.approx(ref["chisq"], abs=1e-10)
    assert lr["p"] == pytest.approx(ref["p"], abs=1e-10)
    np.testing.assert_allclose(lr["expected"], ref["expected"], atol=1e-10)
    np.testing.assert_allclose(lr["variance"], ref["variance"], atol=1e-10)


@pytest.mark.parametrize("key,weights", [("unweighted", None), ("weighted", "w")])
def test_rmst(rossi, key, weights):
    """R: summary(survfit(Surv(week, arrest) ~ fin, data = rossi[, weights = w]),
    rmean = 52)$table[, c("rmean", "se(rmean)")]"""
    km = KaplanMeier().fit(rossi.week, rossi.arrest,
                           weights=None if weights is None else rossi[weights], groups=rossi.fin)
    tab = km.rmst(52)
    ref = KM[key]["rmst"]
    np.testing.assert_allclose(tab["rmst"], ref["rmean"], atol=1e-10)
    np.testing.assert_allclose(tab["se"], ref["se_rmean"], atol=1e-10)


def test_rmst_difference_known_truth():
    """Exponential times with rates 1/100 and 1/60, tau = 80: the true RMSTs are
    100 (1 - e^-0.8) and 60 (1 - e^-4/3); the CI of the difference covers the truth and the
    pair-clustered SE is close to the unclustered one for independent arms."""
    rng = np.random.default_rng(7)
    n = 4000
    t = np.arange(n) % 2 == 0
    T = rng.exponential(np.where(t, 100, 60))
    C = rng.uniform(50, 200, n)
    d = np.minimum(T, C)
    e = (T <= C).astype(int)
    truth = 100 * (1 - np.exp(-0.8)) - 60 * (1 - np.exp(-80 / 60))
    res = rmst_difference(d, e, t, cluster=np.arange(n) // 2, tau=80)
    assert abs(res["difference"] - truth) < 1.96 * res["se"]
    res0 = rmst_difference(d, e, t, tau=80)
    assert res0["se"] == pytest.approx(res["se"], rel=0.1)


def test_at_risk_and_plot(rossi):
    import matplotlib

    matplotlib.use("Agg")
    km = KaplanMeier().fit(rossi.week, rossi.arrest, weights=rossi.w, groups=rossi.fin)
    tab = km.at_risk([0, 20, 52])
    assert tab.loc[0].tolist() == [216, 196, 154]
    ax = km.plot()
    assert ax.get_ylabel().startswith("Proportion")


def test_rmst_ij_influence_is_the_integral_of_the_survival_influence(rossi):
    """The RMST influence used for the clustered SE equals the area under the per-row IJ
    influence of S (whose SE matches R's survfit(robust = TRUE), test above)."""
    from ppeval.estimate._nonparam import influence_at, product_limit
    from ppeval.estimate.survival import _rmst

    m = rossi.fin.to_numpy() == 0
    pl = product_limit(rossi.week[m], rossi.arrest[m], rossi.w[m])
    tau = 40.5
    _, _, infl = _rmst(pl, tau)
    grid = np.r_[0.0, pl.time[pl.time < tau], tau]
    area = sum((grid[j + 1] - grid[j]) * influence_at(pl, j)[:, 0] for j in range(len(grid) - 1))
    assert np.abs(area - infl).max() < 1e-12
