"""Competing risks: Aalen–Johansen cumulative incidence by arm (exact ties, weights,
infinitesimal-jackknife SEs as R's multi-state ``survfit``), the Fine–Gray
subdistribution hazard ratio (R ``survival::finegray`` + weighted ``coxph``), and the
cause-specific hazard ratio.

Status coding everywhere: 0 censored, 1 event of interest, 2 (or any other non-zero
code) competing event.

Fine–Gray without expanding the data
------------------------------------
``finegray`` keeps a unit that had the competing event in the risk set after its exit,
split at the censoring times, with weight ``G(t-)/G(T_i-)`` (G the Kaplan–Meier of the
censoring distribution, censorings at a tied time counted after the events).  The
expanded data can have n_competing x n_event_times rows (tens of millions for a state's
day-level extract), so :class:`FineGray` gives the Cox engine these rows implicitly: a
"tail" row at risk at every event time ``t > T_i`` with weight ``w_i / G(T_i-)`` times the
common curve ``G(t-)``, whose risk-set sums are cumulative sums.  The estimates equal the
fit on ``finegray``'s rows exactly (tests check both against R);
:func:`finegray_expand` builds those rows when you want to see them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ._cox import collapse
from ._nonparam import (
    check_ci_transform,
    confint,
    ij_variance_clustered,
    influence_at,
    product_limit,
    time_index,
)
from .survival import CoxPH

__all__ = ["AalenJohansen", "FineGray", "finegray_expand", "censoring_survival", "gray_test"]


class AalenJohansen:
    """Cumulative incidence of the event and the competing event, by arm.

    Ties are handled exactly (no jitter: lifelines' ``AalenJohansenFitter`` breaks ties at
    random, so its curve changes from run to run).  SEs are the infinitesimal-jackknife
    SEs of R's ``survfit(Surv(time, factor(status)) ~ group, weights = w, id = id)``; with
    a ``cluster`` (matched sets) the influences are summed within clusters, as R's
    ``survfit(..., id = id, cluster = set)``, in :attr:`table_` and at chosen times
    (:meth:`cumulative_incidence_at`).  :meth:`gray_test` compares the arms' curves as
    ``cmprsk::cuminc``.

    Parameters
    ----------
    alpha : 1 - confidence level.
    ci_transform : scale of the pointwise intervals of the cumulative incidence:
        ``"log"`` (default: R's multi-state ``survfit`` uses ``conf.type = "log"`` on the
        state probability, CI ``F exp(+-z SE/F)``, upper capped at 1), ``"loglog"`` (R
        ``"log-log"``: ``F^exp(+-z SE/(F log F))``, inside (0, 1)) or ``"linear"`` (R
        ``"plain"``: ``F +- z SE`` clipped to [0, 1]).  Undefined limits (F = 0) are NaN,
        as R's NA.

    Attributes
    ----------
    table_ : one row per arm and distinct time: time, n_risk (weighted),
        n_risk_unweighted, n_event, n_competing, n_censor (weighted), surv (event-free),
        cif_event, cif_competing, se_surv, se_event, se_competing (SEs of the estimates
        themselves, as R's multi-state ``std.err``; clustered when fitted with a cluster),
        lower, upper (CI of cif_event), lower_competing, upper_competing.

    Examples
    --------
    >>> import numpy as np
    >>> aj = AalenJohansen().fit([1, 2, 2, 3, 4], [1, 2, 1, 0, 1])
    >>> aj.table_["cif_event"].round(3).tolist()
    [0.2, 0.4, 0.4, 0.8]
    """

    def __init__(self, alpha: float = 0.05, ci_transform: str = "log"):
        self.alpha = alpha
        self.ci_transform = check_ci_transform(ci_transform)

    def fit(self, durations, status, weights=None, groups=None, cluster=None,
            labels: dict | None = None) -> AalenJohansen:
        """Fit one pair of curves (event, competing event) per level of ``groups``.

        ``status``: 0 censored, 1 event, 2 competing event; ``cluster`` (e.g. matched sets)
        makes every SE and interval cluster-robust; ``labels`` maps group values to
        display names.
        """
        durations = np.asarray(durations, float)
        status = np.asarray(status)
        if np.any(~np.isin(status, [0, 1, 2])):
            raise ValueError("status must be 0 (censored), 1 (event) or 2 (competing event)")
        w = np.ones(durations.size) if weights is None else np.asarray(weights, float)
        groups = np.zeros(durations.size, int) if groups is None else np.asarray(groups)
        self.cluster_ = None if cluster is None else pd.factorize(np.asarray(cluster))[0]
        self.labels_ = labels or {}
        self._data = (durations, status, w, groups)
        self.fits_, tabs = {}, []
        for g in pd.unique(groups):
            m = groups == g
            pl = product_limit(durations[m], status[m], w[m], causes=(1, 2))
            self.fits_[g] = (pl, np.flatnonzero(m))
            cl = None if self.cluster_ is None else pd.factorize(self.cluster_[m])[0]
            se = np.sqrt(ij_variance_clustered(pl, cl))
            lo, up = self._ci(pl.cif[:, 0], se[:, 1])
            lo2, up2 = self._ci(pl.cif[:, 1], se[:, 2])
            tabs.append(pd.DataFrame({
                "group": self.labels_.get(g, g), "time": pl.time, "n_risk": pl.n_risk,
                "n_risk_unweighted": pl.n_risk_unweighted.astype(int),
                "n_event": pl.n_event[:, 0], "n_competing": pl.n_event[:, 1],
                "n_censor": pl.n_censor, "surv": pl.surv, "cif_event": pl.cif[:, 0],
                "cif_competing": pl.cif[:, 1], "se_surv": se[:, 0], "se_event": se[:, 1],
                "se_competing": se[:, 2], "lower": lo, "upper": up,
                "lower_competing": lo2, "upper_competing": up2,
            }))
        self.table_ = pd.concat(tabs, ignore_index=True)
        return self

    def _ci(self, F, se):
        with np.errstate(divide="ignore", invalid="ignore"):
            se_log = np.where(se == 0, 0.0, se / F)  # R: ifelse(se == 0, 0, se / p)
        return confint(F, se_log, self.ci_transform, self.alpha)

    def cumulative_incidence_at(self, times) -> pd.DataFrame:
        """Cumulative incidence of the event by group at ``times``, SE clustered if asked,
        with the interval on the scale of ``ci_transform``."""
        rows = []
        for g, (pl, idx) in self.fits_.items():
            cl = None if self.cluster_ is None else pd.factorize(self.cluster_[idx])[0]
            for t in np.atleast_1d(times):
                J = int(time_index(pl, t))
                se = np.sqrt((collapse(influence_at(pl, J), cl) ** 2).sum(axis=0))
                F = 0.0 if J == 0 else pl.cif[J - 1, 0]
                lo, up = self._ci(np.array([F]), np.array([se[1]]))
                rows.append({"group": self.labels_.get(g, g), "time": t,
                             "cif_event": F, "se_event": se[1],
                             "lower": float(lo[0]), "upper": float(up[0]),
                             "cif_competing": 0.0 if J == 0 else pl.cif[J - 1, 1],
                             "se_competing": se[2]})
        return pd.DataFrame(rows)

    def difference_at(self, t: float, treated_group=True) -> dict:
        """Treated minus comparison cumulative incidence of the event at t, with the IJ
        SE of the difference (influences of both arms summed within clusters)."""
        val = {}
        n = sum(idx.size for _, idx in self.fits_.values())
        total = np.zeros(n)
        for g, (pl, idx) in self.fits_.items():
            J = int(time_index(pl, t))
            val[g] = 0.0 if J == 0 else pl.cif[J - 1, 0]
            sign = 1.0 if g == treated_group else -1.0
            total[idx] = sign * influence_at(pl, J)[:, 1]
        cl = self.cluster_
        s = collapse(total[:, None], cl)
        others = [g for g in val if g != treated_group]
        return {"time": t, "cif_treated": val[treated_group], "cif_comparison": val[others[0]],
                "difference": val[treated_group] - val[others[0]],
                "se": float(np.sqrt((s**2).sum()))}

    def gray_test(self, rho: float = 0.0) -> pd.DataFrame:
        """Gray's test that the arms' cumulative incidence curves are equal, per cause
        (``cmprsk::cuminc(time, status, group)$Tests``); see :func:`gray_test`.

        Gray's test has no version for case weights, so a weighted fit is refused rather
        than tested as if unweighted.  It treats units as independent: with matched sets
        (``cluster``) the SEs of the curves allow for the sets but this test does not.
        """
        durations, status, w, groups = self._data
        if not np.allclose(w, 1.0):
            raise ValueError("Gray's test (cmprsk::cuminc) is defined for unweighted data; "
                             "these curves are weighted — compare them with the clustered "
                             "difference at a time (difference_at) instead")
        return gray_test(durations, status, groups, rho=rho)

    def plot(self, ax=None, ci: bool = True, competing: bool = False, at_risk_times=None, **kwargs):
        """Cumulative incidence of the event (and optionally the competing event) by group."""
        import matplotlib.pyplot as plt

        from .survival import _at_risk_text

        if ax is None:
            _, ax = plt.subplots(figsize=(7, 4.5))
        for g in self.fits_:
            lab = self.labels_.get(g, g)
            tab = self.table_[self.table_.group == lab]
            t = np.r_[0, tab.time]
            line = ax.step(t, np.r_[0, tab.cif_event], where="post", label=f"{lab}", **kwargs)[0]
            if ci:
                # F = 0 has no log-scale interval (NaN, as R's NA): draw it as a point
                lo, up = tab.lower.fillna(tab.cif_event), tab.upper.fillna(tab.cif_event)
                ax.fill_between(t, np.r_[0, lo], np.r_[0, up], step="post",
                                alpha=0.15, color=line.get_color(), lw=0)
            if competing:
                ax.step(t, np.r_[0, tab.cif_competing], where="post", ls="--",
                        color=line.get_color(), label=f"{lab} (competing)")
        ax.set_ylim(0, 1.0)
        ax.set_ylabel("Cumulative incidence (weighted)")
        ax.legend(frameon=False)
        _at_risk_text(ax, self, at_risk_times)
        return ax

    def at_risk(self, times) -> pd.DataFrame:
        out = {}
        for g, (pl, _) in self.fits_.items():
            idx = np.searchsorted(pl.time, np.asarray(times, float), side="left")
            Yu = np.concatenate([pl.n_risk_unweighted, [0]])
            out[self.labels_.get(g, g)] = Yu[idx].astype(int)
        return pd.DataFrame(out, index=pd.Index(np.asarray(times), name="time")).T

    def _repr_html_(self) -> str:
        return self.table_.head(20).to_html(index=False, float_format=lambda v: f"{v:.4g}")


def _gray_stratum(time, status, group, ng: int, rho: float):
    """Score (ng - 1,) and variance (ng - 1, ng - 1) of Gray's test in one stratum for
    the cause coded 1 (2 = other causes, 0 = censored): cmprsk's Fortran ``crst``
    vectorised over the distinct event times (at censoring-only times nothing but the
    risk sets changes, and those are counted directly)."""
    u, inv = np.unique(time, return_inverse=True)
    T = u.size
    d = np.zeros((3, T, ng))
    np.add.at(d, (status, inv, group), 1.0)
    rs = np.cumsum((d.sum(axis=0))[::-1], axis=0)[::-1]  # at risk at each time, by group
    d1, d2 = d[1], d[2]
    keep = (d1 + d2).sum(axis=1) > 0
    d1, d2, rs = d1[keep], d2[keep], rs[keep]
    nd1 = d1.sum(axis=1)
    pos = rs > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        step = np.where(pos, 1 - (d1 + d2) / rs, 1.0)
        skm = np.cumprod(step, axis=0)  # right-continuous KM by group
        skmm = np.vstack([np.ones((1, ng)), skm[:-1]])  # left-continuous
        f1 = np.cumsum(np.where(pos, skmm * d1 / rs, 0.0), axis=0)
        f1m = np.vstack([np.zeros((1, ng)), f1[:-1]])
        t1 = np.where(pos, rs / skmm, 0.0)
        tr = t1.sum(axis=1)
        tq = np.where(pos, rs * (1 - f1m) / skmm, 0.0).sum(axis=1)
        f = np.cumsum(nd1 / tr)  # pooled cumulative incidence
        fm = np.r_[0.0, f[:-1]]
        fb = (1 - fm) ** rho
        a = fb[:, None, None] * (np.einsum("ti,ij->tij", t1, np.eye(ng))
                                 - t1[:, :, None] * t1[:, None, :] / tr[:, None, None])
        inc = a * (nd1 / (tr * (1 - fm)))[:, None, None]
        c = np.cumsum(np.where(a != 0, inc, 0.0), axis=0)  # c as updated at each time
        score = (fb[:, None] * np.where(pos, d1 - nd1[:, None] * rs * (1 - f1m) / (skmm * tq[:, None]),
                                        0.0)).sum(axis=0)
        # failures from the cause of interest
        e1 = (nd1 > 0)[:, None] & pos
        t4 = np.where(skm > 0, 1 - (1 - f[:, None]) / skm, 1.0)
        t5 = np.where(nd1[:, None] > 1, 1 - (nd1[:, None] - 1) / (tr[:, None] * skmm - 1), 1.0)
        t3 = np.where(e1, t5 * skmm * nd1[:, None] / (tr[:, None] * rs), 0.0)
        v3 = (t4**2 * t3).sum(axis=0)
        b = a - t4[:, None, :] * c  # (t, i, k)
        v2 = (b * (t4 * t3)[:, None, :]).sum(axis=0)
        v = np.einsum("tik,tjk,tk->ij", b, b, t3)
        # failures from other causes
        e2 = (skm > 0) & (d2 > 0)
        t4 = np.where(e2, (1 - f[:, None]) / skm, 0.0)
        t5 = np.where(d2 > 1, 1 - (d2 - 1) / (rs - 1), 1.0)
        t3 = np.where(e2, t5 * skmm**2 * d2 / rs**2, 0.0)
        v3 = v3 + (t4**2 * t3).sum(axis=0)
        b = t4[:, None, :] * c
        v2 = v2 - (b * (t4 * t3)[:, None, :]).sum(axis=0)
        v = v + np.einsum("tik,tjk,tk->ij", b, b, t3)
    cT = c[-1]
    v = v + (cT * v3) @ cT.T + cT @ v2.T + v2 @ cT.T
    return score[: ng - 1], v[: ng - 1, : ng - 1]


def gray_test(durations, status, groups, strata=None, rho: float = 0.0) -> pd.DataFrame:
    """Gray's (1988) K-sample test of equal cumulative incidence curves, per cause.

    Equals ``cmprsk::cuminc(ftime, fstatus, group, strata, rho)$Tests``: for each cause
    (non-zero code of ``status``, 0 = censored) the score of the first K - 1 groups
    (groups in sorted order) weighted by ``(1 - F(t-))^rho``, summed over strata, and
    ``stat = s' V^-1 s`` referred to chi-square on K - 1 df.  Unweighted, units
    independent (as cmprsk).

    Returns
    -------
    DataFrame indexed by cause with ``stat``, ``p`` and ``df`` (stat NaN where V is
    singular, cmprsk's -1).
    """
    from scipy import stats

    time = np.asarray(durations, float)
    status = np.asarray(status)
    glev, gcode = np.unique(np.asarray(groups), return_inverse=True)
    ng = glev.size
    if ng < 2:
        raise ValueError("Gray's test needs at least two groups")
    scode = (np.zeros(time.size, int) if strata is None
             else np.unique(np.asarray(strata), return_inverse=True)[1])
    rows = {}
    for cause in np.unique(status[status != 0]):
        code = np.where(status == cause, 1, np.where(status != 0, 2, 0))
        s, V = np.zeros(ng - 1), np.zeros((ng - 1, ng - 1))
        for k in np.unique(scode):
            m = scode == k
            sk, Vk = _gray_stratum(time[m], code[m], gcode[m], ng, rho)
            s, V = s + sk, V + Vk
        if np.linalg.matrix_rank(V) == ng - 1:
            stat = float(s @ np.linalg.solve(V, s))
        else:
            stat = np.nan
        rows[cause.item()] = {"stat": stat, "p": float(stats.chi2.sf(stat, ng - 1)), "df": ng - 1}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("cause")


def censoring_survival(durations, status) -> tuple[np.ndarray, np.ndarray]:
    """Kaplan–Meier of the censoring distribution as ``finegray`` uses it.

    Unweighted (finegray ignores case weights here); at a time with both events and
    censorings the censorings count as later, so units with an event at t are not at risk
    of censoring at t.  Returns (censoring times, G just after each).
    """
    durations = np.asarray(durations, float)
    status = np.asarray(status)
    cens = status == 0
    ct, inv = np.unique(durations[cens], return_inverse=True)
    if ct.size == 0:
        return ct, np.ones(0)
    nc = np.bincount(inv, minlength=ct.size)
    srt = np.sort(durations)
    at_risk = srt.size - np.searchsorted(srt, ct, side="left")
    ev_sorted = np.sort(durations[~cens])
    ev_at = np.searchsorted(ev_sorted, ct, side="right") - np.searchsorted(ev_sorted, ct, side="left")
    return ct, np.cumprod(1.0 - nc / (at_risk - ev_at))


def _G_minus(ct: np.ndarray, G: np.ndarray, t) -> np.ndarray:
    """G(t-): the censoring survival over censoring times strictly before t."""
    return np.concatenate([[1.0], G])[np.searchsorted(ct, np.asarray(t, float), side="left")]


def finegray_expand(df: pd.DataFrame, duration_col: str, status_col: str, event: int = 1,
                    weights_col: str | None = None, prefix: str = "fg") -> pd.DataFrame:
    """The rows of R's ``finegray(Surv(time, status) ~ ., data, etype = event)``.

    Every row is kept with (fgstart, fgstop] = (0, time], fgstatus = 1 for the event of
    interest; a row ending in a competing event is extended to the next censoring time and
    then split at the censoring times, keeping only intervals that contain an event of
    interest, with weight ``G(start of interval)/G(T-)``.  ``fgwt`` includes the case
    weights (as ``finegray(weights = )``).  Right-censored data without strata.

    Examples
    --------
    >>> import pandas as pd
    >>> d = pd.DataFrame({"time": [1, 2, 3, 4], "status": [2, 0, 1, 1]})
    >>> finegray_expand(d, "time", "status")[["fgstart", "fgstop", "fgstatus"]].values.tolist()
    [[0.0, 2.0, 0.0], [2.0, 4.0, 0.0], [0.0, 2.0, 0.0], [0.0, 3.0, 1.0], [0.0, 4.0, 1.0]]
    """
    T = df[duration_col].to_numpy(float)
    st = df[status_col].to_numpy()
    w = np.ones(T.size) if weights_col is None else df[weights_col].to_numpy(float)
    zero = 0.0 if T.min() > 0 else 2 * T.min() - 1
    ctimes, G = censoring_survival(T, st)
    maxtime = T.max()
    ct2 = np.r_[ctimes, maxtime]  # interval ends
    cp2 = np.r_[1.0, G]  # G over each interval (ending at ct2[j])
    etimes = np.unique(T[st == event])
    # interval j (ending at ct2[j]) is kept if an event of interest falls in it
    idx = np.searchsorted(ct2, etimes, side="left")  # number of ct2 < t
    keep = np.zeros(ct2.size, bool)
    keep[0] = True
    keep[idx[idx > 0]] = True  # interval index = number of ends before t
    ext = (st != 0) & (st != event)
    j0 = np.searchsorted(ct2, T, side="left")  # first end >= T
    stop = T.copy()
    stop[ext] = ct2[j0[ext]]
    base = pd.DataFrame({"row": np.arange(T.size), "fgstart": zero, "fgstop": stop,
                         "fgstatus": (st == event).astype(int), "fgwt": 1.0, "add": 0})
    kept_idx = np.flatnonzero(keep)
    pieces = [base]
    erows = np.flatnonzero(ext)
    if erows.size:
        # for each extended row, all kept intervals j > j0
        first = np.searchsorted(kept_idx, j0[erows], side="right")
        counts = kept_idx.size - first
        r = np.repeat(erows, counts)
        jj = kept_idx[np.concatenate([np.arange(f, kept_idx.size) for f in first])] \
            if counts.sum() else np.zeros(0, int)
        add = np.concatenate([np.arange(1, c + 1) for c in counts]) if counts.sum() else np.zeros(0, int)
        pieces.append(pd.DataFrame({"row": r, "fgstart": ct2[jj - 1], "fgstop": ct2[jj],
                                    "fgstatus": 0, "fgwt": cp2[jj] / cp2[j0[r]], "add": add}))
    out = pd.concat(pieces, ignore_index=True).sort_values(["row", "add"], kind="stable")
    out["fgwt"] = out["fgwt"] * w[out["row"].to_numpy()]
    rest = df.drop(columns=[duration_col, status_col]).iloc[out["row"].to_numpy()].reset_index(drop=True)
    res = pd.concat([rest, out.drop(columns=["row", "add"]).reset_index(drop=True)], axis=1)
    return res.rename(columns={c: c.replace("fg", prefix, 1) for c in
                               ["fgstart", "fgstop", "fgstatus", "fgwt"]})


class FineGray:
    """Fine–Gray subdistribution hazards model with case weights and clustered SEs.

    Equals R's ``coxph(Surv(fgstart, fgstop, fgstatus) ~ x, weights = fgwt, cluster = id,
    data = finegray(Surv(time, status) ~ ., data, etype = "event"))`` (with case weights
    multiplied into fgwt), computed without expanding the data (see the module notes).
    ``cluster`` defaults to each unit (R's ``cluster = id``): the expanded rows of a unit
    are always summed together.

    Examples
    --------
    >>> import pandas as pd
    >>> d = pd.DataFrame({"time": [1, 2, 3, 4, 5, 6, 7, 8.0], "status": [1, 2, 1, 0, 1, 2, 1, 0],
    ...                   "x": [1, 0, 1, 0, 0, 1, 1, 0.0]})
    >>> fg = FineGray().fit(d, "time", "status", ["x"])  # R: 1.237060144
    >>> round(float(fg.params_["x"]), 3)
    1.237
    """

    def __init__(self, ties: str = "efron", alpha: float = 0.05):
        self.ties = ties
        self.alpha = alpha

    def fit(self, df: pd.DataFrame, duration_col: str, status_col: str,
            covariates: list[str], weights_col: str | None = None,
            cluster_col: str | None = None, event: int = 1) -> FineGray:
        T = df[duration_col].to_numpy(float)
        st = df[status_col].to_numpy()
        w = np.ones(T.size) if weights_col is None else df[weights_col].to_numpy(float)
        ct, G = censoring_survival(T, st)
        comp = (st != 0) & (st != event)
        entry = np.where(comp, T, np.inf)
        tail_w = np.where(comp, w / _G_minus(ct, G, T), 0.0)
        cl = (pd.factorize(df[cluster_col])[0] if cluster_col is not None
              else np.arange(T.size))
        self.model_ = CoxPH(ties=self.ties, robust=True, alpha=self.alpha).fit_arrays(
            df[covariates].to_numpy(float), T, st == event, weights=w, cluster=cl,
            names=list(covariates),
            tail=(entry, tail_w, lambda _code, t: _G_minus(ct, G, t)))
        m = self.model_
        self.params_, self.se_, self.se_model_ = m.params_, m.se_, m.se_model_
        self.variance_matrix_ = m.variance_matrix_
        self.n_, self.n_events_, self.n_clusters_ = m.n_, m.n_events_, m.n_clusters_
        self.log_likelihood_ = m.log_likelihood_
        return self

    @property
    def summary(self) -> pd.DataFrame:
        s = self.model_.summary.rename(columns=lambda c: c.replace("exp(coef)", "exp(coef) [SHR]", 1)
                                       if c == "exp(coef)" else c)
        return s

    def _repr_html_(self) -> str:
        return self.summary.to_html(float_format=lambda v: f"{v:.4g}")
