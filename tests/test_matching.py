"""Matching: MatchIt's pairs and weights on lalonde, and rules checked on simulated data."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scripts import ROOT, load_script

from ppeval.matching import MatchingError, match
from ppeval.propensity import PropensityScore, propensity

REF = Path(__file__).parent / "reference"
BENCH = Path(__file__).parent.parent / "benchmarks" / "bench_matching.py"
LALONDE_COVS = ["age", "educ", "race", "married", "nodegree", "re74", "re75"]


def _load(path: Path, name: str):
    return load_script(str(path.relative_to(ROOT)), name)


@pytest.fixture(scope="module")
def lalonde() -> pd.DataFrame:
    """MatchIt's lalonde rebuilt from causaldata (tests/reference/README.md)."""
    return _load(REF / "build_lalonde_from_causaldata.py", "build_lalonde").load_lalonde()


@pytest.fixture(scope="module")
def ref() -> dict:
    return json.loads((REF / "lalonde_matchit.json").read_text())


@pytest.fixture(scope="module")
def ps_lalonde(lalonde):
    return propensity(lalonde, "treat", LALONDE_COVS)


# ---------------------------------------------------------------------------------------
# against R
# ---------------------------------------------------------------------------------------

RUNS = {
    "main": dict(ratio=1, replace=False, caliper_sd=0.2),
    "ratio2": dict(ratio=2, replace=False, caliper_sd=0.2),
    "replace": dict(ratio=1, replace=True, caliper_sd=0.2),
    "nocaliper": dict(ratio=1, replace=False, caliper_sd=None),
}


def _row_numbers(labels, lalonde) -> np.ndarray:
    """Index labels (NSW1, PSID7, ...) -> MatchIt's 1-based row numbers."""
    return lalonde.index.get_indexer(labels) + 1


@pytest.mark.parametrize("run", list(RUNS))
def test_pairs_and_weights_equal_matchit(run, lalonde, ref, ps_lalonde):
    """The matched pairs, the weights and the matched sets equal MatchIt's exactly.

    R (tests/reference/lalonde_matchit.R; main: ratio = 1, replace = FALSE, caliper = 0.2,
    std.caliper = TRUE; ratio2: ratio = 2; replace: replace = TRUE; nocaliper: no caliper)::

        library(MatchIt)   # 4.5.1; the logit is passed scaled (issue #163, see README)
        data("lalonde", package = "MatchIt")
        f <- treat ~ age + educ + race + married + nodegree + re74 + re75
        lp <- predict(glm(f, family = binomial, data = lalonde), type = "link")
        d <- lp * 1e9 / diff(range(lp))
        m <- matchit(f, data = lalonde, method = "nearest", distance = d,
                     m.order = "largest", ratio = 1, replace = FALSE,
                     caliper = 0.2, std.caliper = TRUE)
        m$match.matrix; m$weights; m$subclass
    """
    r = ref["runs"][run]
    m = match(ps_lalonde, **RUNS[run])
    mine = pd.DataFrame({
        "treated": _row_numbers(m.pairs["treated"], lalonde),
        "control": _row_numbers(m.pairs["control"], lalonde),
        "slot": m.pairs["slot"].to_numpy(),
    }).sort_values(["treated", "slot"]).reset_index(drop=True)
    theirs = pd.DataFrame(r["pairs"]).sort_values(["treated", "slot"]).reset_index(drop=True)
    assert len(mine) == r["n_pairs"]
    assert (mine.to_numpy() == theirs[["treated", "control", "slot"]].to_numpy()).all()
    assert m.counts["treated_matched"] == r["n_treated_matched"]

    w = pd.Series(0.0, index=lalonde.index)
    w[m.data.index] = m.data["weight"]
    np.testing.assert_allclose(w.to_numpy(), r["weights"], rtol=0, atol=1e-12)

    if r["subclass"] is not None:
        # the same partition into matched sets (MatchIt numbers them differently)
        sub = pd.Series(r["subclass"], index=lalonde.index, dtype="float")
        sets_r = sub.dropna().groupby(sub.dropna()).groups
        sets_r = sorted(tuple(sorted(v)) for v in sets_r.values())
        sets_m = sorted(tuple(sorted(v)) for v in m.data.groupby("match_id").groups.values())
        assert sets_m == sets_r
    if RUNS[run]["caliper_sd"] is not None:
        assert m.caliper_ == pytest.approx(r["caliper_lp_scale"], abs=1e-7)
        assert m.method.endswith(
            "caliper 0.2 SD of the logit of the propensity score (0.3609 on the logit scale)")


