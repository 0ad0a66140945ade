"""``ppeval validate`` on the bad-input cases in ``tests/bad_inputs/``.

Each case is a folder with an ``eval.toml`` (pointing at its own bad file(s) and at the
shared valid files in ``bad_inputs/good/``) and an ``expected.toml``::

    description = "..."
    exit = 1                  # exit status of `ppeval validate`
    exact = true              # no problem other than those listed may appear
    stderr = ["did you mean"] # fragments stderr must contain (config errors)

    [[problem]]
    severity = "error"
    file = "episodes.csv"     # the file's name (problems may name it with its folder)
    row = 4                   # line in the source file, header = 1; absent = file-level
    column = "removal_date"   # source column name; absent = no column
    value = "13/45/2020"      # optional: the offending value shown
    message = "date"          # a short fragment of the message (case-insensitive)

For every case the command's exit status, the absence of a traceback and the byte-identity
of every input file are checked; for cases that load, every expected problem must be found
with exactly that severity, file, row and column.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from ppeval.cli import main
from ppeval.load import load_extract
from ppeval.problems import Problem

ROOT = Path(__file__).parent / "bad_inputs"
GOOD = ROOT / "good"
CASES = sorted(d.name for d in ROOT.iterdir() if (d / "expected.toml").is_file())


def expected(case: str) -> dict:
    return tomllib.loads((ROOT / case / "expected.toml").read_text(encoding="utf-8"))


def snapshot() -> dict[str, str]:
    """sha256 of every file under bad_inputs (the case's own files and the shared good ones)."""
    return {
        str(p.relative_to(ROOT)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(ROOT.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


def matches(p: Problem, exp: dict) -> bool:
    """Whether a problem is the expected one: exact severity, file, row and column."""
    return (
        p.severity == exp["severity"]
        and (p.file == exp["file"] or os.path.basename(p.file) == exp["file"])
        and p.row == exp.get("row")
        and p.column == exp.get("column")
        and ("value" not in exp or p.value == exp["value"])
        and exp["message"].lower() in p.message.lower()
    )


def location(exp: dict) -> re.Pattern:
    """The start of the line ``ppeval validate`` prints for an expected problem."""
    where = rf"(?:.*/)?{re.escape(exp['file'])}"
    if exp.get("row") is not None:
        where += rf", row {exp['row']}"
    if exp.get("column") is not None:
        where += rf", column {re.escape(repr(exp['column']))}"
    return re.compile(rf"^{exp['severity']}: {where}: ", re.MULTILINE)


def test_there_are_enough_cases():
    failing = [c for c in CASES if expected(c)["exit"] != 0]
    assert len(failing) >= 25, failing
    assert "good" in CASES


@pytest.mark.parametrize("case", CASES)
def test_case_is_well_formed(case):
    exp = expected(case)
    assert set(exp) <= {"description", "exit", "exact", "stderr", "stdout", "problem"}
    assert exp["exit"] in (0, 1, 2)
    for p in exp.get("problem", []):
        assert set(p) <= {"severity", "file", "row", "column", "value", "message"}
        assert p["severity"] in ("error", "warning") and p["message"]
        # every file a problem names is one the case's config reads
        assert p["file"] in (ROOT / case / "eval.toml").read_text(encoding="utf-8")
    # the status follows from the listed problems (an exact case lists all of them)
    if exp.get("exact", True) and exp["exit"] != 2:
        has_error = any(p["severity"] == "error" for p in exp.get("problem", []))
        assert exp["exit"] == (1 if has_error else 0)
    if exp["exit"] == 2:
        assert exp.get("stderr"), "a config error case must say what stderr shows"


@pytest.mark.parametrize("case", CASES)
def test_validate_command(case, capsys):
    """`ppeval validate` via the CLI entry point: status, printed problems, inputs untouched."""
    exp = expected(case)
    before = snapshot()
    status = main(["-q", "validate", str(ROOT / case / "eval.toml")])
    out, err = capsys.readouterr()
    assert status == exp["exit"], out + err
    assert "Traceback" not in out + err
    for fragment in exp.get("stderr", []):
        assert fragment in err
    for fragment in exp.get("stdout", []):
        assert fragment in out
    if exp["exit"] == 2:
        assert err.startswith("ppeval validate: ")
    else:
        for p in exp.get("problem", []):
            assert location(p).search(out), f"{location(p).pattern} not in:\n{out}"
        assert re.search(r"^\d+ error\(s\), \d+ warning\(s\)$", out, re.MULTILINE)
    assert snapshot() == before, "an input file was modified"


@pytest.mark.parametrize("case", [c for c in CASES if expected(c)["exit"] != 2])
def test_expected_problems(case):
    """The loaded extract's report has each expected problem at its exact place."""
    exp = expected(case)
    report = load_extract(ROOT / case / "eval.toml").validate()
    wanted = exp.get("problem", [])
    for w in wanted:
        found = [p for p in report.problems if matches(p, w)]
        assert found, f"expected {w}\n got:\n" + "\n".join(map(str, report.problems))
    if exp.get("exact", True):
        extra = [p for p in report.problems if not any(matches(p, w) for w in wanted)]
        assert not extra, "unexpected problem(s):\n" + "\n".join(map(str, extra))
    assert report.has_errors == (exp["exit"] == 1)


@pytest.mark.parametrize(
    "case", ["several_problems_one_file", "config_unknown_key", "utf8_bom", "latin1_bytes_in_utf8"]
)
def test_real_process_has_no_traceback(case):
    """The installed command in a fresh interpreter: exit status and no traceback."""
    exp = expected(case)
    before = snapshot()
    proc = subprocess.run(
        [sys.executable, "-m", "ppeval", "-q", "validate", "eval.toml"],
        cwd=ROOT / case,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == exp["exit"], proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    for fragment in exp.get("stderr", []):
        assert fragment in proc.stderr
    for p in exp.get("problem", []):
        assert location(p).search(proc.stdout)
    assert snapshot() == before


def test_several_problems_are_all_listed_in_file_order(capsys):
    main(["-q", "validate", str(ROOT / "several_problems_one_file" / "eval.toml")])
    out = capsys.readouterr().out
    rows = [int(m) for m in re.findall(r"^error: episodes\.csv, row (\d+),", out, re.MULTILINE)]
    assert rows == [3, 4, 6, 7]
    assert "4 error(s), 0 warning(s)" in out


def test_identifying_values_are_not_printed(capsys):
    """Child and family ids and birth dates of the flagged rows never reach the output."""
    secrets = [
        "C002",
        "C003",
        "C004",
        "C005",
        "C999",
        "F99",
        "2016-02-30",
        "2021-01-01",
        "1998-03-15",
    ]
    for case in [
        "duplicate_child_ids",
        "duplicate_episode_keys",
        "ids_missing_from_children",
        "family_missing_from_crosswalk",
        "impossible_birth_date",
        "birth_after_removal",
        "removal_at_19",
    ]:
        main(["-q", "validate", str(ROOT / case / "eval.toml")])
        out, err = capsys.readouterr()
        for s in secrets:
            assert s not in out + err, (case, s)
