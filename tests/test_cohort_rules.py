"""Hand-built fixtures (a few children each) for every cohort and outcome rule.

Each expected number is worked out by hand in the comment beside it.
"""

from __future__ import annotations

import pandas as pd
import pytest

from ppeval.cohort import build_cohort
from ppeval.extract import Extract
from ppeval.indicators import cfsr_indicators

D = pd.to_datetime


def make_extract(children, episodes, reports=None, participation=None, families=None, extract_date="2021-12-31"):
    tables = {"children": pd.DataFrame(children), "episodes": pd.DataFrame(episodes)}
    for name in ("removal_date", "discharge_date"):
        tables["episodes"][name] = D(tables["episodes"].get(name))
    tables["children"]["birth_date"] = D(tables["children"]["birth_date"])
    if reports is not None:
        tables["reports"] = pd.DataFrame(reports)
        tables["reports"]["report_date"] = D(tables["reports"]["report_date"])
    if participation is not None:
        tables["participation"] = pd.DataFrame(participation)
        tables["participation"]["enrolled_date"] = D(tables["participation"]["enrolled_date"])
    if families is not None:
        tables["families"] = pd.DataFrame(families)
    return Extract(tables, extract_date)


def own(cohort):
    """The cohort's own units: without the served units' before-enrolment (risk-set) rows."""
    return cohort.data[~cohort.data["served_later"]]


def row(cohort, child_id):
    r = own(cohort)[own(cohort)["child_id"] == child_id]
    assert len(r) == 1, f"{child_id} expected once in the cohort, found {len(r)}"
    return r.iloc[0]


def before_enrolment(cohort, child_id):
    """A served unit's comparison row before its own enrolment (risk-set design)."""
    r = cohort.data[cohort.data["served_later"] & (cohort.data["child_id"] == child_id)]
    assert len(r) == 1, f"{child_id} expected once as a before-enrolment row, found {len(r)}"
    return r.iloc[0]


def flow_step(cohort, fragment):
    f = cohort.flow.to_frame()
    hit = f[f["step"].str.contains(fragment, regex=False)]
    assert len(hit) == 1, fragment
    return hit.iloc[0]


def test_eight_day_exclusion_and_open_short_stay_kept():
    ext = make_extract(
        {"child_id": ["a", "b", "c"], "birth_date": ["2015-01-01"] * 3},
        {
            "child_id": ["a", "b", "c"],
            "removal_date": ["2019-01-01", "2019-01-01", "2021-12-28"],
            # a: 7 days (excluded); b: exactly 8 days (kept); c: open, 3 days observed (kept)
            "discharge_date": ["2019-01-08", "2019-01-09", None],
            "discharge_reason": ["reunification", "reunification", None],
        },
    )
    c = build_cohort(ext, entry_from="2019-01-01", entry_to="2021-12-31")
    assert sorted(c.data["child_id"]) == ["b", "c"]
    step = flow_step(c, "stay of 8 days")
    assert (step["treated"], step["comparison"]) == (0, 2)


def test_age_18_exclusion_uses_age_at_removal():
    ext = make_extract(
        {"child_id": ["a", "b"], "birth_date": ["2001-03-01", "2001-03-02"]},
        {"child_id": ["a", "b"], "removal_date": ["2019-03-01", "2019-03-01"], "discharge_date": [None, None]},
    )
    c = build_cohort(ext)
    # a turns 18 on the removal date (excluded); b is one day short of 18 (kept)
    assert c.data["child_id"].tolist() == ["b"]
    assert flow_step(c, "aged under 18")["comparison"] == 1


