"""Small programs run: a half-year entry window and the family unit of the committed extract.

A pilot's first cohort has one entry year (a constant covariate) and a handful of served
units (a yes/no covariate seen in one arm only separates the arms). Both used to stop the
run; now the constant covariate is left out with a note, the propensity model is fitted with
Firth's penalised likelihood and the methods say why, and nothing from 1 to 10 is published.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from ppeval.cli import main
from ppeval.evaluation import Evaluation

ROOT = Path(__file__).resolve().parents[1]
SYNTH = ROOT / "data" / "synthetic"
THRESHOLD = 11


def _config(tmp_path: Path, **replace: str) -> Path:
    """The committed extract's config with some lines replaced, its paths made absolute."""
    text = (SYNTH / "eval.toml").read_text(encoding="utf-8")
    text = re.sub(r'"(afcars|ncands)/', lambda m: f'"{SYNTH.as_posix()}/{m.group(1)}/', text)
    text = re.sub(r'path = "(\w+\.csv)"', lambda m: f'path = "{(SYNTH / m.group(1)).as_posix()}"', text)
    for old, new in replace.items():
        assert old in text, old
        text = text.replace(old, new)
    cfg = tmp_path / "eval.toml"
    cfg.write_text(text, encoding="utf-8")
    return cfg


#: Keys of results.json that hold counts (the Contract's flow, cohort, matching and outcomes).
COUNT_KEYS = {"treated", "comparison", "n", "events", "total", "treated_matched", "comparison_matched", "treated_unmatched"}


