"""Shared helpers of the hardening tests (``tests/test_hardening_*.py``).

Imported by path (``tests`` is not a package): each test module puts this folder on
``sys.path``. Nothing here changes an input: fixtures copy files into a temporary folder
first, and :func:`hash_tree` lets a test prove that what it ran on is byte-identical after.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import re
import shutil
from pathlib import Path

import pandas as pd

TESTS = Path(__file__).resolve().parent.parent
REPO = TESTS.parent
BAD_INPUTS = TESTS / "bad_inputs"
GOOD = BAD_INPUTS / "good"
AFCARS_GOOD = BAD_INPUTS / "afcars_good"
SYNTHETIC = REPO / "data" / "synthetic"

#: A line ``ppeval validate`` prints for a problem: severity, file, optional row and column.
PROBLEM_LINE = re.compile(
    r"^(?P<severity>error|warning): (?P<file>sql:[A-Za-z_]+|[^,:]+?)(?:, row (?P<row>\d+))?(?:, column (?P<column>'[^']*'|\"[^\"]*\"))?: (?P<message>.+)$"
)
SUMMARY_LINE = re.compile(r"^\d+ error\(s\), \d+ warning\(s\)$")
KNOCK_ON_LINE = re.compile(
    r"^  (?:(?:<11|[\d,]+) error\(s\))?(?: and )?(?:(?:<11|[\d,]+) warning\(s\))? below probably follow from this "
    r"\(fix it first, then validate again\):$"
)


def hash_tree(folder: Path) -> dict[str, str]:
    """sha256 of every file below ``folder`` (relative path -> digest)."""
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


def run_cli(*args: str) -> tuple[int, str, str]:
    """``ppeval.cli.main(args)`` in this process; returns (status, stdout, stderr)."""
    from ppeval.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(list(args))
    return status, out.getvalue(), err.getvalue()


def parse_validate_output(out: str) -> list[dict[str, str | int | None]]:
    """The problem lines of ``ppeval validate``; every other line must be the summary."""
    problems = []
    lines = out.splitlines()
    assert lines and SUMMARY_LINE.match(lines[-1]), f"no summary line at the end:\n{out[-2000:]}"
    for line in lines[:-1]:
        if KNOCK_ON_LINE.match(line):  # the count of the problems listed under a root cause
            continue
        # a knock-on problem, indented under its root cause
        m = PROBLEM_LINE.match(line[4:] if line.startswith("    ") else line)
        assert m, f"not a problem line: {line[:300]!r}"
        d = m.groupdict()
        d["row"] = int(d["row"]) if d["row"] else None
        d["column"] = d["column"][1:-1] if d["column"] else None
        problems.append(d)
    return problems


def copy_good(dst: Path, base: Path = GOOD) -> Path:
    """Copy a bad-input baseline folder (its files only) into ``dst``."""
    dst.mkdir(parents=True, exist_ok=True)
    for p in base.iterdir():
        if p.is_file() and p.name != "expected.toml":
            shutil.copy2(p, dst / p.name)
    return dst


TRIMMED_AFCARS = ["afcars/FC2016A.tab", "afcars/FC2016B.tab"]
TRIMMED_NCANDS = ["ncands/CF2016.tab"]


def trimmed_synthetic(dst: Path) -> Path:
    """A copy of part of the committed synthetic extract with two configs.

    ``eval.toml`` reads two AFCARS periods and one NCANDS year through the presets plus the
    roster and the crosswalk; ``eval_canonical.toml`` reads the canonical CSVs (every child).
    Small enough to validate in a tenth of a second, so property-based tests can run it often.
    """
    for rel in [*TRIMMED_AFCARS, *TRIMMED_NCANDS, "participation.csv", "families.csv",
                *(f"canonical/{t}.csv" for t in ("children", "episodes", "reports"))]:
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(SYNTHETIC / rel, dst / rel)
    common = (
        '[data.participation]\npath = "participation.csv"\n[data.families]\npath = "families.csv"\n'
        '[cohort]\ndesign = "in_care"\nentry_from = "2016-01-01"\nentry_to = "2021-12-31"\n'
    )
    (dst / "eval.toml").write_text(
        'title = "trimmed synthetic extract"\n[data]\nextract_date = "2023-12-31"\n'
        f"afcars = {TRIMMED_AFCARS!r}\nncands = {TRIMMED_NCANDS!r}\n".replace("'", '"') + common,
        encoding="utf-8",
    )
    (dst / "eval_canonical.toml").write_text(
        'title = "trimmed synthetic extract (canonical)"\n[data]\nextract_date = "2023-12-31"\n'
        '[data.children]\npath = "canonical/children.csv"\n[data.episodes]\npath = "canonical/episodes.csv"\n'
        '[data.reports]\npath = "canonical/reports.csv"\n' + common,
        encoding="utf-8",
    )
    return dst


def numeric_id_extract(src: Path, dst: Path) -> Path:
    """Copy a synthetic extract (``ppeval synth`` layout) with every id rewritten as a plain
    number: children 5 digits, families and reports 6 digits. Returns ``eval_canonical.toml``."""
    shutil.copytree(src, dst)
    c = pd.read_csv(dst / "canonical" / "children.csv", dtype=str, keep_default_na=False)
    child = {old: str(10000 + i) for i, old in enumerate(c["child_id"])}
    fams = pd.unique(
        pd.concat(
            [
                c["family_id"],
                pd.read_csv(dst / "families.csv", dtype=str, keep_default_na=False)["family_id"],
                pd.read_csv(dst / "participation.csv", dtype=str, keep_default_na=False)["family_id"],
            ]
        )
    )
    family = {old: str(200000 + i) for i, old in enumerate(f for f in fams if f)}
    rep = pd.read_csv(dst / "canonical" / "reports.csv", dtype=str, keep_default_na=False)
    reports = {old: str(500000 + i) for i, old in enumerate(pd.unique(rep["report_id"]))}
    for rel in ("canonical/children.csv", "canonical/episodes.csv", "canonical/reports.csv", "families.csv",
                "participation.csv", "canonical/families.csv", "canonical/participation.csv"):
        if not (dst / rel).exists():
            continue
        df = pd.read_csv(dst / rel, dtype=str, keep_default_na=False)
        for col, mapping in (("child_id", child), ("family_id", family), ("report_id", reports)):
            if col in df:
                df[col] = df[col].map(lambda v, m=mapping: m.get(v, v))
        df.to_csv(dst / rel, index=False)
    return dst / "eval_canonical.toml"