@pytest.mark.parametrize("run", list(RUNS))
def test_matched_att_of_employment_equals_R(run, lalonde, ref, ps_lalonde):
    """ATT of y = re78 > 0 on the matched data: weighted means, lm coefficient, cluster SE.

    R (tests/reference/lalonde_matchit.R, after matchit() as in the pairs test)::

        md <- match.data(m, data = lalonde); md$y <- as.numeric(md$re78 > 0)
        weighted.mean(md$y[md$treat == 1], md$weights[md$treat == 1]) -
          weighted.mean(md$y[md$treat == 0], md$weights[md$treat == 0])
        fit <- lm(y ~ treat, data = md, weights = weights)
        sqrt(diag(sandwich::vcovCL(fit, cluster = ~subclass)))   # HC1, cadjust = TRUE
    """
    import statsmodels.api as sm

    out = ref["runs"][run]["outcome"]
    m = match(ps_lalonde, **RUNS[run])
    d = m.data
    y = (d["re78"] > 0).astype(float).to_numpy()
    t = d["treat"].to_numpy() == 1
    w = d["weight"].to_numpy()
    att = np.average(y[t], weights=w[t]) - np.average(y[~t], weights=w[~t])
    assert att == pytest.approx(out["att_diff_weighted_means"], abs=1e-12)
    assert len(d) == out["n_matched_rows"]
    assert w[t].sum() == pytest.approx(out["sum_weights_treated"], abs=1e-9)
    assert w[~t].sum() == pytest.approx(out["sum_weights_control"], abs=1e-9)
    X = sm.add_constant(t.astype(float))
    if "lm_se_cluster" in out:
        fit = sm.WLS(y, X, weights=w).fit(cov_type="cluster",
                                          cov_kwds={"groups": d["match_id"].to_numpy()})
        np.testing.assert_allclose(fit.params, out["lm_coef"], atol=1e-10)
        np.testing.assert_allclose(fit.bse, out["lm_se_cluster"], atol=1e-10)
    else:
        fit = sm.WLS(y, X, weights=w).fit(cov_type="HC1")
        np.testing.assert_allclose(fit.params, out["lm_coef"], atol=1e-10)
        np.testing.assert_allclose(fit.bse, out["lm_se_HC1"], atol=1e-10)


def test_get_matches_layout_with_replacement(lalonde, ref, ps_lalonde):
    """``matches`` is MatchIt's get_matches(): one row per (set, unit), two-way cluster SE.

    R::

        gm <- get_matches(m, data = lalonde)      # m: replace = TRUE run
        fit <- lm(y ~ treat, data = gm, weights = weights)
        sqrt(diag(sandwich::vcovCL(fit, cluster = ~subclass + id)))
    """
    import statsmodels.api as sm

    out = ref["runs"]["replace"]["outcome"]
    m = match(ps_lalonde, replace=True)
    g = m.matches
    assert len(g) == out["get_matches_n_rows"] == 368
    y = (g["re78"] > 0).astype(float).to_numpy()
    X = sm.add_constant((g["treat"] == 1).astype(float).to_numpy())
    groups = np.column_stack([g["match_id"].to_numpy(),
                              lalonde.index.get_indexer(g.index)])
    fit = sm.WLS(y, X, weights=g["weight"].to_numpy()).fit(
        cov_type="cluster", cov_kwds={"groups": groups})
    np.testing.assert_allclose(fit.params, out["get_matches_lm_coef"], atol=1e-10)
    # statsmodels' two-way cluster uses one small-sample factor for the three terms;
    # sandwich scales each term by its own G/(G-1), hence the looser tolerance
    np.testing.assert_allclose(fit.bse, out["get_matches_lm_se_cluster_subclass_id"], rtol=5e-3)
    # a reused comparison unit appears once per set
    reused = g[g["role"] == "comparison"].index.value_counts()
    assert reused.max() > 1
    assert m.data.index.is_unique


