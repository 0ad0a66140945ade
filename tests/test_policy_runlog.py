"""The run log of published cohorts warns before two reports can be subtracted."""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parent / "hardening"))
from support import run_cli  # noqa: E402

from ppeval import runlog  # noqa: E402

SYNTHETIC = Path(__file__).parents[1] / "data" / "synthetic"
WARNING = "publishing both lets a reader subtract them"


def _rec(**counts):
    base = {"inputs_sha256": ["a", "b"], "design": "in_care", "unit": "child", "written": "2026-01-05",
            "counts": {"cohort.treated": 40, "cohort.comparison": 400, "matched.treated_matched": 38}}
    base["counts"] = {**base["counts"], **counts}
    return base


def test_the_rule():
    old = _rec()
    assert runlog.differencing_warning(_rec(), [old], 11) is None  # identical
    w = runlog.differencing_warning(_rec(**{"cohort.treated": 43}), [old], 11)
    assert w is not None and "published on 2026-01-05 by fewer than 11 served units" in w and WARNING in w
    assert runlog.differencing_warning(_rec(**{"cohort.treated": 51}), [old], 11) is None  # 11 apart: fine
    assert runlog.differencing_warning(_rec(**{"cohort.comparison": 390}), [old], 11) is not None
    other_inputs = {**_rec(**{"cohort.treated": 43}), "inputs_sha256": ["c"]}
    assert runlog.differencing_warning(other_inputs, [old], 11) is None  # another extract


def test_a_foreign_file_is_not_appended_to(tmp_path):
    f = tmp_path / "notes.jsonl"
    f.write_text("my own notes\n")
    with pytest.raises(FileExistsError):
        runlog.append(f, {**_rec(), "ppeval_run_log": 1})
    assert f.read_text() == "my own notes\n"


def _config(d: Path, entry_to: str, name: str) -> Path:
    text = (d / "eval.toml").read_text()
    assert 'entry_to = "2021-12-31"' in text
    cfg = d / name
    cfg.write_text(text.replace('entry_to = "2021-12-31"', f'entry_to = "{entry_to}"'))
    return cfg


@pytest.mark.slow
def test_two_runs_a_month_apart_warn_and_a_rerun_does_not(tmp_path):
    d = tmp_path / "synthetic"
    shutil.copytree(SYNTHETIC, d)
    dec, nov = _config(d, "2021-12-31", "dec.toml"), _config(d, "2021-11-30", "nov.toml")
    log = tmp_path / "state" / "runs.jsonl"
    for cfg in (dec, nov):  # a run log of this test's own ([report] run_log, relative to the config)
        cfg.write_text(cfg.read_text().replace("[report]\n", '[report]\nrun_log = "../state/runs.jsonl"\n'))

    status, _, err = run_cli("-q", "report", str(dec), "--out", str(tmp_path / "r1"))
    assert status == 0, err
    assert WARNING not in err and log.is_file()
    status, _, err = run_cli("-q", "report", str(dec), "--out", str(tmp_path / "r2"))
    assert status == 0 and WARNING not in err, err  # an identical rerun
    assert len(runlog.read(log)) == 1
    # an identical rerun is byte-identical: the run log stays out of the report folder
    for f in sorted((tmp_path / "r1").rglob("*")):
        if f.is_file():
            assert f.read_bytes() == (tmp_path / "r2" / f.relative_to(tmp_path / "r1")).read_bytes(), f
    assert not list((tmp_path / "r1").rglob("*runs*"))

    status, _, err = run_cli("-q", "report", str(nov), "--out", str(tmp_path / "r3"))
    assert status == 0, err
    assert WARNING in err
    notes = json.loads((tmp_path / "r3" / "results.json").read_text())["notes"]
    assert any(WARNING in n for n in notes)
    assert WARNING in (tmp_path / "r3" / "report.html").read_text()
    assert not any(WARNING in n for n in json.loads((tmp_path / "r1" / "results.json").read_text())["notes"])

    # the log: aggregates only, no identifier and no child's date
    records = runlog.read(log)
    assert len(records) == 2
    a, b = (r["counts"] for r in records)
    assert 1 <= a["cohort.treated"] - b["cohort.treated"] < 11 or 1 <= abs(a["cohort.comparison"] - b["cohort.comparison"]) < 11
    text = log.read_text()
    ids = set(pd.read_csv(d / "canonical" / "children.csv", dtype=str)["child_id"])
    ids |= set(pd.read_csv(d / "families.csv", dtype=str)["family_id"])
    tokens = set(re.findall(r"[A-Za-z0-9]+", text))
    assert not tokens & ids
    dates = set(re.findall(r"\d{4}-\d{2}-\d{2}", text))
    allowed = {"2016-01-01", "2021-12-31", "2021-11-30"} | {r["written"] for r in records}
    assert dates <= allowed, dates - allowed
