"""The benchmark suite (benchmarks/run.py) at a small size, so it never rots.

The real sizes (100,000 and 1,000,000 children; ``ppeval report`` on 1,000,000 children
≤ 90 s and ≤ 6 GiB) are marked slow: ``python -m pytest -m slow tests/test_scale_bench.py``.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from scripts import load_script

ROOT = Path(__file__).resolve().parents[1]
GIB = 2**30


def _suite():
    return load_script("benchmarks/run.py", "bench_suite")


def test_quick_suite_run(tmp_path, capsys):
    suite = _suite()
    out = tmp_path / "suite.json"
    duckdb = importlib.util.find_spec("duckdb") is not None
    args = ["--quick", "--cache", str(tmp_path / "cache"), "--out", str(out)] + (["--engines"] if duckdb else [])
    assert suite.main(args) == 0
    result = json.loads(out.read_text())
    r = result["sizes"][str(suite.QUICK_SIZE)]
    assert r["children"] == 3000
    # every stage timed, in pipeline order, each with a wall time and its own peak memory
    assert [s["stage"] for s in r["stages"]] == list(suite.STAGES)
    for s in r["stages"]:
        assert s["seconds"] >= 0 and 50 * 2**20 < s["peak_rss_bytes"] < 4 * GIB and "error" not in s
    # the whole `ppeval report` as a subprocess: it succeeded, and it took about as long as
    # the stages added up (same work, plus starting Python)
    cli = r["report_cli"]
    assert cli["exit_status"] == 0 and "error" not in cli
    total = sum(s["seconds"] for s in r["stages"])
    assert 0.5 * total < cli["seconds"] < 3 * total + 10
    assert 100 * 2**20 < cli["peak_rss_bytes"] < 4 * GIB
    # the extract: generated in the federal layouts, FY2010A-FY2024A and FY2010-FY2024
    assert r["inputs"]["afcars_files"] == 29 and r["inputs"]["ncands_files"] == 15
    assert r["counts"]["children"] == 3000 and r["counts"]["treated"] > 0
    assert r["counts"]["treated_matched"] <= r["counts"]["treated"] <= r["counts"]["cohort_units"]
    assert result["machine"]["cpus"] >= 1 and "meets_target" not in r  # targets are for 1M only
    if duckdb:  # both engines loaded the extract, to the same tables (by digest)
        e = r["load_engines"]
        assert e["same_tables"] and e["pandas"]["episodes"] == e["duckdb"]["episodes"] > 0
        assert e["pandas"]["children"] == e["duckdb"]["children"] == 3000
    table = capsys.readouterr().out
    assert "| 3,000 | cohort |" in table and "**ppeval report** (whole, subprocess)" in table
    # the extract is cached: a second generation is not needed
    folder = suite.cached_extract(3000, cache=tmp_path / "cache")
    assert json.loads((folder / "done.json").read_text())["children"] == 3000


def test_table_marks_targets_and_failures():
    suite = _suite()
    fake = {"sizes": {"1000000": {"children": 1_000_000, "stages": [
        {"stage": "load", "seconds": 15.4, "cpu_seconds": 15.37, "peak_rss_bytes": 2 * GIB},
        {"stage": "report", "seconds": 26.7, "cpu_seconds": 27.26, "peak_rss_bytes": 4 * GIB, "error": "PrivacyError: ..."}],
        "report_cli": {"stage": "ppeval report", "seconds": 92.1, "cpu_seconds": 89.01, "peak_rss_bytes": int(3.79 * GIB),
                       "exit_status": 1}}}}
    lines = suite.format_table(fake).splitlines()
    assert lines[2] == "| 1,000,000 | load | 15.40 s | 15.4 s | 2.00 GiB | ≤ 30 s, ≤ 4 GiB |"
    assert lines[3].startswith("| 1,000,000 | report (failed: see error) | 26.70 s | 27.3 s")
    assert lines[4] == ("| 1,000,000 | **ppeval report** (whole, subprocess) (exit 1) | **92.1 s** | 89.0 s | **3.79 GiB** "
                        "| ≤ 90 s, ≤ 6 GiB |")


@pytest.mark.slow
def test_full_suite_meets_the_targets(tmp_path):
    """100,000 and 1,000,000 children (extracts cached under benchmarks/cache/)."""
    suite = _suite()
    out = tmp_path / "suite.json"
    assert suite.main(["--sizes", "100000,1000000", "--out", str(out)]) == 0
    r = json.loads(out.read_text())["sizes"]["1000000"]
    cli = r["report_cli"]
    assert cli["exit_status"] == 0, cli.get("error")
    assert cli["seconds"] <= 90 and cli["peak_rss_bytes"] <= 6 * GIB
    assert r["meets_target"]
