"""Charts for the report and the grant writers' chart pack.

One message per chart, the Okabe–Ito colour-blind-safe palette, large type for slides, no
grid lines or 3-D, and a caption sentence that carries the numbers. A suppressed value is
marked on the chart ("suppressed"), never drawn. Every function takes ``ax=`` and returns the
Axes.
"""

from __future__ import annotations

import base64
import io
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ..plots import COMPARISON_COLOUR, TREATED_COLOUR  # noqa: E402
from ..privacy import SUPPRESSED_TEXT, format_count  # noqa: E402
from .content import LABELS, OutcomeRow, Phrases, pct  # noqa: E402

STYLE = {
    "font.size": 13,
    "axes.titlesize": 15,
    "axes.labelsize": 13,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.frameon": False,
    "svg.hashsalt": "ppeval",  # stable ids inside SVG files: byte-identical reruns
    "svg.fonttype": "path",
    "figure.dpi": 100,
}


def _ax(ax, figsize=(7.5, 4.5)):
    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    return ax


def at_risk_label(n: int, threshold: int) -> str:
    """A number at risk for publication: rounded down to tens, small counts suppressed.

    Exact numbers at risk at successive times differ by the units that left the risk set in
    between, which can be a small count; published in tens, a difference is only known to
    within 9 either way, so no small count follows by subtraction.

    Examples
    --------
    >>> at_risk_label(134, 11), at_risk_label(15, 11), at_risk_label(7, 11), at_risk_label(0, 11)
    ('130+', '11+', '<11', '0')
    """
    if n == 0 or n < threshold:
        return format_count(n, threshold)
    # never a published number below the threshold, even as a lower bound
    return f"{max(n // 10 * 10, threshold):,}+"


def rate_chart(row: OutcomeRow, phrases: Phrases, ax=None):
    """Two bars, served vs matched comparison, for one window rate."""
    with plt.rc_context(STYLE):
        ax = _ax(ax, (6.5, 4.5))
        labels = ["Served", "Matched comparison"]
        rates = [row.rate_treated, row.rate_comparison]
        colours = [TREATED_COLOUR, COMPARISON_COLOUR]
        for i, (r, c) in enumerate(zip(rates, colours, strict=True)):
            if r is None:
                ax.bar(i, 0.02, color="white", edgecolor="#777777", hatch="//", width=0.6)
                ax.text(i, 0.05, SUPPRESSED_TEXT, ha="center", va="bottom", fontsize=12, color="#555555")
            else:
                ax.bar(i, r, color=c, width=0.6)
                ax.text(i, r + 0.02, pct(r), ha="center", va="bottom", fontsize=16, weight="bold")
        ax.set_xticks([0, 1], labels)
        ax.set_ylim(0, 1.1)
        ax.set_yticks([0, 0.25, 0.5, 0.75, 1.0], ["0%", "25%", "50%", "75%", "100%"])
        ax.set_title(f"{LABELS[row.outcome][1]}\nwithin {row.window_months} months", loc="left")
        ax.spines["left"].set_visible(False)
        ax.tick_params(axis="y", length=0)
    return ax


