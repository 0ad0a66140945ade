"""Covariate balance before and after matching or weighting, in MatchIt's ``summary()`` convention.

:func:`balance` returns a :class:`Balance` whose ``table`` has one row per numeric
covariate and one per level of each categorical covariate (and one for the share missing
where values are missing), with means (proportions) by arm before and after matching,
standardized mean differences, variance ratios and eCDF statistics.

Conventions (MatchIt's ``summary.matchit()`` for the effect on the treated):

* **SMD denominator**: ``s_d_denom="treated"`` uses the standard deviation of the treated
  group in the *unweighted full sample* (before matching), for both the before and after
  columns, so the two are on one scale; ``"pooled"`` uses sqrt((s_t^2 + s_c^2) / 2) from
  the unweighted full sample. The choice is recorded in ``Balance.s_d_denom`` and
  ``table.attrs``.
* **Binary covariates** (0/1, booleans and categorical levels): by default (``binary="std"``)
  the SMD is standardized too, the difference in proportions divided by sqrt(p_t(1 - p_t))
  with p_t the treated group's proportion in the unmatched sample, as MatchIt's
  ``summary()`` does (``bal1var()`` in MatchIt's R/match.qoi.R standardizes every covariate
  with ``wvar()``, which is p(1 - p) for a 0/1 variable). The balance verdict is drawn on
  this number. The raw difference in proportions is in ``diff_prop_before`` /
  ``diff_prop_after`` (binary rows only); ``binary="raw"`` puts it in the SMD columns
  instead (cobalt's ``bal.tab()`` default), and the verdict is then drawn on it.
* **Variance ratio** (treated / comparison) is reported for continuous covariates only;
  weighted variances use the reliability-weights formula (as cobalt and MatchIt).
* **After** statistics use the matching weights (``MatchedSample.data["weight"]``).

Examples
--------
>>> import numpy as np, pandas as pd
>>> from ppeval.propensity import propensity
>>> from ppeval.matching import match
>>> rng = np.random.default_rng(2)
>>> df = pd.DataFrame({"x": rng.normal(size=3000), "g": rng.choice(list("abc"), 3000)})
>>> df["treated"] = (rng.random(3000) < 1 / (1 + np.exp(1.5 - df["x"]))).astype(int)
>>> bal = balance(match(propensity(df, "treated", ["x", "g"])))
>>> bal.table["covariate"].tolist()
['x', 'g_a', 'g_b', 'g_c']
>>> bool(abs(bal.table.loc[0, "smd_after"]) < abs(bal.table.loc[0, "smd_before"]))
True
"""

from __future__ import annotations

import html
from collections.abc import Sequence

import numpy as np
import pandas as pd

from .errors import PpevalError
from .matching import MatchedSample
from .propensity import PropensityScore, _is_categorical, _levels

__all__ = ["Balance", "BalanceError", "balance"]


class BalanceError(PpevalError):
    """Balance cannot be computed as asked."""


# ---------------------------------------------------------------------------------------
# weighted statistics
# ---------------------------------------------------------------------------------------


def _wmean(x: np.ndarray, w: np.ndarray) -> float:
    sw = w.sum()
    return float((w * x).sum() / sw) if sw > 0 else float("nan")


def _wvar(x: np.ndarray, w: np.ndarray, binary: bool) -> float:
    """MatchIt's/cobalt's weighted variance: p(1-p) for binary, reliability weights else."""
    sw = w.sum()
    if sw <= 0:
        return float("nan")
    wn = w / sw
    m = (wn * x).sum()
    if binary:
        return float(m * (1 - m))
    den = 1 - (wn**2).sum()
    return float((wn * (x - m) ** 2).sum() / den) if den > 0 else float("nan")


def _ecdf_stats(xt, wt, xc, wc, binary: bool, vals=None) -> tuple[float, float]:
    """Maximum and mean absolute difference of the (weighted) eCDFs.

    The mean is over ``vals``: the distinct values in the full sample (MatchIt's
    ``summary()`` uses the full sample's values after matching too).
    """
    if binary:
        d = abs(_wmean(xt, wt) - _wmean(xc, wc))
        return d, d
    if wt.sum() <= 0 or wc.sum() <= 0:
        return float("nan"), float("nan")
    if vals is None:
        vals = np.unique(np.r_[xt, xc])

    def cdf(x, w):
        o = np.argsort(x, kind="stable")
        cw = np.cumsum(w[o]) / w.sum()
        pos = np.searchsorted(x[o], vals, side="right")
        return np.where(pos > 0, cw[np.maximum(pos - 1, 0)], 0.0)

    diff = np.abs(cdf(xt, wt) - cdf(xc, wc))
    return float(diff.max()), float(diff.mean())


