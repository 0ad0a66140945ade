"""Hardening: bad input never ends in a traceback, every problem is located, inputs stay as they were.

Three layers, all through ``ppeval validate`` (:func:`ppeval.cli.main`, and a few in a real
subprocess):

* **Fixed cases** (``CASES``, 70: 40 that must fail validation, 9 config errors and 21
  damaged-looking inputs that must load, some with a warning): one corruption each of a
  small valid extract (``tests/bad_inputs/good``, the AFCARS baseline
  ``tests/bad_inputs/afcars_good``, or a SQLite source built from the good episodes), with
  the exit status and the exact file/row/column of the problems it must give. They add to
  the 42 cases of ``tests/bad_inputs`` (none repeats one of those): byte-level damage (NUL
  bytes, a 10 MB field, CR-only line ends, UTF-16 with and without a byte-order mark),
  header damage (duplicate names, a trailing tab, no header at all), numbers and dates at
  the edges (overflow, ``inf``, ``0000-00-00``, ``9999-12-31``, ``1899-12-31``), mixed
  AFCARS code sets, all-missing required columns, broken or hostile SQL sources and bad
  configs.
* **Property-based tests** (hypothesis): random corruptions of the committed synthetic files
  (truncation, dropped/swapped/duplicated columns and lines, re-encoding, BOMs, line ends,
  random cell values, impossible dates, mixed codes, huge fields, empty files) and random
  config edits. For every example: exit 0/1/2, no traceback, every printed problem is well
  formed and names a file of the config with a row inside the file, no id of the extract is
  echoed, and every input is byte-identical afterwards.
* **Subprocess**: a few cases through ``python -m ppeval`` in a fresh interpreter.
"""

from __future__ import annotations

import codecs
import gzip
import hashlib
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent / "hardening"))
from support import (  # noqa: E402
    AFCARS_GOOD,
    GOOD,
    SYNTHETIC,
    copy_good,
    hash_tree,
    parse_validate_output,
    run_cli,
    trimmed_synthetic,
)

from ppeval.load import load_extract  # noqa: E402
from ppeval.privacy import IdentifierGuard  # noqa: E402


# ------------------------------------------------------------------------------ editing helpers
def _lines(p: Path) -> list[bytes]:
    return p.read_bytes().split(b"\n")


def set_cell(fname: str, line: int, column: str, value: bytes | str, delim: bytes = b",") -> Callable[[Path], None]:
    """Replace one cell (``line`` as a person counts it, header = 1) of a delimited file."""

    def edit(d: Path) -> None:
        p = d / fname
        rows = _lines(p)
        header = rows[0].rstrip(b"\r").split(delim)
        j = header.index(column.encode())
        cells = rows[line - 1].split(delim)
        cells[j] = value.encode() if isinstance(value, str) else value
        rows[line - 1] = delim.join(cells)
        p.write_bytes(b"\n".join(rows))

    return edit


def tab_cell(line: int, column: str, value: str, fname: str = "FC2020.tab") -> Callable[[Path], None]:
    return set_cell(fname, line, column, value, b"\t")


def replace(fname: str, old: bytes, new: bytes, count: int = 1) -> Callable[[Path], None]:
    def edit(d: Path) -> None:
        p = d / fname
        data = p.read_bytes()
        assert old in data, (fname, old)
        p.write_bytes(data.replace(old, new, count))

    return edit


def rewrite(fname: str, fn: Callable[[bytes], bytes]) -> Callable[[Path], None]:
    def edit(d: Path) -> None:
        p = d / fname
        p.write_bytes(fn(p.read_bytes()))

    return edit


def config(old: str, new: str) -> Callable[[Path], None]:
    return replace("eval.toml", old.encode(), new.encode())


def both(*edits: Callable[[Path], None]) -> Callable[[Path], None]:
    def edit(d: Path) -> None:
        for e in edits:
            e(d)

    return edit


def _sqlite(d: Path) -> None:
    """A warehouse with the good episodes, for the SQL source cases."""
    import csv

    rows = list(csv.reader((GOOD / "episodes.csv").read_text().splitlines()))
    with sqlite3.connect(d / "warehouse.db") as con:
        con.execute(f"CREATE TABLE removals ({', '.join(c + ' TEXT' for c in rows[0])})")
        con.executemany(f"INSERT INTO removals VALUES ({', '.join('?' * len(rows[0]))})", rows[1:])
    con.close()


def sql_source(query: str, params: str = "{}") -> Callable[[Path], None]:
    """The episodes from a SQLite database instead of episodes.csv."""

    def edit(d: Path) -> None:
        _sqlite(d)
        cfg = d / "eval.toml"
        text = cfg.read_text()
        text = text.replace('[data.episodes]\npath = "episodes.csv"',
                            f'[data.episodes]\nurl = "sqlite:///warehouse.db"\nquery = "{query}"\nparams = {params}')
        cfg.write_text(text)

    return edit


