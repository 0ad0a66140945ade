"""Recovery audit: no suppressed count from 1 to 10 can be solved back from a published report.

Small synthetic extracts (``ppeval synth --children 900`` and ``2000``) go through the real
command line (``ppeval report --pdf``); the same extract is then reported again with an
entry window one month shorter. The Evaluation the command built is kept (a spy on
:func:`ppeval.report.write_report`), so the unit-level truth is that of the published run:
every Table 1 / balance cell (units with a level, per arm, before and after matching), the
arm sizes, the discordant pairs of the Rosenbaum table, the subgroup levels, the curves'
event days and the sample flow.

The solvers are written without the report's publication code; each reads only the
published artefacts (``tables/*.csv``, ``results.json``, the SVGs in ``charts/`` and those
embedded in ``report.html``, the HTML tables, the PDF text):

1. **balance**: a binary covariate's SMD (standardized as MatchIt's summary(): the difference
   in proportions over the treated arm's sqrt(p(1 - p)) before matching, which the solver
   recovers from the before cells or from an SMD beside its raw difference), its eCDF maximum
   (the raw difference) and the love plot's |SMD| to pixel precision, with the published arm
   sizes -> integer cell counts;
2. **Table 1**: percentages and (standardized) SMDs -> served and comparison counts; the levels of one
   categorical variable add up to the arm, so the hidden levels' sum is the arm minus the
   published levels;
3. **Rosenbaum**: a binomial search over discordant-pair counts for the published p-values;
4. **curves**: every rise of a published step curve, judged by the events it pools;
5. **subgroups**: the outcome row's total minus the published levels -> the hidden levels' sum;
6. **differencing**: counts of two runs whose windows differ by a month that differ by 1
   to 10. Differencing cannot be prevented by one report; the run log warns instead
   (:mod:`ppeval.runlog`), and the test asserts that warning (console and report notes).

Any recovered value that equals a true count from 1 to 10 which the report hides is a leak.
Each solver has a positive control: run on the unsuppressed unit-level statistics (or on an
exact curve) it does recover small counts, so the audit can fail.
"""
from __future__ import annotations

import base64
import html as html_mod
import json
import math
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from tests.test_curve_privacy import (
    curve_svgs,
    event_days,
    exact_curve_svg,
    read_curves,
    window_ends,
)
from tests.test_curve_privacy import leaks as curve_leaks
from tests.test_hardening_suppression import _candidates, build_attack, run_attack, run_cli

THRESHOLD = 11
HIDDEN = {"suppressed", "<11", "&lt;11", "", "nan"}
PHASES = ("before", "after")
ARMS = ("treated", "control")
#: Table 1 columns, by (phase, arm)
T1_COLS = {("before", "treated"): "served, before", ("before", "control"): "comparison, before",
           ("after", "treated"): "served, after", ("after", "control"): "comparison, after"}


def _small(k) -> bool:
    return 1 <= int(k) < THRESHOLD


# ------------------------------------------------------------------------------ runs
def _synth(root: Path, children: int, seed: int) -> Path:
    d = root / f"x{children}_{seed}"
    if not d.exists():
        status, _o, err = run_cli("-q", "synth", "--children", str(children), "--seed", str(seed), "--out", str(d))
        assert status == 0, err
    return d


def _report(extract: Path, name: str, run_log: Path, entry_to: str | None = None, pdf: bool = False,
            suppress_below: int | None = None) -> SimpleNamespace:
    """``ppeval report`` through the command line; the Evaluation it published is kept."""
    import ppeval.report as rep

    text = (extract / "eval.toml").read_text(encoding="utf-8")
    if entry_to is not None:
        text, n = re.subn(r'(?m)^entry_to = "[^"]*"', f'entry_to = "{entry_to}"', text)
        assert n == 1
    extra = f'run_log = "{run_log}"\n'
    if suppress_below is not None:
        text = re.sub(r"(?m)^suppress_below = \d+\n", "", text)
        extra += f"suppress_below = {suppress_below}\nallow_unsuppressed = true\n"
    text = text.replace("[report]\n", "[report]\n" + extra)
    cfg = extract / f"{name}.toml"  # beside the extract: its paths are relative to the config
    cfg.write_text(text, encoding="utf-8")
    out = extract.parent / f"report_{name}"
    seen = {}
    original = rep.write_report

    def spy(ev, out, **kw):
        seen["ev"] = ev
        return original(ev, out, **kw)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(rep, "write_report", spy)
        args = ["-q", "report", str(cfg), "--out", str(out)] + (["--pdf"] if pdf else [])
        status, _o, err = run_cli(*args)
    assert status == 0, err
    pdf_text = ""
    if pdf:
        pdf_text = subprocess.run(["pdftotext", "-layout", str(out / "report.pdf"), "-"], capture_output=True,
                                  text=True, check=True).stdout
        pdf_text += subprocess.run(["pdftotext", "-layout", str(out / "factsheet.pdf"), "-"], capture_output=True,
                                   text=True, check=True).stdout
    return SimpleNamespace(name=name, out=out, ev=seen["ev"], err=err, pdf_text=pdf_text,
                           results=json.loads((out / "results.json").read_text(encoding="utf-8")))


#: the default run: 900 and 2,000 children, and the 900 again with a window one month shorter
DEFAULT = [("n900", 900, 1, None), ("n2000", 2000, 1, None), ("n900_short", 900, 1, "2021-11-30")]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, SimpleNamespace]:
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext (poppler-utils) is needed to read the PDF text")
    root = tmp_path_factory.mktemp("audit")
    log = root / "runs.jsonl"
    out = {}
    for name, children, seed, entry_to in DEFAULT:
        out[name] = _report(_synth(root, children, seed), name, log, entry_to=entry_to, pdf=name == "n900")
    return out


