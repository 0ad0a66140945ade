"""Matching on the committed synthetic extract: balance and sibling blocks.

The whole pipeline as configured in ``data/synthetic/eval.toml`` (logistic propensity score,
1:1 nearest neighbour on the logit, caliper 0.2 SD, exact on entry year and prior removals,
siblings matched as blocks, risk-set eligibility at the enrolment delay).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

import ppeval

DATA = Path(__file__).resolve().parents[1] / "data" / "synthetic"


@pytest.fixture(scope="module")
def ev():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        e = ppeval.Evaluation.from_toml(DATA / "eval.toml")
        e.balance  # noqa: B018 - computes the stages once for the module
    return e


def test_balance_after_matching_in_matchit_convention(ev):
    """The committed specification does not balance every covariate in MatchIt's convention
    (binary covariates standardized by the treated SD): four levels stay at or above 0.1,
    the largest a county at 0.279. In cobalt's raw convention the same sample looked
    balanced (largest 0.058), which is what the report used to say. The verdict, and the
    sentence saying what it means, follow the standardized number."""
    from ppeval.balance import balance

    bal = ev.balance
    table = bal.table
    assert bal.binary == "std" and bal.max_abs_smd_before > 0.1  # there was something to fix
    worst = table.loc[table["smd_after"].abs().idxmax()]
    assert worst["covariate"] == "county_19155" and abs(worst["smd_after"]) == pytest.approx(0.279, abs=5e-4)
    assert not bal.passed and int((~bal.verdict["smd_ok"]).sum()) == 4
    assert bal.explain().startswith("Not balanced: 4 covariate rows differ by 0.1 SD or more after matching")
    raw = balance(ev.matched, covariates=ev.covariates, binary="raw")
    assert raw.passed and raw.max_abs_smd_after == pytest.approx(0.058, abs=5e-4)
    assert ev.matched.counts["treated_matched"] >= 0.9 * ev.cohort.n_treated


def test_no_sibling_group_is_split(ev):
    d = ev.matched.data
    # every sibling block (a family, or its rows from before enrolment) sits in one matched set and one arm
    assert (d.groupby("match_family")["match_id"].nunique() == 1).all()
    assert (d.groupby("match_family")["treated"].nunique() == 1).all()
    # siblings removed together and matched as the same block are never spread over sets
    own = d[~d["served_later"]]
    by_removal = own.groupby(["family_id", "anchor_date"])
    assert (by_removal["match_id"].nunique() == 1).all()
    assert (by_removal["treated"].nunique() == 1).all()


def test_comparison_units_were_eligible_at_their_index(ev):
    d = ev.matched.data
    comp = d[~d["treated"].astype(bool)]
    assert (comp["eligible_until_days"] > comp["index_delay_days"]).all()
