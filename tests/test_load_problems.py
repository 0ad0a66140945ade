"""Bad data becomes problems (never exceptions) that name the file, line and source column."""

from __future__ import annotations

import pandas as pd
import pytest

from ppeval import load_extract, schema
from ppeval.cli import main
from ppeval.load import load_source


def _load(tmp_path, table: str, name: str, data: bytes | str, **source):
    path = tmp_path / name
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return load_source(table, {"path": name, **source}, base_dir=tmp_path)


def test_file_not_found_does_not_stop_the_other_sources(tmp_path, write_config):
    (tmp_path / "families.csv").write_text("child_id,family_id\n1,F\n")
    ext = load_extract(write_config('[data.children]\npath = "kids.csv"\n[data.families]\npath = "families.csv"'))
    [p] = ext.load_problems
    assert (p.severity, p.file, p.row, p.table) == ("error", "kids.csv", None, "children")
    assert p.message.startswith("file not found") and str(tmp_path / "kids.csv") in p.message
    assert len(ext.families) == 1 and len(ext.children) == 0
    assert [i.path for i in ext.inputs] == ["families.csv"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "the file is empty (0 bytes)"),
        (b"\n\n  \n", "the file is empty (blank lines only)"),
        (b"\xef\xbb\xbf", "the file is empty (0 bytes)"),
        (b"child_id,family_id\n", "the file has a header line but no data rows"),
        (b"child_id,family_id\r\n\r\n", "the file has a header line but no data rows"),
    ],
)
def test_empty_files(tmp_path, data, message):
    res = _load(tmp_path, "families", "families.csv", data)
    [p] = res.problems
    assert (p.severity, p.file, p.message) == ("error", "families.csv", message)
    assert "families" not in res.frames()
    assert res.inputs[0].rows == 0  # the file was read (and hashed) but gave no rows


def test_missing_required_columns_lists_them_and_the_columns_found(tmp_path):
    res = _load(
        tmp_path,
        "episodes",
        "episodes.csv",
        "ChildID,Removed,Discharged\n1,2020-01-01,\n",
        columns={"child_id": "ChildID", "removal_dt": "Removed"},
    )
    [p] = res.problems
    assert p.severity == "error" and p.row is None
    assert p.message.startswith("missing required column(s) removal_date; columns found: ChildID, Removed, Discharged")
    assert "did you mean 'removal_date'?" in p.message
    assert "episodes" not in res.frames()


def test_participation_needs_a_child_or_family_id(tmp_path):
    res = _load(tmp_path, "participation", "roster.csv", "enrolled_date,hours\n2021-01-01,3\n")
    [p] = res.problems
    assert "missing required column(s) child_id or family_id" in p.message


def test_wrong_delimiter_is_named(tmp_path):
    res = _load(tmp_path, "families", "families.tab", "child_id,family_id\n1,F\n")
    [p] = res.problems
    assert (p.severity, p.row) == ("error", 1)
    assert "looks comma-delimited" in p.message and 'delimiter = ","' in p.message
    res = _load(tmp_path, "families", "families.csv", "child_id\tfamily_id\n1\tF\n")
    assert "looks tab-delimited" in res.problems[0].message


def test_non_utf8_bytes_name_the_line_and_suggest_latin1(tmp_path):
    data = "child_id,family_id,note\n1,F1,ok\n2,F2,Mu\xf1oz\n3,F3,Pe\xf1a\n".encode("latin-1")
    res = _load(tmp_path, "families", "families.csv", data)
    [p] = res.problems
    assert (p.severity, p.row, p.column) == ("error", 3, None)
    assert 'encoding = "latin-1"' in p.message and "byte 0xf1" in p.message and "1 more line(s)" in p.message
    assert res.frames()["families"]["child_id"].tolist() == ["1", "2", "3"]  # the rest still loads
    fixed = _load(tmp_path, "families", "families.csv", data, encoding="latin-1")
    assert fixed.problems == []
    assert fixed.frames()["families"]["note"].tolist() == ["ok", "Muñoz", "Peña"]


def test_a_utf8_byte_order_mark_is_silent(tmp_path):
    res = _load(tmp_path, "families", "families.csv", b"\xef\xbb\xbfchild_id,family_id\r\n1,F\r\n")
    assert res.problems == []
    assert res.frames()["families"][["child_id", "family_id", schema.SOURCE_ROW]].values.tolist() == [["1", "F", 2]]


