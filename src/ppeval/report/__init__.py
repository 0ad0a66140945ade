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

import html
import json
import math
import warnings
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from .. import __version__
from .. import outcomes as oc
from ..estimate.sensitivity import EVALUE_RULE
from ..load.ids import check_rules
from ..privacy import (
    SUPPRESSED_TEXT,
    UNSUPPRESSED_NOTE,
    IdentifierGuard,
    atomic_output_dir,
    format_count,
    suppress_counts,
    suppress_value,
    suppression_sentence,
)
from . import charts
from .content import (
    LABELS,
    Phrases,
    balance_text,
    choose_headline,
    days_rows,
    flow_table,
    fmt_days,
    fmt_days_diff,
    fmt_effect,
    fmt_p,
    linkage_table,
    outcome_rows,
    pct,
    pretty_variable,
    served_text,
    table_one,
)
from .publish import (
    publish_rosenbaum,
    publish_table_one,
    published_balance,
    published_labels,
    small_count_covariates,
)
from .wording import (
    comparison_group,
    days_caption,
    finding_sentence,
    hr_window_sentence,
    matched_with,
    rate_caption,
    rosenbaum_sentence,
    subgroup_warning_note,
)

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


AGE_BREAKS = [-0.01, 0.999, 5.999, 11.999, 200]
AGE_BAND_LABELS = ["under 1", "1 to 5", "6 to 11", "12 to 17"]


def age_column(df: pd.DataFrame) -> str | None:
    """The unit's age covariate (``age_at_*`` or ``youngest_age_at_*``), not its bounds."""
    return next((c for c in df.columns if (c.startswith("age_at_") or c.startswith("youngest_age_at_"))
                 and not c.endswith(("_low", "_high"))), None)


def age_bands(df: pd.DataFrame, age_col: str) -> pd.Series:
    """Age subgroup of each unit; missing where an age interval spans two bands.

    A unit whose birth is known only as an interval (an age at a report) has its age's
    bounds in ``<age_col>_low``/``_high``: it is placed in a band only when both bounds are
    in it (the subgroup is decided on the whole interval), and left out of the age
    subgroups otherwise.

    Examples
    --------
    >>> d = pd.DataFrame({"age_at_report": [0.5, 5.5, 7.0], "age_at_report_low": [0.5, 5.2, 7.0],
    ...                   "age_at_report_high": [0.5, 6.2, 7.0]})
    >>> age_bands(d, "age_at_report").tolist()
    ['under 1', <NA>, '6 to 11']
    """
    band = pd.cut(df[age_col], AGE_BREAKS, labels=AGE_BAND_LABELS).astype("string")
    lo, hi = f"{age_col}_low", f"{age_col}_high"
    if lo in df and hi in df:
        a = pd.cut(df[lo], AGE_BREAKS, labels=AGE_BAND_LABELS).astype("string")
        b = pd.cut(df[hi], AGE_BREAKS, labels=AGE_BAND_LABELS).astype("string")
        same = (a == b).fillna(True).to_numpy(bool) | df[lo].isna().to_numpy()
        band = band.where(same)
    return band


def _subgroup_table(ev, matched: pd.DataFrame, binary: str, threshold: int) -> pd.DataFrame:
    """Risk differences of ``binary`` by subgroup, suppressed where a cell is small.

    ``matched``: the matched rows, their ``weight`` times their censoring weights for
    ``binary`` (:func:`ppeval.estimate.with_censoring_weights`) as the main estimate uses them.
    """
    from types import SimpleNamespace

    from ..estimate import subgroup_effects
    from ..estimate._data import resolve

    df = matched.copy()
    age_col = age_column(df)
    if age_col:
        df["age_band"] = age_bands(df, age_col)
    if "parent_role" in df:
        # the comparison units of a matched set belong to the enrolled parent's subgroup
        role = df.loc[df["treated"].astype(bool)].groupby("match_id")["parent_role"].first()
        df["parent_role"] = df["match_id"].map(role)
    frames = []
    wanted = list(ev.config["subgroups"]) or list(SUBGROUPS)
    # resolved as a matched sample, so SEs are clustered like the main effects (by matched
    # set; by matched unit after matching with replacement)
    design = resolve(SimpleNamespace(data=df, settings=getattr(ev.matched, "settings", {})))
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
        hide = sup.drop(index="__total__").isna().any(axis=1)
        small.loc[grp.index] = _hide_small_remainders(t.drop(index="__total__"), hide, cols, threshold).to_numpy()
    out["suppressed"] = small
    for c in ("estimate", "se", "ci_low", "ci_high", "p_value", "n_treated", "n_comparison", "events_treated", "events_comparison"):
        out[c] = out[c].astype(float).where(~small)
    no_se = ~small & out["estimate"].notna() & out["se"].isna()
    for by, grp in out[no_se].groupby("subgroup", sort=False):
        ev.notes.append(subgroup_warning_note(pretty_variable(str(by)).lower(), [str(v) for v in grp["level"]]))
    return out


def _hide_small_remainders(counts: pd.DataFrame, hidden: pd.Series, cols: list[str], threshold: int) -> pd.Series:
    """Hide more levels until the hidden levels of a variable add up to 0 or at least ``threshold``.

    The levels of one subgroup variable add up to the analysed sample, whose counts are
    published: the total minus the published levels is the sum of the hidden ones. Hiding
    two levels of 6 and 2 leaves their sum, 8, a subtraction away, so while some column's
    hidden sum is from 1 to ``threshold - 1`` the published level with the smallest count in
    that column is hidden as well (whole rows: a level is published or not).

    Examples
    --------
    >>> c = pd.DataFrame({"n": [6, 2, 40, 30]})
    >>> _hide_small_remainders(c, pd.Series([True, True, False, False]), ["n"], 11).tolist()
    [True, True, False, True]
    """
    hidden = hidden.copy()
    while hidden.any() and not hidden.all():
        sums = counts.loc[hidden, cols].sum()
        bad = [c for c in cols if 1 <= int(sums[c]) < threshold]
        if not bad:
            break
        # the published level that adds least to the offending column
        shown = counts.loc[~hidden, bad[0]]
        hidden.loc[shown.idxmin()] = True
    return hidden