def utf16(encoding: str, bom: bool) -> Callable[[bytes], bytes]:
    def fn(b: bytes) -> bytes:
        text = b.decode("utf-8")
        data = text.encode(encoding)
        if bom:
            data = (codecs.BOM_UTF16_LE if encoding.endswith("le") else codecs.BOM_UTF16_BE) + data
        return data

    return fn


# ------------------------------------------------------------------------------ the cases
@dataclass
class P:
    """An expected problem: exact severity, file, row and column; a message fragment."""

    severity: str
    file: str
    row: int | None
    column: str | None
    message: str


@dataclass
class Case:
    name: str
    edit: Callable[[Path], None]
    exit: int
    problems: list[P] = field(default_factory=list)
    base: str = "good"  # good | afcars
    exact: bool = True  # no problem other than the listed ones
    stderr: str = ""  # config errors (exit 2): a fragment of the message
    max_output: int = 20_000  # bytes printed at most (a 10 MB cell must not be echoed)
    check: Callable[[Path], None] | None = None  # a further check on the case folder


def _no_file(name: str) -> Callable[[Path], None]:
    def check(d: Path) -> None:
        assert not Path(name).exists() and not (d / Path(name).name).exists(), f"{name} was created"

    return check


E, W = "error", "warning"
TEN_MB = 10 * 1024 * 1024

