"""Hardening: no identifier in any artefact or log, also when ids look like ordinary numbers.

``ppeval report`` runs as a real process (progress on, every Python warning shown with
``-W always``) on two extracts: the committed synthetic extract (AFCARS and NCANDS presets;
10-digit record numbers, ``C``-prefixed NCANDS ids, ``F``/``R`` family and report ids), and
a copy whose ids are rewritten as plain 5- and 6-digit numbers. Every file of the output
and everything the process printed is scanned twice: by
:class:`~ppeval.privacy.IdentifierGuard` and by an independent brute-force search (every
id as a token, numeric ids also without leading zeros, every birth date in ISO, US and
slash forms, base64-embedded SVGs decoded). ``ppeval validate`` on damaged copies, and an
error raised after the data are loaded, must not print an id or a birth date either.
"""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parent / "hardening"))
from support import SYNTHETIC, numeric_id_extract, run_cli  # noqa: E402

from ppeval.load import load_extract  # noqa: E402
from ppeval.privacy import IdentifierGuard  # noqa: E402

ALLOWED_DATES = {"2023-12-31", "2016-01-01", "2021-12-31"}  # extract date and entry window, printed on purpose


def _report(cfg: Path, out: Path) -> tuple[str, str]:
    proc = subprocess.run([sys.executable, "-W", "always", "-m", "ppeval", "report", str(cfg), "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout, proc.stderr


def _ids_and_births(ext) -> tuple[set[str], set[str]]:
    ids: set[str] = set()
    for table, col in (("children", "child_id"), ("children", "family_id"), ("episodes", "child_id"),
                       ("reports", "child_id"), ("reports", "report_id"), ("families", "child_id"),
                       ("families", "family_id"), ("participation", "family_id"), ("participation", "child_id")):
        df = ext.tables.get(table)
        if df is not None and col in df:
            for v in df[col].dropna().astype(str):
                ids.add(v.lower())
                if v.isdigit():
                    ids.add(v.lstrip("0") or "0")
    births = set()
    for d in pd.to_datetime(ext.tables["children"]["birth_date"]).dropna().dt.date.unique():
        if d.isoformat() not in ALLOWED_DATES:
            births |= {d.isoformat(), d.strftime("%m/%d/%Y"), d.strftime("%Y/%m/%d"), f"{d.month}/{d.day}/{d.year}",
                       d.strftime("%Y%m%d")}
    return ids, births


_DATA_URI = re.compile(r"data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)")


def brute_force(text: str, ids: set[str], births: set[str]) -> list[str]:
    """Ids (whole tokens, not the decimals of a number) and birth dates found in a text."""
    text = _DATA_URI.sub(lambda m: "data: " + base64.b64decode(m.group(1)).decode("utf-8", "replace"), text)
    found = []
    for m in re.finditer(r"[A-Za-z0-9]+", text):
        tok = m.group().lower()
        if tok in ids and not re.search(r"\d[.,]$", text[max(0, m.start() - 2):m.start()]):
            found.append(f"id {tok!r} in {text[max(0, m.start() - 30):m.end() + 10]!r}")
    for m in re.finditer(r"(?<!\d)(\d{4}-\d{2}-\d{2}|\d{1,2}/\d{1,2}/\d{4}|\d{4}/\d{2}/\d{2}|\d{8})(?!\d)", text):
        if m.group() in births:
            found.append(f"birth date in {text[max(0, m.start() - 30):m.end() + 10]!r}")
    return found


def _all_text(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): p.read_bytes().decode("utf-8", "replace")
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def synthetic_report(tmp_path_factory):
    d = tmp_path_factory.mktemp("synthetic")
    shutil.copytree(SYNTHETIC, d / "data")
    cfg = d / "data" / "eval.toml"
    stdout, stderr = _report(cfg, d / "report")
    return load_extract(cfg), d / "report", stdout, stderr


@pytest.fixture(scope="module")
def numeric_report(tmp_path_factory):
    d = tmp_path_factory.mktemp("numeric")
    cfg = numeric_id_extract(SYNTHETIC, d / "data")
    stdout, stderr = _report(cfg, d / "report")
    return load_extract(cfg), d / "report", stdout, stderr


@pytest.mark.parametrize("which", ["synthetic_report", "numeric_report"])
def test_no_identifier_in_any_artefact_or_log(which, request):
    ext, out, stdout, stderr = request.getfixturevalue(which)
    if which == "numeric_report":
        kids = ext.tables["children"]["child_id"]
        assert kids.str.fullmatch(r"\d{5}").all() and ext.tables["families"]["family_id"].str.fullmatch(r"\d{6}").all()
    guard = IdentifierGuard.from_extract(ext)
    assert guard.scan_dir(out) == []
    assert guard.scan_text(stdout, "stdout") == [] and guard.scan_text(stderr, "stderr") == []
    ids, births = _ids_and_births(ext)
    assert len(ids) > 1000 and len(births) > 1000
    files = _all_text(out)
    assert {"report.html", "factsheet.html", "results.json", "charts/captions.txt"} <= set(files)
    assert any(k.endswith(".png") for k in files) and any(k.endswith(".svg") for k in files)
    found = {name: brute_force(text, ids, births) for name, text in files.items() if not name.endswith(".png")}
    found["stdout"] = brute_force(stdout, ids, births)
    found["stderr"] = brute_force(stderr, ids, births)
    assert not {k: v for k, v in found.items() if v}
    # the logs are real: progress by stage was printed and scanned
    assert "matching" in stderr and "estimating effects" in stderr


def test_the_scans_find_a_planted_identifier(numeric_report, tmp_path):
    """Both scans do find an id or a birth date when one is there (in prose, a table, an SVG, a log)."""
    ext, out, _stdout, _stderr = numeric_report
    guard = IdentifierGuard.from_extract(ext)
    ids, births = _ids_and_births(ext)
    kid = str(ext.tables["children"]["child_id"].iloc[17])
    born = pd.Timestamp(ext.tables["children"]["birth_date"].iloc[17]).strftime("%m/%d/%Y")
    probe = tmp_path / "probe"
    shutil.copytree(out, probe)
    (probe / "charts" / "captions.txt").write_text(f"the served child {kid} returned home\n")
    assert guard.scan_dir(probe) and brute_force((probe / "charts" / "captions.txt").read_text(), ids, births)
    svg = next((probe / "charts").glob("*.svg"))
    svg.write_text(svg.read_text().replace("</svg>", f"<!-- born {born} --></svg>"))
    assert [f for f in guard.scan_dir(probe) if f.where.endswith(".svg")]
    assert brute_force(f"log line: child {kid}", ids, births) and guard.scan_text(f"child {kid}", "log")


def test_validation_messages_name_the_place_never_the_id(tmp_path):
    """On damaged copies of the numeric-id extract: duplicate and orphan ids, bad birth dates.

    The problems themselves (not only what the command line prints) carry no id and no
    birth date; the CLI output neither."""
    cfg = numeric_id_extract(SYNTHETIC, tmp_path / "data")
    d = cfg.parent
    kids = pd.read_csv(d / "canonical" / "children.csv", dtype=str, keep_default_na=False)
    original = load_extract(cfg)
    ids, births = _ids_and_births(original)
    kids.loc[5, "child_id"] = kids.loc[4, "child_id"]  # a duplicate id
    kids.loc[9, "birth_date"] = "2015-02-30"  # an impossible birth date
    kids.loc[12, "birth_date"] = "2030-01-01"  # born after the extract date
    kids.to_csv(d / "canonical" / "children.csv", index=False)
    eps = pd.read_csv(d / "canonical" / "episodes.csv", dtype=str, keep_default_na=False)
    eps.loc[3, "child_id"] = "99999"  # a child missing from the children table
    eps.to_csv(d / "canonical" / "episodes.csv", index=False)
    ids.add("99999")
    # messages quote removal, discharge, report and enrolment dates (not identifying): a birth
    # date that is also such a date elsewhere in the extract cannot be told apart, so it is left out
    others = set()
    for table, cols in (("episodes", ("removal_date", "discharge_date")), ("reports", ("report_date",)),
                        ("participation", ("enrolled_date", "exit_date"))):
        for c in cols:
            for x in pd.to_datetime(original.tables[table][c]).dropna().dt.date.unique():
                others |= {x.isoformat(), x.strftime("%m/%d/%Y"), x.strftime("%Y/%m/%d"), f"{x.month}/{x.day}/{x.year}"}
    births -= others
    report = load_extract(cfg).validate()
    assert report.has_errors
    text = "\n".join(map(str, report.problems))
    assert "row 7, column 'child_id'" in text  # the duplicate, by place
    hits = brute_force(text, ids, births)
    assert not hits, hits[:5]
    status, out, err = run_cli("-q", "validate", str(cfg))
    assert status == 1 and not brute_force(out + err, ids, births)


def test_an_error_after_loading_never_prints_an_id(tmp_path):
    """A failure in a later stage (here the matching stage's sibling check) reaches the user
    without any id: the message names the data row, and the command line's redaction of ids
    would catch one that slipped through."""
    cfg = numeric_id_extract(SYNTHETIC, tmp_path / "data")
    text = re.sub(r"(?m)^exact = .*$", 'exact = ["placement_setting"]', cfg.read_text())
    assert 'exact = ["placement_setting"]' in text
    cfg.write_text(text)
    status, out, err = run_cli("-q", "report", str(cfg), "--out", str(tmp_path / "report"))
    assert status in (1, 2), err
    ext = load_extract(cfg)
    ids, births = _ids_and_births(ext)
    assert not brute_force(out + err, ids, births), err
    assert IdentifierGuard.from_extract(ext).scan_text(err, "stderr") == []
    assert "differs between siblings" in err and "data row" in err, err
    assert not (tmp_path / "report").exists()


def test_unexpected_errors_print_no_traceback_and_no_id(tmp_path, monkeypatch):
    """A bug (any exception that is not a ppeval error) ends with one line, the id redacted."""
    import ppeval.evaluation as evaluation

    cfg = numeric_id_extract(SYNTHETIC, tmp_path / "data")
    ext = load_extract(cfg)
    kid = str(ext.tables["children"]["child_id"].iloc[3])

    def broken(self):
        raise KeyError(f"child {kid} has no row")

    monkeypatch.setattr(evaluation.Evaluation, "balance", property(broken))
    monkeypatch.delenv("PPEVAL_DEBUG", raising=False)
    status, _out, err = run_cli("-q", "report", str(cfg), "--out", str(tmp_path / "report"))
    assert status == 3, err
    assert "Traceback" not in err and kid not in err and "[child id]" in err
    assert err.startswith("ppeval report: unexpected error (KeyError") and err.count("\n") == 1


def test_warnings_are_one_line_and_never_carry_an_id(tmp_path, monkeypatch):
    """A Python warning raised after the extract is loaded reaches stderr on one line, the id redacted."""
    import warnings

    import ppeval.cohort as cohort_module

    cfg = numeric_id_extract(SYNTHETIC, tmp_path / "data")
    ext = load_extract(cfg)
    fam = str(ext.tables["families"]["family_id"].iloc[7])
    real = cohort_module.build_cohort_from_config

    def noisy(*args, **kwargs):
        warnings.warn(f"family {fam} has siblings in two counties", UserWarning, stacklevel=1)
        return real(*args, **kwargs)

    monkeypatch.setattr(cohort_module, "build_cohort_from_config", noisy)
    status, _out, err = run_cli("-q", "cohort", str(cfg), "--out", str(tmp_path / "cohort.csv"))
    assert status == 0, err
    lines = [line for line in err.splitlines() if "warning" in line]
    assert len(lines) == 1, err
    assert lines[0].startswith("ppeval: warning: UserWarning: family [family id] has siblings in two counties (")
    assert fam not in err
