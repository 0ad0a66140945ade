"""The ncands preset: reports, CFSR substantiation, linking to AFCARS, NCANDS-only children."""

from __future__ import annotations

import pandas as pd
import pytest

from ppeval import load_extract, schema
from ppeval.load import load_ncands

HEADER = (
    "SubYr\tRptID\tChID\tAFCARSID\tRptDt\tChBDate\tChSex\tChRacAI\tChRacAs\tChRacBl\tChRacNH\tChRacWh\tChRacUD\t"
    "CEthn\tChMal1\tMal1Lev\tChMal2\tMal2Lev\tChMal3\tMal3Lev\tChMal4\tMal4Lev"
)
ROWS = [
    # R1/K1 links to AFCARS child C1; neglect substantiated (1)
    "2019\tR1\tK1\tC1\t2019-03-01\t2012-05-01\t2\t2\t2\t2\t2\t1\t2\t2\t2\t1\t\t\t\t\t\t",
    # R2/K2 no AFCARS link; physical abuse unsubstantiated (5), neglect indicated (2)
    "2019\tR2\tK2\t\t2019-04-02\t2016-06-06\t1\t2\t2\t1\t2\t2\t2\t2\t1\t5\t2\t2\t\t\t\t",
    # R3/K2 again: no finding known (99) -> substantiated missing; 6 = no alleged maltreatment
    "2019\tR3\tK2\t\t2019-09-09\t2016-06-06\t1\t2\t2\t1\t2\t1\t2\t1\t6\t99\t\t\t\t\t\t",
    # R4/K3: sexual abuse, alternative response victim (3): not a CFSR victim
    "2019\tR4\tK3\t\t2019-10-10\t2011-11-11\t9\t2\t2\t2\t2\t2\t1\t9\t4\t3\t9\t5\t\t\t\t",
]