def test_matched_smd_of_logit_equals_matchit_distance_row(ref, ps_lalonde):
    """MatchIt's summary() distance row (on the logit) after matching: SMD 0.2003."""
    m = match(ps_lalonde)
    lg = ps_lalonde.logit_
    t = ps_lalonde.treated_
    sd_t = lg[t].std(ddof=1)
    d = m.data
    dt = d["treat"] == 1
    smd = (lg[d.index[dt]].mean() - lg[d.index[~dt]].mean()) / sd_t
    row = ref["runs"]["main"]["summary_matched"]
    assert smd == pytest.approx(row["Std. Mean Diff."][0], abs=1e-6)


# ---------------------------------------------------------------------------------------
# a slow, obviously correct matcher (MatchIt 4.5.x nn_matchC_vec, transcribed)
# ---------------------------------------------------------------------------------------


def reference_nn(dist, treat, ratio=1, caliper=np.inf, replace=False, order="largest",
                 exact=None, delay=None, elig=None, active=None, rng=None):
    """O(n^2) transcription of MatchIt's greedy matcher, plus ppeval's delay rule."""
    n = len(dist)
    active = np.ones(n, bool) if active is None else active
    d_ord = np.argsort(dist, kind="stable")
    rank = np.empty(n, int)
    rank[d_ord] = np.arange(n)
    t_rows = np.flatnonzero(treat)
    if order == "largest":
        ord_ = np.argsort(-dist[t_rows], kind="stable")
    elif order == "smallest":
        ord_ = np.argsort(dist[t_rows], kind="stable")
    elif order == "random":
        ord_ = rng.permutation(len(t_rows))
    else:
        ord_ = np.arange(len(t_rows))
    groups = [ord_]
    if delay is not None:  # risk-set matching in time order: all passes of a delay, then the next
        dl = delay[t_rows]
        ord_ = ord_[np.argsort(dl[ord_], kind="stable")]
        groups = [ord_[dl[ord_] == v] for v in np.unique(dl)]
    tol = 1e-9 * (dist[active].max() - dist[active].min())
    used = np.zeros(n, bool)
    mm = np.full((len(t_rows), ratio), -1)
    for r, i in ((r, i) for g in groups for r in range(ratio) for i in g):
        t = t_rows[i]
        if not active[t]:
            continue
        found = []
        for step in (-1, 1):
            k = rank[t] + step
            hit = -1
            while 0 <= k < n:
                u = d_ord[k]
                k += step
                if treat[u] or not active[u] or used[u] or u in mm[i, :r]:
                    continue
                if abs(dist[t] - dist[u]) > caliper:
                    break
                if exact is not None and exact[u] != exact[t]:
                    continue
                if delay is not None and not elig[u] > delay[t]:
                    continue
                hit = u
                break
            found.append(hit)
        kl, kr = found
        if kl >= 0 and kr >= 0:
            k = kl if abs(dist[t] - dist[kl]) <= abs(dist[kr] - dist[t]) + tol else kr
        else:
            k = max(kl, kr)
        if k < 0:
            continue
        mm[i, r] = k
        if not replace:
            used[k] = True
    return t_rows, mm


def _sim(n=400, seed=0, ties=False):
    rng = np.random.default_rng(seed)
    t = rng.random(n) < 0.3
    lg = rng.normal(size=n) + 0.8 * t
    if ties:
        lg = np.round(lg, 1)  # many exact ties among and between arms
    df = pd.DataFrame({
        "treated": t.astype(int),
        "stratum": rng.integers(0, 4, n),
        "delay": rng.integers(0, 100, n).astype(float),
        "eligible_until": rng.integers(0, 300, n).astype(float),
    })
    return df, lg


