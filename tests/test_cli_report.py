"""The command line around the report: demo, report (progress on stderr), charts."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ppeval.cli import main
from ppeval.synthetic import write_synthetic


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("synth_cli")
    write_synthetic(d, n_children=1500, seed=5)
    return d


def test_demo_writes_the_report(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["-q", "demo", "--out", str(out), "--children", "1500"]) == 0
    for rel in ("report/report.html", "report/factsheet.html", "report/results.json", "data/eval.toml"):
        assert (out / rel).exists(), rel
    assert str(out / "report" / "report.html") in capsys.readouterr().out
    assert "<img" in (out / "report" / "report.html").read_text()


def test_report_shows_progress_by_stage_on_stderr(synth, tmp_path):
    out = tmp_path / "r"
    r = subprocess.run([sys.executable, "-m", "ppeval", "report", str(synth / "eval.toml"), "--out", str(out)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(out / "report.html")
    stages = re.findall(r"^\[\s*[\d.]+s\] (.*)$", r.stderr, re.M)
    for stage in ("loading the extract", "validating the extract", "building the cohort and its outcomes", "matching",
                  "checking balance", "estimating effects on reunification"):
        assert stage in stages, (stage, stages)
    assert stages.index("loading the extract") < stages.index("validating the extract") < stages.index("matching")
    assert "Traceback" not in r.stderr
    assert json.loads((out / "results.json").read_text())["seed"] == 5


def test_charts_writes_the_chart_pack_alone(synth, tmp_path):
    out = tmp_path / "charts"
    assert main(["-q", "charts", str(synth / "eval.toml"), "--out", str(out)]) == 0
    pngs = sorted((out / "charts").glob("*.png"))
    svgs = sorted((out / "charts").glob("*.svg"))
    assert pngs and [p.stem for p in pngs] == [s.stem for s in svgs]
    assert not (out / "report.html").exists() and not (out / "results.json").exists()
    from PIL import Image

    with Image.open(pngs[0]) as im:
        dpi = im.info.get("dpi")
    assert dpi and round(dpi[0]) == 300
    captions = (out / "charts" / "captions.txt").read_text().splitlines()
    assert {c.split(":")[0] for c in captions} == {p.stem for p in pngs}
    # every caption is a sentence; a rate caption carries both numbers
    assert all(c.endswith(".") for c in captions)
    assert re.search(r"rate_reunified_12m: .*\d+% vs \d+%", "\n".join(captions))


def test_report_pdf_without_weasyprint_is_a_usage_error(synth, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "weasyprint", None)  # import fails as when not installed
    assert main(["-q", "report", str(synth / "eval.toml"), "--out", str(tmp_path / "p"), "--pdf"]) == 2
    assert "ppeval[pdf]" in capsys.readouterr().err
    assert not (tmp_path / "p" / "report.html").exists()  # nothing half-written
