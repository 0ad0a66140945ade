"""The report's wording rules, in one place.

A grant writer quotes the report's sentences, so each one has to hold on its own:

* a difference that is not statistically significant is never "about as often" or "no
  difference": it reads "the data cannot tell whether …", with the range the confidence
  interval leaves open ("between 15.3 fewer and 2.1 more per 100 children");
* every sentence that compares the arms says its own significance (p and the verdict);
* no direction word ("more days", "more often") for a difference chance explains;
* the comparison group is described as it is: units not yet served at the matching point,
  some of whom were served later (when the cohort has such units);
* "matched sets" unless every set is a pair;
* when the hazard ratio over the whole follow-up and a window's difference disagree in
  significance, a sentence says why they can;
* the Rosenbaum sentence never contradicts the headline: it names the test and the sets the
  bounds rest on, and says when that test and the headline disagree.

Significance is two-sided p < :data:`ALPHA`, as in every table of the report. Numbers in
sentences are percentages, decimals or days, never a bare count below the suppression
threshold.
"""

from __future__ import annotations

from typing import Any

from ..privacy import format_count
from .content import LABELS, LOWER_IS_BETTER, OutcomeRow, Phrases, fmt_p, pct

#: two-sided level at which a difference is called statistically significant
ALPHA = 0.05

__all__ = [
    "ALPHA", "cannot_tell", "comparison_group", "days_caption", "finding_sentence", "hr_window_sentence",
    "is_significant", "matched_with", "rate_caption", "rosenbaum_sentence", "significance", "subgroup_warning_note",
]


def is_significant(p: float | None) -> bool:
    """Whether a two-sided p-value is below :data:`ALPHA` (``None``: not significant)."""
    return p is not None and p < ALPHA


def significance(p: float | None) -> str:
    """``"p = 0.210, not statistically significant"`` or ``"p < 0.001, statistically significant"``.

    Examples
    --------
    >>> significance(0.21), significance(0.0004)
    ('p = 0.210, not statistically significant', 'p < 0.001, statistically significant')
    """
    if p is None:
        return "no p-value"
    shown = fmt_p(p)
    prefix = "p " + shown if shown.startswith("<") else f"p = {shown}"
    return f"{prefix}, {'statistically significant' if is_significant(p) else 'not statistically significant'}"


def _amount(x: float, unit: str, decimals: int) -> str:
    word = "more" if x > 0 else "fewer"
    return f"{abs(x):.{decimals}f} {word}" if unit == "per100" else f"{abs(x):,.0f} days {word}"


def _range(lo: float, hi: float, unit: str, per: str = "") -> str:
    """The interval in words: "between 15.3 fewer and 2.1 more per 100 children"."""
    if unit == "per100":
        a, b = 100 * lo, 100 * hi
        if a < 0 < b:
            return f"between {abs(a):.1f} fewer and {b:.1f} more per 100 {per}".rstrip()
        word = "more" if a >= 0 else "fewer"
        x, y = sorted((abs(a), abs(b)))
        return f"between {x:.1f} and {y:.1f} {word} per 100 {per}".rstrip()
    if lo < 0 < hi:
        return f"between {abs(lo):,.0f} days fewer and {hi:,.0f} days more"
    word = "more" if lo >= 0 else "fewer"
    x, y = sorted((abs(lo), abs(hi)))
    return f"between {x:,.0f} and {y:,.0f} days {word}"


def cannot_tell(subject: str, lo: float | None, hi: float | None, p: float | None, unit: str = "per100", per: str = "") -> str:
    """The sentence part for a difference that is not statistically significant.

    Examples
    --------
    >>> cannot_tell("the program changes this", -0.153, 0.021, 0.21, per="children")
    'the data cannot tell whether the program changes this (95% CI between 15.3 fewer and 2.1 more per 100 children; p = 0.210, not statistically significant)'
    """
    ci = "" if lo is None or hi is None else f"95% CI {_range(lo, hi, unit, per)}; "
    return f"the data cannot tell whether {subject} ({ci}{significance(p)})"


def _lower_first(text: str) -> str:
    return text[:1].upper() + text[1:]