CASES: list[Case] = [
    # -- bytes ------------------------------------------------------------------------------
    Case("nul_byte_in_a_date", replace("episodes.csv", b"2021-06-01", b"2021-06\x0001"), 1,
         [P(E, "episodes.csv", 3, "removal_date", "unparseable date")]),
    Case("line_of_nul_bytes", replace("episodes.csv", b"C002,2019-03-01,2020-02-01,reunification,1,0,1,,",
                                      b"\x00" * 40), 1,
         [P(E, "episodes.csv", 4, None, "field(s)")], exact=False),
    Case("nul_bytes_in_an_id", replace("reports.csv", b"R06,C006", b"R\x0006,C006"), 0),
    Case("ten_mb_field_in_a_text_column", replace("children.csv", b",19013\nC004", b"," + b"9" * TEN_MB + b"\nC004"), 0),
    Case("ten_mb_field_in_a_date_column", replace("episodes.csv", b"2021-06-01", b"2" * TEN_MB), 1,
         [P(E, "episodes.csv", 3, "removal_date", "unparseable date")]),
    Case("ten_mb_header_name", replace("children.csv", b",county\n", b"," + b"x" * TEN_MB + b"\n"), 0),
    Case("cr_only_line_ends", rewrite("episodes.csv", lambda b: b.replace(b"\n", b"\r")), 0),
    Case("cr_only_line_ends_bad_date_on_line_5",
         both(set_cell("episodes.csv", 5, "removal_date", "2018-13-10"), rewrite("episodes.csv", lambda b: b.replace(b"\n", b"\r"))), 1,
         [P(E, "episodes.csv", 5, "removal_date", "unparseable date")]),
    Case("mixed_crlf_and_lf", rewrite("families.csv", lambda b: b.replace(b"\n", b"\r\n", 3)), 0),
    Case("utf16_le_with_bom", rewrite("children.csv", utf16("utf-16-le", True)), 0),
    Case("utf16_be_with_bom", rewrite("participation.csv", utf16("utf-16-be", True)), 0),
    Case("utf16_without_bom", rewrite("children.csv", utf16("utf-16-le", False)), 1,
         [P(E, "children.csv", None, None, "UTF-16")]),
    Case("utf16_configured", both(rewrite("children.csv", utf16("utf-16-le", False)),
                                  config('path = "children.csv"', 'path = "children.csv"\nencoding = "utf-16-le"')), 0),
    Case("latin1_configured_and_used", both(replace("participation.csv", b"mentoring", b"mentor\xeda"),
                                            config('path = "participation.csv"', 'path = "participation.csv"\nencoding = "latin-1"')), 0),
    Case("utf8_file_read_as_utf16", config('path = "families.csv"', 'path = "families.csv"\nencoding = "utf-16"'), 1,
         [P(E, "families.csv", None, None, "no data rows")], exact=False),
    Case("bom_and_crlf_in_afcars", rewrite("FC2020.tab", lambda b: codecs.BOM_UTF8 + b.replace(b"\n", b"\r\n")), 0,
         base="afcars"),
    Case("escape_sequence_in_a_value", replace("episodes.csv", b"2021-06-01", b"\x1b[2J\x1b[31m"), 1,
         [P(E, "episodes.csv", 3, "removal_date", "unparseable date")]),
    # -- headers and layout -----------------------------------------------------------------
    Case("duplicate_header_names", replace("children.csv", b"child_id,birth_date,family_id,sex",
                                           b"child_id,birth_date,family_id,birth_date"), 0,
         [P(W, "children.csv", None, "birth_date", "repeats another column")]),
    Case("duplicate_id_column", replace("families.csv", b"child_id,family_id", b"child_id,child_id"), 1,
         [P(E, "families.csv", None, None, "missing required column")], exact=False),
    Case("header_with_trailing_tab", replace("FC2020.tab", b"DISREASN\n", b"DISREASN\t\n"), 0, base="afcars"),
    Case("header_and_rows_with_trailing_tab", rewrite("FC2020.tab", lambda b: b.replace(b"\n", b"\t\n")), 0, base="afcars"),
    Case("header_with_trailing_comma_rows_without", replace("families.csv", b"child_id,family_id\n", b"child_id,family_id,,\n"), 0),
    Case("no_header_line", rewrite("children.csv", lambda b: b.split(b"\n", 1)[1]), 1,
         [P(E, "children.csv", None, None, "looks like a record")], exact=False),
    Case("blank_lines_between_rows", both(set_cell("episodes.csv", 4, "removal_date", "2019-3-1x"),
                                          replace("episodes.csv", b"\nC002,", b"\n\n \n\nC002,")), 1,
         [P(E, "episodes.csv", 7, "removal_date", "unparseable date")]),
    Case("unclosed_quote", replace("episodes.csv", b"C003,2018-01-10", b'C003,"2018-01-10'), 1,
         [P(E, "episodes.csv", 5, None, "unclosed quote")], exact=False),
    Case("five_thousand_extra_columns",
         rewrite("families.csv", lambda b: b"\n".join(
             (line + b"".join(b",x%d" % i if n == 0 else b",%d" % i for i in range(5000))) if line else line
             for n, line in enumerate(b.split(b"\n")))), 0),
    # -- numbers ----------------------------------------------------------------------------
    Case("hours_overflow_to_infinity", set_cell("participation.csv", 2, "hours", "1e400"), 1,
         [P(E, "participation.csv", 2, "hours", "not a number")]),
    Case("hours_inf", set_cell("participation.csv", 3, "hours", "inf"), 1,
         [P(E, "participation.csv", 3, "hours", "not a number")]),
    Case("hours_nan_text", set_cell("participation.csv", 4, "hours", "NaN"), 1,
         [P(E, "participation.csv", 4, "hours", "not a number")]),
    Case("contacts_past_int64", set_cell("participation.csv", 2, "contacts", "99999999999999999999999"), 1,
         [P(E, "participation.csv", 2, "contacts", "whole number")]),
    Case("contacts_blank", set_cell("participation.csv", 2, "contacts", ""), 0),
    Case("placements_negative_zero_padded", set_cell("episodes.csv", 2, "placements", "-0003"), 0),
    # -- dates ------------------------------------------------------------------------------
    Case("date_0000_00_00", set_cell("episodes.csv", 3, "removal_date", "0000-00-00"), 1,
         [P(E, "episodes.csv", 3, "removal_date", "unparseable date")]),
    # placeholder dates ("no date" in many systems) become missing with a warning (issue 13)
    Case("discharge_9999_12_31", set_cell("episodes.csv", 4, "discharge_date", "9999-12-31"), 0,
         [P(W, "episodes.csv", 4, "discharge_date", "placeholder dates (9999-12-31)")]),
    Case("birth_9999_12_31", set_cell("children.csv", 6, "birth_date", "9999-12-31"), 0,
         [P(W, "children.csv", 6, "birth_date", "placeholder dates that mean 'no date'")]),
    Case("birth_1899_12_31", set_cell("children.csv", 6, "birth_date", "1899-12-31"), 0,
         [P(W, "children.csv", 6, "birth_date", "placeholder dates that mean 'no date'")]),
    Case("removal_1799", set_cell("episodes.csv", 6, "removal_date", "1799-06-01"), 1,
         [P(E, "episodes.csv", 6, "removal_date", "out of range")], exact=False),
    Case("sentinel_mapped_to_missing",
         both(set_cell("episodes.csv", 2, "discharge_date", "9999-12-31"), set_cell("episodes.csv", 2, "discharge_reason", ""),
              config('path = "episodes.csv"', 'path = "episodes.csv"\ncodes = { discharge_date = { "9999-12-31" = "" } }')), 1,
         [P(E, "episodes.csv", 2, "discharge_date", "later removal")]),
    Case("date_with_impossible_time", set_cell("reports.csv", 3, "report_date", "2019-02-20T25:61"), 1,
         [P(E, "reports.csv", 3, "report_date", "unparseable date")]),
    Case("all_removal_dates_missing", rewrite("episodes.csv", lambda b: re.sub(rb"(?m)^(C\d+),\d{4}-\d\d-\d\d,", rb"\1,,", b)), 1,
         [P(E, "episodes.csv", r, "removal_date", "missing removal_date") for r in range(2, 9)]),
    # -- AFCARS -----------------------------------------------------------------------------
    Case("afcars_mixed_1_2_and_0_1_in_one_column",
         both(tab_cell(2, "PhyAbuse", "0"), tab_cell(3, "PhyAbuse", "2"), tab_cell(4, "PhyAbuse", "1")), 0, base="afcars"),
    Case("afcars_flag_outside_both_code_sets", tab_cell(3, "SexAbuse", "7"), 1,
         [P(E, "FC2020.tab", 3, "SexAbuse", "yes/no")], base="afcars"),
    Case("afcars_disreasn_12", tab_cell(2, "DISREASN", "12"), 1,
         [P(E, "FC2020.tab", 2, "DISREASN", "unknown code")], base="afcars"),
    Case("afcars_truncated_mid_line", rewrite("FC2020.tab", lambda b: b[:-30]), 1,
         [P(E, "FC2020.tab", 4, None, "field(s)")], base="afcars"),
    Case("afcars_every_row_ragged", rewrite("FC2020.tab", lambda b: b"\n".join(
        (line + b"\tx") if i and line else line for i, line in enumerate(b.split(b"\n")))), 1,
         [P(E, "FC2020.tab", r, None, "field(s)") for r in (2, 3, 4)], base="afcars"),
    Case("afcars_dob_and_latremdt_swapped",
         rewrite("FC2020.tab", lambda b: b.replace(b"\tDOB\t", b"\tTMP\t").replace(b"\tLatRemDt\t", b"\tDOB\t")
                 .replace(b"\tTMP\t", b"\tLatRemDt\t")), 1,
         [P(E, "FC2020.tab", r, "LatRemDt", "removal before the child's birth") for r in (2, 3, 4)], base="afcars"),
    Case("afcars_recnumbr_column_missing", replace("FC2020.tab", b"\tRecNumbr\t", b"\tRecNo\t"), 1,
         [P(E, "FC2020.tab", None, None, "RecNumbr")], base="afcars"),
    Case("afcars_all_latremdt_blank",
         both(tab_cell(2, "LatRemDt", ""), tab_cell(3, "LatRemDt", ""), tab_cell(4, "LatRemDt", "")), 1,
         [P(E, "FC2020.tab", r, "LatRemDt", "LatRemDt is blank") for r in (2, 3, 4)], base="afcars"),
    # -- files that are not what they claim -------------------------------------------------
    Case("gzip_that_is_not_gzip", both(lambda d: (d / "families.csv.gz").write_bytes(b"\x1f\x8b\x08garbage"),
                                       config('path = "families.csv"', 'path = "families.csv.gz"')), 1,
         [P(E, "families.csv.gz", None, None, "gzip")]),
    Case("gzip_of_a_good_file", both(lambda d: (d / "families.csv.gz").write_bytes(gzip.compress((d / "families.csv").read_bytes(), mtime=0)),
                                     config('path = "families.csv"', 'path = "families.csv.gz"')), 0),
    Case("csv_named_parquet", both(lambda d: shutil.copy(d / "families.csv", d / "families.parquet"),
                                   config('path = "families.csv"', 'path = "families.parquet"')), 1,
         [P(E, "families.parquet", None, None, "Parquet")]),
    Case("text_named_xlsx", both(lambda d: shutil.copy(d / "families.csv", d / "families.xlsx"),
                                 config('path = "families.csv"', 'path = "families.xlsx"')), 1,
         [P(E, "families.xlsx", None, None, "xlsx")]),
    Case("path_is_a_folder", both(lambda d: (d / "kids.csv").mkdir(), config('path = "children.csv"', 'path = "kids.csv"')), 1,
         [P(E, "kids.csv", None, None, "folder")], exact=False),
    # -- SQL sources --------------------------------------------------------------------------
    Case("sql_query_on_a_missing_table", sql_source("SELECT * FROM nowhere"), 1,
         [P(E, "sql:episodes", None, None, "no such table")], exact=False),
    Case("sql_write_statement", sql_source("DELETE FROM removals"), 1,
         [P(E, "sql:episodes", None, None, "readonly")], exact=False),
    Case("sql_attach_database", sql_source("ATTACH DATABASE 'attached.db' AS x"), 1,
         [P(E, "sql:episodes", None, None, "not authorized")], exact=False, check=_no_file("attached.db")),
    Case("sql_vacuum_into", sql_source("VACUUM INTO 'copy.db'"), 1,
         [P(E, "sql:episodes", None, None, "authoriz")], exact=False, check=_no_file("copy.db")),
    Case("sql_injection_in_a_param",
         sql_source("SELECT * FROM removals WHERE child_id = :kid", "{ kid = \"C001' OR '1'='1\" }"), 1,
         [P(E, "sql:episodes", None, None, "returned no rows")], exact=False),
    Case("sql_param_missing", sql_source("SELECT * FROM removals WHERE child_id = :kid"), 1,
         [P(E, "sql:episodes", None, None, "bind parameter")], exact=False),
    # -- configs (exit 2: a usage or config error, one message on stderr) --------------------
    Case("config_datetime_with_offset", config('extract_date = "2023-12-31"', "extract_date = 2023-12-31T10:00:00Z"), 2,
         stderr="without a time"),
    Case("config_seed_out_of_range", config("[data]", "seed = -1\n[data]"), 2, stderr="seed"),
    Case("config_entry_window_reversed", config('design = "in_care"', 'design = "in_care"\nentry_from = "2022-01-01"\nentry_to = "2016-01-01"'), 2,
         stderr="after cohort.entry_to"),
    Case("config_unknown_outcome", config("[cohort]", "[outcomes]\nreunificaton = { windows_months = [12] }\n[cohort]"), 2,
         stderr="did you mean 'reunification'"),
    Case("config_window_not_a_number", config("[cohort]", '[outcomes]\ntpr = { windows_months = ["24"] }\n[cohort]'), 2,
         stderr="windows_months"),
    Case("config_with_utf8_bom", rewrite("eval.toml", lambda b: codecs.BOM_UTF8 + b), 0),
    Case("config_in_utf16", rewrite("eval.toml", lambda b: b.decode().encode("utf-16")), 2, stderr="UTF-16"),
    Case("config_is_a_folder", lambda d: (d / "eval.toml").unlink() or (d / "eval.toml").mkdir(), 2, stderr="is a folder"),
    Case("config_path_that_looks_like_code",
         config('path = "children.csv"', "path = \"__import__('os').system('touch pwned.txt').csv\""), 1,
         [P(E, "__import__('os').system('touch pwned.txt').csv", None, None, "file not found")],
         exact=False, check=_no_file("pwned.txt")),
    Case("config_param_is_a_list", sql_source("SELECT * FROM removals WHERE child_id = :kid", '{ kid = ["C001"] }'), 2,
         stderr="must be one value"),
    Case("config_paths_not_text", config('path = "children.csv"', "paths = [1, 2]"), 2, stderr="as text"),
]
CASE_BY_NAME = {c.name: c for c in CASES}