# ------------------------------------------------------------------------------ unit-level truth
def truth_cells(ev) -> pd.DataFrame:
    """Every binary balance cell: units with the level (``k``) of an arm (``n``), before and after matching.

    Computed from the propensity model's data (before) and the matched rows (after), with the
    indicator columns the balance table is made of; the counts are the test's own sums.
    """
    from ppeval.balance import _columns

    ms = ev.matched
    ps = ms.ps
    rows = []
    for phase, df in (("before", ps.data), ("after", ms.data)):
        t = df[ps.treatment].astype(bool).to_numpy()
        for name, var, x, is_bin in _columns(df, ps.covariates, ps.kinds_):
            if not is_bin:
                continue
            ok = ~np.isnan(x)
            for arm, mask in (("treated", t), ("control", ~t)):
                rows.append({"covariate": name, "variable": var, "phase": phase, "arm": arm,
                             "k": int(np.nansum(x[ok & mask])), "n": int((ok & mask).sum())})
    out = pd.DataFrame(rows)
    # a level no matched unit has is still a row of the balance table (0 units after matching)
    before = out[out["phase"] == "before"]
    seen = set(zip(out.loc[out["phase"] == "after", "covariate"], out.loc[out["phase"] == "after", "arm"], strict=True))
    t_after = ms.data[ps.treatment].astype(bool)
    absent = [{**r, "phase": "after", "k": 0, "n": int(t_after.sum() if r["arm"] == "treated" else (~t_after).sum())}
              for r in before.to_dict(orient="records") if (r["covariate"], r["arm"]) not in seen]
    return pd.concat([out, pd.DataFrame(absent)], ignore_index=True) if absent else out


def arm_sizes_published(res: dict, t1: pd.DataFrame) -> dict[tuple[str, str], int | None]:
    """The arm sizes an attacker reads: Table 1's "units (n)" row (results.json's counts agree)."""
    size = t1[t1["covariate"] == "units (n)"].iloc[0]
    return {key: _int(size[col]) for key, col in T1_COLS.items()}


def _int(v) -> int | None:
    v = str(v).strip()
    if v in HIDDEN:
        return None
    return int(float(v.replace(",", "")))


# ------------------------------------------------------------------------------ solver 1 and 2: binary cells
def _tol(value: float, digits: int) -> float:
    """Half a unit in the last of ``digits`` significant digits (with a little slack)."""
    if value == 0:
        return 0.5 * 10 ** (-digits)
    return 0.5 * 10 ** (math.floor(math.log10(abs(value))) - digits + 1) * 1.001


def _std_scale(kt: np.ndarray, kc: np.ndarray, n_t: int, n_c: int) -> np.ndarray:
    """sqrt(p_t(1 - p_t)) of the cells themselves (the before-matching SMD's denominator in
    MatchIt's convention), pooled sqrt((v_t + v_c)/2) where the treated arm has no variation."""
    pt, pc = kt / n_t, kc / n_c
    vt, vc = pt * (1 - pt), pc * (1 - pc)
    return np.sqrt(np.where(vt > 0, vt, (vt + vc) / 2))


def solve_pair(n_t: int, n_c: int, diffs: list[tuple[float, float, bool]],
               shares: dict[str, list[tuple[float, float]]],
               std: list[tuple[float, float, bool]] | None = None,
               sd0: list[float] | None = None) -> tuple[set[int], set[int]]:
    """Cell counts (k_t, k_c) consistent with every published statistic of one covariate and phase.

    ``diffs``: (value, tolerance, absolute?) of ``k_t/n_t - k_c/n_c`` (a raw difference in
    proportions: eCDF maximum); ``std``: the same for a standardized SMD (balance.csv,
    Table 1, the love plot), ``(k_t/n_t - k_c/n_c) / s``: with ``sd0`` None, ``s`` is the
    cells' own sqrt(p_t(1 - p_t)) (before matching); else any of the candidate ``sd0``
    (after matching: the treated SD before matching, when the attacker has it).
    ``shares``: per arm ("t", "c"), (value, tolerance) of ``k/n``. Returns the sets of k_t
    and k_c over all solutions (empty: none).
    """
    kt = np.arange(n_t + 1)[:, None]
    kc = np.arange(n_c + 1)[None, :]
    ok = np.ones((n_t + 1, n_c + 1), dtype=bool)
    d = kt / n_t - kc / n_c
    for v, tol, absolute in diffs:
        ok &= np.abs((np.abs(d) if absolute else d) - v) <= tol
    for v, tol, absolute in std or []:
        if sd0 is None:
            s = _std_scale(kt, kc, n_t, n_c)
            with np.errstate(divide="ignore", invalid="ignore"):
                z = np.where(s > 0, d / s, d)
            ok &= np.abs((np.abs(z) if absolute else z) - v) <= tol
        else:
            any_ok = np.zeros_like(ok)
            for s in sd0:
                z = d / s if s > 0 else d
                any_ok |= np.abs((np.abs(z) if absolute else z) - v) <= tol
            ok &= any_ok
    for v, tol in shares.get("t", []):
        ok &= np.abs(kt / n_t - v) <= tol
    for v, tol in shares.get("c", []):
        ok &= np.abs(kc / n_c - v) <= tol
    i, j = np.nonzero(ok)
    return set(i.tolist()), set(j.tolist())


def _recovered(covariate: str, phase: str, sizes, sol_t: set[int], sol_c: set[int], how: str) -> list[dict]:
    out = []
    for arm, sol in (("treated", sol_t), ("control", sol_c)):
        if len(sol) == 1:
            k = next(iter(sol))
            out.append({"covariate": covariate, "phase": phase, "arm": arm, "k": k,
                        "n": sizes[(phase, arm)], "how": how})
    return out


def _t1_shares(t1: pd.DataFrame | None) -> dict[str, dict[str, dict[str, list[tuple[float, float]]]]]:
    """Table 1's published percentages (one decimal) per covariate and phase, as solver constraints."""
    out: dict = {}
    if t1 is None:
        return out
    for _, r in t1[t1["covariate"] != "units (n)"].iterrows():
        for phase in PHASES:
            for arm, key in (("treated", "t"), ("control", "c")):
                p = _pct(r[T1_COLS[(phase, arm)]])
                if p is not None:
                    out.setdefault(r["covariate"], {}).setdefault(phase, {})[key] = [(p, 0.0005 + 1e-9)]
    return out


def _sd0_candidates(n_t0: int | None, sol_t0: set[int], ratio: float | None) -> list[float] | None:
    """The treated SD before matching, sqrt(p(1 - p)), as an attacker can have it: from the
    before-matching treated counts solved (``sol_t0``) or from a published standardized SMD
    beside the raw difference it standardizes (``ratio`` = |difference| / |SMD|)."""
    cands = []
    if n_t0 and sol_t0:
        p = np.array(sorted(sol_t0)) / n_t0
        cands += np.sqrt(p * (1 - p)).tolist()
    if ratio is not None and np.isfinite(ratio):
        cands.append(float(ratio))
    return cands or None


def _ratio(r, phase: str) -> float | None:
    """|raw difference| / |standardized SMD| of one phase, when both are published (and not 0)."""
    smd, e = r.get(f"smd_{phase}"), r.get(f"ecdf_max_{phase}")
    if smd is None or e is None or pd.isna(smd) or pd.isna(e) or abs(float(smd)) < 1e-6:
        return None
    return abs(float(e)) / abs(float(smd))