def finding_sentence(row: OutcomeRow, phrases: Phrases) -> str:
    """A one-line finding a grant writer can quote: both rates, the difference, its significance."""
    what = LABELS[row.outcome][0]
    if row.rate_treated is None or row.rate_comparison is None:
        return f"{LABELS[row.outcome][1]} within {row.window_months} months: numbers too small to publish."
    rd = row.effects.get("risk_difference") or {}
    head = (f"{pct(row.rate_treated)} of {phrases.served} {what} within {row.window_months} months, "
            f"compared with {pct(row.rate_comparison)} of {phrases.comparison}")
    if rd.get("note"):
        return f"{head}: {rd['note']}."
    p, est, lo, hi = rd.get("p_value"), rd.get("estimate"), rd.get("ci_low"), rd.get("ci_high")
    if est is None or not is_significant(p):
        return f"{head}: {cannot_tell('the program changes this', lo, hi, p, per=phrases.units)}."
    more = est > 0
    better = (not more) if row.outcome in LOWER_IS_BETTER else more
    verdict = "a statistically significant improvement" if better else "a statistically significant difference in the unfavourable direction"
    return (f"{head}: {_amount(100 * est, 'per100', 1)} per 100 {phrases.units} "
            f"(95% CI {_ci_short(lo, hi)}; {fmt_p_words(p)}), {verdict}.")


def _ci_short(lo: float, hi: float) -> str:
    """A per-100 interval that excludes 0, short: "6.0 to 29.2 more"."""
    a, b = sorted((abs(100 * lo), abs(100 * hi)))
    return f"{a:.1f} to {b:.1f} {'more' if lo > 0 else 'fewer'}"


def fmt_p_words(p: float | None) -> str:
    """``"p = 0.003"`` / ``"p < 0.001"``."""
    shown = fmt_p(p)
    return "p " + shown if shown.startswith("<") else f"p = {shown}"


def rate_caption(row: OutcomeRow, phrases: Phrases) -> str:
    """Chart caption: the two rates, the comparison and its significance."""
    what = LABELS[row.outcome][0]
    rd = row.effects.get("risk_difference") or {}
    if rd.get("reason") and (row.rate_treated is None or row.rate_comparison is None):
        return f"{LABELS[row.outcome][1]} within {row.window_months} months: not estimable ({rd['reason']})"
    if row.rate_treated is None or row.rate_comparison is None:
        return f"{LABELS[row.outcome][1]} within {row.window_months} months: counts too small to publish"
    if rd.get("reason"):
        # no difference was estimated: no words about one either
        return (f"{LABELS[row.outcome][1]} within {row.window_months} months: {pct(row.rate_treated)} vs {pct(row.rate_comparison)} "
                f"(the difference is not estimable: {rd['reason']})")
    if rd.get("note"):
        return (f"{LABELS[row.outcome][1]} within {row.window_months} months: {pct(row.rate_treated)} vs "
                f"{pct(row.rate_comparison)} (served vs comparison); {rd['note']}")
    p = rd.get("p_value")
    rates = f"{pct(row.rate_treated)} vs {pct(row.rate_comparison)} within {row.window_months} months"
    if rd.get("estimate") is None or not is_significant(p):
        # a grant writer quotes the caption: no "more often" for a difference chance explains
        return (f"{LABELS[row.outcome][1]} within {row.window_months} months: {pct(row.rate_treated)} vs "
                f"{pct(row.rate_comparison)} (served vs comparison); " + cannot_tell("the program changes this", rd.get("ci_low"), rd.get("ci_high"),
                                                              p, per=phrases.units))
    how = "more often" if rd["estimate"] > 0 else "less often"
    return f"{_lower_first(phrases.served)} {what} {how} than {phrases.comparison}: {rates} ({significance(p)})"


def days_caption(r: dict[str, Any], phrases: Phrases) -> str:
    """Caption for the days-in-care chart: both means, and a direction only when significant."""
    if r["suppressed"]:
        return f"Days in care within {r['window_months']} months: counts too small to publish"
    means = f"{r['mean_treated']:,.0f} vs {r['mean_comparison']:,.0f} days on average"
    p = r.get("p_value")
    if r.get("difference") is None or not is_significant(p):
        return (f"Days in out-of-home care in the first {r['window_months']} months: {means}; "
                + cannot_tell("the program changes this", r.get("ci_low"), r.get("ci_high"), p, unit="days"))
    more = r["difference"] > 0
    return (f"{_lower_first(phrases.served)} spent {'more' if more else 'fewer'} days in out-of-home care in the first "
            f"{r['window_months']} months: {means} ({significance(p)})")


def comparison_group(units: str, served_later: bool) -> str:
    """How the comparison group is named: units not yet served at the matching point.

    Examples
    --------
    >>> comparison_group("children", True)
    'similar children not yet served at that point, some of whom were served later'
    """
    text = f"similar {units} not yet served at that point"
    return text + (", some of whom were served later" if served_later else "")


