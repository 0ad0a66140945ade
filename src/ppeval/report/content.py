"""The numbers of a report, computed once from an :class:`~ppeval.evaluation.Evaluation`.

Everything here is aggregate and already small-cell suppressed; the writers only format it.
Counts are of units (children or families); rates and effects are weighted by the matching
weights (all 1 for 1:1 matching without replacement).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .. import outcomes as oc
from ..privacy import SUPPRESSED_TEXT, format_rate, suppress_counts, suppress_value

#: Plain-language names of outcomes and their window rates.
LABELS = {
    "reunification": ("returned home", "Returned home (reunified)"),
    "permanency": ("reached permanency", "Permanency (home, relative, guardianship, adoption)"),
    "tpr": ("had parental rights terminated", "Termination of parental rights"),
    "reentry": ("re-entered care after returning home", "Re-entered care after returning home"),
    "recurrence": ("had a new substantiated report", "New substantiated maltreatment report"),
    "removal": ("were removed from home", "Removed from home"),
    "time_in_care": ("left care", "Leaving out-of-home care (any discharge)"),
}
#: Outcomes whose window rates lead the summary, in order of preference, by design.
HEADLINE_ORDER = {
    "in_care": [("reunification", 12), ("tpr", 24), ("reentry", 12), ("reunification", 24), ("permanency", 12), ("reentry", 24), ("recurrence", 12)],
    "prevention": [("removal", 12), ("recurrence", 12), ("removal", 24), ("recurrence", 24)],
}
#: Plain names of subgroup variables and of covariate prefixes.
VARIABLE_NAMES = {
    "parent_role": "Enrolled parent",
    "race_ethnicity": "Race/ethnicity",
    "age_band": "Age",
    "removal_parent_drugs": "Removed for parental drug use",
    "sex": "Sex",
    "county": "County",
    "entry_year": "Entry year",
    "age_at_removal": "Age at removal",
    "age_at_report": "Age at report",
    "prior_removals": "Prior removals",
    "prior_reports": "Prior reports",
    "siblings_in_care": "Siblings in care",
}
#: Display order of ordinal subgroup levels (others sort alphabetically).
LEVEL_ORDER = {"age_band": ["under 1", "1 to 5", "6 to 11", "12 to 17"], "removal_parent_drugs": ["True", "False"]}
#: Outcomes where fewer events is the good direction.
LOWER_IS_BETTER = {"tpr", "reentry", "recurrence", "removal"}


def _f(x: Any) -> float | None:
    if x is None:
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


@dataclass
class OutcomeRow:
    """One window rate of one outcome: counts by arm, weighted rates and effects."""

    outcome: str
    window_months: int
    label: str
    n_treated: int | None
    n_comparison: int | None
    events_treated: int | None
    events_comparison: int | None
    rate_treated: float | None
    rate_comparison: float | None
    effects: dict[str, dict[str, float | None]] = field(default_factory=dict)

    @property
    def suppressed(self) -> bool:
        return any(v is None for v in (self.n_treated, self.n_comparison, self.events_treated, self.events_comparison))


def _window_counts(data: pd.DataFrame, col: str) -> tuple[int, int, int, int]:
    treated = data["treated"].astype(bool)
    v = data[col]
    obs = v.notna()
    ev = v.fillna(False).astype(bool)
    return (int((obs & treated).sum()), int((obs & ~treated).sum()), int((ev & treated).sum()), int((ev & ~treated).sum()))


def outcome_rows(matched_data: pd.DataFrame, estimates: dict[str, Any], outcomes: dict[str, list[int]], threshold: int) -> list[OutcomeRow]:
    """Window rates by arm with their effects, suppressed (events and n − events, per arm)."""
    raw = []
    for name, months in outcomes.items():
        if name == "time_in_care":
            continue
        res = estimates.get(name)
        for w in months:
            col = oc.window_column(name, w)
            if col not in matched_data:
                continue
            nt, nc, et, ec = _window_counts(matched_data, col)
            effects: dict[str, dict[str, float | None]] = {}
            rate_t = rate_c = None
            if res is not None:
                for e in res.effects:
                    if e.window_months == w:
                        effects[e.measure] = {"estimate": _f(e.estimate), "ci_low": _f(e.ci_low), "ci_high": _f(e.ci_high), "p_value": _f(e.p_value), "method": e.method}
                        if not e.estimable:
                            effects[e.measure]["reason"] = served_text(e.reason)
                        if (e.extra or {}).get("note"):
                            # e.g. an outcome the same for every unit: RD 0 exactly, nothing to test
                            effects[e.measure]["note"] = str(e.extra["note"])
                        rate_t = _f(e.risk_treated) if e.risk_treated is not None else rate_t
                        rate_c = _f(e.risk_comparison) if e.risk_comparison is not None else rate_c
                if not effects and not res.estimable:
                    # nothing was fitted for this outcome: no difference, and no words about one
                    effects["risk_difference"] = {"estimate": None, "ci_low": None, "ci_high": None, "p_value": None, "method": "",
                                                  "reason": served_text(res.reason.split(" — ", 1)[-1])}
            raw.append({"outcome": name, "window_months": w, "label": f"{LABELS[name][1]} within {w} months", "n_treated": nt, "n_comparison": nc,
                        "events_treated": et, "events_comparison": ec, "rate_treated": rate_t, "rate_comparison": rate_c, "effects": effects})
    if not raw:
        return []
    table = pd.DataFrame(raw)
    sup = suppress_counts(
        table, ["n_treated", "n_comparison", "events_treated", "events_comparison"], threshold,
        events={"events_treated": "n_treated", "events_comparison": "n_comparison"},
    ).table
    rows = []
    for i, r in enumerate(raw):
        s = sup.iloc[i]
        vals = {k: (None if pd.isna(s[k]) else int(s[k])) for k in ("n_treated", "n_comparison", "events_treated", "events_comparison")}
        rate_t = r["rate_treated"] if vals["events_treated"] is not None and vals["n_treated"] is not None else None
        rate_c = r["rate_comparison"] if vals["events_comparison"] is not None and vals["n_comparison"] is not None else None
        effects = r["effects"]
        if any(v is None for v in vals.values()):
            # an effect on suppressed counts can give them away (e.g. a risk difference of 1/n)
            effects = {}
        rows.append(OutcomeRow(r["outcome"], r["window_months"], r["label"], **vals, rate_treated=rate_t, rate_comparison=rate_c, effects=effects))
    return rows


def linkage_table(linkage: dict[str, int], threshold: int) -> pd.DataFrame:
    """How the program roster links to the extract, in families, with small counts suppressed.

    Columns ``step``, ``families`` (None when suppressed) and ``share`` (a percentage of the
    roster's families, None when it or the count it comes from is suppressed). The families
    left out between two rows are counts too: when one of them is small, the smaller of the
    two rows it separates is hidden with it (complementary suppression), so no difference of
    published rows is a small count.

    >>> linkage_table({"roster_families": 237, "linked_families": 237, "served_in_cohort": 130}, 11)["families"].tolist()
    [237, 237, 130]
    >>> linkage_table({"roster_families": 237, "linked_families": 232, "served_in_cohort": 130}, 11)["families"].tolist()
    [237, None, 130]
    """
    cols = ["step", "families", "share"]
    if not linkage.get("roster_families"):
        return pd.DataFrame(columns=cols)
    n, linked, served = (int(linkage[k]) for k in ("roster_families", "linked_families", "served_in_cohort"))
    t = pd.DataFrame(
        {"families": [n, linked, n - linked, served, linked - served]},
        index=["roster", "linked", "not_linked", "served", "not_served"],
    )
    res = suppress_counts(t, ["families"], threshold, row_sums={"roster": ["linked", "not_linked"], "linked": ["served", "not_served"]})
    shown = res.table["families"]
    labels = {"roster": "families on the program roster", "linked": "linked to a child in the extract",
              "served": "with a unit counted as served in the analysis cohort"}
    rows = []
    for k, label in labels.items():
        v = shown[k]
        count = None if v is None or pd.isna(v) else int(v)
        share = None if count is None or shown["roster"] is None or pd.isna(shown["roster"]) else round(100 * count / n, 1)
        rows.append({"step": label, "families": count, "share": share})
    # object columns: a suppressed count stays None, not a float NaN beside integer counts
    return pd.DataFrame({c: pd.Series([r[c] for r in rows], dtype=object) for c in cols})


def flow_table(flow: pd.DataFrame, threshold: int, matched: tuple[int, int] | None = None) -> pd.DataFrame:
    """The sample flow with small counts suppressed.

    Between two published steps the units left out are a row of their own, declared as the
    difference of the two steps, so a small exclusion cannot be recovered by subtraction.
    A step whose exclusion would be a small count is not published on its own: it is merged
    with the next step ("left out: A; B"), which keeps the later counts publishable
    instead of hiding the whole chain. Steps that exclude nobody are dropped.
    ``matched`` (served, comparison) adds the matched sample as the last step; see
    :func:`_protect_matching_step` for how a small number left unmatched is protected.
    """
    steps = flow[flow["kind"] == "step"].reset_index(drop=True)
    kept = [steps.iloc[0]]
    reasons: list[str] = []
    for i in range(1, len(steps)):
        r = steps.iloc[i]
        prev = kept[-1]
        dt, dc = int(prev["treated"] - r["treated"]), int(prev["comparison"] - r["comparison"])
        if dt == 0 and dc == 0:
            continue
        reasons.append(str(r["step"]))
        small = any(1 <= d < threshold for d in (dt, dc, dt + dc))
        if small and i < len(steps) - 1:
            continue
        kept.append(r.copy())
        kept[-1]["_reasons"] = "; ".join(reasons)
        reasons = []
    # a small exclusion at the last step is merged backwards, into the one before it
    def _small(a, b) -> bool:
        dt, dc = int(a["treated"] - b["treated"]), int(a["comparison"] - b["comparison"])
        return any(1 <= d < threshold for d in (dt, dc, dt + dc))

    while len(kept) > 2 and _small(kept[-2], kept[-1]):
        merged = kept.pop(-2)
        kept[-1]["_reasons"] = f"{merged['_reasons']}; {kept[-1]['_reasons']}"
    kept[-1]["step"] = f"analysis cohort ({kept[-1]['step']})"
    rows, sums = [], {}
    for i, r in enumerate(kept):
        if i > 0:
            prev = kept[i - 1]
            rows.append({"key": f"x{i}", "step": f"left out (not: {r['_reasons']})", "treated": int(prev["treated"] - r["treated"]), "comparison": int(prev["comparison"] - r["comparison"])})
            sums[f"s{i - 1}"] = [f"s{i}", f"x{i}"]
        rows.append({"key": f"s{i}", "step": str(r["step"]), "treated": int(r["treated"]), "comparison": int(r["comparison"])})
    t = pd.DataFrame(rows).set_index("key")
    t["total"] = t["treated"] + t["comparison"]
    res = suppress_counts(t, ["treated", "comparison", "total"], threshold, col_sums={"total": ["treated", "comparison"]}, row_sums=sums)
    table = res.table.reset_index(drop=True)
    if matched is not None:
        table = _protect_matching_step(table, kept[-1], matched, threshold)
    return table


def _protect_matching_step(table: pd.DataFrame, last: pd.Series, matched: tuple[int, int], threshold: int) -> pd.DataFrame:
    """Append "left out: not matched" and the matched sample to a suppressed flow table.

    The matched counts are published everywhere (every effect rests on them), so when an
    arm's number left unmatched is small it is the cohort side that gives way: walking up
    the arm's column, the steps and the exclusions between them are hidden until the
    hidden exclusions add up to ``threshold`` or more (then no one of them can be solved
    for), and each hidden row's total with them. Merging steps instead would hide the whole
    cohort flow of both arms.
    """
    table = table.copy()
    for c in ("treated", "comparison", "total"):
        table[c] = table[c].astype("Int64")
    mt, mc = int(matched[0]), int(matched[1])
    xt, xc = int(last["treated"]) - mt, int(last["comparison"]) - mc
    extra = pd.DataFrame([
        {"step": "left out (not: matched within the caliper)", "treated": xt, "comparison": xc, "total": xt + xc},
        {"step": "matched sample (within the caliper)", "treated": mt, "comparison": mc, "total": mt + mc},
    ])
    table = pd.concat([table, extra.astype({"treated": "Int64", "comparison": "Int64", "total": "Int64"})], ignore_index=True)
    n = len(table)
    for arm, x in (("treated", xt), ("comparison", xc)):
        if not 1 <= x < threshold:
            continue
        original = table[arm].copy()  # before hiding: NA = hidden by the suppression above
        table.loc[n - 2, arm] = pd.NA
        hidden_sum = x
        i = n - 3  # the last cohort step; rows alternate step, exclusion, step, ...
        while i >= 0:
            table.loc[i, arm] = pd.NA
            if i < 2:
                break
            above = original[i - 2]
            table.loc[i - 1, arm] = pd.NA
            # an exclusion hidden already is unknown: count it as large enough
            gap = threshold if pd.isna(above) or pd.isna(original[i]) else int(above) - int(original[i])
            hidden_sum += gap
            if hidden_sum >= threshold and not pd.isna(above):
                break
            i -= 2
    hide_total = table["treated"].isna() | table["comparison"].isna()
    table.loc[hide_total, "total"] = pd.NA
    return table


def pct(x: float | None) -> str:
    return SUPPRESSED_TEXT if x is None else f"{100 * x:.0f}%"


def served_text(reason: str | None) -> str | None:
    """A not-estimable reason in the report's words (the library's "treated" arm is the served one)."""
    return None if reason is None else reason.replace("the treated arm", "the served arm").replace("treated arm", "served arm")


def fmt_effect(e: dict[str, float | None] | None, measure: str) -> str:
    if e and e.get("reason"):
        return "not estimable"
    if not e or e.get("estimate") is None:
        return ""
    if measure == "risk_difference":
        return f"{100 * e['estimate']:+.1f} points ({100 * e['ci_low']:+.1f} to {100 * e['ci_high']:+.1f})"
    return f"{e['estimate']:.2f} ({e['ci_low']:.2f} to {e['ci_high']:.2f})"


def fmt_p(p: float | None) -> str:
    if p is None:
        return ""
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


@dataclass(frozen=True)
class Phrases:
    """How the units are named in sentences ("children of served parents" / "families")."""

    served: str
    comparison: str
    #: the plural noun of a unit ("children", "families"), as in "per 100 children"
    units: str = "units"

    @classmethod
    def for_unit(cls, unit: str, program: str) -> Phrases:
        if unit == "family":
            return cls(f"families served by the {program}", "matched comparison families", "families")
        return cls(f"children of parents served by the {program}", "matched comparison children", "children")


# the sentences built from these numbers (findings, captions) are in .wording


TABLE_ONE_NAMES = {
    "mean_treated_before": "served, before", "mean_control_before": "comparison, before",
    "mean_treated_after": "served, after", "mean_control_after": "comparison, after",
    "smd_before": "SMD before", "smd_after": "SMD after",
    "variance_ratio_before": "variance ratio before", "variance_ratio_after": "variance ratio after",
}


def table_one(balance_table: pd.DataFrame, data_before: pd.DataFrame, data_after: pd.DataFrame, threshold: int,
              hide_before: dict[str, bool] | None = None) -> pd.DataFrame:
    """Table 1: covariate means/percentages by arm before and after matching, with SMDs.

    A percentage of a category is hidden when the number of units it stands for (or the rest
    of the arm) is from 1 to ``threshold - 1``, because percentage × arm size gives it back.
    ``hide_before`` (``{"treated": True}``) hides an arm's size before matching (when the
    number left unmatched is small, that size minus the matched size would give it away).

    Examples
    --------
    >>> bt = pd.DataFrame({"covariate": ["female"], "type": ["binary"], "mean_treated_before": [0.5],
    ...                    "mean_control_before": [0.04], "smd_before": [0.1], "smd_after": [0.0]})
    >>> d = pd.DataFrame({"treated": [True] * 40 + [False] * 50})
    >>> table_one(bt, d, d, 11).iloc[1, 1:3].tolist()
    ['50.0%', 'suppressed']
    """
    hide_before = hide_before or {}
    bt = balance_table.copy()
    n = {
        "before_t": int(data_before["treated"].astype(bool).sum()), "before_c": int((~data_before["treated"].astype(bool)).sum()),
        "after_t": int(data_after["treated"].astype(bool).sum()), "after_c": int((~data_after["treated"].astype(bool)).sum()),
    }
    cols = {"mean_treated_before": "before_t", "mean_control_before": "before_c", "mean_treated_after": "after_t", "mean_control_after": "after_c"}
    out = pd.DataFrame({"covariate": bt["covariate"]})
    if "level" in bt:
        out["level"] = bt["level"]
    binary = bt["type"].eq("binary") if "type" in bt else pd.Series(False, index=bt.index)
    for col, arm in cols.items():
        if col not in bt:
            continue
        v = bt[col].astype(float)
        count = (v * n[arm]).round()
        hide = binary & (((count >= 1) & (count < threshold)) | (((n[arm] - count) >= 1) & ((n[arm] - count) < threshold)) | v.isna())
        shown = np.where(binary, (100 * v).round(1).astype(str) + "%", v.round(2).astype(str))
        out[col] = np.where(hide, SUPPRESSED_TEXT, shown)
    for col in ("smd_before", "smd_after", "variance_ratio_before", "variance_ratio_after"):
        if col in bt:
            out[col] = bt[col].astype(float).round(3)
    hidden_arms = {"before_t": hide_before.get("treated", False), "before_c": hide_before.get("comparison", False)}
    for col, arm in cols.items():
        if hidden_arms.get(arm, False) and col in out:
            # proportions of an arm whose size is hidden would pin the size (one n fits them all),
            # and a binary SMD before matching is their difference from the other arm's
            out.loc[binary, col] = SUPPRESSED_TEXT
            if "smd_before" in out:
                out.loc[binary, "smd_before"] = np.nan
            if "smd_after" in out and bt.attrs.get("binary_convention") != "raw":
                # a standardized binary SMD after matching is divided by the treated SD before
                # matching, sqrt(p(1 - p)): it gives the treated proportion back
                out.loc[binary, "smd_after"] = np.nan
    out = out.rename(columns=TABLE_ONE_NAMES)

    def _size(arm: str) -> str:
        v = suppress_value(n[arm], threshold)
        return SUPPRESSED_TEXT if v is None or hidden_arms.get(arm, False) else f"{v:,}"

    sizes = pd.DataFrame([{"covariate": "units (n)", **{TABLE_ONE_NAMES[c]: _size(a) for c, a in cols.items()}}])
    return pd.concat([sizes, out], ignore_index=True)


def safe_rate_text(num: int | None, den: int | None, threshold: int) -> str:
    return format_rate(num, den, threshold)


def pretty_variable(name: str) -> str:
    """A variable's plain name: ``removal_parent_drugs`` -> "Removed for parental drug use".

    Examples
    --------
    >>> pretty_variable("removal_neglect"), pretty_variable("entry_year")
    ('Removal reason: neglect', 'Entry year')
    """
    if name in VARIABLE_NAMES:
        return VARIABLE_NAMES[name]
    if name.startswith("removal_"):
        return "Removal reason: " + name[len("removal_"):].replace("_", " ")
    return name.replace("_", " ").capitalize()


def pretty_level(level: Any) -> str:
    """A category's plain name: ``True`` -> "yes", ``american_indian_alaska_native`` ->
    "American Indian/Alaska Native".

    Examples
    --------
    >>> pretty_level("True"), pretty_level("american_indian_alaska_native"), pretty_level("1 to 5")
    ('yes', 'American Indian/Alaska Native', '1 to 5')
    """
    text = str(level)
    fixed = {"true": "yes", "false": "no", "american_indian_alaska_native": "American Indian/Alaska Native",
             "native_hawaiian_pacific_islander": "Native Hawaiian/Pacific Islander"}
    if text.lower() in fixed:
        return fixed[text.lower()]
    text = text.replace("_", " ")
    return text[:1].upper() + text[1:]


def pretty_covariate(column: str, covariates: list[str]) -> str:
    """A balance-table row's plain name: ``race_ethnicity_black`` -> "Race/ethnicity: black".

    ``covariates`` are the model's covariate names, used to split an indicator column into
    its variable and level (the longest matching prefix wins).

    Examples
    --------
    >>> pretty_covariate("county_19153", ["county", "sex"]), pretty_covariate("age_at_removal", ["age_at_removal"])
    ('County: 19153', 'Age at removal')
    """
    if column in covariates:
        return pretty_variable(column)
    for cov in sorted(covariates, key=len, reverse=True):
        if column.startswith(cov + "_"):
            return f"{pretty_variable(cov)}: {pretty_level(column[len(cov) + 1:])}"
    return pretty_variable(column)


def estimated(row: OutcomeRow, not_estimable: set[str] | frozenset[str] = frozenset()) -> bool:
    """Whether a row's outcome and its risk difference were estimated (a finding needs both)."""
    return row.outcome not in not_estimable and not (row.effects.get("risk_difference") or {}).get("reason")