def _rosenbaum(est, outcome: str, binary: str, threshold: int) -> dict[str, Any] | None:
    """The Rosenbaum bounds :func:`ppeval.estimate` computed for ``binary`` (matched sets as
    formed), published with the counts they rest on; withheld whole when one is small."""
    res = est.get(outcome)
    rb = None if res is None else res.tests.get(f"rosenbaum[{binary}]")
    if rb is None or rb.n_sets == 0:
        return None
    counts = {"sets": rb.n_sets, "n_treated": rb.n_treated, "n_comparison": rb.n_comparison,
              "events_treated": rb.events_treated, "events_comparison": rb.events_comparison}
    return publish_rosenbaum({
        "outcome": binary,
        "design": "1:1 pairs" if rb.n10 is not None else "matched sets",
        "informative_sets": _counts(counts, threshold),
        "direction": rb.direction,
        "p_value_no_hidden_bias": _jsonable(rb.p_value),
        "alpha_one_sided": rb.alpha,
        "gamma_critical": _jsonable(rb.gamma_critical),
        "table": _jsonable(rb.table.to_dict(orient="records")),
    }, tuple(counts.values()), threshold)


def _propensity_fit_text(ps) -> str:
    """The methods' sentences on covariates left out as constant and on a Firth fit (or "")."""
    out = ""
    if ps.left_out_:
        out += (" Left out as constant in this cohort: "
                + "; ".join(f"{pretty_variable(c).lower()} ({why})" for c, why in ps.left_out_.items()) + ".")
    if ps.separation_:
        out += (f" The propensity model was fitted with Firth's penalised likelihood because {ps.separation_}: "
                "ordinary maximum likelihood has no finite estimate when a covariate separates the arms, and Firth's "
                "Jeffreys-prior penalty (Firth 1993; as R brglm2 and logistf) keeps every coefficient finite.")
    return out


def _methods(ev, matched_sample, bal) -> list[str]:
    """The methods section, one paragraph per topic, generated from the config and the fits."""
    c, p = ev.config["cohort"], ev.config["propensity"]
    design = (
        "an in-care design: children entering out-of-home care (first removal in the window per child), "
        f"excluding stays under {c['min_stay_days']} days and removals at age {c['max_age_at_removal']:g} or older"
        if c["design"] == "in_care"
        else f"a prevention design: children with an index maltreatment report who were not in care on the report date; "
             f"treated = enrolled within {c['enrollment_window_days']} days of the report"
    )
    unit = "the child" if c["unit"] == "child" else f"the family (an outcome is reached when {c['family_outcome']} of its children reach it)"
    window = f"{c['entry_from'] or 'the start of the data'} to {c['entry_to'] or 'the extract date'}"
    model = {"logistic": "logistic regression", "gbm": "gradient-boosted trees"}.get(p["model"], p["model"])
    outcomes = "; ".join(f"{LABELS[k][1].lower()} ({', '.join(f'{m} months' for m in v) or 'whole follow-up'})" for k, v in ev.outcomes.items() if k in LABELS)
    replaced = bool(getattr(matched_sample, "settings", {}).get("replace"))
    paras = [
        f"Design: {design}, entries from {window}; the unit of analysis is {unit}. "
        "Treated units started at enrolment; each comparison unit started at the same number of days after its own removal (or report) "
        "as its matched treated unit and had to be still in care (or still at home) and not yet enrolled at that point, so neither arm has immortal time."
        + (" A served unit standing in as a comparison before its enrolment was followed only until that enrolment (its later course is "
           "a served one): its times to event were censored on that day. Fixed-window rates, days in care and the Cox hazard ratios weight the comparison "
           "units still followed by the inverse probability of not yet having enrolled (a Cox model of time to enrolment on the propensity "
           "score); the survival and cumulative-incidence curves and the Fine–Gray model do not."
           if c.get("censor_at_enrolment", True) else
           " Served units standing in as comparisons before their enrolment kept their outcomes after it, so the effects compare enrolling "
           "now with enrolling later (censor_at_enrolment = false)."),
        f"Propensity score: {model} of enrolment on {', '.join(pretty_variable(x).lower() for x in ev.covariates)} "
        "(categorical covariates as indicator columns, missing values with indicators; common support: "
        f"{p['common_support']})." + _propensity_fit_text(ev.propensity_score),
        f"Matching: {matched_sample.method}." + (" Siblings were matched together as one family block." if c["unit"] == "child" else ""),
        _balance_method(bal),
        f"Outcomes: {outcomes}.",
        "Effects: risks by arm with risk difference, risk ratio and odds ratio (regression with matching weights); Cox proportional hazards with Efron ties; "
        "Aalen–Johansen cumulative incidence and Fine–Gray subdistribution hazard ratios where other exits compete. "
        + ("Matching was with replacement, so a comparison unit can stand in several matched sets; it enters the analysis once, its weight "
           "counting every set it serves, and standard errors are cluster-robust by matched unit (family when siblings were matched together) "
           "rather than by matched set, as MatchIt recommends for its match.data() output (robust standard errors, Hill and Reiter 2006), "
           if replaced else
           "Standard errors are cluster-robust by matched set (sets sharing a family joined), ")
        + "with the small-sample factor of R's sandwich::vcovCL (HC1) for regression models and as R's coxph(cluster=) for Cox models.",
        "Fixed-window rates (e.g. within 12 months) count only units whose whole window lies before the extract date. Outcomes are censored at the extract date and at the 18th birthday; "
        "other exits are competing events, not censoring.",
        f"Sensitivity: {EVALUE_RULE}. "
        + ("Rosenbaum bounds need matched sets that do not overlap, so none are given after matching with replacement."
           if replaced else
           "Rosenbaum bounds for the lead outcome (Rosenbaum 2002, §4.4): the exact one-sided test of the served "
           "units' events within the matched sets as formed (McNemar's test in 1:1 pairs, the exact Mantel–Haenszel-type test in larger sets), "
           "on every unit whose window outcome was observed, and how far hidden bias (a factor Γ on the odds of enrolment within a set) could "
           "move its p-value; it ignores the matching and censoring weights of the headline estimate."),
        _privacy_sentence(ev.config["report"]["suppress_below"]),
        *([f"Validation: {UNVALIDATED_DESIGN_NOTE}"] if c["design"] == "prevention" else []),
    ]
    thr = ev.config["report"]["suppress_below"]
    paras.append(f"Curves: an exact curve rises at every single event, so the published curves are drawn in steps of at least {thr} events: "
                 f"each step is the estimate (unchanged, not re-estimated) at the end of a month, pooling at least {thr} events of its arm since the step "
                 "before and none a few events away from a window's published count; a curve stops where fewer than "
                 f"{thr} further events followed, and an arm with fewer than {thr} events in all is not drawn.")
    if "time_in_care" in ev.outcomes:
        paras.insert(5, "Days in care: the days each unit spent in out-of-home care within the window after the index date (units whose whole window was observed); "
                        "means are weighted by the matching weights and the difference has a cluster-robust standard error (weighted least squares).")
    weights = _censoring_weight_text(ev)
    if weights:
        paras[0] += " " + weights
    ages = _age_interval_text(ev, thr)
    if ages:
        paras.insert(1, ages)
    rules = ev.config["data"].get("id_normalise") or []
    if rules:
        paras[0] += (" Identifiers were compared across the files with " + " and ".join(ID_RULE_WORDS[r] for r in check_rules(rules))
                     + " (the config's data.id_normalise), so that the files link.")
    return paras


