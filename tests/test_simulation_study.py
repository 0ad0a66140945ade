"""The simulation study of ``benchmarks/simulate.py``: matched estimates against the generator's truth.

The default run checks a few replicates end to end; ``-m slow`` runs the study the README
reports (200 replicates of 4,000 children) and asserts its coverage and bias.
"""

from __future__ import annotations

import json

import pytest
from scripts import load_script


def _simulate():
    return load_script("benchmarks/simulate.py", "ppeval_simulate")


def test_a_few_replicates_estimate_near_the_truth(tmp_path):
    sim = _simulate()
    out = tmp_path / "sim.json"
    assert sim.main(["--replicates", "3", "--children", "3000", "--jobs", "1", "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    rows = res["replicate_rows"]
    assert len(rows) == 3 * 2 * 2  # replicates x outcomes x estimators
    for r in rows:
        assert r["se"] > 0
        # each estimate within 4 SE of its replicate's true effect on the treated
        assert abs(r["estimate"] - r["truth"]) < 4 * r["se"], r
        assert abs(r["truth_matched"] - r["truth"]) < 0.03
    assert {(s["outcome"], s["estimator"]) for s in res["summary"]} == {
        (o, e) for o in ("reunified_12m", "tpr_24m")
        for e in ("window risk difference (IPCW)", "Aalen-Johansen difference")}


@pytest.mark.slow
def test_coverage_and_bias_over_200_replicates():
    sim = _simulate()
    df = sim.run(200, 4000, n_jobs=2)
    table = sim.summarise(df).set_index(["outcome", "estimator"])
    for outcome in ("reunified_12m", "tpr_24m"):
        row = table.loc[(outcome, "window risk difference (IPCW)")]
        assert row["coverage_95"] >= 0.93, row
        assert abs(row["bias"]) < 0.25 * row["empirical_se"], row