CASES = [
    dict(ratio=1, replace=False, caliper_sd=0.2),
    dict(ratio=3, replace=False, caliper_sd=0.5),
    dict(ratio=2, replace=True, caliper_sd=0.1),
    dict(ratio=1, replace=False, caliper_sd=None, order="smallest"),
    dict(ratio=1, replace=False, caliper_sd=0.3, order="data"),
    dict(ratio=2, replace=False, caliper_sd=0.3, order="random"),
    dict(ratio=1, replace=False, caliper_sd=0.3, exact=["stratum"]),
    dict(ratio=2, replace=False, caliper_sd=None, exact=["stratum"], delay="delay",
         eligible_until="eligible_until"),
    dict(ratio=1, replace=True, caliper_sd=0.25, delay="delay", eligible_until="eligible_until"),
]


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("case", range(len(CASES)))
def test_sorted_scan_equals_bruteforce_matchit(case, ties):
    kw = CASES[case]
    for seed in range(3):
        df, lg = _sim(seed=seed, ties=ties)
        ps = PropensityScore.from_logit(df, "treated", lg)
        m = match(ps, random_state=seed, **kw)
        cal = np.inf if kw["caliper_sd"] is None else kw["caliper_sd"] * np.std(lg, ddof=1)
        t_rows, mm = reference_nn(
            lg, df["treated"].to_numpy() == 1, ratio=kw["ratio"], caliper=cal,
            replace=kw["replace"], order=kw.get("order", "largest"),
            exact=df["stratum"].to_numpy() if kw.get("exact") else None,
            delay=df["delay"].to_numpy() if kw.get("delay") else None,
            elig=df["eligible_until"].to_numpy() if kw.get("delay") else None,
            rng=np.random.default_rng(seed))
        rows, slots = np.nonzero(mm >= 0)
        expected = sorted(zip(t_rows[rows].tolist(), (slots + 1).tolist(), mm[rows, slots].tolist(),
                              strict=True))
        got = sorted(zip(m.pairs["treated"].tolist(), m.pairs["slot"].tolist(),
                         m.pairs["control"].tolist(), strict=True))
        assert got == expected, (case, seed)


# ---------------------------------------------------------------------------------------
# rules on simulated data
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sim():
    rng = np.random.default_rng(11)
    n = 3000
    df = pd.DataFrame({
        "x1": rng.normal(size=n), "x2": rng.normal(size=n),
        "year": rng.choice([2016, 2017, 2018], n),
    })
    df["treated"] = (rng.random(n) < 1 / (1 + np.exp(2 - 1.2 * df["x1"] + 0.5 * df["x2"]))).astype(int)
    return df


def test_caliper_respected_and_unmatched_have_no_free_control(sim):
    ps = propensity(sim, "treated", ["x1", "x2"])
    m = match(ps, caliper_sd=0.05)
    lg = ps.logit_
    cal = 0.05 * lg.std(ddof=1)
    assert m.caliper_ == pytest.approx(cal)
    assert (m.pairs["distance"] <= cal).all()
    np.testing.assert_allclose(
        m.pairs["distance"], np.abs(lg[m.pairs["treated"]].to_numpy() - lg[m.pairs["control"]].to_numpy()))
    assert len(m.unmatched) > 0
    assert set(m.unmatched["reason"]) == {"no control within caliper"}
    used = set(m.pairs["control"])
    free = lg[(~ps.treated_) & ~lg.index.isin(used)].to_numpy()
    for v in lg[m.unmatched.index]:
        assert not (np.abs(free - v) <= cal).any()


def test_no_control_reused_without_replacement(sim):
    ps = propensity(sim, "treated", ["x1", "x2"])
    m = match(ps, ratio=3, caliper_sd=0.5)
    assert m.pairs["control"].is_unique
    assert m.data.index.is_unique
    # each set: one treated unit and its 1-3 controls; weights 1/k scaled (MatchIt)
    sizes = m.data.groupby("match_id")["treated"].agg(["sum", "size"])
    assert (sizes["sum"] == 1).all() and sizes["size"].between(2, 4).all()
    assert m.counts["treated_partially_matched"] == int((sizes["size"] < 4).sum())


def test_weights_with_replacement_closed_form():
    # t0 (0.0) and t1 (0.1) both take c0 (0.05); t2 (5.0) takes c1 (5.1) and c2 (4.95) (ratio 2)
    df = pd.DataFrame({"treated": [1, 1, 1, 0, 0, 0, 0]})
    lg = [0.0, 0.1, 5.0, 0.05, 5.1, 4.95, 9.0]
    ps = PropensityScore.from_logit(df, "treated", lg)
    m = match(ps, ratio=2, replace=True, caliper_sd=None)
    p = m.pairs
    assert sorted(zip(p["treated"], p["control"], strict=True)) == [
        (0, 3), (0, 5), (1, 3), (1, 5), (2, 4), (2, 5)]
    # raw: c3 = 1/2 + 1/2 = 1; c5 = 1/2 + 1/2 + 1/2 = 1.5; c4 = 1/2; sum 3 -> scale to 3 controls
    w = m.data["weight"]
    assert w[[0, 1, 2]].tolist() == [1.0, 1.0, 1.0]
    assert w[[3, 4, 5]].tolist() == pytest.approx([1.0, 0.5, 1.5])
    assert 6 not in m.data.index
    g = m.matches
    assert len(g) == 9 and g.loc[g["role"] == "comparison", "weight"].eq(0.5).all()


