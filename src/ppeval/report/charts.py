"""Charts for the report and the grant writers' chart pack.

One message per chart, the Okabe–Ito colour-blind-safe palette, large type for slides, no
grid lines or 3-D, and a caption sentence that carries the numbers. A suppressed value is
marked on the chart ("suppressed"), never drawn. Every function takes ``ax=`` and returns the
Axes.
"""

from __future__ import annotations

import base64
import io
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


def curve_chart(res, outcome: str, threshold: int, ax=None, horizon: float | None = None):
    """Cumulative incidence (or Kaplan–Meier) by arm with a suppressed at-risk table under it."""
    fitted = res.cif if res.cif is not None else res.km
    if fitted is None:
        return None
    with plt.rc_context(STYLE):
        ax = _ax(ax, (8, 5.2))
        tab = fitted.table_
        ycol = "cif_event" if res.cif is not None else "surv"
        start = 0.0 if res.cif is not None else 1.0
        groups = list(dict.fromkeys(tab["group"]))
        colour = {g: (TREATED_COLOUR if str(g).lower().startswith(("treat", "served", "true")) else COMPARISON_COLOUR) for g in groups}
        tmax = horizon or float(tab["time"].max())
        for g in groups:
            sub = tab[(tab["group"] == g) & (tab["time"] <= tmax)]
            name = "Served" if colour[g] == TREATED_COLOUR else "Matched comparison"
            ax.step(np.r_[0, sub["time"]], np.r_[start, sub[ycol]], where="post", color=colour[g], lw=2.5, label=name)
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
        ax.text(0, -0.2, "Number at risk (suppressed below the threshold)", transform=ax.transAxes, fontsize=10, weight="bold", va="top")
        for r, (g, vals) in enumerate(risk.iterrows()):
            y = -0.28 - 0.08 * r
            name = "Served" if colour.get(g, COMPARISON_COLOUR) == TREATED_COLOUR else "Comparison"
            ax.text(-0.07, y, name, transform=ax.transAxes, ha="right", va="top", fontsize=10)
            for t, v in zip(times, vals, strict=True):
                ax.text(t, y, format_count(int(v), threshold), transform=trans, ha="center", va="top", fontsize=10)
        ax.set_xticks(times)
    return ax


def forest_chart(sub: pd.DataFrame, title: str, ax=None, null: float = 0.0, scale: float = 100.0, xlabel: str = "Difference in percentage points (95% CI)"):
    """Subgroup effects with confidence intervals; suppressed rows are marked, not drawn."""
    with plt.rc_context(STYLE):
        ax = _ax(ax, (8, 0.55 * len(sub) + 1.8))
        y = np.arange(len(sub))[::-1]
        for yi, (_, r) in zip(y, sub.iterrows(), strict=True):
            label = f"{r['subgroup']}: {r['level']}"
            ax.text(-0.02, yi, label, transform=ax.get_yaxis_transform(), ha="right", va="center", fontsize=11)
            if r.get("suppressed", False) or pd.isna(r["estimate"]):
                ax.text(null, yi, SUPPRESSED_TEXT, ha="center", va="center", fontsize=10, color="#555555")
                continue
            ax.plot([r["ci_low"] * scale, r["ci_high"] * scale], [yi, yi], color=TREATED_COLOUR, lw=2)
            ax.plot(r["estimate"] * scale, yi, "o", color=TREATED_COLOUR, ms=7)
        ax.axvline(null, color="#444444", lw=1)
        ax.set_yticks([])
        ax.spines["left"].set_visible(False)
        ax.set_xlabel(xlabel)
        ax.set_title(title, loc="left")
    return ax


def flow_chart(flow: pd.DataFrame, ax=None):
    """A CONSORT-style column of boxes: each step with its counts by arm."""
    with plt.rc_context(STYLE):
        n = len(flow)
        ax = _ax(ax, (8.5, 0.95 * n + 0.6))
        ax.set_xlim(0, 1)
        ax.set_ylim(-0.5, n - 0.3)
        ax.axis("off")
        for i, (_, r) in enumerate(flow.iterrows()):
            y = n - 1 - i
            t = SUPPRESSED_TEXT if pd.isna(r["treated"]) else f"{int(r['treated']):,}"
            c = SUPPRESSED_TEXT if pd.isna(r["comparison"]) else f"{int(r['comparison']):,}"
            side = str(r["step"]).startswith("left out")
            ax.text(0.78 if side else 0.4, y, f"{r['step']}\nserved {t}   ·   comparison {c}", ha="center", va="center", fontsize=9 if side else 10.5,
                    wrap=True, bbox={"boxstyle": "round,pad=0.4", "fc": "#FFF7E6" if side else "#F4F7FB", "ec": "#E69F00" if side else "#0072B2"})
            if i < n - 1 and not side:
                ax.annotate("", xy=(0.4, y - 1.62), xytext=(0.4, y - 0.38), arrowprops={"arrowstyle": "->", "color": "#555555"})
    return ax


def save(ax_or_fig, folder: Path | None, name: str) -> str:
    """Write ``name``.png (300 dpi) and .svg into ``folder`` (if given); return the SVG as a data URI.

    Metadata that changes between runs (dates, software version) is left out so reruns
    are byte-identical.
    """
    fig = ax_or_fig.figure if hasattr(ax_or_fig, "figure") else ax_or_fig
    with plt.rc_context(STYLE):
        svg = io.BytesIO()
        fig.savefig(svg, format="svg", bbox_inches="tight", metadata={"Date": None, "Creator": None})
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
            fig.savefig(folder / f"{name}.png", dpi=300, bbox_inches="tight", metadata={"Software": None})
            (folder / f"{name}.svg").write_bytes(svg.getvalue())
    plt.close(fig)
    return "data:image/svg+xml;base64," + base64.b64encode(svg.getvalue()).decode("ascii")
