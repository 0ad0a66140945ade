"""Index dates without immortal time: a program with NO effect must show no effect.

The synthetic generator is run with every program effect switched off (hazard ratios 1, no
dose effect), so served and unserved children have the same reunification hazard at every
point in care, given their covariates. Enrolment happens some days after removal, and only
for families whose children are still in care then.

* With ppeval's design (treated units start at enrolment; each comparison unit starts at the
  same delay after its own removal and must still be in care then), the estimated effect on
  reunification is null: the 95% CIs of the hazard ratio and of the 12-month risk difference
  cover the truth (1 and 0).
* The naive design that starts everyone at removal credits the treated with the days before
  enrolment, in which they could not leave care (immortal time), and shows a spurious,
  clearly significant effect.
"""

from __future__ import annotations

import pytest

from ppeval.cohort import build_cohort
from ppeval.estimate import estimate
from ppeval.extract import Extract
from ppeval.matching import match
from ppeval.propensity import propensity
from ppeval.synthetic import generate

NO_EFFECT = {"reunification_hr": 1.0, "tpr_hr": 1.0, "reentry_hr": 1.0, "recurrence_hr": 1.0, "dose_slope": 0.0}
COVARIATES = ["age_at_removal", "removal_parent_drugs", "removal_neglect", "county", "entry_year"]


@pytest.fixture(scope="module")
def cohort():
    syn = generate(30_000, seed=11, effects=NO_EFFECT)
    tables = {k: getattr(syn, k) for k in ("children", "episodes", "reports", "participation", "families")}
    ext = Extract(tables, syn.extract_date)
    return build_cohort(ext, entry_from="2016-01-01", entry_to="2021-12-31", outcomes={"reunification": [12]})


def _effects(data, cohort, immortal_time_safe: bool):
    ps = propensity(data, "treated", COVARIATES, categorical=["county", "entry_year"])
    kwargs = {}
    if immortal_time_safe:
        kwargs = {"delay": "index_delay_days", "eligible_until": "eligible_until_days", "reindex": cohort.reindex}
    m = match(ps, caliper_sd=0.2, exact=["entry_year"], cluster="match_family", **kwargs)
    res = estimate(m, outcome="reunification")
    return res["hazard_ratio"], res["risk_difference", 12]


def test_program_without_effect_is_null_only_without_immortal_time(cohort):
    assert cohort.n_treated > 800  # enough served children for the naive bias to show

    hr, rd = _effects(cohort.data, cohort, immortal_time_safe=True)
    assert hr.ci_low < 1 < hr.ci_high, hr
    assert rd.ci_low < 0 < rd.ci_high, rd
    assert abs(rd.estimate) < 0.05

    naive = cohort.naive()
    hr_naive, rd_naive = _effects(naive, cohort, immortal_time_safe=False)
    # treated children cannot leave care before enrolment: the naive design makes the
    # program look harmful to reunification although it does nothing
    assert hr_naive.ci_high < 1, hr_naive
    assert rd_naive.ci_high < 0, rd_naive
    assert hr_naive.p_value < 0.01


def test_matched_comparison_units_were_in_care_at_their_pseudo_index(cohort):
    ps = propensity(cohort.data, "treated", COVARIATES, categorical=["county", "entry_year"])
    m = match(ps, caliper_sd=0.2, exact=["entry_year"], cluster="match_family", delay="index_delay_days",
              eligible_until="eligible_until_days", reindex=cohort.reindex)
    d = m.data
    comp = d[~d["treated"].astype(bool)]
    assert (comp["eligible_until_days"] > comp["index_delay_days"]).all()
    assert (comp["index_date"] == comp["anchor_date"] + comp["index_delay_days"].astype("timedelta64[D]")).all()
    # every treated unit's matched set has comparison units at the same delay
    by_set = d.groupby("match_id")["index_delay_days"].nunique()
    assert (by_set == 1).all()