def published_steps(times, events, threshold: int, horizon: float, anchors=(), months: int = 1) -> np.ndarray:
    """The times at which a curve may be published: month ends pooling enough events.

    An exact Kaplan–Meier or cumulative-incidence curve rises at every event, by about
    1/n for each one: read off a chart's path data, its step heights count the events one
    by one. A published curve is therefore the estimate at a few grid points only. The
    candidates are the ends of every ``months``-th month (``w * 365 // 12`` days, as the
    outcome windows) up to ``horizon``; a candidate is kept when the events between it and
    the published point before it, and between it and each anchor, number 0 or at least
    ``threshold``. Anchors are times whose counts are published elsewhere (the outcome
    windows' event counts), so no curve point is a few events away from one of them. The
    horizon is kept if it can be, by merging the last steps into it; if it cannot, the curve
    stops at the last point kept (fewer than ``threshold`` events followed).

    Parameters
    ----------
    times : the distinct times of the fitted curve, increasing.
    events : the number of units with the event (unweighted) at each time.
    threshold : the smallest number of events a published rise may pool.
    horizon : the last time drawn.
    anchors : times whose cumulative counts are published elsewhere.
    months : months between candidate points.

    Returns
    -------
    The published times (after 0), increasing; the estimate is read at each.

    Examples
    --------
    >>> t = np.arange(1.0, 41.0) * 15            # an event every 15 days, 40 in all
    >>> published_steps(t, np.ones(40), 11, 600).tolist()  # day 547 would leave 4 for the last step
    [182.0, 365.0, 600.0]
    >>> published_steps(t, np.ones(40), 11, 600, anchors=[300]).tolist()  # 20 events by day 300
    [304.0, 600.0]
    >>> published_steps(t, np.ones(40), 50, 600).tolist()  # no step of 50 events: nothing drawn
    []
    """
    times = np.asarray(times, float)
    cum = np.concatenate([[0.0], np.cumsum(np.asarray(events, float))])

    def count(t: float) -> float:  # events at times <= t (count(-inf) = 0)
        return float(cum[np.searchsorted(times, t, side="right")])

    def ok(a: float, b: float) -> bool:
        d = abs(count(b) - count(a))
        return d == 0 or d >= threshold

    horizon = float(horizon)
    # every anchor, also past the horizon: a window's count published beyond the last point
    # drawn minus that point's count would be the events in between
    marks = [float(a) for a in anchors if 0 < a]

    def allowed(before: float, c: float) -> bool:
        # a step from the point before, and every anchor's count, both 0 or >= threshold away
        return ok(before, c) and all(ok(m, c) for m in marks)

    steps = np.arange(months, int(horizon * 12 / 365) + 2, months)
    grid = [float(g) for g in np.unique(steps * 365 // 12) if 0 < g < horizon]
    chosen: list[float] = []
    for c in grid:
        # the first step is measured from before time 0: the curve is drawn from its start
        # value at day 0, so events on day 0 itself rise with the first published point
        if allowed(chosen[-1] if chosen else -np.inf, c):
            chosen.append(c)
    # the horizon: merge the last steps into it until it pools enough events
    trial = list(chosen)
    while True:
        if allowed(trial[-1] if trial else -np.inf, horizon):
            chosen = trial + [horizon]
            break
        if not trial:
            break
        trial.pop()
    return np.asarray(chosen, dtype=float)


def published_curve(fitted, threshold: int, horizon: float, anchors=()) -> dict:
    """Each arm's curve at its published times (:func:`published_steps`), no re-estimation.

    Returns ``{label: (times, values)}`` with times starting at 0 (value 1 for survival, 0
    for cumulative incidence); ``times`` is empty for an arm with no rise that pools
    ``threshold`` events (it is not drawn). Events are counted among units of positive
    weight (a unit of weight 0 does not move the curve).
    """
    from ..estimate._nonparam import time_index

    cif = hasattr(fitted, "cumulative_incidence_at")
    start = 0.0 if cif else 1.0
    out = {}
    for g, (pl, _) in fitted.fits_.items():
        first = (pl.cause_index == 1) & (pl.w > 0)
        events = np.bincount(pl.pos - 1, weights=first.astype(float), minlength=pl.M)
        pts = published_steps(pl.time, events, threshold, horizon, anchors)
        J = time_index(pl, pts)
        curve = pl.cif[:, 0] if cif else pl.surv
        vals = np.where(J > 0, curve[np.maximum(J, 1) - 1], start)
        label = fitted.labels_.get(g, g)
        if not np.any(vals != start):
            out[label] = (np.empty(0), np.empty(0))
        else:
            out[label] = (np.r_[0.0, pts], np.r_[start, vals])
    return out


def curve_chart(res, outcome: str, threshold: int, ax=None, horizon: float | None = None, anchors=()):
    """Cumulative incidence (or Kaplan–Meier) by arm with a suppressed at-risk table under it.

    The curves are drawn in steps of whole months that pool at least ``threshold`` events
    each (:func:`published_curve`): no exact per-event step is in the figure, and so none
    in its SVG path data. An arm with no such step is marked, not drawn.
    """
    fitted = res.cif if res.cif is not None else res.km
    if fitted is None:
        return None
    with plt.rc_context(STYLE):
        ax = _ax(ax, (8, 5.2))
        groups = [fitted.labels_.get(g, g) for g in fitted.fits_]
        colour = {g: (TREATED_COLOUR if str(g).lower().startswith(("treat", "served", "true")) else COMPARISON_COLOUR) for g in groups}
        # without a horizon the axis ends at a month end, not at the last (single) event time
        last = max(float(pl.time.max()) for pl, _ in fitted.fits_.values())
        tmax = horizon or float(-(-int(np.ceil(last)) * 12 // 365) * 365 // 12 or 1)
        curves = published_curve(fitted, threshold, tmax, anchors)
        for g in groups:
            name = "Served" if colour[g] == TREATED_COLOUR else "Matched comparison"
            t, v = curves[g]
            if t.size:
                ax.step(t, v, where="post", color=colour[g], lw=2.5, label=name)
            else:
                ax.plot([], [], color=colour[g], lw=2.5, ls=":", label=f"{name}: not drawn (fewer than {threshold} events)")
        ax.set_xlim(0, tmax)
        ax.set_ylim(0, 1)
        ax.set_yticks([0, 0.25, 0.5, 0.75, 1.0], ["0%", "25%", "50%", "75%", "100%"])
        ax.set_xlabel("Days since the index date (enrolment or matched point)")
        ylabel = f"Share {LABELS[outcome][0]}" if res.cif is not None else "Share without the event"
        ax.set_ylabel(ylabel)
        ax.legend(loc="upper left")
        times = np.unique(np.linspace(0, tmax, 5).round())
        risk = fitted.at_risk(times)
        trans = ax.get_xaxis_transform()
        ax.text(0, -0.2, "Number at risk (rounded down to tens; below the threshold suppressed)", transform=ax.transAxes, fontsize=10, weight="bold", va="top")
        for r, (g, vals) in enumerate(risk.iterrows()):
            y = -0.28 - 0.08 * r
            name = "Served" if colour.get(g, COMPARISON_COLOUR) == TREATED_COLOUR else "Comparison"
            ax.text(-0.07, y, name, transform=ax.transAxes, ha="right", va="top", fontsize=10)
            for t, v in zip(times, vals, strict=True):
                ax.text(t, y, at_risk_label(int(v), threshold), transform=trans, ha="center", va="top", fontsize=10)
        ax.set_xticks(times)
    return ax


def forest_chart(sub: pd.DataFrame, title: str, ax=None, null: float = 0.0, scale: float = 100.0, xlabel: str = "Difference in percentage points (95% CI)"):
    """Subgroup effects with confidence intervals; suppressed rows are marked, not drawn.

    Rows are grouped by subgroup variable under a bold heading, levels in their natural
    order (ages ascending, "yes" before "no").
    """
    from .content import LEVEL_ORDER, pretty_level, pretty_variable

    lines: list[tuple[str, pd.Series | None]] = []
    for by, grp in sub.groupby("subgroup", sort=False):
        order = LEVEL_ORDER.get(str(by), [])
        rank = {lv: i for i, lv in enumerate(order)}
        grp = grp.assign(_k=[(rank.get(str(lv), len(order)), str(lv)) for lv in grp["level"]]).sort_values("_k")
        lines.append((pretty_variable(str(by)), None))
        lines += [("   " + pretty_level(r["level"]), r) for _, r in grp.iterrows()]
    with plt.rc_context(STYLE):
        ax = _ax(ax, (9, 0.42 * len(lines) + 1.6))
        y = np.arange(len(lines))[::-1]
        for yi, (label, r) in zip(y, lines, strict=True):
            head = r is None
            ax.text(-0.02, yi, label, transform=ax.get_yaxis_transform(), ha="right", va="center", fontsize=12, weight="bold" if head else "normal")
            if head:
                continue
            if r.get("suppressed", False) or pd.isna(r["estimate"]):
                ax.text(null, yi, SUPPRESSED_TEXT, ha="center", va="center", fontsize=10, color="#555555")
                continue
            ax.plot([r["ci_low"] * scale, r["ci_high"] * scale], [yi, yi], color=TREATED_COLOUR, lw=2.5)
            ax.plot(r["estimate"] * scale, yi, "o", color=TREATED_COLOUR, ms=8)
        ax.axvline(null, color="#444444", lw=1)
        ax.set_ylim(-0.7, len(lines) - 0.3)
        ax.set_yticks([])
        ax.spines["left"].set_visible(False)
        ax.set_xlabel(xlabel)
        ax.set_title(title, loc="left")
    return ax


def flow_chart(flow: pd.DataFrame, ax=None):
    """A CONSORT-style column of boxes: each step with its counts by arm.

    Main steps sit in a centre column joined by arrows; the units left out between two
    steps sit in a box to the right. Long step names are wrapped so no box runs off the
    figure.

    Examples
    --------
    >>> f = pd.DataFrame({"step": ["all", "left out (not: aged under 18)", "cohort"],
    ...                   "treated": [120, 0, 120], "comparison": [900, 40, 860]})
    >>> sum(bool(t.get_text()) for t in flow_chart(f).texts)  # three boxes (the arrows have no text)
    3
    """
    with plt.rc_context(STYLE):
        n = len(flow)
        ax = _ax(ax, (11, 1.05 * n + 0.6))
        ax.set_xlim(0, 1)
        ax.set_ylim(-0.55, n - 0.45)
        ax.axis("off")
        for i, (_, r) in enumerate(flow.iterrows()):
            y = n - 1 - i
            t = SUPPRESSED_TEXT if pd.isna(r["treated"]) else f"{int(r['treated']):,}"
            c = SUPPRESSED_TEXT if pd.isna(r["comparison"]) else f"{int(r['comparison']):,}"
            step = str(r["step"])
            side = step.startswith("left out")
            if side and step.startswith("left out (not: ") and step.endswith(")"):
                step = "Left out, not meeting: " + step[len("left out (not: "):-1]
            label = "\n".join(textwrap.wrap(step[:1].upper() + step[1:], 44 if side else 48)) + f"\nserved {t}  ·  comparison {c}"
            ax.text(0.76 if side else 0.27, y, label, ha="center", va="center", fontsize=10 if side else 11,
                    bbox={"boxstyle": "round,pad=0.45", "fc": "#FFF7E6" if side else "#F4F7FB", "ec": "#E69F00" if side else "#0072B2"})
            if i < n - 1 and not side:
                ax.annotate("", xy=(0.27, y - 1.55), xytext=(0.27, y - 0.45), arrowprops={"arrowstyle": "->", "color": "#555555"})
            if side:
                ax.annotate("", xy=(0.5, y), xytext=(0.27, y), arrowprops={"arrowstyle": "->", "color": "#999999"})
    return ax


def overlap_chart(ms, ax=None):
    """Propensity-score overlap as smoothed densities by arm, before and after matching.

    Densities rather than a histogram: a histogram's bars are counts, and bins at the edge
    of the distribution hold a handful of units (small cells); a density shows the same
    overlap without publishing any count.

    Examples
    --------
    >>> ms = ppeval.match(ppeval.propensity(df, "treated", ["x"]))  # doctest: +SKIP
    >>> overlap_chart(ms)                                           # doctest: +SKIP
    """
    from scipy.stats import gaussian_kde

    ps = ms.ps
    logit = ps.logit_.astype(float)
    t_all = ps.treated_.astype(bool)
    d = ms.data
    in_match = logit.reindex(d.index)
    t_m = d[ps.treatment].astype(bool)
    w_m = d["weight"].astype(float)
    ok = logit.notna()
    lo, hi = float(logit[ok].min()), float(logit[ok].max())
    pad = 0.1 * (hi - lo or 1.0)
    grid = np.linspace(lo - pad, hi + pad, 300)
    with plt.rc_context(STYLE):
        if ax is None:
            fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
        else:
            axes = [ax, ax.inset_axes([1.15, 0, 1, 1])]
        panels = [
            ("Before matching", [(logit[ok & t_all], None), (logit[ok & ~t_all], None)]),
            ("After matching", [(in_match[t_m & in_match.notna()], w_m[t_m & in_match.notna()]),
                                (in_match[~t_m & in_match.notna()], w_m[~t_m & in_match.notna()])]),
        ]
        for a, (title, series) in zip(axes, panels, strict=True):
            for (vals, wts), colour, name, fill in zip(series, (TREATED_COLOUR, COMPARISON_COLOUR), ("Served", "Comparison"), (True, False), strict=True):
                v = vals.to_numpy(float)
                if len(v) < 2 or np.ptp(v) == 0:
                    continue
                dens = gaussian_kde(v, weights=None if wts is None else wts.to_numpy(float))(grid)
                if fill:
                    a.fill_between(grid, dens, color=colour, alpha=0.35, lw=0)
                a.plot(grid, dens, color=colour, lw=2.5, ls="-" if fill else "--", label=name)
            a.set_title(title, loc="left")
            a.set_xlabel("Logit of the propensity score")
            a.set_yticks([])
            a.spines["left"].set_visible(False)
        axes[0].set_ylabel("Density")
        axes[0].legend(loc="upper left")
    return axes[0]


def days_chart(row: dict, ax=None):
    """Two bars: mean days in out-of-home care within the window, served vs comparison."""
    with plt.rc_context(STYLE):
        ax = _ax(ax, (6.5, 4.5))
        window = row["window_months"] * 365 // 12
        for i, (v, c) in enumerate(zip((row["mean_treated"], row["mean_comparison"]), (TREATED_COLOUR, COMPARISON_COLOUR), strict=True)):
            if v is None:
                ax.bar(i, window * 0.02, color="white", edgecolor="#777777", hatch="//", width=0.6)
                ax.text(i, window * 0.05, SUPPRESSED_TEXT, ha="center", va="bottom", fontsize=12, color="#555555")
            else:
                ax.bar(i, v, color=c, width=0.6)
                ax.text(i, v + window * 0.02, f"{v:,.0f} days", ha="center", va="bottom", fontsize=16, weight="bold")
        ax.set_xticks([0, 1], ["Served", "Matched comparison"])
        ax.set_ylim(0, window * 1.12)
        ax.set_title(f"Days in out-of-home care\nin the first {row['window_months']} months (mean)", loc="left")
        ax.spines["left"].set_visible(False)
        ax.tick_params(axis="y", length=0)
    return ax


def relabel_love_plot(ax, covariates: list[str]):
    """Replace a love plot's column names by plain names (``county_19153`` -> "County: 19153")."""
    from .content import pretty_covariate

    labels = [pretty_covariate(t.get_text(), covariates) for t in ax.get_yticklabels()]
    ax.set_yticks(ax.get_yticks(), labels)
    return ax


def figure_texts(ax_or_fig) -> list[str]:
    """Every text drawn on a figure (titles, labels, ticks, annotations, legends).

    The report keeps them to check the published numbers: SVGs here draw text as paths,
    so the text cannot be read back from the files.
    """
    from matplotlib.text import Text

    fig = ax_or_fig.figure if hasattr(ax_or_fig, "figure") else ax_or_fig
    fig.canvas.draw()  # tick labels exist only once drawn
    return [t.get_text() for t in fig.findobj(Text) if t.get_text() and t.get_visible()]


def save(ax_or_fig, folder: Path | None, name: str) -> str:
    """Write ``name``.png (300 dpi) and .svg into ``folder`` (if given); return the SVG as a data URI.

    Metadata that changes between runs (dates, software version) is left out so reruns
    are byte-identical.
    """
    fig = ax_or_fig.figure if hasattr(ax_or_fig, "figure") else ax_or_fig
    with plt.rc_context(STYLE):
        svg = io.BytesIO()
        # no <metadata> block at all: besides dates and versions it holds the RDF namespace
        # URL ".../1999/02/22-rdf-syntax-ns#", which reads as a date (and could be a birth date)
        fig.savefig(svg, format="svg", bbox_inches="tight", metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
            fig.savefig(folder / f"{name}.png", dpi=300, bbox_inches="tight", metadata={"Software": None})
            (folder / f"{name}.svg").write_bytes(svg.getvalue())
    plt.close(fig)
    return "data:image/svg+xml;base64," + base64.b64encode(svg.getvalue()).decode("ascii")