def _prepare(case: Case, root: Path) -> Path:
    d = root / case.name
    copy_good(d, AFCARS_GOOD if case.base == "afcars" else GOOD)
    case.edit(d)
    return d


def _matches(p: dict, want: P) -> bool:
    return (
        p["severity"] == want.severity
        and Path(p["file"]).name == Path(want.file).name
        and p["row"] == want.row
        and p["column"] == want.column
        and want.message.lower() in p["message"].lower()
    )


def test_there_are_at_least_40_bad_input_cases_in_all():
    ours = [c for c in CASES if c.exit != 0 or c.problems]
    theirs = [d for d in (GOOD.parent).iterdir() if (d / "expected.toml").is_file() and d.name not in ("good", "afcars_good")]
    assert len(CASES) >= 55 and len(set(CASE_BY_NAME)) == len(CASES)
    assert len(ours) + len(theirs) >= 80  # with the good baselines and clean edge cases besides
    assert not set(CASE_BY_NAME) & {d.name for d in theirs}, "a case repeats one of tests/bad_inputs"


@pytest.mark.parametrize("name", [c.name for c in CASES])
def test_bad_input_case(name, tmp_path, monkeypatch):
    case = CASE_BY_NAME[name]
    d = _prepare(case, tmp_path)
    monkeypatch.chdir(d)  # a config that could run code would act here; none may
    before = hash_tree(d)
    status, out, err = run_cli("-q", "validate", str(d / "eval.toml"))
    assert hash_tree(d) == before, "an input file was modified"
    assert "Traceback" not in out + err
    assert len(out) + len(err) < case.max_output, f"{len(out) + len(err)} bytes printed"
    assert status == case.exit, out[-3000:] + err[-3000:]
    if case.check:
        case.check(d)
    if status == 2:
        assert err.startswith("ppeval validate: ") and err.count("\n") == 1, err
        assert case.stderr in err, err
        return
    assert err == ""
    assert "\x1b" not in out  # control characters are shown escaped, never sent to the terminal
    found = parse_validate_output(out)
    for want in case.problems:
        assert any(_matches(p, want) for p in found), f"expected {want}\n got:\n{out}"
    if case.exact:
        extra = [p for p in found if not any(_matches(p, w) for w in case.problems)]
        assert not extra, "unexpected problem(s):\n" + "\n".join(map(str, extra))
    # every problem names a file the config reads (or the SQL source) and a row inside it
    for p in found:
        if p["file"].startswith("sql:"):
            continue
        path = d / p["file"]
        assert path.exists() or "not found" in p["message"], p
        if p["row"] is not None and path.is_file():
            data = path.read_bytes()
            lines = max(data.count(b"\n"), data.count(b"\r")) + 1
            assert 1 <= p["row"] <= lines, (p, lines)


