"""Comparison rows followed until their own enrolment: the censoring model and the IPC weights.

R reference (tests/reference/censoring.R -> censoring.json, fixture censoring_fixture.csv)::

    fx <- read.csv("tests/reference/censoring_fixture.csv")
    fit <- coxph(Surv(entry, exit, enrolled) ~ x + z, data = fx, ties = "breslow")
    bh <- basehaz(fit, centered = FALSE)
    H <- stepfun(bh$time, c(0, bh$hazard))
    G <- exp(-(H(b - 1e-9) - H(a)) * exp(lp[row]))   # P(no enrolment in (a, b) | at risk at a)
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ppeval.cohort import build_cohort
from ppeval.estimate import EnrolmentCensoring, estimate
from ppeval.outcomes import censor_at
from ppeval.synthetic import generate

REF = Path(__file__).parent / "reference"


def test_censoring_model_equals_r_coxph_breslow_and_basehaz():
    ref = json.loads((REF / "censoring.json").read_text())
    fx = pd.read_csv(REF / "censoring_fixture.csv")
    cens = EnrolmentCensoring().fit_arrays(fx[["x", "z"]].to_numpy(float), fx["entry"], fx["exit"],
                                           fx["enrolled"].to_numpy() == 1, names=["x", "z"])
    assert cens.n_ == ref["n"] and cens.n_enrolled_ == ref["nevent"]
    np.testing.assert_allclose(cens.params_.to_numpy(), ref["coef"], rtol=0, atol=1e-8)
    np.testing.assert_allclose(cens.model_.se_.to_numpy(), ref["se"], rtol=1e-7)
    np.testing.assert_allclose(cens.baseline_["days"], ref["baseline_time"])
    np.testing.assert_allclose(cens.cumulative_hazard(ref["baseline_time"]), ref["baseline_cumhaz"], rtol=1e-9)
    rows = np.asarray(ref["probe_row"]) - 1
    G = cens.not_enrolled(fx.loc[rows, ["x", "z"]].to_numpy(float), ref["probe_a"], ref["probe_b"])
    np.testing.assert_allclose(G, ref["probe_G"], rtol=1e-9)


def test_censor_at_cuts_only_what_happens_after_the_censoring_day():
    days = pd.Series([30, 200, 50, 100, 100, pd.NA], dtype="Int64")
    status = pd.Series([1, 1, 0, 2, 0, pd.NA], dtype="Int64")
    c = pd.Series([100.0, 100.0, np.nan, 100.0, 50.0, 10.0])
    d, s, cut = censor_at(days, status, c)
    # an exit on the censoring day itself was seen; a censored row ends at the earlier day
    assert d.tolist()[:5] == [30, 100, 50, 100, 50]
    assert s.tolist()[:5] == [1, 0, 0, 2, 0]
    assert cut.tolist() == [False, True, False, False, True, False]


def _informative(n: int, seed: int, hr: float = 1.5) -> tuple[pd.DataFrame, float]:
    """Treated and comparison rows with a covariate that speeds both the event and the
    comparison rows' own enrolment: dropping the censored rows biases the comparison risk.

    Truth in closed form: risk within w days = 1 - exp(-rate * w), averaged over x.
    """
    rng = np.random.default_rng(seed)
    w = 365
    x = rng.random(n) < 0.5
    t = np.arange(n) % 2 == 0
    rate = np.where(x, 1 / 200, 1 / 900) * np.where(t, hr, 1.0)
    event = np.ceil(rng.exponential(1 / rate))
    enrol = np.where(t, np.inf, np.ceil(rng.exponential(np.where(x, 150.0, 2000.0))))
    horizon = 3000.0
    # the comparison row is at risk of enrolment while in care: until its event
    stop = np.minimum.reduce([event, enrol, np.full(n, horizon)])
    status = np.where(event <= np.minimum(enrol, horizon), 1, 0)
    df = pd.DataFrame({
        "treated": t, "x": x.astype(float), "index_delay_days": 0,
        "eligible_until_days": np.where(t, np.minimum(event, horizon), stop),
        "enrolled_after_days": np.where(np.isfinite(enrol), enrol, np.nan),
        "exit_days": stop.astype(int), "exit_status": status,
    })
    df["exit_12m"] = pd.array(np.where(status == 1, stop <= w, np.where(stop >= w, False, pd.NA)), dtype="boolean")
    risk = lambda r: 0.5 * (1 - np.exp(-r[0] * w)) + 0.5 * (1 - np.exp(-r[1] * w))  # noqa: E731
    truth = risk((hr / 200, hr / 900)) - risk((1 / 200, 1 / 900))
    return df, float(truth)


def test_ipcw_risk_difference_covers_the_closed_form_truth_where_dropping_censored_rows_is_biased():
    df, truth = _informative(6000, seed=7)
    cens = EnrolmentCensoring().fit(df, ["x"])
    assert cens.params_["x"] == pytest.approx(np.log(2000 / 150), abs=0.25)
    res = estimate(df, binary="exit_12m", censoring=cens)
    rd = res["risk_difference", 12]
    assert rd.ci_low <= truth <= rd.ci_high
    assert "inverse probability of not yet being censored" in rd.method
    naive = estimate(df, binary="exit_12m", censoring="none")["risk_difference", 12]
    # without weights, the comparison rows still followed are mostly x = 0 (slow events)
    assert naive.estimate - truth > 3 * naive.se
    # the flow says how many comparison rows were censored
    flow = res.flow.set_index("step")
    cut = flow.loc[[s for s in flow.index if "censored at their own enrolment" in s][0]]
    assert cut["treated"] == 0 and cut["comparison"] == int(df["exit_12m"].isna().sum())


def test_ipcw_coverage_over_replicates():
    """30 replicates of the informative design: the IPCW CI covers the truth in >= 25."""
    covered = 0
    for seed in range(30):
        df, truth = _informative(2000, seed=100 + seed)
        rd = estimate(df, binary="exit_12m", censoring=EnrolmentCensoring().fit(df, ["x"]))["risk_difference", 12]
        covered += rd.ci_low <= truth <= rd.ci_high
    assert covered >= 25


@pytest.fixture(scope="module")
def synthetic_cohorts():
    ext = generate(3000, seed=11).to_extract()
    kw = dict(entry_from="2016-01-01", entry_to="2021-12-31", outcomes={"reunification": [12], "tpr": [24]})
    return build_cohort(ext, **kw), build_cohort(ext, censor_at_enrolment=False, **kw)


def _match(cohort, covariates=("age_at_removal", "removal_parent_drugs", "removal_neglect", "prior_removals")):
    from ppeval.matching import match
    from ppeval.propensity import propensity

    ps = propensity(cohort.data, "treated", list(covariates))
    return match(ps, caliper_sd=0.2, cluster="match_family", delay="index_delay_days",
                 eligible_until="eligible_until_days", reindex=cohort.reindex)


def test_cohort_follows_comparison_rows_until_their_own_enrolment(synthetic_cohorts):
    cohort, uncensored = synthetic_cohorts
    d, u = cohort.data, uncensored.data
    assert d["unit_id"].tolist() == u["unit_id"].tolist()
    later = d["served_later"].to_numpy(bool)
    # a served unit's comparison row (index 0) stops on its enrolment day
    gap = d.loc[later, "enrolled_after_days"] - d.loc[later, "index_delay_days"]
    assert (d.loc[later, "reunification_days"].astype(float) <= gap).all()
    cut = later & (u["reunification_days"].astype(float).to_numpy() > d["enrolled_after_days"].to_numpy())
    assert cut.any()
    assert (d.loc[cut, "reunification_status"] == 0).all()
    assert (d.loc[cut, "reunification_days"].astype(float) == d.loc[cut, "enrolled_after_days"]).all()
    # a window that closes after the enrolment is not observed
    open_window = cut & (d["enrolled_after_days"].to_numpy() < 365)
    assert d.loc[open_window, "reunified_12m"].isna().all()
    # treated rows and never-served comparisons are untouched
    same = ~later & ~np.isfinite(d["enrolled_after_days"].to_numpy()) | d["treated"].to_numpy(bool)
    for col in ("reunification_days", "reunification_status", "reunified_12m", "tpr_days", "tpr_24m"):
        pd.testing.assert_series_equal(d.loc[same, col], u.loc[same, col])
    assert cohort.settings["censor_at_enrolment"] is True


def test_reindexed_comparison_rows_are_censored_at_enrolment(synthetic_cohorts):
    cohort, _ = synthetic_cohorts
    rows = cohort.data[cohort.data["served_later"]].copy()
    rows["index_delay_days"] = (rows["enrolled_after_days"] // 2).astype("int64")
    new = cohort.reindex(rows)
    gap = new["enrolled_after_days"] - new["index_delay_days"]
    assert (new["reunification_days"].astype(float) <= gap).all()
    # the window is missing exactly when the row was still followed when censored before it closed
    cut = (new["reunification_status"] == 0) & (new["reunification_days"].astype(float) == gap)
    assert new.loc[cut & (gap < 365), "reunified_12m"].isna().all()


def test_matched_sample_window_risks_use_the_ipc_weights(synthetic_cohorts):
    from ppeval.estimate import censoring_weights

    cohort, _ = synthetic_cohorts
    m = _match(cohort)
    res = estimate(m, outcome="reunification")
    rd = res["risk_difference", 12]
    ipcw = censoring_weights(m, "reunified_12m")
    md = m.data
    t = md["treated"].astype(bool)
    assert (ipcw[t].dropna() == 1).all() and (ipcw[~t].dropna() >= 1).all() and (ipcw[~t] > 1).any()
    # the weighted risks by hand
    w = md["weight"] * ipcw
    y = md["reunified_12m"].astype(float)
    ok = y.notna() & (md["weight"] > 0)
    by_hand = [np.average(y[ok & arm], weights=w[ok & arm]) for arm in (t, ~t)]
    assert rd.risk_treated == pytest.approx(by_hand[0], abs=1e-12)
    assert rd.risk_comparison == pytest.approx(by_hand[1], abs=1e-12)
    assert rd.estimate == pytest.approx(by_hand[0] - by_hand[1], abs=1e-10)
    # the model is fitted once per propensity score and kept in the results
    assert res.models["enrolment_censoring"] is estimate(m, outcome="tpr").models["enrolment_censoring"]
    assert res.models["enrolment_censoring"].params_["_ps_logit"] > 0
    # switching it off leaves the censored rows out unweighted
    off = estimate(m, outcome="reunification", censoring="none")["risk_difference", 12]
    assert off.estimate != pytest.approx(rd.estimate)


def test_only_the_enrolment_that_makes_a_unit_treated_censors(synthetic_cohorts):
    """A family enrolment after a comparison unit's episode (or on its discharge day) is not
    this design's treatment: it neither censors the unit nor counts in the censoring model."""
    cohort, uncensored = synthetic_cohorts
    d = cohort.data
    t, later = d["treated"].astype(bool), d["served_later"].astype(bool)
    assert d.loc[t | later, "enrolled_after_days"].notna().all()
    assert d.loc[~t & ~later, "enrolled_after_days"].isna().all()
    assert (d.loc[later, "enrolled_after_days"] == d.loc[later, "eligible_until_days"]).mean() > 0.9
    # without censoring the cohort has no enrolment column, and estimate() weights nothing
    assert "enrolled_after_days" not in uncensored.data
    m = _match(uncensored)
    res = estimate(m, outcome="reunification")
    assert not any(k.startswith("ipcw") for k in res.tests) and "enrolment_censoring" not in res.models
    off = estimate(m, outcome="reunification", censoring="none")
    assert res["risk_difference", 12].estimate == off["risk_difference", 12].estimate
    assert "inverse probability" not in res["risk_difference", 12].method