def test_first_removal_in_the_window_only_and_prior_removals_counted():
    ext = make_extract(
        {"child_id": ["a"], "birth_date": ["2010-01-01"]},
        {
            "child_id": ["a", "a", "a"],
            "removal_date": ["2015-01-01", "2017-01-01", "2018-06-01"],
            "discharge_date": ["2015-06-01", "2017-06-01", "2019-01-01"],
            "discharge_reason": ["reunification", "reunification", "reunification"],
        },
    )
    c = build_cohort(ext, entry_from="2016-01-01", entry_to="2019-12-31")
    r = row(c, "a")
    assert r["removal_date"] == pd.Timestamp("2017-01-01")
    assert r["prior_removals"] == 1  # the 2015 episode
    # the 2018 removal is a re-entry 365 days after the 2017-06-01 reunification
    assert r["reentry_status"] == 1 and r["reentry_days"] == 365
    assert bool(r["reentry_12m"]) is True
    c_all = build_cohort(ext, entry_from="2016-01-01", entry_to="2019-12-31", episode="all")
    assert len(c_all.data) == 2


def test_discharge_on_18th_birthday_is_censored_not_permanency():
    ext = make_extract(
        {"child_id": ["a"], "birth_date": ["2002-05-10"]},
        {"child_id": ["a"], "removal_date": ["2019-05-10"], "discharge_date": ["2020-05-10"], "discharge_reason": ["reunification"]},
    )
    c = build_cohort(ext)
    r = row(c, "a")
    # 18th birthday 2020-05-10 = discharge date: censored at the birthday, 366 days (leap year)
    assert (r["reunification_status"], r["reunification_days"]) == (0, 366)
    assert (r["permanency_status"], r["permanency_days"]) == (0, 366)
    # the 12-month window is observed and no permanency happened before 18
    assert bool(r["reunified_12m"]) is False


def test_censoring_at_extract_date_and_unobserved_window():
    ext = make_extract(
        {"child_id": ["a", "b"], "birth_date": ["2015-01-01", "2015-01-01"]},
        {"child_id": ["a", "b"], "removal_date": ["2021-03-01", "2020-06-01"], "discharge_date": [None, None]},
        extract_date="2021-12-31",
    )
    c = build_cohort(ext)
    a, b = row(c, "a"), row(c, "b")
    assert (a["reunification_status"], a["reunification_days"]) == (0, 305)  # 2021-03-01 -> 2021-12-31
    assert pd.isna(a["reunified_12m"])  # window ends 2022-03-01, after the extract date
    assert bool(b["reunified_12m"]) is False  # 2020-06-01 + 365 days <= extract date
    step = flow_step(c, "reunified_12m: window not yet observed")
    assert (step["kind"], step["comparison"]) == ("window", 1)


def test_competing_exit_is_status_2_not_censored():
    ext = make_extract(
        {"child_id": ["a", "b"], "birth_date": ["2015-01-01", "2015-01-01"]},
        {
            "child_id": ["a", "b"],
            "removal_date": ["2018-01-01", "2018-01-01"],
            "discharge_date": ["2019-01-01", "2018-07-01"],
            "discharge_reason": ["adoption", "relative"],
        },
    )
    c = build_cohort(ext)
    a, b = row(c, "a"), row(c, "b")
    assert (a["reunification_status"], a["reunification_days"]) == (2, 365)
    assert (a["permanency_status"], a["permanency_days"]) == (1, 365)  # adoption is permanency
    assert b["reunification_status"] == 2 and b["permanency_status"] == 1
    # 'relative' added to the reunified set makes b a reunification
    c2 = build_cohort(ext, reunified_reasons=["reunification", "relative"])
    assert row(c2, "b")["reunification_status"] == 1


def test_tpr_event_and_discharge_competing():
    ext = make_extract(
        {"child_id": ["a", "b"], "birth_date": ["2015-01-01", "2015-01-01"]},
        {
            "child_id": ["a", "b"],
            "removal_date": ["2018-01-01", "2018-01-01"],
            "discharge_date": ["2019-12-01", "2018-05-01"],
            "discharge_reason": ["adoption", "reunification"],
            "tpr_mother_date": D(["2018-11-01", None]),
            "tpr_father_date": D(["2018-12-01", None]),
        },
    )
    c = build_cohort(ext)
    a, b = row(c, "a"), row(c, "b")
    assert (a["tpr_status"], a["tpr_days"]) == (1, 304)  # either parent: the mother's, 2018-11-01
    assert bool(a["tpr_24m"]) is True
    assert (b["tpr_status"], b["tpr_days"]) == (2, 120)  # reunified first
    both = build_cohort(ext, tpr_parent="both")
    assert row(both, "a")["tpr_days"] == 334  # 2018-12-01


