"""Results objects: one :class:`Effect` per estimate and the :class:`EffectResults`
container that :func:`ppeval.estimate` returns.

Every effect carries the estimate, its standard error, a 95% confidence interval, the
p-value, the sample sizes and events per arm, and the method in words (including the
standard-error type and the clustering), so that a table or report never has to guess.
For ratio measures (hazard, subdistribution hazard, odds and risk ratios) ``estimate``,
``ci_low`` and ``ci_high`` are on the ratio scale and ``se`` is the standard error of the
*log* ratio (``se_scale == "log"``).
"""

from __future__ import annotations

import html
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

#: Measures allowed in ``results.json`` (DESIGN.md, Contract).
CONTRACT_MEASURES = (
    "hazard_ratio",
    "subdistribution_hazard_ratio",
    "odds_ratio",
    "risk_ratio",
    "risk_difference",
)
RATIO_MEASURES = frozenset(
    {"hazard_ratio", "subdistribution_hazard_ratio", "odds_ratio", "risk_ratio",
     "trend_odds_ratio", "trend_hazard_ratio"}
)

FRAME_COLUMNS = [
    "outcome", "measure", "window_months", "estimate", "se", "ci_low", "ci_high", "p_value",
    "method", "se_scale", "n", "n_treated", "n_comparison", "events_treated",
    "events_comparison", "risk_treated", "risk_comparison", "n_clusters", "label", "reason",
]


def wald_ci(estimate: float, se: float, log_scale: bool, alpha: float = 0.05):
    """Wald interval and two-sided p-value (on the log scale for ratio measures)."""
    z = stats.norm.ppf(1 - alpha / 2)
    if log_scale:
        b = np.log(estimate)
        lo, hi = np.exp(b - z * se), np.exp(b + z * se)
        zstat = b / se if se > 0 else np.nan
    else:
        lo, hi = estimate - z * se, estimate + z * se
        zstat = estimate / se if se > 0 else np.nan
    p = 2 * stats.norm.sf(abs(zstat)) if np.isfinite(zstat) else np.nan
    return float(lo), float(hi), float(p)