def choose_headline(rows: list[OutcomeRow], design: str, k: int = 3,
                    not_estimable: set[str] | frozenset[str] = frozenset()) -> list[OutcomeRow]:
    """Up to ``k`` window rates for the summary: publishable ones first, in preference order.

    A grant writer needs findings with numbers; a suppressed rate is shown only when
    nothing publishable is left to fill its place. Words follow numbers: a row whose
    outcome is not estimable (``not_estimable``: outcome names), or whose risk difference
    is not, gets no finding sentence at all.
    """
    rows = [r for r in rows if estimated(r, not_estimable)]
    by_key = {(r.outcome, r.window_months): r for r in rows}
    preferred = [by_key[key] for key in HEADLINE_ORDER.get(design, []) if key in by_key]
    preferred += [r for r in rows if r not in preferred]
    shown = [r for r in preferred if not r.suppressed][:k]
    if len(shown) < k:
        shown += [r for r in preferred if r.suppressed][: k - len(shown)]
    return shown


def days_rows(days: pd.DataFrame, threshold: int) -> list[dict[str, Any]]:
    """Days in care within a window by arm, suppressed when an arm has 1 to threshold − 1 units.

    A mean of a handful of children says too much about each of them, so the means and the
    difference go with the counts.
    """
    out = []
    for _, r in days.iterrows():
        nt, nc = int(r["n_treated"]), int(r["n_comparison"])
        small = any(1 <= n < threshold for n in (nt, nc))
        row = {"window_months": int(r["window_months"]), "label": f"Days in out-of-home care within {int(r['window_months'])} months (mean)",
               "n_treated": suppress_value(nt, threshold), "n_comparison": suppress_value(nc, threshold), "suppressed": small}
        for k in ("mean_treated", "mean_comparison", "difference", "ci_low", "ci_high", "p_value"):
            row[k] = None if small else _f(r[k])
        row["method"] = r["method"]
        out.append(row)
    return out


