"""The DuckDB engine gives the same tables, problems and cohort as the pandas engine.

``[data] engine = "duckdb"`` stacks the AFCARS and NCANDS files out of core
(:mod:`ppeval.load.duckdb_engine`). These tests load the same files with both engines and
require identical children, episodes and reports (rows, order, values, dtypes), identical
problems and provenance, and identical cohorts built from the two extracts: on the
committed synthetic extract, on a freshly generated one, on the loading benchmark's messy
files (UPPERCASE names, 0/1 flags, 99 codes, missing discharge records closed by
DLstFCDt) and on hand-made edge cases. Skipped when DuckDB is not installed.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("duckdb")

from scripts import load_script

from ppeval.cohort import build_cohort  # noqa: E402
from ppeval.config import Config  # noqa: E402
from ppeval.errors import ConfigError, DataError  # noqa: E402
from ppeval.load import afcars, duckdb_engine, load_extract, ncands  # noqa: E402
from ppeval.load.duckdb_engine import load_afcars_duckdb, load_ncands_duckdb, resolve_engine  # noqa: E402
from ppeval.synthetic import write_synthetic  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SYNTHETIC = ROOT / "data" / "synthetic"
TABLES = ("children", "episodes", "reports", "participation", "families")


def _with_engine(config: Path, engine: str) -> Config:
    cfg = Config.from_toml(config)
    cfg["data"]["engine"] = engine
    return cfg


def _assert_same_extract(a, b) -> None:
    assert sorted(a.tables) == sorted(b.tables)
    for name in a.tables:
        pd.testing.assert_frame_equal(a.tables[name], b.tables[name], check_exact=True, obj=name)
    assert [str(p) for p in a.load_problems] == [str(p) for p in b.load_problems]
    assert [f.to_dict() for f in a.inputs] == [f.to_dict() for f in b.inputs]


def _assert_same_cohort(a, b, **kwargs) -> None:
    ca, cb = build_cohort(a, **kwargs), build_cohort(b, **kwargs)
    pd.testing.assert_frame_equal(ca.data, cb.data, check_exact=True)
    pd.testing.assert_frame_equal(ca.flow.to_frame(), cb.flow.to_frame(), check_exact=True)
    return ca


def _assert_same_load(loader, duck, paths, base_dir) -> None:
    a, b = loader(paths, base_dir=base_dir), duck(paths, base_dir=base_dir)
    fa, fb = a.frames(), b.frames()
    assert sorted(fa) == sorted(fb)
    for name in fa:
        pd.testing.assert_frame_equal(fa[name], fb[name], check_exact=True, obj=name)
    assert [str(p) for p in a.problems] == [str(p) for p in b.problems]
    assert [(f.path, f.sha256, f.rows) for f in a.inputs] == [(f.path, f.sha256, f.rows) for f in b.inputs]


def test_committed_synthetic_extract_same_tables_and_cohort():
    config = SYNTHETIC / "eval.toml"
    pandas_ext = load_extract(_with_engine(config, "pandas"))
    duck_ext = load_extract(_with_engine(config, "duckdb"))
    # the committed extract: 4,000 children over 29 AFCARS and 15 NCANDS files (exact counts
    # are left out: the generator's owner may regenerate it; equality is the point here)
    assert len(pandas_ext.children) == 4000 and len(pandas_ext.inputs) == 46
    assert len(pandas_ext.episodes) > 3000 and len(pandas_ext.reports) > 5000
    _assert_same_extract(pandas_ext, duck_ext)
    cohort = _assert_same_cohort(pandas_ext, duck_ext, entry_from="2016-01-01", entry_to="2021-12-31")
    assert len(cohort.data) > 1000 and cohort.n_treated > 100


def test_generated_extract_same_tables_and_cohort(tmp_path):
    folder = write_synthetic(tmp_path / "syn", n_children=6000, seed=11, canonical=False)
    pandas_ext = load_extract(_with_engine(folder / "eval.toml", "pandas"))
    duck_ext = load_extract(_with_engine(folder / "eval.toml", "duckdb"))
    assert len(pandas_ext.children) == 6000 and len(pandas_ext.episodes) > 4000
    _assert_same_extract(pandas_ext, duck_ext)
    for unit in ("child", "family"):
        _assert_same_cohort(pandas_ext, duck_ext, entry_from="2016-01-01", entry_to="2021-12-31", unit=unit)


def test_spilling_under_a_small_memory_limit_gives_the_same_tables(tmp_path, monkeypatch):
    """Out of core for real: under a 24 MB limit DuckDB moves data to disk, same tables."""
    folder = write_synthetic(tmp_path / "syn", n_children=20000, seed=5, canonical=False)
    paths = [str(p.relative_to(folder)) for p in sorted((folder / "afcars").glob("*.tab"))]
    monkeypatch.setenv("PPEVAL_DUCKDB_MEMORY_LIMIT", "24MB")
    spilled = []
    fetch = duckdb_engine._fetch

    def watching(con, sql):
        # bytes DuckDB keeps in its temporary folder (table blocks and sort runs moved out)
        spilled.append(con.execute("SELECT sum(temporary_storage_bytes) FROM duckdb_memory()").fetchall()[0][0] or 0)
        return fetch(con, sql)

    monkeypatch.setattr(duckdb_engine, "_fetch", watching)
    _assert_same_load(afcars.load_afcars, load_afcars_duckdb, paths, folder)
    # at least one 256 KiB block moved to disk (one thread under 24 MB: 3 blocks measured)
    assert max(spilled) >= 256 * 1024


def _bench_load():
    return load_script("benchmarks/bench_load.py")


def test_messy_benchmark_files_same_tables_and_warnings(tmp_path):
    """bench_load's writer: UPPERCASE and mixed-case names, 0/1 and 1/2 flags, 99 codes,
    DLstFCDt on re-entries and 2% of discharge records missing."""
    files = _bench_load().generate(tmp_path / "afcars", 4000, 8)
    paths = [f.name for f in sorted(files)] if files else sorted(p.name for p in (tmp_path / "afcars").glob("FC*.tab"))
    a = afcars.load_afcars(paths, base_dir=tmp_path / "afcars")
    dlst = [p for p in a.problems if p.column and p.column.lower() == "dlstfcdt"]
    assert dlst, "the messy files should close some episodes from DLstFCDt"
    _assert_same_load(afcars.load_afcars, load_afcars_duckdb, paths, tmp_path / "afcars")


def test_afcars_edge_cases(tmp_path, afcars_three_periods):
    header = "RecNumbr\tDOB\tLatRemDt\tDLstFCDt\tDoDFCDt\tDISREASN\tSex\tFIPSCode\tNeglect\tNumPlep\n"
    (tmp_path / "x1.tab").write_text(
        header
        + "K\t2010-01-01\t2015-01-01\t\t\t0\t2\t19153\t1\t2\n"       # closed from the next episode's DLstFCDt
        + "\t2011-01-01\t2015-03-01\t\t\t0\t1\t\t2\t\n"              # blank RecNumbr: its own child
        + "\t2011-01-01\t2015-04-01\t\t\t0\t1\t\t2\t\n"              # another, never merged with the first
        + "J\t2009-02-02\t\t\t\t0\t9\t19001\t99\t1\n"                 # no LatRemDt: an episode without a date
        + "J\t2009-02-02\t2016-01-01\t\t2016-05-01\t3\t1\t\t\t\n"
        + "L\t2008-01-01\t2014-01-01\t\t\t0\t1\t19013\t1\t1\n"       # DLstFCDt outside: stays open
        + "M\tbad-date\t2017-13-01\t\t\t0\t7\t\t\t\n"                # bad cells: problems, same in both
    )
    (tmp_path / "x2.tab").write_text(
        header
        + "K\t2010-01-01\t2016-02-01\t2015-09-30\t\t0\t2\t19153\t1\t3\n"
        + "L\t2008-01-01\t2015-01-01\t2013-06-30\t2015-08-01\t1\t\t19013\t2\t2\n"
        + "K\t2010-01-01\t2016-02-01\t2015-09-30\t2016-12-01\t5\t\t\t\t\n"
    )
    for paths in (["x1.tab", "x2.tab"], ["x2.tab", "x1.tab"], afcars_three_periods):
        _assert_same_load(afcars.load_afcars, load_afcars_duckdb, paths, tmp_path)
    res = load_afcars_duckdb(["x1.tab", "x2.tab"], base_dir=tmp_path)
    ep = res.frames()["episodes"]
    k = ep[ep["child_id"] == "K"].reset_index(drop=True)
    assert k["discharge_date"].astype(str).tolist() == ["2015-09-30", "2016-12-01"]
    assert k["discharge_reason"].tolist()[1] == "guardianship"
    assert ep["child_id"].isna().sum() == 2  # the two blank RecNumbr records stay apart
    assert ep.loc[ep["child_id"] == "L", "discharge_date"].isna().tolist() == [True, False]


def test_ncands_edge_cases(tmp_path):
    header = ("RptID\tChID\tAFCARSID\tRptDt\tChMal1\tMal1Lev\tChMal2\tMal2Lev\tChSex\tChBDate\tChRacWh\tCEthn\t"
              "ChCnty\tRptCnty\tSubYr\n")
    (tmp_path / "CF2019.tab").write_text(
        header
        + "R1\tK1\tC9\t2019-03-01\t2\t5\t1\t1\t1\t2014-01-01\t1\t2\t\t19153\t2019\n"
        + "R2\tK2\t\t2019-04-02\t2\t5\t\t\t2\t2016-06-06\t1\t1\t19001\t19153\t2019\n"
        + "R3\tK2\t\t2019-05-02\t6\t99\t\t\t9\t\t9\t3\t\t19013\t2019\n"
        + "\tK3\t\t2019-06-02\t1\t1\t\t\t1\t2015-06-06\t2\t2\t\t\t2019\n"          # blank RptID
        + "R4\t\t\t2019-07-02\t1\t3\t\t\t1\t2015-06-06\t2\t2\t\t\t2019\n"          # blank ChID
    )
    (tmp_path / "CF2020.tab").write_text(
        header
        + "R2\tK2\t\t2019-04-03\t4\t2\t\t\t\t\t\t\t\t\t2020\n"                    # R2 again, a year later
        + "R1\tK1\tC9\t2019-03-01\t2\t5\t\t\t1\t2014-01-01\t1\t2\t\t\t2018\n"   # R1 from an older submission
        + "R5\tK4\tC4\t2020-01-01\t9\t88\t\t\t1\tnot a date\t\t\t\t\t2020\n"
    )
    for paths in (["CF2019.tab", "CF2020.tab"], ["CF2020.tab", "CF2019.tab"]):
        _assert_same_load(ncands.load_ncands, load_ncands_duckdb, paths, tmp_path)
    res = load_ncands_duckdb(["CF2019.tab", "CF2020.tab"], base_dir=tmp_path)
    rep = res.frames()["reports"]
    r2 = rep[rep["report_id"] == "R2"].iloc[0]
    assert (str(r2["report_date"].date()), bool(r2["substantiated"]), r2["maltreatment_types"]) == (
        "2019-04-03", True, "neglect;sexual_abuse")
    assert len(rep) == 6  # R1/K1 twice and R2/K2 twice each became one report
    assert any("appear on more than one record" in p.message for p in res.problems)


def test_engine_is_chosen_by_config_and_size(tmp_path, monkeypatch):
    cfg = {"data": {"extract_date": "2023-12-31", "engine": "auto",
                    "afcars": {"paths": [str(SYNTHETIC / "afcars" / "FC2016A.tab")]}}}
    assert resolve_engine(cfg) == "pandas"  # small: the in-memory engine
    monkeypatch.setattr(duckdb_engine, "AUTO_BYTES", 1000)
    assert resolve_engine(cfg) == "duckdb"  # past the size: out of core
    assert resolve_engine({"data": {"engine": "DuckDB"}}) == "duckdb"
    with pytest.raises(ConfigError, match="data.engine must be one of"):
        resolve_engine({"data": {"engine": "spark"}})
    monkeypatch.setattr(duckdb_engine, "duckdb_available", lambda: False)
    assert resolve_engine(cfg) == "pandas"  # auto without DuckDB: pandas, quietly
    with pytest.raises(ConfigError, match="pip install duckdb"):
        resolve_engine({"data": {"engine": "duckdb"}})


def test_engine_from_the_toml_file(tmp_path):
    shutil.copytree(SYNTHETIC / "afcars", tmp_path / "afcars")
    files = sorted(p.name for p in (tmp_path / "afcars").glob("*.tab"))[:6]
    listed = ", ".join(f'"afcars/{f}"' for f in files)
    (tmp_path / "eval.toml").write_text(f'[data]\nextract_date = "2023-12-31"\nengine = "duckdb"\nafcars = [{listed}]\n')
    duck = load_extract(tmp_path / "eval.toml")
    pandas_ext = load_extract(_with_engine(tmp_path / "eval.toml", "pandas"))
    _assert_same_extract(pandas_ext, duck)
    assert len(duck.episodes) > 0


def test_binary_files_with_dates_outside_the_packed_range(tmp_path):
    """Dates from Parquet are not range-checked by the parser: a DOB in 1700 must still
    come out as the pandas engine gives it (the DuckDB engine then leaves its fast path)."""
    pd.DataFrame(
        {"RECNUMBR": ["101", "101", "102"], "DOB": pd.to_datetime(["1700-05-05", "2010-01-01", "2011-02-02"]),
         "LATREMDT": pd.to_datetime(["2015-01-01"] * 3), "DODFCDT": pd.to_datetime([None, "2015-09-09", None]),
         "TPRMOMDT": pd.to_datetime([None, None, "2255-01-01"]), "DISREASN": [0.0, 3.0, 0.0],
         "REPDATYR": [2015, 2015, 2015], "REPDATMO": [9, 3, 9]}
    ).to_parquet(tmp_path / "fc.parquet")
    _assert_same_load(afcars.load_afcars, load_afcars_duckdb, ["fc.parquet"], tmp_path)
    res = load_afcars_duckdb(["fc.parquet"], base_dir=tmp_path).frames()
    # the record of period 2015-09 is the later one: its DOB (1700) wins over 2010
    assert res["children"]["birth_date"].astype(str).tolist() == ["1700-05-05", "2011-02-02"]
    assert res["episodes"]["tpr_mother_date"].astype(str).tolist() == ["NaT", "2255-01-01"]


def test_threads_follow_the_memory_limit_and_the_allowed_cores():
    """DuckDB's own default counts the host's cores, and each thread needs ~128 MiB of
    buffers: under a small limit every extra thread is an OutOfMemoryException waiting."""
    import duckdb

    con = duckdb.connect()
    cores = len(os.sched_getaffinity(0))
    for limit, expected in (("24MB", 1), ("200MB", 1), ("300MB", min(cores, 2)), ("64GB", cores)):
        con.execute(f"SET memory_limit = '{limit}'")
        assert duckdb_engine._threads(con) == expected, limit


def test_running_out_of_duckdb_memory_is_a_data_error_naming_the_limit(tmp_path, monkeypatch):
    folder = write_synthetic(tmp_path / "syn", n_children=3000, seed=5, canonical=False)
    monkeypatch.setenv("PPEVAL_DUCKDB_MEMORY_LIMIT", "1MB")
    with pytest.raises(DataError, match=r"AFCARS files .*DuckDB ran out of memory under its limit of 1MB.*PPEVAL_DUCKDB_MEMORY_LIMIT"):
        load_extract(_with_engine(folder / "eval.toml", "duckdb"))