# ------------------------------------------------------------------------------ nothing identifying
GOOD_IDS = ["C001", "C002", "C003", "C004", "C005", "C006", "F01", "F02", "F03", "F04", "R01", "R02", "R03", "R04", "R05", "R06"]
GOOD_BIRTHS = ["2012-05-01", "2014-07-09", "2010-01-20", "2016-11-30", "2008-03-15", "2019-02-02"]
AFCARS_IDS = ["A0001", "A0002", "A0003"]


@pytest.mark.parametrize("name", [c.name for c in CASES if c.exit == 1])
def test_validation_messages_never_echo_an_id_or_birth_date(name, tmp_path):
    """Ids and birth dates of the extract appear in no message: file, row and column locate them."""
    case = CASE_BY_NAME[name]
    d = _prepare(case, tmp_path)
    _status, out, err = run_cli("-q", "validate", str(d / "eval.toml"))
    text = out + err
    for secret in (*GOOD_IDS, *AFCARS_IDS):
        assert not re.search(rf"(?<![A-Za-z0-9]){secret}(?![A-Za-z0-9])", text, re.I), (secret, text[:2000])
    if name == "afcars_dob_and_latremdt_swapped":
        return  # the birth dates sit under LatRemDt there: to ppeval they are removal dates
    for birth in GOOD_BIRTHS:
        assert birth not in text, (birth, text[:2000])


