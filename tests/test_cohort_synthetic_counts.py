"""On the committed synthetic extract, the cohort's counts equal the generator's own counts.

The generator (``ppeval.synthetic``) counts, with its own code and from its own simulated
episodes, the children in the default cohort by arm, their reunifications, TPRs within 24
months of removal and re-entries within 12 months of a reunification (``truth.json``:
``counts``, defined in ``definitions.counts``). The cohort here is built from the AFCARS and
NCANDS files through the presets, so the comparison also covers loading.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

import ppeval

DATA = Path(__file__).resolve().parents[1] / "data" / "synthetic"


@pytest.fixture(scope="module")
def truth():
    return json.loads((DATA / "truth.json").read_text())


@pytest.fixture(scope="module")
def cohort():
    ext = ppeval.load_extract(DATA / "eval.toml")
    assert not ext.validate().has_errors
    # the generator's comparison arm is "every other cohort unit": keep units whose family was
    # served before the removal, which the default cohort leaves out of the comparison pool
    return ppeval.build_cohort(ext, entry_from="2016-01-01", entry_to="2021-12-31", exclude_served_elsewhere=False)


def _arms(cohort):
    d = cohort.data[~cohort.data["served_later"]]
    return {"treated": d[d["treated"]], "comparison": d[~d["treated"]]}


def test_children_and_families_by_arm(cohort, truth):
    for arm, d in _arms(cohort).items():
        assert len(d) == truth["counts"][arm]["children"], arm
        assert d["family_id"].nunique() == truth["counts"][arm]["families"], arm


def test_outcome_counts_by_arm(cohort, truth):
    for arm, d in _arms(cohort).items():
        expected = truth["counts"][arm]
        assert int((d["discharge_reason"] == "reunification").sum()) == expected["reunifications"], arm
        tpr = d["_tpr_date"] <= d["removal_date"] + pd.Timedelta(days=730)
        assert int(tpr.sum()) == expected["tpr_within_24m_of_removal"], arm
        reentry = (d["reentry_status"] == 1) & (d["reentry_days"] <= 365)
        assert int(reentry.sum()) == expected["reentries_within_12m_of_reunification"], arm


def test_default_cohort_drops_only_the_families_served_before_removal(cohort, truth):
    ext = ppeval.load_extract(DATA / "eval.toml")
    default = ppeval.build_cohort(ext, entry_from="2016-01-01", entry_to="2021-12-31")
    assert default.n_treated == truth["counts"]["treated"]["children"]
    dropped = truth["counts"]["comparison"]["family_enrolled_before_this_removal"]
    assert default.n_comparison == truth["counts"]["comparison"]["children"] - dropped