def test_recurrence_14_day_rule_after_reunification():
    ext = make_extract(
        {"child_id": ["a", "b"], "birth_date": ["2015-01-01", "2015-01-01"]},
        {
            "child_id": ["a", "b"],
            "removal_date": ["2018-01-01", "2018-01-01"],
            "discharge_date": ["2018-06-01", "2018-06-01"],
            "discharge_reason": ["reunification", "reunification"],
        },
        reports={
            "child_id": ["a", "a", "a", "b", "b"],
            "report_date": ["2018-06-10", "2018-06-20", "2018-09-01", "2018-06-10", "2018-06-30"],
            "substantiated": [True, True, True, True, False],
        },
    )
    c = build_cohort(ext)
    a, b = row(c, "a"), row(c, "b")
    # a: 06-10 counts (first after discharge); 06-20 is within 14 days of 06-10 and does not
    assert (a["recurrence_status"], a["recurrence_days"]) == (1, 9)
    assert (b["recurrence_status"], b["recurrence_days"]) == (1, 9)
    ext2 = make_extract(
        {"child_id": ["a"], "birth_date": ["2015-01-01"]},
        {"child_id": ["a"], "removal_date": ["2018-01-01"], "discharge_date": ["2018-06-01"], "discharge_reason": ["reunification"]},
        reports={"child_id": ["a", "a", "a"], "report_date": ["2018-05-25", "2018-06-05", "2018-06-20"], "substantiated": [True, True, True]},
    )
    r = row(build_cohort(ext2), "a")
    # 06-05 is 11 days after 05-25 (same incident); 06-20 is 15 days after 06-05: a recurrence
    assert (r["recurrence_status"], r["recurrence_days"]) == (1, 19)


def test_reentry_only_after_reunification_and_competing_18th_birthday():
    ext = make_extract(
        {"child_id": ["a", "b", "c"], "birth_date": ["2015-01-01", "2015-01-01", "2002-01-01"]},
        {
            "child_id": ["a", "a", "b", "b", "c"],
            "removal_date": ["2018-01-01", "2018-10-01", "2018-01-01", "2018-10-01", "2018-01-01"],
            "discharge_date": ["2018-06-01", None, "2018-06-01", None, "2019-06-01"],
            "discharge_reason": ["reunification", None, "guardianship", None, "reunification"],
        },
    )
    c = build_cohort(ext, entry_from="2018-01-01", entry_to="2018-01-31")
    a, b, cc = row(c, "a"), row(c, "b"), row(c, "c")
    assert (a["reentry_status"], a["reentry_days"]) == (1, 122)
    assert pd.isna(b["reentry_status"]) and pd.isna(b["reentry_12m"])  # not at risk: not reunified
    # c is reunified at 17y5m and turns 18 on 2020-01-01 with no re-entry: competing at day 214
    assert (cc["reentry_status"], cc["reentry_days"]) == (2, 214)
    assert bool(cc["reentry_12m"]) is False


