"""An outcome whose model cannot be fitted is reported as not estimable; the others are published.

The 900-child synthetic extract of seed 5 has no re-entry among its matched comparison
children, so re-entry's hazard ratio is not finite. R gives, for the same situation
(``coxph`` on an arm without events, or on a partial likelihood without a finite maximum),
a warning and a huge coefficient::

    library(survival)
    d <- data.frame(time = c(2, 4, 5, 7, 9, 3, 6, 8, 10, 12),
                    event = c(1, 1, 0, 1, 1, 0, 0, 0, 0, 0),
                    treated = c(1, 1, 1, 1, 1, 0, 0, 0, 0, 0))
    coxph(Surv(time, event) ~ treated, data = d)
    # Warning: Ran out of iterations and did not converge
    # coef 21.57, exp(coef) 2321195277, se(coef) 20543.5, p 0.999
    d2 <- data.frame(time = c(1, 2, 3, 3, 5, 6, 7), event = c(1, 1, 0, 0, 0, 1, 0),
                     treated = c(1, 1, 1, 1, 0, 0, 0))
    coxph(Surv(time, event) ~ treated, data = d2)
    # Warning: Loglik converged before variable 1; coefficient may be infinite.
    # coef 21.08, exp(coef) 1429399923, se(coef) 28579.7
    y <- c(1, 1, 1, 1, 1, 0, 0, 0, 0, 0); tr <- y
    glm(y ~ tr, family = binomial)   # tr 49.13, se 82858 (complete separation)

(R 4.2.2, survival 3.5-3; survdiff on the first gives chisq 5.33949191686.) ppeval publishes none of these numbers: the effect is marked not
estimable with the reason, and its estimate, SE, CI and p-value are NaN (null in
results.json).
"""

from __future__ import annotations

import importlib
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ppeval.cli import _out_of_memory_text, main
from ppeval.errors import ConvergenceError
from ppeval.estimate import CONTRACT_MEASURES, CoxPH, estimate
from ppeval.evaluation import Evaluation
from ppeval.synthetic import write_synthetic

# the module (``ppeval.estimate`` the attribute is the function of the same name)
est_mod = importlib.import_module("ppeval.estimate")

# R's data above: the comparison arm (treated = 0) has no events
NO_COMPARISON_EVENTS = pd.DataFrame({
    "time": [2, 4, 5, 7, 9, 3, 6, 8, 10, 12.0],
    "event": [1, 1, 0, 1, 1, 0, 0, 0, 0, 0],
    "treated": [True] * 5 + [False] * 5,
})
# both arms have an event, but the comparison one happens when no treated unit is followed
MONOTONE = pd.DataFrame({
    "time": [1, 2, 3, 3, 5, 6, 7.0],
    "event": [1, 1, 0, 0, 0, 1, 0],
    "treated": [True] * 4 + [False] * 3,
})
NUMBERS = ("estimate", "se", "ci_low", "ci_high", "p_value")


@pytest.fixture(scope="module")
def c900(tmp_path_factory) -> tuple[Path, Path]:
    """The 900-child seed-5 extract and its report, written by the command line."""
    d = tmp_path_factory.mktemp("c900")
    write_synthetic(d / "data", n_children=900, seed=5)
    out = d / "report"
    assert main(["-q", "report", str(d / "data" / "eval.toml"), "--out", str(out)]) == 0
    return d / "data" / "eval.toml", out


def _contract_effects_ok(res: dict) -> None:
    """The Contract's results.json shape for every outcome (as tests/test_report.py checks it)."""
    for key in ("ppeval_version", "config", "inputs", "seed", "flow", "cohort", "matching", "outcomes"):
        assert key in res, key
    for name, o in res["outcomes"].items():
        for arm in ("treated", "comparison"):
            assert {"n", "events", "rates"} <= set(o[arm]), (name, arm)
        assert isinstance(o["estimable"], bool)
        for e in o["effects"]:
            assert set(e) >= {"measure", "window_months", "estimate", "ci_low", "ci_high", "p_value", "method"}
            assert e["measure"] in CONTRACT_MEASURES
            assert (e["window_months"] is None) == e["measure"].endswith("hazard_ratio")
            if e.get("estimable") is False:
                assert e["reason"] and all(e[k] is None for k in ("estimate", "ci_low", "ci_high", "p_value"))
            else:
                assert "reason" not in e and math.isfinite(e["estimate"]) and e["ci_low"] < e["estimate"] < e["ci_high"]