def test_headerless_file_does_not_echo_its_first_record(tmp_path):
    """A file without a header line would make its first record the "column names": the
    message says so without listing them (they are a child's id and birth date)."""
    d = _prepare(CASE_BY_NAME["no_header_line"], tmp_path)
    _status, out, _err = run_cli("-q", "validate", str(d / "eval.toml"))
    assert "looks like a record" in out
    assert "C001" not in out and "2012-05-01" not in out and "F01" not in out


def test_an_id_reaching_a_message_is_redacted(tmp_path, monkeypatch):
    """Defence in depth: the command line replaces any id of the loaded extract in what it prints."""
    from ppeval import validate as validate_module
    from ppeval.problems import Problem

    d = copy_good(tmp_path / "x")
    real = validate_module.validate_extract

    def leaky(ext):
        rep = real(ext)
        rep.problems.append(Problem("warning", "children.csv", 3, "family_id", None, "x",
                                    "siblings C002 and C001 of family F01 disagree (born 2014-07-09)"))
        return rep

    monkeypatch.setattr(validate_module, "validate_extract", leaky)
    _status, out, _err = run_cli("-q", "validate", str(d / "eval.toml"))
    assert "siblings [child id] and [child id] of family [family id] disagree" in out
    assert "C002" not in out and "F01" not in out


# ------------------------------------------------------------------------------ property-based
@pytest.fixture(scope="module")
def trimmed(tmp_path_factory) -> Path:
    return trimmed_synthetic(tmp_path_factory.mktemp("trimmed"))


@pytest.fixture(scope="module")
def trimmed_ids(trimmed) -> IdentifierGuard:
    """Ids of the uncorrupted extract (birth dates left out: a removal date may equal one)."""
    ext = load_extract(trimmed / "eval_canonical.toml")
    return IdentifierGuard(
        child_ids=ext.tables["children"]["child_id"].dropna(),
        family_ids=ext.tables["families"]["family_id"].dropna(),
        report_ids=ext.tables["reports"]["report_id"].dropna(),
    )


TARGETS = ["afcars/FC2016A.tab", "afcars/FC2016B.tab", "ncands/CF2016.tab", "participation.csv", "families.csv",
           "canonical/children.csv", "canonical/episodes.csv", "canonical/reports.csv"]
IMPOSSIBLE_DATES = ["0000-00-00", "9999-12-31", "1899-12-31", "2021-02-29", "13/45/2020", "2020-1-1", "20201301",
                    "31/12/2020", "2020-12-31T00:00:00", "yesterday", "", " ", "-1", "1e9"]
CODE_SOUP = ["0", "1", "2", "3", "8", "9", "99", "Y", "N", "yes", "no", "true", "", "-1", "1.0", "２", "male", "M"]


def _cell_text():
    return st.one_of(
        st.sampled_from(IMPOSSIBLE_DATES + CODE_SOUP),
        st.text(max_size=40),
        st.text(alphabet=st.sampled_from(list(',\t"\r\n\x00;|\\\'')), max_size=6),
        st.binary(max_size=12).map(lambda b: b.decode("latin-1")),
        st.integers(min_value=-(10**30), max_value=10**30).map(str),
        st.floats(allow_nan=True, allow_infinity=True).map(repr),
    )


