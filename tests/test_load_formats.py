"""Every source format gives back the same canonical tables, with provenance, read-only."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pandas as pd
import pyreadstat
import pytest

from ppeval import load_extract, schema
from ppeval.load import load_source

CHILD_COLUMNS = ["child_id", "birth_date", "family_id", "sex", "race_ethnicity", "hispanic"]


def _canonical(df: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    return df[columns].reset_index(drop=True)


def _for_stat(kids: pd.DataFrame) -> pd.DataFrame:
    """The children as a statistics package stores them: numeric ids, 1/0 flags."""
    out = kids.copy()
    for c in ("child_id", "family_id"):
        out[c] = out[c].astype(float)
    out["hispanic"] = out["hispanic"].map({True: 1.0, False: 0.0}).astype(float)
    for c in ("sex", "race_ethnicity"):
        out[c] = out[c].astype(object)
    return out


WRITERS = {
    "csv": lambda df, p: df.to_csv(p, index=False),
    "tab": lambda df, p: df.to_csv(p, index=False, sep="\t"),
    "tsv": lambda df, p: df.to_csv(p, index=False, sep="\t"),
    "txt": lambda df, p: df.to_csv(p, index=False, sep="\t"),
    "parquet": lambda df, p: df.to_parquet(p, index=False),
    "xlsx": lambda df, p: _for_stat(df).to_excel(p, index=False),
    "dta": lambda df, p: pyreadstat.write_dta(_for_stat(df), str(p)),
    "sav": lambda df, p: pyreadstat.write_sav(_for_stat(df), str(p)),
}


@pytest.mark.parametrize("ext", sorted(WRITERS))
def test_every_format_round_trips_the_children(tmp_path, canonical_tables, ext):
    kids = canonical_tables["children"]
    path = tmp_path / f"children.{ext}"
    WRITERS[ext](kids, path)
    res = load_source("children", {"path": path.name}, base_dir=tmp_path)
    assert res.problems == []
    got = res.frames()["children"]
    pd.testing.assert_frame_equal(_canonical(got, CHILD_COLUMNS), kids[CHILD_COLUMNS], check_dtype=True)
    binary = ext in ("parquet", "dta", "sav")
    first = 1 if binary else 2  # record number, or the line under the header (Excel: sheet row 2)
    assert got[schema.SOURCE_ROW].tolist() == [first, first + 1, first + 2]
    assert set(got[schema.SOURCE_FILE]) == {path.name}
    [inp] = res.inputs
    assert inp.path == path.name and inp.rows == 3 and inp.table == "children"
    assert inp.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_sas_transport_round_trip_with_a_columns_map(tmp_path, canonical_tables):
    # .xpt (SAS v5 transport) limits names to 8 characters: the columns map restores them.
    kids = _for_stat(canonical_tables["children"])
    kids.columns = ["KIDID", "DOB", "FAMID", "SEX", "RACEETH", "HISP"]
    pyreadstat.write_xport(kids, str(tmp_path / "kids.xpt"))
    res = load_source(
        "children",
        {
            "path": "kids.xpt",
            "columns": {
                "child_id": "kidid",
                "birth_date": "dob",
                "family_id": "famid",
                "race_ethnicity": "raceeth",
                "hispanic": "hisp",
            },
        },
        base_dir=tmp_path,
    )
    assert res.problems == []
    got = res.frames()["children"]
    pd.testing.assert_frame_equal(_canonical(got, CHILD_COLUMNS), canonical_tables["children"][CHILD_COLUMNS])
    assert res.inputs[0].format == "xpt"


def test_sas7bdat_round_trip(tmp_path, canonical_tables):
    """pyreadstat cannot write .sas7bdat: the fixture was written by R haven (ReadStat)."""
    fixture = Path(__file__).parent / "data_load" / "children.sas7bdat"
    res = load_source("children", {"path": str(fixture)})
    assert res.problems == []
    got = res.frames()["children"]
    pd.testing.assert_frame_equal(_canonical(got, CHILD_COLUMNS), canonical_tables["children"][CHILD_COLUMNS])
    assert got[schema.SOURCE_ROW].tolist() == [1, 2, 3]
    assert res.inputs[0].format == "sas7bdat"
    assert res.inputs[0].sha256 == hashlib.sha256(fixture.read_bytes()).hexdigest()


def test_excel_named_sheet_and_sheet_rows(tmp_path, canonical_tables):
    path = tmp_path / "book.xlsx"
    with pd.ExcelWriter(path) as xl:
        pd.DataFrame({"note": ["cover sheet"]}).to_excel(xl, sheet_name="About", index=False)
        # two blank rows above the header: problems must name the sheet's own row numbers
        canonical_tables["families"].to_excel(xl, sheet_name="Crosswalk", index=False, startrow=2)
    res = load_source("families", {"path": "book.xlsx", "sheet": "Crosswalk"}, base_dir=tmp_path)
    fam = res.frames()["families"]
    assert fam["child_id"].tolist() == ["1001", "1002", "1003"]
    assert fam[schema.SOURCE_ROW].tolist() == [4, 5, 6]
    missing = load_source("families", {"path": "book.xlsx", "sheet": "Nope"}, base_dir=tmp_path)
    [p] = missing.problems
    assert "no sheet 'Nope'" in p.message and "'Crosswalk'" in p.message


def test_all_five_tables_from_a_config_with_provenance(tmp_path, canonical_tables, write_config):
    (tmp_path / "in").mkdir()
    canonical_tables["children"].to_csv(tmp_path / "in" / "children.csv", index=False)
    canonical_tables["episodes"].to_parquet(tmp_path / "in" / "episodes.parquet", index=False)
    canonical_tables["reports"].to_csv(tmp_path / "in" / "reports.tab", index=False, sep="\t")
    canonical_tables["participation"].to_excel(tmp_path / "in" / "roster.xlsx", index=False)
    canonical_tables["families"].to_csv(tmp_path / "in" / "families.csv", index=False)
    cfg = write_config(
        "\n".join(
            f'[data.{t}]\npath = "in/{f}"'
            for t, f in [
                ("children", "children.csv"),
                ("episodes", "episodes.parquet"),
                ("reports", "reports.tab"),
                ("participation", "roster.xlsx"),
                ("families", "families.csv"),
            ]
        )
    )
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in (tmp_path / "in").iterdir()}
    ext = load_extract(cfg)
    assert ext.load_problems == []
    assert ext.extract_date == pd.Timestamp("2023-12-31")
    for name, df in canonical_tables.items():
        got = ext.canonical(name)[list(df.columns)]
        pd.testing.assert_frame_equal(got.reset_index(drop=True), df, check_dtype=False)
        for col in df.columns:
            assert str(got[col].dtype) == schema.TABLES[name].column(col).dtype, (name, col)
    prov = {f["path"]: f for f in ext.provenance()}
    assert set(prov) == {"in/children.csv", "in/episodes.parquet", "in/reports.tab", "in/roster.xlsx", "in/families.csv"}
    assert prov["in/roster.xlsx"]["table"] == "participation" and prov["in/roster.xlsx"]["format"] == "xlsx"
    for path, f in prov.items():
        assert f["sha256"] == hashlib.sha256((tmp_path / path).read_bytes()).hexdigest()
    # inputs are never modified
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in (tmp_path / "in").iterdir()} == before


def test_relative_paths_resolve_against_the_config_folder(tmp_path, canonical_tables, write_config, monkeypatch):
    canonical_tables["families"].to_csv(tmp_path / "families.csv", index=False)
    cfg = write_config('[data.families]\npath = "families.csv"')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    ext = load_extract(os.path.relpath(cfg, elsewhere))
    assert len(ext.families) == 3 and ext.load_problems == []


def test_several_paths_are_stacked_with_their_own_lines(tmp_path):
    (tmp_path / "a.csv").write_text("child_id,family_id\n1,F1\n2,F1\n")
    (tmp_path / "b.csv").write_text("CHILD_ID,FAMILY_ID\n3,F2\n")
    res = load_source("families", {"paths": ["a.csv", "b.csv"]}, base_dir=tmp_path)
    fam = res.frames()["families"]
    assert fam["child_id"].tolist() == ["1", "2", "3"]
    assert list(zip(fam[schema.SOURCE_FILE], fam[schema.SOURCE_ROW], strict=True)) == [("a.csv", 2), ("a.csv", 3), ("b.csv", 2)]
    assert [i.rows for i in res.inputs] == [2, 1]


def test_gzipped_csv_and_explicit_format(tmp_path):
    import gzip

    (tmp_path / "fam.csv.gz").write_bytes(gzip.compress(b"child_id,family_id\n1,F1\n"))
    (tmp_path / "fam.dat").write_text("child_id|family_id\n2|F2\n")
    a = load_source("families", {"path": "fam.csv.gz"}, base_dir=tmp_path)
    b = load_source("families", {"path": "fam.dat", "format": "csv", "delimiter": "pipe"}, base_dir=tmp_path)
    assert a.frames()["families"]["family_id"].tolist() == ["F1"]
    assert b.frames()["families"]["family_id"].tolist() == ["F2"]
    assert a.inputs[0].sha256 == hashlib.sha256((tmp_path / "fam.csv.gz").read_bytes()).hexdigest()