def test_siblings_are_one_family_unit_any_and_all():
    ext = make_extract(
        {"child_id": ["a", "b", "c"], "birth_date": ["2015-01-01", "2017-01-01", "2012-01-01"]},
        {
            "child_id": ["a", "b", "c"],
            "removal_date": ["2018-01-01"] * 3,
            "discharge_date": ["2018-07-01", "2019-01-01", "2018-05-01"],
            "discharge_reason": ["reunification", "reunification", "reunification"],
        },
        participation={"family_id": ["F1"], "enrolled_date": ["2018-01-21"]},
        families={"child_id": ["a", "b", "c"], "family_id": ["F1", "F1", "F2"]},
    )
    child = build_cohort(ext)
    assert child.data.groupby("match_family")["treated"].nunique().max() == 1  # siblings share the arm
    assert row(child, "a")["siblings_in_care"] == 1
    fam_any = build_cohort(ext, unit="family")
    assert len(own(fam_any)) == 2
    f1 = fam_any.data[fam_any.data["family_id"] == "F1"].iloc[0]
    assert f1["treated"] and f1["children_in_care"] == 2 and f1["index_delay_days"] == 20
    assert (f1["reunification_status"], f1["reunification_days"]) == (1, 161)  # a home on 07-01
    fam_all = build_cohort(ext, unit="family", family_outcome="all")
    f1 = fam_all.data[fam_all.data["family_id"] == "F1"].iloc[0]
    assert (f1["reunification_status"], f1["reunification_days"]) == (1, 345)  # b home 2019-01-01


def test_index_dates_without_immortal_time_and_reindex():
    ext = make_extract(
        {"child_id": ["t", "c1", "c2"], "birth_date": ["2015-01-01"] * 3},
        {
            "child_id": ["t", "c1", "c2"],
            "removal_date": ["2018-01-01", "2018-02-01", "2018-02-01"],
            "discharge_date": ["2018-06-01", "2018-02-20", "2018-08-01"],
            "discharge_reason": ["reunification"] * 3,
        },
        participation={"child_id": ["t"], "enrolled_date": ["2018-01-31"]},
    )
    c = build_cohort(ext)
    t, c1, c2 = row(c, "t"), row(c, "c1"), row(c, "c2")
    assert t["treated"] and t["index_delay_days"] == 30 and t["index_date"] == pd.Timestamp("2018-01-31")
    assert t["reunification_days"] == 121  # from enrolment, not from removal (151)
    assert t["delay_band"] == 30
    # c1 left care after 19 days: not eligible for a delay of 30; c2 is (181 > 30)
    assert c1["eligible_until_days"] == 19 and c2["eligible_until_days"] == 181
    moved = c.data[c.data["child_id"] == "c2"].assign(index_delay_days=30)
    re = c.reindex(moved).iloc[0]
    assert re["index_date"] == pd.Timestamp("2018-03-03") and re["reunification_days"] == 151
    naive = c.naive()
    assert naive.loc[naive["child_id"] == "t", "reunification_days"].iloc[0] == 151
    # before its enrolment t was in care and not yet enrolled: a comparison for delays < 30
    tb = before_enrolment(c, "t")
    assert not tb["treated"] and tb["eligible_until_days"] == 30 and tb["match_family"] == "t~before-enrolment"
    assert len(naive) == 3 and not naive["served_later"].any()


def test_prevention_design_family_enrolled_before_removal():
    ext = make_extract(
        {"child_id": ["a", "b", "c"], "birth_date": ["2015-01-01"] * 3},
        {"child_id": ["a", "c"], "removal_date": ["2019-03-01", "2019-01-20"], "discharge_date": [None, None]},
        reports={
            "child_id": ["a", "b", "c"],
            "report_date": ["2019-01-01", "2019-01-05", "2019-01-10"],
            "substantiated": [True, True, True],
        },
        participation={"child_id": ["a", "c"], "enrolled_date": ["2019-01-15", "2019-02-01"]},
    )
    c = build_cohort(ext, design="prevention", enrollment_window_days=60)
    a = row(c, "a")
    # a: enrolled 14 days after the report and before the removal on 2019-03-01: treated
    assert a["treated"] and a["index_delay_days"] == 14
    assert (a["removal_status"], a["removal_days"]) == (1, 45)
    b = row(c, "b")
    assert not b["treated"] and b["removal_status"] == 0
    # c was removed (01-20) before enrolling (02-01): not a prevention-treated unit
    assert "c" not in set(c.data["child_id"])
    # before enrolling (day 14) a was an unserved family at home: a comparison for delays < 14
    assert before_enrolment(c, "a")["eligible_until_days"] == 14
    assert flow_step(c, "enrolled before any removal")["treated"] == 1


