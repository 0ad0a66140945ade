"""The published report: contract, suppression, identifiers, determinism, browser rendering, PDF.

One synthetic extract of 4000 children (the README's demo size) is generated and reported
once per module; a second run of the same config checks byte-identical reruns; a small
extract (600 children) checks that no count from 1 to 10 is published anywhere; an extract
whose ids are plain 5–6 digit numbers checks the identifier guard where it is hardest.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ppeval.evaluation import Evaluation
from ppeval.load import load_extract
from ppeval.privacy import IdentifierGuard
from ppeval.report import _charts, build
from ppeval.synthetic import write_synthetic

CHROMIUM = Path("/usr/bin/chromium")
THRESHOLD = 11
TEXT_SUFFIXES = {".html", ".svg", ".json", ".csv", ".txt"}
TIMINGS: dict[str, float] = {}


# -- fixtures --------------------------------------------------------------------------------
def _run(config: Path, out: Path, label: str, **kw) -> Path:
    t0 = time.perf_counter()
    Evaluation.from_toml(config).report(out, **kw)
    TIMINGS[label] = time.perf_counter() - t0
    return out


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("synth4000")
    write_synthetic(d, n_children=4000, seed=7)
    return d


@pytest.fixture(scope="module")
def report(synth, tmp_path_factory) -> Path:
    return _run(synth / "eval.toml", tmp_path_factory.mktemp("out") / "report", "report_4000")


@pytest.fixture(scope="module")
def rerun(synth, report, tmp_path_factory) -> Path:
    return _run(synth / "eval.toml", tmp_path_factory.mktemp("out2") / "report", "rerun_4000")


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> tuple[Evaluation, Path]:
    """A 600-child extract: most cells of most tables fall under the threshold."""
    d = tmp_path_factory.mktemp("synth600")
    write_synthetic(d, n_children=600, seed=11)
    ev = Evaluation.from_toml(d / "eval.toml")
    out = d / "report"
    ev.report(out)
    return ev, out


def _numeric_id_extract(src: Path, dst: Path) -> Path:
    """Copy the canonical synthetic extract with every id rewritten as a plain 5–6 digit number."""
    shutil.copytree(src, dst)
    c = pd.read_csv(dst / "canonical" / "children.csv", dtype=str)
    child = {old: str(10000 + i) for i, old in enumerate(c["child_id"])}  # 5 digits
    fams = pd.unique(pd.concat([c["family_id"], pd.read_csv(dst / "families.csv", dtype=str)["family_id"],
                                pd.read_csv(dst / "participation.csv", dtype=str)["family_id"]]).dropna())
    family = {old: str(200000 + i) for i, old in enumerate(fams)}  # 6 digits
    rep = pd.read_csv(dst / "canonical" / "reports.csv", dtype=str)
    report_ids = {old: str(500000 + i) for i, old in enumerate(pd.unique(rep["report_id"]))}
    for rel in ("canonical/children.csv", "canonical/episodes.csv", "canonical/reports.csv", "families.csv", "participation.csv"):
        df = pd.read_csv(dst / rel, dtype=str, keep_default_na=False)
        for col, mapping in (("child_id", child), ("family_id", family), ("report_id", report_ids)):
            if col in df:
                df[col] = df[col].map(lambda v, m=mapping: m.get(v, v))
        df.to_csv(dst / rel, index=False)
    return dst / "eval_canonical.toml"


@pytest.fixture(scope="module")
def numeric(synth, tmp_path_factory) -> tuple[Path, Path]:
    cfg = _numeric_id_extract(synth, tmp_path_factory.mktemp("numeric") / "data")
    out = _run(cfg, cfg.parent.parent / "report", "report_numeric_ids")
    return cfg, out


# -- helpers ---------------------------------------------------------------------------------
def _text_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in TEXT_SUFFIXES)


_DATA_URI = re.compile(r"data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)")


def _readable_text(path: Path) -> str:
    """A file's text with embedded base64 SVGs decoded (and appended) instead of left as base64."""
    text = path.read_text(encoding="utf-8")
    decoded = [base64.b64decode(m.group(1)).decode("utf-8") for m in _DATA_URI.finditer(text)]
    return _DATA_URI.sub("data:", text) + "\n".join(decoded)