def _pt_from_sd(n_t: int, sd: float, rel: float = 2e-5) -> list[tuple[float, float]]:
    """Treated-share constraints (p, tol) from a before-matching treated SD sqrt(p(1 - p)):
    the two roots p and 1 - p, as shares a cell solver can try one at a time."""
    v = sd * sd
    if not 0 < v <= 0.25:
        return []
    root = np.sqrt(max(0.25 - v, 0.0))
    return [(0.5 - root, 0.5 * rel + 1e-9), (0.5 + root, 0.5 * rel + 1e-9)]


def solve_balance(balance: pd.DataFrame, sizes, love: dict[str, dict[str, tuple[float, float]]] | None = None,
                  t1: pd.DataFrame | None = None) -> list[dict]:
    """Solver 1: the differences in proportions of tables/balance.csv (standardized SMD and
    eCDF maximum to 6 digits) and of the love plot (|SMD| to the pixel), with the published
    arm sizes and whatever percentages Table 1 publishes beside them -> integer cell counts.

    SMDs are standardized as MatchIt's ``summary()`` (the report's convention): before
    matching by the cells' own treated sqrt(p(1 - p)); after matching by that same
    before-matching SD, which the attacker has from the before cells solved, from a
    published SMD beside its raw difference (the eCDF maximum), or not at all (then the
    after SMD is not used). A published SMD beside its raw difference also gives p_t
    before matching (as p or 1 - p), tried as a share of the treated arm."""
    found = []
    shares_of = _t1_shares(t1)
    for _, r in balance[balance["type"] == "binary"].iterrows():
        sol_t0: set[int] = set()
        for phase in PHASES:
            n_t, n_c = sizes[(phase, "treated")], sizes[(phase, "control")]
            if not n_t or not n_c:
                continue
            diffs, std = [], []
            v = r.get(f"ecdf_max_{phase}")
            if v is not None and not pd.isna(v):
                diffs.append((float(v), _tol(float(v), 6), True))
            v = r.get(f"smd_{phase}")
            if v is not None and not pd.isna(v):
                std.append((float(v), _tol(float(v), 6), False))
            if love and r["covariate"] in love and phase in love[r["covariate"]]:
                v, tol = love[r["covariate"]][phase]
                std.append((v, tol, True))
            sd0 = None
            if phase == "after":
                ratio = _ratio(r, "after") or _ratio(r, "before")
                sd0 = _sd0_candidates(sizes[("before", "treated")], sol_t0, ratio)
                if sd0 is None:
                    std = []  # no denominator: the after SMD alone says nothing more here
            if not diffs and not std:
                continue
            shares = shares_of.get(r["covariate"], {}).get(phase, {})
            sd_before = _ratio(r, "after") or _ratio(r, "before")
            if phase == "before" and sd_before is not None and "t" not in shares:
                # p or 1 - p: the solutions under either root (a value is known when only one fits)
                sol_t, sol_c = set(), set()
                for c in _pt_from_sd(n_t, sd_before):
                    a, b = solve_pair(n_t, n_c, diffs, {**shares, "t": [c]}, std, sd0)
                    sol_t |= a
                    sol_c |= b
            else:
                sol_t, sol_c = solve_pair(n_t, n_c, diffs, shares, std, sd0)
            if phase == "before":
                sol_t0 = sol_t
            found += _recovered(r["covariate"], phase, sizes, sol_t, sol_c, "balance")
    return found


def _pct(v) -> float | None:
    v = str(v).strip()
    return float(v[:-1]) / 100 if v.endswith("%") else None


def solve_table_one(t1: pd.DataFrame, sizes, variables: list[str], sig3: bool = False) -> tuple[list[dict], list[dict]]:
    """Solver 2: Table 1's percentages and SMDs -> cells; categorical remainders -> hidden sums.

    ``sig3``: the SMDs are given to 3 significant digits (report.html), not 3 decimals.

    Returns (cells recovered, remainders): a remainder is the arm size minus the published
    levels of a categorical variable, i.e. the sum of its hidden levels.
    """
    found, remainders = [], []
    body = t1[t1["covariate"] != "units (n)"]
    for _, r in body.iterrows():
        sol_t0: set[int] = set()
        for phase in PHASES:
            n_t, n_c = sizes[(phase, "treated")], sizes[(phase, "control")]
            if not n_t or not n_c:
                continue
            shares = {}
            for arm, key in (("treated", "t"), ("control", "c")):
                p = _pct(r[T1_COLS[(phase, arm)]])
                if p is not None:
                    shares[key] = [(p, 0.0005 + 1e-9)]
            smd = str(r.get(f"SMD {phase}", "")).strip()
            std = []
            if smd not in HIDDEN:
                # tables/table1.csv rounds SMDs to 3 decimals, report.html shows 3 significant digits
                tol = _tol(float(smd), 3) if sig3 else 0.0005 + 1e-9
                std.append((float(smd), tol, False))
            sd0 = None
            if phase == "after":
                # the SMD after matching is standardized by the treated SD before matching:
                # from Table 1's published before percentage, or the before cells solved
                p0 = _pct(r[T1_COLS[("before", "treated")]])
                n_t0 = sizes[("before", "treated")]
                sd0 = ([float(np.sqrt(p0 * (1 - p0)))] if p0 is not None
                       else _sd0_candidates(n_t0, sol_t0, None))
                if sd0 is None:
                    std = []
            if len(shares) == 2 or not (shares or std):
                continue  # both percentages published (nothing hidden), or nothing to go on
            sol_t, sol_c = solve_pair(n_t, n_c, [], shares, std, sd0)
            if phase == "before":
                sol_t0 = sol_t
            found += _recovered(r["covariate"], phase, sizes, sol_t, sol_c, "Table 1")
    for var in variables:
        levels = body[body["covariate"].str.startswith(var + "_")]
        if len(levels) < 2:
            continue
        for (phase, arm), col in T1_COLS.items():
            n = sizes[(phase, arm)]
            vals = [_pct(v) for v in levels[col]]
            if n is None or all(v is None for v in vals) or all(v is not None for v in vals):
                continue
            shown = sum(round(v * n) for v in vals if v is not None)
            hidden = [c for c, v in zip(levels["covariate"], vals, strict=True) if v is None]
            remainders.append({"variable": var, "phase": phase, "arm": arm, "levels": tuple(hidden), "sum": n - shown})
    return found, remainders


