"""Outcome effects on matched or weighted samples.

``estimate`` is the entry point; the modules hold the estimators it uses, each usable
alone:

* :mod:`.binary` — risks, risk difference, risk ratio, odds ratio (cluster-robust SE as
  R ``sandwich::vcovCL``), g-computation with covariates, McNemar's test;
* :mod:`.survival` — :class:`CoxPH` (Efron ties, weights, cluster-robust SE equal to R's
  ``coxph(..., cluster = )``, computed in O(n log n)), :class:`KaplanMeier`, log-rank,
  restricted mean survival time, proportional-hazards test (``cox.zph``);
* :mod:`.competing` — :class:`AalenJohansen` (exact ties), :class:`FineGray`
  (``finegray`` + weighted Cox), cause-specific hazards;
* :mod:`.sensitivity` — E-values, Rosenbaum bounds;
* :mod:`.subgroups` — effects by subgroup with interaction tests, dose–response.

Examples
--------
>>> import numpy as np, pandas as pd
>>> from ppeval.estimate import estimate
>>> rng = np.random.default_rng(3)
>>> n = 400
>>> df = pd.DataFrame({"treated": np.arange(n) % 2 == 0, "match_id": np.arange(n) // 2,
...                    "weight": 1.0})
>>> df["week"] = rng.exponential(np.where(df.treated, 60, 40)).round() + 1
>>> df["arrest"] = (df.week < 52).astype(int)
>>> df.loc[df.week > 52, "week"] = 52
>>> res = estimate(df, duration="week", event="arrest", cluster="match_id")
>>> res.to_frame()[["measure", "estimate"]].round(2).values.tolist()
[['hazard_ratio', 0.58]]
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import ConvergenceError, DataError
from ._data import Design, as_binary, resolve, window_columns, window_of
from .binary import GLMCluster, McNemarResult, binary_effects, fit_glm_cluster, mcnemar
from .competing import AalenJohansen, FineGray, finegray_expand
from .results import CONTRACT_MEASURES, Effect, EffectResults
from .sensitivity import EValue, RosenbaumBounds, evalue, rosenbaum_bounds
from .subgroups import dose_response, subgroup_effects, subgroup_effects_many
from .survival import CoxPH, KaplanMeier, logrank_test, rmst_difference

__all__ = [
    "AalenJohansen", "CONTRACT_MEASURES", "CoxPH", "EValue", "Effect", "EffectResults",
    "FineGray", "GLMCluster", "KaplanMeier", "McNemarResult", "RosenbaumBounds",
    "binary_effects", "dose_response", "estimate", "evalue", "finegray_expand",
    "fit_glm_cluster", "logrank_test", "mcnemar", "rmst_difference", "rosenbaum_bounds",
    "subgroup_effects",
    "subgroup_effects_many",
]

_ARM_LABELS = {True: "treated", False: "comparison"}


def _flow_row(step: str, design: Design, mask: np.ndarray) -> dict:
    t = design.treated
    return {"step": step, "treated": int((mask & t).sum()), "comparison": int((mask & ~t).sum())}


def _cox_method(design: Design, competing: bool, robust: bool, ties: str) -> str:
    w = "matching weights" if design.weighted else "no weights"
    if design.cluster is not None:
        se = (f"cluster-robust (sandwich) SE by {design.cluster_text}, as R "
              "coxph(..., cluster = ) (no small-sample factor)")
    elif robust:
        se = "robust (sandwich) SE, each row its own cluster, as R coxph(robust = TRUE)"
    else:
        se = "model-based SE"
    what = ("cause-specific Cox model (competing exits censored)" if competing
            else "Cox proportional hazards model")
    return f"{what}, {ties.capitalize()} ties, {w}; {se}"


def _pairs_ok(design: Design) -> bool:
    if "match_id" not in design.df.columns:
        return False
    g = pd.DataFrame({"m": design.df["match_id"].to_numpy(), "t": design.treated})
    agg = g.groupby("m")["t"].agg(["size", "sum"])
    return bool(len(agg)) and bool(((agg["size"] == 2) & (agg["sum"] == 1)).all())


def _binary_block(design: Design, col: str, outcome: str, window: int | None, adjust,
                  flow: list, tests: dict, models: dict) -> list[Effect]:
    y, obs = as_binary(design.df[col], col)
    if not obs.all():
        flow.append(_flow_row(f"{col}: left out, window not fully observed or missing",
                              design, ~obs))
    d = design.subset(obs) if not obs.all() else design
    flow.append(_flow_row(f"{col}: analysed", design, obs))
    yy = y[obs]
    effects, fitted = binary_effects(d, yy, outcome=outcome, window_months=window, adjust=adjust)
    models.update({f"{k}[{col}]": v for k, v in fitted.items()})
    if _pairs_ok(design):
        # 1:1 pairs: McNemar and Rosenbaum bounds on the pairs with both outcomes observed
        mid = d.df["match_id"].to_numpy()
        both = pd.Series(mid).map(pd.Series(mid).value_counts()).to_numpy() == 2
        mc = mcnemar(d.treated[both], yy[both], mid[both])
        tests[f"mcnemar[{col}]"] = mc
        tests[f"rosenbaum[{col}]"] = rosenbaum_bounds(mc.n10, mc.n01)
    return effects


def estimate(
    data,
    outcome: str | None = None,
    *,
    duration: str | None = None,
    event: str | None = None,
    binary: str | None = None,
    treatment: str | None = None,
    weights: str | None = None,
    cluster: str | None = None,
    adjust: list[str] | None = None,
    windows: list[int] | None = None,
    horizon: float | None = None,
    ties: str = "efron",
) -> EffectResults:
    """Estimate the effects of treatment on one outcome.

    Parameters
    ----------
    data : a matched sample (any object with a ``.data`` DataFrame holding ``treated``,
        ``match_id``, ``weight`` and optionally ``family_id``) or a DataFrame.
    outcome : a cohort outcome name (``"reunification"``, ``"tpr"``, ...): uses
        ``<outcome>_days``, ``<outcome>_status`` (0 censored, 1 event, 2 competing) and the
        window booleans (``reunified_12m``, ...).  Rows with a missing status are not at
        risk for the outcome and are left out (counted in ``res.flow``).
    duration, event : time-to-event columns instead of ``outcome`` (event 0/1/2).
    binary : a 0/1 (or boolean) column instead; its window is read from a ``_<w>m`` suffix.
    treatment, weights, cluster : column names; a matched sample defaults to ``treated``,
        ``weight`` and its matched sets (``match_id``, joined across shared families).
    adjust : covariates for doubly robust (g-computation) binary effects.
    windows : window months to report (default: every window column found).
    horizon : restricted-mean horizon (default: the smaller arm's longest follow-up).
    ties : ``"efron"`` or ``"breslow"`` for the Cox and Fine–Gray models.

    Returns
    -------
    EffectResults
        ``to_frame()`` gives one row per effect (measure, estimate, se, ci_low, ci_high,
        p_value, method, counts).  Time to event: ``hazard_ratio`` (cause-specific when
        there are competing exits) and, with competing exits, the Fine–Gray
        ``subdistribution_hazard_ratio``; each window: ``risk_difference``, ``risk_ratio``,
        ``odds_ratio``.  Also ``.km`` or ``.cif``, ``.tests`` (log-rank, robust score test,
        proportional hazards, McNemar, Rosenbaum bounds), ``.sensitivity`` (E-values),
        ``.secondary`` (restricted mean time difference, cumulative incidence differences,
        cause-specific hazard ratio of the competing exit), ``.flow`` and ``.plot()``.
    """
    given = sum(x is not None for x in (outcome, duration, binary))
    if given != 1 or (duration is None) != (event is None):
        raise ValueError("give exactly one of outcome=, duration= with event=, or binary=")
    design = resolve(data, treatment=treatment, weights=weights, cluster=cluster)
    flow = [_flow_row("rows in sample", design, np.ones(len(design.df), bool))]
    effects: list[Effect] = []
    secondary: list[Effect] = []
    tests: dict = {}
    models: dict = {}
    km = cif = None
    name = outcome or binary or event
    if binary is not None:
        effects += _binary_block(design, binary, name, window_of(binary), adjust, flow, tests, models)
    else:
        dcol = f"{outcome}_days" if outcome else duration
        scol = f"{outcome}_status" if outcome else event
        for c in (dcol, scol):
            if c not in design.df.columns:
                raise DataError(f"outcome column {c!r} not found")
        status_raw = design.df[scol]
        days_raw = design.df[dcol]
        ok = (status_raw.notna() & days_raw.notna()).to_numpy()
        if not ok.all():
            flow.append(_flow_row(f"{name}: left out, missing status (not at risk)", design, ~ok))
        d = design.subset(ok) if not ok.all() else design
        flow.append(_flow_row(f"{name}: analysed (time to event)", design, ok))
        status = d.df[scol].astype(float).to_numpy()
        if not np.isin(status, [0, 1, 2]).all():
            raise DataError(f"{scol!r} must be 0 (censored), 1 (event) or 2 (competing event)")
        status = status.astype(int)
        days = d.df[dcol].to_numpy(float)
        if np.any(days < 0):
            raise DataError(f"{dcol!r} has negative times")
        competing = bool((status == 2).any())
        ev = status == 1
        t, w = d.treated, d.weights
        counts = dict(n=len(days), n_treated=int(t.sum()), n_comparison=int((~t).sum()),
                      events_treated=int((ev & t).sum()), events_comparison=int((ev & ~t).sum()),
                      n_clusters=d.n_clusters)
        integer_w = bool(np.allclose(w, np.round(w)))
        robust = d.cluster is not None or not integer_w
        cl = d.cluster if d.cluster is not None else (np.arange(len(days)) if robust else None)
        cph = CoxPH(ties=ties, robust=robust).fit_arrays(
            t.astype(float)[:, None], days, ev, weights=w, cluster=cl, names=["treated"])
        models["cox"] = cph
        effects.append(Effect.from_wald(
            "hazard_ratio", float(np.exp(cph.params_["treated"])), float(cph.se_["treated"]),
            method=_cox_method(d, competing, robust, ties), outcome=name, **counts))
        try:
            tests["proportional_hazards"] = cph.ph_test()
        except np.linalg.LinAlgError:
            pass
        tests["logrank"] = logrank_test(days, ev.astype(int), t, weights=w)
        if cph.robust_score_test_ is not None:
            from scipy import stats as _st

            rs = cph.robust_score_test_
            tests["robust_score"] = {"chisq": rs, "df": 1, "p": float(_st.chi2.sf(rs, 1)),
                                     "note": "cluster-robust score (log-rank type) test"}
        if competing:
            fg_df = pd.DataFrame({"time": days, "status": status, "treated": t.astype(float), "w": w,
                                  "cl": cl if cl is not None else np.arange(len(days))})
            fg = FineGray(ties=ties).fit(fg_df, "time", "status", ["treated"], weights_col="w",
                                         cluster_col="cl")
            models["fine_gray"] = fg
            se_txt = (f"cluster-robust SE by {d.cluster_text}" if d.cluster is not None
                      else "robust SE by unit")
            effects.append(Effect.from_wald(
                "subdistribution_hazard_ratio", float(np.exp(fg.params_["treated"])),
                float(fg.se_["treated"]),
                method=(f"Fine-Gray model (R survival::finegray + weighted coxph, {ties.capitalize()} "
                        f"ties), competing exits kept in the risk set with censoring weights; {se_txt}"),
                outcome=name, **counts))
            comp = status == 2
            try:
                cs2 = CoxPH(ties=ties, robust=True).fit_arrays(
                    t.astype(float)[:, None], days, comp, weights=w,
                    cluster=cl if cl is not None else np.arange(len(days)), names=["treated"])
            except (ConvergenceError, np.linalg.LinAlgError):
                # the competing exit's own hazard ratio is secondary: without events of it in
                # one arm it is not finite, and the primary effects stand without it
                cs2 = None
            if cs2 is not None:
                models["cox_competing"] = cs2
                c2 = dict(counts, events_treated=int((comp & t).sum()),
                          events_comparison=int((comp & ~t).sum()))
                secondary.append(Effect.from_wald(
                    "hazard_ratio", float(np.exp(cs2.params_["treated"])), float(cs2.se_["treated"]),
                    method="cause-specific Cox model of the competing exit; " + _cox_method(d, True, True, ties).split("; ")[1],
                    outcome=name, label="competing exit", **c2))
            cif = AalenJohansen().fit(days, status, w, groups=t, cluster=d.cluster,
                                      labels=_ARM_LABELS)
        else:
            km = KaplanMeier().fit(days, ev.astype(int), w, groups=t, cluster=d.cluster,
                                   labels=_ARM_LABELS)
            rm = rmst_difference(days, ev.astype(int), t, w, d.cluster, tau=horizon)
            secondary.append(Effect.from_wald(
                "rmst_difference", rm["difference"], rm["se"],
                method=(f"difference in restricted mean time to event up to {rm['tau']:g} "
                        f"(weighted Kaplan-Meier areas); infinitesimal-jackknife SE with "
                        f"influences summed by {d.cluster_text}"),
                outcome=name, label=f"tau={rm['tau']:g}",
                extra={"tau": rm["tau"], "rmst_treated": rm["rmst_treated"],
                       "rmst_comparison": rm["rmst_comparison"]}, **counts))
        if outcome is not None:
            wcols = window_columns(design.df, outcome)
            if windows is not None:
                wcols = {k: v for k, v in wcols.items() if k in windows}
            for months, col in wcols.items():
                effects += _binary_block(design, col, name, months, adjust, flow, tests, models)
                if competing:
                    days_w = months * 365 // 12
                    diff = cif.difference_at(days_w, treated_group=True)
                    secondary.append(Effect.from_wald(
                        "cumulative_incidence_difference", diff["difference"], diff["se"],
                        method=(f"difference in Aalen-Johansen cumulative incidence at {days_w} days; "
                                f"infinitesimal-jackknife SE with influences summed by {d.cluster_text}"),
                        outcome=name, window_months=months,
                        risk_treated=diff["cif_treated"], risk_comparison=diff["cif_comparison"]))
    res = EffectResults(name, effects, secondary=secondary, km=km, cif=cif, tests=tests,
                        flow=pd.DataFrame(flow), models=models, arms=_ARM_LABELS)
    res.sensitivity = _evalues(effects)
    return res


def _evalues(effects: list[Effect]) -> pd.DataFrame:
    """E-values for every ratio effect (rare outcome: fewer than 15% with the event)."""
    rows = []
    for e in effects:
        if e.measure in ("risk_ratio", "odds_ratio", "hazard_ratio", "subdistribution_hazard_ratio") \
                and np.isfinite(e.estimate):
            if e.risk_comparison is not None:
                prop = e.risk_comparison
            elif e.n:
                prop = ((e.events_treated or 0) + (e.events_comparison or 0)) / e.n
            else:
                prop = 1.0
            ev = evalue(e.estimate, e.ci_low, e.ci_high, measure=e.measure, rare=prop < 0.15)
            rows.append({"measure": e.measure, "window_months": e.window_months,
                         "estimate": e.estimate, "rare_outcome": ev.rare,
                         "evalue": ev.evalue, "evalue_ci": ev.evalue_ci})
    return pd.DataFrame(rows, columns=["measure", "window_months", "estimate", "rare_outcome",
                                       "evalue", "evalue_ci"])