@st.composite
def corruption(draw):
    """(target file, description, function bytes -> bytes)."""
    target = draw(st.sampled_from(TARGETS))
    delim = b"\t" if target.endswith(".tab") else b","
    kind = draw(st.sampled_from([
        "truncate", "drop_line", "duplicate_line", "swap_header", "drop_column", "swap_columns", "set_cell",
        "set_column", "insert_bytes", "reencode", "line_ends", "huge_field", "empty", "header_only", "bom",
    ]))
    seed = draw(st.integers(0, 2**31))
    value = draw(_cell_text())
    enc = draw(st.sampled_from(["utf-16", "utf-16-le", "utf-16-be", "latin-1", "cp1252", "utf-32"]))
    raw_bytes = draw(st.binary(min_size=1, max_size=16))

    def apply(data: bytes) -> bytes:
        import random

        rnd = random.Random(seed)
        lines = data.split(b"\n")
        body = [i for i in range(1, len(lines)) if lines[i]]
        header = lines[0].split(delim)
        if not data or (not body and kind not in ("truncate", "insert_bytes", "reencode", "bom", "empty")):
            return data  # nothing left to corrupt that way
        if len(header) < 2 and kind in ("swap_header", "drop_column", "swap_columns"):
            return data
        if kind == "truncate":
            return data[: rnd.randrange(len(data))]
        if kind == "drop_line":
            del lines[rnd.choice(body)]
        elif kind == "duplicate_line":
            i = rnd.choice(body)
            lines.insert(i, lines[i])
        elif kind == "swap_header":
            i, j = rnd.sample(range(len(header)), 2)
            header[i], header[j] = header[j], header[i]
            lines[0] = delim.join(header)
        elif kind in ("drop_column", "swap_columns"):
            i, j = rnd.sample(range(len(header)), 2)
            for k, line in enumerate(lines):
                cells = line.split(delim)
                if len(cells) == len(header):
                    if kind == "drop_column":
                        del cells[i]
                    else:
                        cells[i], cells[j] = cells[j], cells[i]
                    lines[k] = delim.join(cells)
        elif kind in ("set_cell", "set_column"):
            j = rnd.randrange(len(header))
            rows = [rnd.choice(body)] if kind == "set_cell" else body
            for i in rows:
                cells = lines[i].split(delim)
                if j < len(cells):
                    cells[j] = value.encode("utf-8", "surrogatepass")
                    lines[i] = delim.join(cells)
        elif kind == "insert_bytes":
            pos = rnd.randrange(len(data))
            return data[:pos] + raw_bytes + data[pos:]
        elif kind == "reencode":
            return data.decode("utf-8", errors="replace").encode(enc, errors="replace")
        elif kind == "line_ends":
            return data.replace(b"\n", rnd.choice([b"\r\n", b"\r", b"\n\n", b"\r\r\n"]))
        elif kind == "huge_field":
            i = rnd.choice(body)
            cells = lines[i].split(delim)
            cells[rnd.randrange(len(cells))] = b"7" * 1_000_000
            lines[i] = delim.join(cells)
        elif kind == "empty":
            return b""
        elif kind == "header_only":
            return lines[0] + b"\n"
        elif kind == "bom":
            return rnd.choice([codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF8 * 2]) + data
        return b"\n".join(lines)

    return target, f"{kind}({value!r}, {enc}, seed={seed})", apply


def _check_validate(d: Path, config: str, ids: IdentifierGuard) -> tuple[int, list[dict]]:
    before = hash_tree(d)
    status, out, err = run_cli("-q", "validate", str(d / config))
    assert hash_tree(d) == before, "an input file was modified"
    assert "Traceback" not in out + err
    assert status in (0, 1, 2), err[-3000:]
    assert len(out) + len(err) < 2_000_000
    assert ids.scan_text(out + err, "output") == [], "an id of the extract was echoed"
    if status == 2:
        assert err.startswith("ppeval validate: "), err
        return status, []
    problems = parse_validate_output(out)
    assert (status == 1) == any(p["severity"] == "error" for p in problems)
    for p in problems:
        if p["file"].startswith("sql:"):
            continue
        path = d / p["file"]
        assert path.is_file() or not path.exists() or path.is_dir(), p
        if p["row"] is not None:
            data = path.read_bytes()
            lines = max(data.count(b"\n"), data.count(b"\r")) + 1
            assert 1 <= p["row"] <= lines, (p, lines)
    return status, problems