def test_family_units_weight_after_care_outcomes_at_the_exit_from_care():
    """Re-entry is known only after the stay: its weight is 1/G at the unit's exit from care."""
    from ppeval.estimate import censoring_weights

    ext = generate(4000, seed=12).to_extract()
    cohort = build_cohort(ext, unit="family", entry_from="2016-01-01", entry_to="2021-12-31",
                          outcomes={"reunification": [12], "reentry": [12]})
    m = _match(cohort, ("youngest_age_at_removal", "removal_parent_drugs", "prior_removals"))
    res = estimate(m, outcome="reentry")
    cens = res.models["enrolment_censoring"]
    md = m.data
    w = censoring_weights(m, "reentry_12m")
    comp = ~md["treated"].astype(bool) & md["reentry_12m"].notna()
    assert comp.sum() > 20
    x = m.ps.logit_.reindex(md.index)[comp].to_numpy()[:, None]
    g = cens.not_enrolled(x, md.loc[comp, "index_delay_days"], md.loc[comp, "eligible_until_days"])
    np.testing.assert_allclose(w[comp].to_numpy(), 1 / g, rtol=1e-12)
    # reunification is known at the event or the window's end, whichever is first
    w12 = censoring_weights(m, "reunified_12m")
    c12 = ~md["treated"].astype(bool) & md["reunified_12m"].notna()
    days = md.loc[c12, "reunification_days"].astype(float)
    st = md.loc[c12, "reunification_status"].astype(float)
    known_at = np.where(st.isin([1, 2]) & (days <= 365), days, 365)
    until = np.minimum(md.loc[c12, "index_delay_days"] + known_at, md.loc[c12, "eligible_until_days"])
    x12 = m.ps.logit_.reindex(md.index)[c12].to_numpy()[:, None]
    g12 = cens.not_enrolled(x12, md.loc[c12, "index_delay_days"], until)
    np.testing.assert_allclose(w12[c12].to_numpy(), 1 / g12, rtol=1e-12)


