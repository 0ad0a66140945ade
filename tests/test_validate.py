"""Unit tests of :mod:`ppeval.validate` on Extracts built in memory.

Every check gets a good case that must stay silent and a bad case whose problem must name
the exact file, row and column. Tables carry ``_source_file``/``_source_row`` the way the
loader writes them (row = line in the source file, header = line 1).
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from ppeval.extract import Extract
from ppeval.problems import Problem, ValidationReport
from ppeval.validate import problem_counts, validate_extract

EXTRACT_DATE = "2023-12-31"


def frame(file: str, rows: list[dict], dates: tuple[str, ...] = ()) -> pd.DataFrame:
    """A canonical table from dicts, with bookkeeping columns (data rows start at line 2)."""
    df = pd.DataFrame(rows)
    for col in df.columns:
        if col in dates or col.endswith("_date"):
            df[col] = pd.to_datetime(df[col]).astype("datetime64[ns]")
        elif df[col].dtype == object:
            df[col] = df[col].astype("string")
    df["_source_file"] = file
    df["_source_row"] = np.arange(len(df), dtype=np.int64) + 2
    return df


def good_tables() -> dict[str, pd.DataFrame]:
    """A small clean extract: two families, three children, one enrolment in care."""
    children = frame(
        "children.csv",
        [
            {"child_id": "c1", "birth_date": "2012-05-01", "family_id": "f1", "sex": "female"},
            {"child_id": "c2", "birth_date": "2014-07-09", "family_id": "f1", "sex": "male"},
            {"child_id": "c3", "birth_date": "2010-01-20", "family_id": "f2", "sex": "unknown"},
        ],
    )
    episodes = frame(
        "episodes.csv",
        [
            {
                "child_id": "c1",
                "removal_date": "2019-03-01",
                "discharge_date": "2020-02-01",
                "discharge_reason": "reunification",
            },
            {
                "child_id": "c1",
                "removal_date": "2021-06-01",
                "discharge_date": None,
                "discharge_reason": None,
            },
            {
                "child_id": "c2",
                "removal_date": "2019-03-01",
                "discharge_date": "2020-02-01",
                "discharge_reason": "reunification",
            },
            {
                "child_id": "c3",
                "removal_date": "2018-01-10",
                "discharge_date": "2019-01-10",
                "discharge_reason": "adoption",
            },
        ],
    )
    reports = frame(
        "reports.csv",
        [
            {
                "report_id": "r1",
                "child_id": "c1",
                "report_date": "2019-02-20",
                "substantiated": True,
            },
            {
                "report_id": "r1",
                "child_id": "c2",
                "report_date": "2019-02-20",
                "substantiated": True,
            },
            {
                "report_id": "r2",
                "child_id": "c3",
                "report_date": "2017-12-01",
                "substantiated": False,
            },
        ],
    )
    reports["substantiated"] = reports["substantiated"].astype("boolean")
    participation = frame(
        "participation.csv",
        [
            {
                "family_id": "f1",
                "enrolled_date": "2019-04-15",
                "exit_date": "2019-10-01",
                "hours": 12.5,
            },
            {"family_id": "f2", "enrolled_date": "2018-02-01", "exit_date": None, "hours": 3.0},
        ],
    )
    families = frame(
        "families.csv",
        [
            {"child_id": "c1", "family_id": "f1"},
            {"child_id": "c2", "family_id": "f1"},
            {"child_id": "c3", "family_id": "f2"},
        ],
    )
    return {
        "children": children,
        "episodes": episodes,
        "reports": reports,
        "participation": participation,
        "families": families,
    }


def run(
    tables: dict[str, pd.DataFrame], config: dict | None = None, load_problems=None
) -> ValidationReport:
    return validate_extract(
        Extract(tables, EXTRACT_DATE, load_problems=load_problems, config=config)
    )


def edit(
    tables: dict[str, pd.DataFrame], table: str, pos: int, **values
) -> dict[str, pd.DataFrame]:
    """Set cells of row ``pos`` (0-based; line pos + 2) of one table."""
    df = tables[table].copy()
    for col, v in values.items():
        if col.endswith("_date"):
            v = pd.NaT if v is None else pd.Timestamp(v)
        df.loc[df.index[pos], col] = v
    tables = dict(tables)
    tables[table] = df
    return tables


def add_row(tables: dict[str, pd.DataFrame], table: str, **values) -> dict[str, pd.DataFrame]:
    """Append one row (line = previous last line + 1)."""
    df = tables[table]
    row = {}
    for col in df.columns.drop(["_source_file", "_source_row"]):
        v = values.get(col)
        if col.endswith("_date"):
            v = pd.NaT if v is None else pd.Timestamp(v)
        row[col] = pd.Series([v], dtype=df[col].dtype)
    row["_source_file"] = pd.Series([df["_source_file"].iloc[0]])
    row["_source_row"] = pd.Series([int(df["_source_row"].max()) + 1], dtype=np.int64)
    new = pd.concat([df, pd.DataFrame(row)], ignore_index=True)
    tables = dict(tables)
    tables[table] = new
    return tables


def where(rep: ValidationReport) -> set[tuple[str, str, int | None, str | None]]:
    return {(p.severity, p.file, p.row, p.column) for p in rep.problems}


def only(rep: ValidationReport) -> Problem:
    assert len(rep.problems) == 1, [str(p) for p in rep.problems]
    return rep.problems[0]


# ---------------------------------------------------------------------------- baseline


def test_good_extract_has_no_problems():
    rep = run(good_tables())
    assert rep.problems == [], [str(p) for p in rep.problems]
    assert rep.ok


def test_load_problems_are_kept():
    lp = Problem("error", "children.csv", 3, "DOB", None, "a date", "unparseable date", "children")
    rep = run(good_tables(), load_problems=[lp])
    assert rep.problems == [lp]
    assert rep.has_errors


# ---------------------------------------------------------------------------- episode dates


def test_discharge_before_removal():
    rep = run(edit(good_tables(), "episodes", 3, discharge_date="2017-06-30"))
    p = only(rep)
    assert (p.severity, p.file, p.row, p.column) == ("error", "episodes.csv", 5, "discharge_date")
    assert p.value == "2017-06-30"
    # the other row's date is named by its column, never quoted (one child's dates stay out of messages)
    assert "removal_date" in p.expected and "2018-01-10" not in p.expected
    assert "discharge before removal" in p.message


def test_birth_after_removal_reported_on_episode_naming_child_row():
    rep = run(edit(good_tables(), "children", 2, birth_date="2018-03-01"))
    p = only(rep)
    assert (p.severity, p.file, p.row, p.column) == ("error", "episodes.csv", 5, "removal_date")
    assert "children.csv row 4" in p.expected
    assert "2018-03-01" not in str(p)  # the birth date is identifying


def test_removal_after_extract_date():
    t = edit(good_tables(), "episodes", 1, removal_date="2024-02-01")
    rep = run(t)
    assert ("error", "episodes.csv", 3, "removal_date") in where(rep)
    p = next(p for p in rep.problems if p.row == 3)
    assert p.value == "2024-02-01" and "extract date" in p.message


def test_discharge_after_extract_date():
    rep = run(edit(good_tables(), "episodes", 3, discharge_date="2024-01-01"))
    p = only(rep)
    assert (p.severity, p.file, p.row, p.column) == ("error", "episodes.csv", 5, "discharge_date")


def test_tpr_before_removal_is_a_warning():
    t = good_tables()
    t["episodes"]["tpr_mother_date"] = pd.Series(
        pd.NaT, index=t["episodes"].index, dtype="datetime64[ns]"
    )
    t = edit(t, "episodes", 3, tpr_mother_date="2017-01-01")
    p = only(run(t))
    assert (p.severity, p.file, p.row, p.column) == (
        "warning",
        "episodes.csv",
        5,
        "tpr_mother_date",
    )
    # a TPR during the episode is fine
    assert run(edit(t, "episodes", 3, tpr_mother_date="2018-06-01")).problems == []


def test_discharge_reason_and_date_must_come_together():
    t = edit(good_tables(), "episodes", 3, discharge_reason=pd.NA)
    p = only(run(t))
    assert (p.severity, p.row, p.column) == ("warning", 5, "discharge_reason")
    t = edit(good_tables(), "episodes", 1, discharge_reason="adoption")
    p = only(run(t))
    assert (p.severity, p.row, p.column, p.value) == ("warning", 3, "discharge_date", "adoption")


# ---------------------------------------------------------------------------- ages


def test_removal_at_19_is_a_warning():
    t = edit(good_tables(), "children", 2, birth_date="1998-12-01")
    p = only(run(t))
    assert (p.severity, p.file, p.row, p.column) == ("warning", "episodes.csv", 5, "removal_date")
    assert "aged 19" in p.message and "excluded" in p.message


def test_age_18_boundary_is_the_birthday():
    # 18th birthday on the removal day: 18; one day later birthday: still 17
    t = edit(good_tables(), "children", 2, birth_date="2000-01-10")
    assert "aged 18" in only(run(t)).message
    t = edit(good_tables(), "children", 2, birth_date="2000-01-11")
    assert run(t).problems == []


def test_max_age_comes_from_config():
    t = edit(good_tables(), "children", 2, birth_date="1998-12-01")
    assert run(t, config={"cohort": {"max_age_at_removal": 21}}).problems == []


def test_implausible_age_is_one_warning_not_two():
    t = edit(good_tables(), "children", 2, birth_date="1980-01-01")
    p = only(run(t))
    assert (p.severity, p.row, p.column) == ("warning", 5, "removal_date")
    assert "implausible" in p.message
    assert "children.csv row 4" in p.expected


# ---------------------------------------------------------------------------- duplicates


def test_duplicate_child_ids_name_every_repeat_and_the_first():
    t = add_row(
        good_tables(),
        "children",
        child_id="c2",
        birth_date=pd.Timestamp("2014-07-09"),
        family_id="f1",
    )
    t = add_row(t, "children", child_id="c2", birth_date=pd.Timestamp("2014-07-09"), family_id="f1")
    rep = run(t)
    dups = [p for p in rep.problems if "duplicate" in p.message]
    assert [(p.file, p.row, p.column) for p in dups] == [
        ("children.csv", 5, "child_id"),
        ("children.csv", 6, "child_id"),
    ]
    assert all("children.csv row 3" in p.message for p in dups)
    assert all(p.value is None and p.severity == "error" for p in dups)


def test_duplicate_episode_keys():
    t = add_row(
        good_tables(),
        "episodes",
        child_id="c3",
        removal_date="2018-01-10",
        discharge_date="2018-05-01",
        discharge_reason="reunification",
    )
    rep = run(t)
    p = only(rep)
    assert (p.severity, p.file, p.row, p.column) == ("error", "episodes.csv", 6, "child_id")
    assert "child_id, removal_date" in p.message and "episodes.csv row 5" in p.message


def test_duplicate_report_keys_and_missing_report_ids():
    t = add_row(
        good_tables(),
        "reports",
        report_id="r2",
        child_id="c3",
        report_date="2017-12-02",
        substantiated=True,
    )
    p = only(run(t))
    assert (p.file, p.row, p.column) == ("reports.csv", 5, "report_id")
    # without a report id the key is incomplete: not a duplicate
    t = edit(good_tables(), "reports", 0, report_id=pd.NA)
    t = edit(t, "reports", 1, report_id=pd.NA)
    assert run(t).problems == []


def test_duplicate_child_in_families_crosswalk():
    t = add_row(good_tables(), "families", child_id="c1", family_id="f2")
    rep = run(t)
    assert ("error", "families.csv", 5, "child_id") in where(rep)


# ---------------------------------------------------------------------------- links


def test_episode_of_unknown_child_is_an_error():
    t = add_row(good_tables(), "episodes", child_id="zz9", removal_date="2020-01-01")
    p = only(run(t))
    assert (p.severity, p.file, p.row, p.column, p.value) == (
        "error",
        "episodes.csv",
        6,
        "child_id",
        None,
    )
    assert "zz9" not in str(p)


def test_report_of_unknown_child_is_a_warning():
    t = add_row(
        good_tables(),
        "reports",
        report_id="r9",
        child_id="zz9",
        report_date="2020-01-01",
        substantiated=False,
    )
    p = only(run(t))
    assert (p.severity, p.file, p.row, p.column) == ("warning", "reports.csv", 5, "child_id")


def test_enrolment_of_unknown_child_is_an_error():
    t = good_tables()
    t["participation"]["child_id"] = pd.array([pd.NA, pd.NA], dtype="string")
    t = add_row(t, "participation", child_id="zz9", enrolled_date="2019-04-01")
    p = only(run(t))
    assert (p.severity, p.file, p.row, p.column) == ("error", "participation.csv", 4, "child_id")


def test_family_missing_from_crosswalk_is_an_error():
    t = add_row(good_tables(), "participation", family_id="f404", enrolled_date="2019-04-01")
    p = only(run(t))
    assert (p.severity, p.file, p.row, p.column) == ("error", "participation.csv", 4, "family_id")
    assert "f404" not in str(p)


def test_children_family_id_is_a_crosswalk_when_there_is_no_families_table():
    t = good_tables()
    del t["families"]
    assert run(t).problems == []
    t["children"] = t["children"].drop(columns="family_id")
    rep = run(t)
    assert {(p.row, p.column) for p in rep.errors} == {(2, "family_id"), (3, "family_id")}
    assert all("no crosswalk" in p.message for p in rep.errors)


def test_children_family_id_disagreeing_with_crosswalk_is_a_warning():
    t = edit(good_tables(), "children", 1, family_id="f2")
    p = only(run(t))
    assert (p.severity, p.file, p.row, p.column, p.value) == (
        "warning",
        "children.csv",
        3,
        "family_id",
        None,
    )


def test_enrolment_naming_neither_child_nor_family():
    t = edit(good_tables(), "participation", 1, family_id=pd.NA)
    p = only(run(t))
    assert (p.severity, p.file, p.row, p.column) == ("error", "participation.csv", 3, "family_id")


# ---------------------------------------------------------------------------- enrolment timing


def test_enrolment_outside_every_episode_is_a_warning_in_care():
    t = edit(good_tables(), "participation", 0, enrolled_date="2020-06-01", exit_date=None)
    p = only(run(t, config={"cohort": {"design": "in_care"}}))
    assert (p.severity, p.file, p.row, p.column, p.value) == (
        "warning",
        "participation.csv",
        2,
        "enrolled_date",
        "2020-06-01",
    )
    assert "will not count as treated" in p.message


def test_enrolment_during_a_siblings_or_open_episode_counts():
    # f1's second episode of c1 is open (from 2021-06-01): enrolment in 2023 is inside it
    t = edit(good_tables(), "participation", 0, enrolled_date="2023-01-05", exit_date=None)
    assert run(t).problems == []
    # an enrolment naming only a child uses the child's family for the siblings' episodes
    t = good_tables()
    t["participation"]["child_id"] = pd.array(["c2", pd.NA], dtype="string")
    t = edit(t, "participation", 0, family_id=pd.NA, enrolled_date="2021-07-01", exit_date=None)
    assert run(t).problems == []  # c2 is out of care then, but its sister c1 is in care


def test_prevention_enrolment_before_first_report():
    cfg = {"cohort": {"design": "prevention"}}
    assert run(good_tables(), config=cfg).problems == []
    t = edit(good_tables(), "participation", 0, enrolled_date="2019-01-01")
    p = only(run(t, config=cfg))
    assert (p.severity, p.row, p.column) == ("warning", 2, "enrolled_date")
    assert "first report" in p.expected and "2019-02-20" not in p.expected
    # the in_care rule is not applied in a prevention design and vice versa
    assert run(t).problems[0].message.startswith("enrolment outside")


def test_prevention_enrolment_without_any_report():
    t = good_tables()
    t["reports"] = t["reports"].iloc[:2]
    p = only(run(t, config={"cohort": {"design": "prevention"}}))
    assert (p.severity, p.file, p.row, p.column) == (
        "warning",
        "participation.csv",
        3,
        "enrolled_date",
    )
    assert "no maltreatment report" in p.message


def test_exit_before_enrolment():
    t = edit(good_tables(), "participation", 0, exit_date="2019-04-01")
    p = only(run(t))
    assert (p.severity, p.file, p.row, p.column, p.value) == (
        "error",
        "participation.csv",
        2,
        "exit_date",
        "2019-04-01",
    )


def test_negative_hours():
    t = edit(good_tables(), "participation", 1, hours=-2.0)
    p = only(run(t))
    assert (p.severity, p.row, p.column, p.value) == ("error", 3, "hours", "-2")


# ---------------------------------------------------------------------------- episode sequence


def test_overlapping_episodes():
    t = add_row(
        good_tables(),
        "episodes",
        child_id="c3",
        removal_date="2018-12-01",
        discharge_date="2019-06-01",
        discharge_reason="reunification",
    )
    p = only(run(t))
    assert (p.severity, p.file, p.row, p.column, p.value) == (
        "error",
        "episodes.csv",
        6,
        "removal_date",
        "2018-12-01",
    )
    assert "episodes.csv row 5" in p.message
    assert "discharge_date of the child's earlier episode" in p.expected and "2019-01-10" not in p.expected


def test_overlap_with_an_earlier_not_previous_episode():
    # c3: 2018-01-10..2019-01-10 (row 5), then 2018-03-01..2018-04-01 (row 6) and
    # 2018-06-01..2018-07-01 (row 7): both overlap row 5
    t = add_row(
        good_tables(),
        "episodes",
        child_id="c3",
        removal_date="2018-03-01",
        discharge_date="2018-04-01",
        discharge_reason="reunification",
    )
    t = add_row(
        t,
        "episodes",
        child_id="c3",
        removal_date="2018-06-01",
        discharge_date="2018-07-01",
        discharge_reason="reunification",
    )
    rep = run(t)
    assert [(p.row, p.column) for p in rep.problems] == [(6, "removal_date"), (7, "removal_date")]
    assert all("episodes.csv row 5" in p.message for p in rep.problems)


def test_same_day_reentry_is_not_an_overlap():
    t = add_row(
        good_tables(),
        "episodes",
        child_id="c3",
        removal_date="2019-01-10",
        discharge_date="2019-06-01",
        discharge_reason="reunification",
    )
    assert run(t).problems == []


def test_open_episode_followed_by_later_episode():
    t = edit(good_tables(), "episodes", 0, discharge_date=None, discharge_reason=pd.NA)
    p = only(run(t))
    assert (p.severity, p.file, p.row, p.column) == ("error", "episodes.csv", 2, "discharge_date")
    assert "episodes.csv row 3" in p.message


def test_episode_sequence_ignores_file_order():
    t = good_tables()
    t["episodes"] = t["episodes"].iloc[::-1].reset_index(drop=True)
    assert run(t).problems == []


# ---------------------------------------------------------------------------- single-table


def test_unknown_code():
    t = edit(good_tables(), "children", 0, sex="X")
    p = only(run(t))
    assert (p.severity, p.file, p.row, p.column, p.value) == (
        "error",
        "children.csv",
        2,
        "sex",
        "X",
    )
    assert "female" in p.expected


def test_missing_required_value_and_column():
    t = edit(good_tables(), "reports", 2, report_date=None)
    p = only(run(t))
    assert (p.severity, p.file, p.row, p.column) == ("error", "reports.csv", 4, "report_date")
    t = good_tables()
    t["reports"] = t["reports"].drop(columns="substantiated")
    p = only(run(t))
    assert (p.severity, p.file, p.row, p.column) == ("error", "reports.csv", None, "substantiated")


def test_cells_the_loader_reported_are_not_reported_again():
    t = edit(good_tables(), "episodes", 3, removal_date=None)
    lp = Problem(
        "error",
        "episodes.csv",
        5,
        "removal_date",
        "2018-13-45",
        "a date",
        "unparseable date",
        "episodes",
    )
    rep = run(t, load_problems=[lp])
    assert rep.problems == [lp]
    # the same cell under the source's name (from the config's column map) is covered too
    cfg = {"data": {"episodes": {"columns": {"removal_date": "RemDt"}}}}
    lp = Problem(
        "error", "episodes.csv", 5, "RemDt", "2018-13-45", "a date", "unparseable date", "episodes"
    )
    assert run(t, config=cfg, load_problems=[lp]).problems == [lp]


def test_source_column_names_from_the_config():
    cfg = {"data": {"episodes": {"columns": {"discharge_date": "DischargeDt"}}}}
    p = only(run(edit(good_tables(), "episodes", 3, discharge_date="2017-06-30"), config=cfg))
    assert p.column == "DischargeDt"


def test_string_dates_built_in_memory_are_checked():
    t = good_tables()
    t["episodes"]["discharge_date"] = ["2020-02-01", None, "2021-02-30", "2019-01-10"]
    p = only(run(t))
    assert (p.row, p.column, p.value) == (4, "discharge_date", "2021-02-30")


def test_tables_without_bookkeeping_columns_are_located_by_table_and_position():
    t = {k: v.drop(columns=["_source_file", "_source_row"]) for k, v in good_tables().items()}
    t = edit(t, "episodes", 3, discharge_date="2017-06-30")
    p = only(run(t))
    assert (p.file, p.row, p.column) == ("episodes", 5, "discharge_date")


def test_problems_are_sorted_by_file_row_column():
    t = edit(good_tables(), "episodes", 3, discharge_date="2024-06-30", removal_date="2024-07-01")
    t = edit(t, "children", 1, sex="robot")
    t = edit(t, "participation", 0, exit_date="2019-01-01")
    lp = Problem("warning", "children.csv", None, None, None, "x", "file-level", "children")
    rep = run(t, load_problems=[lp])
    keys = [(p.file, -1 if p.row is None else p.row, p.column or "") for p in rep.problems]
    assert keys == sorted(keys)
    assert rep.problems[0] is lp
    assert len(rep.problems) >= 5


def test_problem_counts_summary():
    t = add_row(good_tables(), "episodes", child_id="zz1", removal_date="2020-01-01")
    t = add_row(t, "episodes", child_id="zz2", removal_date="2020-01-01")
    counts = problem_counts(run(t))
    assert counts[["severity", "column", "count", "first_row"]].values.tolist() == [
        ["error", "child_id", 2, 6]
    ]


# ---------------------------------------------------------------------------- privacy


SECRET_CHILD = "CHILD-7Q4XW"
SECRET_FAMILY = "FAM-93KZP"
SECRET_REPORT = "RPT-55MNB"
SECRET_BIRTH = "1987-11-23"


def test_no_identifying_value_in_any_problem():
    """Trigger every check on records with distinctive ids and birth dates."""
    children = frame(
        "children.csv",
        [
            {
                "child_id": SECRET_CHILD,
                "birth_date": SECRET_BIRTH,
                "family_id": SECRET_FAMILY,
                "sex": "x",
            },
            {
                "child_id": SECRET_CHILD,
                "birth_date": SECRET_BIRTH,
                "family_id": "OTHER-FAM",
                "sex": "male",
            },
            {
                "child_id": "KID-2",
                "birth_date": "2030-01-01",
                "family_id": SECRET_FAMILY,
                "sex": "male",
            },
            {
                "child_id": "KID-3",
                "birth_date": "2001-01-01",
                "family_id": SECRET_FAMILY,
                "sex": "male",
            },
        ],
    )
    episodes = frame(
        "episodes.csv",
        [
            {"child_id": SECRET_CHILD, "removal_date": "2020-01-01", "discharge_date": None},
            {
                "child_id": SECRET_CHILD,
                "removal_date": "2020-01-01",
                "discharge_date": "2019-01-01",
            },
            {
                "child_id": SECRET_CHILD,
                "removal_date": "2021-01-01",
                "discharge_date": "2022-01-01",
            },
            {"child_id": "KID-2", "removal_date": "2020-01-01", "discharge_date": "2020-05-01"},
            {"child_id": "KID-3", "removal_date": "2020-01-01", "discharge_date": "2020-05-01"},
            {
                "child_id": "GHOST-" + SECRET_CHILD,
                "removal_date": "2024-01-01",
                "discharge_date": None,
            },
        ],
    )
    reports = frame(
        "reports.csv",
        [
            {
                "report_id": SECRET_REPORT,
                "child_id": SECRET_CHILD,
                "report_date": "2019-01-01",
                "substantiated": True,
            },
            {
                "report_id": SECRET_REPORT,
                "child_id": SECRET_CHILD,
                "report_date": "2019-01-01",
                "substantiated": True,
            },
            {
                "report_id": "R-2",
                "child_id": "GHOST-" + SECRET_CHILD,
                "report_date": "2019-01-01",
                "substantiated": True,
            },
        ],
    )
    reports["substantiated"] = reports["substantiated"].astype("boolean")
    participation = frame(
        "participation.csv",
        [
            {
                "family_id": SECRET_FAMILY,
                "child_id": None,
                "enrolled_date": "2015-01-01",
                "exit_date": "2014-01-01",
            },
            {
                "family_id": "NOPE-" + SECRET_FAMILY,
                "child_id": None,
                "enrolled_date": "2020-02-01",
                "exit_date": None,
            },
            {
                "family_id": None,
                "child_id": "GHOST2-" + SECRET_CHILD,
                "enrolled_date": "2020-02-01",
                "exit_date": None,
            },
        ],
    )
    families = frame(
        "families.csv",
        [
            {"child_id": SECRET_CHILD, "family_id": SECRET_FAMILY},
            {"child_id": SECRET_CHILD, "family_id": SECRET_FAMILY},
            {"child_id": "KID-2", "family_id": SECRET_FAMILY},
            {"child_id": "KID-3", "family_id": SECRET_FAMILY},
        ],
    )
    tables = {
        "children": children,
        "episodes": episodes,
        "reports": reports,
        "participation": participation,
        "families": families,
    }
    for design in ("in_care", "prevention"):
        rep = run(tables, config={"cohort": {"design": design}})
        assert len(rep.problems) >= 12
        text = str(rep) + rep.to_frame().to_csv() + problem_counts(rep).to_csv()
        for secret in (
            SECRET_CHILD,
            SECRET_FAMILY,
            SECRET_REPORT,
            SECRET_BIRTH,
            "2030-01-01",
            "2001-01-01",
        ):
            assert secret not in text, secret
        identifying = {"child_id", "family_id", "report_id", "birth_date"}
        assert all(p.value is None for p in rep.problems if p.column in identifying)
    # the kind of problem, without a note such as "; not used by the prevention analysis ..."
    messages = {p.message.split(":")[0].split(";")[0] for p in rep.problems}
    assert {"discharge before removal", "removal before the child's birth"} <= messages


# ---------------------------------------------------------------------------- scale


def synthetic_extract(n: int, seed: int = 1) -> Extract:
    """A clean extract of ``n`` children (1.2 episodes and 2 reports each, 10% enrolled)."""
    rng = np.random.default_rng(seed)
    num = pd.Series(np.arange(n)).astype(str)
    ids = ("C" + num).astype("string")
    fam = ("F" + (pd.Series(np.arange(n)) // 3).astype(str)).astype("string")
    birth = pd.Timestamp("2000-01-01") + pd.to_timedelta(rng.integers(0, 365 * 15, n), unit="D")
    children = pd.DataFrame(
        {
            "child_id": ids,
            "birth_date": birth,
            "family_id": fam,
            "sex": pd.array(rng.choice(["female", "male"], n), dtype="string"),
        }
    )
    extra = rng.choice(n, n // 5, replace=False)
    ep_child = np.sort(np.concatenate([np.arange(n), extra]))
    second = np.r_[False, ep_child[1:] == ep_child[:-1]]
    rem = birth[ep_child] + pd.to_timedelta(
        rng.integers(0, 365 * 3, ep_child.size) + 2000 * second, unit="D"
    )
    dis = rem + pd.to_timedelta(rng.integers(10, 900, ep_child.size), unit="D")
    episodes = pd.DataFrame(
        {
            "child_id": ids.to_numpy()[ep_child],
            "removal_date": rem,
            "discharge_date": dis,
            "discharge_reason": "reunification",
        }
    )
    rc = rng.integers(0, n, 2 * n)
    reports = pd.DataFrame(
        {
            "report_id": ("R" + pd.Series(np.arange(2 * n)).astype(str)).astype("string"),
            "child_id": ids.to_numpy()[rc],
            "report_date": birth[rc] + pd.to_timedelta(rng.integers(0, 365 * 5, 2 * n), unit="D"),
            "substantiated": pd.array(rng.random(2 * n) < 0.3, dtype="boolean"),
        }
    )
    first_ep = np.flatnonzero(~second)[rng.choice(n, n // 10, replace=False)]
    enr = rem[first_ep] + pd.Timedelta(days=5)
    participation = pd.DataFrame(
        {
            "family_id": fam.to_numpy()[ep_child[first_ep]],
            "enrolled_date": enr,
            "exit_date": enr + pd.Timedelta(days=60),
            "hours": rng.random(first_ep.size) * 20,
        }
    )
    families = pd.DataFrame({"child_id": ids, "family_id": fam})
    tables = {
        "children": children,
        "episodes": episodes,
        "reports": reports,
        "participation": participation,
        "families": families,
    }
    for name, df in tables.items():
        df["_source_file"] = pd.Categorical([f"{name}.csv"] * len(df))
        df["_source_row"] = np.arange(len(df), dtype=np.int64) + 2
    return Extract(tables, "2030-12-31")


def plant_errors(ext: Extract) -> Extract:
    """Three planted errors at known lines of a large extract."""
    e = ext.episodes
    e.loc[10, "discharge_date"] = e.loc[10, "removal_date"] - pd.Timedelta(days=1)
    c = ext.children
    c.loc[500, "child_id"] = c.loc[499, "child_id"]
    p = ext.participation
    p.loc[7, "exit_date"] = p.loc[7, "enrolled_date"] - pd.Timedelta(days=3)
    return ext


def test_validate_100k_children_under_5_seconds():
    ext = plant_errors(synthetic_extract(100_000))
    t0 = time.perf_counter()
    rep = validate_extract(ext)
    elapsed = time.perf_counter() - t0
    assert elapsed < 5, f"validate_extract took {elapsed:.2f}s on 100,000 children"
    assert ("error", "episodes.csv", 12, "discharge_date") in where(rep)
    assert ("error", "children.csv", 502, "child_id") in where(rep)
    assert ("error", "participation.csv", 9, "exit_date") in where(rep)
    # child C500 was overwritten, so its episodes now name a child missing from children
    orphans = set(ext.episodes.index[ext.episodes["child_id"] == "C500"] + 2)
    expected = {("episodes.csv", 12), ("children.csv", 502), ("participation.csv", 9)}
    expected |= {("episodes.csv", int(r)) for r in orphans}
    expected |= {
        ("reports.csv", int(r)) for r in ext.reports.index[ext.reports["child_id"] == "C500"] + 2
    }
    # and its crosswalk row links the family to no child
    expected |= {("families.csv", int(r)) for r in ext.families.index[ext.families["child_id"] == "C500"] + 2}
    assert {(p.file, p.row) for p in rep.problems} == expected


@pytest.mark.slow
def test_validate_1m_children():
    ext = plant_errors(synthetic_extract(1_000_000))
    t0 = time.perf_counter()
    rep = validate_extract(ext)
    elapsed = time.perf_counter() - t0
    print(f"validate_extract on 1,000,000 children: {elapsed:.2f}s")
    assert elapsed < 15, f"validate_extract took {elapsed:.2f}s on 1,000,000 children"
    assert ("error", "episodes.csv", 12, "discharge_date") in where(rep)
    assert ("error", "children.csv", 502, "child_id") in where(rep)


# ---------------------------------------------------------------------------- unreadable tables


def test_an_unreadable_children_file_does_not_cascade():
    """With children.csv unreadable, episodes are not all reported as orphans."""
    t = good_tables()
    t["children"] = t["children"].iloc[0:0]
    lp = Problem(
        "error",
        "children.csv",
        None,
        None,
        None,
        "a header",
        "the file is empty (0 bytes)",
        "children",
    )
    rep = run(t, load_problems=[lp])
    assert rep.problems == [lp]
    # without the load problem the same extract is all orphans? no: an empty children
    # table means no children file was given, and links cannot be checked either
    assert run(t).problems == []


def test_an_unreadable_families_file_does_not_cascade():
    t = good_tables()
    t["families"] = t["families"].iloc[0:0]
    t["children"] = t["children"].drop(columns="family_id")
    lp = Problem(
        "error",
        "families.csv",
        1,
        None,
        None,
        "comma-delimited",
        "looks semicolon-delimited",
        "families",
    )
    assert run(t, load_problems=[lp]).problems == [lp]
    # the same extract with no families file at all: every enrolment is unlinkable
    rep = run(t)
    assert {(p.file, p.row, p.column) for p in rep.errors} == {
        ("participation.csv", 2, "family_id"),
        ("participation.csv", 3, "family_id"),
    }


def test_a_failed_episodes_file_skips_the_enrolment_check():
    t = good_tables()
    t["episodes"] = t["episodes"].iloc[0:0]
    lp = Problem(
        "error", "episodes.csv", None, None, None, "columns removal_date", "missing", "episodes"
    )
    assert run(t, load_problems=[lp]).problems == [lp]
    # a ragged row (error without column) in a file that did load is not a failed table
    t = good_tables()
    t["episodes"] = t["episodes"].iloc[[0, 1, 2]]  # c3's episode (line 5) was ragged
    lp = Problem(
        "error", "episodes.csv", 5, None, None, "9 fields", "line 5 has 10 field(s)", "episodes"
    )
    rep = run(t, load_problems=[lp])
    assert [(p.file, p.row, p.column) for p in rep.warnings] == [
        ("participation.csv", 3, "enrolled_date")
    ]


# ---------------------------------------------------------------------------- column names


def test_source_names_recorded_by_the_loader_win():
    t = edit(good_tables(), "episodes", 3, discharge_date="2017-06-30")
    t["episodes"].attrs["source_columns"] = {"episodes.csv": {"discharge_date": "DschDt"}}
    cfg = {"data": {"episodes": {"columns": {"discharge_date": "Other"}}}}
    assert only(run(t, config=cfg)).column == "DschDt"
    t["episodes"].attrs["source_columns"] = {"discharge_date": "DISCH"}
    assert only(run(t)).column == "DISCH"


def test_preset_rows_are_named_with_ndacan_elements():
    t = edit(good_tables(), "episodes", 3, discharge_date="2017-06-30")
    t["episodes"]["_source_file"] = "FC2019.tab"
    cfg = {"data": {"afcars": {"paths": ["FC2019.tab"], "columns": {}}}}
    assert only(run(t, config=cfg)).column == "DoDFCDt"
    # a preset column override renames the element
    cfg = {"data": {"afcars": {"paths": ["FC2019.tab"], "columns": {"dodfcdt": "DISCHARGE"}}}}
    assert only(run(t, config=cfg)).column == "DISCHARGE"
    # the preset's names apply only to the preset's files
    t["episodes"]["_source_file"] = "episodes.csv"
    assert (
        only(run(t, config={"data": {"afcars": {"paths": ["FC2019.tab"]}}})).column
        == "discharge_date"
    )


def test_any_index_labels_work():
    """Tables filtered or indexed by the caller: positions, not labels, locate rows."""
    t = {k: v.set_axis(np.arange(len(v))[::-1] * 7 + 3) for k, v in good_tables().items()}
    t = edit(t, "episodes", 3, discharge_date="2017-06-30")
    t = edit(t, "participation", 0, exit_date="2019-01-01")
    assert where(run(t)) == {
        ("error", "episodes.csv", 5, "discharge_date"),
        ("error", "participation.csv", 2, "exit_date"),
    }


def test_a_column_the_loader_summarised_is_not_reported_again():
    """Beyond its listing limit the loader counts bad cells in one column-level problem."""
    t = edit(good_tables(), "episodes", 2, removal_date=None)
    t = edit(t, "episodes", 3, removal_date=None)
    listed = Problem(
        "error", "episodes.csv", 4, "removal_date", "x", "a date", "unparseable date", "episodes"
    )
    rest = Problem(
        "error",
        "episodes.csv",
        None,
        "removal_date",
        None,
        "a date",
        "unparseable date: 1 more cell(s)",
        "episodes",
    )
    assert run(t, load_problems=[listed, rest]).problems == [rest, listed]
    assert {p.row for p in run(t, load_problems=[listed]).problems} == {4, 5}
