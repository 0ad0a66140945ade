"""The identifier guard matches numeric ids by provenance, not by text alone (issue 14).

With sequential numeric ids starting at 18601, an extract's child, family and report ids
cover 19001-19197, the range of Iowa's county FIPS codes, so Table 1's ``county_19013``
reads like child 19013. The report tells the guard which phrases it prints as values of
non-identifying columns (covariate levels, notes about them, the config's own numbers;
:func:`ppeval.report.publish.published_labels`), and the guard exempts a numeric token only
where it stands as a token of such a label (``IdentifierGuard`` class notes). Here:

* (a) on a 1,000-child synthetic extract rewritten to sequential ids, ``ppeval report``
  exits 0, although the guard without provenance refuses Table 1, the balance table, the
  love plot and the HTML; an independent audit of every artefact finds every id-valued
  token in a county label, the pooled-levels note or the config, nowhere else;
* (b) the same extract with one child id (one that is also a printed county code) put
  into a caption, a CSV id column, a CSV text cell or the HTML is still refused, naming
  the artefact and never printing the id;
* (c) unit tests of :meth:`IdentifierGuard.with_provenance` and of ``published_labels``.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parent / "hardening"))
from support import run_cli  # noqa: E402

import ppeval  # noqa: E402
import ppeval.report as report_mod  # noqa: E402
from ppeval.load import load_extract  # noqa: E402
from ppeval.privacy import IdentifierGuard, PrivacyError  # noqa: E402
from ppeval.report.publish import published_labels  # noqa: E402

FIRST_ID = 18601
CONFIG_NUMBER = "19600"  # [data] max_file_mb: the last of the 1,000 child ids
CANONICAL = ("canonical/children.csv", "canonical/episodes.csv", "canonical/reports.csv", "families.csv",
             "participation.csv", "canonical/families.csv", "canonical/participation.csv")


def sequential_id_extract(src: Path, dst: Path, start: int = FIRST_ID) -> Path:
    """Copy a ``ppeval synth`` extract with child, family and report ids rewritten as
    sequential integers from ``start`` (each kind its own sequence, in order of first
    appearance), consistently in every table. Returns ``eval_canonical.toml``."""
    shutil.copytree(src, dst)

    def read(rel: str) -> pd.DataFrame:
        return pd.read_csv(dst / rel, dtype=str, keep_default_na=False)

    def sequence(values: pd.Series) -> dict[str, str]:
        distinct = [v for v in pd.unique(values) if v]
        return dict(zip(distinct, map(str, range(start, start + len(distinct))), strict=True))

    children = read("canonical/children.csv")
    families = pd.concat([read(rel)["family_id"] for rel in ("canonical/children.csv", "families.csv", "participation.csv")])
    maps = {"child_id": sequence(children["child_id"]), "family_id": sequence(families),
            "report_id": sequence(read("canonical/reports.csv")["report_id"])}
    for rel in CANONICAL:
        if (dst / rel).exists():
            df = read(rel)
            for col, mapping in maps.items():
                if col in df:
                    df[col] = df[col].map(lambda v, m=mapping: m.get(v, v))
            df.to_csv(dst / rel, index=False)
    return dst / "eval_canonical.toml"


@pytest.fixture(scope="module")
def seq_extract(tmp_path_factory) -> dict:
    """1,000 children (seed 1: its county note pools two rare counties into one code)."""
    d = tmp_path_factory.mktemp("seq")
    status, _out, err = run_cli("synth", "--out", str(d / "synth"), "--children", "1000", "--seed", "1")
    assert status == 0, err
    cfg = sequential_id_extract(d / "synth", d / "data")
    # a setting of the config's own that is also a child id (printed in the config section)
    text = cfg.read_text()
    cfg.write_text(text.replace("[data]\n", f"[data]\nmax_file_mb = {CONFIG_NUMBER}\n", 1))
    assert f"max_file_mb = {CONFIG_NUMBER}" in cfg.read_text()
    ext = load_extract(cfg)
    ids = {kind: set(ext.tables[table][col].astype(str))
           for kind, table, col in (("child", "children", "child_id"), ("family", "families", "family_id"),
                                    ("report", "reports", "report_id"))}
    counties = set(ext.tables["children"]["county"].astype(str)) | set(ext.tables["episodes"]["county"].astype(str))
    return {"dir": d, "cfg": cfg, "ext": ext, "ids": ids, "counties": counties}


# -- (a) the report is produced ----------------------------------------------------------

_SVG_URI = re.compile(r"data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)")
_FIVE = re.compile(r"(?<![A-Za-z0-9])\d{5}(?![A-Za-z0-9])")
# where an id-valued number may stand in the published report, as a reader sees it (the
# config section prints ``"max_file_mb": 19600``, HTML-escaped in report.html)
_COUNTY = re.compile(r"county(?:_|: )$", re.IGNORECASE)
_POOLED = re.compile(r"county: \d+ rare level\(s\) pooled into (?:'|&#39;)$")
_CONFIG = re.compile(r"max_file_mb(?: = |&#34;: |\": )$")


def _audit(folder: Path, id_values: set[str]) -> dict[str, list[tuple[str, str]]]:
    """Every whole five-digit token of ``id_values`` in every text artefact (SVGs embedded in
    HTML decoded), with the context it stands in: ``county``, ``pooled``, ``config`` or
    ``OTHER``. Independent of the guard: plain regular expressions on the files."""
    found: dict[str, list[tuple[str, str]]] = {}
    for p in sorted(folder.rglob("*")):
        if not p.is_file() or p.suffix == ".png":
            continue
        text = p.read_bytes().decode("utf-8", "replace")
        text = _SVG_URI.sub(lambda m: base64.b64decode(m.group(1)).decode("utf-8", "replace"), text)
        for m in _FIVE.finditer(text):
            before = text[max(0, m.start() - 60):m.start()]
            if m.group() not in id_values or re.search(r"\d[.,]$", before):
                continue  # not an id, or the decimals of a number
            kind = next((k for k, rx in (("county", _COUNTY), ("pooled", _POOLED), ("config", _CONFIG))
                         if rx.search(before)), "OTHER")
            found.setdefault(p.relative_to(folder).as_posix(), []).append((kind, m.group()))
    return found


def test_sequential_ids_beside_county_codes_publish(seq_extract):
    d, ext, ids = seq_extract["dir"], seq_extract["ext"], seq_extract["ids"]
    assert min(map(int, ids["child"])) == FIRST_ID and len(ids["child"]) == 1000
    out = d / "report"
    status, _stdout, stderr = run_cli("report", str(seq_extract["cfg"]), "--out", str(out))
    assert status == 0, stderr[-2000:]
    assert (out / "report.html").is_file() and (out / "tables" / "table1.csv").is_file()

    # the premise: Table 1 prints county codes that are child ids of this extract ...
    table1 = pd.read_csv(out / "tables" / "table1.csv")
    codes = {c.removeprefix("county_") for c in table1["covariate"] if c.startswith("county_")}
    assert len(codes) >= 8 and len(codes & ids["child"]) >= 8
    # ... and the guard without provenance refuses the report because of them
    plain = {f.where for f in IdentifierGuard.from_extract(ext).scan_dir(out)}
    assert {"tables/table1.csv", "tables/balance.csv", "charts/love_plot.svg", "report.html", "results.json"} <= plain

    # independent audit: every id-valued token stands in a county label, the note about
    # pooled counties or the config's max_file_mb, and nowhere else
    all_ids = ids["child"] | ids["family"] | ids["report"]
    found = _audit(out, all_ids)
    other = {where: [v for k, v in hits if k == "OTHER"] for where, hits in found.items()}
    assert not {w: v for w, v in other.items() if v}
    county_hits = {v for hits in found.values() for k, v in hits if k in ("county", "pooled")}
    assert county_hits <= seq_extract["counties"] and len(county_hits & ids["child"]) >= 8
    notes = json.loads((out / "results.json").read_text())["notes"]
    assert any(re.search(r"county: \d+ rare level\(s\) pooled into '(\d{5})'", n) for n in notes)
    assert CONFIG_NUMBER in ids["child"]
    assert {v for hits in found.values() for k, v in hits if k == "config"} == {CONFIG_NUMBER}
    assert {"tables/table1.csv", "tables/balance.csv", "charts/love_plot.svg", "report.html"} <= set(found)


# -- (b) a real id put anywhere else is still refused ------------------------------------


@pytest.fixture(scope="module")
def seq_eval(seq_extract):
    """One evaluation for the injection cases (fitted once, rendered per case)."""
    return ppeval.Evaluation.from_toml(seq_extract["cfg"])


@pytest.fixture(scope="module")
def chart_cache(seq_eval, tmp_path_factory):
    """The report's charts of this extract, drawn once: drawing them is most of a report's
    time, and they are the same in every case (reruns are byte-identical)."""
    folder = tmp_path_factory.mktemp("charts") / "charts"
    return folder, report_mod._charts(seq_eval, report_mod.build(seq_eval), folder)


def _reuse_charts(monkeypatch, chart_cache) -> None:
    """Every report of this test publishes the cached charts: the same files and captions."""
    folder, charts = chart_cache

    def charts_(ev, content, target):
        if target is not None:
            shutil.copytree(folder, target, dirs_exist_ok=True)
        return copy.deepcopy(charts)

    monkeypatch.setattr(report_mod, "_charts", charts_)


def _kid(seq_extract, seq_eval) -> str:
    """A child id that is also a county code printed in Table 1."""
    bt = report_mod.build(seq_eval)["balance"].table
    codes = sorted(c.removeprefix("county_") for c in bt["covariate"] if c.startswith("county_"))
    both = [c for c in codes if c in seq_extract["ids"]["child"]]
    assert both
    return both[0]


def _inject_caption(monkeypatch, kid):
    orig = report_mod._charts

    def charts(ev, content, folder):
        out = orig(ev, content, folder)
        love = next(c for c in out if c["name"] == "love_plot")  # not on the fact sheet
        love["caption"] += f" The first served child, {kid}, went home."
        return out

    monkeypatch.setattr(report_mod, "_charts", charts)
    return {"charts/captions.txt", "report.html"}


def _inject_csv_id_column(monkeypatch, kid):
    orig = report_mod._tables

    def tables(content):
        out = orig(content)
        out["effects"] = out["effects"].assign(child_id=kid)
        return out

    monkeypatch.setattr(report_mod, "_tables", tables)
    return {"tables/effects.csv"}


def _inject_csv_text_cell(monkeypatch, kid):
    orig = report_mod._tables

    def tables(content):
        out = orig(content)
        t1 = out["table1"].copy()
        t1.loc[len(t1)] = [f"served child {kid}"] + [""] * (t1.shape[1] - 1)
        out["table1"] = t1
        return out

    monkeypatch.setattr(report_mod, "_tables", tables)
    return {"tables/table1.csv"}


def _inject_html(monkeypatch, kid):
    orig = report_mod.render

    def render(ev, content, chart_list):
        rep, fact = orig(ev, content, chart_list)
        return rep.replace("</body>", f"<p>Case {kid} is one of the served children.</p></body>"), fact

    monkeypatch.setattr(report_mod, "render", render)
    return {"report.html"}


@pytest.mark.parametrize("inject", [_inject_caption, _inject_csv_id_column, _inject_csv_text_cell, _inject_html],
                         ids=["caption", "csv-id-column", "csv-text-cell", "html-text"])
def test_an_id_anywhere_else_is_still_refused(inject, seq_extract, seq_eval, chart_cache, monkeypatch, tmp_path,
                                              capsys):
    kid = _kid(seq_extract, seq_eval)
    _reuse_charts(monkeypatch, chart_cache)
    where = inject(monkeypatch, kid)
    out = tmp_path / "report"
    with pytest.raises(PrivacyError) as info:
        report_mod.write_report(seq_eval, out)
    refused = {f.where for f in info.value.findings}
    # exactly the artefacts the id was put into, each named in the message; nothing else
    # (the same code printed as a county label in those files is not what is reported)
    assert refused == where
    kinds = {f.kind for f in info.value.findings}  # sequential ids: the number is a family and report id too
    assert "child id" in kinds and kinds <= {"child id", "family id", "report id"}
    message = str(info.value)
    for w in where:
        assert f"{w}: refusing to publish: it contains a child id" in message
    assert kid not in message and kid not in repr(info.value.findings)
    captured = capsys.readouterr()
    assert kid not in captured.out and kid not in captured.err
    assert not out.exists()  # nothing published


def test_the_cli_refuses_with_exit_1_and_never_prints_the_id(seq_extract, chart_cache, monkeypatch, tmp_path):
    kid = sorted(seq_extract["counties"] & seq_extract["ids"]["child"])[0]
    _reuse_charts(monkeypatch, chart_cache)
    _inject_caption(monkeypatch, kid)
    status, stdout, stderr = run_cli("report", str(seq_extract["cfg"]), "--out", str(tmp_path / "r"))
    assert status == 1
    assert "charts/captions.txt: refusing to publish: it contains a child id" in stderr
    assert kid not in stdout and kid not in stderr and not (tmp_path / "r").exists()


# -- (c) the guard's provenance rule -------------------------------------------------------


@pytest.fixture
def guard() -> IdentifierGuard:
    # 19013 is a child id and a family id, 20000 a report id, C19013 a non-numeric id
    return IdentifierGuard(child_ids=["19013", "19015", "C19013"], family_ids=["19013"], report_ids=["20000"],
                           birth_dates=["2015-03-04"])


@pytest.fixture
def declared(guard) -> IdentifierGuard:
    return guard.with_provenance({"county": ["county_19013", "County: 19013", "county_19015"],
                                  "config": ["max_file_mb 20000"]})


@pytest.mark.parametrize("text", [
    "county_19013,7.1%,6.4%",                                   # a Table 1 / balance CSV row
    "<tr><td>county_19013</td><td>7.1%</td></tr>",              # the HTML table
    "<!-- County: 19013 -->",                                    # the love plot's label
    "county: 2 rare level(s) of county_19015 and County: 19013",
    "data.max_file_mb = 20000",                                  # defaults applied
    "<pre>&#34;max_file_mb&#34;: 20000</pre>",                   # the config, HTML-escaped
    "COUNTY_19013",
])
def test_labels_of_non_id_columns_are_not_ids(declared, guard, text):
    assert declared.scan_text(text, "t") == []
    assert declared.scan_bytes(text.encode(), "t.html") == []
    assert guard.scan_text(text, "t") != []  # the same text without provenance is refused


@pytest.mark.parametrize("text, kinds", [
    ("the served child 19013 went home", {"child id", "family id"}),
    ("county_19013 19013", {"child id", "family id"}),           # an id printed beside its label
    ("19013 county", {"child id", "family id"}),                 # tokens in another order
    ("county\n19013", {"child id", "family id"}),                # a line break ends a label
    ("county ..................... 19013", {"child id", "family id"}),  # too far apart
    ("county\t19013", {"child id", "family id"}),                # cells of a row are not one label
    ("county,19013", {"child id", "family id"}),
    ("| county | 19013 |", {"child id", "family id"}),
    ("county; 19013", {"child id", "family id"}),
    ("xcounty_19013", {"child id", "family id"}),                # not the whole token "county"
    ("county_19013_19015", {"child id"}),                        # 19015 is not county_19015 here
    ("report 20000", {"report id"}),
    ("county_C19013", {"child id"}),                             # non-numeric ids: no exemption
    ("county_20150304", {"birth date"}),                         # nor for birth dates
])
def test_the_same_numbers_elsewhere_are_still_ids(declared, text, kinds):
    assert {f.kind for f in declared.scan_text(text, "caption")} == kinds


def test_provenance_never_reaches_id_fields(declared):
    csv = "covariate,child_id\ncounty_19013,19013\n"
    assert [str(f) for f in declared.scan_bytes(csv.encode(), "t.csv")] == [
        "t.csv, line 2, column 'child_id': child id", "t.csv, line 2, column 'child_id': family id"]
    doc = json.dumps({"level": "county_19013", "records": [{"FamilyID": "county_19013"}, {"FamilyID": 19013}]})
    assert [(f.column, f.kind) for f in declared.scan_bytes(doc.encode(), "r.json")] == [
        ("records.FamilyID", "child id"), ("records.FamilyID", "family id")]
    frame = pd.DataFrame({"covariate": ["county_19013"], "RecNumbr": [19013]})
    assert [(f.column, f.kind) for f in declared.scan_frame(frame, "f")] == [
        ("RecNumbr", "child id"), ("RecNumbr", "family id")]


def test_a_bare_number_is_no_label_and_id_columns_are_no_source(guard):
    bare = guard.with_provenance({"county": ["19013", "19013 19015"], "config": ["12345"]})
    assert {f.kind for f in bare.scan_text("19013", "t")} == {"child id", "family id"}
    assert bare._label_re is None  # nothing was declared
    for source in ("child_id", "FamilyID", "RecNumbr", "report id"):
        with pytest.raises(ValueError, match="identifying column"):
            guard.with_provenance({source: ["county_19013"]})


def test_the_cached_guard_is_unchanged_and_labels_accumulate(guard):
    a = guard.with_provenance({"county": ["county_19013"]})
    b = a.with_provenance({"county": "county_19015"})  # a single string is one phrase
    assert guard.scan_text("county_19013", "t") != [] and guard._label_re is None
    assert a.scan_text("county_19015", "t") != []
    assert b.scan_text("county_19013 county_19015", "t") == []
    assert repr(b) == repr(guard) == "IdentifierGuard(4 ids, 1 birth dates)"


def test_redact_keeps_labels_and_hides_ids(declared):
    text = "county_19013: child 19013 (report 20000, max_file_mb = 20000)"
    assert declared.redact(text) == "county_19013: child [child id] (report [report id], max_file_mb = 20000)"


def test_leading_zeros_and_entities(guard):
    g = IdentifierGuard(child_ids=["0019013"]).with_provenance({"county": ["county_19013"]})
    assert g.scan_text("county_19013 and county_0019013", "t") != []  # 0019013 is no county label
    assert g.scan_text("county_19013", "t") == []
    assert {f.kind for f in g.scan_bytes(b"<p>child &#49;9013</p>", "x.html")} == {"child id"}
    assert g.scan_bytes(b"<p>county&#95;19013</p>", "x.html") == []


def test_published_labels():
    bt = pd.DataFrame({
        "covariate": ["age_at_removal", "county_19013", "county_19153", "race_ethnicity_black", "worker_id_19013"],
        "variable": ["age_at_removal", "county", "county", "race_ethnicity", "worker_id"],
    })
    cfg = {"title": "Review 19013", "seed": 7, "data": {"max_file_mb": 20000, "child_id": "19013",
                                                       "exclude_ids": [19013]}}
    labels = published_labels(bt, ["age_at_removal", "county", "race_ethnicity", "worker_id"], [cfg],
                              ["data.max_file_mb = 20000"], {"county": ["county: 2 rare level(s) pooled into '19153'"]})
    assert labels["county"] == ["county_19013", "County: 19013", "county_19153", "County: 19153",
                                "county: 2 rare level(s) pooled into '19153'"]
    assert labels["race_ethnicity"] == ["race_ethnicity_black", "Race/ethnicity: Black"]
    assert "worker_id" not in labels  # levels of an id-like variable get no provenance
    assert labels["config"] == ["title Review 19013", "Review 19013", "seed 7", "max_file_mb 20000",
                                "data.max_file_mb = 20000"]  # no setting under an id-like key
    g = IdentifierGuard(child_ids=["19013", "19153"], report_ids=["20000"]).with_provenance(labels)
    assert g.scan_text("Review 19013 | County: 19013 | county_19153 | data.max_file_mb = 20000", "t") == []
    assert g.scan_text("county: 2 rare level(s) pooled into &#39;19153&#39;", "t") == []  # the note, whole
    for text in ("worker_id_19013", "pooled into '19153'", "Review: 19153", "max_file_mb = 19013"):
        assert [f.kind for f in g.scan_text(text, "t")] == ["child id"], text
