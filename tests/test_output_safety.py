"""Nothing lost: ``--out`` never deletes or overwrites what ppeval did not write.

Each case of issue 14 is run through the command line on a copy of the committed 500-child
extract (``tests/hardening/small_extract``): ``--out`` naming a canonical input folder, the
extract's own folder, a folder of the user's files, a symlink to one, a previous ppeval report
the user added a file to. Each is refused with exit status 2 before any work, and every file
is byte-identical afterwards. A previous ppeval report and an empty folder are replaced.
SIGTERM cleans up like SIGINT.
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
from support import hash_tree, run_cli  # noqa: E402

from ppeval.io_safety import MARKER, OutputRefused, check_replaceable_dir, write_manifest  # noqa: E402

SMALL_EXTRACT = Path(__file__).parent / "hardening" / "small_extract"


@pytest.fixture
def extract(tmp_path) -> Path:
    d = tmp_path / "small"
    shutil.copytree(SMALL_EXTRACT, d)
    return d


def _everything(root: Path) -> dict[str, str]:
    """Every file under ``root`` (links unfollowed) with its hash: what must not be lost."""
    return hash_tree(root)


def _refused(*args: str) -> str:
    status, stdout, stderr = run_cli("-q", *args)
    assert status == 2, (status, stderr)
    assert "Traceback" not in stderr
    return stderr


def test_out_on_the_canonical_input_folder_is_refused(extract, tmp_path):
    before = _everything(tmp_path)
    err = _refused("report", str(extract / "eval.toml"), "--out", str(extract / "canonical"))
    assert "refusing to replace" in err and "did not write" in err and "nothing was deleted" in err
    assert _everything(tmp_path) == before


def test_out_on_the_extract_root_is_refused(extract, tmp_path):
    before = _everything(tmp_path)
    err = _refused("report", str(extract / "eval.toml"), "--out", str(extract))
    assert "refusing to replace" in err and "eval.toml" in err
    assert _everything(tmp_path) == before


def test_out_on_a_folder_of_the_users_files_is_refused(extract, tmp_path):
    mine = tmp_path / "mine"
    (mine / "notes").mkdir(parents=True)
    (mine / "draft.docx").write_bytes(b"my proposal")
    (mine / "notes" / "a.txt").write_text("keep me")
    before = _everything(tmp_path)
    err = _refused("report", str(extract / "eval.toml"), "--out", str(mine))
    assert "draft.docx" in err
    assert _everything(tmp_path) == before


def test_a_symlinked_out_is_not_followed(extract, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "draft.docx").write_bytes(b"my proposal")
    link = tmp_path / "latest"
    link.symlink_to(mine, target_is_directory=True)
    before = _everything(tmp_path)
    err = _refused("report", str(extract / "eval.toml"), "--out", str(link))
    assert "symbolic link" in err
    assert link.is_symlink() and _everything(tmp_path) == before


def test_an_output_holding_an_input_is_refused(extract, tmp_path):
    """Defence in depth behind the manifest rule: even a ppeval-written folder may not be the
    output when the config reads an input inside it (a roster saved into an old report)."""
    from ppeval.config import Config
    from ppeval.io_safety import check_outside_inputs, config_inputs

    cfg = Config.from_toml(extract / "eval.toml")
    inputs = config_inputs(cfg)
    assert extract / "eval.toml" in [Path(p) for p in inputs]
    assert any(Path(p).name == "participation.csv" for p in inputs)
    with pytest.raises(OutputRefused, match="overlaps the input"):
        check_outside_inputs(extract, inputs)
    with pytest.raises(OutputRefused, match="overlaps the input"):
        check_outside_inputs(tmp_path, inputs)  # an ancestor of the extract
    check_outside_inputs(tmp_path / "report", inputs)  # a sibling folder: fine


def test_a_previous_report_and_an_empty_folder_are_replaced_a_touched_report_is_not(extract, tmp_path):
    cfg = extract / "eval.toml"
    out = tmp_path / "report"
    out.mkdir()  # empty: nothing to lose
    status, _, stderr = run_cli("-q", "report", str(cfg), "--out", str(out))
    assert status == 0, stderr
    manifest = json.loads((out / MARKER).read_text())
    listed = {f["path"] for f in manifest["files"]}
    on_disk = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()} - {MARKER}
    assert listed == on_disk and "report.html" in listed and manifest["written_by"] == "ppeval"

    first = _everything(out)
    status, _, stderr = run_cli("-q", "report", str(cfg), "--out", str(out))  # ppeval's own: replaced
    assert status == 0, stderr
    assert _everything(out) == first  # and byte-identical, manifest included

    (out / "my_comments.txt").write_text("the user's own file")
    before = _everything(tmp_path)
    err = _refused("report", str(cfg), "--out", str(out))
    assert "my_comments.txt" in err and "added" in err
    assert _everything(tmp_path) == before

    (out / "my_comments.txt").unlink()
    (out / "report.html").write_text("edited by hand")
    before = _everything(tmp_path)
    err = _refused("report", str(cfg), "--out", str(out))
    assert "report.html" in err and "changed" in err
    assert _everything(tmp_path) == before


def test_synth_never_replaces_a_users_extract(tmp_path):
    """``ppeval synth`` used to delete ``afcars/``, ``ncands/`` and ``canonical/`` in its --out."""
    user = tmp_path / "state_extract"
    (user / "canonical").mkdir(parents=True)
    (user / "canonical" / "children.csv").write_text("child_id\n1\n")
    before = _everything(tmp_path)
    err = _refused("synth", "--out", str(user), "--children", "200")
    assert "children.csv" in err
    assert _everything(tmp_path) == before


def test_cohort_never_overwrites_a_file_ppeval_did_not_write(extract, tmp_path):
    target = tmp_path / "cohort.csv"
    target.write_text("my own analysis\n")
    before = _everything(tmp_path)
    err = _refused("cohort", str(extract / "eval.toml"), "--out", str(target))
    assert "did not write" in err
    assert _everything(tmp_path) == before

    mine = tmp_path / "fresh.csv"
    status, _, stderr = run_cli("-q", "cohort", str(extract / "eval.toml"), "--out", str(mine))
    assert status == 0, stderr
    status, _, stderr = run_cli("-q", "cohort", str(extract / "eval.toml"), "--out", str(mine))
    assert status == 0, stderr  # ppeval's own file (its sidecar records it): may be rewritten


def test_check_replaceable_dir_rules(tmp_path):
    check_replaceable_dir(tmp_path / "missing")
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    check_replaceable_dir(tmp_path / "empty")  # only empty folders inside
    ours = tmp_path / "ours"
    ours.mkdir()
    (ours / "results.json").write_text("{}")
    write_manifest(ours)
    check_replaceable_dir(ours)
    (ours / "inner").mkdir()
    (ours / "inner" / "link").symlink_to(tmp_path / "missing")
    with pytest.raises(OutputRefused, match="inner/link"):
        check_replaceable_dir(ours)
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputRefused, match="not a folder"):
        check_replaceable_dir(tmp_path / "file")


def test_sigterm_cleans_up_like_sigint(extract, tmp_path):
    """A terminated report leaves no hidden temporary folder and the previous report intact."""
    cfg, out = extract / "eval.toml", tmp_path / "report"
    out.mkdir()
    (out / "results.json").write_text('{"title": "the previous report"}\n')
    write_manifest(out)
    previous = _everything(out)
    proc = subprocess.Popen([sys.executable, "-m", "ppeval", "-q", "report", str(cfg), "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        while not any(p.name.startswith(".report.ppeval-tmp-") for p in tmp_path.iterdir()):
            assert proc.poll() is None, "the report finished before it could be terminated"
            assert time.monotonic() < deadline, "the report never started writing"
            time.sleep(0.005)
        os.kill(proc.pid, signal.SIGTERM)
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 143, stderr
    assert "terminated" in stderr and "Traceback" not in stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report", "small"]
    assert _everything(out) == previous