def test_exact_strata_respected(sim):
    ps = propensity(sim, "treated", ["x1", "x2"])
    m = match(ps, exact=["year"], caliper_sd=0.2)
    yr = sim["year"]
    assert (yr[m.pairs["treated"]].to_numpy() == yr[m.pairs["control"]].to_numpy()).all()
    assert "exactly within year" in m.method
    # a stratum with no comparison unit
    df = sim.copy()
    df.loc[(df["year"] == 2018) & (df["treated"] == 0), "year"] = 2017
    m2 = match(propensity(df, "treated", ["x1", "x2"]), exact=["year"])
    n18 = int(((df["year"] == 2018) & (df["treated"] == 1)).sum())
    un = m2.unmatched
    assert (un["reason"] == "no control in exact stratum").sum() == n18


def test_order_options_change_who_gets_the_scarce_control():
    df = pd.DataFrame({"treated": [1, 1, 0]})
    lg = [0.9, 1.0, 0.95]  # one control, equidistant from both treated units
    ps = PropensityScore.from_logit(df, "treated", lg)
    who = {o: match(ps, order=o, caliper_sd=None).pairs["treated"].tolist()
           for o in ("largest", "smallest", "data")}
    assert who == {"largest": [1], "smallest": [0], "data": [0]}
    r1 = match(ps, order="random", random_state=1, caliper_sd=None).pairs["treated"].tolist()
    r2 = match(ps, order="random", random_state=1, caliper_sd=None).pairs["treated"].tolist()
    assert r1 == r2
    seen = {match(ps, order="random", random_state=s, caliper_sd=None).pairs["treated"].iloc[0]
            for s in range(20)}
    assert seen == {0, 1}


def test_ties_left_wins_and_stable_sort():
    # treated at 1.0 with controls at 0.5 (left) and 1.5 (right): equidistant -> left
    df = pd.DataFrame({"treated": [1, 0, 0]})
    ps = PropensityScore.from_logit(df, "treated", [1.0, 1.5, 0.5])
    assert match(ps, caliper_sd=None).pairs["control"].tolist() == [2]
    # equal distances: controls before the treated unit in data order are on its left
    df = pd.DataFrame({"treated": [0, 1, 0]})
    ps = PropensityScore.from_logit(df, "treated", [0.3, 0.3, 0.3])
    assert match(ps, caliper_sd=None).pairs["control"].tolist() == [0]
    df = pd.DataFrame({"treated": [1, 0, 0]})
    ps = PropensityScore.from_logit(df, "treated", [0.3, 0.3, 0.3])
    assert match(ps, caliper_sd=None).pairs["control"].tolist() == [1]


def _families(seed=5, n_fam=600):
    rng = np.random.default_rng(seed)
    size = rng.integers(1, 5, n_fam)
    fam = np.repeat([f"F{i}" for i in range(n_fam)], size)
    fx = np.repeat(rng.normal(size=n_fam), size)
    ft = np.repeat(rng.random(n_fam) < 1 / (1 + np.exp(1.5 - fx[np.r_[0, np.cumsum(size)[:-1]]])), size)
    n = len(fam)
    df = pd.DataFrame({
        "family_id": fam, "x": fx + rng.normal(scale=0.3, size=n), "treated": ft.astype(int),
        "age": rng.integers(0, 17, n),
        "entry_year": np.repeat(rng.choice([2019, 2020], n_fam), size),
    })
    return df.sample(frac=1, random_state=seed)  # siblings not adjacent


def test_family_blocks_never_split():
    df = _families()
    ps = propensity(df, "treated", ["x", "age"])
    m = match(ps, cluster="family_id", exact=["entry_year"], caliper_sd=0.2)
    d = m.data
    # every family is wholly in or wholly out, with one match_id and one arm
    sizes = df.groupby("family_id").size()
    in_data = d.groupby("family_id").size()
    assert (in_data == sizes[in_data.index]).all()
    assert (d.groupby("family_id")["match_id"].nunique() == 1).all()
    assert (d.groupby("family_id")["treated"].nunique() == 1).all()
    # each matched set holds one treated family and one comparison family
    per_set = d.groupby("match_id").agg(fams=("family_id", "nunique"), t=("treated", "sum"))
    assert (per_set["fams"] == 2).all()
    # siblings get the family's weight; pairs are at family level
    assert (d.groupby("family_id")["weight"].nunique() == 1).all()
    assert m.pairs.attrs["unit"] == "family (family_id)"
    fam_logit = ps.logit_.groupby(df["family_id"]).mean()
    cal = 0.2 * fam_logit.std(ddof=1)
    assert m.caliper_ == pytest.approx(cal)
    dist = (fam_logit[m.pairs["treated"]].to_numpy() - fam_logit[m.pairs["control"]].to_numpy())
    assert (np.abs(dist) <= cal).all()
    # unmatched treated children are listed with their family
    if len(m.unmatched):
        un_f = set(m.unmatched["family_id"])
        assert not un_f & set(d["family_id"])
        got = m.unmatched.groupby("family_id").size()
        assert (got == sizes[got.index]).all()