def test_900_children_report_marks_reentry_and_publishes_the_rest(c900):
    config, out = c900
    res = json.loads((out / "results.json").read_text())
    _contract_effects_ok(res)
    reentry = res["outcomes"]["reentry"]
    assert reentry["estimable"] is False
    assert reentry["reason"] == "re-entry: not estimable — the comparison arm has no re-entries, so the hazard ratio is not finite"
    hr = [e for e in reentry["effects"] if e["measure"] == "hazard_ratio"]
    assert len(hr) == 1 and hr[0]["estimable"] is False and hr[0]["estimate"] is None
    # the comparison arm's zero is published as a count (0 is not a small count to hide)
    assert reentry["comparison"]["events"] == 0
    others = {"reunification", "permanency", "tpr", "recurrence", "time_in_care"}
    assert others <= set(res["outcomes"])
    for name in others:
        o = res["outcomes"][name]
        assert o["estimable"] is True and "reason" not in o
        hrs = [e for e in o["effects"] if e["measure"] == "hazard_ratio"]
        assert len(hrs) == 1 and 0.1 < hrs[0]["estimate"] < 10, name
    # words follow numbers: no finding about re-entry; the methods and the table say why
    assert res["summary"] and not any("re-ent" in s.lower() for s in res["summary"])
    html = (out / "report.html").read_text()
    assert html.count("not estimable — the comparison arm has no re-entries, so the hazard ratio is not finite") >= 2
    assert "No finding is stated for this outcome" in html
    methods = html[html.index('id="methods"'):html.index('id="provenance"')]
    assert "Re-entry: not estimable" in methods and "coefficient may be infinite" in methods
    effects_csv = pd.read_csv(out / "tables" / "effects.csv")
    row = effects_csv[(effects_csv.outcome == "reentry") & (effects_csv.measure == "hazard_ratio")].iloc[0]
    assert np.isnan(row["estimate"]) and "no re-entries" in row["reason"]
    # no chart or caption claims a re-entry difference
    captions = (out / "charts" / "captions.txt").read_text()
    assert "curve_reentry" not in captions
    assert not any("re-entered" in line and "significant" in line for line in captions.splitlines())


def test_the_other_outcomes_equal_a_run_without_reentry(c900):
    """The published numbers of the other outcomes are those of estimate() on the same
    matched sample, and equal those of an evaluation that never estimates re-entry."""
    config, out = c900
    res = json.loads((out / "results.json").read_text())
    ev = Evaluation.from_toml(config)
    without = {k: v for k, v in ev.outcomes.items() if k != "reentry"}
    ev.__dict__["outcomes"] = without  # the cached stage, as if re-entry was never asked for
    assert "reentry" not in ev.estimates
    for name in without:
        if name not in res["outcomes"]:
            continue
        direct = estimate(ev.matched, outcome=name, **({"windows": [], "horizon": 365.0} if name == "time_in_care" else {}))
        kept = {(e.measure, e.window_months): e for e in ev.estimates[name].effects}
        for e in res["outcomes"][name]["effects"]:
            mine = kept[(e["measure"], e["window_months"])]
            other = direct[e["measure"], e["window_months"]]
            assert mine.estimate == other.estimate and mine.ci_low == other.ci_low
            # results.json keeps 10 significant digits
            assert e["estimate"] == pytest.approx(mine.estimate, rel=1e-9), (name, e["measure"])
            assert e["ci_high"] == pytest.approx(mine.ci_high, rel=1e-9)
            assert e["p_value"] == pytest.approx(mine.p_value, rel=1e-8)