def _write(tmp_path, name="CF2019.tab", rows=ROWS, header=HEADER):
    (tmp_path / name).write_text(header + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return name


def test_reports_substantiation_and_types(tmp_path):
    res = load_ncands([_write(tmp_path)], base_dir=tmp_path)
    assert [p for p in res.problems if p.severity == "error"] == []
    rep = res.frames()["reports"].set_index("report_id")
    assert rep["child_id"].to_dict() == {"R1": "C1", "R2": "K2", "R3": "K2", "R4": "K3"}
    assert rep["substantiated"].tolist() == [True, True, pd.NA, False]
    assert rep["maltreatment_types"].tolist() == ["neglect", "physical_abuse;neglect", pd.NA, "sexual_abuse;unknown"]
    assert rep["report_date"].tolist() == [pd.Timestamp(d) for d in ("2019-03-01", "2019-04-02", "2019-09-09", "2019-10-10")]
    assert rep[schema.SOURCE_ROW].tolist() == [2, 3, 4, 5]
    assert str(rep["substantiated"].dtype) == "boolean"


def test_children_known_only_to_ncands_are_added(tmp_path):
    res = load_ncands([_write(tmp_path)], base_dir=tmp_path)
    kids = res.frames()["children"].set_index("child_id")
    assert list(kids.index) == ["K2", "K3"]  # K1 links to AFCARS (C1): not added
    assert kids.loc["K2", ["birth_date", "sex", "hispanic"]].tolist() == [pd.Timestamp("2016-06-06"), "male", True]
    # K2's latest report says Hispanic (CEthn 1): Hispanic of any race
    assert kids.loc["K2", "race_ethnicity"] == "hispanic"
    assert kids.loc["K3", ["sex", "race_ethnicity"]].tolist() == ["unknown", "unknown"]
    assert pd.isna(kids.loc["K3", "hispanic"])  # CEthn 9 = unknown
    assert kids.loc["K2", [schema.SOURCE_FILE, schema.SOURCE_ROW]].tolist() == ["CF2019.tab", 4]


def test_chdob_stands_in_for_chbdate_and_names_match_in_any_case(tmp_path):
    header = "RPTID\tCHID\tRPTDT\tCHDOB\tMAL1LEV"
    res = load_ncands([_write(tmp_path, rows=["R9\tK9\t20200105\t01/02/2015\t1"], header=header)], base_dir=tmp_path)
    assert res.frames()["children"]["birth_date"].tolist() == [pd.Timestamp("2015-01-02")]
    assert res.frames()["reports"]["report_date"].tolist() == [pd.Timestamp("2020-01-05")]


def test_the_same_report_in_two_years_becomes_one_report(tmp_path):
    a = _write(tmp_path, "CF2019.tab", ROWS[1:2])
    # resubmitted next year with a finding: now substantiated, and another type
    again = ROWS[1].replace("2019\tR2", "2020\tR2").replace("\t1\t5\t2\t2\t", "\t1\t1\t3\t5\t")
    b = _write(tmp_path, "CF2020.tab", [again])
    res = load_ncands([a, b], base_dir=tmp_path)
    rep = res.frames()["reports"]
    assert len(rep) == 1
    assert rep[["substantiated", "maltreatment_types"]].values.tolist() == [[True, "physical_abuse;neglect;medical_neglect"]]
    assert (rep[schema.SOURCE_FILE].item(), rep[schema.SOURCE_ROW].item()) == ("CF2020.tab", 2)
    [w] = [p for p in res.problems if p.severity == "warning" and p.column == "RptID"]
    assert "1 (RptID, ChID) pair(s) appear on more than one record" in w.message


def test_bad_ncands_cells(tmp_path):
    bad = ROWS[0].replace("\t2\t1\t\t", "\t22\tyes\t\t")  # ChMal1 = 22, Mal1Lev = yes
    res = load_ncands([_write(tmp_path, rows=[bad])], base_dir=tmp_path)
    got = {(p.column, p.value, p.message) for p in res.problems if p.severity == "error"}
    assert got == {("ChMal1", "22", "unknown code"), ("Mal1Lev", "yes", "unknown code")}


def test_ncands_with_afcars_and_a_roster_in_one_config(tmp_path, afcars_three_periods, write_config):
    name = _write(tmp_path)
    (tmp_path / "roster.csv").write_text("child_id,enrolled_date\nC1,2019-01-10\n")
    cfg = write_config(
        '[data.participation]\npath = "roster.csv"',
        preamble=f'afcars = {afcars_three_periods!r}\nncands = ["{name}"]'.replace("'", '"'),
    )
    ext = load_extract(cfg)
    assert [p for p in ext.load_problems if p.severity == "error"] == []
    assert sorted(ext.children["child_id"]) == ["C1", "C2", "C3", "K2", "K3"]
    assert set(ext.reports["child_id"]) <= set(ext.children["child_id"])
    assert [f["table"] for f in ext.provenance()] == ["afcars"] * 3 + ["ncands", "participation"]


def test_presets_reproduce_the_generators_canonical_tables(tmp_path):
    """The synthetic generator writes the same extract twice: AFCARS/NCANDS files and canonical CSVs."""
    synthetic = pytest.importorskip("ppeval.synthetic")
    if not hasattr(synthetic, "write_synthetic"):
        pytest.skip("ppeval.synthetic.write_synthetic is not available")
    out = synthetic.write_synthetic(tmp_path / "syn", n_children=600, seed=3)
    if not (out / "eval_canonical.toml").exists():
        pytest.skip("the generator wrote no canonical layout to compare with")
    presets, canonical = load_extract(out / "eval.toml"), load_extract(out / "eval_canonical.toml")
    assert [p for p in presets.load_problems if p.severity == "error"] == []
    for table, key in [("children", ["child_id"]), ("episodes", ["child_id", "removal_date"]), ("reports", ["report_id", "child_id"])]:
        got = presets.canonical(table).sort_values(key).reset_index(drop=True)
        want = canonical.canonical(table).sort_values(key).reset_index(drop=True)
        columns = [c for c in want.columns if c in got.columns]
        assert len(columns) >= len(want.columns) - 1, table  # children: family_id comes from the crosswalk
        pd.testing.assert_frame_equal(got[columns], want[columns], check_dtype=False, obj=table)