def _published_counts(node: object, where: str = "") -> list[tuple[str, object]]:
    """Every count in results.json (values under a count key), with where it is."""
    out: list[tuple[str, object]] = []
    if isinstance(node, dict):
        for k, v in node.items():
            if k in ("config", "inputs", "effects"):
                continue  # settings, file hashes and estimates: no counts
            if k in COUNT_KEYS and (v is None or isinstance(v, (int, float))):
                out.append((f"{where}.{k}", v))
            else:
                out += _published_counts(v, f"{where}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _published_counts(v, f"{where}[{i}]")
    return out


def _assert_nothing_small(out: Path) -> dict:
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    counts = _published_counts(results)
    assert len(counts) > 30
    assert any(w.startswith(".flow[") for w, _ in counts) and any(w.startswith(".outcomes.") for w, _ in counts)
    small = [(where, v) for where, v in counts if v is not None and 1 <= v < THRESHOLD]
    assert not small, small
    # a suppressed count is null, never a number
    assert all(v is None or float(v).is_integer() for _, v in counts)
    assert any(v is None for _, v in counts)  # this small cohort has suppressed cells
    for name in ("report.html", "results.json", "factsheet.html"):
        assert not re.search(r"np\.(int|float)\d+\(", (out / name).read_text(encoding="utf-8")), name
    return results


def test_half_year_window_runs_to_a_report(tmp_path):
    """Entries July-December 2016 (15 served children): entry year is constant, a removal
    reason is seen among comparison children only. The report is written, with both facts
    in the notes and the Firth fit in the methods."""
    # two outcomes fewer than the committed config (fewer charts to draw: the test stays quick)
    cfg = _config(tmp_path, **{'entry_from = "2016-01-01"': 'entry_from = "2016-07-01"',
                               'entry_to = "2021-12-31"': 'entry_to = "2016-12-31"',
                               'tpr = { windows_months = [24] }\n': '', 'recurrence = { windows_months = [12] }\n': ''})
    out = tmp_path / "report"
    assert main(["-q", "report", str(cfg), "--out", str(out)]) == 0
    results = _assert_nothing_small(out)
    notes = results["notes"]
    assert "covariates constant in this cohort and left out of the propensity model: entry_year (every unit has entry_year = 2016)" in notes
    firth = [n for n in notes if n.startswith("the propensity model was fitted with Firth's penalised likelihood because covariate '")]
    assert len(firth) == 1 and ("separates the arms" in firth[0] or "occurs only among" in firth[0])
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "Left out as constant in this cohort: entry year (every unit has entry_year = 2016)." in html
    assert "The propensity model was fitted with Firth&#39;s penalised likelihood because covariate" in html
    # the published sample: at least the threshold matched in each arm, or suppressed
    assert results["matching"]["treated_matched"] is None or results["matching"]["treated_matched"] >= THRESHOLD


def test_half_year_window_refused_when_asked(tmp_path):
    """separation = "refuse" keeps the old behaviour: the run stops naming the covariate."""
    from ppeval.propensity import PropensityError

    cfg = _config(tmp_path, **{'entry_from = "2016-01-01"': 'entry_from = "2016-07-01"',
                               'entry_to = "2021-12-31"': 'entry_to = "2016-12-31"',
                               'model = "logistic"': 'model = "logistic"\nseparation = "refuse"'})
    ev = Evaluation.from_toml(cfg)
    with pytest.raises(PropensityError, match=r"separation: covariate '\w+'.*separation='firth'"):
        ev.propensity_score  # noqa: B018 (the property fits the model)


def test_config_refuses_an_unknown_separation_method(tmp_path):
    from ppeval.errors import ConfigError

    cfg = _config(tmp_path, **{'model = "logistic"': 'model = "logistic"\nseparation = "frith"'})
    with pytest.raises(ConfigError, match=r"propensity.separation = 'frith' is not one of 'firth', 'refuse'; did you mean 'firth'"):
        Evaluation.from_toml(cfg)


def test_family_unit_of_the_demo_config_runs(tmp_path):
    """Only unit = "family" changed: the child-level age becomes the youngest child's age,
    said in the notes; the family's covariates are family-level ones."""
    cfg = _config(tmp_path, **{'unit = "child"': 'unit = "family"'})
    ev = Evaluation.from_toml(cfg)
    assert ev.cohort.unit == "family"
    assert "youngest_age_at_removal" in ev.cohort.covariates and "children_in_care" in ev.cohort.covariates
    assert "age_at_removal" not in ev.cohort.covariates and "siblings_in_care" not in ev.cohort.covariates
    assert ev.covariates[0] == "youngest_age_at_removal"
    assert ("propensity.covariates: age_at_removal is a child-level covariate; for unit = family "
            "youngest_age_at_removal was used (write the family-level name in the config to say so)") in ev.notes
    # the youngest child's age varies across families: never called constant
    assert ev.cohort.data["youngest_age_at_removal"].nunique() > 100
    assert not any("constant" in n and "age" in n for n in ev.notes)
    assert ev.matched.counts["treated_matched"] >= THRESHOLD
    assert ev.estimates["reunification"].to_frame()["estimate"].notna().any()


def test_family_unit_default_covariates_are_family_level(tmp_path):
    """No covariates configured: the default list of a family cohort is its own columns."""
    cfg = _config(tmp_path, **{'unit = "child"': 'unit = "family"'})
    text = re.sub(r"(?m)^covariates = \[.*\]\n", "", cfg.read_text(encoding="utf-8"))
    cfg.write_text(text, encoding="utf-8")
    ev = Evaluation.from_toml(cfg)
    covs = ev.covariates
    assert "youngest_age_at_removal" in covs and "children_in_care" in covs
    assert all(c in ev.cohort.data for c in covs)
    assert not any("age_at_removal" in n and "constant" in n for n in ev.notes)


def test_prevention_family_unit_uses_family_level_covariates(tmp_path):
    """A prevention program of about 40 served families: the default covariates are the
    family's (the youngest child's age at the report, the children on the report), and no
    age is called constant."""
    from ppeval.synthetic import write_synthetic

    write_synthetic(tmp_path, n_children=1500, design="prevention", seed=7)
    cfg = tmp_path / "eval.toml"
    cfg.write_text(cfg.read_text(encoding="utf-8").replace('unit = "child"', 'unit = "family"'), encoding="utf-8")
    ev = Evaluation.from_toml(cfg)
    assert 30 <= ev.cohort.n_treated <= 60
    assert ev.cohort.covariates[0] == "youngest_age_at_report" and ev.cohort.covariates[-1] == "children_in_report"
    assert "age_at_report" not in ev.cohort.covariates
    ps = ev.propensity_score
    assert {"youngest_age_at_report", "children_in_report"} <= set(ps.covariates)
    assert ps.left_out_ == {}
    assert not any("constant" in n and "age" in n for n in ev.notes)
    # children on the report: the size of the family unit, 1 or more, varying
    sizes = ev.cohort.data["children_in_report"]
    assert sizes.min() == 1 and sizes.nunique() > 1
    assert (sizes == ev.cohort.data["children_in_care"]).all()
