"""Date columns checked as a whole: day-first files refused with the date_format to set, Excel
serial numbers, placeholder dates (see :mod:`ppeval.load.dates`)."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from ppeval.load import load_source
from ppeval.load.dates import AMBIGUOUS_MIN_VALUES, DateColumn, check_date_order

# 40 enrolments, day first; the first day above 12 is on line 7 (rows 2-6 have days 1-12)
DAYS = [3, 5, 1, 9, 11, 23, 4, 30, 12, 17, 2, 28, 6, 8, 19, 10, 25, 7, 14, 21] * 2


def _roster_day_first() -> str:
    lines = ["FamilyID,StartDate,EndDate"]
    for i, d in enumerate(DAYS):
        month = i % 12 + 1
        lines.append(f"F{i:03d},{d:02d}/{month:02d}/2019,{(d % 28) + 1:02d}/{month:02d}/2020")
    return "\n".join(lines) + "\n"


ROSTER_MAP = {"family_id": "FamilyID", "enrolled_date": "StartDate", "exit_date": "EndDate"}


def _load(tmp_path, table, text, name="src.csv", **source):
    (tmp_path / name).write_text(text, encoding="utf-8")
    res = load_source(table, {"path": name, **source}, base_dir=tmp_path)
    return res.frames().get(table), res.problems


def test_a_day_first_roster_is_refused_with_the_date_format_to_set(tmp_path):
    df, problems = _load(tmp_path, "participation", _roster_day_first(), columns=ROSTER_MAP)
    # one error, not one per day above 12 (the old "columns swapped or shifted?" flood)
    [p] = problems
    assert p.severity == "error" and p.row == 7 and p.column == "StartDate"
    assert "'23/06/2019'" in p.message and "there is no month 23" in p.message
    assert 'date_format = "%d/%m/%Y" in [data.participation]' in p.message
    assert "swapped or shifted" not in p.message
    # nothing is read month first: no table at all
    assert df is None


def test_the_date_format_it_names_reads_the_file(tmp_path):
    df, problems = _load(tmp_path, "participation", _roster_day_first(), columns=ROSTER_MAP, date_format="%d/%m/%Y")
    assert problems == []
    expected = pd.to_datetime([f"2019-{i % 12 + 1:02d}-{d:02d}" for i, d in enumerate(DAYS)])
    assert df["enrolled_date"].tolist() == list(expected)


def test_a_month_first_file_loads_as_before(tmp_path):
    text = "FamilyID,StartDate\n" + "".join(f"F{i},04/{d:02d}/2019\n" for i, d in enumerate(DAYS))
    df, problems = _load(tmp_path, "participation", text, columns={"family_id": "FamilyID", "enrolled_date": "StartDate"})
    assert problems == []
    assert df["enrolled_date"].tolist() == list(pd.to_datetime([f"2019-04-{d:02d}" for d in DAYS]))


def test_a_birth_date_proving_the_order_is_named_by_row_and_column_only(tmp_path):
    text = "child_id,birth_date\nA,2015-01-05\nB,03/04/2012\nC,25/03/2014\n"
    df, problems = _load(tmp_path, "children", text)
    [p] = problems
    assert (p.row, p.column, p.value) == (4, "birth_date", None)
    assert "25/03/2014" not in p.message and "03/04/2012" not in p.message
    assert "not shown" in p.message and 'date_format = "%d/%m/%Y" in [data.children]' in p.message
    assert df is None


def test_a_shown_proof_is_taken_from_a_column_that_may_be_shown(tmp_path):
    # the birth date proves the order first (line 2), the removal date later (line 3): the
    # removal date is the one quoted
    text = "child_id,birth_date,removal_date\nA,25/03/2014,01/02/2019\nB,01/02/2012,15/06/2019\n"
    (tmp_path / "x.csv").write_text(text)
    cols = [DateColumn("birth_date", pa.array(["25/03/2014", "01/02/2012"]), True),
            DateColumn("removal_date", pa.array(["01/02/2019", "15/06/2019"]), False)]
    p = check_date_order(cols, np.array([2, 3]), file="x.csv", section="episodes")
    assert (p.row, p.column) == (3, "removal_date") and "'15/06/2019'" in p.message
    assert "25/03/2014" not in p.message


def test_dates_in_both_orders_are_refused_naming_both(tmp_path):
    text = "child_id,removal_date,discharge_date\nA,23/04/2019,\nB,04/23/2019,05/01/2020\n"
    df, problems = _load(tmp_path, "episodes", text)
    [p] = problems
    assert p.severity == "error" and "two orders" in p.message
    assert "'23/04/2019' (day first" in p.message and "'04/23/2019' (month first" in p.message
    assert "date_format" in p.message and df is None


def test_ambiguous_first_of_month_dates_are_refused_and_a_few_are_read_month_first(tmp_path):
    many = "child_id,removal_date\n" + "".join(f"K{m},{m:02d}/01/2019\n" for m in range(1, AMBIGUOUS_MIN_VALUES + 2))
    df, problems = _load(tmp_path, "episodes", many)
    [p] = problems
    assert "cannot be told" in p.message and p.row == 2 and "'01/01/2019'" in p.message
    assert '"%m/%d/%Y" (month first) or "%d/%m/%Y" (day first) in [data.episodes]' in p.message
    assert df is None
    # fewer distinct dates than that, none proving either order: read month first (the documented default)
    few = "child_id,removal_date\nK1,03/01/2019\nK2,2019-05-06\nK3,03/01/2019\n"
    df, problems = _load(tmp_path, "episodes", few)
    assert problems == []
    assert df["removal_date"].tolist()[0] == pd.Timestamp("2019-03-01")


def test_day_first_with_dots_names_the_dotted_format(tmp_path):
    text = "child_id,removal_date\nA,01.02.2019\nB,13.02.2019\n"
    _, [p] = _load(tmp_path, "episodes", text)
    assert 'date_format = "%d.%m.%Y"' in p.message and "'13.02.2019'" in p.message


def test_a_column_of_excel_serials_is_read_as_dates(tmp_path):
    serials = [43831, 43862, 44000, 36526, 45292]  # 2020-01-01, 2020-02-01, 2020-06-18, 2000-01-01, 2024-01-01
    text = "child_id,removal_date\n" + "".join(f"C{i},{s}\n" for i, s in enumerate(serials)) + "C9,\n"
    df, problems = _load(tmp_path, "episodes", text)
    assert df["removal_date"].tolist()[:5] == list(pd.to_datetime(
        ["2020-01-01", "2020-02-01", "2020-06-18", "2000-01-01", "2024-01-01"]))
    assert pd.isna(df["removal_date"].tolist()[5])
    [p] = problems
    assert p.severity == "warning" and p.column == "removal_date" and "Excel serial" in p.message
    assert "'43831' = 2020-01-01" in p.message


def test_excel_serials_in_a_workbook_are_read(tmp_path):
    pytest.importorskip("openpyxl")
    # a date column the spreadsheet formats as numbers is stored as numbers
    pd.DataFrame({"child_id": ["a", "b"], "removal_date": [43831, 44197.5]}).to_excel(tmp_path / "e.xlsx", index=False)
    res = load_source("episodes", {"path": "e.xlsx"}, base_dir=tmp_path)
    assert res.frames()["episodes"]["removal_date"].tolist() == list(pd.to_datetime(["2020-01-01", "2021-01-01"]))
    assert [p.severity for p in res.problems] == ["warning"]


def test_serials_among_text_dates_are_refused_with_the_reason(tmp_path):
    text = "child_id,removal_date\nA,2020-01-05\nB,43831\nC,03/04/2020\nD,43900\n"
    df, problems = _load(tmp_path, "episodes", text)
    [p] = problems  # one error for the column, not one "unparseable date" per serial
    assert p.severity == "error" and p.row == 3 and "among dates written as text" in p.message
    assert df["removal_date"].tolist()[0] == pd.Timestamp("2020-01-05")
    assert pd.isna(df["removal_date"].tolist()[1]) and pd.isna(df["removal_date"].tolist()[3])


def test_serial_birth_dates_are_read_without_showing_one(tmp_path):
    text = "child_id,birth_date\nA,42005\nB,41000\n"
    df, [p] = _load(tmp_path, "children", text)
    assert df["birth_date"].tolist() == list(pd.to_datetime(["2015-01-01", "2012-04-01"]))
    assert "42005" not in p.message and "2015-01-01" not in p.message and "41000" not in p.message


def test_placeholder_dates_become_missing_with_a_counted_warning(tmp_path):
    sentinels = ["1900-01-01", "9999-12-31", "1800-01-01", "01/01/1900", "0001-01-01", "12/31/9999"] * 2
    text = "child_id,removal_date,discharge_date\n" + "".join(
        f"C{i},2019-0{i % 9 + 1}-15,{s}\n" for i, s in enumerate(sentinels)) + "C99,2019-01-15,2019-06-30\n"
    df, problems = _load(tmp_path, "episodes", text)
    [p] = problems  # no "out of range" errors for 9999-12-31 / 0001-01-01
    assert p.severity == "warning" and p.column == "discharge_date"
    assert p.message.startswith("12 cell(s) hold placeholder dates (0001-01-01, 1800-01-01, 1900-01-01, 9999-12-31)")
    assert df["discharge_date"].isna().sum() == 12 and df["discharge_date"].tolist()[-1] == pd.Timestamp("2019-06-30")


def test_a_few_placeholders_are_counted_without_a_small_number(tmp_path):
    text = "child_id,removal_date\nA,1900-01-01\nB,2019-03-04\n"
    _, [p] = _load(tmp_path, "episodes", text)
    assert p.message.startswith("<11 cell(s) hold placeholder dates (1900-01-01)")


def test_the_order_check_is_vectorised():
    n = 400_000
    rng = np.random.default_rng(3)
    days = rng.integers(1, 13, n)  # no proof until the very last value
    text = pa.array(np.char.add(np.char.add(np.char.zfill(days.astype(str), 2), "/04/"), "2019").tolist())
    text = pa.concat_arrays([text, pa.array(["30/04/2019"])])
    t0 = time.perf_counter()
    p = check_date_order([DateColumn("d", text, False)], np.arange(2, n + 3), file="f.csv", section="episodes")
    elapsed = time.perf_counter() - t0
    assert p.row == n + 2 and "'30/04/2019'" in p.message
    assert elapsed < 5.0  # about 0.3 s: a Python loop over the rows would take many seconds


def test_a_day_first_afcars_file_is_refused_by_the_preset(tmp_path):
    from ppeval.load import load_afcars

    rows = "".join(f"A{i}\t2012-05-01\t{d:02d}/03/2019\n" for i, d in enumerate([2, 5, 17, 9]))
    (tmp_path / "FC2019A.tab").write_text("RecNumbr\tDOB\tLatRemDt\n" + rows)
    res = load_afcars(["FC2019A.tab"], base_dir=tmp_path)
    [p] = [q for q in res.problems if q.severity == "error"]
    assert (p.file, p.row, p.column) == ("FC2019A.tab", 4, "LatRemDt") and "'17/03/2019'" in p.message
    assert "the afcars preset reads dates as YYYY-MM-DD" in p.message
    assert "episodes" not in res.frames()


def test_placeholders_in_a_preset_file_become_missing(tmp_path):
    from ppeval.load import load_afcars

    rows = "A1\t2012-05-01\t2019-03-02\t1900-01-01\nA2\t2013-06-01\t2019-04-02\t2019-09-30\n"
    (tmp_path / "FC2019A.tab").write_text("RecNumbr\tDOB\tLatRemDt\tDoDFCDt\n" + rows)
    res = load_afcars(["FC2019A.tab"], base_dir=tmp_path)
    ep = res.frames()["episodes"].set_index("child_id")
    assert pd.isna(ep.loc["A1", "discharge_date"]) and ep.loc["A2", "discharge_date"] == pd.Timestamp("2019-09-30")
    [p] = [q for q in res.problems if "placeholder" in q.message]
    assert p.severity == "warning" and p.column == "DoDFCDt"


def test_no_dates_at_all_do_not_make_a_file_ambiguous(tmp_path):
    # zero placeholders ("00/00/0000") prove no order and are not dates in either order
    text = "child_id,removal_date\n" + "".join(f"K{i},00/00/20{10 + i}\n" for i in range(8)) + "K9,03/04/2019\n"
    df, problems = _load(tmp_path, "episodes", text, codes={"removal_date": {f"00/00/20{10 + i}": "" for i in range(8)}})
    assert problems == [] and df["removal_date"].tolist()[-1] == pd.Timestamp("2019-03-04")