def test_hazard_ratio_weights_over_time_recover_the_uncensored_fit():
    """Cox with time-varying IPC weights on the censored data ~ the Cox fit on the same units
    with nobody censored; the unweighted fit on the censored data is off."""
    from ppeval.estimate import CoxPH

    rng = np.random.default_rng(21)
    n = 20000
    x = rng.random(n) < 0.5
    t = rng.random(n) < 0.5
    event = np.ceil(rng.exponential(1 / (np.where(x, 1 / 150, 1 / 900) * np.where(t, 0.7, 1.0))))
    # (the comparison rows with x = 1 that are still followed late are few but not none:
    # without them, as with enrolment 3x faster, no weighting could stand in for them)
    enrol = np.where(t, np.inf, np.ceil(rng.exponential(np.where(x, 300.0, 3000.0))))
    horizon = 730.0
    full_days = np.minimum(event, horizon)
    full_status = (event <= horizon).astype(int)
    stop = np.minimum(full_days, enrol)
    status = np.where(enrol < full_days, 0, full_status)
    df = pd.DataFrame({
        "treated": t, "x": x.astype(float), "index_delay_days": 0, "eligible_until_days": stop,
        "enrolled_after_days": np.where(np.isfinite(enrol), enrol, np.nan),
        "exit_days": stop, "exit_status": status})
    full = CoxPH().fit_arrays(t.astype(float)[:, None], full_days, full_status == 1)
    target = float(np.exp(full.params_.iloc[0]))
    cens = EnrolmentCensoring().fit(df, ["x"])
    hr = estimate(df, outcome="exit", censoring=cens)["hazard_ratio"]
    naive = estimate(df, outcome="exit", censoring="none")["hazard_ratio"]
    assert hr.ci_low <= target <= hr.ci_high
    assert abs(np.log(hr.estimate / target)) < 0.03
    assert abs(np.log(naive.estimate / target)) > 5 * abs(np.log(hr.estimate / target))
    assert "weighted over time" in hr.method