def count_covariates(ev) -> list[str]:
    """The model's count covariates: non-negative whole numbers, not only 0 and 1."""
    d = ev.matched.ps.data
    out = []
    for c in ev.matched.ps.covariates:
        if c in d and pd.api.types.is_numeric_dtype(d[c]) and not pd.api.types.is_bool_dtype(d[c]):
            x = d[c].dropna().astype(float)
            if len(x) and (x >= 0).all() and (x == np.round(x)).all() and not x.isin([0.0, 1.0]).all():
                out.append(c)
    return out


def truth_sums(ev, covariates: list[str]) -> dict[tuple[str, str, str], int]:
    """Unit-level totals of the count covariates per phase and arm."""
    ms = ev.matched
    out = {}
    for phase, df in (("before", ms.ps.data), ("after", ms.data)):
        t = df[ms.ps.treatment].astype(bool)
        for c in covariates:
            out[(c, phase, "treated")] = int(df.loc[t, c].sum())
            out[(c, phase, "control")] = int(df.loc[~t, c].sum())
    return out


def solve_count_means(t1: pd.DataFrame, sizes, covariates: list[str]) -> list[dict]:
    """Solver 2b: a count covariate's mean in Table 1 (two decimals) times the arm size -> its total."""
    out = []
    for _, r in t1[t1["covariate"].isin(covariates)].iterrows():
        for (phase, arm), col in T1_COLS.items():
            n, v = sizes[(phase, arm)], str(r[col]).strip()
            if not n or v in HIDDEN or v.endswith("%"):
                continue
            lo, hi = (float(v) - 0.005) * n, (float(v) + 0.005) * n
            cands = list(range(max(0, math.ceil(lo - 1e-9)), math.floor(hi + 1e-9) + 1))
            if len(cands) == 1:
                out.append({"covariate": r["covariate"], "phase": phase, "arm": arm, "sum": cands[0]})
    return out


def solve_pool_size(t1: pd.DataFrame, sizes, upper: int) -> int | None:
    """Solver 2c: a hidden served cohort size from the comparison arm's percentages before matching.

    Those are shares of the comparison pool, which also holds the served units' rows from
    before their enrolment: pool = published comparison size + served size. A pool size that
    alone fits every percentage (one decimal) gives the hidden served size.
    """
    n_c = sizes[("before", "control")]
    if sizes[("before", "treated")] is not None or not n_c:
        return None
    body = t1[t1["covariate"] != "units (n)"]
    pcts = [float(v[:-1]) for v in body[T1_COLS[("before", "control")]].astype(str) if v.endswith("%")]
    if not pcts:
        return None
    cands = [n - n_c for n in _candidates(pcts, n_c + 1, n_c + upper)]
    # the comparison arm's own size fits as well when its percentages are its own
    return cands[0] if len(cands) == 1 else None


def hidden_cells(t1: pd.DataFrame, binary: set[str]) -> set[tuple[str, str, str]]:
    """The (covariate, phase, arm) cells of binary rows that Table 1 does not publish."""
    body = t1[t1["covariate"].isin(binary)]
    return {(r["covariate"], phase, arm) for _, r in body.iterrows() for (phase, arm), col in T1_COLS.items()
            if str(r[col]).strip() in HIDDEN}


def cell_leaks(found: list[dict], truth: pd.DataFrame, hidden: set[tuple[str, str, str]]) -> list[dict]:
    """Recovered cells equal to a true count (or its complement) from 1 to 10 that the report hides."""
    t = truth.set_index(["covariate", "phase", "arm"])
    out = []
    for f in found:
        key = (f["covariate"], f["phase"], f["arm"])
        if key not in t.index or key not in hidden:
            continue
        k, n = int(t.loc[key, "k"]), int(t.loc[key, "n"])
        if f["k"] == k and (_small(k) or _small(n - k)):
            out.append({**f, "true_k": k, "true_n": n})
    return out


def remainder_leaks(remainders: list[dict], truth: pd.DataFrame) -> list[dict]:
    t = truth.set_index(["covariate", "phase", "arm"])
    out = []
    for r in remainders:
        true = sum(int(t.loc[(c, r["phase"], r["arm"]), "k"]) for c in r["levels"])
        if r["sum"] == true and _small(true):
            out.append({**r, "true": true})
    return out


# ------------------------------------------------------------------------------ the love plot
def love_plot_values(svg: str, names: list[str]) -> dict[str, dict[str, tuple[float, float]]]:
    """|SMD| per covariate row of the love plot, to half a pixel: {plain name: {phase: (value, tol)}}.

    Rows are the y tick labels; the markers are ``<use>`` elements of the two marker lines
    (before: the first line, after: the second, as the legend orders them).
    """
    ticks = {}
    for m in re.finditer(r'<g id="ytick_\d+">(.*?)<!-- (.*?) -->', svg, re.S):
        pos = re.search(r'<use [^>]*\by="([-\d.e]+)"', m.group(1))
        if pos:
            ticks[m.group(2)] = float(pos.group(1))
    xs = []
    for m in re.finditer(r'<g id="xtick_\d+">(.*?)<!-- (.*?) -->', svg, re.S):
        pos = re.search(r'<use [^>]*\bx="([-\d.e]+)"', m.group(1))
        if pos:
            xs.append((float(pos.group(1)), float(m.group(2).replace("\u2212", "-"))))
    (p0, v0), (p1, v1) = xs[0], xs[-1]
    per_px = (v1 - v0) / (p1 - p0)
    # the markers: the scatter collections before the legend (first: before, second: after)
    body = svg[:svg.index('<g id="legend_1">')] if '<g id="legend_1">' in svg else svg
    groups = re.findall(r'<g id="PathCollection_\d+">(.*?)</g>\s*</g>', body, re.S)
    out: dict[str, dict[str, tuple[float, float]]] = {}
    for phase, grp in zip(PHASES, groups[:2], strict=False):
        for m in re.finditer(r'<use [^>]*\bx="([-\d.e]+)"[^>]*\by="([-\d.e]+)"', grp):
            x, y = float(m.group(1)), float(m.group(2))
            row = min(ticks, key=lambda k: abs(ticks[k] - y))
            if abs(ticks[row] - y) < 1:
                out.setdefault(row, {})[phase] = (v0 + (x - p0) * per_px, abs(per_px) * 0.5 + 1e-9)
    return out


def love_by_covariate(svg: str, balance: pd.DataFrame, covariates: list[str]) -> dict[str, dict[str, tuple[float, float]]]:
    from ppeval.report.content import pretty_covariate

    plain = {pretty_covariate(c, covariates): c for c in balance["covariate"]}
    return {plain[k]: v for k, v in love_plot_values(svg, list(plain)).items() if k in plain}


