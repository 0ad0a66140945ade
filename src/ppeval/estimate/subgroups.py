"""Effects within subgroups (parent role, race/ethnicity, age band, removal for parental
drug use, ...) with interaction tests, and dose–response over mentoring hours among the
treated.

One model per subgroup variable: the treatment indicator, the subgroup's levels and
their interactions (``y ~ treated * subgroup``), fitted on the whole matched sample with
matching weights and cluster-robust SEs by matched set.  The effect in a level is a linear
combination of coefficients; the interaction p-value is the Wald test that all
treatment-by-subgroup terms are zero (L - 1 degrees of freedom).  Fitting one model
rather than one per level keeps the SEs comparable across levels and gives the
interaction test directly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import ConvergenceError
from ._data import Design
from .binary import fit_glm_cluster, se_text
from .results import Effect
from .survival import CoxPH

__all__ = ["subgroup_effects", "subgroup_effects_many", "dose_response"]


def _interaction_design(df: pd.DataFrame, treated: np.ndarray, by: str):
    levels = sorted(pd.unique(df[by].astype(str)))
    s = df[by].astype(str).to_numpy()
    X = pd.DataFrame({"const": 1.0, "treated": treated.astype(float)})
    inter = []
    for lev in levels[1:]:
        X[f"{by}[{lev}]"] = (s == lev).astype(float)
    for lev in levels[1:]:
        name = f"treated:{by}[{lev}]"
        X[name] = treated * (s == lev)
        inter.append(name)
    return X, levels, inter


def _combo(params: pd.Series, cov: pd.DataFrame, names: list[str]) -> tuple[float, float]:
    """Sum of coefficients ``names`` and its SE; NaN SE when its variance is not positive.

    A level whose units all share one outcome (or one matched set) has a combined variance
    of exactly 0 in theory and a rounding error of either sign in practice (-3e-17 on the
    committed extract): no standard error, rather than sqrt of a negative number or an
    interval of zero width.
    """
    c = pd.Series(0.0, index=params.index)
    c[names] = 1.0
    var = float(c @ cov @ c)
    scale = float(np.abs(np.diag(cov.loc[names, names].to_numpy())).sum())
    if not var > 1e-12 * scale:
        return float(c @ params), float("nan")
    return float(c @ params), float(np.sqrt(var))


def subgroup_effects(design: Design, by: str, *, y: np.ndarray | None = None,
                     durations: np.ndarray | None = None, events: np.ndarray | None = None,
                     measure: str | None = None, outcome: str | None = None,
                     window_months: int | None = None) -> pd.DataFrame:
    """Effect of treatment within each level of ``by`` with the interaction p-value.

    Parameters
    ----------
    design : rows, arms, weights and clusters.
    by : subgroup column (any type; levels compared as strings, first sorted level = reference).
    y : 0/1 outcome, for ``measure`` ``"risk_difference"`` (linear probability model,
        default) or ``"odds_ratio"`` (logistic).
    durations, events : time to event (events 1 = event), for ``"hazard_ratio"`` (Cox,
        cluster-robust).

    Returns
    -------
    DataFrame, one row per level: subgroup, level, measure, estimate, se, ci_low, ci_high,
    p_value, n_treated, n_comparison, events_treated, events_comparison,
    interaction_chisq, interaction_df, interaction_p, method.
    """
    df = design.df
    keep = df[by].notna().to_numpy()
    d = design.subset(keep) if not keep.all() else design
    yy = None if y is None else np.asarray(y)[keep]
    if durations is not None:
        measure = measure or "hazard_ratio"
        durations, events = np.asarray(durations)[keep], np.asarray(events)[keep]
    else:
        measure = measure or "risk_difference"
    X, levels, inter = _interaction_design(d.df, d.treated, by)
    # a level needs both arms, otherwise its effect is not estimable
    s = d.df[by].astype(str).to_numpy()
    for lev in levels:
        m = s == lev
        if not (d.treated[m].any() and (~d.treated[m]).any()):
            raise ValueError(f"subgroup {by}={lev!r} lacks treated or comparison units")
    if measure == "hazard_ratio":
        cph = CoxPH(robust=True).fit_arrays(
            X.drop(columns="const").to_numpy(), durations, events == 1, weights=d.weights,
            cluster=d.cluster if d.cluster is not None else np.arange(len(X)),
            names=list(X.columns[1:]))
        params, cov = cph.params_, cph.variance_matrix_
        method = (f"Cox model treated * {by} (Efron ties, weights), cluster-robust SE by "
                  f"{d.cluster_text}; interaction: robust Wald test")
        ev = events == 1
    else:
        fam = "identity" if measure == "risk_difference" else "logit"
        fit = fit_glm_cluster(yy, X, d.weights, d.cluster, fam)
        params, cov = fit.params, fit.cov
        model = "weighted linear probability model" if fam == "identity" else "weighted logistic model"
        method = f"{model} treated * {by}; {se_text(d)}; interaction: Wald test"
        ev = yy == 1
    b = params[inter].to_numpy()
    V = cov.loc[inter, inter].to_numpy()
    chisq = float(b @ np.linalg.solve(V, b)) if inter else np.nan
    p_int = float(stats.chi2.sf(chisq, len(inter))) if inter else np.nan
    rows = []
    for lev in levels:
        names = ["treated"] + ([f"treated:{by}[{lev}]"] if lev != levels[0] else [])
        est, se = _combo(params, cov, names)
        m = s == lev
        ratio = measure != "risk_difference"
        e = Effect.from_wald(measure, np.exp(est) if ratio else est, se, method=method,
                             outcome=outcome, window_months=window_months,
                             n_treated=int((m & d.treated).sum()),
                             n_comparison=int((m & ~d.treated).sum()),
                             events_treated=int((m & d.treated & ev).sum()),
                             events_comparison=int((m & ~d.treated & ev).sum()),
                             label=f"{by}={lev}")
        row = {"subgroup": by, "level": lev}
        row.update({k: getattr(e, k) for k in (
            "measure", "estimate", "se", "ci_low", "ci_high", "p_value", "n_treated",
            "n_comparison", "events_treated", "events_comparison")})
        row.update(interaction_chisq=chisq, interaction_df=len(inter), interaction_p=p_int,
                   method=method)
        rows.append(row)
    return pd.DataFrame(rows)


def _one_subgroup(design: Design, by: str, kwargs: dict) -> tuple[str, pd.DataFrame | None, str | None]:
    # module level (not a closure) so process and Dask workers can unpickle it
    try:
        return by, subgroup_effects(design, by, **kwargs), None
    except (ValueError, np.linalg.LinAlgError, ConvergenceError) as exc:  # a level without both arms (or events), a singular fit
        return by, None, str(exc)


def subgroup_effects_many(design: Design, by: Sequence[str], *, parallel: Mapping[str, Any] | None = None,
                          **kwargs: Any) -> tuple[pd.DataFrame, dict[str, str]]:
    """:func:`subgroup_effects` for several subgroup variables, one task each, through joblib.

    Parameters
    ----------
    design : rows, arms, weights and clusters.
    by : subgroup columns; each is one model (``y ~ treated * by``), fitted independently.
    parallel : a config (or its ``[parallel]`` section) for :func:`ppeval.parallel.parallel_backend`:
        all local cores (``n_jobs = -1``), or a Dask cluster (``dask_scheduler``). ``None``
        (the default) fits them one after another in this process: each fit takes well
        under a second, often less than starting workers.
    **kwargs : passed to :func:`subgroup_effects` (``y``, ``durations``, ``events``,
        ``measure``, ``outcome``, ``window_months``).

    Returns
    -------
    (DataFrame, dict)
        The rows of every variable that could be estimated, in the order of ``by``, and
        ``{variable: reason}`` for those that could not (a level without both arms).

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(3)
    >>> df = pd.DataFrame({"sex": rng.choice(["f", "m"], 400), "age": rng.choice(["young", "old"], 400)})
    >>> t = np.arange(400) % 2 == 0
    >>> d = Design(df, t, np.ones(400), None, "each unit its own cluster", False)
    >>> tab, skipped = subgroup_effects_many(d, ["sex", "age"], y=(rng.random(400) < 0.3).astype(float))
    >>> tab.groupby("subgroup", sort=False).size().to_dict(), skipped
    ({'sex': 2, 'age': 2}, {})
    """
    from ..parallel import parallel_map

    if parallel is None:
        results = [_one_subgroup(design, b, kwargs) for b in by]
    else:
        results = parallel_map(_subgroup_task, [(design, b, kwargs) for b in by], config=parallel)
    frames = [tab for _, tab, _ in results if tab is not None]
    skipped = {b: why for b, _, why in results if why is not None}
    return (pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()), skipped


def _subgroup_task(args: tuple[Design, str, dict]) -> tuple[str, pd.DataFrame | None, str | None]:
    return _one_subgroup(*args)


def dose_response(df: pd.DataFrame, hours: str, *, binary: str | None = None,
                  duration: str | None = None, event: str | None = None,
                  weights: str | None = None, cluster: str | None = None,
                  per: float = 10.0, bands: list[float] | None = None) -> dict:
    """Outcome against mentoring hours among the treated.

    Parameters
    ----------
    df : treated units only (one row each), with the ``hours`` column.
    binary : a 0/1 outcome (logistic model: trend odds ratio per ``per`` hours), or
    duration, event : time to event (Cox model: trend hazard ratio per ``per`` hours).
    weights, cluster : optional columns (cluster-robust SEs, vcovCL HC1 for the logistic
        model, R ``coxph(cluster=)`` for Cox).
    bands : cut points for hour bands (e.g. ``[0, 10, 25, 50, inf]``); each band's ratio
        against the lowest band is reported too.

    Returns
    -------
    dict with ``trend`` (an :class:`Effect`, measure ``trend_odds_ratio`` or
    ``trend_hazard_ratio``) and ``bands`` (DataFrame or None).

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(1)
    >>> h = rng.uniform(0, 60, 400)
    >>> d = pd.DataFrame({"hours": h, "y": rng.random(400) < 1 / (1 + np.exp(1.5 - 0.05 * h))})
    >>> r = dose_response(d, "hours", binary="y", per=10)
    >>> r["trend"].estimate > 1
    True
    """
    d = df[df[hours].notna()].reset_index(drop=True)
    w = np.ones(len(d)) if weights is None else d[weights].to_numpy(float)
    cl = None if cluster is None else pd.factorize(d[cluster])[0]
    h = d[hours].to_numpy(float) / per
    cl_text = "each unit its own cluster (HC1)" if cluster is None else f"cluster {cluster!r}"

    def fit(X: pd.DataFrame):
        if binary is not None:
            y = d[binary].astype(float).to_numpy()
            g = fit_glm_cluster(y, X, w, cl, "logit")
            return g.params, g.cov
        cph = CoxPH(robust=True).fit_arrays(
            X.drop(columns="const").to_numpy(), d[duration].to_numpy(float),
            d[event].to_numpy() == 1, weights=w,
            cluster=cl if cl is not None else np.arange(len(d)), names=list(X.columns[1:]))
        return cph.params_, cph.variance_matrix_

    measure = "trend_odds_ratio" if binary is not None else "trend_hazard_ratio"
    model = ("logistic regression, vcovCL-type sandwich SE" if binary is not None
             else "Cox model (Efron), robust SE")
    params, cov = fit(pd.DataFrame({"const": 1.0, "hours": h}))
    se = float(np.sqrt(cov.loc["hours", "hours"]))
    trend = Effect.from_wald(measure, float(np.exp(params["hours"])), se,
                             method=f"{model} ({cl_text}) on hours/{per:g} among the treated",
                             n=len(d), label=f"per {per:g} hours")
    band_tab = None
    if bands is not None:
        cats = pd.cut(d[hours], bands, right=False, include_lowest=True)
        labels = [str(c) for c in cats.cat.categories]
        X = pd.DataFrame({"const": np.ones(len(d))})
        for c in labels[1:]:
            X[c] = (cats.astype(str) == c).to_numpy(float)
        present = [c for c in labels[1:] if X[c].any()]
        X = X[["const"] + present]
        params, cov = fit(X)
        rows = [{"band": labels[0], "n": int((cats.astype(str) == labels[0]).sum()),
                 "ratio": 1.0, "ci_low": np.nan, "ci_high": np.nan, "p_value": np.nan}]
        z = stats.norm.ppf(0.975)
        for c in present:
            b, s = float(params[c]), float(np.sqrt(cov.loc[c, c]))
            rows.append({"band": c, "n": int((cats.astype(str) == c).sum()), "ratio": np.exp(b),
                         "ci_low": np.exp(b - z * s), "ci_high": np.exp(b + z * s),
                         "p_value": float(2 * stats.norm.sf(abs(b / s)))})
        band_tab = pd.DataFrame(rows)
    return {"trend": trend, "bands": band_tab}