def test_family_errors():
    df = _families()
    bad = df.copy()
    first = bad["family_id"].value_counts().index[0]  # a family with several children
    bad.loc[bad.index[bad["family_id"] == first][0], "treated"] = 1 - bad.loc[
        bad.index[bad["family_id"] == first][0], "treated"]
    with pytest.raises(MatchingError, match="both treated and comparison children"):
        match(propensity(bad, "treated", ["x", "age"]), cluster="family_id")
    # an int64 index (not a RangeIndex): the row is shown as 6, never np.int64(6), and one
    # mixed family is a small count ("<11")
    bad.index = pd.Index(np.arange(len(bad), dtype="int64") * 2)
    with pytest.raises(MatchingError) as info:
        match(propensity(bad, "treated", ["x", "age"]), cluster="family_id")
    assert str(info.value).startswith("<11 famil(ies) have both") and "np." not in str(info.value)
    assert re.search(r"data row \d+\)", str(info.value))
    df2 = df.assign(label=np.where(np.arange(len(df)) % 2 == 0, "a", "b"))
    with pytest.raises(MatchingError, match="'label' differs between siblings"):
        match(propensity(df2, "treated", ["x", "age"]), cluster="family_id", exact=["label"])


def test_family_exact_on_a_numeric_column_uses_the_first_entry():
    # siblings removed in different years: the family's stratum is its earliest year
    df = pd.DataFrame({
        "family_id": ["A", "A", "B", "C"],
        "treated": [1, 1, 0, 0],
        "year": [2019, 2020, 2020, 2019],
    })
    ps = PropensityScore.from_logit(df, "treated", [0.0, 0.2, 0.1, 2.0])
    m = match(ps, cluster="family_id", exact=["year"], caliper_sd=None)
    assert m.pairs[["treated", "control"]].values.tolist() == [["A", "C"]]


def test_eligibility_rule_and_reindex():
    rng = np.random.default_rng(8)
    n = 2000
    df = pd.DataFrame({"x": rng.normal(size=n)})
    df["treated"] = (rng.random(n) < 1 / (1 + np.exp(1.5 - df["x"]))).astype(int)
    df["index_delay_days"] = np.where(df["treated"] == 1, rng.integers(0, 200, n), np.nan)
    df["eligible_until_days"] = rng.integers(1, 400, n).astype(float)
    ps = propensity(df, "treated", ["x"])
    calls = []

    def reindex(d):
        calls.append(len(d))
        return d.assign(followup_start=d["index_delay_days"] + 1)

    ps.reindex = reindex
    m = match(ps, delay="index_delay_days", eligible_until="eligible_until_days", caliper_sd=0.2)
    p = m.pairs
    d_t = df.loc[p["treated"], "index_delay_days"].to_numpy()
    e_c = df.loc[p["control"], "eligible_until_days"].to_numpy()
    assert (e_c > d_t).all()
    # matched comparison units carry their treated unit's delay; reindex saw the data
    assert (m.data.loc[p["control"], "index_delay_days"].to_numpy() == d_t).all()
    assert calls == [len(m.data), len(m.matches)]
    assert (m.data["followup_start"] == m.data["index_delay_days"] + 1).all()
    assert "eligible_until > the treated unit's index_delay_days" in m.method

    # a treated unit whose delay no control survives: the reason says so
    df2 = df.copy()
    i = df2.index[df2["treated"] == 1][0]
    df2.loc[i, "index_delay_days"] = 10_000
    m2 = match(propensity(df2, "treated", ["x"]), delay="index_delay_days",
               eligible_until="eligible_until_days", caliper_sd=0.2)
    assert m2.unmatched.loc[i, "reason"] == "no eligible control at this delay"