PROPERTY = settings(max_examples=45, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@PROPERTY
@given(c=corruption(), canonical=st.booleans())
def test_property_corrupted_synthetic_file(trimmed, trimmed_ids, tmp_path_factory, c, canonical):
    target, _what, apply = c
    d = tmp_path_factory.mktemp("case")
    shutil.copytree(trimmed, d, dirs_exist_ok=True)
    p = d / target
    p.write_bytes(apply(p.read_bytes()))
    config = "eval_canonical.toml" if canonical or target.startswith("canonical/") else "eval.toml"
    if target.startswith("canonical/"):
        config = "eval_canonical.toml"
    elif target.startswith(("afcars", "ncands")):
        config = "eval.toml"
    status, problems = _check_validate(d, config, trimmed_ids)
    # damage to a file is reported against that file (or the data it feeds): never silence
    # when the file was emptied
    if p.stat().st_size == 0:
        assert status == 1 and any(Path(x["file"]).name == p.name and x["row"] is None for x in problems)
    shutil.rmtree(d)


@PROPERTY
@given(c1=corruption(), c2=corruption())
def test_property_two_files_corrupted_at_once(trimmed, trimmed_ids, tmp_path_factory, c1, c2):
    d = tmp_path_factory.mktemp("case2")
    shutil.copytree(trimmed, d, dirs_exist_ok=True)
    for target, _what, apply in (c1, c2):
        p = d / target
        p.write_bytes(apply(p.read_bytes()))
    for config in ("eval.toml", "eval_canonical.toml"):
        _check_validate(d, config, trimmed_ids)
    shutil.rmtree(d)


TOML_VALUES = st.one_of(
    st.sampled_from(['"2023-12-31"', "2023-12-31", "2023-12-31T00:00:00", "2023-12-31T08:00:00-05:00", "08:00:00", '""',
                     "[]", "{}", "true", "-1", "0", "1e400", "nan", "inf", '"../../../../etc/passwd"', '"/dev/null"',
                     "\"__import__('os').system('touch pwned')\"", '"$(touch pwned)"', '"`touch pwned`"',
                     '"sqlite:///x.db"', '["a.csv", 3]', '{ path = "x" }', "9223372036854775807", '"ＡＦＣＡＲＳ"']),
    st.integers(min_value=-(2**63), max_value=2**63 - 1).map(str),
    st.text(max_size=20).map(lambda s: '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'),
)
CONFIG_KEYS = ["title", "seed", "extract_date", "afcars", "ncands", "engine", "path", "paths", "format", "delimiter",
               "encoding", "sheet", "date_format", "columns", "codes", "url", "query", "params", "design", "entry_from",
               "entry_to", "unit", "episode", "min_stay_days", "max_age_at_removal", "reunified_reasons", "model",
               "covariates", "ratio", "caliper_sd", "replace", "exact", "suppress_below", "windows_months", "no_such_key"]


@st.composite
def config_edit(draw):
    kind = draw(st.sampled_from(["set", "delete_line", "truncate", "garbage", "duplicate_line"]))
    key = draw(st.sampled_from(CONFIG_KEYS))
    value = draw(TOML_VALUES)
    seed = draw(st.integers(0, 2**31))
    junk = draw(st.binary(max_size=20))

    def apply(text: str) -> bytes:
        import random

        rnd = random.Random(seed)
        lines = text.splitlines()
        if kind == "set":
            # into a random table of the config (the key may not belong there: that is the point)
            tables = [i for i, line in enumerate(lines) if line.startswith("[")] or [0]
            lines.insert(rnd.choice(tables) + 1, f"{key} = {value}")
        elif kind == "delete_line":
            del lines[rnd.randrange(len(lines))]
        elif kind == "duplicate_line":
            i = rnd.randrange(len(lines))
            lines.insert(i, lines[i])
        elif kind == "truncate":
            return text.encode()[: rnd.randrange(len(text))]
        else:
            pos = rnd.randrange(len(text))
            return text.encode()[:pos] + junk + text.encode()[pos:]
        return "\n".join(lines).encode("utf-8", "surrogatepass")

    return f"{kind} {key} = {value}", apply


@settings(max_examples=60, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(edit=config_edit(), canonical=st.booleans())
def test_property_bad_configs(trimmed, trimmed_ids, tmp_path_factory, edit, canonical):
    _what, apply = edit
    d = tmp_path_factory.mktemp("cfg")
    shutil.copytree(trimmed, d, dirs_exist_ok=True)
    name = "eval_canonical.toml" if canonical else "eval.toml"
    cfg = d / name
    cfg.write_bytes(apply(cfg.read_text()))
    cwd = os.getcwd()
    os.chdir(d)
    try:
        _check_validate(d, name, trimmed_ids)
    finally:
        os.chdir(cwd)
    assert not (d / "pwned").exists() and not Path(cwd, "pwned").exists()
    shutil.rmtree(d)


# ------------------------------------------------------------------------------ real processes
@pytest.mark.parametrize("name", ["ten_mb_field_in_a_date_column", "utf16_without_bom", "afcars_every_row_ragged",
                                  "sql_attach_database", "config_datetime_with_offset", "cr_only_line_ends_bad_date_on_line_5"])
def test_real_process(name, tmp_path):
    """``python -m ppeval validate`` in a fresh interpreter, run from the case's folder."""
    case = CASE_BY_NAME[name]
    d = _prepare(case, tmp_path)
    before = hash_tree(d)
    proc = subprocess.run([sys.executable, "-m", "ppeval", "-q", "validate", "eval.toml"], cwd=d,
                          capture_output=True, timeout=120)
    out, err = proc.stdout.decode("utf-8"), proc.stderr.decode("utf-8")
    assert proc.returncode == case.exit, out[-2000:] + err[-2000:]
    assert "Traceback" not in out + err
    assert len(out) + len(err) < case.max_output
    assert hash_tree(d) == before
    if case.exit == 2:
        assert err.startswith("ppeval validate: ") and case.stderr in err
    else:
        found = parse_validate_output(out)
        for want in case.problems:
            assert any(_matches(p, want) for p in found), (want, out)
    if case.check:
        case.check(d)


def test_committed_synthetic_files_validate_and_stay_identical():
    """The committed extract itself: both configs validate (warnings only) and nothing is touched."""
    before = hash_tree(SYNTHETIC)
    for cfg in ("eval.toml", "eval_canonical.toml"):
        status, out, err = run_cli("-q", "validate", str(SYNTHETIC / cfg))
        assert status == 0 and err == "", out[-2000:] + err
        assert all(p["severity"] == "warning" for p in parse_validate_output(out))
    assert hash_tree(SYNTHETIC) == before
    assert hashlib.sha256((SYNTHETIC / "eval.toml").read_bytes()).hexdigest() == before["eval.toml"]
