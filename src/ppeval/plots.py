"""Figures: love plot (balance) and propensity-score overlap.

Every function takes ``ax=`` (a matplotlib Axes; a new figure when None) and returns the
Axes, so figures compose into a report or a notebook grid. Colours come from the Okabe-Ito
palette, which stays distinguishable under the common forms of colour blindness; shapes
(open versus filled markers, solid versus dashed lines) carry the same information for
greyscale printing.

Examples
--------
>>> import matplotlib
>>> matplotlib.use("Agg")
>>> import numpy as np, pandas as pd
>>> from ppeval.propensity import propensity
>>> from ppeval.matching import match
>>> from ppeval.balance import balance
>>> rng = np.random.default_rng(0)
>>> df = pd.DataFrame({"x": rng.normal(size=600), "z": rng.normal(size=600)})
>>> df["treated"] = (rng.random(600) < 1 / (1 + np.exp(1 - df["x"]))).astype(int)
>>> m = match(propensity(df, "treated", ["x", "z"]))
>>> ax = love_plot(balance(m))
>>> ax.get_xlabel()
"Absolute standardized mean difference (binary covariates by the treated group's sqrt(p(1 − p)))"
>>> overlap_plot(m).get_xlabel()
'Logit of the propensity score'
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["OKABE_ITO", "love_plot", "love_plot_label", "overlap_plot"]

#: Okabe & Ito (2008) colour-blind-safe palette.
OKABE_ITO: dict[str, str] = {
    "orange": "#E69F00",
    "sky_blue": "#56B4E9",
    "bluish_green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "reddish_purple": "#CC79A7",
    "black": "#000000",
}
TREATED_COLOUR = OKABE_ITO["blue"]
COMPARISON_COLOUR = OKABE_ITO["orange"]
BEFORE_COLOUR = OKABE_ITO["vermillion"]
AFTER_COLOUR = OKABE_ITO["blue"]


def _axes(ax, figsize):
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=figsize)
    return ax


def love_plot_label(bal: Any, absolute: bool = True) -> str:
    """The love plot's axis label, saying exactly what binary covariates' values are.

    ``Balance.binary == "std"`` (MatchIt's convention, the default): every row is a
    standardized mean difference, binary ones by sqrt(p(1 - p)) of the treated group;
    ``"raw"``: binary rows are differences in proportions, and the label says so.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> love_plot_label(SimpleNamespace(binary="raw"))
    'Absolute standardized mean difference (binary covariates: difference in proportions)'
    """
    head = "Absolute standardized mean difference" if absolute else "Standardized mean difference"
    if getattr(bal, "binary", "std") == "raw":
        return head + " (binary covariates: difference in proportions)"
    return head + " (binary covariates by the treated group's sqrt(p(1 − p)))"


def love_plot(bal: Any, ax=None, *, absolute: bool = True, threshold: float | None = None,
              sort: str = "before"):
    """Standardized mean differences before (open) and after (filled) matching.

    Parameters
    ----------
    bal : Balance
        From :func:`ppeval.balance`.
    ax : matplotlib Axes, optional
    absolute : bool
        Plot |SMD| (default) or the signed SMD.
    threshold : float, optional
        Dashed reference line(s); default the Balance's SMD threshold (0.1).
    sort : {"before", "after", "table"}
        Row order: by the before or after value (largest at the top) or as in the table.

    Returns
    -------
    matplotlib Axes
    """
    t = bal.table
    before = t["smd_before"].to_numpy(dtype=float)
    after = t["smd_after"].to_numpy(dtype=float)
    if absolute:
        before, after = np.abs(before), np.abs(after)
    labels = t["covariate"].astype(str).to_numpy()
    if sort == "before":
        o = np.argsort(np.nan_to_num(np.abs(before), nan=-1.0), kind="stable")
    elif sort == "after":
        o = np.argsort(np.nan_to_num(np.abs(after), nan=-1.0), kind="stable")
    else:
        o = np.arange(len(labels))[::-1]
    y = np.arange(len(o))
    ax = _axes(ax, (6.0, 0.3 * len(o) + 1.5))
    ax.scatter(before[o], y, facecolors="none", edgecolors=BEFORE_COLOUR, marker="o", s=36,
               linewidths=1.5, label="Before matching", zorder=3)
    if not np.all(np.isnan(after)):
        ax.scatter(after[o], y, color=AFTER_COLOUR, marker="s", s=30, label="After matching",
                   zorder=4)
        for yi, b, a in zip(y, before[o], after[o], strict=True):
            ax.plot([b, a], [yi, yi], color="#999999", linewidth=0.8, zorder=2)
    thr = bal.thresholds[0] if threshold is None else threshold
    ax.axvline(thr, color=OKABE_ITO["black"], linestyle="--", linewidth=1)
    ax.axvline(0, color="#555555", linewidth=0.8)
    if not absolute:
        ax.axvline(-thr, color=OKABE_ITO["black"], linestyle="--", linewidth=1)
    ax.set_yticks(y)
    ax.set_yticklabels(labels[o])
    ax.set_xlabel(love_plot_label(bal, absolute))
    ax.set_title("Covariate balance")
    ax.legend(loc="lower right", frameon=False)
    ax.margins(y=0.02)
    return ax


def overlap_plot(obj: Any, ax=None, *, scale: str = "logit", bins: int = 40,
                 matched: bool | None = None):
    """Distribution of the propensity score by arm: mirrored histograms.

    Treated units point up, comparison units down, so the overlap (or lack of it) is seen
    at a glance. Given a :class:`~ppeval.matching.MatchedSample`, the matched units (weighted)
    are drawn as outlines over the full sample.

    Parameters
    ----------
    obj : PropensityScore or MatchedSample
    ax : matplotlib Axes, optional
    scale : {"logit", "score"}
        The logit of the score (the matching scale) or the probability.
    bins : int
        Number of histogram bins.
    matched : bool, optional
        Overlay the matched sample (default: when ``obj`` is a MatchedSample).

    Returns
    -------
    matplotlib Axes
    """
    from .matching import MatchedSample

    m = obj if isinstance(obj, MatchedSample) else None
    ps = m.ps if m is not None else obj
    if matched is None:
        matched = m is not None
    values = ps.logit_ if scale == "logit" else ps.score_
    t = ps.treated_.to_numpy()
    v = values.to_numpy(dtype=float)
    ok = ~np.isnan(v)
    edges = np.histogram_bin_edges(v[ok], bins=bins)
    ax = _axes(ax, (6.5, 4.0))
    ht, _ = np.histogram(v[ok & t], bins=edges)
    hc, _ = np.histogram(v[ok & ~t], bins=edges)
    width = np.diff(edges)
    handles = [
        ax.bar(edges[:-1], ht, width=width, align="edge", color=TREATED_COLOUR, alpha=0.45,
               label=f"Treated (n={int(t.sum())})"),
        ax.bar(edges[:-1], -hc, width=width, align="edge", color=COMPARISON_COLOUR, alpha=0.45,
               label=f"Comparison (n={int((~t).sum())})"),
    ]
    if matched and m is not None:
        d = m.data
        vm = values.reindex(d.index).to_numpy(dtype=float)
        tm = d[ps.treatment].astype(bool).to_numpy()
        w = d["weight"].to_numpy(dtype=float)
        okm = ~np.isnan(vm)
        mt, _ = np.histogram(vm[okm & tm], bins=edges, weights=w[okm & tm])
        mc, _ = np.histogram(vm[okm & ~tm], bins=edges, weights=w[okm & ~tm])
        handles.append(ax.stairs(mt, edges, color=TREATED_COLOUR, linewidth=1.6,
                                 label="Treated, matched"))
        handles.append(ax.stairs(-mc, edges, color=COMPARISON_COLOUR, linewidth=1.6,
                                 linestyle="--", label="Comparison, matched (weighted)"))
    ax.axhline(0, color="#555555", linewidth=0.8)
    ticks = ax.get_yticks()
    ax.set_yticks(ticks)
    ax.set_yticklabels([f"{abs(tk):g}" for tk in ticks])
    ax.set_xlabel("Logit of the propensity score" if scale == "logit" else "Propensity score")
    ax.set_ylabel("Units (treated up, comparison down)")
    ax.set_title("Propensity score overlap")
    ax.legend(handles=handles, frameon=False, fontsize="small")
    return ax
