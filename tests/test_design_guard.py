"""Paths that would publish numbers with immortal time are refused (issue 12, first step).

Matching cohort rows without the risk-set rule (``delay``/``eligible_until``) compared served
units, who start at enrolment, with comparison rows that start at their own removal, among
them the served units' own rows before enrolment: on the committed extract that gave a
hazard ratio of 22 with no warning. Exact, CEM and IPW do not follow the rule yet and, on
data simulated with no program effect, found one. Until they do, both are refused with the
reason; the nearest-neighbour path (equal to R, CIs covering the truth) is unchanged.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ppeval import Evaluation
from ppeval.config import Config
from ppeval.errors import ConfigError
from ppeval.matching import MatchingError, match
from ppeval.propensity import propensity

SYNTHETIC = Path(__file__).parents[1] / "data" / "synthetic"


@pytest.fixture(scope="module")
def ev() -> Evaluation:
    return Evaluation.from_toml(SYNTHETIC / "eval.toml")


def test_cohort_rows_without_the_risk_set_rule_are_refused(ev):
    ps = ev.propensity_score
    with pytest.raises(MatchingError, match="delay='index_delay_days'.*as Evaluation.match does"):
        match(ps)
    for method in ("exact", "cem", "ipw"):
        with pytest.raises(MatchingError, match=f"method='{method}' cannot be used on cohort rows yet"):
            match(ps, method=method)
    # the guarded path is the one Evaluation runs, and it still gives its numbers
    m = ev.match()
    assert m.counts["treated_matched"] == ev.matched.counts["treated_matched"] > 0


def test_naive_rows_have_no_delay_and_are_not_guarded(ev):
    """Cohort.naive() (every unit from removal, for demonstrating the bias) has nothing to honour."""
    naive = ev.cohort.naive()
    ps = propensity(naive, "treated", ["age_at_removal", "prior_removals"])
    assert match(ps).counts["treated_matched"] > 0


@pytest.mark.parametrize("method", ["exact", "cem", "ipw"])
def test_config_refuses_methods_that_ignore_time_zero(method):
    with pytest.raises(ConfigError, match=f"matching.method = '{method}' is refused for now.*method = \"nearest\""):
        Config.from_dict({"data": {"extract_date": "2023-12-31"}, "matching": {"method": method}})


def test_prevention_design_is_refused_unless_asked_and_then_marked(tmp_path):
    """The prevention design is biased on its own simulated truth (+0.047 on the 12-month
    removal difference over 20 extracts, coverage 0.85): a real config is refused; with
    allow_unvalidated_design (the synthetic configs set it) every page says not to publish."""
    import json
    import sys

    from ppeval.synthetic import write_synthetic

    sys.path.insert(0, str(Path(__file__).parent / "hardening"))
    from support import run_cli

    base = {"data": {"extract_date": "2023-12-31"}, "cohort": {"design": "prevention"}}
    with pytest.raises(ConfigError, match="prevention.*refused for now.*allow_unvalidated_design = true"):
        Config.from_dict(base)
    Config.from_dict({**base, "cohort": {"design": "prevention", "allow_unvalidated_design": True}})

    d = write_synthetic(tmp_path / "p", n_children=1500, seed=3, design="prevention", canonical=False)
    cfg = (d / "eval.toml").read_text()
    assert "allow_unvalidated_design = true" in cfg
    (d / "real.toml").write_text(cfg.replace("allow_unvalidated_design = true\n", ""))
    status, _, err = run_cli("-q", "report", str(d / "real.toml"), "--out", str(tmp_path / "r"))
    assert status == 2 and "refused for now" in err and not (tmp_path / "r").exists()

    assert run_cli("-q", "report", str(d / "eval.toml"), "--out", str(tmp_path / "ok"))[0] == 0
    res = json.loads((tmp_path / "ok" / "results.json").read_text())
    assert res["design_validated"] is False and res["summary"][0].startswith("NOT VALIDATED")
    for page in ("report.html", "factsheet.html"):
        assert "NOT VALIDATED: the prevention design" in (tmp_path / "ok" / page).read_text()