@dataclass
class Effect:
    """One effect estimate with its uncertainty and the counts behind it.

    Examples
    --------
    >>> e = Effect.from_wald("risk_difference", 0.05, 0.02, method="difference in risks")
    >>> round(e.ci_low, 4), round(e.ci_high, 4)
    (0.0108, 0.0892)
    """

    measure: str
    estimate: float
    se: float
    ci_low: float
    ci_high: float
    p_value: float
    method: str
    outcome: str | None = None
    window_months: int | None = None
    se_scale: str = "identity"
    n: int | None = None
    n_treated: int | None = None
    n_comparison: int | None = None
    events_treated: int | None = None
    events_comparison: int | None = None
    risk_treated: float | None = None
    risk_comparison: float | None = None
    n_clusters: int | None = None
    label: str | None = None
    #: why the effect could not be estimated (``None`` when it was): its estimate, SE,
    #: interval and p-value are then NaN, never a number from a model that did not fit
    reason: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def estimable(self) -> bool:
        """Whether the effect was estimated (``False``: see :attr:`reason`)."""
        return self.reason is None

    @classmethod
    def from_wald(cls, measure: str, estimate: float, se: float, *, method: str,
                  alpha: float = 0.05, **kwargs) -> Effect:
        """Build an effect from a point estimate and its SE (log-scale SE for ratios)."""
        log_scale = measure in RATIO_MEASURES
        lo, hi, p = wald_ci(estimate, se, log_scale, alpha)
        return cls(measure=measure, estimate=float(estimate), se=float(se), ci_low=lo,
                   ci_high=hi, p_value=p, method=method,
                   se_scale="log" if log_scale else "identity", **kwargs)

    @classmethod
    def not_estimable(cls, measure: str, reason: str, *, method: str, **kwargs) -> Effect:
        """An effect that could not be estimated: NaN estimate, SE, interval and p-value.

        Examples
        --------
        >>> e = Effect.not_estimable("hazard_ratio", "no events in the comparison arm", method="Cox model")
        >>> e.estimable, e.estimate != e.estimate, e.method
        (False, True, 'not estimable: no events in the comparison arm (Cox model)')
        """
        nan = float("nan")
        return cls(measure=measure, estimate=nan, se=nan, ci_low=nan, ci_high=nan, p_value=nan,
                   method=f"not estimable: {reason} ({method})",
                   se_scale="log" if measure in RATIO_MEASURES else "identity", reason=reason, **kwargs)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-ready apart from NaN), ``extra`` included."""
        d = asdict(self)
        for k, v in d.items():
            if isinstance(v, np.generic):
                d[k] = v.item()
        return d

    def to_frame(self) -> pd.DataFrame:
        """One-row tidy table (columns as :meth:`EffectResults.to_frame`)."""
        d = self.to_dict()
        return pd.DataFrame([{c: d.get(c) for c in FRAME_COLUMNS}])

    def __repr__(self) -> str:
        wnd = f", {self.window_months} months" if self.window_months else ""
        if not self.estimable:
            return f"Effect({self.measure}{wnd}: not estimable, {self.reason})"
        return (f"Effect({self.measure}{wnd}: {self.estimate:.4g} "
                f"[{self.ci_low:.4g}, {self.ci_high:.4g}], p={self.p_value:.3g})")

    def _repr_html_(self) -> str:
        return self.to_frame().to_html(index=False, float_format=lambda v: f"{v:.4g}")


class EffectResults:
    """All effects of one outcome, with the curves and tests behind them.

    Attributes
    ----------
    effects : list of :class:`Effect`, the contract measures (hazard, subdistribution
        hazard, odds and risk ratios, risk differences): what goes to ``results.json``.
    secondary : list of :class:`Effect`, other estimates (restricted mean time difference,
        cause-specific hazard ratio of the competing exit, ...).
    km : :class:`~ppeval.estimate.survival.KaplanMeier` or ``None``.
    cif : :class:`~ppeval.estimate.competing.AalenJohansen` or ``None``.
    tests : dict of test tables (log-rank, proportional hazards, McNemar).
    flow : DataFrame of rows used and left out, by arm.
    models : dict of fitted models (Cox, Fine–Gray, logistic) for inspection.
    estimable : bool, ``False`` when the outcome's main effect (the hazard ratio of a
        time-to-event outcome, the risk difference of a 0/1 one) could not be estimated.
    reason : str or None, why not, naming the outcome ("re-entry: not estimable — ...").
        Each effect that could not be estimated has its own :attr:`Effect.reason` and NaN
        numbers; the other effects of the outcome are estimated as usual.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from ppeval.estimate import estimate
    >>> rng = np.random.default_rng(0)
    >>> df = pd.DataFrame({"treated": np.repeat([True, False], 100),
    ...                    "y": rng.random(200) < np.repeat([0.6, 0.4], 100)})
    >>> res = estimate(df, binary="y")
    >>> list(res.to_frame().measure)
    ['risk_difference', 'risk_ratio', 'odds_ratio']
    """

    def __init__(self, outcome: str, effects: list[Effect], *, secondary=None, km=None,
                 cif=None, tests=None, flow=None, models=None, arms=None, reason: str | None = None):
        self.outcome = outcome
        self.reason = reason
        self.effects = list(effects)
        self.secondary = list(secondary or [])
        self.km = km
        self.cif = cif
        self.tests = dict(tests or {})
        self.flow = flow
        self.models = dict(models or {})
        self.arms = arms or {}

    @property
    def estimable(self) -> bool:
        """Whether the outcome's main effect was estimated (``False``: see :attr:`reason`)."""
        return self.reason is None

    def __iter__(self):
        return iter(self.effects)

    def __len__(self) -> int:
        return len(self.effects)

    def __getitem__(self, key):
        """``res["hazard_ratio"]`` or ``res["risk_difference", 12]``; or an integer index."""
        if isinstance(key, int):
            return self.effects[key]
        measure, window = (key, None) if isinstance(key, str) else key
        for e in self.effects + self.secondary:
            if e.measure == measure and (window is None or e.window_months == window):
                return e
        raise KeyError(key)

    def to_frame(self, secondary: bool = False) -> pd.DataFrame:
        """Tidy table, one row per effect.

        Columns: outcome, measure, window_months, estimate, se (of the log for ratios),
        ci_low, ci_high, p_value, method, se_scale, n, n_treated, n_comparison,
        events_treated, events_comparison, risk_treated, risk_comparison, n_clusters, label.
        ``secondary=True`` appends the secondary estimates (e.g. restricted mean time).
        """
        rows = self.effects + (self.secondary if secondary else [])
        if not rows and not self.estimable:
            # nothing could be fitted: one row that says so, rather than no row at all
            frame = pd.DataFrame([{c: None for c in FRAME_COLUMNS}], columns=FRAME_COLUMNS)
            frame[["estimate", "se", "ci_low", "ci_high", "p_value"]] = np.nan
            frame.loc[0, ["outcome", "reason"]] = [self.outcome, self.reason]
            for c in ("window_months", "n", "n_treated", "n_comparison", "events_treated",
                      "events_comparison", "n_clusters"):
                frame[c] = frame[c].astype("Int64")
            return frame
        if not rows:
            return pd.DataFrame(columns=FRAME_COLUMNS)
        records = [e.to_dict() for e in rows]
        frame = pd.DataFrame([{c: r.get(c) for c in FRAME_COLUMNS} for r in records],
                             columns=FRAME_COLUMNS)
        # nullable integers: a hazard ratio has no window (<NA>), not a float NaN
        for c in ("window_months", "n", "n_treated", "n_comparison", "events_treated",
                  "events_comparison", "n_clusters"):
            frame[c] = frame[c].astype("Int64")
        return frame

    def to_records(self) -> list[dict[str, Any]]:
        """The ``effects`` list of ``results.json``: measure, window_months, estimate,
        ci_low, ci_high, p_value, method (contract measures only)."""
        keys = ("measure", "window_months", "estimate", "ci_low", "ci_high", "p_value", "method")
        out = []
        for e in self.effects:
            if e.measure in CONTRACT_MEASURES:
                d = e.to_dict()
                rec = {k: (None if isinstance(d[k], float) and not np.isfinite(d[k]) else d[k]) for k in keys}
                if not e.estimable:
                    # null numbers, said why: never a number from a model that did not fit
                    rec.update(estimate=None, ci_low=None, ci_high=None, p_value=None,
                               estimable=False, reason=e.reason)
                out.append(rec)
        return out

    def plot(self, ax=None, **kwargs):
        """Weighted Kaplan–Meier (or cumulative incidence) curves by arm; returns the Axes.

        The curves are exact (one step per event time), for analysts working on unit data:
        not for publication, as their steps count single events. The report draws them in
        steps of at least the suppression threshold's events
        (:func:`ppeval.report.charts.published_curve`).
        """
        if self.cif is not None:
            return self.cif.plot(ax=ax, **kwargs)
        if self.km is not None:
            return self.km.plot(ax=ax, **kwargs)
        return forest_plot(self.to_frame(), ax=ax, **kwargs)

    def __repr__(self) -> str:
        lines = [f"EffectResults for {self.outcome!r}: {len(self.effects)} effects"]
        if not self.estimable:
            lines.append(f"  {self.reason}")
        for e in self.effects:
            lines.append("  " + repr(e))
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        cols = ["measure", "window_months", "estimate", "ci_low", "ci_high", "p_value",
                "events_treated", "n_treated", "events_comparison", "n_comparison", "method"]
        frame = self.to_frame(secondary=True)
        cols.append("reason")
        table = frame[cols].to_html(index=False, float_format=lambda v: f"{v:.4g}", na_rep="")
        why = "" if self.estimable else f"<p><b>{html.escape(str(self.reason))}</b></p>"
        return f"<h4>Effects on {html.escape(str(self.outcome))}</h4>{why}{table}"


def forest_plot(frame: pd.DataFrame, ax=None, **kwargs):
    """Point estimates with 95% CIs, one line per row of an effects table."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 0.5 + 0.4 * max(len(frame), 1)))
    labels = [
        f"{m}{'' if pd.isna(w) else f' {int(w)}m'}"
        for m, w in zip(frame["measure"], frame["window_months"], strict=True)
    ]
    y = np.arange(len(frame))[::-1]
    ax.errorbar(frame["estimate"], y,
                xerr=[frame["estimate"] - frame["ci_low"], frame["ci_high"] - frame["estimate"]],
                fmt="o", capsize=3, **kwargs)
    ax.set_yticks(y, labels)
    ax.axvline(1.0 if frame["measure"].isin(list(RATIO_MEASURES)).all() else 0.0,
               color="grey", lw=0.8, ls="--")
    return ax