# ---------------------------------------------------------------------------------------
# result
# ---------------------------------------------------------------------------------------


class Balance:
    """Balance table, verdict and love plot.

    Attributes
    ----------
    table : DataFrame
        One row per covariate (numeric) or level (categorical): ``covariate``, ``variable``,
        ``type`` ("continuous" or "binary"), ``mean_treated_before``,
        ``mean_control_before``, ``mean_treated_after``, ``mean_control_after``,
        ``smd_before``, ``smd_after``, ``variance_ratio_before``, ``variance_ratio_after``,
        ``ecdf_max_before``, ``ecdf_max_after``, ``ecdf_mean_before``, ``ecdf_mean_after``,
        ``diff_prop_before``, ``diff_prop_after`` (difference in proportions, binary rows
        only) and ``sd_denominator``. ``table.attrs`` records the SMD denominator and the
        binary convention.
    verdict : DataFrame
        Per row of ``table``: whether |SMD after| < the SMD threshold, whether the variance
        ratio after lies within the bounds (continuous covariates only) and both.
    passed : bool
        True when every row passes.
    s_d_denom, binary : str
        The conventions used (see the module notes).
    thresholds : tuple
        (SMD threshold, (variance ratio low, high)).
    """

    def __init__(self, table: pd.DataFrame, s_d_denom: str, binary: str, thresholds,
                 n: dict[str, float]):
        self.table = table
        self.s_d_denom = s_d_denom
        self.binary = binary
        self.thresholds = thresholds
        self.n = n
        m_thr, (v_lo, v_hi) = thresholds
        smd = table["smd_after"].abs()
        vr = table["variance_ratio_after"]
        smd_ok = smd < m_thr
        vr_ok = vr.isna() | ((vr >= v_lo) & (vr <= v_hi))
        self.verdict = pd.DataFrame({
            "covariate": table["covariate"],
            "abs_smd_after": smd,
            "smd_ok": smd_ok,
            "variance_ratio_after": vr,
            "variance_ratio_ok": vr_ok,
            "passed": smd_ok & vr_ok,
        })
        self.passed = bool(self.verdict["passed"].all())
        self.verdict.attrs["rule"] = (
            f"|SMD| < {m_thr:g} and variance ratio (continuous covariates) in "
            f"[{v_lo:g}, {v_hi:g}]"
        )
        self.verdict.attrs["passed"] = self.passed

    @property
    def max_abs_smd_before(self) -> float:
        return float(self.table["smd_before"].abs().max())

    @property
    def max_abs_smd_after(self) -> float:
        return float(self.table["smd_after"].abs().max())

    @property
    def smd_label(self) -> str:
        """What the SMD columns hold, in words (axis labels, methods text)."""
        if self.binary == "std":
            return ("standardized mean difference (binary covariates: difference in proportions "
                    "/ sqrt(p(1 - p)) of the treated group, as MatchIt's summary())")
        return "standardized mean difference (binary covariates: difference in proportions)"

    @property
    def imbalanced(self) -> pd.DataFrame:
        """The rows failing the verdict, largest |SMD after| first (``covariate``,
        ``abs_smd_after``, ``smd_ok``, ``variance_ratio_after``, ``variance_ratio_ok``)."""
        bad = self.verdict[~self.verdict["passed"]]
        return bad.sort_values("abs_smd_after", ascending=False, kind="stable")

    def explain(self) -> str:
        """The verdict in one or two plain sentences, and what to do when balance is not reached.

        Examples
        --------
        >>> t = pd.DataFrame({"covariate": ["x", "g_a"], "variable": ["x", "g"],
        ...                   "type": ["continuous", "binary"], "smd_before": [0.5, 0.4],
        ...                   "smd_after": [0.02, 0.15], "variance_ratio_after": [1.1, np.nan]})
        >>> print(Balance(t, "treated", "std", (0.1, (0.5, 2)), {}).explain())  # doctest: +NORMALIZE_WHITESPACE
        Not balanced: 1 covariate row differs by 0.1 SD or more after matching (g_a 0.15; largest
        |SMD| 0.15). Consider exact matching on g, a tighter caliper or a richer propensity model
        (interactions, splines); effects estimated on this sample are not adjusted for the
        remaining differences unless asked (binary outcomes: estimate(..., adjust=[...])): interpret them
        with care.
        """
        thr, (lo, hi) = self.thresholds
        if self.passed:
            return (f"Balanced: every covariate row differs by less than {thr:g} SD after matching "
                    f"(largest |SMD| {self.max_abs_smd_after:.2f})"
                    + (f" and every continuous covariate's variance ratio is within [{lo:g}, {hi:g}]"
                       if (self.table["type"] == "continuous").any() else "") + ".")
        bad = self.imbalanced
        smd_bad = bad[~bad["smd_ok"]]
        vr_bad = bad[bad["smd_ok"] & ~bad["variance_ratio_ok"]]
        parts = []
        if len(smd_bad):
            shown = ", ".join(f"{c} {v:.2f}" if np.isfinite(v) else str(c)
                              for c, v in zip(smd_bad["covariate"].head(5), smd_bad["abs_smd_after"].head(5),
                                              strict=True))
            more = f" and {len(smd_bad) - 5} more" if len(smd_bad) > 5 else ""
            rows = "row differs" if len(smd_bad) == 1 else "rows differ"
            parts.append(f"{len(smd_bad)} covariate {rows} by {thr:g} SD or more after matching "
                         f"({shown}{more}; largest |SMD| {self.verdict['abs_smd_after'].max():.2f})")
        if len(vr_bad):
            rows = "row has" if len(vr_bad) == 1 else "rows have"
            parts.append(f"{len(vr_bad)} continuous covariate {rows} a variance ratio outside "
                         f"[{lo:g}, {hi:g}] ({', '.join(map(str, vr_bad['covariate'].head(5)))})")
        variables = self.table.set_index("covariate").reindex(smd_bad["covariate"])["variable"] \
            if "variable" in self.table else smd_bad["covariate"]
        exact = " or ".join(dict.fromkeys(map(str, variables.dropna().head(2)))) or "the covariates that differ"
        return ("Not balanced: " + "; ".join(parts) + f". Consider exact matching on {exact}, a tighter "
                "caliper or a richer propensity model (interactions, splines); effects estimated on this "
                "sample are not adjusted for the remaining differences unless asked "
                "(binary outcomes: estimate(..., adjust=[...])): interpret them with care.")

    def love_plot(self, ax=None, **kwargs):
        """Absolute SMD before and after, one row per covariate (see :func:`ppeval.plots.love_plot`)."""
        from .plots import love_plot

        return love_plot(self, ax=ax, **kwargs)

    def __repr__(self) -> str:
        failing = int((~self.verdict["passed"]).sum())
        return (
            f"Balance({len(self.table)} rows, max |SMD| {self.max_abs_smd_before:.3f} before, "
            f"{self.max_abs_smd_after:.3f} after; {'balanced' if self.passed else f'{failing} row(s) fail'}: "
            f"{self.verdict.attrs['rule']})"
        )

    def _repr_html_(self) -> str:
        cols = ["covariate", "type", "mean_treated_after", "mean_control_after", "smd_before",
                "smd_after", "variance_ratio_before", "variance_ratio_after"]
        status = "balanced" if self.passed else "not balanced"
        return (
            f"<p><b>Balance</b>: {status} ({html.escape(self.verdict.attrs['rule'])}); "
            f"{html.escape(self.table.attrs['smd_denominator'])}; "
            f"{html.escape(self.table.attrs.get('binary', ''))}</p>"
            + self.table[cols].to_html(index=False, float_format=lambda v: f"{v:.3f}")
        )


