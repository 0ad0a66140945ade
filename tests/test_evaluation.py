"""The Evaluation API: from_toml, from_frames, lazy caching, notebook display, quiet library calls."""

from __future__ import annotations

import json
import sys

import numpy as np
import pandas as pd
import pytest

import ppeval.evaluation as evaluation_module
from ppeval.evaluation import Evaluation
from ppeval.load import load_extract
from ppeval.synthetic import write_synthetic


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    d = tmp_path_factory.mktemp("synth_eval")
    write_synthetic(d, n_children=1500, seed=3)
    return d


@pytest.fixture(scope="module")
def ev(synth):
    return Evaluation.from_toml(synth / "eval.toml")


def test_from_toml_runs_every_stage(ev):
    assert ev.cohort.n_treated > 0
    assert ev.matched.counts["treated_matched"] > 0
    assert ev.balance.max_abs_smd_after < ev.balance.max_abs_smd_before
    table = ev.effects_table()
    assert {"reunification", "tpr", "time_in_care"} <= set(table["outcome"])
    main = table[(table["outcome"] == "reunification")]
    assert np.isfinite(main["estimate"]).all() and (main["ci_low"] < main["ci_high"]).all()
    # the Iowa-style table's outcomes are added for the in-care design and listed as defaults
    assert ev.outcomes["reentry"] == [12, 24] and ev.outcomes["time_in_care"] == [12]
    assert any("time_in_care" in d for d in ev.defaults_applied)
    days = ev.days_in_care
    assert list(days["window_months"]) == [12]
    r = days.iloc[0]
    assert 0 < r["mean_comparison"] <= 365 and r["ci_low"] < r["difference"] < r["ci_high"]
    assert r["difference"] == pytest.approx(r["mean_treated"] - r["mean_comparison"], abs=1e-6)
    # comparison units followed until their own enrolment carry their censoring weights here too
    from ppeval.estimate import censoring_weights

    md = ev.matched.data
    w = md["weight"] * censoring_weights(ev.matched, "days_in_care_12m")
    y = md["days_in_care_12m"].astype(float)
    comp = ~md["treated"].astype(bool) & y.notna() & (w > 0)
    assert r["mean_comparison"] == pytest.approx(np.average(y[comp], weights=w[comp]), abs=1e-9)
    assert "inverse probability" in r["method"]


def test_stages_are_lazy_and_cached(synth, monkeypatch):
    calls = {"cohort": 0, "propensity": 0}
    real_cohort = evaluation_module.build_cohort_from_config
    prop = sys.modules["ppeval.propensity"]  # the package exports a function of that name
    real_ps = prop.propensity

    def cohort_spy(*a, **k):
        calls["cohort"] += 1
        return real_cohort(*a, **k)

    def ps_spy(*a, **k):
        calls["propensity"] += 1
        return real_ps(*a, **k)

    monkeypatch.setattr(evaluation_module, "build_cohort_from_config", cohort_spy)
    monkeypatch.setattr(prop, "propensity", ps_spy)
    e = Evaluation.from_toml(synth / "eval.toml")
    assert calls == {"cohort": 0, "propensity": 0}  # nothing computed on construction
    _ = e.cohort
    assert calls == {"cohort": 1, "propensity": 0}
    _ = e.balance, e.estimates, e.balance, e.matched, e.cohort
    assert calls == {"cohort": 1, "propensity": 1}
    assert e.matched is e.matched and e.estimates is e.estimates
    # match() with overrides is a fresh matching on the cached score
    m2 = e.match(caliper_sd=0.05)
    assert calls["propensity"] == 1 and m2 is not e.matched
    assert m2.counts["treated_matched"] <= e.matched.counts["treated_matched"]


def test_from_frames_gives_the_same_results_as_the_files(synth, ev):
    ext = load_extract(synth / "eval.toml")
    cfg = ev.config
    frames = {k: ext.canonical(k) for k in ("children", "episodes", "reports", "participation", "families") if k in ext.tables}
    ev2 = Evaluation.from_frames(
        **frames, extract_date="2023-12-31", title=cfg["title"], seed=cfg["seed"],
        cohort={k: cfg["cohort"][k] for k in ("design", "entry_from", "entry_to", "unit")},
        propensity={"covariates": list(cfg["propensity"]["covariates"])},
        matching={k: cfg["matching"][k] for k in ("ratio", "caliper_sd", "replace", "exact")},
        outcomes={k: dict(v) for k, v in cfg["outcomes"].items()},
    )
    a = ev.effects_table()[["outcome", "measure", "window_months", "estimate"]]
    b = ev2.effects_table()[["outcome", "measure", "window_months", "estimate"]]
    pd.testing.assert_frame_equal(a, b)
    assert ev2.extract.provenance() == []  # nothing read from disk


def test_repr_html_dashboard_and_results_objects(ev):
    dash = ev._repr_html_()
    for part in ("Sample flow", "Balance", "max |SMD|", "Headline effects", "hazard_ratio", "reunification"):
        assert part in dash, part
    assert "<table" in dash
    for obj in (ev.extract, ev.validation, ev.cohort, ev.propensity_score, ev.matched, ev.balance, *ev.estimates.values()):
        html = obj._repr_html_()
        assert isinstance(html, str) and len(html) > 20, type(obj)
    assert "Evaluation(" in repr(ev)


def test_repr_html_shows_a_failure_in_place(tmp_path):
    bad = Evaluation.from_dict({"data": {"extract_date": "2023-12-31", "children": {"path": "missing.csv"}}}, base_dir=tmp_path)
    assert "Not available" in bad._repr_html_()


def test_library_calls_are_quiet_cli_shows_progress(synth, tmp_path, capfd):
    out = tmp_path / "quiet"
    Evaluation.from_toml(synth / "eval.toml").report(out)
    captured = capfd.readouterr()
    assert captured.out == "" and captured.err == ""
    assert json.loads((out / "results.json").read_text())["seed"] == 3
    messages = []
    e = Evaluation.from_toml(synth / "eval.toml", progress=messages.append)
    _ = e.estimates
    assert messages[:3] == ["loading the extract", "validating the extract", "building the cohort and its outcomes"]
    assert any(m.startswith("fitting the propensity model") for m in messages)
    assert messages.index("matching") > messages.index("fitting the propensity model (logistic)")
    assert capfd.readouterr().out == ""