def test_cfsr_indicators_by_year_and_arm():
    ext = make_extract(
        {"child_id": list("abcd"), "birth_date": ["2015-01-01"] * 4},
        {
            "child_id": ["a", "b", "c", "d", "a"],
            "removal_date": ["2018-01-01", "2018-02-01", "2018-03-01", "2018-04-01", "2018-09-01"],
            "discharge_date": ["2018-06-01", "2019-06-01", "2018-05-01", "2018-04-03", None],
            "discharge_reason": ["reunification", "reunification", "guardianship", "reunification", None],
        },
        participation={"child_id": ["a"], "enrolled_date": ["2018-01-10"]},
    )
    tab = cfsr_indicators(ext).set_index(["indicator", "year", "arm"])
    p1 = tab.loc[("P1 permanency in 12 months (entries)", 2018)]
    # d is under 8 days (excluded); a (first 2018 entry), b (18 months: no), c (yes)
    assert (p1.loc["all", "denominator"], p1.loc["all", "numerator"]) == (3, 2)
    assert (p1.loc["served", "denominator"], p1.loc["served", "numerator"]) == (1, 1)
    p4 = tab.loc[("P4 re-entry within 12 months", 2018)]
    assert (p4.loc["all", "denominator"], p4.loc["all", "numerator"]) == (2, 1)  # a re-entered
    assert (tab["note"] == "observed (not risk-standardised)").all()


@pytest.mark.parametrize("bad", [{"design": "foster"}, {"unit": "household"}])
def test_bad_design_or_unit_is_a_config_error(bad):
    from ppeval.errors import ConfigError

    ext = make_extract({"child_id": ["a"], "birth_date": ["2015-01-01"]}, {"child_id": ["a"], "removal_date": ["2019-01-01"]})
    with pytest.raises(ConfigError):
        build_cohort(ext, **bad)


def test_sibling_of_a_served_child_is_a_comparison_only_before_the_enrolment():
    ext = make_extract(
        {"child_id": ["a", "b", "c"], "birth_date": ["2015-01-01"] * 3},
        {
            "child_id": ["a", "b", "c"],
            # b was home again before the family enrolled during a's later episode
            "removal_date": ["2018-06-01", "2018-01-01", "2018-01-01"],
            "discharge_date": ["2019-01-01", "2018-03-01", "2018-09-01"],
            "discharge_reason": ["reunification"] * 3,
        },
        participation={"family_id": ["F1"], "enrolled_date": ["2018-07-01"]},
        families={"child_id": ["a", "b", "c"], "family_id": ["F1", "F1", "F2"]},
    )
    c = build_cohort(ext)
    # a is served (index 30 days after its removal) and also stands in as a comparison before
    # its enrolment; b was in care, not yet enrolled, for its 59 days: a comparison then
    assert sorted(c.data["child_id"]) == ["a", "a", "b", "c"]
    a, b = row(c, "a"), row(c, "b")
    assert a["treated"] and a["index_delay_days"] == 30 and a["match_family"] == "F1"
    assert not b["treated"] and b["eligible_until_days"] == 59 and not b["served_later"]
    # siblings share an arm and a match: b is matched with a's before-enrolment row, never with a
    assert b["match_family"] == before_enrolment(c, "a")["match_family"] == "F1~before-enrolment"
    assert c.data.groupby("match_family")["treated"].nunique().max() == 1
    step = c.flow.to_frame().set_index("step")
    assert step.filter(like="siblings of served units", axis=0)["comparison"].tolist() == [1]
    assert c.summary().set_index(["outcome", "arm"]).loc[("reunification", "comparison"), "at_risk"] == 2  # b and c
    # the flawed design that takes comparisons only from families that never enrol drops b
    never = build_cohort(ext, risk_set=False)
    assert sorted(never.data["child_id"]) == ["a", "c"]
    assert flow_step(never, "no sibling in the cohort served")["comparison"] == 1


