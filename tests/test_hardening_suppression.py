"""Hardening: on a small extract no count from 1 to 10 is published, nor recoverable.

A 500-child extract (``ppeval synth --children 500 --seed 1``, committed in
``tests/hardening/small_extract``) puts many cells under the threshold of 11. After
``ppeval report``:

* **published counts**: every count field of ``results.json``, every count column of
  ``tables/*.csv``, every number marked as a count in ``report.html`` and
  ``factsheet.html``, every count-like number in their text (a number followed by
  "children", "families", "units"..., an ``events / n`` pair, a table column of counts),
  in the chart captions and in the texts drawn on the charts (numbers at risk, "served N")
  is 0, 11 or more, or suppressed. Percentages, years, dates, p-values, confidence limits,
  months and days, and thresholds ("below 11") are not counts and are told apart by context.
* **recoverable counts**: an independent attack, written without the report's code, puts
  every published number into one linear system (the sample flow: each step minus the
  units left out is the next step, served + comparison = total; the flow's cohort and
  matched rows are Table 1's sizes and results.json's cohort and matching counts; an
  outcome's events = rate x n; Table 1's percentages pin their column's size when it is
  hidden; subgroup levels add up to their outcome row) and solves it exactly (fractions).
  No hidden count may be determined as a number from 1 to 10, and every hidden count it
  determines is listed for the report.
* :func:`ppeval.privacy.audit_suppression` checks each outcome row's published pattern
  against the true counts (events, n and n - events).
"""

from __future__ import annotations

import html
import json
import logging
import math
import re
import shutil
import sys
import warnings
from fractions import Fraction
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parent / "hardening"))
from support import run_cli  # noqa: E402

from ppeval import outcomes as oc  # noqa: E402
from ppeval.evaluation import Evaluation  # noqa: E402
from ppeval.privacy import audit_suppression, suppress_counts  # noqa: E402

THRESHOLD = 11
SMALL_EXTRACT = Path(__file__).parent / "hardening" / "small_extract"
HIDDEN = {"suppressed", "<11", "&lt;11", ""}


def _small(n: int) -> bool:
    return 1 <= n < THRESHOLD


# ------------------------------------------------------------------------------ the extract
@pytest.fixture(scope="module")
def small(tmp_path_factory) -> SimpleNamespace:
    """``ppeval report`` (the command line, in this process) on the committed 500-child extract.

    ``tests/hardening/small_extract`` is ``ppeval synth --children 500 --seed 1`` in the
    canonical layout, committed so that the cells it puts under the threshold do not move
    when the generator changes.
    """
    d = tmp_path_factory.mktemp("small")
    shutil.copytree(SMALL_EXTRACT, d / "data")
    cfg, out = d / "data" / "eval.toml", d / "report"
    # not quiet, with Python warnings and log records kept: every message is checked below
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = records.append  # type: ignore[method-assign]
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            status, stdout, stderr = run_cli("report", str(cfg), "--out", str(out))
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    assert status == 0, stderr
    logs = [r.getMessage() for r in records if r.name.startswith("ppeval")]
    return SimpleNamespace(cfg=cfg, out=out, stdout=stdout, stderr=stderr, ev=Evaluation.from_toml(cfg),
                           warnings=[str(w.message) for w in caught], logs=logs,
                           results=json.loads((out / "results.json").read_text()))


def test_the_fixture_is_what_ppeval_synth_writes(tmp_path):
    """The committed extract is ``ppeval synth --children 500 --seed 1`` (while the generator is unchanged)."""
    status, _out, err = run_cli("-q", "synth", "--out", str(tmp_path), "--children", "500", "--seed", "1")
    assert status == 0, err
    same = all((tmp_path / rel).read_bytes() == (SMALL_EXTRACT / rel).read_bytes()
               for rel in ("canonical/children.csv", "canonical/episodes.csv", "canonical/reports.csv",
                           "participation.csv", "families.csv"))
    if not same:
        pytest.skip("the synthetic generator changed since the fixture was written (the fixture still stands)")