def _age_results(flow, threshold: int) -> dict[str, Any]:
    """``age_intervals`` and ``outside_analysis`` for results.json (only when there are any)."""
    out: dict[str, Any] = {}
    ages = flow.age_intervals()
    if ages:
        out["age_intervals"] = _counts({k: ages.get(k, 0) for k in ("units", "straddling", "followed_to_earliest_18th_birthday")},
                                       threshold)
    outside = getattr(flow, "outside_rows", 0)
    if outside:
        out["outside_analysis"] = _counts({"rows_with_problems": outside}, threshold)
    return out


def _count_words(n: int, threshold: int) -> str:
    """A count for the text: the number, or "fewer than <threshold>" for a small one."""
    return f"fewer than {threshold}" if 1 <= n < threshold else f"{n:,}"


def _age_interval_text(ev, threshold: int) -> str:
    """How units known only by an age (no birth date) were handled, and rows outside the analysis.

    Counts from 1 to ``threshold - 1`` are said as "fewer than ``threshold``".
    """
    flow = ev.cohort.flow
    ages = flow.age_intervals()
    outside = getattr(flow, "outside_rows", 0)
    parts = []
    n = ages.get("units", 0)
    if n:
        when = "removal" if ev.config["cohort"]["design"] == "in_care" else "report"
        limit = f"{ev.config['cohort']['max_age_at_removal']:g}"
        text = (f"Age: {_count_words(n, threshold)} units had no birth date, only an age at a maltreatment report "
                "(NCANDS ChAge), which places the birth in an interval of about one year (intersected over the "
                f"child's reports; a birth date, e.g. the AFCARS DOB, wins where there is one). Their age at {when} "
                f"is taken at the interval's midpoint. The rule 'under {limit} at {when}' was applied only where the "
                "whole interval lay on one side of the limit")
        straddle = ages.get("straddling", 0)
        text += (f"; {_count_words(straddle, threshold)} units whose interval straddled the {limit}th birthday were "
                 "left out, as possibly too old" if straddle else "; no interval straddled the limit")
        follow = ages.get("followed_to_earliest_18th_birthday", 0)
        text += (f". {_count_words(follow, threshold).capitalize()} units were followed only until their earliest possible "
                 "18th birthday (outcomes after it are not counted)" if follow else "")
        text += ". An age subgroup takes a unit only when its whole interval lies in the band."
        parts.append(text)
    if outside:
        parts.append(f"Validation: {_count_words(outside, threshold)} rows of the extract had a problem (e.g. a child "
                     "known only from reports with neither a birth date nor an age) but are never used by this "
                     "design, so they were reported as warnings and did not stop the run.")
    return " ".join(parts)


#: what every page of a prevention-design report says: the design does not yet recover its
#: simulated truth, so it runs only when [cohort] allow_unvalidated_design = true
UNVALIDATED_DESIGN_NOTE = (
    "NOT VALIDATED: the prevention design does not yet recover the effects it is tested on (on simulated "
    "extracts its 12-month removal difference was biased by +0.047 and its 95% intervals covered the truth "
    "85% of the time); this report was made with allow_unvalidated_design = true for internal checking: "
    "do not publish its numbers."
)