def _brute_force_identifiers(extract, folder: Path) -> list[str]:
    """Every id and birth date of the extract looked for as a token in every text file.

    Written independently of :class:`IdentifierGuard`: ids are whole alphanumeric tokens
    compared case-insensitively, numeric ids also without leading zeros. Digits right after
    ``<digit>.`` are a number's decimals, not a token. The dates the report must print (the
    extract date and the entry window) are allowed.
    """
    ids: set[str] = set()
    for name, col in (("children", "child_id"), ("children", "family_id"), ("families", "family_id"),
                      ("participation", "family_id"), ("reports", "report_id"), ("episodes", "child_id")):
        if name in extract.tables and col in extract.tables[name]:
            for v in extract.tables[name][col].dropna().astype(str):
                ids.add(v.lower())
                if v.isdigit():
                    ids.add(v.lstrip("0"))
    allowed = {"2023-12-31", "2016-01-01", "2021-12-31"}
    births = pd.to_datetime(extract.tables["children"]["birth_date"]).dropna().dt.date.unique()
    date_forms = set()
    for d in births:
        iso = d.isoformat()
        if iso not in allowed:
            date_forms |= {iso, d.strftime("%m/%d/%Y"), d.strftime("%Y/%m/%d")}
    found = []
    for path in _text_files(folder):
        text = _readable_text(path)
        for m in re.finditer(r"[A-Za-z0-9]+", text):
            tok = m.group().lower()
            if tok in ids and not re.search(r"\d\.$", text[max(0, m.start() - 2):m.start()]):
                found.append(f"{path.name}: id {tok!r} at {m.start()}")
        for m in re.finditer(r"\d{4}-\d{2}-\d{2}|\d{2}/\d{2}/\d{4}|\d{4}/\d{2}/\d{2}", text):
            if m.group() in date_forms:
                found.append(f"{path.name}: birth date at {m.start()}")
    return found