# ---------------------------------------------------------------------------------------
# balance()
# ---------------------------------------------------------------------------------------


def _columns(df: pd.DataFrame, covariates: Sequence[str], kinds: dict[str, str]):
    """Yield (row name, variable, values as float with NaN, binary?) per balance row."""
    for cov in covariates:
        if cov not in df.columns:
            raise BalanceError(f"covariate {cov!r} is not in the data")
        s = df[cov]
        isna = s.isna().to_numpy()
        if kinds.get(cov) == "categorical" or _is_categorical(s):
            vals = s.astype(object).to_numpy()
            for lev in _levels(s):
                x = (vals == lev).astype(float)
                x[isna] = np.nan
                yield f"{cov}_{lev}", cov, x, True
        else:
            x = s.astype("float64").to_numpy() if not pd.api.types.is_numeric_dtype(s.dtype) \
                else s.to_numpy(dtype="float64", na_value=np.nan)
            obs = x[~np.isnan(x)]
            binary = len(obs) > 0 and bool(np.isin(obs, (0.0, 1.0)).all())
            yield cov, cov, x, binary
        if isna.any():
            yield f"{cov}_missing", cov, isna.astype(float), True


def balance(
    m: MatchedSample | PropensityScore,
    covariates: Sequence[str] | None = None,
    s_d_denom: str = "treated",
    thresholds: tuple[float, tuple[float, float]] = (0.1, (0.5, 2)),
    *,
    binary: str = "std",
    distance: bool = False,
) -> Balance:
    """Balance of each covariate before and after matching (or weighting).

    Parameters
    ----------
    m : MatchedSample
        From :func:`ppeval.match`. A :class:`~ppeval.propensity.PropensityScore` gives the
        "before" columns only.
    covariates : list of str, optional
        Columns to check (default: the propensity model's covariates). Any column of the
        data may be listed, e.g. ones left out of the model.
    s_d_denom : {"treated", "pooled"}
        Standard deviation in the SMD's denominator, from the unweighted full sample:
        the treated group's (cobalt's default for the ATT) or pooled over the two arms.
    thresholds : (float, (float, float))
        |SMD| threshold and variance-ratio bounds for the verdict.
    binary : {"std", "raw"}
        Binary covariates' SMD: standardized by the treated group's sqrt(p(1 - p)) in the
        unmatched sample (default; MatchIt's ``summary()``) or the raw difference in
        proportions (cobalt's ``bal.tab()`` default). The raw difference is always in
        ``diff_prop_before`` / ``diff_prop_after``.
    distance : bool
        Add a first row ``distance`` for the logit of the propensity score (as MatchIt's
        ``summary()``).

    Returns
    -------
    Balance

    Examples
    --------
    >>> import pandas as pd
    >>> from ppeval.propensity import PropensityScore
    >>> from ppeval.matching import match
    >>> df = pd.DataFrame({"treated": [1, 1, 0, 0, 0, 0], "x": [1.0, 2.0, 1.1, 2.2, 8.0, 9.0]})
    >>> m = match(PropensityScore.from_logit(df, "treated", df["x"], ["x"]), caliper_sd=None)
    >>> balance(m).table[["covariate", "smd_before", "smd_after"]].round(3).values.tolist()
    [['x', -5.056, -0.212]]
    """
    if s_d_denom not in ("treated", "pooled"):
        raise BalanceError(f"s_d_denom must be 'treated' or 'pooled', got {s_d_denom!r}")
    if binary not in ("raw", "std"):
        raise BalanceError(f"binary must be 'raw' or 'std', got {binary!r}")
    ps = m.ps if isinstance(m, MatchedSample) else m
    if not isinstance(ps, PropensityScore):
        raise BalanceError("balance() needs a MatchedSample from ppeval.match()")
    covariates = list(covariates) if covariates is not None else list(ps.covariates)
    if not covariates and not distance:
        raise BalanceError("no covariates to check: pass covariates=[...]")
    full = ps.data
    t_full = ps.treated_.to_numpy()
    after = m.data if isinstance(m, MatchedSample) else None
    if after is not None:
        t_after = after[ps.treatment].astype(bool).to_numpy()
        w_after = after["weight"].to_numpy(dtype=float)

    def rows_for(df):
        out = list(_columns(df, covariates, ps.kinds_))
        if distance:
            lg = ps.logit_.reindex(df.index).to_numpy(dtype=float) if df is not full \
                else ps.logit_.to_numpy(dtype=float)
            out.insert(0, ("distance", "distance", lg, False))
        return out

    before_rows = rows_for(full)
    after_rows = rows_for(after) if after is not None else [None] * len(before_rows)
    if after is not None and [r[0] for r in after_rows] != [r[0] for r in before_rows]:
        # a level absent after matching still needs its row: align by name
        amap = {r[0]: r for r in after_rows}
        after_rows = [amap.get(r[0], (r[0], r[1], np.zeros(len(after)), r[3])) for r in before_rows]

    records = []
    for (name, var, x, is_bin), ar in zip(before_rows, after_rows, strict=True):
        ok = ~np.isnan(x)
        xt, xc = x[ok & t_full], x[ok & ~t_full]
        wt, wc = np.ones(len(xt)), np.ones(len(xc))
        v_t, v_c = _wvar(xt, wt, is_bin), _wvar(xc, wc, is_bin)
        if s_d_denom == "treated":
            sd = np.sqrt(v_t)
            if not sd > 0:  # no variation among the treated: fall back to pooled
                sd = np.sqrt((v_t + v_c) / 2)
        else:
            sd = np.sqrt((v_t + v_c) / 2)
        standardize = (not is_bin) or binary == "std"
        scale = sd if standardize else 1.0
        mt_b, mc_b = _wmean(xt, wt), _wmean(xc, wc)
        e_max_b, e_mean_b = _ecdf_stats(xt, wt, xc, wc, is_bin)
        rec = {
            "covariate": name,
            "variable": var,
            "type": "binary" if is_bin else "continuous",
            "mean_treated_before": mt_b,
            "mean_control_before": mc_b,
            "smd_before": (mt_b - mc_b) / scale if scale > 0 else np.nan,
            "variance_ratio_before": v_t / v_c if (not is_bin and v_c > 0) else np.nan,
            "ecdf_max_before": e_max_b,
            "ecdf_mean_before": e_mean_b,
            "diff_prop_before": mt_b - mc_b if is_bin else np.nan,
        }
        if ar is not None:
            xa = ar[2]
            oka = ~np.isnan(xa)
            at, ac = oka & t_after, oka & ~t_after
            mt_a, mc_a = _wmean(xa[at], w_after[at]), _wmean(xa[ac], w_after[ac])
            va_t, va_c = _wvar(xa[at], w_after[at], is_bin), _wvar(xa[ac], w_after[ac], is_bin)
            e_max_a, e_mean_a = _ecdf_stats(xa[at], w_after[at], xa[ac], w_after[ac], is_bin,
                                            vals=np.unique(x[ok]))
            rec.update({
                "mean_treated_after": mt_a,
                "mean_control_after": mc_a,
                "smd_after": (mt_a - mc_a) / scale if scale > 0 else np.nan,
                "variance_ratio_after": va_t / va_c if (not is_bin and va_c > 0) else np.nan,
                "ecdf_max_after": e_max_a,
                "ecdf_mean_after": e_mean_a,
                "diff_prop_after": mt_a - mc_a if is_bin else np.nan,
            })
        else:
            rec.update({k: np.nan for k in ("mean_treated_after", "mean_control_after",
                                            "smd_after", "variance_ratio_after",
                                            "ecdf_max_after", "ecdf_mean_after", "diff_prop_after")})
        rec["sd_denominator"] = scale if standardize else np.nan
        records.append(rec)
    cols = ["covariate", "variable", "type", "mean_treated_before", "mean_control_before",
            "mean_treated_after", "mean_control_after", "smd_before", "smd_after",
            "variance_ratio_before", "variance_ratio_after", "ecdf_max_before",
            "ecdf_max_after", "ecdf_mean_before", "ecdf_mean_after", "diff_prop_before",
            "diff_prop_after", "sd_denominator"]
    table = pd.DataFrame(records, columns=cols)
    denom_txt = {
        "treated": "SMD denominator: SD of the treated group in the unweighted full sample "
                   "(cobalt's default for the ATT)",
        "pooled": "SMD denominator: pooled SD, sqrt((s_t^2 + s_c^2)/2), in the unweighted "
                  "full sample",
    }[s_d_denom]
    table.attrs["s_d_denom"] = s_d_denom
    table.attrs["smd_denominator"] = denom_txt
    table.attrs["binary"] = (
        "binary covariates: SMD = raw difference in proportions (cobalt's bal.tab default)"
        if binary == "raw"
        else "binary covariates: SMD = difference in proportions / sqrt(p(1 - p)) of the treated "
             "group in the unweighted full sample (MatchIt's summary())"
    )
    table.attrs["binary_convention"] = binary
    table.attrs["after"] = "weighted by the matching weights" if after is not None else "n/a"
    n = {"treated_before": int(t_full.sum()), "control_before": int((~t_full).sum())}
    if after is not None:
        n.update({"treated_after": float(w_after[t_after].sum()),
                  "control_after": float(w_after[~t_after].sum())})
    return Balance(table, s_d_denom, binary, thresholds, n)
