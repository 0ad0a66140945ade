"""Ages without birth dates: NCANDS ``ChAge`` read as a birth-date interval, used wherever
only the age matters, and validation that blocks only what the analysis needs.

NCANDS child files as distributed carry the child's age at the report, not a birth date. A
child aged ``a`` on the report date ``d`` was born in ``(d - (a+1) years, d - a years]``;
several reports are intersected; a birth date (``ChBDate``, the AFCARS DOB) wins. The cohort
decides the 18-year rules only when the whole interval lies on one side, leaves out units
whose interval straddles the limit, takes the age covariate at the interval's midpoint and
follows a unit no further than its earliest possible 18th birthday. Every expected number
below is worked out by hand in the comment beside it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import ppeval
from ppeval.cli import main
from ppeval.cohort import build_cohort
from ppeval.extract import Extract
from ppeval.load import load_extract
from ppeval.load.ncands import age_interval, load_ncands
from ppeval.report import age_bands
from ppeval.synthetic import generate, write_synthetic

D = pd.to_datetime
NAT = pd.NaT


# --------------------------------------------------------------------------- the interval
@pytest.mark.parametrize("report", ["2021-02-28", "2020-02-29", "2020-02-28", "2021-03-01", "2019-06-15", "2024-02-29"])
def test_interval_holds_exactly_the_births_of_that_age(report):
    """For every birth day from 1995 to the report and every age: the interval of the age is exactly the
    set of births with that age on the report day (age by the cohort's rule, DateOffset:
    29 February births are a year older on 28 February)."""
    d = pd.Timestamp(report)
    births = pd.Series(pd.date_range("1995-01-01", d))
    ages = pd.Series(-1, index=births.index)
    for a in range(0, 36):
        on = (births + pd.DateOffset(years=a) <= d) & (births + pd.DateOffset(years=a + 1) > d)
        ages[on] = a
    assert (ages >= 0).all()
    dd = np.full(len(births), np.datetime64(d.date(), "D"))
    lo, hi = age_interval(dd, ages.to_numpy(), np.zeros(len(births), bool))
    b = births.to_numpy().astype("datetime64[D]")
    assert ((b >= lo) & (b <= hi)).all()
    for a in range(0, 24):  # tight: both ends are births of that age (ages born wholly after 1995)
        m = (ages == a).to_numpy()
        assert lo[m][0] == b[m].min() and hi[m][0] == b[m].max(), a


def test_missing_or_implausible_ages_give_no_interval():
    d = np.array(["2020-06-15"] * 4 + ["NaT"], dtype="datetime64[D]")
    lo, hi = age_interval(d, np.array([3, 99, -1, 31, 3]), np.array([False, True, False, False, False]))
    assert lo.astype(str).tolist() == ["2016-06-16", "NaT", "NaT", "NaT", "NaT"]
    assert hi.astype(str).tolist() == ["2017-06-15", "NaT", "NaT", "NaT", "NaT"]


# --------------------------------------------------------------------------- the loaders
NCANDS_HEADER = "RptID\tChID\tAFCARSID\tRptDt\tMal1Lev\tChAge\tChBDate\tSubYr\n"
NCANDS_ROWS = (
    # K1: three reports; intervals [2013-03-02, 2014-03-01], [2013-09-02, 2014-09-01],
    # [2013-02-02, 2014-02-01]: intersection [2013-09-02, 2014-02-01]
    "R1\tK1\t\t2019-03-01\t1\t5\t\t2019\n"
    "R2\tK1\t\t2019-09-01\t5\t5\t\t2019\n"
    "R3\tK1\t\t2020-02-01\t5\t6\t\t2020\n"
    # K2: a birth date and an age: the birth date wins, no interval
    "R4\tK2\t\t2019-05-01\t1\t3\t2016-06-06\t2019\n"
    # K3: age 99 (missing) and no birth date: neither
    "R5\tK3\t\t2019-05-02\t1\t99\t\t2019\n"
    # K4: ages that contradict each other: [2016-01-02, 2017-01-01] and [2011-06-02,
    # 2012-06-01] do not meet; the union [2011-06-02, 2017-01-01] and one warning
    "R6\tK4\t\t2019-01-01\t1\t2\t\t2019\n"
    "R7\tK4\t\t2019-06-01\t1\t7\t\t2019\n"
    # a child linked to foster care: its age is AFCARS's business (DOB wins), not a child here
    "R8\tK5\tA1\t2019-07-01\t1\t4\t\t2019\n"
)


def _ncands_dir(tmp_path: Path) -> Path:
    (tmp_path / "CF2019.tab").write_text(NCANDS_HEADER + NCANDS_ROWS)
    return tmp_path


def test_ncands_ages_are_intersected_and_a_birth_date_wins(tmp_path):
    res = load_ncands(["CF2019.tab"], base_dir=_ncands_dir(tmp_path))
    kids = res.frames()["children"].set_index("child_id")
    assert kids.index.tolist() == ["K1", "K2", "K3", "K4"]
    fmt = {c: kids[c].dt.strftime("%Y-%m-%d").fillna("-").tolist() for c in ("birth_date", "birth_date_min", "birth_date_max")}
    assert fmt["birth_date"] == ["-", "2016-06-06", "-", "-"]
    assert fmt["birth_date_min"] == ["2013-09-02", "-", "-", "2011-06-02"]
    assert fmt["birth_date_max"] == ["2014-02-01", "-", "-", "2017-01-01"]
    warn = [p for p in res.problems if p.column == "ChAge"]
    assert len(warn) == 1 and warn[0].severity == "warning"
    assert (warn[0].file, warn[0].row) == ("CF2019.tab", 8)  # K4's latest record (R7 on line 8)
    # a count below 11 is never repeated
    assert "some children's ages" in warn[0].message and "1 children" not in warn[0].message


def test_duckdb_engine_gives_the_same_intervals(tmp_path):
    pytest.importorskip("duckdb")
    from ppeval.load.duckdb_engine import load_ncands_duckdb

    d = _ncands_dir(tmp_path)
    a, b = load_ncands(["CF2019.tab"], base_dir=d), load_ncands_duckdb(["CF2019.tab"], base_dir=d)
    for name in ("children", "reports"):
        pd.testing.assert_frame_equal(a.frames()[name], b.frames()[name], check_exact=True)
    assert [str(p) for p in a.problems] == [str(p) for p in b.problems]


@pytest.fixture(scope="module")
def ages_extracts(tmp_path_factory):
    """The same synthetic extract (in care, 900 children) with and without NCANDS birth dates."""
    root = tmp_path_factory.mktemp("ages")
    with_dates = write_synthetic(root / "bdate", n_children=900, seed=7)
    ages_only = write_synthetic(root / "ages", n_children=900, seed=7, ncands_birth_dates=False)
    return with_dates, ages_only


def test_generator_writes_ages_and_the_intervals_hold_the_true_birth_dates(ages_extracts):
    with_dates, ages_only = ages_extracts
    header = (ages_only / "ncands" / "CF2018.tab").read_text().splitlines()[0].split("\t")
    assert "ChAge" in header and "ChBDate" not in header
    truth = load_extract(with_dates / "eval.toml").canonical("children").set_index("child_id")
    kids = load_extract(ages_only / "eval.toml").canonical("children").set_index("child_id")
    only = kids["birth_date"].isna()
    # every child known only from reports has an interval, and it holds the true birth date
    assert only.sum() > 100 and kids.loc[only, ["birth_date_min", "birth_date_max"]].notna().all().all()
    born = truth.loc[kids.index[only], "birth_date"]
    assert ((kids.loc[only, "birth_date_min"] <= born) & (born <= kids.loc[only, "birth_date_max"])).all()
    width = (kids.loc[only, "birth_date_max"] - kids.loc[only, "birth_date_min"]).dt.days
    assert width.between(0, 365).all()
    # children in care keep the AFCARS DOB
    assert (kids.loc[~only, "birth_date"] == truth.loc[kids.index[~only], "birth_date"]).all()
    # the canonical tables the generator writes are what the preset reads
    canon = pd.read_csv(ages_only / "canonical" / "children.csv", dtype=str).set_index("child_id")
    for col in ("birth_date", "birth_date_min", "birth_date_max"):
        mine = kids[col].dt.strftime("%Y-%m-%d").reindex(canon.index)
        assert canon[col].fillna("-").tolist() == mine.fillna("-").tolist(), col


def test_in_care_cohort_is_unchanged_by_ages_in_place_of_birth_dates(ages_extracts):
    """The in-care units are children in care (AFCARS DOB): the same cohort, to the cell."""
    with_dates, ages_only = ages_extracts
    kw = {"entry_from": "2016-01-01", "entry_to": "2021-12-31"}
    a = build_cohort(load_extract(with_dates / "eval.toml"), **kw)
    b = build_cohort(load_extract(ages_only / "eval.toml"), **kw)
    pd.testing.assert_frame_equal(a.data, b.data, check_exact=True)
    assert b.flow.age_intervals() == {}


# --------------------------------------------------------------------------- 18-year rules
def _interval_children(rows):
    return pd.DataFrame(
        {
            "child_id": [r[0] for r in rows],
            "birth_date": D([r[1] for r in rows]),
            "birth_date_min": D([r[2] for r in rows]),
            "birth_date_max": D([r[3] for r in rows]),
        }
    )


# Index date 2018-06-15 for every child. The 18th birthday rule: under 18 on 2018-06-15 iff
# born after 2000-06-15.
CHILDREN = [
    # A: [2000-06-16, 2001-06-15]: the earliest possible 18th birthday 2018-06-16 is after
    #    the index: under 18 for sure (aged 17 on the index day, an age at that very report)
    ("A", NAT, "2000-06-16", "2001-06-15"),
    # B: [1999-06-16, 2000-06-15]: even the latest birth is 18 on 2018-06-15: 18 for sure
    ("B", NAT, "1999-06-16", "2000-06-15"),
    # C: [2000-06-15, 2001-06-14]: born 2000-06-15 he is 18, born later 17: undecidable
    ("C", NAT, "2000-06-15", "2001-06-14"),
    # E: an exact birth date 2010-01-01 (age 8.45)
    ("E", "2010-01-01", NAT, NAT),
    # F: [2008-06-16, 2009-06-15] (aged 9): wholly under 18, follow-up not shortened
    ("F", NAT, "2008-06-16", "2009-06-15"),
]


def _prevention_extract():
    reports = pd.DataFrame({"child_id": [c[0] for c in CHILDREN], "report_date": D(["2018-06-15"] * len(CHILDREN)),
                            "substantiated": [True] * len(CHILDREN), "report_id": [f"R{c[0]}" for c in CHILDREN]})
    # F is removed on 2019-01-10 (209 days after the report)
    episodes = pd.DataFrame({"child_id": ["F"], "removal_date": D(["2019-01-10"]), "discharge_date": D(["2019-06-01"])})
    return Extract({"children": _interval_children(CHILDREN), "reports": reports, "episodes": episodes}, "2021-12-31")


def _row(cohort, child):
    d = cohort.data[~cohort.data["served_later"]]
    r = d[d["child_id"] == child]
    assert len(r) == 1, child
    return r.iloc[0]


def _step(cohort, fragment):
    f = cohort.flow.to_frame()
    hit = f[f["step"].str.contains(fragment, regex=False)]
    assert len(hit) == 1, fragment
    return hit.iloc[0]


def test_prevention_age_rules_on_intervals_at_the_boundary():
    c = build_cohort(_prevention_extract(), design="prevention", outcomes={"removal": [12]})
    assert sorted(c.data["child_id"]) == ["A", "E", "F"]
    # C (straddling) is left out by the "decided" step, B (18 for sure) by the age step
    decided = _step(c, "decided against 18")
    assert decided["comparison"] == 4  # of A, B, C, E, F only C is undecidable
    assert _step(c, "aged under 18 at report")["comparison"] == 3
    assert c.flow.age_intervals() == {"straddling": 1, "units": 2, "followed_to_earliest_18th_birthday": 1}
    a, e, f = _row(c, "A"), _row(c, "E"), _row(c, "F")
    # age at the midpoint: A's interval spans 364 days, midpoint 2000-06-16 + 182 = 2000-12-15,
    # 6,391 days before 2018-06-15
    assert a["age_at_report"] == pytest.approx(round(6391 / 365.25, 4))
    # its bounds: 17 years (6,209 days, from 2001-06-15) and 18 years less a day (6,573 days,
    # from 2000-06-16)
    assert (a["age_at_report_low"], a["age_at_report_high"]) == (round(6209 / 365.25, 4), round(6573 / 365.25, 4))
    assert e["age_at_report"] == pytest.approx(round(3087 / 365.25, 4))  # 2010-01-01 to 2018-06-15
    assert pd.isna(e["age_at_report_low"]) or e["age_at_report_low"] == e["age_at_report_high"]
    # A is followed until the earliest possible 18th birthday, 2018-06-16: one day, then
    # the birthday competes (status 2) with a removal
    assert a["eligible_until_days"] == 1 and a["removal_days"] == 1 and a["removal_status"] == 2
    # F: removed 209 days after the report, well before any 18th birthday
    assert f["removal_days"] == 209 and f["removal_status"] == 1 and bool(f["removed_12m"])


def test_in_care_age_rule_on_intervals_at_the_boundary():
    kids = [c for c in CHILDREN if c[0] != "F"]
    episodes = pd.DataFrame({
        "child_id": [c[0] for c in kids],
        "removal_date": D(["2018-06-15"] * len(kids)),
        # every child goes home on 2018-12-01 (169 days after removal)
        "discharge_date": D(["2018-12-01"] * len(kids)),
        "discharge_reason": ["reunification"] * len(kids),
    })
    ext = Extract({"children": _interval_children(kids), "episodes": episodes}, "2021-12-31")
    c = build_cohort(ext, outcomes={"reunification": [12]})
    assert sorted(c.data["child_id"]) == ["A", "E"]
    assert _step(c, "decided against 18")["comparison"] == 3  # C left out of A, B, C, E
    assert c.flow.age_intervals()["straddling"] == 1
    a, e = _row(c, "A"), _row(c, "E")
    # A may be an adult from 2018-06-16: the reunification on 2018-12-01 is not counted and
    # A is censored on day 1; E (exact birth date) reunifies on day 169
    assert (a["reunification_days"], a["reunification_status"]) == (1, 0)
    assert (e["reunification_days"], e["reunification_status"]) == (169, 1)


def test_family_unit_carries_the_youngest_age_bounds():
    c = build_cohort(_prevention_extract(), design="prevention", unit="family", outcomes={"removal": [12]})
    a = c.data[c.data["family_id"] == "A"].iloc[0]
    assert a["youngest_age_at_report_low"] == pytest.approx(round(6209 / 365.25, 4))  # 2001-06-15 to 2018-06-15
    assert a["youngest_age_at_report_high"] == pytest.approx(round(6573 / 365.25, 4))  # 2000-06-16 to 2018-06-15


def test_age_subgroup_is_decided_on_the_whole_interval():
    d = pd.DataFrame({"age_at_report": [0.6, 5.5, 11.9, 3.0],
                      "age_at_report_low": [0.2, 5.1, 11.5, 3.0], "age_at_report_high": [0.999, 6.1, 12.4, 3.0]})
    assert age_bands(d, "age_at_report").tolist() == ["under 1", pd.NA, pd.NA, "1 to 5"]


# --------------------------------------------------------------------------- validation
AFCARS = ("RecNumbr\tDOB\tSex\tLatRemDt\tDoDFCDt\tDISREASN\tNeglect\n"
          "A1\t2012-05-01\t2\t2019-01-10\t2019-09-30\t1\t1\n"
          "A2\t\t1\t2019-02-10\t\t\t1\n")  # A2: in care in the window, no DOB: needed


def _preset_config(tmp_path: Path, design: str, ncands: str) -> Path:
    (tmp_path / "FC2019A.tab").write_text(AFCARS)
    (tmp_path / "CF2019.tab").write_text(NCANDS_HEADER + ncands)
    cfg = tmp_path / "eval.toml"
    cfg.write_text(f'[data]\nextract_date = "2021-12-31"\nafcars = ["FC2019A.tab"]\nncands = ["CF2019.tab"]\n'
                   f'[cohort]\ndesign = "{design}"\nentry_from = "2019-01-01"\nentry_to = "2019-12-31"\n'
                   + ("allow_unvalidated_design = true\n" if design == "prevention" else ""))
    return cfg


def test_birth_date_is_required_only_where_the_analysis_needs_it(tmp_path):
    cfg = _preset_config(tmp_path, "in_care", NCANDS_ROWS)
    rep = load_extract(cfg).validate()
    # in care: A2's removal is in the window and A2 has no DOB: an error naming file, row, column
    assert [(p.file, p.row, p.column) for p in rep.errors] == [("FC2019A.tab", 3, "DOB")]
    assert "age cannot be told" in rep.errors[0].message
    # K3 (reports only, neither ChBDate nor ChAge) is never used in care: a warning, counted
    k3 = [p for p in rep.warnings if p.column == "ChBDate"]
    assert [(p.file, p.row) for p in k3] == [("CF2019.tab", 6)] and "not used by the in_care analysis" in k3[0].message
    assert rep.outside_rows == 1
    # K1 and K4 have ages: no problem about a birth date at all
    assert not [p for p in rep.problems if p.row in (2, 3, 4, 7, 8) and p.column in ("ChBDate", "birth_date")]


def test_prevention_needs_an_age_for_a_reported_child(tmp_path):
    cfg = _preset_config(tmp_path, "prevention", NCANDS_ROWS)
    rep = load_extract(cfg).validate()
    # K3 is reported in the window: without a birth date or an age the run cannot decide
    # its age rule: an error at its NCANDS record. A2 has no report: its missing DOB is a warning.
    assert [(p.file, p.row, p.column) for p in rep.errors] == [("CF2019.tab", 6, "ChBDate")]
    assert [(p.file, p.row) for p in rep.warnings if p.column == "DOB"] == [("FC2019A.tab", 3)]
    assert rep.outside_rows == 1


# --------------------------------------------------------------------------- the CLI runs
def _run_report(config: Path, out: Path, capsys) -> dict:
    assert main(["-q", "validate", str(config)]) == 0
    assert main(["-q", "report", str(config), "--out", str(out)]) == 0, capsys.readouterr().err
    return json.loads((out / "results.json").read_text())


def test_in_care_report_runs_on_ages_with_report_only_children_lacking_any_age(ages_extracts, tmp_path, capsys):
    ages_only = Path(shutil.copytree(ages_extracts[1], tmp_path / "copy"))
    # one NCANDS file's report-only children lose their ages as well (99 = missing)
    f = ages_only / "ncands" / "CF2017.tab"
    t = pd.read_csv(f, sep="\t", dtype=str, keep_default_na=False)
    own = t["AFCARSID"] == ""
    t.loc[own, "ChAge"] = "99"
    t.to_csv(f, sep="\t", index=False)
    rep = load_extract(ages_only / "eval.toml").validate()
    assert not rep.has_errors and rep.outside_rows > 0
    res = _run_report(ages_only / "eval.toml", tmp_path / "ic", capsys)
    assert res["outside_analysis"]["rows_with_problems"] == (rep.outside_rows if rep.outside_rows >= 11 else None)
    assert "age_intervals" not in res  # no unit of the in-care cohort is known by an age only
    html = (tmp_path / "ic" / "report.html").read_text()
    assert "are never used by this design, so they were reported as warnings" in html


def test_prevention_report_runs_on_ages_and_says_how_they_were_used(tmp_path, capsys):
    d = write_synthetic(tmp_path / "p", n_children=1500, seed=3, design="prevention", ncands_birth_dates=False, canonical=False)
    res = _run_report(d / "eval.toml", tmp_path / "rep", capsys)
    ages = res["age_intervals"]
    assert ages["units"] >= 11 and ages["straddling"] == 0
    html = (tmp_path / "rep" / "report.html").read_text()
    assert f"Age: {ages['units']:,} units had no birth date, only an age at a maltreatment report" in html
    assert "taken at the interval&#39;s midpoint" in html or "taken at the interval's midpoint" in html


# --------------------------------------------------------------------------- estimates vs truth
def _prevention_effects(d: Path) -> tuple[dict, dict]:
    ev = ppeval.Evaluation.from_toml(d / "eval.toml")
    truth = json.loads((d / "truth.json").read_text())["true_effects"]
    out = {}
    for name, key in (("removal", "removed_12m"), ("recurrence", "recurrence_12m")):
        f = ev.estimates[name].to_frame()
        r = f[(f["measure"] == "risk_difference") & (f["window_months"] == 12)].iloc[0]
        out[key] = (float(r["estimate"]), float(r["ci_low"]), float(r["ci_high"]), float(r["se"]))
    return out, truth


def test_estimates_on_ages_cover_the_truth_like_the_birth_date_version(tmp_path):
    """Prevention extract (4,000 children, the README's seed): with ChAge in place of ChBDate
    the 12-month risk differences still cover the generator's truth, and stay within one
    standard error of the estimates from the birth-date version of the same extract."""
    kw = {"n_children": 4000, "seed": 20240601, "design": "prevention", "canonical": False}
    exact, truth = _prevention_effects(write_synthetic(tmp_path / "b", **kw))
    ages, truth_a = _prevention_effects(write_synthetic(tmp_path / "a", ncands_birth_dates=False, **kw))
    assert {k: v["risk_difference"] for k, v in truth.items() if k in exact} == {
        k: v["risk_difference"] for k, v in truth_a.items() if k in ages}
    for key, (est, lo, hi, se) in ages.items():
        t = truth[key]["risk_difference"]
        assert lo <= t <= hi, (key, est, lo, hi, t)
        assert abs(est - exact[key][0]) < se, (key, est, exact[key][0], se)


@pytest.mark.slow
def test_ages_only_add_no_bias_over_replicates():
    """20 prevention extracts of 3,000 children (seeds 100-119), each written with and without
    NCANDS birth dates: the 12-month risk differences from ages only differ from the
    birth-date ones by less than a quarter of a standard error on average (no bias added by
    the intervals), and their bias against the generator's truth is within 0.02 of the
    birth-date version's.

    Measured (2026-12-02): mean paired difference +0.009 (removal) and +0.004 (recurrence),
    standard errors about 0.056 and 0.072. The birth-date version itself is biased upwards
    here (+0.047 removal, +0.054 recurrence; coverage 0.85 and 0.95), so coverage is compared
    through the bias, not held to 95%: that bias is the prevention estimator's, not the ages'.
    """
    import tempfile

    rows = []
    for seed in range(100, 120):
        for flag in (True, False):
            with tempfile.TemporaryDirectory() as tmp:
                d = write_synthetic(tmp, n_children=3000, seed=seed, design="prevention", ncands_birth_dates=flag,
                                    canonical=False)
                eff, truth = _prevention_effects(d)
            for key, (est, _lo, _hi, se) in eff.items():
                rows.append({"seed": seed, "bdate": flag, "outcome": key, "est": est, "se": se,
                             "err": est - truth[key]["risk_difference"]})
    df = pd.DataFrame(rows)
    for key, g in df.groupby("outcome"):
        a, b = g[~g["bdate"]].set_index("seed"), g[g["bdate"]].set_index("seed")
        diff = (a["est"] - b["est"]).mean()
        assert abs(diff) < 0.25 * b["se"].mean(), (key, diff)
        assert abs(a["err"].mean() - b["err"].mean()) < 0.02, key


def test_generate_option_in_memory():
    syn = generate(400, seed=2, ncands_birth_dates=False)
    assert "ChBDate" not in syn.ncands.columns and syn.truth["ncands_birth_dates"] is False
    assert syn.children["birth_date"].isna().sum() == syn.children["birth_date_min"].notna().sum() > 0


def test_synth_command_writes_ages_only(tmp_path):
    assert main(["-q", "synth", "--out", str(tmp_path / "s"), "--children", "300", "--seed", "4", "--ncands-ages"]) == 0
    header = next((tmp_path / "s" / "ncands").glob("CF*.tab")).read_text().splitlines()[0].split("\t")
    assert "ChAge" in header and "ChBDate" not in header
    assert json.loads((tmp_path / "s" / "truth.json").read_text())["ncands_birth_dates"] is False


def test_an_afcars_child_without_dob_takes_the_age_of_its_linked_reports(tmp_path):
    """A2 has no DOB in AFCARS; its NCANDS report (AFCARSID A2) says aged 6 on 2019-03-01:
    born in [2012-03-02, 2013-03-01]. A1's DOB wins over its report's age (4, which would
    not fit its DOB 2012-05-01). In care, A2 is then no error; both engines agree."""
    rows = NCANDS_ROWS + "R9\tK6\tA2\t2019-03-01\t1\t6\t\t2019\n"
    cfg = _preset_config(tmp_path, "in_care", rows)
    ext = load_extract(cfg)
    kids = ext.canonical("children").set_index("child_id")
    assert [str(kids.loc["A2", c].date()) for c in ("birth_date_min", "birth_date_max")] == ["2012-03-02", "2013-03-01"]
    assert pd.isna(kids.loc["A1", "birth_date_min"]) and str(kids.loc["A1", "birth_date"].date()) == "2012-05-01"
    rep = ext.validate()
    assert not rep.has_errors
    c = build_cohort(ext, entry_from="2019-01-01", entry_to="2019-12-31", outcomes={"reunification": [12]})
    assert sorted(c.data["child_id"]) == ["A1", "A2"] and c.flow.age_intervals()["units"] == 1
    pytest.importorskip("duckdb")
    from ppeval.config import Config

    duck = Config.from_toml(cfg)
    duck["data"]["engine"] = "duckdb"
    other = load_extract(duck)
    for name in ext.tables:
        pd.testing.assert_frame_equal(ext.tables[name], other.tables[name], check_exact=True, obj=name)