def test_notebook_path_gives_a_result_not_an_exception(c900, monkeypatch):
    config, out = c900
    ev = Evaluation.from_toml(config)
    r = ev.estimates["reentry"]
    assert r.estimable is False and r.reason.startswith("re-entry: not estimable — the comparison arm has no re-entries")
    table = ev.effects_table()
    hr = table[(table.outcome == "reentry") & (table.measure == "hazard_ratio")].iloc[0]
    assert hr[list(NUMBERS)].isna().all() and "hazard ratio is not finite" in hr["reason"]
    ok = table[table.outcome == "reunification"]
    assert ok["reason"].isna().all() and np.isfinite(ok["estimate"].astype(float)).all()
    # a model failing in a way estimate() does not foresee is still one outcome, named, not a crash
    real = est_mod.estimate

    def failing(data, outcome=None, **kw):
        if outcome == "reunification":
            raise ConvergenceError("the Cox model did not converge in 50 iterations")
        return real(data, outcome=outcome, **kw)

    monkeypatch.setattr(est_mod, "estimate", failing)
    del ev.__dict__["estimates"]
    r = ev.estimates["reunification"]
    assert r.reason == "reunification: not estimable — the Cox model did not converge in 50 iterations"
    frame = r.to_frame()
    hr = frame[frame.measure == "hazard_ratio"]
    assert len(hr) == 1 and hr[list(NUMBERS)].isna().all(axis=None)
    assert hr["reason"].iloc[0] == "the Cox model did not converge in 50 iterations"
    assert ev.estimates["tpr"].estimable and ev.estimates["reentry"].estimable is False
    # the report of that evaluation: the outcome marked and no finding about it, while its
    # window rates are those of the normal run (each window estimated as estimate() does it)
    from ppeval.report import build

    content = build(ev)
    o = content["results"]["outcomes"]["reunification"]
    assert o["estimable"] is False and o["reason"] == r.reason
    normal = json.loads((out / "results.json").read_text())["outcomes"]["reunification"]
    assert [e for e in o["effects"] if e["window_months"]] == [e for e in normal["effects"] if e["window_months"]]
    assert [e["measure"] for e in o["effects"] if not e["window_months"]] == ["hazard_ratio"]
    assert content["not_estimable"]["reunification"].startswith("Reunification: not estimable")
    assert content["headline"] and all(h.outcome not in ("reunification", "reentry") for h in content["headline"])
    assert not any("returned home" in s for s in content["results"]["summary"])


def test_cox_arm_without_events():
    d = NO_COMPARISON_EVENTS
    # the single fitter raises, with a message that names no outcome (it does not know it)
    with pytest.raises((ConvergenceError, np.linalg.LinAlgError), match="no events in one of its levels") as info:
        CoxPH().fit_arrays(d[["treated"]].to_numpy(float), d.time.to_numpy(), d.event.to_numpy(bool))
    assert "event" not in str(info.value).split("(")[0]
    r = estimate(d, duration="time", event="event", censoring="none")
    assert r.estimable is False
    assert r.reason == "event: not estimable — the comparison arm has no events, so the hazard ratio is not finite"
    hr = r["hazard_ratio"]
    assert not hr.estimable and all(math.isnan(getattr(hr, k)) for k in NUMBERS)
    assert (hr.events_treated, hr.events_comparison) == (4, 0)
    assert "cox" not in r.models and "proportional_hazards" not in r.tests
    # the log-rank test needs no finite ratio: R survdiff(Surv(time, event) ~ treated) gives
    # chisq 5.33949191686, p 0.0208475484529
    assert r.tests["logrank"]["chisq"] == pytest.approx(5.33949191686, rel=1e-10)
    assert r.tests["logrank"]["p"] == pytest.approx(0.0208475484529, rel=1e-9)
    assert r.to_records()[0] == {"measure": "hazard_ratio", "window_months": None, "estimate": None, "ci_low": None,
                                 "ci_high": None, "p_value": None, "method": hr.method, "estimable": False,
                                 "reason": "the comparison arm has no events, so the hazard ratio is not finite"}
    # no events at all
    r0 = estimate(d.assign(event=0), duration="time", event="event", censoring="none")
    assert r0.reason == "event: not estimable — neither arm has events, so the hazard ratio is not defined"
    assert "logrank" not in r0.tests


def test_cox_monotone_likelihood_with_events_in_both_arms():
    r = estimate(MONOTONE, duration="time", event="event", censoring="none")
    assert r.estimable is False and "no finite maximum" in r.reason and "coefficient may be infinite" in r.reason
    assert math.isnan(r["hazard_ratio"].estimate)