def _curve_horizon(res, threshold: int) -> float:
    """Days the report's curves cover: the last month end at which every arm still has at least
    ``threshold`` units at risk (unweighted), and for a Kaplan–Meier curve a tenth of its
    starting number too.

    A fixed two years hid effects that build up later (the hazard ratio uses the whole
    follow-up); past the point where a handful are left a curve says nothing.
    """
    fit = res.cif if res.cif is not None else res.km
    ends = []
    for _, tab in fit.table_.groupby("group", sort=True):
        at_risk = tab["n_risk_unweighted"] if "n_risk_unweighted" in tab else tab["n_risk"]
        # a cumulative incidence loses units at risk to the competing exit, which it has
        # counted (it is still estimated there); only censoring makes it uncertain
        need = threshold if res.cif is not None else max(threshold, 0.1 * float(at_risk.iloc[0]))
        ok = tab.loc[at_risk.to_numpy() >= need, "time"]
        ends.append(float(ok.max()) if len(ok) else 0.0)
    end = min(ends) if ends else 0.0
    months = int(end * 12 // 365)
    while months > 1 and months * 365 // 12 > end:
        months -= 1
    return float(max(months, 1) * 365 // 12)


def _months_text(days: float) -> str:
    """``"30 months"`` for the day count of a month end (``m * 365 // 12``)."""
    m = round(days * 12 / 365)
    return f"{m} month" + ("" if m == 1 else "s")


#: how each ``[data] id_normalise`` rule is described in the methods
ID_RULE_WORDS = {"whitespace": "surrounding spaces removed", "case": "letter case ignored", "leading_zeros": "leading zeros ignored"}


def _privacy_sentence(threshold: int) -> str:
    """The methods' privacy paragraph (plain about it when nothing is suppressed)."""
    if threshold < 2:
        return f"Privacy: {UNSUPPRESSED_NOTE} No identifier or birth date appears in any output."
    return (f"Privacy: {suppression_sentence(threshold).lower()}, with complementary suppression; "
            "no identifier or birth date appears in any output.")


#: a comparison unit weighted more than this stands for many that enrolled: say so
LARGE_CENSORING_WEIGHT = 10.0


def _censoring_weight_text(ev) -> str:
    """The size of the censoring weights of the fixed-window rates, and a caution when some
    are large (comparison units of a kind that nearly always enrols: little to go on)."""
    stats = [v for r in ev.estimates.values() for k, v in r.tests.items()
             if k.startswith("ipcw[") and isinstance(v, dict) and v.get("comparison_rows")]
    if not stats:
        return ""
    mean = float(np.average([v["mean_weight"] for v in stats], weights=[v["comparison_rows"] for v in stats]))
    largest = max(v["max_weight"] for v in stats)
    text = f"These weights averaged {mean:.2f} in the fixed-window rates; the largest was {largest:.1f}."
    if largest > LARGE_CENSORING_WEIGHT:
        text += (" Weights above 10 mean that some kinds of comparison unit were rarely still followed (they nearly "
                 "always enrolled), so the weighted comparison rests on few units: read those rates with caution.")
    return text


def _arm_masks(data: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """(served, comparison) masks of cohort rows; a served unit's before-enrolment
    comparison row (``served_later``) is not a comparison unit of its own."""
    tr = data["treated"].astype(bool)
    own = ~data["served_later"].astype(bool) if "served_later" in data else pd.Series(True, index=data.index)
    return tr, ~tr & own


def build(ev) -> dict[str, Any]:
    """Compute everything the writers need (aggregates only, small cells suppressed).

    Returns a dict with ``results`` (the results.json content), the outcome ``rows``,
    ``days`` (days in care), the ``headline`` rows, the suppressed ``flow`` and ``table1``,
    ``subgroups``, ``sensitivity``, ``methods`` and the objects the charts draw from.

    Examples
    --------
    >>> content = build(ppeval.Evaluation.from_toml("eval.toml"))   # doctest: +SKIP
    >>> content["results"]["matching"]["treated_matched"]          # doctest: +SKIP
    179
    """
    thr = ev.config["report"]["suppress_below"]
    program = ev.config["report"]["program_name"]
    cohort = ev.cohort
    ms = ev.matched
    bal = ev.balance
    est = ev.estimates
    data = ms.data
    phrases = Phrases.for_unit(cohort.unit, program)
    rows = outcome_rows(data, est, ev.outcomes, thr)
    days = days_rows(ev.days_in_care, thr)
    not_estimable = {name for name, r in est.items() if not r.estimable}
    headline = choose_headline(rows, cohort.design, not_estimable=not_estimable)
    counts = ms.counts
    flow = flow_table(cohort.flow.to_frame(), thr, matched=(counts["treated_matched"], counts["comparison_matched"]))
    linkage = linkage_table(cohort.flow.linkage, thr)
    cd = cohort.data
    tr, cmp_ = _arm_masks(cd)
    cohort_n = {"treated": int(tr.sum()), "comparison": int(cmp_.sum())}
    matched_n = {"treated": counts.get("treated_matched"), "comparison": counts.get("comparison_matched")}
    # the cohort count minus the matched count is the number left unmatched: when that is a
    # small number, the cohort count is not published (the matched count is the one the
    # effects rest on)
    hide_cohort = {arm: matched_n[arm] is not None and 1 <= cohort_n[arm] - int(matched_n[arm]) < thr for arm in cohort_n}
    # every binary statistic that would give back a suppressed count is withheld here, once,
    # so the CSVs, results.json, Table 1, the love plot and the HTML all publish the same values
    mt_ = data["treated"].astype(bool)
    # the units each proportion is a share of: before matching the comparison arm of the
    # balance statistics also holds the served units' rows from before their enrolment
    n_bal = getattr(ev.balance, "n", None) or {}
    sizes = {"before_t": int(n_bal.get("treated_before", cohort_n["treated"])), "before_c": int(n_bal.get("control_before", cohort_n["comparison"])),
             "after_t": int(mt_.sum()), "after_c": int((~mt_).sum())}
    ps_ = ms.ps
    counts_hidden = small_count_covariates(ps_.data, data, list(ps_.covariates), ps_.treatment, thr) if thr >= 2 else []
    bal = published_balance(ev.balance, sizes, thr, {"before_t": hide_cohort["treated"], "before_c": hide_cohort["comparison"]},
                            also_hidden=counts_hidden)
    t1 = publish_table_one(table_one(bal.table, cd.loc[tr | cmp_], data, thr, hide_before={"treated": hide_cohort["treated"], "comparison": hide_cohort["comparison"]}),
                           bal.hidden_covariates, SUPPRESSED_TEXT)

    # results.json
    defaults = list(getattr(ev.config, "defaults_applied", [])) + list(ev.defaults_applied)
    res: dict[str, Any] = {
        "ppeval_version": __version__,
        "title": ev.config["title"],
        "seed": ev.config["seed"],
        "config": _jsonable(getattr(ev.config, "raw", dict(ev.config))),
        "defaults_applied": defaults,
        "inputs": [{"path": f["path"], "sha256": f["sha256"], "table": f["table"], "rows": suppress_value(f["rows"], thr)} for f in ev.extract.provenance()],
        "flow": [{"step": r["step"], **_counts({"treated": None if pd.isna(r["treated"]) else int(r["treated"]), "comparison": None if pd.isna(r["comparison"]) else int(r["comparison"])}, thr)} for _, r in flow.iterrows()],
        "linkage": [{"step": r["step"], **_counts({"families": r["families"]}, thr), "share_percent": r["share"]} for _, r in linkage.iterrows()],
        **_age_results(cohort.flow, thr),
        "summary": ([UNVALIDATED_DESIGN_NOTE] if cohort.design == "prevention" else []) + _summary(headline, est, phrases),
    }
    if cohort.design == "prevention":  # only with [cohort] allow_unvalidated_design = true
        res["design_validated"] = False
        res["caution"] = UNVALIDATED_DESIGN_NOTE
    if thr < 2:  # only then, so suppressed reports keep their bytes
        res["privacy"] = {"suppressed": False, "note": UNSUPPRESSED_NOTE}
    shown_n = {arm: None if hide_cohort[arm] else n for arm, n in cohort_n.items()}
    res["cohort"] = {**_counts(shown_n, thr), "events": {}}
    for name in ev.outcomes:
        col = f"{name}_status"
        if col in cd:
            s = cd[col]
            res["cohort"]["events"][name] = {}
            for arm, mask in (("treated", tr), ("comparison", cmp_)):
                n_arm, e_arm = int(s[mask].notna().sum()), int((s[mask] == 1).sum())
                entry = _event_counts(n_arm, e_arm, thr)
                if hide_cohort[arm] and n_arm == cohort_n[arm] and entry.get("n") is not None:
                    entry["n"] = None  # the cohort count itself, hidden above
                    entry["suppressed"] = True
                res["cohort"]["events"][name][arm] = entry
    res["matching"] = {
        **_counts({"treated_matched": counts.get("treated_matched"), "comparison_matched": counts.get("comparison_matched"), "treated_unmatched": counts.get("treated_unmatched")}, thr),
        "max_abs_smd_before": _jsonable(bal.max_abs_smd_before),
        "max_abs_smd_after": _jsonable(bal.max_abs_smd_after),
        "balance_passed": bool(bal.passed),
        # what max_abs_smd_* are, for binary covariates (the verdict is drawn on them)
        "smd_binary_covariates": ("difference in proportions / sqrt(p(1 - p)) of the treated group before matching "
                                  "(R MatchIt summary())" if getattr(bal, "binary", "std") == "std"
                                  else "difference in proportions (not standardized)"),
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
        for e in effects:
            if e.get("reason"):
                e["reason"] = served_text(e["reason"])
        entry["effects"] = _jsonable(effects)
        # an outcome whose model could not be fitted is published as such, with why
        entry["estimable"] = bool(r.estimable)
        if not r.estimable:
            entry["reason"] = served_text(r.reason)
        if name == "time_in_care":
            entry["event"] = "left out-of-home care (any discharge)"
            entry["days_in_care"] = _jsonable([{k: v for k, v in d.items() if k != "label"} for d in days])
        res["outcomes"][name] = entry

    # sensitivity: read from the estimation stage, never recomputed here
    from ..estimate import with_censoring_weights

    sens = []
    for name, r in est.items():
        if name == "time_in_care":
            continue  # the hazard of leaving care is descriptive here, not a program effect to defend
        hidden = {row.window_months for row in rows if row.outcome == name and row.suppressed}
        table = getattr(r, "sensitivity", None)
        if table is None or table.empty:
            continue
        for e in table.to_dict(orient="records"):
            w = None if e["window_months"] is None or pd.isna(e["window_months"]) else int(e["window_months"])
            if w in hidden:
                continue
            sens.append({"outcome": name, "measure": e["measure"], "window_months": w, "estimate": e["estimate"],
                         "ci_low": e["ci_low"], "ci_high": e["ci_high"], "e_value": e["evalue"], "e_value_ci": e["evalue_ci"],
                         "rare_outcome": bool(e["rare_outcome"]), "rule": e["rule"]})
    res["sensitivity"] = {"e_values": _jsonable(sens)}
    if headline and not headline[0].suppressed:
        h = headline[0]
        rb = _rosenbaum(est, h.outcome, oc.window_column(h.outcome, h.window_months), thr)
        if rb:
            res["sensitivity"]["rosenbaum"] = rb
    sub = pd.DataFrame()
    if headline and not headline[0].suppressed:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                col = oc.window_column(headline[0].outcome, headline[0].window_months)
                sub = _subgroup_table(ev, with_censoring_weights(ms, col), col, thr)
            except Exception as exc:  # subgroups are secondary: record why they are missing
                ev.notes.append(f"subgroups not estimated: {exc}")
        # a library call stays quiet, and a published page shows no raw Python warning: a
        # numerical warning left over becomes one plain note (the analyst's log keeps the text)
        if caught:
            for msg in dict.fromkeys(f"{w.category.__name__}: {w.message}" for w in caught):
                ev._say(f"subgroups: {msg}")
            ev.notes.append("subgroups: some subgroup estimates met a numerical problem in fitting (too few units or events "
                            "in a level) and may be unreliable; read the subgroup chart with care")
    res["subgroups"] = _jsonable(sub.drop(columns=["method"], errors="ignore").to_dict(orient="records")) if not sub.empty else []
    rosenbaum_text = None
    if res["sensitivity"].get("rosenbaum"):
        lead = headline[0].effects.get("risk_difference") or {}
        rosenbaum_text = rosenbaum_sentence(res["sensitivity"]["rosenbaum"], lead.get("p_value"), thr)
    res["notes"] = list(ev.notes)
    return {
        "rosenbaum_text": rosenbaum_text, "design_words": _design_words(data, cohort.unit),
        "hr_window": [t for t in (_hr_window(est, r) for r in rows if not r.suppressed) if t],
        "results": res, "rows": rows, "days": days, "headline": headline, "phrases": phrases, "flow": flow, "linkage": linkage, "table1": t1,
        "balance": bal, "matched": ms, "subgroups": sub, "sensitivity": sens, "methods": _methods(ev, ms, bal) + _not_estimable_text(est),
        "threshold": thr, "not_estimable": {name: _sentence_case(served_text(est[name].reason)) for name in est if name in not_estimable},
    }


def _hr_record(est: dict[str, Any], outcome: str) -> dict[str, Any] | None:
    """The outcome's hazard ratio over the whole follow-up as a plain record (None if absent)."""
    r = est.get(outcome)
    if r is None or outcome == "time_in_care":
        return None
    e = next((e for e in r.effects if e.measure == "hazard_ratio" and e.window_months is None), None)
    if e is None or not e.estimable:
        return None
    return {"estimate": e.estimate, "ci_low": e.ci_low, "ci_high": e.ci_high, "p_value": e.p_value}


def _hr_window(est: dict[str, Any], row) -> str | None:
    """Why the hazard ratio and this window's difference disagree in significance (or None)."""
    return hr_window_sentence(LABELS[row.outcome][1], _hr_record(est, row.outcome), row)


def _summary(headline: list, est: dict[str, Any], phrases: Phrases) -> list[str]:
    """The findings, each followed by the sentence on its hazard ratio when the two disagree."""
    out = []
    said: set[str] = set()
    for row in headline:
        out.append(finding_sentence(row, phrases))
        extra = None if row.suppressed else _hr_window(est, row)
        if extra and extra not in said:
            out.append(extra)
            said.add(extra)
    return out


def _design_words(data: pd.DataFrame, unit: str) -> dict[str, Any]:
    """How the matched sample is described: pairs or matched sets, served-later comparisons."""
    units = "families" if unit == "family" else "children"
    tr = data["treated"].astype(bool)
    if "match_id" in data:
        agg = pd.DataFrame({"m": data["match_id"], "t": tr}).groupby("m")["t"].agg(["size", "sum"])
        pairs = bool(len(agg)) and bool(((agg["size"] == 2) & (agg["sum"] == 1)).all())
    else:
        pairs = False
    later = "served_later" in data and bool(data.loc[~tr, "served_later"].fillna(False).astype(bool).any())
    return {"pairs": pairs, "served_later": later, "comparison": comparison_group(units, later),
            "matched_with": matched_with(pairs), "units": units}


def _sentence_case(text: str) -> str:
    return text[:1].upper() + text[1:]


def _not_estimable_text(est: dict[str, Any]) -> list[str]:
    """The methods' limitation paragraph on outcomes (and effects) that could not be estimated."""
    whole = [served_text(r.reason) for r in est.values() if not r.estimable]
    if not whole:
        return []
    return [_sentence_case("; ".join(whole)) + ". When an arm has no events (or every unit has one), the model's "
            "coefficient runs off to infinity (R's coxph warns \"coefficient may be infinite\" and glm that \"fitted "
            "probabilities numerically 0 or 1 occurred\"), so no hazard, risk or odds ratio is published for it: the "
            "table says \"not estimable\" and the summary states no finding for that outcome. Differences in rates that "
            "could be estimated are shown in the tables; every other outcome was estimated as usual."]


def _tables(content: dict[str, Any]) -> dict[str, pd.DataFrame]:
    """The tables/*.csv files: every number of the report, suppressed, in tidy form."""
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
    for c in ("n_treated", "events_treated", "n_comparison", "events_comparison"):
        if c in outcomes:
            outcomes[c] = outcomes[c].astype("Int64")
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
    if content["days"]:
        days = pd.DataFrame(content["days"]).drop(columns=["label"])
        for c in ("n_treated", "n_comparison"):
            days[c] = days[c].astype("Int64")
        tables["days_in_care"] = days
    if not content["subgroups"].empty:
        tables["subgroups"] = content["subgroups"].drop(columns=["method"], errors="ignore")
    if content["sensitivity"]:
        tables["e_values"] = pd.DataFrame(content["sensitivity"])
    return tables


def _write_csv(df: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(df.to_csv(index=False, float_format="%.6g", lineterminator="\n"), encoding="utf-8")


def _add_chart(out: list[dict[str, Any]], folder: Path | None, name: str, title: str, caption: str, ax) -> None:
    """Save a chart and record it (with the texts drawn on it, for checking)."""
    texts = charts.figure_texts(ax)
    out.append({"name": name, "title": title, "caption": caption, "texts": texts, "uri": charts.save(ax, folder, name)})


def _charts(ev, content: dict[str, Any], folder: Path | None) -> list[dict[str, Any]]:
    """Render every chart; returns [{name, title, caption, texts, uri}] in report order."""
    import matplotlib.pyplot as plt

    out: list[dict[str, Any]] = []
    thr = content["threshold"]
    phrases = content["phrases"]
    for row in content["rows"]:
        _add_chart(out, folder, f"rate_{oc.window_column(row.outcome, row.window_months)}", row.label,
                   rate_caption(row, phrases) + ".", charts.rate_chart(row, phrases))
    for d in content["days"]:
        _add_chart(out, folder, f"days_in_care_{d['window_months']}m", d["label"], days_caption(d, phrases) + ".", charts.days_chart(d))
    curves = list(dict.fromkeys(r.outcome for r in content["headline"]))
    for name in curves:
        res = ev.estimates.get(name)
        if res is None:
            continue
        # the windows' event counts are published in the tables: no curve point a few events from them
        anchors = [oc.window_days(m) for m in ev.outcomes.get(name) or []]
        horizon = _curve_horizon(res, thr)
        ax = charts.curve_chart(res, name, thr, horizon=horizon, anchors=anchors)
        if ax is None:
            continue
        kind = "Aalen–Johansen cumulative incidence, other exits competing" if res.cif is not None else "Kaplan–Meier"
        units = "families" if ev.cohort.unit == "family" else "children"
        cap = (f"Share of served and matched comparison {units} who {LABELS[name][0]} over the {_months_text(horizon)} after the index date, "
               f"while every arm still had at least {thr} units at risk"
               + ("" if res.cif is not None else " and a tenth of its starting number")
               + f" ({kind}). " + (
                   f"So that no single event shows, the curves are drawn in steps of at least {thr} events: each step is the "
                   f"estimate at the end of a month, pooling at least {thr} events of its arm since the step before; a curve stops "
                   f"where fewer than {thr} further events followed, and an arm with fewer than {thr} events is not drawn. "
                   f"Numbers at risk below {thr} are suppressed." if thr >= 2 else "Numbers at risk are NOT suppressed."))
        _add_chart(out, folder, f"curve_{name}", f"{LABELS[name][1]} over time", cap, ax)
    bal = content["balance"]
    with plt.rc_context(charts.STYLE):
        ax = bal.love_plot()
    charts.relabel_love_plot(ax, list(ev.covariates))
    # the verdict's own rows: the SMD part of the rule (the variance ratios are in the text)
    within = ("every covariate within" if bal.verdict["smd_ok"].all() else "not every covariate within")
    _add_chart(out, folder, "love_plot", "Covariate balance before and after matching",
               f"{'Matching made the groups comparable' if bal.passed else 'Matching reduced the differences between the groups, but not enough'}: "
               f"the largest standardized difference{_over_published(bal)} went from {bal.max_abs_smd_before:.2f} "
               f"to {bal.max_abs_smd_after:.2f} ({within} the {bal.thresholds[0]:g} threshold; binary characteristics "
               f"standardized too, by the served group's standard deviation, as R MatchIt's summary()).{_withheld_note(bal)}", ax)
    _add_chart(out, folder, "propensity_overlap", "Overlap of propensity scores",
               "Served and comparison units' propensity scores (smoothed densities) before and after matching; "
               "after matching the two arms cover the same range.", charts.overlap_chart(content["matched"]))
    _add_chart(out, folder, "sample_flow", "Sample flow",
               "From the extract to the matched sample, with the served and comparison units at each step and those left out between steps.",
               charts.flow_chart(content["flow"]))
    sub = content["subgroups"]
    if not sub.empty:
        h = content["headline"][0]
        _add_chart(out, folder, "subgroups", "Effects by subgroup",
                   f"Difference in {LABELS[h.outcome][0].replace('had ', '').replace('were ', '')} within {h.window_months} months between served and matched comparison units "
                   "in each subgroup (percentage points, 95% CI); subgroups too small to publish are marked.",
                   charts.forest_chart(sub, f"{LABELS[h.outcome][1]} within {h.window_months} months, by subgroup"))
    return out


def _balance_method(bal) -> str:
    """The methods paragraph on balance: what the SMD is, for binary covariates too, and the rule."""
    binary = ("binary characteristics (proportions) likewise, by that group's sqrt(p(1 − p)) before matching, "
              "as R MatchIt's summary() does" if getattr(bal, "binary", "std") == "std" else
              "binary characteristics as the raw difference in proportions (not standardized)")
    return (f"Balance: standardized mean differences (SMD) divide the difference between the groups' means by the "
            f"{bal.s_d_denom} group's standard deviation in the unmatched sample, {binary}; the same denominator "
            f"before and after matching; {bal.verdict.attrs.get('rule', '')}.")


def _over_published(bal) -> str:
    """" over the published covariates" when some covariates' statistics are withheld (the
    maximum is then taken over the published ones only), else nothing."""
    return " over the published covariates" if getattr(bal, "hidden_covariates", None) else ""


def _withheld_note(bal) -> str:
    """The sentence saying which statistics the love plot leaves out, and that the verdict includes them."""
    hidden = getattr(bal, "hidden_covariates", None)
    if not hidden:
        return ""
    return (f" The differences of {len(hidden)} covariate row(s) resting on fewer units than the suppression threshold are "
            "withheld (not drawn); the balance verdict includes them.")


def _count_markup(n: Any, thr: int) -> Markup:
    """A published count in HTML, marked ``<span class="count">`` so checks can find every one."""
    text = SUPPRESSED_TEXT if n is None or (isinstance(n, float) and math.isnan(n)) else format_count(int(n), thr)
    return Markup('<span class="count">{}</span>').format(text)


def _env() -> Environment:
    env = Environment(loader=PackageLoader("ppeval", "report/templates"), autoescape=select_autoescape(["html", "j2"]))
    env.filters["pct"] = pct
    env.filters["count"] = _count_markup
    env.filters["effect"] = fmt_effect
    env.filters["pval"] = fmt_p
    env.filters["days"] = fmt_days
    env.filters["days_diff"] = fmt_days_diff
    return env


def _html_table(df: pd.DataFrame, count_cols: tuple[str, ...] = (), thr: int = 11) -> Markup:
    """A table of the report; cells of ``count_cols`` are marked as counts."""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = []
    for _, r in df.iterrows():
        cells = []
        for c, v in r.items():
            if c in count_cols and not (isinstance(v, str) and not v.replace(",", "").isdigit()):
                shown = str(_count_markup(None if pd.isna(v) else int(str(v).replace(",", "")), thr))
            elif v is None or (not isinstance(v, str) and pd.isna(v)):
                shown = "" if c not in count_cols else SUPPRESSED_TEXT
            elif isinstance(v, float):
                shown = f"{v:.3g}"
            else:
                shown = html.escape(str(v))
            cells.append(f"<td>{shown}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return Markup(f'<div class="scroll"><table class="data"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>')


def _method_note(ev) -> str:
    """The fact sheet's one-line method note, generated from the config."""
    unit = "families" if ev.cohort.unit == "family" else "children"
    covs = ", ".join(pretty_variable(c).lower() for c in ev.covariates)
    start = "the same point in care" if ev.cohort.design == "in_care" else "the same number of days after the report"
    words = _design_words(ev.matched.data, ev.cohort.unit)
    later = " (some served later)" if words["served_later"] else ""
    return (f"Served {unit} were compared with similar {unit} not yet served at that point{later}, matched on a propensity score ({covs}), "
            f"each followed from {start}; differences are called significant when p < 0.05.")


def _plain_summary(ev, content: dict[str, Any]) -> str:
    """One paragraph that says what was done, in plain words, with the sample sizes."""
    r = content["results"]
    thr = content["threshold"]
    unit = "families" if ev.cohort.unit == "family" else "children"
    program = ev.config["report"]["program_name"]
    mt = format_count(r["matching"]["treated_matched"], thr)
    mc = format_count(r["matching"]["comparison_matched"], thr)
    design = ("entered foster care" if ev.cohort.design == "in_care" else "had a maltreatment report")
    window = f"between {ev.config['cohort']['entry_from'] or 'the start of the data'} and {ev.config['cohort']['entry_to'] or 'the extract date'}"
    bal = content["balance"]
    balance = balance_text(bal, list(ev.covariates))
    words = content["design_words"]
    who = f"{unit} whose parents took part in the {program}" if unit == "children" else f"{unit} who took part in the {program}"
    return (f"We looked at {unit} who {design} {window}. {mt} {who} {words['matched_with']} "
            f"{words['comparison']} ({mc} comparison {unit}), and both groups were followed from the same point in time. "
            f"{balance} Differences could still come from things the data do not record; the sensitivity section says how strong such a factor would have to be.")


def render(ev, content: dict[str, Any], chart_list: list[dict[str, Any]]) -> tuple[str, str]:
    """The report and fact sheet HTML (every image embedded as a data URI)."""
    env = _env()
    chart_by_name = {c["name"]: c for c in chart_list}
    headline_charts = [chart_by_name.get(f"rate_{oc.window_column(h.outcome, h.window_months)}") for h in content["headline"]]
    rows = content["rows"]
    ctx = {
        "title": ev.config["title"], "program": ev.config["report"]["program_name"], "design": ev.cohort.design, "unit": ev.cohort.unit,
        "findings": content["results"]["summary"], "plain_summary": _plain_summary(ev, content),
        "rows": rows, "days": content["days"], "charts": chart_by_name, "chart_list": chart_list,
        "iowa_rows": [r for r in rows if r.outcome in ("reunification", "reentry")],
        "p4p_rows": [r for r in rows if r.outcome in ("reunification", "tpr")],
        "headline_charts": [c for c in headline_charts if c is not None and not c["caption"].endswith("too small to publish.")][:2],
        "flow_html": _html_table(content["flow"], ("treated", "comparison", "total"), content["threshold"]),
        "linkage_html": _html_table(content["linkage"].rename(columns={"share": "% of roster"}), ("families",), content["threshold"]) if len(content["linkage"]) else "",
        "table1_html": _html_table(content["table1"], (), content["threshold"]),
        "balance": content["balance"], "methods": content["methods"], "results": content["results"],
        "threshold": content["threshold"], "suppression_sentence": suppression_sentence(content["threshold"]), "version": __version__, "notes": ev.notes, "method_note": _method_note(ev),
        "config_text": json.dumps(content["results"]["config"], indent=2, sort_keys=True),
        "sensitivity": content["sensitivity"], "rosenbaum": content["results"]["sensitivity"].get("rosenbaum"),
        "rosenbaum_text": content.get("rosenbaum_text"), "hr_window": content.get("hr_window", []),
        "design_words": content["design_words"],
        "headline": content["headline"], "label": LABELS, "not_estimable": content["not_estimable"],
        "smd_scope": _over_published(content["balance"]),
        "balance_text": balance_text(content["balance"], list(ev.covariates)),
    }
    return env.get_template("report.html.j2").render(**ctx), env.get_template("factsheet.html.j2").render(**ctx)


def write_report(ev, out: Path, pdf: bool = False, charts_only: bool = False) -> Path:
    """Write the full report (or the chart pack alone) into ``out``, atomically.

    Every file is scanned for identifiers of the extract before the folder is swapped into
    place; a finding stops the run and leaves the previous output as it was.

    Examples
    --------
    >>> write_report(ppeval.Evaluation.from_toml("eval.toml"), Path("reports/x"))  # doctest: +SKIP
    PosixPath('reports/x')
    """
    content = build(ev)
    ev._say("writing the report")
    # The guard is told what the report prints as values of non-id columns (covariate levels
    # such as county codes, the config's own numbers): with sequential numeric ids those
    # read like ids, but only where they stand as those labels (IdentifierGuard notes).
    labels = published_labels(content["balance"].table, list(ev.covariates),
                              [getattr(ev.config, "raw", {}), dict(ev.config)],
                              list(getattr(ev.config, "defaults_applied", [])) + list(ev.defaults_applied),
                              getattr(ev, "note_labels", {}))
    guard = IdentifierGuard.from_extract(ev.extract).with_provenance(labels)
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
    """report.pdf and factsheet.pdf from the HTML (weasyprint, the optional ``pdf`` extra)."""
    try:
        import logging

        from weasyprint import HTML
    except ImportError:
        from ..errors import ConfigError

        raise ConfigError("--pdf needs the optional extra: pip install 'ppeval[pdf]' (weasyprint)") from None
    # weasyprint logs every unsupported CSS property; a library run stays quiet
    logging.getLogger("weasyprint").setLevel(logging.ERROR)
    logging.getLogger("fontTools").setLevel(logging.ERROR)
    for name in ("report", "factsheet"):
        HTML(filename=str(folder / f"{name}.html"), base_url=str(folder)).write_pdf(str(folder / f"{name}.pdf"))
