"""Validation that reads like triage: the root cause first, knock-on problems grouped under it,
and ``ppeval validate --summary`` (one line per kind of problem)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from ppeval.cli import main
from ppeval.load import load_extract
from ppeval.problems import Problem, ValidationReport
from ppeval.synthetic import write_synthetic
from ppeval.validate import problem_kind, summary_lines, triage_lines

MISSING = "afcars/FC2016A.tab"


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    return write_synthetic(tmp_path_factory.mktemp("synth") / "s", n_children=600, seed=11)


@pytest.fixture(scope="module")
def without_file(synth, tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("missing") / "s"
    shutil.copytree(synth, d)
    (d / MISSING).unlink()
    return d


def _key(p: Problem) -> tuple:
    return (p.severity, p.file, p.row, p.column, p.message)


def test_the_missing_file_comes_first_with_its_knock_on_problems_under_it(synth, without_file):
    full = load_extract(synth / "eval.toml").validate()
    rep = load_extract(without_file / "eval.toml").validate()
    [(cause, knock_on)] = rep.groups
    assert cause.file == MISSING and cause.message.startswith("file not found")
    # the knock-ons are problems the complete extract does not have: caused by the missing file
    new = {_key(p) for p in rep.problems} - {_key(p) for p in full.problems}
    assert knock_on and {_key(p) for p in knock_on} <= new
    # and every new link problem (a child no longer in the children table) is among them
    unlinked = {k for k in new if "not in the children table" in k[4]}
    assert unlinked and unlinked <= {_key(p) for p in knock_on}
    # root cause first, then its knock-ons, then the rest: nothing lost, nothing repeated
    ordered = rep.ordered()
    assert ordered[0] is cause and ordered[1 : 1 + len(knock_on)] == knock_on
    assert sorted(map(_key, ordered)) == sorted(map(_key, rep.problems))


def test_validate_prints_the_cause_on_its_first_line(without_file, capsys):
    assert main(["-q", "validate", str(without_file / "eval.toml")]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"error: {MISSING}: file not found")
    assert re.fullmatch(r"  .*(error|warning)\(s\).* below probably follow from this .*", lines[1])
    assert lines[2].startswith("    ")  # the knock-ons, indented under it
    assert re.fullmatch(r"\d+ error\(s\), \d+ warning\(s\)", lines[-1])


def test_validate_summary_is_one_line_per_kind_with_three_locations(without_file, capsys):
    assert main(["-q", "validate", "--summary", str(without_file / "eval.toml")]) == 1
    lines = capsys.readouterr().out.splitlines()[:-1]
    assert re.match(rf"error +1 +file not found +\[{re.escape(MISSING)}\]$", lines[0]) is None  # 1 is a small count
    assert re.match(rf"error +<11 +file not found +\[{re.escape(MISSING)}\]$", lines[0])
    assert lines[1].startswith("  probably following from it (")
    rep = load_extract(without_file / "eval.toml").validate()
    kinds = {(p.severity, problem_kind(p)) for p in rep.problems}
    kind_lines = [x for x in lines if re.match(r"^ *(error|warning) ", x)]
    assert len(kind_lines) == len(kinds)  # one line per kind of problem
    for line in kind_lines:
        where = line[line.rindex("[") + 1 : -1].split("; ")
        assert len([w for w in where if w != "..."]) <= 3
    # every count shown is either at least 11 or "<11"
    for line in kind_lines:
        count = line.split()[1]
        assert count == "<11" or int(count.replace(",", "")) >= 11


def test_a_refused_day_first_roster_is_a_root_cause(synth, tmp_path, capsys):
    d = tmp_path / "s"
    shutil.copytree(synth, d)
    roster = (d / "participation.csv").read_text().splitlines()
    header = roster[0].split(",")
    col = header.index("enrolled_date")

    def day_first(line: str) -> str:
        cells = line.split(",")
        y, m, dd = cells[col].split("-")
        cells[col] = f"{dd}/{m}/{y}"
        return ",".join(cells)

    (d / "participation.csv").write_text("\n".join([roster[0], *map(day_first, roster[1:])]) + "\n")
    assert main(["-q", "validate", str(d / "eval.toml")]) == 1
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith("error: participation.csv, row ") and "dates are day first" in first
    assert 'date_format = "%d/%m/%Y" in [data.participation]' in first


def test_a_missing_required_column_is_a_root_cause_and_unrelated_problems_are_not_grouped():
    cause = Problem("error", "roster.csv", None, None, None, "columns family_id", "missing required column(s) x",
                    "participation")
    cell = Problem("error", "kids.csv", 4, "birth_date", None, "a date", "unparseable date", "children")
    link = Problem("warning", "CF2016.tab", 9, "ChID", None, "a child_id listed in the children table",
                   "report of a child who is not in the children table: the report is not used", "reports")
    rep = ValidationReport([cell, link, cause], causes=[cause])
    # a participation file missing explains no unlinked report: nothing is grouped under it
    assert rep.groups == [(cause, [])]
    assert rep.ordered() == [cause, cell, link]
    assert triage_lines(rep)[0] == str(cause)
    children = Problem("error", "kids.csv", None, None, None, "an existing file", "file not found", "children")
    rep = ValidationReport([cell, link, children], causes=[children])
    assert rep.groups == [(children, [link])]
    assert summary_lines(rep)[1].startswith("  probably following from it (<11 warning(s))")


def test_a_file_that_loaded_rows_is_not_a_root_cause(tmp_path, write_config):
    (tmp_path / "kids.csv").write_text("child_id,birth_date\nA,2015-01-01\nB,2015-13-01\n")
    cfg = write_config('[data.children]\npath = "kids.csv"\n[data.episodes]\npath = "episodes.csv"')
    rep = load_extract(cfg).validate()
    [(cause, _)] = rep.groups
    assert cause.file == "episodes.csv" and cause.message.startswith("file not found")
    assert triage_lines(rep)[0].startswith("error: episodes.csv: file not found")


def test_a_report_run_stops_with_the_cause_first(without_file, tmp_path, capsys):
    assert main(["-q", "report", str(without_file / "eval.toml"), "--out", str(tmp_path / "rep")]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(f"error: {MISSING}: file not found")
    assert "failed validation" in err[-1]