def test_ragged_rows_are_named_and_the_other_rows_keep_their_lines(tmp_path):
    res = _load(
        tmp_path,
        "families",
        "families.csv",
        "child_id,family_id\n1,F1\n2,F2,extra\n3\n4,F4\n",
    )
    assert [(p.row, p.message.split(";")[0]) for p in res.problems] == [
        (3, "the row has 3 field(s) but the header has 2"),
        (4, "the row has 1 field(s) but the header has 2"),
    ]
    assert all("the row was not loaded" in p.message for p in res.problems)
    fam = res.frames()["families"]
    assert list(zip(fam["child_id"], fam[schema.SOURCE_ROW], strict=True)) == [("1", 2), ("4", 5)]


def test_line_numbers_count_quoted_line_breaks_and_blank_lines(tmp_path):
    res = _load(
        tmp_path,
        "children",
        "children.csv",
        'child_id,birth_date,note\n1,2015-01-01,"two\nlines"\n\n2,2015-13-01,x\n3,2016-01-01,y\n',
    )
    kids = res.frames()["children"]
    assert kids[schema.SOURCE_ROW].tolist() == [2, 5, 6]
    assert kids["note"].tolist() == ["two\nlines", "x", "y"]
    [p] = res.problems
    assert (p.row, p.column) == (5, "birth_date")


def test_every_bad_cell_is_reported_and_its_row_kept(tmp_path):
    res = _load(
        tmp_path,
        "episodes",
        "episodes.csv",
        "ID,Removed,Reason,Moves\n"
        "A,2020-01-01,reunification,2\n"
        "B,2020-02-30,reunification,two\n"
        "C,2020-03-01,sent home,3\n",
        columns={"child_id": "ID", "removal_date": "Removed", "discharge_reason": "Reason", "placements": "Moves"},
    )
    got = [(p.file, p.row, p.column, p.value, p.message, p.table) for p in res.problems]
    assert got == [
        ("episodes.csv", 3, "Removed", "2020-02-30", "unparseable date", "episodes"),
        ("episodes.csv", 4, "Reason", "sent home", "unknown code", "episodes"),
        ("episodes.csv", 3, "Moves", "two", "not a whole number", "episodes"),
    ]
    ep = res.frames()["episodes"]
    assert ep["child_id"].tolist() == ["A", "B", "C"]  # no row dropped
    assert pd.isna(ep.loc[1, "removal_date"]) and pd.isna(ep.loc[2, "discharge_reason"]) and pd.isna(ep.loc[1, "placements"])
    assert str(res.problems[0]) == (
        "error: episodes.csv, row 3, column 'Removed': unparseable date (found '2020-02-30'); "
        "expected a date (YYYY-MM-DD, MM/DD/YYYY or YYYYMMDD)"
    )


def test_identifying_values_are_never_echoed(tmp_path):
    res = _load(
        tmp_path,
        "children",
        "children.csv",
        "child_id,birth_date,family_id\nSECRET1,1999-02-31,FAM9\n",
    )
    [p] = res.problems
    assert p.column == "birth_date" and p.value is None
    assert "1999-02-31" not in str(p) and "SECRET1" not in str(p) and "FAM9" not in str(p)


def test_many_bad_cells_are_listed_up_to_the_limit_then_counted(tmp_path):
    rows = "".join(f"{i},not-a-date\n" for i in range(6))
    data = "child_id,removal_date\n" + rows
    capped = _load(tmp_path, "episodes", "e.csv", data)
    assert len(capped.problems) == 6
    few = load_source("episodes", {"path": "e.csv"}, base_dir=tmp_path, max_problems_per_column=2)
    assert [p.row for p in few.problems] == [2, 3, None]
    assert few.problems[-1].message.startswith("unparseable date: 4 more cell(s) in this column (rows 4-7)")
    everything = load_source("episodes", {"path": "e.csv"}, base_dir=tmp_path, max_problems_per_column=None)
    assert len(everything.problems) == 6


def test_unknown_extension_is_a_config_error(tmp_path):
    from ppeval.errors import ConfigError

    (tmp_path / "kids.dat").write_text("child_id,birth_date\n1,2015-01-01\n")
    with pytest.raises(ConfigError, match="format"):
        load_source("children", {"path": "kids.dat"}, base_dir=tmp_path)


def test_cli_validate_prints_load_problems_and_exits_1(tmp_path, write_config, capsys):
    (tmp_path / "children.csv").write_text("child_id,birth_date\n1,2015-01-01\n2,2015-02-30\n")
    (tmp_path / "episodes.csv").write_text("child_id,removal_date\n1,2020-01-01\n")
    cfg = write_config('[data.children]\npath = "children.csv"\n[data.episodes]\npath = "episodes.csv"')
    assert main(["-q", "validate", str(cfg)]) == 1
    out = capsys.readouterr().out
    assert "error: children.csv, row 3, column 'birth_date': unparseable date" in out
