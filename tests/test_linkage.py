"""Linkage checks that fail loudly (issue 14, item 2).

A spreadsheet that reads the families crosswalk's child ids as numbers strips their leading
zeros: on the committed 4,000-child extract that silently turned served removal episodes
into comparisons (146 -> 90) with exit 0. Now every crosswalk or roster row whose id matches
nothing is a validation error naming file, row and column, with a hint when leading zeros,
spaces or letter case explain the mismatch; ``[data] id_normalise`` compares ids under those
rules on purpose, and the report's flow section says how many roster families link.
"""

from __future__ import annotations

import csv
import json
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parent / "hardening"))
from support import run_cli  # noqa: E402

from ppeval import Evaluation  # noqa: E402
from ppeval.cohort import build_cohort_from_config  # noqa: E402
from ppeval.errors import ConfigError  # noqa: E402
from ppeval.extract import Extract  # noqa: E402
from ppeval.load import load_extract  # noqa: E402
from ppeval.load.ids import explain_mismatch, key, normalise_ids  # noqa: E402
from ppeval.report.content import linkage_table  # noqa: E402
from ppeval.validate import validate_extract  # noqa: E402

SYNTHETIC = Path(__file__).parents[1] / "data" / "synthetic"
SMALL = Path(__file__).parent / "hardening" / "small_extract"


def _strip_zeros(path: Path, column: str) -> list[int]:
    """Rewrite ``path`` as a spreadsheet would (ids read as numbers); returns the changed rows."""
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    i = rows[0].index(column)
    changed = []
    for line, r in enumerate(rows[1:], start=2):
        if r[i] and r[i].lstrip("0") != r[i]:
            r[i] = r[i].lstrip("0") or "0"
            changed.append(line)
    with path.open("w", newline="") as f:
        csv.writer(f).writerows(rows)
    return changed


@pytest.fixture(scope="module")
def stripped(tmp_path_factory) -> tuple[Path, list[int]]:
    d = tmp_path_factory.mktemp("link") / "extract"
    shutil.copytree(SYNTHETIC, d)
    return d, _strip_zeros(d / "families.csv", "child_id")


def test_stripped_crosswalk_ids_fail_validation_naming_the_rows(stripped):
    folder, changed = stripped
    assert len(changed) > 2000  # most of the 4,000 child ids start with a zero
    rep = validate_extract(load_extract(folder / "eval.toml"))
    errors = [p for p in rep.problems if p.severity == "error"]
    listed = [p for p in errors if p.file == "families.csv" and p.row is not None]
    # every changed row is an error: the first 1,000 named one by one, the rest counted
    assert [p.row for p in listed] == changed[:1000]
    assert all(p.column == "child_id" and p.value is None for p in listed)
    assert all("leading zeros are ignored" in p.message and 'id_normalise = ["leading_zeros"]' in p.message for p in listed)
    rest = [p for p in errors if p.file == "families.csv" and p.row is None]
    assert len(rest) == 1 and f"{len(changed) - 1000} more row(s)" in rest[0].message
    # no id is repeated in any message
    ids = set(pd.read_csv(folder / "families.csv", dtype=str)["child_id"])
    assert not any(i in p.message for p in errors for i in ids if len(i) >= 5)


def test_the_report_is_refused_then_runs_with_id_normalise(tmp_path):
    """Through the command line on the committed 500-child extract (fast): refused with the
    crosswalk named and nothing written; with ``id_normalise`` every number equals the run on
    the original ids."""
    folder = tmp_path / "small"
    shutil.copytree(SMALL, folder)
    assert _strip_zeros(folder / "families.csv", "child_id")
    status, _, err = run_cli("-q", "report", str(folder / "eval.toml"), "--out", str(tmp_path / "r"))
    assert status == 1 and "families.csv" in err
    assert not (tmp_path / "r").exists()

    cfg = (folder / "eval.toml").read_text()
    (folder / "eval_norm.toml").write_text(cfg.replace("[data]\n", '[data]\nid_normalise = ["leading_zeros"]\n', 1))
    assert run_cli("-q", "report", str(folder / "eval_norm.toml"), "--out", str(tmp_path / "n"))[0] == 0
    assert run_cli("-q", "report", str(SMALL / "eval.toml"), "--out", str(tmp_path / "o"))[0] == 0
    normalised = json.loads((tmp_path / "n" / "results.json").read_text())
    original = json.loads((tmp_path / "o" / "results.json").read_text())
    # the same children served, matched and followed: every number equal
    for part in ("flow", "cohort", "matching", "outcomes", "linkage"):
        assert normalised[part] == original[part], part
    html = (tmp_path / "n" / "report.html").read_text()
    assert "leading zeros ignored (the config&#39;s data.id_normalise)" in html