def test_delay_matching_takes_treated_units_in_time_order():
    """A comparison unit's availability must not depend on how long it stays eligible.

    T_long (delay 100) has the larger score; in score order it would take C_long, the only
    unit still eligible at day 100, and leave T_short (delay 10) with C_short, who leaves on
    day 50: the units that stay long would go to long delays and quick leavers to short
    ones. In time order T_short, matched first, takes its nearest unit, C_long.
    """
    df = pd.DataFrame({
        "treated": [1, 1, 0, 0],
        "delay": [100.0, 10.0, np.nan, np.nan],
        "elig": [np.nan, np.nan, 300.0, 50.0],
    }, index=["T_long", "T_short", "C_long", "C_short"])
    ps = PropensityScore.from_logit(df, "treated", pd.Series([2.0, 0.6, 0.6, 0.3], index=df.index))
    m = match(ps, delay="delay", eligible_until="elig", caliper_sd=None)
    assert m.pairs[["treated", "control"]].values.tolist() == [["T_short", "C_long"]]
    assert "all already matched" in m.unmatched.loc["T_long", "detail"]  # C_long went to T_short
    assert "taken in increasing delay" in m.method
    plain = match(ps, caliper_sd=None)  # without delays: MatchIt's order, largest score first
    assert sorted(plain.pairs[["treated", "control"]].values.tolist()) == [["T_long", "C_long"], ["T_short", "C_short"]]


def test_family_delay_uses_the_strictest_sibling():
    # family A (treated): children with delays 10 and 50 -> family delay 50.
    # family B (comparison): eligible 40 and 90 -> family eligible 40 <= 50: not usable.
    # family C (comparison): eligible 60 and 70 -> usable.
    df = pd.DataFrame({
        "family_id": ["A", "A", "B", "B", "C", "C"],
        "treated": [1, 1, 0, 0, 0, 0],
        "delay": [10.0, 50.0, np.nan, np.nan, np.nan, np.nan],
        "elig": [np.nan, np.nan, 40.0, 90.0, 60.0, 70.0],
    })
    ps = PropensityScore.from_logit(df, "treated", [0.0, 0.0, 0.0, 0.0, 3.0, 3.0])
    m = match(ps, cluster="family_id", delay="delay", eligible_until="elig", caliper_sd=None)
    assert m.pairs[["treated", "control"]].values.tolist() == [["A", "C"]]
    assert m.data.loc[[4, 5], "delay"].tolist() == [50.0, 50.0]


def test_common_support_and_missing_score_reasons():
    df = pd.DataFrame({"treated": [1, 1, 1, 0, 0, 0, 0]})
    lg = [9.0, 0.0, np.nan, 0.1, -0.2, 0.3, np.nan]
    ps = PropensityScore.from_logit(df, "treated", lg, common_support="treated")
    m = match(ps, caliper_sd=None)
    assert m.unmatched["reason"].to_dict() == {
        0: "outside common support", 2: "no propensity score (missing covariates)"}
    assert m.counts["treated_discarded"] == 1
    assert m.pairs["control"].tolist() == [3]


def test_ipw_weights_closed_form():
    rng = np.random.default_rng(4)
    n = 1000
    df = pd.DataFrame({"x": rng.normal(size=n)})
    df["treated"] = (rng.random(n) < 1 / (1 + np.exp(-df["x"]))).astype(int)
    ps = propensity(df, "treated", ["x"])
    m = match(ps, method="ipw")
    p = ps.score_.to_numpy()
    t = df["treated"].to_numpy() == 1
    odds = p[~t] / (1 - p[~t])
    expected = odds * t.sum() / odds.sum()
    assert len(m.data) == n
    np.testing.assert_allclose(m.data["weight"].to_numpy()[~t], expected, rtol=1e-12)
    assert (m.data["weight"].to_numpy()[t] == 1).all()
    assert m.data["weight"].to_numpy()[~t].sum() == pytest.approx(t.sum())
    assert m.data["match_id"].is_unique  # each unit its own cluster