def test_sibling_of_a_served_child_blocks_its_family_only_while_in_care():
    """Matching at family level: the before-enrolment block is eligible while every child in it is."""
    from ppeval.matching import match
    from ppeval.propensity import PropensityScore

    ext = make_extract(
        {"child_id": ["a", "b", "t", "x", "y"], "birth_date": ["2015-01-01"] * 5},
        {
            "child_id": ["a", "b", "t", "x", "y"],
            # F1: b home on day 20, the family enrols on day 60 (a in care);
            # F2: t enrols on day 25; F3 never enrols: x home on day 30, y on day 200
            "removal_date": ["2018-01-01"] * 5,
            "discharge_date": ["2018-06-30", "2018-01-21", "2018-12-01", "2018-01-31", "2018-07-20"],
            "discharge_reason": ["reunification"] * 5,
        },
        participation={"family_id": ["F1", "F2"], "enrolled_date": ["2018-03-02", "2018-01-26"]},
        families={"child_id": ["a", "b", "t", "x", "y"], "family_id": ["F1", "F1", "F2", "F3", "F3"]},
    )
    c = build_cohort(ext)
    assert row(c, "b")["eligible_until_days"] == 20 and before_enrolment(c, "a")["eligible_until_days"] == 60
    ps = PropensityScore.from_logit(c.data, "treated", pd.Series(0.0, index=c.data.index), [])
    m = match(ps, caliper_sd=None, cluster="match_family", delay="index_delay_days",
              eligible_until="eligible_until_days", reindex=c.reindex)
    d = m.data.set_index("child_id")
    # t (delay 25): F1's before-enrolment block {a, b} is out since b left on day 20; F3 is in
    assert d.loc["t", "match_id"] == d.loc["x", "match_id"] == d.loc["y", "match_id"]
    assert (d.loc[["x", "y"], "index_delay_days"] == 25).all() and "b" not in d.index
    # a (delay 60): F3 left the risk set on day 30 (x home), F2 before its enrolment on day 25
    assert m.unmatched.index.tolist() == [c.data.index[(c.data["child_id"] == "a") & c.data["treated"]][0]]


def test_family_unit_counts_only_children_in_care_at_the_index():
    ext = make_extract(
        {"child_id": ["a", "x", "y"], "birth_date": ["2015-01-01"] * 3},
        {
            "child_id": ["a", "x", "y"],
            "removal_date": ["2018-01-01"] * 3,
            # x went home on day 10, y on day 200; F1 enrols on day 30
            "discharge_date": ["2018-06-01", "2018-01-11", "2018-07-20"],
            "discharge_reason": ["reunification"] * 3,
        },
        participation={"family_id": ["F1"], "enrolled_date": ["2018-01-31"]},
        families={"child_id": ["a", "x", "y"], "family_id": ["F1", "F2", "F2"]},
    )
    c = build_cohort(ext, unit="family")
    f2 = c.data[c.data["family_id"] == "F2"]
    assert f2["eligible_until_days"].iloc[0] == 200  # a family is at risk while a child is in care
    assert (f2["reunification_status"].iloc[0], f2["reunification_days"].iloc[0]) == (1, 10)  # x, from removal
    # at a pseudo-index of 30 days only y is still in care: reunified 170 days later, not on day 0
    r = c.reindex(f2.assign(index_delay_days=30)).iloc[0]
    assert (r["reunification_status"], r["reunification_days"]) == (1, 170)
    all_rule = build_cohort(ext, unit="family", family_outcome="all")
    f2 = all_rule.data[all_rule.data["family_id"] == "F2"]
    r = all_rule.reindex(f2.assign(index_delay_days=30)).iloc[0]
    assert (r["reunification_status"], r["reunification_days"]) == (1, 170)