def test_the_small_extract_has_many_cells_under_the_threshold(small):
    """The test means something only if there are small cells to protect."""
    ev = small.ev
    data = ev.matched.data
    tr = data["treated"].astype(bool)
    small_cells = 0
    for name, months in ev.outcomes.items():
        for m in months:
            col = oc.window_column(name, m)
            if col not in data:
                continue
            y = data[col]
            for arm in (tr, ~tr):
                n, e = int(y[arm].notna().sum()), int((y[arm] == 1).sum())
                small_cells += _small(n) + _small(e) + _small(n - e)
    flow = ev.cohort.flow.to_frame()
    small_cells += sum(_small(int(v)) for c in ("treated", "comparison") for v in flow[c] if pd.notna(v))
    assert small_cells >= 10, small_cells
    res = small.results
    assert json.dumps(res).count('"suppressed": true') >= 5


# ------------------------------------------------------------------------------ published counts
COUNT_KEYS = {"n", "events", "treated", "comparison", "total", "treated_matched", "comparison_matched",
              "treated_unmatched", "n_treated", "n_comparison", "events_treated", "events_comparison", "rows",
              "discordant_pairs", "favouring_more_events_in_served", "favouring_more_events_in_comparison", "sets"}


def _walk(obj, path=""):
    if isinstance(obj, dict):
        yield path, obj
        for k, v in obj.items():
            yield from _walk(v, f"{path}.{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _walk(v, f"{path}[{i}]")


def test_results_json_counts(small):
    bad = []
    for path, d in _walk(small.results):
        if path.startswith((".config", ".inputs")):
            continue  # the input files' row counts: see test_input_row_counts_are_suppressed
        for k, v in d.items():
            if k in COUNT_KEYS and isinstance(v, int | float) and not isinstance(v, bool) and _small(int(v)):
                bad.append((f"{path}.{k}", v))
            if k in COUNT_KEYS and v is None:
                assert d.get("suppressed") is True or d.get(f"{k}_suppressed") is True, (path, k)
    assert not bad, f"counts from 1 to 10 in results.json: {bad}"


def test_input_row_counts_are_suppressed(tmp_path):
    from ppeval.report import build

    shutil.copytree(SMALL_EXTRACT, tmp_path / "data")
    d = tmp_path / "data"
    lines = (d / "participation.csv").read_text().splitlines()
    (d / "roster_early.csv").write_text("\n".join(lines[:9]) + "\n")  # header + 8 enrolments
    (d / "participation.csv").write_text("\n".join(lines[:1] + lines[9:]) + "\n")
    cfg = d / "eval.toml"
    cfg.write_text(cfg.read_text().replace('[data.participation]\npath = "participation.csv"',
                                           '[data.participation]\npaths = ["roster_early.csv", "participation.csv"]'))
    res = build(Evaluation.from_toml(cfg))["results"]
    rows = [(f["path"], f["rows"]) for f in res["inputs"]]
    assert ("roster_early.csv", 8) not in rows and not [r for r in rows if r[1] is not None and _small(int(r[1]))], rows


CSV_COUNT_COLUMNS = re.compile(r"^(?:n|events|treated|comparison|total|rows)(?:_(?:treated|comparison))?$")


def test_table_counts(small):
    bad = []
    for csv in sorted((small.out / "tables").glob("*.csv")):
        df = pd.read_csv(csv, dtype=str, keep_default_na=False)
        for col in df.columns:
            if CSV_COUNT_COLUMNS.match(col):
                for i, v in enumerate(df[col]):
                    if v.strip() not in HIDDEN and _small(int(float(v.replace(",", "")))):
                        bad.append((csv.name, col, i, v))
    t1 = pd.read_csv(small.out / "tables" / "table1.csv", dtype=str, keep_default_na=False)
    n_row = t1[t1["covariate"] == "units (n)"].iloc[0]
    sizes = {}
    for col in t1.columns[1:5]:
        v = n_row[col]
        if v not in HIDDEN:
            sizes[col] = int(v.replace(",", ""))
            if _small(sizes[col]):
                bad.append(("table1.csv", col, "units (n)", v))
    # a percentage of a published size is a count: k = pct x n, and so is n - k
    for _, row in t1.iterrows():
        for col, n in sizes.items():
            v = row[col]
            if isinstance(v, str) and v.endswith("%"):
                k = round(float(v[:-1]) * n / 100)
                if _small(k) or _small(n - k):
                    bad.append(("table1.csv", col, row["covariate"], f"{v} of {n} = {k}"))
    assert not bad, f"counts from 1 to 10 in tables/*.csv: {bad}"


class _Text(HTMLParser):
    """Visible text of an HTML page (scripts, styles and data URIs left out), plus its tables."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.tables: list[list[list[str]]] = []
        self._skip = 0
        self._cell: list[str] | None = None
        self._row: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag in ("style", "script"):
            self._skip += 1
        elif tag == "table":
            self.tables.append([])
        elif tag == "tr" and self.tables:
            self._row = []
            self.tables[-1].append(self._row)
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []
        elif tag in ("p", "li", "div", "br", "tr", "h1", "h2", "h3", "figcaption", "td", "th"):
            self.parts.append("\n")

    def handle_endtag(self, tag):
        if tag in ("style", "script"):
            self._skip -= 1
        elif tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        self.parts.append(" ")

    def handle_data(self, data):
        if self._skip:
            return
        self.parts.append(data)
        if self._cell is not None:
            self._cell.append(data)


def _page(path: Path) -> _Text:
    p = _Text()
    p.feed(re.sub(r"data:[a-z/+]+;base64,[A-Za-z0-9+/=]+", "", path.read_text(encoding="utf-8")))
    return p


# A number followed (within two words) by a word that says it counts units.
UNIT_WORDS = r"(?:children|child|families|family|units|unit|parents|served|comparison|enrolments|records|reports|pairs|sets|removals|episodes)\b"
COUNT_IN_PROSE = re.compile(rf"(?<![\w.,/:%-])(\d{{1,3}}(?:,\d{{3}})*|\d+)(?![\d.,%:/-])\s+(?:[a-z-]+\s+){{0,2}}?{UNIT_WORDS}", re.I)
EVENTS_OF_N = re.compile(r"(?<![\w.])(\d[\d,]*)\s*/\s*(\d[\d,]*)(?![\w.])")


def _prose_counts(text: str) -> list[tuple[int, str]]:
    out = []
    for m in COUNT_IN_PROSE.finditer(text):
        before = text[max(0, m.start() - 12):m.start()].lower()
        if re.search(r"(below|under|from|at|age|aged|than|<)\s*$", before):
            continue  # a threshold or an age, not a count
        out.append((int(m.group(1).replace(",", "")), text[max(0, m.start() - 40):m.end() + 10]))
    for m in EVENTS_OF_N.finditer(text):
        for g in (1, 2):
            out.append((int(m.group(g).replace(",", "")), text[max(0, m.start() - 40):m.end() + 10]))
    return out


def test_report_and_fact_sheet_counts(small):
    bad = []
    for name in ("report.html", "factsheet.html"):
        raw = (small.out / name).read_text(encoding="utf-8")
        spans = re.findall(r'<span class="count">([^<]*)</span>', raw)
        assert spans, f"{name}: no number is marked as a count"
        bad += [(name, "count span", s) for s in spans if s not in HIDDEN and _small(int(s.replace(",", "")))]
        page = _page(small.out / name)
        text = " ".join("".join(page.parts).split())
        bad += [(name, "prose", ctx) for v, ctx in _prose_counts(text) if _small(v)]
        # columns of counts in any table: a header naming n, events, rows or an arm's size
        for table in page.tables:
            if not table:
                continue
            header = [h.lower() for h in table[0]]
            if header[:3] == ["input", "table", "rows"]:
                continue  # the input files' row counts: see test_input_row_counts_are_suppressed
            for j, h in enumerate(header):
                if re.search(r"(^n$|: n$|\bn\)|events / n|^rows$|^served$|^comparison$|^total$|^treated$)", h):
                    for row in table[1:]:
                        if j < len(row):
                            for num in re.findall(r"(?<![\d.])\d[\d,]*(?![\d.%])", row[j]):
                                if _small(int(num.replace(",", ""))):
                                    bad.append((name, table[0][j], row[0], row[j]))
    assert not bad, "counts from 1 to 10 in the report or the fact sheet:\n" + "\n".join(map(str, bad))


def _svg_texts(path: Path) -> list[str]:
    """Texts matplotlib drew on a chart (its SVG keeps each one in a comment)."""
    return [html.unescape(t).strip() for t in re.findall(r"<!-- (.*?) -->", path.read_text(encoding="utf-8"))]


def test_chart_captions_and_labels(small):
    bad = []
    captions = (small.out / "charts" / "captions.txt").read_text(encoding="utf-8")
    bad += [("captions.txt", ctx) for v, ctx in _prose_counts(captions) if _small(v)]
    for svg in sorted((small.out / "charts").glob("*.svg")):
        texts = _svg_texts(svg)
        joined = " | ".join(texts)
        bad += [(svg.name, ctx) for v, ctx in _prose_counts(joined) if _small(v)]
        for t in texts:
            m = re.fullmatch(r"(?:served|comparison|n =|n=)\s*(\d[\d,]*)", t, re.I)
            if m and _small(int(m.group(1).replace(",", ""))):
                bad.append((svg.name, t))
        if "Number at risk" in joined:
            # every bare integer after the at-risk label is a number of units at risk
            after = texts[[i for i, t in enumerate(texts) if "Number at risk" in t][0] + 1:]
            at_risk = [int(t.replace(",", "")) for t in after if re.fullmatch(r"\d[\d,]*", t)]
            bad += [(svg.name, f"at risk {v}") for v in at_risk if _small(v)]
    assert not bad, "counts from 1 to 10 on the charts:\n" + "\n".join(map(str, bad))


def test_numbers_at_risk_do_not_give_away_small_numbers_leaving_the_risk_set(small):
    """Consecutive published numbers at risk differ by the units that left the risk set in
    between (events and censoring): a difference from 1 to 10 is a small count by subtraction."""
    bad = []
    for svg in sorted((small.out / "charts").glob("curve_*.svg")):
        texts = _svg_texts(svg)
        if "Number at risk (suppressed below the threshold)" not in " ".join(texts):
            continue
        i = [k for k, t in enumerate(texts) if t.startswith("Number at risk")][0]
        rows, current = [], None
        for t in texts[i + 1:]:
            if t in ("Served", "Comparison", "Matched comparison"):
                if current is not None and current[1]:
                    rows.append(current)
                current = (t, [])
            elif current is not None and re.fullmatch(r"\d[\d,]*|<11|suppressed", t):
                current[1].append(t)
        if current is not None and current[1]:
            rows.append(current)
        for arm, values in rows:
            nums = [int(v.replace(",", "")) if v[0].isdigit() else None for v in values]
            for a, b in zip(nums, nums[1:], strict=False):
                if a is not None and b is not None and _small(a - b):
                    bad.append((svg.name, arm, a, b))
    assert not bad, "numbers at risk whose difference is from 1 to 10: " + str(bad)


# ------------------------------------------------------------------------------ the attack
class System:
    """Unknowns, knowns and linear equations (exact fractions); solves what it can."""

    def __init__(self):
        self.known: dict[str, Fraction] = {}
        self.hidden: set[str] = set()
        self.equations: list[dict[str, int]] = []  # sum(coef * var) == 0
        self.recovered: dict[str, Fraction] = {}
        self.how: dict[str, str] = {}
        #: (events var, n var, published rate)
        self.rates: list[tuple[str, str, float]] = []
        #: size var -> the percentages published for a column of that size
        self.percents: dict[str, list[float]] = {}
        #: size var -> an upper bound on it (the arm's first flow step)
        self.upper: dict[str, str] = {}

    def var(self, name: str, published) -> str:
        if published is None or (isinstance(published, float) and math.isnan(published)):
            self.hidden.add(name)
        else:
            value = Fraction(int(published))
            if name in self.known and self.known[name] != value:
                raise AssertionError(f"{name} is published as both {self.known[name]} and {value}")
            self.known[name] = value
            self.hidden.discard(name)
        return name

    def equal(self, a: str, b: str) -> None:
        self.equations.append({a: 1, b: -1})

    def sum_of(self, total: str, parts: list[str]) -> None:
        eq = {total: -1}
        for p in parts:
            eq[p] = eq.get(p, 0) + 1
        self.equations.append(eq)

    def learn(self, name: str, value: Fraction, how: str) -> bool:
        if name in self.known or name in self.recovered:
            return False
        self.recovered[name] = value
        self.how[name] = how
        return True

    def value(self, name: str) -> Fraction | None:
        return self.known.get(name, self.recovered.get(name))

    def solve(self) -> bool:
        """Gaussian elimination over the unknowns; learns every determined one."""
        unknown = sorted({v for eq in self.equations for v in eq if self.value(v) is None})
        if not unknown:
            return False
        col = {v: j for j, v in enumerate(unknown)}
        rows = []
        for eq in self.equations:
            row = [Fraction(0)] * (len(unknown) + 1)
            for v, c in eq.items():
                val = self.value(v)
                if val is None:
                    row[col[v]] += c
                else:
                    row[-1] -= c * val
            if any(row[:-1]):
                rows.append(row)
            else:
                assert row[-1] == 0, f"the published numbers contradict an assumed relation: {eq}"
        # reduced row echelon form
        pivots, r = [], 0
        for j in range(len(unknown)):
            p = next((i for i in range(r, len(rows)) if rows[i][j] != 0), None)
            if p is None:
                continue
            rows[r], rows[p] = rows[p], rows[r]
            lead = rows[r][j]
            rows[r] = [x / lead for x in rows[r]]
            for i in range(len(rows)):
                if i != r and rows[i][j] != 0:
                    f = rows[i][j]
                    rows[i] = [a - f * b for a, b in zip(rows[i], rows[r], strict=True)]
            pivots.append((r, j))
            r += 1
        learned = False
        for r, j in pivots:
            if all(rows[r][k] == 0 for k in range(len(unknown)) if k != j):
                learned |= self.learn(unknown[j], rows[r][-1], "linear relations")
        return learned


def _num(v):
    if v is None:
        return None
    if isinstance(v, str):
        v = v.strip()
        if v in HIDDEN:
            return None
        return int(float(v.replace(",", "")))
    if isinstance(v, float) and math.isnan(v):
        return None
    return int(v)


def _candidates(percents: list[float], lo: int, hi: int) -> list[int]:
    """Sizes n in [lo, hi] for which every percentage (one decimal) is some k/n."""
    out = []
    for n in range(max(lo, 1), hi + 1):
        if all(any(abs(round(100 * k / n, 1) - p) < 1e-9 for k in (math.floor(p * n / 100), math.ceil(p * n / 100)))
               for p in percents):
            out.append(n)
    return out


def build_attack(out: Path, res: dict) -> System:
    s = System()
    flow = pd.read_csv(out / "tables" / "sample_flow.csv", dtype=str, keep_default_na=False)
    arms = [c for c in ("treated", "comparison") if c in flow]
    # results.json's flow is the same table: published values must agree cell by cell
    assert [r["step"] for r in res["flow"]] == flow["step"].tolist()
    steps = [i for i, st in enumerate(flow["step"]) if not st.startswith("left out")]
    for i in range(len(flow)):
        for a in arms:
            s.var(f"flow[{i}].{a}", _num(flow[a][i]))
            s.var(f"flow[{i}].{a}", _num(res["flow"][i].get(a)))
        if "total" in flow:
            s.var(f"flow[{i}].total", _num(flow["total"][i]))
            s.sum_of(f"flow[{i}].total", [f"flow[{i}].{a}" for a in arms])
    for i in range(len(flow) - 2):
        if i in steps and (i + 1) not in steps and (i + 2) in steps:
            for c in [*arms, *(["total"] if "total" in flow else [])]:
                s.sum_of(f"flow[{i}].{c}", [f"flow[{i + 1}].{c}", f"flow[{i + 2}].{c}"])
    cohort_row = next(i for i, st in enumerate(flow["step"]) if st.startswith("analysis cohort"))
    matched_row = next(i for i, st in enumerate(flow["step"]) if st.startswith("matched sample"))
    # results.json cohort and matching counts are the flow's rows
    for a in arms:
        s.var("cohort." + a, _num(res["cohort"].get(a)))
        s.equal("cohort." + a, f"flow[{cohort_row}].{a}")
    s.var("matched.treated", _num(res["matching"].get("treated_matched")))
    s.var("matched.comparison", _num(res["matching"].get("comparison_matched")))
    s.var("unmatched.treated", _num(res["matching"].get("treated_unmatched")))
    for a in arms:
        s.equal("matched." + a, f"flow[{matched_row}].{a}")
    s.sum_of("cohort.treated", ["matched.treated", "unmatched.treated"])
    # Table 1: its sizes are the cohort and the matched sample; its percentages pin hidden sizes
    t1 = pd.read_csv(out / "tables" / "table1.csv", dtype=str, keep_default_na=False)
    size_row = t1[t1["covariate"] == "units (n)"].iloc[0]
    t1_vars = dict(zip(t1.columns[1:5], ["cohort.treated", "cohort.comparison", "matched.treated", "matched.comparison"],
                       strict=True))
    for col, name in t1_vars.items():
        s.var(name, _num(size_row[col]))
        s.percents[name] = [float(v[:-1]) for v in t1[col] if isinstance(v, str) and v.endswith("%")]
        s.upper[name] = "flow[0].treated" if name.endswith("treated") else "flow[0].comparison"
    # outcome rows: events = rate x n; results.json repeats the rates
    outcomes = pd.read_csv(out / "tables" / "outcomes.csv", dtype=str, keep_default_na=False)
    for _, r in outcomes.iterrows():
        key = f"{r['outcome']}_{r['window_months']}m"
        for a in ("treated", "comparison"):
            n = s.var(f"{key}.n_{a}", _num(r[f"n_{a}"]))
            e = s.var(f"{key}.events_{a}", _num(r[f"events_{a}"]))
            s.var(f"{key}.nonevents_{a}", None)
            s.sum_of(n, [e, f"{key}.nonevents_{a}"])
            rate = r[f"rate_{a}"]
            js = res["outcomes"].get(r["outcome"], {}).get(a, {}).get("rates", {}).get(f"{r['window_months']}m")
            if rate.strip() in HIDDEN and js is not None:
                rate = str(js)  # a rate hidden in one artefact and shown in another
            if rate.strip() not in HIDDEN:
                s.rates.append((e, n, float(rate)))
    # subgroups: the levels of one variable add up to the analysed outcome row
    sub_path = out / "tables" / "subgroups.csv"
    if sub_path.exists() and res.get("summary"):
        sub = pd.read_csv(sub_path, dtype=str, keep_default_na=False)
        for g, grp in sub.groupby("subgroup", sort=False):
            for c in ("n_treated", "n_comparison", "events_treated", "events_comparison"):
                for lvl, v in zip(grp["level"], grp[c], strict=True):
                    s.var(f"sub.{g}.{lvl}.{c}", _num(v))
    return s


def run_attack(s: System, truth: dict[str, int] | None = None) -> None:
    """Linear solving, events from rates, sizes from Table 1 percentages, until nothing new."""
    for _ in range(20):
        changed = s.solve()
        for e, n, rate in s.rates:
            nv, ev = s.value(n), s.value(e)
            if nv is not None and ev is None:
                k = Fraction(round(rate * float(nv)))
                if abs(rate * float(nv) - float(k)) < 1e-4:
                    changed |= s.learn(e, k, f"rate {rate} x n {nv}")
            if ev is not None and nv is None and rate > 0:
                n_est = float(ev) / rate
                if abs(n_est - round(n_est)) < 1e-4:
                    changed |= s.learn(n, Fraction(round(n_est)), f"events {ev} / rate {rate}")
        for name, percents in s.percents.items():
            if s.value(name) is None and percents:
                top = s.value(s.upper[name]) if name in s.upper else None
                cands = _candidates(percents, 1, int(top) if top is not None else 5000)
                if len(cands) == 1 and (truth is None or truth.get(name) == cands[0]):
                    changed |= s.learn(name, Fraction(cands[0]), f"Table 1 percentages {percents[:4]}...")
        if not changed:
            return


def _truth(ev) -> dict[str, int]:
    c = ev.matched.counts
    return {"cohort.treated": int(c["treated"]), "cohort.comparison": int(c["comparison"]),
            "matched.treated": int(c["treated_matched"]), "matched.comparison": int(c["comparison_matched"])}


def test_no_hidden_count_is_recoverable(small):
    s = build_attack(small.out, small.results)
    hidden_before = set(s.hidden)
    run_attack(s, _truth(small.ev))
    leaks = {k: (int(v), s.how[k]) for k, v in s.recovered.items() if _small(int(v))}
    steps = {k: (int(v), s.how[k]) for k, v in s.recovered.items()}
    assert not leaks, f"hidden counts from 1 to 10 recovered from the published numbers: {leaks}; all recovered: {steps}"
    # whatever else the published numbers determine is listed (not a leak unless small)
    assert hidden_before, "nothing was hidden: the attack had nothing to try"


def test_the_attack_recovers_planted_leaks():
    """The attack works: it finds a small cell by subtraction, by rate x n, and through a
    size pinned by percentages (the case of a cohort of 34 served children hidden because
    33 were matched: its percentages 32.4% (11/34) and 50.0% (17/34) give 34, and 34 - 33 = 1)."""
    s = System()
    s.var("step", 100), s.var("left_out", None), s.var("next", 93)
    s.sum_of("step", ["left_out", "next"])
    s.var("n", 40), s.var("events", None), s.var("nonevents", None)
    s.sum_of("n", ["events", "nonevents"])
    s.rates.append(("events", "n", 0.85))
    s.var("cohort", None), s.var("matched", 33), s.var("unmatched", None), s.var("top", 57)
    s.sum_of("cohort", ["matched", "unmatched"])
    s.percents["cohort"] = [32.4, 67.6, 50.0, 35.3]
    s.upper["cohort"] = "top"
    run_attack(s)
    got = {k: int(v) for k, v in s.recovered.items()}
    assert got["left_out"] == 7 and got["events"] == 34 and got["nonevents"] == 6
    assert got["cohort"] == 34 and got["unmatched"] == 1
    assert _candidates([32.4, 67.6], 1, 57) == [34, 37]  # one percentage pair alone: two sizes


def test_hidden_rates_are_not_recoverable_from_effects(small):
    """A hidden rate stays hidden: no risk difference, ratio or odds ratio is published for that
    row (rate_t - RD, rate_t / RR or the odds ratio would give the other arm's rate back)."""
    outcomes = pd.read_csv(small.out / "tables" / "outcomes.csv", dtype=str, keep_default_na=False)
    effect_cols = [c for c in outcomes.columns if c.endswith("_estimate") or c.endswith("_ci_low") or c.endswith("_ci_high")]
    for _, r in outcomes.iterrows():
        if r["rate_treated"] in HIDDEN or r["rate_comparison"] in HIDDEN or r["events_treated"] in HIDDEN or r["events_comparison"] in HIDDEN:
            assert all(r[c] == "" for c in effect_cols), (r["outcome"], r["window_months"])
            window = int(r["window_months"])
            effects = small.results["outcomes"].get(r["outcome"], {}).get("effects", [])
            assert not [e for e in effects if e["window_months"] == window], (r["outcome"], window)
            e_values = pd.read_csv(small.out / "tables" / "e_values.csv", dtype=str, keep_default_na=False)
            assert not ((e_values["outcome"] == r["outcome"]) & (e_values["window_months"] == str(window))).any()
    # the captions quote rates only where both arms are published
    for line in (small.out / "charts" / "captions.txt").read_text().splitlines():
        if line.split(":")[1].strip().startswith(tuple(r["label"] for _, r in outcomes.iterrows())) and "too small to publish" in line:
            assert not re.search(r"\d%", line.replace("95% CI", "")), line


def test_audit_suppression_of_the_outcome_rows(small):
    """Each outcome row's published n/events pattern, audited against the true counts."""
    import dataclasses

    ev = small.ev
    data = ev.matched.data
    tr = data["treated"].astype(bool)
    outcomes = pd.read_csv(small.out / "tables" / "outcomes.csv", dtype=str, keep_default_na=False)
    for _, r in outcomes.iterrows():
        y = data[oc.window_column(r["outcome"], int(r["window_months"]))]
        true = pd.DataFrame(
            {"n": [int(y[tr].notna().sum()), int(y[~tr].notna().sum())],
             "events": [int((y[tr] == 1).sum()), int((y[~tr] == 1).sum())]},
            index=["treated", "comparison"],
        )
        res = suppress_counts(true, ["n"], THRESHOLD, events={"events": "n"})
        mask = res.mask.copy()
        for arm in ("treated", "comparison"):
            for c in ("n", "events"):
                shown = _num(r[f"{c}_{arm}"])
                mask.loc[arm, c] = shown is None
                if shown is not None:
                    assert shown == true.loc[arm, c], (r["outcome"], r["window_months"], arm, c)
        published = dataclasses.replace(res, mask=mask)
        assert audit_suppression(published, true) == [], (r["outcome"], r["window_months"], true.to_dict(), mask.to_dict())
    assert len(outcomes) >= 5


#: a count word after or before a number in a message ("3 unit(s)", "treated 0, comparison 3")
_COUNT_NEAR_WORD = re.compile(
    r"\b(\d+)\s+(?:units?|unit\(s\)|child(?:ren)?|famil(?:y|ies)|served|treated|comparison|rows?|episodes?|pairs?)\b"
    r"|\b(?:treated|comparison|served|unit\(s\)|units|children|families)\s+(\d+)\b",
    re.IGNORECASE,
)


def _child_dates() -> set[str]:
    """Every birth, removal, discharge, report, enrolment and exit date of the unit-level data."""
    dates: set[str] = set()
    for f in [*SMALL_EXTRACT.glob("*.csv"), *SMALL_EXTRACT.glob("canonical/*.csv")]:
        t = pd.read_csv(f, dtype=str)
        for c in t.columns:
            if c.endswith("_date"):
                dates |= set(t[c].dropna())
    return dates


def test_no_count_in_logs(small):
    """What ``ppeval report`` printed, warned or logged carries no count from 1 to 10 and no child's date."""
    messages = [small.stdout, small.stderr, *small.warnings, *small.logs]
    text = "\n".join(messages)
    assert "loading the extract" in small.stderr  # the progress messages are there (not quiet)
    assert not [v for v, _ in _prose_counts(text) if _small(v)], text[-2000:]
    near = [m.group(0) for m in _COUNT_NEAR_WORD.finditer(text) if _small(int(m.group(1) or m.group(2)))]
    assert not near, near
    # a date of the config (extract date, entry window) may be printed; a child's may not
    config_dates = set(re.findall(r"\d{4}-\d{2}-\d{2}", small.cfg.read_text()))
    child_dates = _child_dates() - config_dates
    assert len(child_dates) > 1000  # the check has something to find
    printed = set(re.findall(r"\d{4}-\d{2}-\d{2}", text))
    assert not printed & child_dates, sorted(printed & child_dates)[:10]


def test_indicators_command_suppresses_small_counts(small, tmp_path):
    """``ppeval indicators`` prints (and writes) counts by entry year and arm: the same rule."""
    csv = tmp_path / "indicators.csv"
    status, out, err = run_cli("-q", "indicators", str(small.cfg), "--out", str(csv))
    assert status == 0, err
    lines = out.splitlines()
    assert "suppressed" in out and lines[-1].startswith("counts from 1 to 10 are suppressed")
    header = lines[0]
    ends = {name: m.end() for m in re.finditer(r"\S+", header) for name in [m.group()]}
    starts = {"denominator": ends["arm"], "numerator": ends["denominator"]}
    printed = 0
    for line in lines[1:-1]:
        for col, start in starts.items():
            cell = line[start:ends[col]].strip()
            if cell != "suppressed":
                printed += 1
                assert not _small(int(cell)), (col, line)
    assert printed > 10
    table = pd.read_csv(csv)
    assert {"denominator", "numerator", "rate", "suppressed"} <= set(table.columns)
    for c in ("denominator", "numerator"):
        v = table[c].dropna()
        assert not v.between(1, THRESHOLD - 1).any(), (c, v[v.between(1, THRESHOLD - 1)].tolist())
    # within an indicator and year: no hidden cell follows from all = served + not served,
    # or from numerator = rate x denominator
    for _, grp in table.groupby(["indicator", "year"]):
        g = grp.set_index("arm")
        for c in ("denominator", "numerator"):
            if "all" in g.index and g[c].isna().sum() == 1 and len(g) == 3:
                pytest.fail(f"one hidden {c} in {grp.iloc[0][['indicator', 'year']].tolist()}: recoverable by subtraction")
        hidden_num = g["numerator"].isna() & g["denominator"].notna() & g["rate"].notna()
        assert not hidden_num.any()