def embedded_svgs(page: str) -> list[str]:
    return [base64.b64decode(b).decode("utf-8") for b in re.findall(r'src="data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)"', page)]


# ------------------------------------------------------------------------------ HTML tables
class _Tables(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "tr" and self.tables:
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None and self.tables and self.tables[-1]:
            self.tables[-1][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def html_table_one(page: str) -> pd.DataFrame:
    p = _Tables()
    p.feed(page)
    for t in p.tables:
        if t and t[0][:2] == ["covariate", "served, before"]:
            return pd.DataFrame(t[1:], columns=t[0])
    raise AssertionError("no Table 1 in report.html")


# ------------------------------------------------------------------------------ solver 3: Rosenbaum
def solve_rosenbaum(rb: dict | None, max_pairs: int) -> list[tuple[int, int]]:
    """(larger, smaller) discordant counts whose exact binomial p-values are the published ones."""
    if not rb or not rb.get("table"):
        return []
    D = np.arange(1, max_pairs + 1)[:, None]
    T = np.arange(0, max_pairs + 1)[None, :]
    ok = (T <= D) & (2 * T >= D)
    for row in rb["table"]:
        g = float(row["gamma"])
        for col, prob in (("p_upper", g / (1 + g)), ("p_lower", 1 / (1 + g))):
            if row.get(col) is None:
                continue
            with np.errstate(all="ignore"):
                p = stats.binom.sf(T - 1, D, prob)
            ok &= np.abs(p - float(row[col])) <= _tol(float(row[col]), 10) + 1e-15
    i, j = np.nonzero(ok)
    return [(int(t), int(d - t)) for d, t in zip(D[i, 0], T[0, j], strict=True)]


def true_discordant(ev, res: dict) -> tuple[int, ...] | None:
    """The counts the lead window's Rosenbaum bounds rest on, from the matched rows: (informative
    sets, their served units, comparison units, served units with the event, comparison units
    with the event); in 1:1 pairs the last two are the discordant pairs."""
    from ppeval.estimate import rosenbaum_sets

    rb = res["sensitivity"].get("rosenbaum")
    if rb is None:
        return None
    col = rb["outcome"]
    d = ev.matched.data[["match_id", "treated", col]].dropna()
    b = rosenbaum_sets(d["treated"].astype(bool).to_numpy(), d[col].astype(float).to_numpy(), d["match_id"].to_numpy())
    return b.n_sets, b.n_treated, b.n_comparison, b.events_treated, b.events_comparison


# ------------------------------------------------------------------------------ solver 5: subgroups
def true_subgroups(ev, outcome_col: str) -> pd.DataFrame:
    """Units per subgroup level and arm (analysed: the lead window observed), from the matched rows."""
    d = ev.matched.data.copy()
    d = d[d[outcome_col].notna()]
    tr = d["treated"].astype(bool)
    age_col = next((c for c in d.columns if c.startswith("age_at_")), None)
    if age_col:
        d["age_band"] = pd.cut(d[age_col], [-0.01, 0.999, 5.999, 11.999, 200],
                               labels=["under 1", "1 to 5", "6 to 11", "12 to 17"]).astype("string")
    if "parent_role" in d:
        role = ev.matched.data.loc[ev.matched.data["treated"].astype(bool)].groupby("match_id")["parent_role"].first()
        d["parent_role"] = d["match_id"].map(role)
    rows = []
    for by in ("parent_role", "race_ethnicity", "age_band", "removal_parent_drugs"):
        if by not in d:
            continue
        lv = d[by].astype(str)
        y = d[outcome_col].astype(bool)
        for level in lv.unique():
            m = lv == level
            rows.append({"subgroup": by, "level": str(level), "n_treated": int((m & tr).sum()), "n_comparison": int((m & ~tr).sum()),
                         "events_treated": int((m & tr & y).sum()), "events_comparison": int((m & ~tr & y).sum())})
    return pd.DataFrame(rows)


SUB_COLS = ("n_treated", "n_comparison", "events_treated", "events_comparison")


def solve_subgroups(sub: pd.DataFrame, outcome_row: dict) -> list[dict]:
    """Solver 5: the analysed row's count minus a variable's published levels = its hidden levels' sum."""
    out = []
    for by, grp in sub.groupby("subgroup", sort=False):
        for c in SUB_COLS:
            total = _int(outcome_row.get(c))
            vals = [_int(v) for v in grp[c]]
            hidden = tuple(lv for lv, v in zip(grp["level"], vals, strict=True) if v is None)
            if total is None or not hidden:
                continue
            out.append({"subgroup": by, "column": c, "levels": hidden, "sum": total - sum(v for v in vals if v is not None)})
    return out


def subgroup_leaks(found: list[dict], truth: pd.DataFrame) -> list[dict]:
    t = truth.set_index(["subgroup", "level"])
    out = []
    for f in found:
        true = sum(int(t.loc[(f["subgroup"], lv), f["column"]]) for lv in f["levels"] if (f["subgroup"], lv) in t.index)
        if f["sum"] == true and _small(true):
            out.append({**f, "true": true})
    return out


# ------------------------------------------------------------------------------ the audit of one run
def _event_days(ev, outcome: str) -> dict[str, np.ndarray]:
    """Each arm's event days, those on day 0 counted in the first rise (the curve is drawn
    from its start value at day 0, so a day-0 event rises with the first published point)."""
    return {arm: np.where(d <= 0, 0.5, d) for arm, d in event_days(ev, outcome).items()}


def _read_tables(out: Path) -> dict[str, pd.DataFrame]:
    return {p.stem: pd.read_csv(p, dtype=str, keep_default_na=False) for p in (out / "tables").glob("*.csv")}


def audit(run: SimpleNamespace) -> dict:
    """Every solver on every artefact of ``run``; returns the suppressed cells checked and the leaks."""
    ev, out, res = run.ev, run.out, run.results
    tables = _read_tables(out)
    balance = pd.read_csv(out / "tables" / "balance.csv")
    t1 = tables["table1"]
    page = (out / "report.html").read_text(encoding="utf-8")
    t1_html = html_table_one(page)
    truth = truth_cells(ev)
    covariates = list(ev.covariates)
    sizes = arm_sizes_published(res, t1)
    true_sizes = truth.groupby(["phase", "arm"])["n"].max().to_dict()
    # the comparison arm before matching is published without the served units' rows from
    # before their enrolment, which the balance statistics include: an attacker tries both
    alt = dict(sizes)
    if sizes[("before", "control")] and sizes[("before", "treated")]:
        alt[("before", "control")] = sizes[("before", "control")] + sizes[("before", "treated")]
    for key, n in sizes.items():
        assert n is None or true_sizes[key] in (n, alt[key]) or sizes[("before", "treated")] is None, (key, n, true_sizes[key])
    size_sets = [sizes, alt] if alt != sizes else [sizes]
    # the suppressed cells: binary Table 1 cells not published
    binary = set(balance.loc[balance["type"] == "binary", "covariate"])
    hidden = hidden_cells(t1, binary)
    assert hidden == hidden_cells(t1_html, binary), "Table 1 differs between tables/table1.csv and report.html"
    tt = truth.set_index(["covariate", "phase", "arm"])
    suppressed_cells = sorted(hidden)
    assert all(k in tt.index for k in suppressed_cells), "a suppressed Table 1 cell without its unit-level truth"
    small_hidden = [k for k in suppressed_cells if _small(tt.loc[k, "k"]) or _small(tt.loc[k, "n"] - tt.loc[k, "k"])]

    report = {"cells_suppressed": len(suppressed_cells), "small_cells_suppressed": len(small_hidden), "leaks": {}}
    # 1. balance.csv and the love plot (file and embedded)
    love_svgs = [(out / "charts" / "love_plot.svg").read_text(encoding="utf-8")]
    love_svgs += [s for s in embedded_svgs(page) if "Absolute standardized mean difference" in s]
    assert len(love_svgs) >= 2, "the love plot embedded in report.html was not found"
    found = []
    for sz in size_sets:
        for table in (t1, t1_html):
            found += solve_balance(balance, sz, t1=table)
            for svg in love_svgs:
                found += solve_balance(balance.assign(smd_before=np.nan, smd_after=np.nan, ecdf_max_before=np.nan, ecdf_max_after=np.nan),
                                       sz, love_by_covariate(svg, balance, covariates), t1=table)
    report["leaks"]["balance"] = cell_leaks(found, truth, hidden)
    # 2. Table 1 (CSV and HTML), its categorical remainders
    found, rem = [], []
    for table, sz in ((t, z) for t in (t1, t1_html) for z in size_sets):
        f, r = solve_table_one(table, sz, covariates, sig3=table is t1_html)
        found += f
        rem += r
    c_ = ev.matched.counts
    counts = count_covariates(ev)
    sums = truth_sums(ev, counts)
    for table, sz in ((t, z) for t in (t1, t1_html) for z in size_sets):
        rem += [{"count_total": f} for f in solve_count_means(table, sz, counts)
                if f["sum"] == sums[(f["covariate"], f["phase"], f["arm"])] and _small(f["sum"])]
    report["leaks"]["table1"] = cell_leaks(found, truth, hidden) + remainder_leaks([r for r in rem if "sum" in r], truth)
    report["leaks"]["table1"] += [r["count_total"] for r in rem if "count_total" in r]
    # the hidden served cohort size, from the comparison pool's percentages
    first = _int(tables["sample_flow"]["treated"].iloc[0])
    for table in (t1, t1_html):
        got = solve_pool_size(table, sizes, first or 5000)
        unmatched = None if got is None else got - int(c_["treated_matched"])
        if got == int(c_["treated"]) and unmatched is not None and _small(unmatched):
            report["leaks"]["table1"].append({"served_cohort": got, "unmatched": unmatched})
    report["remainders_checked"] = len(rem)
    # flow, arm sizes, outcome events: the linear attack of the hardening tests
    s = build_attack(out, res)
    s_hidden = set(s.hidden)
    c = ev.matched.counts
    run_attack(s, {"cohort.treated": int(c["treated"]), "cohort.comparison": int(c["comparison"]),
                   "matched.treated": int(c["treated_matched"]), "matched.comparison": int(c["comparison_matched"])})
    report["leaks"]["flow"] = [(k, int(v), s.how[k]) for k, v in s.recovered.items() if _small(int(v))]
    report["flow_hidden"] = len(s_hidden)
    # 3. Rosenbaum (results.json; report.html states only the conclusion)
    rb = res["sensitivity"].get("rosenbaum")
    truth_rb = true_discordant(ev, res)
    report["rosenbaum_suppressed"] = bool(rb and rb.get("suppressed"))
    if truth_rb is not None and any(_small(k) for k in truth_rb):
        n_pairs = int(c["treated_matched"])
        got = solve_rosenbaum(rb, n_pairs)
        report["leaks"]["rosenbaum"] = [g for g in got if sorted(g) == sorted(truth_rb[3:])]
        assert rb.get("suppressed"), "Rosenbaum table published over a small discordant count"
    else:
        report["leaks"]["rosenbaum"] = []
    # 4. curves (files and report.html)
    found = []
    svgs = curve_svgs(out)
    assert svgs, "no curve chart to attack"
    for where, outcome, svg in svgs:
        found += [f"{where}: {f}" for f in curve_leaks(read_curves(svg), _event_days(ev, outcome), window_ends(res, outcome))]
    report["leaks"]["curves"] = found
    report["curve_charts"] = len(svgs)
    # 5. subgroups (CSV and results.json)
    report["leaks"]["subgroups"] = []
    if "subgroups" in tables and res["summary"]:
        from ppeval import outcomes as oc
        from ppeval.report.content import choose_headline, outcome_rows

        head = choose_headline(outcome_rows(ev.matched.data, ev.estimates, ev.outcomes, THRESHOLD), ev.cohort.design)[0]
        col = oc.window_column(head.outcome, head.window_months)
        orow = tables["outcomes"]
        orow = orow[(orow["outcome"] == head.outcome) & (orow["window_months"] == str(head.window_months))].iloc[0].to_dict()
        truth_sub = true_subgroups(ev, col)
        sub_json = pd.DataFrame(res["subgroups"]).astype(object).where(lambda x: x.notna(), "")
        sub_found = solve_subgroups(tables["subgroups"], orow) + solve_subgroups(sub_json.astype(str), orow)
        # the published levels are the unit-level truth
        tsub = truth_sub.set_index(["subgroup", "level"])
        for _, r in tables["subgroups"].iterrows():
            assert (r["subgroup"], r["level"]) in tsub.index, ("a subgroup level without its unit-level truth", r["subgroup"], r["level"])
            for cname in SUB_COLS:
                v = _int(r[cname])
                if v is not None:
                    assert v == tsub.loc[(r["subgroup"], r["level"]), cname], (r["subgroup"], r["level"], cname)
        report["leaks"]["subgroups"] = subgroup_leaks(sub_found, truth_sub)
        report["subgroup_cells_suppressed"] = int(tables["subgroups"][list(SUB_COLS)].isin(list(HIDDEN)).sum().sum())
    # the PDF: every number in its text is one the HTML publishes (so the attacks above cover it)
    if run.pdf_text:
        # table cells wrap across lines in the PDF ("0.366" as "0.3" and "66"): a PDF number
        # must appear within the HTML's text, not necessarily as a whole token
        html_text = re.sub(r"\s+", "", html_mod.unescape(re.sub(r"<[^>]+>", " ", page)))
        fact = (out / "factsheet.html").read_text(encoding="utf-8")
        html_text += re.sub(r"\s+", "", html_mod.unescape(re.sub(r"<[^>]+>", " ", fact)))
        extra = sorted(n for n in set(re.findall(r"\d+(?:[.,]\d+)*", run.pdf_text)) if n not in html_text)
        assert not extra, f"numbers in the PDF that report.html does not publish: {extra[:20]}"
        report["pdf_checked"] = True
    return report


def _all_leaks(report: dict) -> dict:
    return {k: v for k, v in report["leaks"].items() if v}


# ------------------------------------------------------------------------------ the tests
@pytest.mark.parametrize("name", ["n900", "n2000", "n900_short"])
def test_no_suppressed_count_is_recovered(runs, name):
    r = audit(runs[name])
    print(name, {k: len(v) for k, v in r["leaks"].items()}, {k: v for k, v in r.items() if k != "leaks"})
    assert r["small_cells_suppressed"] > 0, "the extract hides no small cell: the audit would prove nothing"
    assert not _all_leaks(r), f"suppressed counts recovered from the published report: {_all_leaks(r)}"


def test_differencing_is_warned(runs):
    """Solver 6: counts of the two windows that differ by 1 to 10 are found, and the second run warned."""
    a, b = runs["n900"], runs["n900_short"]
    assert a.results["inputs"] == b.results["inputs"], "the two runs must be on the same extract"

    def counts(res):
        out = {}
        for i, r in enumerate(res["flow"]):
            for arm in ("treated", "comparison"):
                out[f"flow[{i}:{r['step'][:30]}].{arm}"] = r.get(arm)
        for arm in ("treated", "comparison"):
            out[f"cohort.{arm}"] = res["cohort"].get(arm)
        for k in ("treated_matched", "comparison_matched"):
            out[k] = res["matching"].get(k)
        for name, o in res["outcomes"].items():
            for arm in ("treated", "comparison"):
                out[f"{name}.{arm}.events"] = o[arm].get("events")
                out[f"{name}.{arm}.n"] = o[arm].get("n")
        return out

    ca, cb = counts(a.results), counts(b.results)
    small_diffs = {k: (ca[k], cb[k]) for k in ca.keys() & cb.keys()
                   if ca[k] is not None and cb[k] is not None and _small(abs(ca[k] - cb[k]))}
    print("differencing: counts differing by 1 to 10 between the two windows:", len(small_diffs))
    assert small_diffs, "the one-month-shorter window changes nothing: the differencing check proves nothing"
    assert "WARNING: this cohort differs from the one published" in b.err
    assert any("differs from the one published" in n for n in b.results["notes"])
    assert "differs from the one published" in (b.out / "report.html").read_text(encoding="utf-8")


# ------------------------------------------------------------------------------ positive controls
@pytest.fixture(scope="module")
def raw(runs) -> SimpleNamespace:
    """The 900-child run's unsuppressed statistics, written as the report writes them."""
    run = runs["n900"]
    ev = run.ev
    bal = ev.balance.table
    truth = truth_cells(ev)
    sizes = truth.groupby(["phase", "arm"])["n"].max().to_dict()
    return SimpleNamespace(run=run, bal=bal, truth=truth, sizes=sizes)


def _cell_suppressed_table_one(raw) -> pd.DataFrame:
    """Table 1 as it was published before the publication layer: cells 1 to 10 hidden one by one."""
    from ppeval.report.content import table_one

    ev = raw.run.ev
    cd = ev.cohort.data
    own = ~cd["served_later"].astype(bool) if "served_later" in cd else pd.Series(True, index=cd.index)
    return table_one(raw.bal, cd.loc[cd["treated"].astype(bool) | own], ev.matched.data, THRESHOLD).astype(str)


def test_balance_solver_finds_unsuppressed_cells(raw, tmp_path):
    """Unsuppressed balance statistics beside a Table 1 that hides cells one by one: cells come back."""
    p = tmp_path / "balance.csv"
    keep = ["covariate", "type", "smd_before", "smd_after", "ecdf_max_before", "ecdf_max_after"]
    p.write_text(raw.bal[keep].to_csv(index=False, float_format="%.6g"), encoding="utf-8")
    t1 = _cell_suppressed_table_one(raw)
    hidden = hidden_cells(t1, set(raw.bal["covariate"]))
    leaks = cell_leaks(solve_balance(pd.read_csv(p), raw.sizes, t1=t1), raw.truth, hidden)
    assert len(leaks) >= 3, leaks
    assert all(f["k"] == f["true_k"] for f in leaks)


def test_love_plot_solver_finds_unsuppressed_cells(raw):
    """The love plot's markers (to the pixel) do the same as balance.csv's digits."""
    from ppeval.report import charts

    ax = raw.run.ev.balance.love_plot()
    charts.relabel_love_plot(ax, list(raw.run.ev.covariates))
    svg = base64.b64decode(charts.save(ax, None, "x").split(",", 1)[1]).decode("utf-8")
    love = love_by_covariate(svg, raw.bal, list(raw.run.ev.covariates))
    assert len(love) == len(raw.bal)
    t1 = _cell_suppressed_table_one(raw)
    hidden = hidden_cells(t1, set(raw.bal["covariate"]))
    nan = raw.bal.assign(smd_before=np.nan, smd_after=np.nan, ecdf_max_before=np.nan, ecdf_max_after=np.nan)
    leaks = cell_leaks(solve_balance(nan, raw.sizes, love, t1=t1), raw.truth, hidden)
    assert len(leaks) >= 3, leaks


def test_table_one_solver_finds_unsuppressed_cells(raw):
    """Table 1 hiding cells one by one: its SMDs and the other arm's percentage give them back,
    and a categorical variable's published levels give the hidden ones' sum."""
    ev = raw.run.ev
    t1 = _cell_suppressed_table_one(raw)
    hidden = hidden_cells(t1, set(raw.bal["covariate"]))
    found, rem = solve_table_one(t1, raw.sizes, list(ev.covariates))
    leaks = cell_leaks(found, raw.truth, hidden)
    assert len(leaks) >= 3, leaks
    assert remainder_leaks(rem, raw.truth), rem
    # a count covariate's mean: its total, when the arm is small
    counts = count_covariates(ev)
    sums = truth_sums(ev, counts)
    got = [f for f in solve_count_means(t1, raw.sizes, counts) if f["sum"] == sums[(f["covariate"], f["phase"], f["arm"])]]
    assert any(_small(f["sum"]) for f in got), (got, sums)


def test_pool_size_solver_finds_a_hidden_served_size():
    """Comparison percentages over a pool of 472 + 104 rows pin the hidden 104 (with 95 matched: 9 unmatched)."""
    rng = np.random.default_rng(3)
    ks = rng.integers(30, 400, size=12)
    t1 = pd.DataFrame({"covariate": ["units (n)"] + [f"c{i}" for i in range(12)],
                       "comparison, before": ["472"] + [f"{100 * k / 576:.1f}%" for k in ks]})
    sizes = {("before", "treated"): None, ("before", "control"): 472}
    assert solve_pool_size(t1, sizes, 195) == 104


def test_rosenbaum_solver_finds_the_counts():
    from ppeval.estimate import rosenbaum_bounds

    for n10, n01 in ((5, 4), (9, 2), (3, 30)):
        rb = rosenbaum_bounds(max(n10, n01), min(n10, n01))
        table = [{k: float(f"{v:.10g}") for k, v in r.items()} for r in rb.table.to_dict(orient="records")]
        got = solve_rosenbaum({"table": table}, 200)
        assert got == [(max(n10, n01), min(n10, n01))], got


def test_curve_solver_finds_single_events(raw):
    ev = raw.run.ev
    found = []
    for outcome, res in ev.estimates.items():
        if res.km is None and res.cif is None:
            continue
        found += curve_leaks(read_curves(exact_curve_svg(res)), event_days(ev, outcome))
    assert any("pools 1 event(s)" in f for f in found), found


def test_subgroup_solver_finds_a_remainder():
    sub = pd.DataFrame({"subgroup": ["parent_role"] * 3, "level": ["father", "mother", "other"],
                        "n_treated": ["", "39", ""], "n_comparison": ["", "34", ""],
                        "events_treated": ["", "21", ""], "events_comparison": ["", "16", ""]})
    truth = pd.DataFrame({"subgroup": ["parent_role"] * 3, "level": ["father", "mother", "other"],
                          "n_treated": [5, 39, 3], "n_comparison": [9, 34, 4],
                          "events_treated": [2, 21, 1], "events_comparison": [3, 16, 2]})
    row = {"n_treated": "47", "n_comparison": "47", "events_treated": "24", "events_comparison": "21"}
    leaks = subgroup_leaks(solve_subgroups(sub, row), truth)
    assert {(f["column"], f["true"]) for f in leaks} == {("n_treated", 8), ("events_treated", 3), ("events_comparison", 5)}


# ------------------------------------------------------------------------------ a bigger sweep
@pytest.mark.slow
@pytest.mark.parametrize("children,seed", [(900, 2), (900, 3), (2000, 2), (2000, 3)])
def test_sweep(tmp_path, children, seed):
    run = _report(_synth(tmp_path, children, seed), f"s{seed}", tmp_path / "runs.jsonl")
    r = audit(run)
    assert not _all_leaks(r), _all_leaks(r)


def test_publication_rules():
    """The rules the audit checks, on a table small enough to read."""
    from ppeval.report.publish import (
        hidden_binary_covariates,
        publish_rosenbaum,
        withhold_before_columns,
    )

    t = pd.DataFrame({"covariate": ["a", "b", "c"], "variable": ["a", "b", "c"], "type": ["binary", "binary", "continuous"],
                      "mean_treated_before": [0.5, 1 / 94, 0.3], "mean_control_before": [0.5, 0.5, 0.3],
                      "mean_treated_after": [0.5, 0.5, 0.3], "mean_control_after": [0.5, 0.5, 0.3],
                      "smd_before": [0.0, -0.49, 0.0], "ecdf_max_before": [0.0, 0.49, 0.1]})
    sizes = {"before_t": 94, "before_c": 200, "after_t": 94, "after_c": 94}
    assert hidden_binary_covariates(t, sizes, THRESHOLD).tolist() == [False, True, False]
    # a hidden cohort size: the rows stay, their before-matching statistics go (both arms, and every eCDF)
    assert hidden_binary_covariates(t, sizes, THRESHOLD, {"before_t": True}).tolist() == [False, False, False]
    w = withhold_before_columns(t, {"before_t": True})
    assert w[["mean_treated_before", "mean_control_before", "smd_before"]].isna().to_numpy().tolist() == [[True] * 3, [True] * 3, [False] * 3]
    assert w["ecdf_max_before"].isna().all()
    # a small matched arm: everything binary goes
    assert hidden_binary_covariates(t, {**sizes, "after_t": 7}, THRESHOLD).tolist() == [True, True, False]
    # levels of one variable: two hidden levels of 3 + 4 units hide a third
    cat = pd.DataFrame({"covariate": ["r_a", "r_b", "r_c", "r_d"], "variable": "r", "type": "binary",
                        "mean_treated_after": [0.03, 0.04, 0.13, 0.80], "mean_control_after": [0.25] * 4})
    got = hidden_binary_covariates(cat, {"after_t": 100, "after_c": 100}, THRESHOLD).tolist()
    assert got == [True, True, True, False]
    rb = {"outcome": "x", "gamma_critical": 1.3, "table": [{"gamma": 1, "p": 0.5}]}
    assert publish_rosenbaum(rb, (5, 4), THRESHOLD)["table"] is None
    assert publish_rosenbaum(rb, (5, 4), THRESHOLD)["gamma_critical"] is None
    assert publish_rosenbaum(rb, (15, 0), THRESHOLD) is rb


def test_subgroup_remainders_are_protected():
    from ppeval.report import _hide_small_remainders

    c = pd.DataFrame({"n_treated": [6, 2, 40], "events_treated": [1, 1, 20]})
    assert _hide_small_remainders(c, pd.Series([True, True, False]), list(c.columns), THRESHOLD).tolist() == [True, True, True]
    c = pd.DataFrame({"n_treated": [6, 7, 40, 30], "events_treated": [3, 0, 20, 12]})
    # 13 units hidden, but 3 events: the level with the fewest events (12) goes too
    assert _hide_small_remainders(c, pd.Series([True, True, False, False]), list(c.columns), THRESHOLD).tolist() == [True, True, False, True]
