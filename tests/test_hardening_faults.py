"""Hardening: a report killed part-way loses nothing; reruns are byte-identical; changed inputs are named.

``ppeval report`` builds its output in a sibling folder (``.<name>.ppeval-tmp-<pid>-<hex>``,
:func:`ppeval.privacy.atomic_output_dir`) and swaps it in whole. These tests run the real
command in a subprocess on a copy of a committed 500-child extract and SIGKILL it once the
sibling folder exists, at several delays into the writing phase: the previous report must
be byte-identical afterwards (and, without a previous report, no report folder may exist).
The next complete run cleans up the killed runs' leftovers and writes a report identical,
byte for byte, to the first one; a run after an input changed names the changed file on
stderr (even with ``--quiet``).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "hardening"))
from support import hash_tree  # noqa: E402

from ppeval.privacy import atomic_output_dir, recover_output_dir  # noqa: E402

SMALL_EXTRACT = Path(__file__).parent / "hardening" / "small_extract"
TMP_TAG = ".ppeval-tmp-"
KILL_DELAYS = (0.0, 0.4, 1.0)  # seconds after the output sibling appears


def _report_cmd(cfg: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "ppeval", "-q", "report", str(cfg), "--out", str(out), *extra]


def _run_report(cfg: Path, out: Path) -> subprocess.CompletedProcess:
    proc = subprocess.run(_report_cmd(cfg, out), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    return proc


def _siblings(out: Path) -> list[Path]:
    return sorted(p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}{TMP_TAG}"))


def _kill_while_writing(cfg: Path, out: Path, delay: float) -> bool:
    """Start ``ppeval report``, SIGKILL it ``delay`` s after its output sibling appears.

    Returns True when the process was killed while still running (False: it finished first).
    """
    before = set(_siblings(out))
    proc = subprocess.Popen(_report_cmd(cfg, out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while not (set(_siblings(out)) - before):
            if proc.poll() is not None:
                return False
            assert time.monotonic() < deadline, "the report never started writing"
            time.sleep(0.005)
        time.sleep(delay)
        if proc.poll() is not None:
            return False
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        return proc.returncode == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def extract(tmp_path_factory) -> Path:
    """A copy of the committed 500-child extract (``tests/hardening/small_extract``): a full
    report of it takes a few seconds, most of them writing charts, which is what gets killed."""
    d = tmp_path_factory.mktemp("extract") / "small"
    shutil.copytree(SMALL_EXTRACT, d)
    return d


def test_kill_rerun_and_changed_input(extract, tmp_path):
    """One sequence on one output folder (each full report takes seconds):

    1. a run killed before any report exists leaves no report folder;
    2. a complete run writes the report;
    3. runs killed at several delays into the writing phase leave it byte-identical;
    4. a complete rerun removes the killed runs' leftovers and writes the same bytes;
    5. after one input file changes, the next run names it on stderr (despite ``-q``).
    """
    work = tmp_path / "extract"
    shutil.copytree(extract, work)
    cfg = work / "eval.toml"
    out = tmp_path / "reports" / "eval"
    out.parent.mkdir()

    # 1
    assert _kill_while_writing(cfg, out, 0.3)
    assert not out.exists(), "a half-written report is in place"
    assert _siblings(out), "the killed run's unfinished folder is left beside (and removed by the next run)"

    # 2
    first = _run_report(cfg, out)
    assert first.stdout.strip() == str(out / "report.html")
    assert _siblings(out) == []
    previous = hash_tree(out)
    assert {"results.json", "report.html", "factsheet.html", "tables/outcomes.csv", "tables/sample_flow.csv",
            "charts/captions.txt"} <= set(previous)

    # 3
    killed = 0
    for delay in KILL_DELAYS:
        killed += _kill_while_writing(cfg, out, delay)
        assert hash_tree(out) == previous, f"the previous report changed after a kill {delay}s into writing"
    assert killed >= len(KILL_DELAYS) - 1, "the report finished before the kills: the writing phase was not exercised"
    assert _siblings(out)

    # 4
    second = _run_report(cfg, out)
    assert "input" not in second.stderr, second.stderr
    assert _siblings(out) == []
    assert hash_tree(out) == previous, "a rerun on the same inputs is not byte-identical"

    # 5
    old = {f["path"]: f["sha256"] for f in json.loads((out / "results.json").read_text())["inputs"]}
    roster = work / "participation.csv"
    lines = roster.read_text().splitlines()
    cells = lines[1].split(",")
    cells[4] = str(float(cells[4]) + 1.5)  # one enrolment's hours: same rows, different data
    lines[1] = ",".join(cells)
    roster.write_text("\n".join(lines) + "\n")
    third = _run_report(cfg, out)
    assert "ppeval report: input changed since the previous report: participation.csv" in third.stderr
    assert third.stderr.count("input changed") == 1, third.stderr
    new = {f["path"]: f["sha256"] for f in json.loads((out / "results.json").read_text())["inputs"]}
    assert [p for p in new if new[p] != old.get(p)] == ["participation.csv"]
    assert hash_tree(out) != previous


def test_a_failure_while_writing_leaves_the_previous_output(tmp_path, monkeypatch):
    """An exception part-way (here: the third file written) removes the new folder and keeps the old."""
    out = tmp_path / "report"
    with atomic_output_dir(out) as tmp:
        (tmp / "results.json").write_text('{"run": 1}')
    before = hash_tree(out)

    class Boom(RuntimeError):
        pass

    with pytest.raises(Boom), atomic_output_dir(out) as tmp:
        (tmp / "results.json").write_text('{"run": 2}')
        (tmp / "tables").mkdir()
        raise Boom("disk full")
    assert hash_tree(out) == before and _siblings(out) == []


def test_a_kill_between_the_two_renames_of_the_fallback_swap_is_recovered(tmp_path):
    """Where the atomic exchange is not available the swap is two renames; a kill between them
    leaves no report in place but the previous one beside it: the next run puts it back."""
    out = tmp_path / "report"
    with atomic_output_dir(out) as tmp:
        (tmp / "results.json").write_text('{"run": 1}')
    before = hash_tree(out)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)  # a process that has ended
    os.rename(out, tmp_path / f".report.ppeval-old-{pid}-abcd1234")
    (tmp_path / f".report.ppeval-tmp-{pid}-ef567890").mkdir()  # the new output, never swapped in
    assert not out.exists()
    recover_output_dir(out)
    assert hash_tree(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]


def test_leftovers_of_a_running_process_are_not_touched(tmp_path):
    """Clean-up never removes the folder of a report another process is still writing."""
    out = tmp_path / "report"
    mine = tmp_path / f".report.ppeval-tmp-{os.getpid()}-00000000"
    mine.mkdir()
    (mine / "results.json").write_text("{}")
    recover_output_dir(out)
    assert (mine / "results.json").exists()


def test_a_report_on_invalid_data_lists_the_errors_and_keeps_the_previous_report(extract, tmp_path):
    sys.path.insert(0, str(Path(__file__).parent / "hardening"))
    from support import run_cli

    from ppeval.io_safety import write_manifest

    work = tmp_path / "extract"
    shutil.copytree(extract, work)
    kids = work / "canonical" / "children.csv"
    lines = kids.read_text().splitlines()
    cells = lines[4].split(",")
    cells[1] = "2016-13-01"
    lines[4] = ",".join(cells)
    kids.write_text("\n".join(lines) + "\n")
    out = tmp_path / "report"
    out.mkdir()
    (out / "results.json").write_text('{"title": "the previous report"}\n')
    write_manifest(out)  # a previous report of ppeval's own: the only kind --out may replace
    before = hash_tree(out)
    status, stdout, stderr = run_cli("-q", "report", str(work / "eval.toml"), "--out", str(out))
    assert status == 1 and stdout == ""
    assert stderr.splitlines()[0] == (
        "error: canonical/children.csv, row 5, column 'birth_date': unparseable date; "
        "expected a date (YYYY-MM-DD, MM/DD/YYYY or YYYYMMDD)"
    )
    assert "nothing was written; run 'ppeval validate" in stderr and "Traceback" not in stderr
    assert hash_tree(out) == before and _siblings(out) == []
