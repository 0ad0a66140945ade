"""The published outputs: report.html, factsheet.html, results.json, tables/*.csv, charts/*.

Every artefact is aggregate, small-cell suppressed (``report.suppress_below``, default 11)
and scanned for identifiers of the extract before the output folder is swapped into place
atomically: a run killed part-way leaves the previous output intact.

Examples
--------
>>> ev = ppeval.Evaluation.from_toml("data/synthetic/eval.toml")   # doctest: +SKIP
>>> write_report(ev, Path("reports/eval"))                          # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from jinja2 import Environment, PackageLoader, select_autoescape

from .. import __version__
from .. import outcomes as oc
from ..privacy import SUPPRESSED_TEXT, IdentifierGuard, atomic_output_dir, format_count, suppress_counts, suppress_value
from . import charts
from .content import (
    LABELS,
    OutcomeRow,
    Phrases,
    finding_sentence,
    flow_table,
    fmt_effect,
    fmt_p,
    outcome_rows,
    pct,
    rate_caption,
    table_one,
)

HEADLINE = {"in_care": [("reunification", 12), ("tpr", 24), ("reentry", 12)], "prevention": [("removal", 12), ("recurrence", 12)]}
SUBGROUPS = ("parent_role", "race_ethnicity", "age_band", "removal_parent_drugs")


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, date):
        return x.isoformat()
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, float | np.floating):
        v = float(x)
        return None if not math.isfinite(v) else float(f"{v:.10g}")
    if isinstance(x, np.bool_):
        return bool(x)
    if x is pd.NA or x is pd.NaT:
        return None
    return x


def _counts(d: dict[str, int | None], threshold: int) -> dict[str, Any]:
    """Counts for results.json: below the threshold -> null, with "suppressed": true beside them."""
    out: dict[str, Any] = {}
    hidden = False
    for k, v in d.items():
        s = None if v is None else suppress_value(int(v), threshold)
        hidden |= s is None and v is not None or v is None
        out[k] = s
    if hidden:
        out["suppressed"] = True
    return out


def _event_counts(n: int, events: int, threshold: int) -> dict[str, Any]:
    """n and events, both hidden when events or n − events is small (each gives the other away)."""
    small = any(1 <= v < threshold for v in (n, events, n - events))
    if small:
        return {"n": suppress_value(n, threshold), "events": None, "suppressed": True}
    return {"n": n, "events": events}


def _subgroup_table(ev, matched: pd.DataFrame, binary: str, threshold: int) -> pd.DataFrame:
    """Risk differences of ``binary`` by subgroup, suppressed where a cell is small."""
    from types import SimpleNamespace

    from ..estimate import subgroup_effects
    from ..estimate._data import resolve

    df = matched.copy()
    age_col = next((c for c in df.columns if c.startswith("age_at_") or c.startswith("youngest_age_at_")), None)
    if age_col:
        df["age_band"] = pd.cut(df[age_col], [-0.01, 0.999, 5.999, 11.999, 200], labels=["under 1", "1 to 5", "6 to 11", "12 to 17"]).astype("string")
    if "parent_role" in df:
        # the comparison units of a matched set belong to the enrolled parent's subgroup
        role = df.loc[df["treated"].astype(bool)].groupby("match_id")["parent_role"].first()
        df["parent_role"] = df["match_id"].map(role)
    frames = []
    wanted = list(ev.config["subgroups"]) or list(SUBGROUPS)
    # resolved as a matched sample, so SEs are clustered by matched set like the main effects
    design = resolve(SimpleNamespace(data=df))
    y = design.df[binary]
    keep = y.notna().to_numpy()
    d = design.subset(keep) if not keep.all() else design
    for by in wanted:
        if by not in df or df[by].nunique() < 2:
            continue
        try:
            sub = subgroup_effects(d, by, y=y[keep].astype(float).to_numpy(), outcome=binary)
        except Exception as exc:  # a subgroup with too few units cannot be estimated
            ev.notes.append(f"subgroup {by}: not estimated ({exc})")
            continue
        frames.append(sub)
    if not frames:
        return pd.DataFrame()
    out = pd.concat(frames, ignore_index=True)
    cols = ["n_treated", "n_comparison", "events_treated", "events_comparison"]
    small = pd.Series(False, index=out.index)
    for _, grp in out.groupby("subgroup", sort=False):
        # the levels of one variable add up to the analysed sample, whose counts are
        # published in the outcome table: a lone hidden level would be a subtraction away
        t = grp[cols].astype(int)
        t.loc["__total__"] = t.sum()
        sup = suppress_counts(t, cols, threshold, total_row="__total__",
                              events={"events_treated": "n_treated", "events_comparison": "n_comparison"}).table
        small.loc[grp.index] = sup.drop(index="__total__").isna().any(axis=1).to_numpy()
    out["suppressed"] = small
    for c in ("estimate", "se", "ci_low", "ci_high", "p_value", "n_treated", "n_comparison", "events_treated", "events_comparison"):
        out[c] = out[c].astype(float).where(~small)
    return out


def _rosenbaum(matched: pd.DataFrame, binary: str, threshold: int) -> dict[str, Any] | None:
    from ..estimate import rosenbaum_bounds

    d = matched[["match_id", "treated", binary]].dropna()
    sizes = d.groupby("match_id")["treated"].agg(["size", "sum"])
    pairs = sizes[(sizes["size"] == 2) & (sizes["sum"] == 1)].index
    d = d[d["match_id"].isin(pairs)]
    if d.empty:
        return None
    wide = d.pivot_table(index="match_id", columns="treated", values=binary, aggfunc="first").astype(bool)
    n10 = int((wide[True] & ~wide[False]).sum())
    n01 = int((~wide[True] & wide[False]).sum())
    if n10 + n01 == 0:
        return None
    # the bounds test the direction the data point to
    hi, lo = (n10, n01) if n10 >= n01 else (n01, n10)
    rb = rosenbaum_bounds(hi, lo)
    table = rb.table if hasattr(rb, "table") else None
    return {
        "outcome": binary,
        "discordant_pairs": _counts({"favouring_more_events_in_served": n10, "favouring_more_events_in_comparison": n01}, threshold),
        "gamma_critical": _jsonable(getattr(rb, "gamma_critical", None)),
        "table": None if table is None else _jsonable(table.to_dict(orient="records")),
    }


def _methods(ev, matched_sample, bal) -> list[str]:
    c, p, m = ev.config["cohort"], ev.config["propensity"], ev.config["matching"]
    design = (
        "an in-care design: children entering out-of-home care (first removal in the window per child), "
        f"excluding stays under {c['min_stay_days']} days and removals at age {c['max_age_at_removal']:g} or older"
        if c["design"] == "in_care"
        else "a prevention design: children with an index maltreatment report who were not in care on the report date"
    )
    unit = "the child" if c["unit"] == "child" else f"the family (an outcome is reached when {c['family_outcome']} of its children reach it)"
    window = f"{c['entry_from'] or 'the start of the data'} to {c['entry_to'] or 'the extract date'}"
    return [
        f"Design: {design}, entries from {window}; the unit of analysis is {unit}. "
        "Treated units started at enrolment; each comparison unit started at the same number of days after its own removal (or report) "
        "as its matched treated unit and had to be still in care (or still at home) and not enrolled at that point, so neither arm has immortal time.",
        f"Propensity score: {p['model']} model of enrolment on {', '.join(ev.covariates)} (categorical covariates as indicator columns, missing values with indicators).",
        f"Matching: {matched_sample.method}. Siblings were matched together as one family block." if c["unit"] == "child" else f"Matching: {matched_sample.method}.",
        f"Balance: standardized mean differences use the {bal.s_d_denom} group's standard deviation from the unmatched sample; {bal.verdict.attrs.get('rule', '')}.",
        "Effects: risks by arm with risk difference, risk ratio and odds ratio (logistic regression with matching weights); Cox proportional hazards with Efron ties; "
        "Aalen–Johansen cumulative incidence and Fine–Gray subdistribution hazard ratios where other exits compete. Standard errors are cluster-robust by matched set "
        "(sets sharing a family joined), with the small-sample factor of R's sandwich::vcovCL (HC1) for regression models and R's coxph(cluster=) for Cox models.",
        "Fixed-window rates (e.g. within 12 months) count only units whose whole window lies before the extract date. Outcomes are censored at the extract date and at the 18th birthday; "
        "other exits are competing events, not censoring.",
        f"Privacy: counts from 1 to {ev.config['report']['suppress_below'] - 1} are suppressed, with complementary suppression; no identifier or birth date appears in any output.",
    ]


def build(ev) -> dict[str, Any]:
    """Compute everything the writers need (aggregates only)."""
    thr = ev.config["report"]["suppress_below"]
    program = ev.config["report"]["program_name"]
    cohort = ev.cohort
    ms = ev.matched
    bal = ev.balance
    est = ev.estimates
    data = ms.data
    phrases = Phrases.for_unit(cohort.unit, program)
    rows = outcome_rows(data, est, ev.outcomes, thr)
    by_key = {(r.outcome, r.window_months): r for r in rows}
    headline = [by_key[k] for k in HEADLINE[cohort.design] if k in by_key]
    if not headline:
        headline = rows[:3]
    flow = flow_table(cohort.flow.to_frame(), thr)
    counts = ms.counts
    t1 = table_one(bal.table, cohort.data, data, thr)

    # results.json
    res: dict[str, Any] = {
        "ppeval_version": __version__,
        "title": ev.config["title"],
        "seed": ev.config["seed"],
        "config": _jsonable(getattr(ev.config, "raw", dict(ev.config))),
        "defaults_applied": list(getattr(ev.config, "defaults_applied", [])),
        "inputs": [{"path": f["path"], "sha256": f["sha256"], "table": f["table"], "rows": f["rows"]} for f in ev.extract.provenance()],
        "flow": [{"step": r["step"], **_counts({"treated": None if pd.isna(r["treated"]) else int(r["treated"]), "comparison": None if pd.isna(r["comparison"]) else int(r["comparison"])}, thr)} for _, r in flow.iterrows()],
    }
    cd = cohort.data
    tr = cd["treated"].astype(bool)
    res["cohort"] = {**_counts({"treated": int(tr.sum()), "comparison": int((~tr).sum())}, thr), "events": {}}
    for name in ev.outcomes:
        col = f"{name}_status"
        if col in cd:
            s = cd[col]
            res["cohort"]["events"][name] = {
                "treated": _event_counts(int(s[tr].notna().sum()), int((s[tr] == 1).sum()), thr),
                "comparison": _event_counts(int(s[~tr].notna().sum()), int((s[~tr] == 1).sum()), thr),
            }
    res["matching"] = {
        **_counts({"treated_matched": counts.get("treated_matched"), "comparison_matched": counts.get("comparison_matched"), "treated_unmatched": counts.get("treated_unmatched")}, thr),
        "max_abs_smd_before": _jsonable(bal.max_abs_smd_before),
        "max_abs_smd_after": _jsonable(bal.max_abs_smd_after),
        "balance_passed": bool(bal.passed),
        "method": ms.method,
    }
    res["outcomes"] = {}
    mt = data["treated"].astype(bool)
    for name, r in est.items():
        s = data.get(f"{name}_status")
        if s is None:
            continue
        entry: dict[str, Any] = {}
        for arm, mask in (("treated", mt), ("comparison", ~mt)):
            entry[arm] = _event_counts(int(s[mask].notna().sum()), int((s[mask] == 1).sum()), thr)
            entry[arm]["rates"] = {}
        for row in rows:
            if row.outcome == name:
                entry["treated"]["rates"][f"{row.window_months}m"] = _jsonable(row.rate_treated)
                entry["comparison"]["rates"][f"{row.window_months}m"] = _jsonable(row.rate_comparison)
        suppressed_windows = {row.window_months for row in rows if row.outcome == name and row.suppressed}
        effects = [e for e in r.to_records() if e["window_months"] not in suppressed_windows or e["window_months"] is None]
        if entry["treated"].get("suppressed") or entry["comparison"].get("suppressed"):
            effects = [e for e in effects if e["window_months"] is not None]
        entry["effects"] = _jsonable(effects)
        res["outcomes"][name] = entry

    # sensitivity
    from ..estimate import evalue

    sens = []
    for name, r in est.items():
        for e in r.effects:
            if e.measure in ("risk_ratio", "odds_ratio", "hazard_ratio", "subdistribution_hazard_ratio") and np.isfinite(e.estimate) and e.estimate > 0:
                if e.window_months in {row.window_months for row in rows if row.outcome == name and row.suppressed}:
                    continue
                ev_ = evalue(e.estimate, e.ci_low, e.ci_high, measure=e.measure)
                sens.append({"outcome": name, "measure": e.measure, "window_months": e.window_months, "estimate": e.estimate,
                             "e_value": getattr(ev_, "point", None), "e_value_ci": getattr(ev_, "ci", None)})
    res["sensitivity"] = {"e_values": _jsonable(sens)}
    if headline and "match_id" in data:
        rb = _rosenbaum(data, oc.window_column(headline[0].outcome, headline[0].window_months), thr)
        if rb:
            res["sensitivity"]["rosenbaum"] = rb
    sub = pd.DataFrame()
    if headline:
        try:
            sub = _subgroup_table(ev, data, oc.window_column(headline[0].outcome, headline[0].window_months), thr)
        except Exception as exc:  # subgroups are secondary: record why they are missing
            ev.notes.append(f"subgroups not estimated: {exc}")
    res["subgroups"] = _jsonable(sub.drop(columns=["method"], errors="ignore").to_dict(orient="records")) if not sub.empty else []
    res["notes"] = list(ev.notes)
    return {
        "results": res, "rows": rows, "headline": headline, "phrases": phrases, "flow": flow, "table1": t1,
        "balance": bal, "matched": ms, "subgroups": sub, "sensitivity": sens, "methods": _methods(ev, ms, bal), "threshold": thr,
    }


def _tables(content: dict[str, Any]) -> dict[str, pd.DataFrame]:
    rows = content["rows"]
    outcomes = pd.DataFrame(
        [
            {
                "outcome": r.outcome, "window_months": r.window_months, "label": r.label,
                "n_treated": r.n_treated, "events_treated": r.events_treated, "rate_treated": r.rate_treated,
                "n_comparison": r.n_comparison, "events_comparison": r.events_comparison, "rate_comparison": r.rate_comparison,
                **{f"{m}_{k}": (r.effects.get(m) or {}).get(k) for m in ("risk_difference", "risk_ratio", "odds_ratio") for k in ("estimate", "ci_low", "ci_high", "p_value")},
            }
            for r in rows
        ]
    )
    bal = content["balance"].table.copy()
    keep = [c for c in ("covariate", "type", "smd_before", "smd_after", "variance_ratio_before", "variance_ratio_after", "ecdf_max_before", "ecdf_max_after") if c in bal]
    tables = {
        "sample_flow": content["flow"],
        "table1": content["table1"],
        "balance": bal[keep],
        "outcomes": outcomes,
    }
    eff = []
    for name, entry in content["results"]["outcomes"].items():
        for e in entry["effects"]:
            eff.append({"outcome": name, **e})
    tables["effects"] = pd.DataFrame(eff)
    if not content["subgroups"].empty:
        tables["subgroups"] = content["subgroups"].drop(columns=["method"], errors="ignore")
    if content["sensitivity"]:
        tables["e_values"] = pd.DataFrame(content["sensitivity"])
    return tables


def _write_csv(df: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(df.to_csv(index=False, float_format="%.6g", lineterminator="\n"), encoding="utf-8")


def _charts(ev, content: dict[str, Any], folder: Path | None) -> list[dict[str, str]]:
    """Render every chart; returns [{name, title, caption, uri}]."""
    out = []
    thr = content["threshold"]
    for row in content["rows"]:
        ax = charts.rate_chart(row, content["phrases"])
        name = f"rate_{oc.window_column(row.outcome, row.window_months)}"
        out.append({"name": name, "title": row.label, "caption": rate_caption(row, content["phrases"]) + ".", "uri": charts.save(ax, folder, name)})
    for name, res in ev.estimates.items():
        if name not in dict(HEADLINE[ev.cohort.design]):
            continue
        ax = charts.curve_chart(res, name, thr, horizon=730)
        if ax is None:
            continue
        kind = "Cumulative incidence" if res.cif is not None else "Kaplan–Meier estimate"
        cap = f"{kind} of {LABELS[name][1].lower()} by arm over two years after the index date, with other exits as competing events; counts at risk below {thr} are suppressed."
        out.append({"name": f"curve_{name}", "title": f"{LABELS[name][1]} over time", "caption": cap, "uri": charts.save(ax, folder, f"curve_{name}")})
    bal = content["balance"]
    ax = bal.love_plot()
    out.append({"name": "love_plot", "title": "Covariate balance before and after matching",
                "caption": f"Largest absolute standardized mean difference: {bal.max_abs_smd_before:.2f} before matching, {bal.max_abs_smd_after:.2f} after (threshold 0.1).",
                "uri": charts.save(ax, folder, "love_plot")})
    from ..plots import overlap_plot

    ax = overlap_plot(content["matched"])
    out.append({"name": "propensity_overlap", "title": "Overlap of propensity scores", "caption": "Distribution of the logit of the propensity score by arm; matching uses units in the region of overlap.", "uri": charts.save(ax, folder, "propensity_overlap")})
    flow = content["flow"]
    ax = charts.flow_chart(flow)
    out.append({"name": "sample_flow", "title": "Sample flow", "caption": "From the extract to the analysis cohort, with counts of served and comparison units at each step.", "uri": charts.save(ax, folder, "sample_flow")})
    sub = content["subgroups"]
    if not sub.empty:
        h = content["headline"][0]
        ax = charts.forest_chart(sub, f"{LABELS[h.outcome][1]} within {h.window_months} months, by subgroup")
        out.append({"name": "subgroups", "title": "Effects by subgroup", "caption": "Difference between served and matched comparison units in each subgroup (percentage points, 95% CI); suppressed subgroups are too small to publish.", "uri": charts.save(ax, folder, "subgroups")})
    return out


def _env() -> Environment:
    env = Environment(loader=PackageLoader("ppeval", "report/templates"), autoescape=select_autoescape(["html", "j2"]))
    env.filters["pct"] = pct
    env.filters["count"] = lambda n, thr: SUPPRESSED_TEXT if n is None else format_count(int(n), thr)
    env.filters["effect"] = fmt_effect
    env.filters["pval"] = fmt_p
    return env


def _html_table(df: pd.DataFrame) -> str:
    shown = df.astype(object).where(df.notna(), SUPPRESSED_TEXT)
    return '<div class="scroll">' + shown.to_html(index=False, float_format=lambda v: f"{v:.3g}", classes="data", border=0) + "</div>"


def render(ev, content: dict[str, Any], chart_list: list[dict[str, str]]) -> tuple[str, str]:
    env = _env()
    ctx = {
        "title": ev.config["title"], "program": ev.config["report"]["program_name"], "design": ev.cohort.design, "unit": ev.cohort.unit,
        "findings": [finding_sentence(r, content["phrases"]) for r in content["headline"]],
        "rows": content["rows"], "charts": {c["name"]: c for c in chart_list}, "chart_list": chart_list,
        "flow_html": _html_table(content["flow"]), "table1_html": _html_table(content["table1"]),
        "balance": content["balance"], "methods": content["methods"], "results": content["results"],
        "threshold": content["threshold"], "version": __version__, "notes": ev.notes,
        "config_text": json.dumps(content["results"]["config"], indent=2, sort_keys=True),
        "sensitivity": content["sensitivity"], "rosenbaum": content["results"]["sensitivity"].get("rosenbaum"),
        "headline": content["headline"], "label": LABELS,
    }
    return env.get_template("report.html.j2").render(**ctx), env.get_template("factsheet.html.j2").render(**ctx)


def write_report(ev, out: Path, pdf: bool = False, charts_only: bool = False) -> Path:
    """Write the full report (or the chart pack alone) into ``out``, atomically."""
    content = build(ev)
    guard = IdentifierGuard.from_extract(ev.extract)
    with atomic_output_dir(out) as tmp:
        tmp = Path(tmp)
        chart_list = _charts(ev, content, tmp / "charts")
        if not charts_only:
            for name, df in _tables(content).items():
                _write_csv(df, tmp / "tables" / f"{name}.csv")
            (tmp / "results.json").write_text(json.dumps(_jsonable(content["results"]), indent=2, sort_keys=True) + "\n", encoding="utf-8")
            report_html, fact_html = render(ev, content, chart_list)
            (tmp / "report.html").write_text(report_html, encoding="utf-8")
            (tmp / "factsheet.html").write_text(fact_html, encoding="utf-8")
            if pdf:
                _write_pdfs(tmp)
        captions = "\n".join(f"{c['name']}: {c['caption']}" for c in chart_list)
        (tmp / "charts" / "captions.txt").write_text(captions + "\n", encoding="utf-8")
        findings = guard.scan_dir(tmp)
        if findings:
            from ..privacy import _raise

            _raise(findings)
    return out


def _write_pdfs(folder: Path) -> None:
    try:
        from weasyprint import HTML
    except ImportError:
        from ..errors import ConfigError

        raise ConfigError("--pdf needs the optional extra: pip install 'ppeval[pdf]' (weasyprint)") from None
    for name in ("report", "factsheet"):
        HTML(filename=str(folder / f"{name}.html")).write_pdf(str(folder / f"{name}.pdf"))