def _walk(obj, path=""):
    if isinstance(obj, dict):
        yield path, obj
        for k, v in obj.items():
            yield from _walk(v, f"{path}.{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _walk(v, f"{path}[{i}]")


COUNT_KEYS = {"n", "events", "treated", "comparison", "treated_matched", "comparison_matched", "treated_unmatched",
              "n_treated", "n_comparison", "events_treated", "events_comparison"}


def _json_counts(res: dict) -> list[tuple[str, object]]:
    out = []
    for path, d in _walk(res):
        if path.startswith(".config") or path.startswith(".inputs"):
            continue
        for k, v in d.items():
            if k in COUNT_KEYS and not isinstance(v, dict | list | str | bool):
                out.append((f"{path}.{k}", v))
    return out


def _is_published_count_ok(v) -> bool:
    return v is None or (isinstance(v, float) and np.isnan(v)) or v == 0 or v >= THRESHOLD


# -- contract --------------------------------------------------------------------------------
def test_report_writes_every_artefact(report):
    for rel in ("report.html", "factsheet.html", "results.json", "charts/captions.txt", "tables/outcomes.csv",
                "tables/sample_flow.csv", "tables/table1.csv", "tables/effects.csv", "tables/days_in_care.csv"):
        assert (report / rel).stat().st_size > 0, rel
    pngs = sorted(p.stem for p in (report / "charts").glob("*.png"))
    assert pngs == sorted(p.stem for p in (report / "charts").glob("*.svg"))
    assert {"love_plot", "propensity_overlap", "sample_flow", "subgroups", "curve_reunification", "days_in_care_12m"} <= set(pngs)


def test_results_json_has_every_contract_key(report):
    res = json.loads((report / "results.json").read_text())
    for key in ("ppeval_version", "config", "inputs", "seed", "flow", "cohort", "matching", "outcomes"):
        assert key in res, key
    assert res["seed"] == 7 and res["inputs"] and all(len(f["sha256"]) == 64 and f["path"] for f in res["inputs"])
    assert all(set(f) >= {"step", "treated", "comparison"} for f in res["flow"])
    assert {"treated", "comparison", "events"} <= set(res["cohort"])
    assert set(res["cohort"]["events"]["reunification"]) == {"treated", "comparison"}
    assert {"treated_matched", "comparison_matched", "treated_unmatched", "max_abs_smd_before", "max_abs_smd_after"} <= set(res["matching"])
    assert res["matching"]["max_abs_smd_after"] < res["matching"]["max_abs_smd_before"]
    measures = {"hazard_ratio", "subdistribution_hazard_ratio", "odds_ratio", "risk_ratio", "risk_difference"}
    for name in ("reunification", "tpr", "reentry", "permanency", "recurrence"):
        o = res["outcomes"][name]
        for arm in ("treated", "comparison"):
            assert "n" in o[arm] and "events" in o[arm] and "rates" in o[arm]
        assert o["effects"], name
        for e in o["effects"]:
            assert set(e) >= {"measure", "window_months", "estimate", "ci_low", "ci_high", "p_value", "method"}
            assert e["measure"] in measures
            assert (e["window_months"] is None) == e["measure"].endswith("hazard_ratio")
    assert res["outcomes"]["reunification"]["treated"]["rates"]["12m"] is not None
    days = res["outcomes"]["time_in_care"]["days_in_care"][0]
    assert days["window_months"] == 12 and 0 < days["mean_treated"] <= 365 and days["ci_low"] < days["difference"] < days["ci_high"]
    # E-values are computed (a regression: they were all null)
    assert res["sensitivity"]["e_values"] and all(e["e_value"] >= 1 for e in res["sensitivity"]["e_values"])
    assert res["summary"] and any("defaults" in d or "=" in d for d in res["defaults_applied"])


def test_suppressed_counts_are_null_with_flag(report, small):
    for folder in (report, small[1]):
        res = json.loads((folder / "results.json").read_text())
        for path, d in _walk(res):
            if path.startswith(".config"):
                continue
            nulls = [k for k, v in d.items() if k in COUNT_KEYS and v is None]
            if nulls:
                assert d.get("suppressed") is True, (path, nulls)
    res = json.loads((small[1] / "results.json").read_text())
    assert any(d.get("suppressed") for _, d in _walk(res)), "the small extract should need suppression"


def test_report_html_has_every_section(report):
    html = (report / "report.html").read_text()
    for section in ("summary", "outcomes", "flow", "balance", "subgroups", "sensitivity", "methods", "provenance"):
        assert f'id="{section}"' in html
    for phrase in ("Iowa-style outcome table", "Parents for Parents-style table", "Days in out-of-home care within 12 months",
                   "Table 1", "Rosenbaum", "E-value", "Defaults applied", "cohort.min_stay_days", "caliper 0.2 SD"):
        assert phrase in html, phrase
    fact = (report / "factsheet.html").read_text()
    assert fact.count("<img") == 2 and "Method:" in fact


def test_balance_sentences_follow_the_standardized_verdict(report):
    """Every sentence about balance follows results.json's verdict and its max |SMD|, which are
    in MatchIt's convention (binary covariates standardized), and says so."""
    import html as html_mod

    res = json.loads((report / "results.json").read_text())
    m = res["matching"]
    assert m["smd_binary_covariates"].startswith("difference in proportions / sqrt(p(1 - p)) of the treated group")
    bal = pd.read_csv(report / "tables" / "balance.csv")
    assert m["max_abs_smd_after"] == pytest.approx(bal["smd_after"].abs().max(), abs=5e-6)  # 6 digits in the CSV
    page = (report / "report.html").read_text()
    text = re.sub(r"\s+", " ", html_mod.unescape(re.sub(r"<[^>]+>", " ", re.sub(r"<img[^>]*>", "", page))))
    assert "binary characteristics (proportions) likewise, by that group's sqrt(p(1 − p)) before matching" in text
    if m["balance_passed"]:
        assert "looked alike on every characteristic" in text and "not alike" not in text
    else:
        assert "looked alike" not in text and "every covariate balanced" not in text
        assert "so the groups were not alike on every characteristic we measured" in text
        assert "read them with care" in text and "may reach balance" in text
        assert f"largest standardized difference over the published covariates {m['max_abs_smd_after']:.2f}" in text \
            or f"largest standardized difference {m['max_abs_smd_after']:.2f}" in text
    svg = (report / "charts" / "love_plot.svg").read_text()
    assert "Absolute standardized mean difference (binary covariates by the treated group" in svg


# -- small cells -----------------------------------------------------------------------------
def test_no_published_count_from_1_to_10(small):
    ev, out = small
    res = json.loads((out / "results.json").read_text())
    bad = [(p, v) for p, v in _json_counts(res) if not _is_published_count_ok(v)]
    assert not bad, bad
    # tables: every count column of every CSV
    count_col = re.compile(r"^(n|events|treated|comparison|total)(_|$)|_(n|events)$|^(n|events)_(treated|comparison)$")
    for csv in (out / "tables").glob("*.csv"):
        df = pd.read_csv(csv)
        for col in df.columns:
            if count_col.search(str(col)) and pd.api.types.is_numeric_dtype(df[col]):
                vals = df[col].dropna()
                assert ((vals == 0) | (vals >= THRESHOLD)).all(), (csv.name, col, vals.tolist())
    # table 1: the n row
    t1 = pd.read_csv(out / "tables" / "table1.csv", dtype=str)
    for v in t1.iloc[0, 1:5]:
        assert v == "suppressed" or int(v.replace(",", "")) == 0 or int(v.replace(",", "")) >= THRESHOLD
    # every count marked in the HTML
    for name in ("report.html", "factsheet.html"):
        html = (out / name).read_text()
        spans = re.findall(r'<span class="count">([^<]*)</span>', html)
        assert spans
        for s in spans:
            assert s in ("suppressed", f"<{THRESHOLD}", "&lt;11") or int(s.replace(",", "")) == 0 or int(s.replace(",", "")) >= THRESHOLD, (name, s)
    # captions and every text drawn on a chart: no bare integer from 1 to 10 that is a count
    # (percentages, decimals and window lengths are not counts)
    content = build(ev)
    texts = [c["caption"] for c in _charts(ev, content, None)]
    texts += [t for c in _charts(ev, content, None) if c["name"] in ("sample_flow",) or c["name"].startswith("curve_") for t in c["texts"]]
    texts.append((out / "charts" / "captions.txt").read_text())
    for t in texts:
        # integers that are not part of a date, a decimal or a percentage
        for m in re.finditer(r"(?<![\d.,<\-/])(\d+)(?![\d.%,\-/])", t):
            v = int(m.group(1))
            tail = t[m.end():m.end() + 8]
            if tail.startswith((" month", " SD", " days", " years")) or v == 0 or v >= THRESHOLD:
                continue
            pytest.fail(f"count {v} published in {t!r}")


def test_small_extract_flow_protects_the_unmatched(small):
    """A small number of unmatched served units cannot be got by subtraction from the flow."""
    _, out = small
    flow = pd.read_csv(out / "tables" / "sample_flow.csv")
    steps = flow[~flow["step"].str.startswith("left out")]
    for arm in ("treated", "comparison"):
        col = flow[arm]
        for i in range(1, len(flow) - 1, 2):  # exclusion rows sit between two steps
            above, excl, below = col.iloc[i - 1], col.iloc[i], col.iloc[i + 1]
            if pd.isna(excl):
                # a hidden exclusion: not both neighbours published
                assert pd.isna(above) or pd.isna(below), (arm, flow["step"].iloc[i])
    assert len(steps) >= 2


# -- identifiers -----------------------------------------------------------------------------
def test_no_identifier_in_any_output_file(synth, report):
    ext = load_extract(synth / "eval.toml")
    assert IdentifierGuard.from_extract(ext).scan_dir(report) == []
    assert _brute_force_identifiers(ext, report) == []
    # the brute-force scan does find an id when one is there
    probe = report.parent / "probe"
    shutil.copytree(report, probe)
    cid = str(ext.tables["children"]["child_id"].iloc[5])
    # (in prose: the guard compares a numeric CSV cell with ids only in id-named columns)
    (probe / "charts" / "captions.txt").write_text(f"the served child {cid} returned home\n")
    assert _brute_force_identifiers(ext, probe)
    assert IdentifierGuard.from_extract(ext).scan_dir(probe)


def test_numeric_ids_never_published(numeric):
    """Ids that look like ordinary numbers (5-digit children, 6-digit families and reports).

    The guard looks for a purely numeric id in free text only from 5 digits
    (``min_numeric_digits``); shorter numeric ids are checked only in id-like CSV/JSON
    fields, because a 3-digit id is indistinguishable from a count. The report therefore
    prints counts with thousands separators, so no bare 5-digit run in prose is a count.
    """
    cfg, out = numeric
    ext = load_extract(cfg)
    assert ext.tables["children"]["child_id"].str.fullmatch(r"\d{5}").all()
    assert IdentifierGuard.from_extract(ext).scan_dir(out) == []
    assert _brute_force_identifiers(ext, out) == []
    res = json.loads((out / "results.json").read_text())
    assert res["matching"]["treated_matched"] > 0


# -- determinism -----------------------------------------------------------------------------
def test_rerun_is_byte_identical(report, rerun):
    files = sorted(p.relative_to(report) for p in report.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(rerun) for p in rerun.rglob("*") if p.is_file())
    differ = [str(f) for f in files if (report / f).read_bytes() != (rerun / f).read_bytes()]
    assert differ == []


# -- browser ---------------------------------------------------------------------------------
def _chromium(*args: str, timeout: int = 90) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as profile:
        cmd = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               f"--user-data-dir={profile}",
               # any network request fails: a page that still renders fully made none it needed
               "--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=127.0.0.1:9", *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium (Debian's chromium)")
@pytest.mark.parametrize("page", ["report.html", "factsheet.html"])
def test_chromium_renders_offline_with_every_image(report, page, tmp_path):
    html = (report / page).read_text()
    # no external reference at all: every image is a data URI, no scripts, fonts or styles fetched
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", html, re.I)
    assert not re.search(r"url\(\s*['\"]?(https?:)?//", html, re.I)
    assert not re.search(r"<(script|link|iframe)\b", html, re.I)
    url = (report / page).as_uri()
    # every <img> decoded: a script added to a copy writes the result into the DOM
    probe = tmp_path / page
    probe.write_text(html.replace("</body>", """<script>
      window.addEventListener('load', () => { const imgs = [...document.images];
        document.body.setAttribute('data-images', imgs.length + ':' + imgs.filter(i => i.complete && i.naturalWidth > 0).length); });
      </script></body>"""))
    dom = _chromium("--virtual-time-budget=5000", "--dump-dom", probe.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    m = re.search(r'data-images="(\d+):(\d+)"', dom.stdout)
    assert m, dom.stdout[:500]
    n_img, n_loaded = int(m.group(1)), int(m.group(2))
    assert n_img >= 2 and n_loaded == n_img
    shot = tmp_path / "shot.png"
    r = _chromium("--window-size=1280,900", f"--screenshot={shot}", url)
    assert r.returncode == 0 and shot.exists(), r.stderr[-2000:]
    from PIL import Image

    px = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert px.shape == (900, 1280) and px.std() > 20  # not blank: the dark cover and text
    assert not re.search(r"net::ERR_(?!FILE)", r.stderr), r.stderr[-2000:]


# -- PDF -------------------------------------------------------------------------------------
def _pdf_pages(path: Path) -> int:
    """Page count: poppler's pdfinfo when installed, else weasyprint's layout of the HTML."""
    if shutil.which("pdfinfo"):
        info = subprocess.run(["pdfinfo", str(path)], capture_output=True, text=True, check=True).stdout
        return int(re.search(r"Pages:\s+(\d+)", info).group(1))
    from weasyprint import HTML  # the PDF's own layout, rendered again from its HTML

    return len(HTML(filename=str(path.with_suffix(".html"))).render().pages)


def test_pdf_report_and_one_page_fact_sheet(synth, tmp_path):
    pytest.importorskip("weasyprint")
    out = _run(synth / "eval.toml", tmp_path / "pdf", "report_pdf", pdf=True)
    for name in ("report.pdf", "factsheet.pdf"):
        assert (out / name).read_bytes().startswith(b"%PDF")
    pages, report_pages = _pdf_pages(out / "factsheet.pdf"), _pdf_pages(out / "report.pdf")
    assert pages == 1
    assert report_pages > 3
    ext = load_extract(synth / "eval.toml")
    assert IdentifierGuard.from_extract(ext).scan_dir(out) == []


def test_timings_are_reasonable(report, rerun):
    """Keeps the suite CI-sized: one full report of 4000 children well under a minute."""
    assert TIMINGS["report_4000"] < 60, TIMINGS
