"""Time to event on matched or weighted samples: Kaplan–Meier by arm with unweighted
at-risk counts, the log-rank test, Cox proportional hazards with Efron ties and
cluster-robust (sandwich) SEs by matched set, the proportional-hazards test, and the
restricted mean survival time.

:class:`CoxPH` fits the model with its own Newton–Raphson (:mod:`._cox`), exact for Efron
or Breslow ties with case weights, (start, stop] rows and strata, and computes the score
residuals in O(n) after one sort.  Its robust variance equals R's
``coxph(..., cluster = )``: ``V (sum_g s_g s_g') V`` with ``s_g`` the weighted score
residuals summed in cluster g and V the inverse information (no small-sample factor, as R).

Examples
--------
>>> from lifelines.datasets import load_rossi
>>> rossi = load_rossi()
>>> rossi["pair"] = rossi.index // 2
>>> cph = CoxPH().fit(rossi, "week", "arrest", ["fin"], cluster_col="pair")
>>> round(float(cph.params_["fin"]), 4), round(float(cph.se_["fin"]), 4)
(-0.3691, 0.1871)
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from ._cox import CoxData, collapse, fit_cox, score_residuals, zph_test
from ._nonparam import (
    ProductLimit,
    check_ci_transform,
    confint,
    ij_variance_clustered,
    product_limit,
    time_index,
)

__all__ = ["CoxPH", "KaplanMeier", "logrank_test", "rmst_difference"]


class CoxPH:
    """Cox proportional hazards model with case weights and cluster-robust SEs.

    Parameters
    ----------
    ties : ``"efron"`` (default, as R's ``coxph``) or ``"breslow"``.
    robust : ``None`` (default) uses the robust variance when a cluster is given (R's
        ``cluster =``) and the model variance otherwise; ``True`` forces the robust
        variance (each row its own cluster when none is given: R's ``robust = TRUE``).
        ``False`` with a cluster is an error, not silently ignored (cf. lifelines #1598).
    alpha : 1 - confidence level of the intervals.

    Attributes (after ``fit``)
    --------------------------
    params_, se_, se_model_, se_robust_ : Series by covariate.
    variance_matrix_ : the covariance used for ``se_`` (robust when robust).
    variance_matrix_model_ : inverse information.
    log_likelihood_, log_likelihood_null_, score_test_, wald_test_, robust_score_test_.
    n_, n_events_, n_clusters_, iterations_.
    score_residuals_ : weighted score residuals (n, p); ``dfbeta_`` = these @ V_model.
    summary : DataFrame with coef, exp(coef), se(coef), robust se, z, p, CI of exp(coef).

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> df = pd.DataFrame({"t": [1, 2, 2, 3, 4, 5.0], "e": [1, 1, 0, 1, 0, 1],
    ...                    "x": [1, 0, 1, 0, 1, 0.0]})
    >>> CoxPH().fit(df, "t", "e", ["x"]).params_.round(4).tolist()  # R: -0.3401437586
    [-0.3401]
    """

    def __init__(self, ties: str = "efron", robust: bool | None = None, alpha: float = 0.05):
        self.ties = ties
        self.robust = robust
        self.alpha = alpha

    def fit(self, df: pd.DataFrame, duration_col: str, event_col: str,
            covariates: list[str] | None = None, weights_col: str | None = None,
            cluster_col: str | None = None, entry_col: str | None = None,
            strata: str | list[str] | None = None) -> CoxPH:
        """Fit on a DataFrame; ``event_col`` is 1/True for an event (other values censor)."""
        if covariates is None:
            skip = {duration_col, event_col, weights_col, cluster_col, entry_col}
            skip |= set([strata] if isinstance(strata, str) else strata or [])
            covariates = [c for c in df.columns if c not in skip]
        X = df[covariates].astype(float).to_numpy()
        st = None
        if strata is not None:
            st = pd.factorize(pd.MultiIndex.from_frame(df[[strata] if isinstance(strata, str) else strata]))[0]
        cl = pd.factorize(df[cluster_col])[0] if cluster_col is not None else None
        return self.fit_arrays(
            X, df[duration_col].to_numpy(float), (df[event_col].to_numpy() == 1),
            weights=None if weights_col is None else df[weights_col].to_numpy(float),
            start=None if entry_col is None else df[entry_col].to_numpy(float),
            strata=st, cluster=cl, names=list(covariates))

    def fit_arrays(self, X, stop, event, weights=None, start=None, strata=None, cluster=None,
                   names=None, tail=None) -> CoxPH:
        """Fit on arrays.  ``tail`` = (entry, weight, mult_fn) adds Fine–Gray tail rows."""
        if self.robust is False and cluster is not None:
            raise ValueError("robust=False conflicts with a cluster: the clustered variance "
                             "is robust by construction; drop the cluster or use robust=None")
        kw = {}
        if tail is not None:
            kw = dict(tail_entry=tail[0], tail_weight=tail[1], tail_mult_fn=tail[2])
        data = CoxData(X, stop, event, weights=weights, start=start, strata=strata,
                       ties=self.ties, **kw)
        if data.n_events_ == 0:
            raise ValueError("no events: the Cox model cannot be fitted")
        s0, s, it = fit_cox(data)
        p = data.X.shape[1]
        names = names or [f"x{i}" for i in range(p)]
        V = np.linalg.inv(s.information)
        self._data = data
        self.iterations_ = it
        self.n_ = int(data.X.shape[0])
        self.n_events_ = data.n_events_
        self.log_likelihood_ = s.loglik
        self.log_likelihood_null_ = s0.loglik
        self.score_test_ = float(s0.score @ np.linalg.solve(s0.information, s0.score))
        self.params_ = pd.Series(s.beta, index=names, name="coef")
        self.variance_matrix_model_ = pd.DataFrame(V, index=names, columns=names)
        self.se_model_ = pd.Series(np.sqrt(np.diag(V)), index=names)
        robust = self.robust if self.robust is not None else cluster is not None
        self.robust_ = bool(robust)
        self.cluster_ = None if cluster is None else np.asarray(cluster)
        if robust:
            res = score_residuals(data, s.beta)
            self.score_residuals_ = res
            cl = self.cluster_ if self.cluster_ is not None else None
            D = collapse(res, pd.factorize(cl)[0] if cl is not None else None) @ V
            Vr = D.T @ D
            self.n_clusters_ = int(D.shape[0])
            self.variance_matrix_ = pd.DataFrame(Vr, index=names, columns=names)
            self.se_robust_ = pd.Series(np.sqrt(np.diag(Vr)), index=names)
            res0 = collapse(score_residuals(data, np.zeros(p)),
                            pd.factorize(cl)[0] if cl is not None else None)
            u0 = s0.score
            self.robust_score_test_ = float(u0 @ np.linalg.solve(res0.T @ res0, u0))
        else:
            self.score_residuals_ = None
            self.n_clusters_ = None
            self.variance_matrix_ = self.variance_matrix_model_
            self.se_robust_ = None
            self.robust_score_test_ = None
        Vu = self.variance_matrix_.to_numpy()
        self.se_ = pd.Series(np.sqrt(np.diag(Vu)), index=names)
        self.wald_test_ = float(s.beta @ np.linalg.solve(Vu, s.beta))
        return self

    @property
    def dfbeta_(self) -> np.ndarray:
        """R's ``residuals(fit, type = "dfbeta")`` (weighted), one row per input row."""
        res = self.score_residuals_
        if res is None:
            res = score_residuals(self._data, self.params_.to_numpy())
        return res @ self.variance_matrix_model_.to_numpy()

    @property
    def hazard_ratios_(self) -> pd.Series:
        return np.exp(self.params_).rename("exp(coef)")

    @property
    def summary(self) -> pd.DataFrame:
        """Coefficients with SEs (model and robust), z, p and CI of the hazard ratio."""
        z = stats.norm.ppf(1 - self.alpha / 2)
        b, se = self.params_, self.se_
        out = pd.DataFrame({
            "coef": b, "exp(coef)": np.exp(b), "se(coef)": self.se_model_,
            "robust se": self.se_robust_ if self.se_robust_ is not None else np.nan,
            "z": b / se, "p": 2 * stats.norm.sf(np.abs(b / se)),
            f"exp(coef) lower {1 - self.alpha:.0%}": np.exp(b - z * se),
            f"exp(coef) upper {1 - self.alpha:.0%}": np.exp(b + z * se),
        })
        out.index.name = "covariate"
        return out

    def ph_test(self, transform: str = "km") -> pd.DataFrame:
        """Proportional-hazards test on scaled Schoenfeld residuals, as R's ``cox.zph``.

        The score test of adding ``x * g(t)`` for each covariate (and all together,
        GLOBAL), with g the Kaplan–Meier transform ``1 - S(t-)`` (R's default), ``"rank"``,
        ``"log"`` or ``"identity"``.  Returns a table with chisq, df and p.
        """
        data = self._data
        if data.start is not None:
            raise NotImplementedError("ph_test supports right-censored data only")
        times, ev = data.stop, data.event
        if transform == "km":
            pl = product_limit(times, ev.astype(int))
            Sprev = np.concatenate([[1.0], pl.surv])
            tt = 1 - Sprev[np.searchsorted(pl.time, times, side="left")]
        elif transform == "rank":
            tt = stats.rankdata(times)
        elif transform == "log":
            tt = np.log(times)
        elif transform == "identity":
            tt = times.astype(float)
        else:
            raise ValueError(f"unknown transform {transform!r}")
        center = tt[ev].mean()
        # g at each event time: every death at t has the same transformed time
        lookup = pd.Series(tt[ev] - center, index=times[ev]).groupby(level=0).first()

        def g_of_time(ut):
            return lookup.reindex(ut).to_numpy()

        per, df, glob = zph_test(data, self.params_.to_numpy(), g_of_time)
        p = len(per)
        tab = pd.DataFrame({"chisq": np.r_[per, glob], "df": np.r_[df, p].astype(int)},
                           index=list(self.params_.index) + ["GLOBAL"])
        tab["p"] = stats.chi2.sf(tab["chisq"], tab["df"])
        return tab

    check_assumptions = ph_test

    def __repr__(self) -> str:
        if not hasattr(self, "params_"):
            return f"CoxPH(ties={self.ties!r}) (not fitted)"
        return f"CoxPH(ties={self.ties!r}, n={self.n_}, events={self.n_events_})\n{self.summary}"

    def _repr_html_(self) -> str:
        if not hasattr(self, "params_"):
            return repr(self)
        return self.summary.to_html(float_format=lambda v: f"{v:.4g}")


# ---------------------------------------------------------------------------------------
# Kaplan–Meier
# ---------------------------------------------------------------------------------------


def _km_table(pl: ProductLimit, variance: str, alpha: float, cluster: np.ndarray | None = None,
              ci_transform: str = "log") -> pd.DataFrame:
    Y, d = pl.n_risk, pl.n_event_all
    with np.errstate(divide="ignore", invalid="ignore"):
        if variance == "greenwood":
            se = np.sqrt(np.cumsum(np.where(Y > d, d / (Y * (Y - d)), np.inf * (d > 0))))
        else:  # infinitesimal jackknife, influences summed by cluster; SE of log S
            var = ij_variance_clustered(pl, cluster)[:, 0]
            # R: ifelse(se == 0, 0, se / S), so S = 0 with no variance keeps SE 0
            se = np.where(var == 0, 0.0, np.sqrt(var) / pl.surv)
        lower, upper = confint(pl.surv, se, ci_transform, alpha)
        cumhaz = np.cumsum(np.where(Y > 0, d / Y, 0.0))
    return pd.DataFrame({
        "time": pl.time, "n_risk": Y, "n_event": d, "n_censor": pl.n_censor,
        "n_risk_unweighted": pl.n_risk_unweighted.astype(int),
        "n_event_unweighted": pl.n_event_unweighted.sum(axis=1).astype(int),
        "surv": pl.surv, "std_err": se, "lower": lower, "upper": upper, "cumhaz": cumhaz,
    })


def _rmst(pl: ProductLimit, tau: float):
    """(RMST to tau, Greenwood-type SE as R's survfit, IJ influence per row)."""
    t = pl.time
    keep = t < tau
    grid = np.concatenate([[0.0], t[keep], [tau]])
    Svals = np.concatenate([[1.0], pl.surv[keep]])
    area = np.diff(grid) * Svals
    value = float(area.sum())
    # R_l: area from u_l to tau, for the distinct times u_l < tau (0 beyond)
    R = np.zeros(pl.M)
    R[: keep.sum()] = np.cumsum(area[::-1])[::-1][1:]
    Y, d = pl.n_risk, pl.n_event_all
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(d > 0, R**2 * d / (Y * (Y - d)), 0.0)
    se_gw = float(np.sqrt(terms[keep].sum()))
    # IJ influence: -w_i [delta_i h_p R_p - sum_{l <= p} h_l dL_l R_l]
    hdl = pl.h * np.where(Y > 0, d / Y, 0.0)
    cum = np.concatenate([[0.0], np.cumsum(hdl * R)])
    p = pl.pos
    infl = -pl.w * (pl.event * pl.h[p - 1] * R[p - 1] - cum[p])
    return value, se_gw, infl


class KaplanMeier:
    """Weighted Kaplan–Meier curves by arm, with unweighted at-risk counts beside them.

    Parameters
    ----------
    variance : ``"greenwood"`` (R ``survfit`` with case weights) or ``"ij"`` (infinitesimal
        jackknife, R ``survfit(..., robust = TRUE)``); default: Greenwood for integer
        weights without a cluster, IJ otherwise (Greenwood is not valid for matching
        weights or matched sets).  With a ``cluster`` the IJ influences are summed within
        clusters (R ``survfit(..., cluster = )``); ``"greenwood"`` with a cluster is an
        error, not silently unclustered.
    alpha : 1 - confidence level.
    ci_transform : scale of the pointwise intervals: ``"log"`` (default, R's
        ``conf.type = "log"``), ``"loglog"`` (R ``"log-log"``) or ``"linear"`` (R
        ``"plain"``); R's names are accepted too.

    Attributes
    ----------
    table_ : one row per arm and distinct time: time, n_risk (weighted), n_event
        (weighted), n_censor, n_risk_unweighted, n_event_unweighted, surv, std_err (SE of
        log S: R's ``std.err`` for a Greenwood fit; a robust or clustered fit in R 3.5
        reports the SE of S, which is ``std_err * surv``), lower, upper, cumhaz.
    variance_ : the variance used; clustered_ : whether the IJ influences were summed by
        cluster.

    Examples
    --------
    >>> from lifelines.datasets import load_rossi
    >>> r = load_rossi()
    >>> km = KaplanMeier().fit(r["week"], r["arrest"], groups=r["fin"])
    >>> round(float(km.rmst(52).loc[0, "rmst"]), 5)
    44.83333
    """

    def __init__(self, variance: str | None = None, alpha: float = 0.05, ci_transform: str = "log"):
        self.variance = variance
        self.alpha = alpha
        self.ci_transform = check_ci_transform(ci_transform)

    def fit(self, durations, events, weights=None, groups=None, cluster=None,
            labels: dict | None = None) -> KaplanMeier:
        """Fit one curve per level of ``groups`` (events: 1/True = event, else censored).

        ``cluster`` (e.g. matched sets) makes the curve SEs, the intervals and the RMST's
        ``se_ij`` cluster-robust."""
        durations = np.asarray(durations, float)
        events = (np.asarray(events) == 1).astype(int)
        w = np.ones(durations.size) if weights is None else np.asarray(weights, float)
        groups = np.zeros(durations.size, int) if groups is None else np.asarray(groups)
        if self.variance == "greenwood" and cluster is not None:
            raise ValueError("variance='greenwood' conflicts with a cluster: clustered curve "
                             "SEs are infinitesimal-jackknife (R survfit(cluster = )); use "
                             "variance='ij' or None")
        variance = self.variance or ("greenwood" if cluster is None and np.allclose(w, np.round(w))
                                     else "ij")
        self.variance_ = variance
        self.cluster_ = None if cluster is None else pd.factorize(np.asarray(cluster))[0]
        self.clustered_ = self.cluster_ is not None
        self._groups, self._w = groups, w
        self.fits_, tabs = {}, []
        self.labels_ = labels or {}
        for g in pd.unique(groups):
            m = groups == g
            pl = product_limit(durations[m], events[m], w[m])
            self.fits_[g] = (pl, np.flatnonzero(m))
            cl = None if self.cluster_ is None else pd.factorize(self.cluster_[m])[0]
            tab = _km_table(pl, variance, self.alpha, cl, self.ci_transform)
            tab.insert(0, "group", self.labels_.get(g, g))
            tabs.append(tab)
        self.table_ = pd.concat(tabs, ignore_index=True)
        return self

    def survival_at(self, times) -> pd.DataFrame:
        """Survival by group at the given times (step function, right-continuous), with
        the SE of log S and the interval of :attr:`table_` (clustered when fitted so)."""
        rows = []
        for g, (pl, _) in self.fits_.items():
            lab = self.labels_.get(g, g)
            tab = self.table_[self.table_.group == lab]
            J = time_index(pl, np.atleast_1d(times))

            def take(col, start, tab=tab, J=J):
                return np.where(J > 0, tab[col].to_numpy()[np.maximum(J, 1) - 1], start)

            rows.append(pd.DataFrame({"group": lab, "time": np.atleast_1d(times),
                                      "surv": take("surv", 1.0), "std_err": take("std_err", 0.0),
                                      "lower": take("lower", 1.0), "upper": take("upper", 1.0)}))
        return pd.concat(rows, ignore_index=True)

    def at_risk(self, times) -> pd.DataFrame:
        """Unweighted numbers at risk by group at the given times (rows = groups)."""
        out = {}
        for g, (pl, _) in self.fits_.items():
            idx = np.searchsorted(pl.time, np.asarray(times, float), side="left")
            Yu = np.concatenate([pl.n_risk_unweighted, [0]])
            out[self.labels_.get(g, g)] = Yu[idx].astype(int)
        return pd.DataFrame(out, index=pd.Index(np.asarray(times), name="time")).T

    def rmst(self, tau: float) -> pd.DataFrame:
        """Restricted mean survival time to ``tau`` by group, with R's ``survfit`` SE
        (``se``, from the case-weighted counts) and the IJ SE (``se_ij``, clustered when a
        cluster was given)."""
        rows = []
        for g, (pl, idx) in self.fits_.items():
            v, se, infl = _rmst(pl, tau)
            cl = None if self.cluster_ is None else pd.factorize(self.cluster_[idx])[0]
            s = collapse(infl[:, None], cl)
            rows.append({"group": self.labels_.get(g, g), "tau": tau, "rmst": v, "se": se,
                         "se_ij": float(np.sqrt((s**2).sum()))})
        return pd.DataFrame(rows)

    def plot(self, ax=None, ci: bool = True, at_risk_times=None, **kwargs):
        """Step curves by group; unweighted numbers at risk written under the axis."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(7, 4.5))
        for g in self.fits_:
            lab = self.labels_.get(g, g)
            tab = self.table_[self.table_.group == lab]
            t = np.r_[0, tab.time]
            line = ax.step(t, np.r_[1, tab.surv], where="post", label=str(lab), **kwargs)[0]
            if ci:
                ax.fill_between(t, np.r_[1, tab.lower], np.r_[1, tab.upper], step="post",
                                alpha=0.15, color=line.get_color(), lw=0)
        ax.set_ylim(0, 1.02)
        ax.set_ylabel("Proportion event-free (weighted)")
        ax.legend(frameon=False)
        _at_risk_text(ax, self, at_risk_times)
        return ax

    def _repr_html_(self) -> str:
        return self.table_.head(20).to_html(index=False, float_format=lambda v: f"{v:.4g}")


def _at_risk_text(ax, fitted, times):
    """Write unweighted numbers at risk under the x axis, one column per tick (counts of
    the weighted pseudo-population would mislead a reader, lifelines #1286/#1386)."""
    if times is None:
        tmax = max(pl.time.max() for pl, _ in fitted.fits_.values())
        times = np.unique(np.linspace(0, tmax, 6).round())
    tab = fitted.at_risk(times)
    ax.set_xticks(times)
    trans = ax.get_xaxis_transform()  # x in data units, y in axes units
    ax.text(0, -0.16, "At risk (unweighted)", transform=ax.transAxes, fontsize=8,
            ha="left", va="top", weight="bold")
    for r, (g, row) in enumerate(tab.iterrows()):
        y = -0.24 - 0.07 * r
        ax.text(-0.01, y, str(g), transform=ax.transAxes, ha="right", va="top", fontsize=8)
        for t, v in zip(times, row, strict=True):
            ax.text(t, y, str(v), transform=trans, ha="center", va="top", fontsize=8)


# ---------------------------------------------------------------------------------------
# Log-rank test and RMST difference
# ---------------------------------------------------------------------------------------


def logrank_test(durations, events, groups, weights=None) -> dict:
    """Two-or-more-group log-rank test (R ``survdiff``, rho = 0).

    With weights the counts are weighted (exact for integer case weights, i.e. the test on
    the replicated data); for matching weights prefer the Cox model's cluster-robust score
    test (``robust_score_test_``), which allows for the matched sets.

    Examples
    --------
    >>> from lifelines.datasets import load_rossi
    >>> r = load_rossi()
    >>> round(logrank_test(r["week"], r["arrest"], r["fin"])["chisq"], 4)  # R survdiff: 3.8376
    3.8376
    """
    durations = np.asarray(durations, float)
    events = np.asarray(events) == 1
    w = np.ones(durations.size) if weights is None else np.asarray(weights, float)
    codes, levels = pd.factorize(np.asarray(groups), sort=True)
    G = len(levels)
    u, inv = np.unique(durations, return_inverse=True)
    M = u.size
    at = np.zeros((M, G))
    dd = np.zeros((M, G))
    for g in range(G):
        m = codes == g
        at[:, g] = np.cumsum(np.bincount(inv[m], weights=w[m], minlength=M)[::-1])[::-1]
        dd[:, g] = np.bincount(inv[m], weights=w[m] * events[m], minlength=M)
    Y, D = at.sum(1), dd.sum(1)
    ok = (Y > 0) & (D > 0)
    at, dd, Y, D = at[ok], dd[ok], Y[ok], D[ok]
    E = (at * (D / Y)[:, None]).sum(0)
    obs = dd.sum(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        f = np.where(Y > 1, D * (Y - D) / (Y**2 * (Y - 1)), 0.0)
    V = np.einsum("m,mg,mh->gh", f, at, -at) + np.diag((f[:, None] * at * Y[:, None]).sum(0))
    diff = (obs - E)[:-1]
    chisq = float(diff @ np.linalg.solve(V[:-1, :-1], diff))
    return {"chisq": chisq, "df": G - 1, "p": float(stats.chi2.sf(chisq, G - 1)),
            "observed": obs, "expected": E, "variance": V, "groups": list(levels)}


def rmst_difference(durations, events, treated, weights=None, cluster=None, tau=None) -> dict:
    """Difference in restricted mean survival time (treated - comparison) up to ``tau``.

    The SE is the infinitesimal-jackknife SE with each unit's influence on its own arm's
    RMST summed within clusters across both arms (so pairs count once), i.e. it allows
    for the correlation within matched sets.  ``tau`` defaults to the smaller of the two
    arms' largest follow-up times.

    Examples
    --------
    >>> from lifelines.datasets import load_rossi
    >>> r = load_rossi()
    >>> d = rmst_difference(r["week"], r["arrest"], r["fin"] == 1, tau=52)
    >>> round(d["difference"], 4)  # R survfit rmean: 46.875 - 44.83333
    2.0417
    """
    durations = np.asarray(durations, float)
    events = (np.asarray(events) == 1).astype(int)
    treated = np.asarray(treated, bool)
    w = np.ones(durations.size) if weights is None else np.asarray(weights, float)
    if tau is None:
        tau = float(min(durations[treated].max(), durations[~treated].max()))
    infl = np.zeros(durations.size)
    val = {}
    for arm, sign in ((True, 1.0), (False, -1.0)):
        m = treated == arm
        pl = product_limit(durations[m], events[m], w[m])
        v, _, inf = _rmst(pl, tau)
        val[arm] = v
        infl[m] = sign * inf
    cl = None if cluster is None else pd.factorize(np.asarray(cluster))[0]
    s = collapse(infl[:, None], cl)
    return {"tau": tau, "rmst_treated": val[True], "rmst_comparison": val[False],
            "difference": val[True] - val[False], "se": float(np.sqrt((s**2).sum()))}
