"""The report's wording rules (src/ppeval/report/wording.py), one test per rule.

Rows are built by hand where the effect is null, significant, and where the hazard ratio
and the window risks disagree; the committed extract (data/synthetic/eval.toml, matched in
sibling blocks, some comparison children served later, a subgroup level with a zero
variance) checks the rendered pages.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ppeval.estimate.results import Effect, EffectResults
from ppeval.report.content import OutcomeRow, Phrases
from ppeval.report.wording import (
    cannot_tell,
    days_caption,
    finding_sentence,
    hr_window_sentence,
    rate_caption,
    rosenbaum_sentence,
)

ROOT = Path(__file__).resolve().parents[1]
PH = Phrases.for_unit("child", "program")
#: every sentence comparing the arms carries its own p-value and verdict
SIGNIFICANCE = re.compile(r"p (=|<) [0-9.]+\)?.*statistically significant|statistically significant.*p (=|<) [0-9.]+")


def _row(outcome, window, rt, rc, est, lo, hi, p):
    rd = {"estimate": est, "ci_low": lo, "ci_high": hi, "p_value": p, "method": "lpm"}
    return OutcomeRow(outcome, window, f"{outcome} {window}", 200, 210, int(200 * rt), int(210 * rc), rt, rc,
                      {"risk_difference": rd})


NULL = _row("tpr", 24, 0.22, 0.29, -0.07, -0.194, 0.065, 0.329)
SIGNIFICANT = _row("reunification", 12, 0.52, 0.38, 0.14, 0.05, 0.23, 0.002)
HARMFUL = _row("reentry", 12, 0.30, 0.18, 0.12, 0.03, 0.21, 0.01)
DAYS_NULL = {"window_months": 12, "suppressed": False, "mean_treated": 250.4, "mean_comparison": 245.2,
             "difference": 5.2, "ci_low": -32.1, "ci_high": 42.5, "p_value": 0.79}
DAYS_SIG = {**DAYS_NULL, "mean_treated": 200.0, "difference": -45.2, "ci_low": -80.0, "ci_high": -10.4, "p_value": 0.011}


def test_a_null_difference_says_the_data_cannot_tell_with_the_range():
    for text in (finding_sentence(NULL, PH), rate_caption(NULL, PH)):
        assert "the data cannot tell whether the program changes this" in text
        assert "between 19.4 fewer and 6.5 more per 100 children" in text
        assert "not statistically significant" in text
        assert "about as often" not in text and "no difference" not in text
        assert "more often" not in text and "less often" not in text
    # both rates are still given, each with its arm
    assert "22% of children of parents served by the program" in finding_sentence(NULL, PH)
    assert "22% vs 29% (served vs comparison)" in rate_caption(NULL, PH)


def test_a_significant_difference_gives_direction_size_and_p():
    f = finding_sentence(SIGNIFICANT, PH)
    assert "14.0 more per 100 children (95% CI 5.0 to 23.0 more; p = 0.002)" in f
    assert f.endswith("a statistically significant improvement.")
    assert "cannot tell" not in f
    cap = rate_caption(SIGNIFICANT, PH)
    assert cap.startswith("Children of parents served by the program returned home more often than matched comparison children")
    assert cap.endswith("(p = 0.002, statistically significant)")
    # a rise of an outcome where fewer is better is not called an improvement
    assert finding_sentence(HARMFUL, PH).endswith("a statistically significant difference in the unfavourable direction.")


def test_every_comparison_sentence_carries_its_own_significance():
    hr = {"estimate": 0.51, "ci_low": 0.30, "ci_high": 0.87, "p_value": 0.013}
    removal = _row("removal", 12, 0.10, 0.13, -0.03, -0.08, 0.02, 0.24)
    texts = [finding_sentence(r, PH) for r in (NULL, SIGNIFICANT, HARMFUL)]
    texts += [rate_caption(r, PH) for r in (NULL, SIGNIFICANT, HARMFUL)]
    texts += [days_caption(d, PH) for d in (DAYS_NULL, DAYS_SIG)]
    texts.append(hr_window_sentence("Removed from home", hr, removal))
    for t in texts:
        assert SIGNIFICANCE.search(t), t


def test_days_caption_claims_no_direction_at_p_079():
    cap = days_caption(DAYS_NULL, PH)
    assert "250 vs 245 days on average" in cap
    assert "spent more days" not in cap and "spent fewer days" not in cap
    assert "between 32 days fewer and 42 days more" in cap and "p = 0.790, not statistically significant" in cap
    sig = days_caption(DAYS_SIG, PH)
    assert "spent fewer days in out-of-home care in the first 12 months: 200 vs 245 days on average" in sig
    assert sig.endswith("(p = 0.011, statistically significant)")


def test_hazard_ratio_and_window_disagreeing_are_explained():
    """A removal HR of 0.51 (0.30 to 0.87) beside a 12-month difference that is not
    significant: a sentence says why (whole follow-up; effects building up after the window)."""
    hr = {"estimate": 0.51, "ci_low": 0.30, "ci_high": 0.87, "p_value": 0.013}
    removal = _row("removal", 12, 0.10, 0.13, -0.03, -0.08, 0.02, 0.24)
    text = hr_window_sentence("Removed from home", hr, removal)
    assert text.startswith("Over the whole follow-up, the hazard ratio (removed from home) is 0.51 (95% CI 0.30 to 0.87; "
                           "p = 0.013, statistically significant), unlike the 12-month difference (p = 0.240, not statistically significant)")
    assert "builds up after the window" in text and "whole follow-up" in text
    # the other way round: a window effect that fades
    sig_window = _row("removal", 12, 0.05, 0.13, -0.08, -0.13, -0.03, 0.003)
    other = hr_window_sentence("Removed from home", {**hr, "ci_high": 1.3, "p_value": 0.2}, sig_window)
    assert "concentrated in the first 12 months" in other
    # agreement: nothing to explain
    assert hr_window_sentence("Removed from home", {**hr, "p_value": 0.3}, removal) is None


def test_summary_puts_the_explanation_after_the_finding():
    from ppeval.report import _summary

    removal = _row("removal", 12, 0.10, 0.13, -0.03, -0.08, 0.02, 0.24)
    hr = Effect("hazard_ratio", 0.51, 0.27, 0.30, 0.87, 0.013, "Cox", outcome="removal")
    est = {"removal": EffectResults("removal", [hr])}
    summary = _summary([removal], est, Phrases.for_unit("child", "program"))
    assert len(summary) == 2
    assert "cannot tell" in summary[0] and "builds up after the window" in summary[1]


def test_rosenbaum_words_never_contradict_the_headline():
    rb = {"suppressed": False, "design": "matched sets", "gamma_critical": 1.0, "p_value_no_hidden_bias": 0.09,
          "informative_sets": {"sets": 56, "n_treated": 91, "n_comparison": 111}}
    significant_headline = rosenbaum_sentence(rb, 0.0004, 11)
    assert "not significant at the 5% level even without hidden bias" not in significant_headline
    assert "no conclusion for hidden bias to overturn" not in significant_headline
    assert "although the headline difference is statistically significant" in significant_headline
    assert "56 matched sets" in significant_headline and "1:1" not in significant_headline
    null_headline = rosenbaum_sentence(rb, 0.4, 11)
    assert "no conclusion for hidden bias to overturn" in null_headline
    holds = rosenbaum_sentence({**rb, "gamma_critical": 1.62, "p_value_no_hidden_bias": 0.001}, 0.0004, 11)
    assert "unless hidden bias changes the odds of enrolment within a matched set by a factor of Γ = 1.62" in holds
    pairs = rosenbaum_sentence({**rb, "design": "1:1 pairs", "gamma_critical": 1.62}, 0.0004, 11)
    assert "within a pair" in pairs
    # a small count: the numbers are withheld and no count is printed
    small = rosenbaum_sentence({**rb, "informative_sets": {"sets": 6, "n_treated": 6, "n_comparison": 9}}, 0.0004, 11)
    assert not re.search(r"\b[1-9]\b matched sets", small)


def test_cannot_tell_uses_decimals_not_bare_counts():
    """Differences per 100 are printed with a decimal, so no bare integer from 1 to 10
    (which the report's count check would take for a small count) appears."""
    text = cannot_tell("the program changes this", -0.05, 0.031, 0.5, per="children")
    assert "between 5.0 fewer and 3.1 more per 100 children" in text


def test_design_words_pairs_and_sets():
    from ppeval.report import _design_words

    pairs = pd.DataFrame({"match_id": [1, 1, 2, 2], "treated": [True, False, True, False], "served_later": [False] * 4})
    w = _design_words(pairs, "child")
    assert w["matched_with"] == "were each paired with"
    assert w["comparison"] == "similar children not yet served at that point"
    sets = pd.DataFrame({"match_id": [1, 1, 1, 2, 2], "treated": [True, False, False, True, False],
                         "served_later": [False, True, False, False, False]})
    w = _design_words(sets, "family")
    assert "each paired" not in w["matched_with"] and "matched sets" in w["matched_with"]
    assert w["comparison"] == "similar families not yet served at that point, some of whom were served later"


def test_subgroup_level_with_zero_variance_has_no_warning():
    """The source of "RuntimeWarning: invalid value encountered in sqrt": a level whose
    combined variance is 0 up to rounding (-3e-17). Its SE is now NaN, without a warning."""
    import importlib

    sg = importlib.import_module("ppeval.estimate.subgroups")
    params = pd.Series([0.1, -0.1], index=["treated", "treated:x[b]"])
    cov = pd.DataFrame([[0.12942569, -0.12942569], [-0.12942569, 0.12942569 - 2.8e-17]], index=params.index, columns=params.index)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        est, se = sg._combo(params, cov, ["treated", "treated:x[b]"])
    assert est == pytest.approx(0.0, abs=1e-15) and np.isnan(se)
    est, se = sg._combo(params, cov, ["treated"])
    assert se == pytest.approx(np.sqrt(0.12942569))


# ------------------------------------------------------------------------------ the committed extract
@pytest.fixture(scope="module")
def pages():
    import ppeval
    from ppeval.report import _charts, build, render

    ev = ppeval.Evaluation.from_toml(ROOT / "data/synthetic/eval.toml")
    content = build(ev)
    charts = _charts(ev, content, None)
    report, fact = render(ev, content, [{**c, "uri": ""} for c in charts])
    return ev, content, charts, report, fact


def test_committed_report_has_none_of_the_old_phrases(pages):
    ev, content, charts, report, fact = pages
    captions = " ".join(c["caption"] for c in charts)
    for text in (report, fact, captions, " ".join(content["results"]["summary"])):
        for old in ("about as often", "each paired", "did not take part", "whose parents did not", "similar unserved",
                    "1:1 pairs, McNemar", "not significant at the 5% level even without hidden bias", "RuntimeWarning", "Warning:"):
            assert old not in text, old
    assert "spent more days" not in captions and "spent fewer days" not in captions  # p = 0.79 on this extract


def test_committed_report_describes_the_comparison_group_as_it_is(pages):
    ev, content, charts, report, fact = pages
    d = ev.matched.data
    assert d.loc[~d["treated"].astype(bool), "served_later"].astype(bool).any()
    assert (d.groupby("match_id").size() > 2).any()  # sibling blocks: matched sets, not pairs
    lead = report[report.index('<p class="lead">'):]
    lead = lead[:lead.index("</p>")]
    assert "similar children not yet served at that point, some of whom were served later" in lead
    assert "in matched sets, not one-to-one pairs" in lead
    assert "not yet served at that point (some served later)" in fact


def test_committed_notes_are_plain(pages):
    ev, content, charts, report, fact = pages
    for note in content["results"]["notes"]:
        assert "Warning" not in note and "encountered" not in note, note


def test_committed_findings_follow_the_rule_for_their_p(pages):
    ev, content, charts, report, fact = pages
    for row, text in zip(content["headline"], [s for s in content["results"]["summary"] if not s.startswith("Over the whole follow-up")], strict=True):
        p = row.effects["risk_difference"]["p_value"]
        assert ("cannot tell" in text) == (p >= 0.05)
        assert SIGNIFICANCE.search(text)


@pytest.fixture(scope="module")
def prevention(tmp_path_factory):
    """The prevention notebook's synthetic extract (3,000 children, seed 22): a removal hazard
    ratio that is significant beside a 12-month removal difference that is not."""
    from ppeval import Evaluation
    from ppeval.report import _charts, build, render
    from ppeval.synthetic import write_synthetic

    d = tmp_path_factory.mktemp("prevention")
    write_synthetic(d, n_children=3000, seed=22, design="prevention")
    ev = Evaluation.from_toml(d / "eval.toml")
    content = build(ev)
    report, fact = render(ev, content, [{**c, "uri": ""} for c in _charts(ev, content, None)])
    return ev, content, report, fact


def test_prevention_report_says_why_hazard_ratio_and_window_differ(prevention):
    ev, content, report, fact = prevention
    hr = ev.estimates["removal"]["hazard_ratio"]
    rd = ev.estimates["removal"]["risk_difference", 12]
    assert hr.p_value < 0.05 <= rd.p_value  # the disagreement of the issue (HR 0.51)
    summary = content["results"]["summary"]
    i = next(k for k, s in enumerate(summary) if s.startswith("Over the whole follow-up"))
    assert "were removed from home within 12 months" in summary[i - 1] and "cannot tell" in summary[i - 1]
    assert f"is {hr.estimate:.2f} (95% CI {hr.ci_low:.2f} to {hr.ci_high:.2f}; p = {hr.p_value:.3f}, statistically significant)" in summary[i]
    assert "builds up after the window" in summary[i]
    from markupsafe import escape

    assert str(escape(summary[i])) in report and str(escape(summary[i])) in fact
    assert 'class="note hr-window"' in report


def test_a_constant_outcome_says_no_difference_is_possible_without_a_test():
    """Everyone (or no one) had the event: the risk difference is exactly 0 with SE 0, so no
    interval or p-value is printed, only why (tests/test_estimator_edges.py has the numbers)."""
    from ppeval.estimate.binary import CONSTANT_OUTCOME_NOTE as note
    row = _row("tpr", 24, 0.0, 0.0, 0.0, 0.0, 0.0, None)
    row.effects["risk_difference"]["note"] = note
    for text in (finding_sentence(row, PH), rate_caption(row, PH)):
        assert note in text and "nan" not in text and "95% CI" not in text and "0.0 more" not in text


def test_report_curves_cover_the_follow_up_the_data_support():
    """Not a fixed two years: the last month end at which every arm has at least the
    threshold at risk (and, for Kaplan–Meier, a tenth of its start)."""
    from types import SimpleNamespace

    from ppeval.estimate import KaplanMeier
    from ppeval.report import _curve_horizon, _months_text

    # 200 per arm, one exit a day from day 1: 20 still at risk (a tenth) on day 181
    t = np.tile(np.arange(1, 201, dtype=float), 2)
    g = np.repeat([0, 1], 200)
    km = KaplanMeier().fit(t, np.ones_like(t, dtype=int), groups=g)
    h = _curve_horizon(SimpleNamespace(cif=None, km=km), 11)
    assert h == 5 * 365 // 12 and _months_text(h) == "5 months"  # day 152; 6 months (day 182) has 19 at risk
    # a longer arm does not stretch the other
    km2 = KaplanMeier().fit(np.r_[t[:200], 3 * t[200:]], np.ones_like(t, dtype=int), groups=g)
    assert _curve_horizon(SimpleNamespace(cif=None, km=km2), 11) == h
