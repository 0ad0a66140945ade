"""Index dates without immortal time: a program with NO effect must show no effect.

The synthetic generator is run with every program effect switched off (hazard ratios 1, no
dose effect), so served and unserved children have the same reunification hazard at every
point in care, given their covariates. Every removal of a family is a referral: the family
is offered the program some days later if a child is still in care, and enrols at the first
offer it accepts. Half of the families offered enrol here (``uptake`` 0.5 instead of the
default 0.22), so that about 8,700 served children give the test its power.

* With ppeval's design (treated units start at enrolment; each comparison unit starts at the
  same delay after its own removal, must still be in care then, and must not be enrolled
  *yet*), the estimated effect on reunification is null: the 95% CIs of the hazard ratio and
  of the 12-month risk difference cover the truth (1 and 0).
* The naive design that starts everyone at removal credits the treated with the days before
  enrolment, in which they could not leave care (immortal time), and shows a spurious,
  clearly significant effect.

What makes the first point hold (each was a cause of a spurious effect): served units stand
in as comparisons before their own enrolment and so do their siblings who went home before
it (comparisons are the units *not yet* enrolled, not those that never enrol: that would
condition on the future); treated units are matched in order of their delay (in score
order, a treated unit with a long delay can use up the comparison units that stay in care
long and leave quick leavers to the short delays); and the simulated world gives every
episode, first or not, the same outcome model and the same chance to be served.

Across seeds 1-12 of this world the matched CIs cover the null for all 12 (mean log hazard
ratio +0.008, mean risk difference +0.002) and the naive design is biased for all 12
(hazard ratio 0.77-0.85, p < 0.001); the test uses seed 11. With the default uptake and
30,000 children the matched CIs cover the null for 18 of seeds 1-20, but the naive bias
(hazard ratio about 0.86) is significant at 1% for only 8: hence the larger world.
"""

from __future__ import annotations

import numpy as np
import pytest

from ppeval.cohort import build_cohort
from ppeval.estimate import estimate
from ppeval.extract import Extract
from ppeval.matching import match
from ppeval.propensity import propensity
from ppeval.synthetic import generate

NO_EFFECT = {"reunification_hr": 1.0, "tpr_hr": 1.0, "reentry_hr": 1.0, "recurrence_hr": 1.0, "dose_slope": 0.0,
             "uptake": 0.5}
COVARIATES = ["age_at_removal", "removal_parent_drugs", "removal_neglect", "county", "entry_year"]
SETTINGS = {"entry_from": "2016-01-01", "entry_to": "2021-12-31", "outcomes": {"reunification": [12]}}


@pytest.fixture(scope="module")
def extract():
    syn = generate(60_000, seed=11, effects=NO_EFFECT)
    tables = {k: getattr(syn, k) for k in ("children", "episodes", "reports", "participation", "families")}
    return Extract(tables, syn.extract_date)


@pytest.fixture(scope="module")
def cohort(extract):
    return build_cohort(extract, **SETTINGS)


def _match(data, cohort, immortal_time_safe: bool):
    ps = propensity(data, "treated", COVARIATES, categorical=["county", "entry_year"])
    kwargs = {}
    if immortal_time_safe:
        kwargs = {"delay": "index_delay_days", "eligible_until": "eligible_until_days", "reindex": cohort.reindex}
    return match(ps, caliper_sd=0.2, exact=["entry_year"], cluster="match_family", **kwargs)


def _effects(m):
    res = estimate(m, outcome="reunification")
    return res["hazard_ratio"], res["risk_difference", 12]


@pytest.fixture(scope="module")
def matched(cohort):
    return _match(cohort.data, cohort, immortal_time_safe=True)


def test_program_without_effect_is_null_only_without_immortal_time(cohort, matched):
    assert cohort.n_treated > 8000  # enough served children for the naive bias to show

    hr, rd = _effects(matched)
    assert hr.ci_low < 1 < hr.ci_high, hr
    assert rd.ci_low < 0 < rd.ci_high, rd
    assert abs(rd.estimate) < 0.03

    naive = cohort.naive()
    hr_naive, rd_naive = _effects(_match(naive, cohort, immortal_time_safe=False))
    # treated children cannot leave care before enrolment: the naive design makes the
    # program look harmful to reunification although it does nothing
    assert hr_naive.ci_high < 1, hr_naive
    assert rd_naive.ci_high < 0, rd_naive
    assert hr_naive.p_value < 0.01


def test_matched_comparison_units_were_in_care_at_their_pseudo_index(matched):
    d = matched.data
    comp = d[~d["treated"].astype(bool)]
    assert (comp["eligible_until_days"] > comp["index_delay_days"]).all()
    assert (comp["index_date"] == comp["anchor_date"] + comp["index_delay_days"].astype("timedelta64[D]")).all()
    # a served unit used as a comparison was not yet enrolled at its pseudo-index
    later = comp[comp["served_later"].astype(bool)]
    assert len(later) > 500
    enrolled = d.loc[d["treated"].astype(bool)].set_index("unit_id")["index_delay_days"]
    own = later["unit_id"].str.replace("~before-enrolment", "", regex=False)
    own_delay = enrolled.reindex(own).to_numpy(dtype=float)
    known = ~np.isnan(own_delay)  # the served unit's own row may be unmatched (not in d)
    assert known.sum() > 500 and (later["index_delay_days"].to_numpy()[known] < own_delay[known]).all()
    # every comparison unit in a matched set starts at its treated family's delay (the largest
    # delay among the served siblings in the set)
    t_delay = d[d["treated"].astype(bool)].groupby("match_id")["index_delay_days"].max()
    assert (comp["index_delay_days"].to_numpy() == comp["match_id"].map(t_delay).to_numpy()).all()
