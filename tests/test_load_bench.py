"""The loading benchmark (benchmarks/bench_load.py) at a small size, so it never rots.

The full run (40 files, a million children; target <= 30 s and <= 4 GiB) is marked slow:
``python -m pytest -m slow tests/test_load_bench.py``.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest
from scripts import load_script

from ppeval.load import load_afcars


def _bench():
    return load_script("benchmarks/bench_load.py")


def test_small_benchmark_run(tmp_path):
    bench = _bench()
    out = tmp_path / "load.json"
    assert bench.main(["--children", "3000", "--periods", "4", "--cache", str(tmp_path / "cache"), "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["files"] == 4 and result["errors"] == 0
    assert 0 < result["children"] <= 3000 and result["episodes"] >= result["children"]
    assert result["records"] >= result["episodes"]
    assert result["load_seconds"] > 0 and result["peak_rss_bytes"] > 0
    files = sorted((tmp_path / "cache").glob("afcars_3000_4_*/FC*.tab"))
    assert [f.name for f in files] == ["FC2004A.tab", "FC2004B.tab", "FC2005A.tab", "FC2005B.tab"]
    # the cache is reused: same files, same bytes
    again = bench.generate(files[0].parent, 3000, 4)
    assert [p.stat().st_mtime_ns for p in again] == [p.stat().st_mtime_ns for p in sorted(files)]


def test_generated_files_round_trip_through_the_preset(tmp_path):
    """Older files (UPPERCASE, 0/1 flags) and newer ones (1/2 flags) load to the same codes."""
    bench = _bench()
    files = bench.generate(tmp_path, 2000, 8, seed=7)
    res = load_afcars([f.name for f in files], base_dir=tmp_path)
    assert [p for p in res.problems if p.severity == "error"] == []
    ep = res.frames()["episodes"]
    assert ep["removal_date"].notna().all() and ep["child_id"].notna().all()
    # every flag column is boolean and (apart from the sprinkled 99s) known
    flags = [c for c in ep.columns if c.startswith("removal_") and c != "removal_date"]
    assert len(flags) == 15 and all(str(ep[c].dtype) == "boolean" for c in flags)
    assert ep[flags].isna().to_numpy().mean() < 0.01
    assert set(ep["discharge_reason"].dropna()) <= {
        "reunification", "relative", "adoption", "emancipation", "guardianship", "transfer", "runaway", "death"
    }
    # episodes closed by the DLstFCDt rule have a date but no reason, each with a warning
    dl = [p for p in res.problems if p.column in ("DLstFCDt", "DLSTFCDT")]
    closed = ep["discharge_date"].notna() & ep["discharge_reason"].isna()
    assert len(dl) > 0 and closed.sum() >= sum("its discharge date was set" in p.message for p in dl)
    assert (ep["discharge_date"].dropna() >= ep.loc[ep["discharge_date"].notna(), "removal_date"]).all()
    kids = res.frames()["children"]
    assert kids["child_id"].is_unique and set(ep["child_id"]) == set(kids["child_id"])
    assert pd.Series(kids["sex"]).isin(["female", "male", "unknown"]).all()


@pytest.mark.slow
def test_full_benchmark_meets_the_target(tmp_path):
    bench = _bench()
    result = bench.run(1_000_000, 40)
    assert result["files"] == 40 and result["errors"] == 0
    assert result["children"] > 990_000
    assert result["load_seconds"] <= bench.TARGET_SECONDS
    assert result["peak_rss_bytes"] <= bench.TARGET_GIB * 2**30