def test_splitting_alone_does_not_change_the_cox_fit(synthetic_cohorts, monkeypatch):
    """With every G = 1 the (start, stop] pieces give the unsplit fit, clustered SE included."""
    cohort, _ = synthetic_cohorts
    m = _match(cohort)
    res = estimate(m, outcome="tpr")
    assert "weighted over time" in res["hazard_ratio"].method
    monkeypatch.setattr(EnrolmentCensoring, "not_enrolled", lambda self, X, entry, until: np.ones(len(np.asarray(entry))))
    flat = estimate(m, outcome="tpr")
    unweighted = res.models["cox_unweighted"]
    assert flat.models["cox"].n_ > unweighted.n_  # the rows were split
    np.testing.assert_allclose(flat.models["cox"].params_, unweighted.params_, rtol=0, atol=1e-10)
    np.testing.assert_allclose(flat.models["cox"].se_, unweighted.se_, rtol=1e-9)


def test_missing_censoring_covariates_are_a_clear_error():
    from ppeval.errors import DataError

    df, _ = _informative(400, seed=3)
    cens = EnrolmentCensoring().fit(df, ["x"])
    df.loc[5, "x"] = np.nan
    with pytest.raises(DataError, match="missing for 1 row"):
        estimate(df, binary="exit_12m", censoring=cens)


def test_report_states_the_size_of_the_censoring_weights():
    from types import SimpleNamespace

    from ppeval.report import _censoring_weight_text

    def ev(*stats):
        tests = {f"ipcw[o_{i}m]": s for i, s in enumerate(stats)}
        tests["ipcw[o hazard ratio]"] = {"comparison_pieces": 9, "mean_weight": 50.0, "max_weight": 99.0}
        return SimpleNamespace(estimates={"o": SimpleNamespace(tests=tests)})

    calm = _censoring_weight_text(ev({"comparison_rows": 100, "mean_weight": 1.2, "max_weight": 2.0},
                                     {"comparison_rows": 300, "mean_weight": 1.6, "max_weight": 3.5}))
    assert calm == "These weights averaged 1.50 in the fixed-window rates; the largest was 3.5."
    loud = _censoring_weight_text(ev({"comparison_rows": 100, "mean_weight": 1.9, "max_weight": 14.2}))
    assert "largest was 14.2" in loud and "caution" in loud
    assert _censoring_weight_text(SimpleNamespace(estimates={"o": SimpleNamespace(tests={})})) == ""