def matched_with(all_pairs: bool) -> str:
    """"were each paired with" for 1:1 pairs, else "were matched (in matched sets, not one-to-one pairs) with"."""
    return "were each paired with" if all_pairs else "were matched (in matched sets, not one-to-one pairs) with"


def hr_window_sentence(label: str, hr: dict[str, Any] | None, row: OutcomeRow) -> str | None:
    """The sentence for a hazard ratio and a window difference that disagree in significance
    (``None`` when they agree or either is missing).

    ``hr``: the outcome's hazard-ratio record (estimate, ci_low, ci_high, p_value);
    ``row``: the window row (its risk difference's p-value).
    """
    rd = row.effects.get("risk_difference") or {}
    if not hr or hr.get("estimate") is None or hr.get("p_value") is None or rd.get("p_value") is None or rd.get("reason"):
        return None
    hr_sig, win_sig = is_significant(hr["p_value"]), is_significant(rd["p_value"])
    if hr_sig == win_sig:
        return None
    w = row.window_months
    hr_text = (f"over the whole follow-up, the hazard ratio ({label.lower()}) is {hr['estimate']:.2f} "
               f"(95% CI {hr['ci_low']:.2f} to {hr['ci_high']:.2f}; {significance(hr['p_value'])})")
    win_text = f"the {w}-month difference ({significance(rd['p_value'])})"
    if hr_sig:
        why = (f"the hazard ratio uses every unit's whole follow-up, including events after {w} months and units whose "
               f"{w} months were not yet over, so an effect that builds up after the window can show in it and not in the window")
    else:
        why = (f"the hazard ratio averages the effect over the whole follow-up, so an effect concentrated in the first {w} months "
               "that fades later can show in the window and not in the hazard ratio")
    return f"{_lower_first(hr_text)}, unlike {win_text}: {why}."


def rosenbaum_sentence(rb: dict[str, Any], headline_p: float | None, threshold: int) -> str:
    """What the Rosenbaum bounds say, in words that never contradict the headline.

    ``rb``: the published record (:func:`ppeval.report._rosenbaum`); ``headline_p``: the
    two-sided p-value of the headline difference the bounds are about.
    """
    if rb.get("suppressed"):
        return f"{rb['suppressed_reason']}."
    s = rb["informative_sets"]
    kind = "1:1 pairs" if rb.get("design") == "1:1 pairs" else "matched sets"
    test = ("McNemar's exact one-sided test" if kind == "1:1 pairs"
            else "the exact one-sided Mantel–Haenszel-type test within matched sets")
    base = (f"They rest on the {format_count(s['sets'], threshold)} {kind} with both served and comparison units and with units "
            f"both with and without the outcome ({format_count(s['n_treated'], threshold)} served and "
            f"{format_count(s['n_comparison'], threshold)} comparison units whose window was observed; the other sets add "
            f"nothing to the test), using {test}, which ignores the matching and censoring weights")
    p0 = rb.get("p_value_no_hidden_bias")
    g = rb.get("gamma_critical")
    head_sig = is_significant(headline_p)
    within = "pair" if kind == "1:1 pairs" else "matched set"
    if g is None or g <= 1:
        if head_sig:
            return (f"{base}. Without hidden bias this test gives one-sided p = {fmt_p(p0)}, above 5%, although the headline "
                    "difference is statistically significant: the two tests weigh the units differently (the headline uses "
                    "every unit with its weights), so these bounds say nothing either way about how much hidden bias the "
                    "headline finding could withstand.")
        return (f"{base}. The headline difference is not statistically significant, nor is this test without hidden bias "
                f"(one-sided p = {fmt_p(p0)}), so there is no conclusion for hidden bias to overturn.")
    gamma = "more than 1,000,000" if g == float("inf") or g is None else f"{g:.2f}"
    if head_sig:
        return (f"{base}. The conclusion holds at the one-sided 5% level unless hidden bias changes the odds of enrolment "
                f"within a {within} by a factor of Γ = {gamma} or more (without hidden bias, one-sided p = {fmt_p(p0)}).")
    return (f"{base}. This test is significant without hidden bias (one-sided p = {fmt_p(p0)}) and would stay so up to "
            f"Γ = {gamma}, but the headline difference is not statistically significant, so the report draws no conclusion "
            "from it.")


def subgroup_warning_note(by: str, levels: list[str]) -> str:
    """The plain note for subgroup levels whose standard error could not be computed."""
    return (f"subgroup {by}: no confidence interval for {', '.join(levels)} — too few units or events in that level for a "
            "standard error (its variance estimate was not positive), so only the point estimate is shown")