def fmt_days(x: float | None) -> str:
    """Days for tables: "123" (or "suppressed")."""
    return SUPPRESSED_TEXT if x is None else f"{x:,.0f}"


def fmt_days_diff(r: dict[str, Any]) -> str:
    """A difference in days with its CI: "+21 days (-11 to +53)"."""
    if r.get("difference") is None:
        return ""
    return f"{r['difference']:+,.0f} days ({r['ci_low']:+,.0f} to {r['ci_high']:+,.0f})"


def balance_text(bal: Any, covariates: list[str]) -> str:
    """What the balance verdict means, in plain words, drawn from the SMDs the verdict uses.

    ``bal`` is the published :class:`~ppeval.balance.Balance` (its ``verdict`` is computed on
    the true values; the SMDs of withheld rows are NaN there, so those rows are named
    without a number and the largest SMD is said to be over the published covariates).
    When balance is not reached the text says how many characteristics still differ, which,
    and what to do.

    Examples
    --------
    >>> from ppeval.balance import Balance
    >>> t = pd.DataFrame({"covariate": ["age", "sex_female"], "variable": ["age", "sex"],
    ...                   "type": ["continuous", "binary"], "smd_before": [0.5, 0.3],
    ...                   "smd_after": [0.02, 0.12], "variance_ratio_after": [1.1, np.nan]})
    >>> print(balance_text(Balance(t, "treated", "std", (0.1, (0.5, 2)), {}), ["age", "sex"]))  # doctest: +NORMALIZE_WHITESPACE
    After matching 1 characteristic still differed between the groups by 0.1 standard deviations or more
    (Sex: Female 0.12; largest standardized difference 0.12), so the groups were not alike on every
    characteristic we measured. The effects are not adjusted for this difference: read them with care.
    Matching exactly on sex (matching.exact in the config), a tighter caliper (matching.caliper_sd) or a
    richer propensity model may reach balance.
    """
    thr, (lo, hi) = bal.thresholds
    scope = " over the published covariates" if getattr(bal, "hidden_covariates", None) else ""
    v = bal.verdict
    largest = float(v["abs_smd_after"].max()) if v["abs_smd_after"].notna().any() else float("nan")
    big = f"largest standardized difference{scope} {largest:.2f}" if np.isfinite(largest) else "their differences withheld"
    if bal.passed:
        return (f"After matching the two groups looked alike on every characteristic we measured: each differed by less "
                f"than {thr:g} standard deviations ({big}).")
    bad = v[~v["smd_ok"]].sort_values("abs_smd_after", ascending=False, kind="stable")
    vr_bad = v[v["smd_ok"] & ~v["variance_ratio_ok"]]
    parts = []
    if len(bad):
        names = [pretty_covariate(str(c), covariates) + (f" {a:.2f}" if np.isfinite(a) else "")
                 for c, a in zip(bad["covariate"].head(5), bad["abs_smd_after"].head(5), strict=True)]
        more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
        what = "characteristic" if len(bad) == 1 else "characteristics"
        parts.append(f"{len(bad)} {what} still differed between the groups by {thr:g} standard deviations or more "
                     f"({', '.join(names)}{more}; {big})")
    if len(vr_bad):
        names = [pretty_covariate(str(c), covariates) for c in vr_bad["covariate"].head(5)]
        what = "characteristic's spread" if len(vr_bad) == 1 else "characteristics' spreads"
        parts.append(f"{len(vr_bad)} {what} still differed (variance ratio outside [{lo:g}, {hi:g}]: {', '.join(names)})")
    n_bad = len(bad) + len(vr_bad)
    table = bal.table.set_index("covariate")
    variables = [str(table.at[c, "variable"]) if "variable" in table and c in table.index else str(c)
                 for c in bad["covariate"].head(2)]
    # the config's column names: what a user would add to matching.exact
    exact = " or ".join(dict.fromkeys(variables))
    fix = (f"Matching exactly on {exact} (matching.exact in the config), a tighter caliper" if exact else "A tighter caliper")
    return (f"After matching {' and '.join(parts)}, so the groups were not alike on every characteristic we measured. "
            f"The effects are not adjusted for {'this difference' if n_bad == 1 else 'these differences'}: read them with care. "
            f"{fix} (matching.caliper_sd) or a richer propensity model may reach balance.")