def test_cem_and_exact_weights_closed_form():
    # strata of g: a: 2 treated, 1 control; b: 1 treated, 3 controls; c: only controls
    df = pd.DataFrame({
        "g": list("aaa") + list("bbbb") + list("cc") + ["d"],
        "treated": [1, 1, 0, 1, 0, 0, 0, 0, 0, 1],
    })
    ps = PropensityScore.from_logit(df, "treated", np.zeros(len(df)), ["g"])
    m = match(ps, method="exact", exact=["g"])
    # M_T = 3, M_C = 4: control weight = (4/3) * n_T,s / n_C,s
    w = m.data["weight"]
    assert w[[0, 1, 3]].tolist() == [1.0, 1.0, 1.0]
    assert w[2] == pytest.approx(4 / 3 * 2 / 1)
    assert w[[4, 5, 6]].tolist() == pytest.approx([4 / 3 * 1 / 3] * 3)
    assert w[m.data["treated"] == 0].sum() == pytest.approx(4)
    assert m.unmatched["reason"].to_dict() == {9: "no control in exact stratum"}
    assert m.data.groupby("match_id")["g"].nunique().eq(1).all()

    # CEM: Sturges bins of x (R's cut with breaks = k), treated 1, same control formula
    rng = np.random.default_rng(0)
    n = 500
    d2 = pd.DataFrame({"x": rng.uniform(0, 10, n), "s": rng.choice(["u", "v"], n)})
    d2["treated"] = (rng.random(n) < 0.3).astype(int)
    ps2 = PropensityScore.from_logit(d2, "treated", np.zeros(n), ["x", "s"])
    m2 = match(ps2, method="cem")
    k = int(np.ceil(np.log2(n) + 1))  # nclass.Sturges
    br = np.linspace(d2["x"].min(), d2["x"].max(), k + 1)
    dx = d2["x"].max() - d2["x"].min()
    br[0] -= dx / 1000
    br[-1] += dx / 1000
    assert m2.settings["cutpoints"]["x"] == pytest.approx(br.tolist())
    cell = pd.cut(d2["x"], br, right=True).astype(str) + d2["s"]
    nt = d2.groupby(cell)["treated"].sum()
    nc = d2.groupby(cell)["treated"].apply(lambda s: (s == 0).sum())
    ok = nt.index[(nt > 0) & (nc > 0)]
    mt, mc = nt[ok].sum(), nc[ok].sum()
    ctrl = m2.data[m2.data["treated"] == 0]
    expected = (mc / mt) * nt[cell[ctrl.index]].to_numpy() / nc[cell[ctrl.index]].to_numpy()
    np.testing.assert_allclose(ctrl["weight"], expected, rtol=1e-12)
    assert len(m2.data) == int(nt[ok].sum() + nc[ok].sum())


def test_argument_errors(ps_lalonde):
    with pytest.raises(MatchingError, match="order must be one of"):
        match(ps_lalonde, order="biggest")
    with pytest.raises(MatchingError, match="ratio must be a whole number"):
        match(ps_lalonde, ratio=0)
    with pytest.raises(MatchingError, match="caliper_sd must be positive"):
        match(ps_lalonde, caliper_sd=-1)
    with pytest.raises(MatchingError, match="give both delay= and eligible_until="):
        match(ps_lalonde, delay="age")
    with pytest.raises(MatchingError, match="column 'county' is not in the data"):
        match(ps_lalonde, exact=["county"])


def test_summary_and_repr(ps_lalonde):
    m = match(ps_lalonde)
    s = m.summary()
    assert s.loc["All"].tolist() == [185, 429]
    assert s.loc["Matched"].tolist() == [117, 117]
    assert s.loc["Unmatched"].tolist() == [68, 312]
    assert "no control within caliper" in m._repr_html_()
    assert repr(m).startswith("MatchedSample(117 of 185 treated matched to 117 comparison units")
    assert m.unmatched["reason"].eq("no control within caliper").sum() == 68


def test_benchmark_small_run():
    """The benchmark script at a small size: right counts, and the scan is fast."""
    bench = _load(BENCH, "bench_matching")
    res = bench.time_ppeval(n_treated=2_000, n_controls=20_000, repeats=2, seed=1)
    assert res["treated_matched"] > 1_900
    assert res["seconds_best"] < 1.0


@pytest.mark.slow
def test_benchmark_full_size():
    """100,000 treated x 1,000,000 controls, 1:1, caliper 0.2, no replacement: <= 1.5 s."""
    bench = _load(BENCH, "bench_matching")
    res = bench.time_ppeval(n_treated=100_000, n_controls=1_000_000, repeats=3, seed=0)
    assert res["seconds_best"] <= 1.5