def test_logistic_complete_separation_and_an_arm_without_events():
    n = 40
    t = np.arange(n) % 2 == 0
    sep = estimate(pd.DataFrame({"treated": t, "y_12m": t.astype(int)}), binary="y_12m")
    assert sep.estimable is False
    assert sep.reason == ("y_12m: not estimable — every unit in the treated arm had the event and no unit in the comparison arm had "
                          "the event (complete separation), so its uncertainty cannot be estimated")
    assert [e.measure for e in sep.effects] == ["risk_difference", "risk_ratio", "odds_ratio"]
    assert all(not e.estimable and math.isnan(e.estimate) and math.isnan(e.p_value) for e in sep.effects)
    # events in one arm only: the risk difference is estimated, the ratios are not finite
    y = np.where(t, np.arange(n) % 4 == 0, 0).astype(int)  # 10 of 20 treated, 0 of 20 comparison
    one = estimate(pd.DataFrame({"treated": t, "y": y}), binary="y")
    assert one.estimable is True
    assert one["risk_difference"].estimate == pytest.approx(0.5)
    # the LPM sandwich SE (HC1, each row its own cluster): sqrt(n/(n-1) * (n-1)/(n-2)) * sqrt(p(1-p)/n1)
    assert one["risk_difference"].se == pytest.approx(math.sqrt(40 / 38) * math.sqrt(0.25 / 20), rel=1e-9)
    for m in ("risk_ratio", "odds_ratio"):
        e = one[m]
        assert not e.estimable and math.isnan(e.estimate)
        assert e.reason == f"no unit in the comparison arm had the event, so the {m.replace('_', ' ')} is not finite"


def test_adjusted_logistic_separation():
    rng = np.random.default_rng(1)
    n = 200
    df = pd.DataFrame({"treated": np.arange(n) % 2 == 0, "x": rng.random(n) < 0.5})
    df["y"] = df["x"].astype(int)  # the covariate predicts the outcome exactly
    r = estimate(df, binary="y", adjust=["x"])
    assert r.estimable is False and "separates" in r.reason
    assert all(math.isnan(e.estimate) for e in r.effects)
    # without the separating covariate the same outcome is estimated
    ok = estimate(df.assign(z=rng.random(n)), binary="y", adjust=["z"])
    assert ok.estimable and all(np.isfinite(e.estimate) for e in ok.effects)


def test_out_of_memory_names_the_stage(c900, monkeypatch, capsys):
    config, out = c900
    import ppeval.matching

    def exhausted(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(ppeval.matching, "match", exhausted)
    status = main(["-q", "report", str(config), "--out", str(out.parent / "oom")])
    err = capsys.readouterr().err
    assert status == 3
    assert err.strip() == ("ppeval report: out of memory while matching (after the extract was read): use a machine with "
                           "more memory, or a smaller cohort (a shorter entry window)")
    assert not (out.parent / "oom").exists()
    assert 'engine = "duckdb"' in _out_of_memory_text("loading the extract")
    assert 'duckdb' not in _out_of_memory_text("estimating effects on reentry")


def test_a_window_ratio_not_estimable_is_said_in_the_table_and_caption(c900):
    """A window's ratio that is not finite reads "not estimable" with its reason; a row whose
    difference is not estimable gets no finding and a caption that claims no difference."""
    from ppeval.report import build, render
    from ppeval.report.content import Phrases, choose_headline
    from ppeval.report.wording import rate_caption

    config, _ = c900
    ev = Evaluation.from_toml(config)
    content = build(ev)
    row = next(r for r in content["rows"] if (r.outcome, r.window_months) == ("reunification", 12))
    why = "no unit in the comparison arm had the event, so the odds ratio is not finite"
    row.effects["odds_ratio"] = {"estimate": None, "ci_low": None, "ci_high": None, "p_value": None, "method": "x", "reason": why}
    html, _ = render(ev, content, [])
    assert f"<li>Returned home (reunified) within 12 months, odds ratio: not estimable — {why}</li>" in html
    assert html.count("<td>not estimable</td>") == 1
    row.effects["risk_difference"] = {"estimate": None, "ci_low": None, "ci_high": None, "p_value": None, "method": "x",
                                      "reason": "every unit in both arms had the event, so its uncertainty cannot be estimated"}
    assert row not in choose_headline(content["rows"], "in_care")
    cap = rate_caption(row, Phrases.for_unit("child", "program"))
    assert cap.endswith("(the difference is not estimable: every unit in both arms had the event, so its uncertainty cannot be estimated)")
    assert "often" not in cap and "significant" not in cap