def test_linked_share_shows_the_loss_in_the_notebook(stripped):
    """The cohort stage used alone (no validation in front of it, as in a notebook) says in
    its flow's linkage how few roster families link; with the original ids, all of them do."""
    folder, _ = stripped
    ext = load_extract(folder / "eval.toml")
    lost = build_cohort_from_config(ext, ext.config)
    fine = Evaluation.from_toml(SYNTHETIC / "eval.toml").cohort
    truth = pd.read_csv(SYNTHETIC / "participation.csv", dtype=str)
    roster = truth["family_id"].fillna(truth["child_id"]).nunique()
    assert fine.flow.linkage["roster_families"] == lost.flow.linkage["roster_families"] == roster == 237
    assert fine.flow.linkage["linked_families"] == 237
    assert lost.flow.linkage["linked_families"] < 237 * 0.5
    assert lost.n_treated < fine.n_treated
    frame = fine.flow.linkage_frame()
    assert frame["families"].tolist() == [237, 237, fine.flow.linkage["served_in_cohort"]]
    assert frame["share"].iloc[1] == 1.0


def test_roster_family_ids_with_spaces_and_case_are_hinted():
    children = pd.DataFrame({"child_id": ["c1", "c2", "c3"], "birth_date": pd.to_datetime(["2015-01-01"] * 3)})
    families = pd.DataFrame({"child_id": ["c1", "c2", "c3"], "family_id": ["F01", "F02", "F03"]})
    part = pd.DataFrame({"family_id": [" F01", "f02", "F03", "F99"], "enrolled_date": pd.to_datetime(["2020-01-01"] * 4)})
    ext = Extract({"children": children, "families": families, "participation": part}, "2023-12-31")
    errs = {p.row: p.message for p in validate_extract(ext).problems if p.severity == "error"}
    assert sorted(errs) == [2, 3, 5]
    assert "spaces around it are removed" in errs[2] and '["whitespace"]' in errs[2]
    assert "upper and lower case" in errs[3] and '["case"]' in errs[3]
    assert "id_normalise" not in errs[5]  # no rule explains F99: no hint


def test_unlinked_roster_child_is_hinted_and_normalise_fixes_it():
    children = pd.DataFrame({"child_id": ["000123", "000124"], "birth_date": pd.to_datetime(["2015-01-01"] * 2)})
    part = pd.DataFrame({"child_id": ["123", "000124"], "enrolled_date": pd.to_datetime(["2020-01-01"] * 2)})
    tables = {"children": children, "participation": part}
    errs = [p for p in validate_extract(Extract(tables, "2023-12-31")).problems if p.severity == "error"]
    assert [(p.file, p.row, p.column) for p in errs] == [("participation", 2, "child_id")]
    assert "leading zeros" in errs[0].message
    fixed = normalise_ids(tables, ["leading_zeros"])
    assert fixed["children"]["child_id"].tolist() == ["123", "124"]
    assert part["child_id"].tolist() == ["123", "000124"]  # the caller's frames are not modified
    assert not [p for p in validate_extract(Extract(fixed, "2023-12-31")).problems if p.severity == "error"]


def test_rules():
    assert key(pd.Series(["0", "000", "007", "C007", " 0 ", None]), ["leading_zeros"]).tolist()[:5] == ["0", "0", "7", "C007", " 0 "]
    assert key(pd.Series([" 0070 "]), ["leading_zeros", "whitespace"]).tolist() == ["70"]
    # the fewest rules that explain the mismatch are named
    hint = explain_mismatch(pd.Series([" 12"]), pd.Series(["12"]))[0]
    assert hint is not None and "spaces" in hint and "zeros" not in hint
    with pytest.raises(ConfigError, match="unknown rule"):
        from ppeval.config import Config

        Config.from_dict({"data": {"extract_date": "2023-12-31", "id_normalise": ["zeros"]}})


def test_linkage_table_hides_small_differences():
    t = linkage_table({"roster_families": 237, "linked_families": 232, "served_in_cohort": 130}, 11)
    # 5 unlinked families: "linked" is hidden, else 237 - 232 would publish it
    assert t["families"].tolist() == [237, None, 130] and t["share"].tolist()[1] is None
    t = linkage_table({"roster_families": 237, "linked_families": 230, "served_in_cohort": 226}, 11)
    published = [v for v in t["families"] if v is not None]
    diffs = {abs(a - b) for a in published for b in published}
    assert not any(1 <= d < 11 for d in diffs)
    assert linkage_table({}, 11).empty
