"""Comparison rows followed until their own enrolment: inverse-probability-of-censoring weights.

A comparison unit matched at a treated unit's enrolment delay *d* may enrol later itself
(risk-set matching takes comparisons among the units *not yet* enrolled). From its
enrolment on, its course is a served one, so the cohort censors it there
(``censor_at_enrolment``, the sequential target-trial design): it then estimates the effect
of the program against *not being served*, the effect on the treated that an agency asks
about. Censoring at enrolment is informative, though: families who take up the program
differ (parental drug use, an infant in care, the county), so the comparison rows still
followed thin out unevenly. Each row still followed is weighted by the inverse of its
probability of not yet having enrolled (Robins & Finkelstein 2000; Hernán & Robins,
*Causal Inference: What If*, ch. 12 and 17), from a Cox model of time to enrolment:

* time scale: days since removal (the anchor date), because the offer of a parent partner
  follows the removal, not the treated unit's enrolment;
* rows: every comparison row of the cohort, at risk from its entry (``index_delay_days``;
  0 for the cohort's own rows) until it enrols, leaves care, turns 18 or reaches the
  extract date (``eligible_until_days``); the event is the family's enrolment
  (``enrolled_after_days`` = ``eligible_until_days``);
* covariates: by default the logit of the propensity score (the one-number summary of what
  drives enrolment that the matching already used), or any cohort columns;
* Breslow ties and the Breslow baseline hazard, equal to R's
  ``coxph(Surv(entry, exit, enrolled) ~ x, ties = "breslow")`` and ``basehaz(fit,
  centered = FALSE)``.

A matched comparison row *i* followed from delay *d_i* has a window outcome that is known
once it has had the event (or a competing exit) at day *T_i* or reached the window's end
*w*, whichever is first; its weight is ``1 / G_i``, ``G_i = exp(-(Λ0(b-) - Λ0(d_i)) e^{x_i β})``
with ``b = d_i + min(T_i, w)`` capped at its own exit from care (it cannot enrol after
that). Outcomes whose clock starts at reunification (re-entry, recurrence after care) are
known only after the whole stay, so ``b`` is its exit from care.

The Cox hazard ratio (in :func:`ppeval.estimate.estimate`) weights comparison rows over
time instead: each row's follow-up is split where the enrolment hazard accumulates (equal
steps of the baseline cumulative hazard, fine enough that a high-risk row's ``G`` falls by
at most ~5% per piece) and each piece carries ``1 / G`` at its middle. The Kaplan–Meier
and Aalen–Johansen curves, the log-rank test and the Fine–Gray model use the censored rows
unweighted.

The risk's standard error treats the weights as known; with a correctly specified censoring
model this is conservative (estimating the weights reduces the variance; Robins, Rotnitzky
& Zhao 1994).

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> n = 4000
>>> x = rng.normal(size=n)
>>> enrol = rng.exponential(200 * np.exp(-0.8 * x))   # days since removal
>>> leave = rng.exponential(300, n)
>>> cens = EnrolmentCensoring().fit_arrays(x[:, None], np.zeros(n), np.minimum(enrol, leave),
...                                        enrol < leave, names=["x"])
>>> round(float(cens.params_["x"]), 1)
0.8
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import DataError
from .survival import CoxPH

#: outcomes (of the in-care design) whose clock starts at reunification, not at the index
AFTER_CARE_OUTCOMES = ("reentry", "recurrence")


class EnrolmentCensoring:
    """Cox model of the time to a comparison row's own enrolment; IPC weights from it.

    Attributes (after ``fit``)
    --------------------------
    params_ : Series
        Log hazard ratios of enrolment per covariate.
    model_ : CoxPH
        The fitted Cox model (``summary`` for SEs and p-values).
    baseline_ : DataFrame
        ``days`` since removal and the Breslow ``cumulative_hazard`` at covariates 0.
    n_, n_enrolled_ : int
        Rows used and rows that enrolled.
    covariates_ : list of str
        Covariate names.
    """

    def __init__(self) -> None:
        self.params_: pd.Series | None = None

    # -- fitting ------------------------------------------------------------------------
    def fit(self, df: pd.DataFrame, covariates: list[str], *, treatment: str = "treated",
            entry: str = "index_delay_days", exit: str = "eligible_until_days",
            enrolled_after: str = "enrolled_after_days") -> EnrolmentCensoring:
        """Fit on the comparison rows of a cohort (or matched) table.

        ``covariates`` are numeric or boolean columns (encode categories first). A row
        enrolls at its exit when ``enrolled_after`` equals ``exit`` (the cohort caps a
        comparison row's eligibility at its family's enrolment).
        """
        need = [treatment, entry, exit, enrolled_after, *covariates]
        missing = [c for c in need if c not in df.columns]
        if missing:
            raise DataError(f"the enrolment-censoring model needs column(s) {missing}")
        comp = ~df[treatment].astype(bool).to_numpy()
        d = df.loc[comp]
        X = d[covariates].astype(float).to_numpy()
        start = d[entry].astype(float).to_numpy()
        stop = d[exit].astype(float).to_numpy()
        e = d[enrolled_after].astype(float).to_numpy()
        with np.errstate(invalid="ignore"):
            enrolled = np.isfinite(e) & (e <= stop)
        return self.fit_arrays(X, start, stop, enrolled, names=list(covariates))

    def fit_arrays(self, X: np.ndarray, entry: np.ndarray, exit: np.ndarray, enrolled: np.ndarray,
                   names: list[str] | None = None) -> EnrolmentCensoring:
        """Fit on arrays: rows at risk of enrolment on ``(entry, exit]`` days since removal."""
        X = np.asarray(X, dtype=float).reshape(len(exit), -1)
        entry = np.asarray(entry, dtype=float)
        exit = np.asarray(exit, dtype=float)
        enrolled = np.asarray(enrolled, dtype=bool)
        ok = np.isfinite(entry) & np.isfinite(exit) & (exit > entry) & np.isfinite(X).all(axis=1)
        # a row that left care on its entry day has no time at risk of enrolment
        X, entry, exit, enrolled = X[ok], entry[ok], exit[ok], enrolled[ok]
        names = names or [f"x{i}" for i in range(X.shape[1])]
        self.covariates_ = list(names)
        self.n_ = int(ok.sum())
        self.n_enrolled_ = int(enrolled.sum())
        if self.n_enrolled_ == 0:
            # nobody enrolled while followed: nothing is censored, every weight is 1
            self.model_ = None
            self.params_ = pd.Series(np.zeros(X.shape[1]), index=names, name="coef")
            self._times = np.array([])
            self._cumhaz = np.array([])
        else:
            if X.shape[1]:
                self.model_ = CoxPH(ties="breslow", robust=False).fit_arrays(
                    X, exit, enrolled, start=entry, names=names)
                self.params_ = self.model_.params_
            else:
                self.model_ = None
                self.params_ = pd.Series(dtype=float, name="coef")
            r = np.exp(X @ self.params_.to_numpy()) if X.shape[1] else np.ones(len(exit))
            self._times, self._cumhaz = _breslow(entry, exit, enrolled, r)
        self.baseline_ = pd.DataFrame({"days": self._times, "cumulative_hazard": self._cumhaz})
        return self

    # -- prediction -----------------------------------------------------------------------
    def cumulative_hazard(self, days) -> np.ndarray:
        """Baseline cumulative hazard at ``days`` (right-continuous: includes enrolments on that day)."""
        days = np.asarray(days, dtype=float)
        if not len(self._times):
            return np.zeros_like(days)
        pos = np.searchsorted(self._times, days, side="right")
        return np.where(pos > 0, self._cumhaz[np.maximum(pos - 1, 0)], 0.0)

    def not_enrolled(self, X: np.ndarray, entry, until) -> np.ndarray:
        """P(not enrolled on a day in (entry, until) | at risk on day entry): ``G(until-)``.

        An enrolment on day ``until`` itself does not count: the cohort keeps an event seen on
        the day of the censoring.
        """
        entry = np.asarray(entry, dtype=float)
        until = np.maximum(np.asarray(until, dtype=float), entry)
        if not len(self._times):
            return np.ones_like(until)
        X = np.asarray(X, dtype=float).reshape(len(entry), -1)
        lin = X @ self.params_.to_numpy() if X.shape[1] else np.zeros(len(entry))
        lo = np.searchsorted(self._times, entry, side="right")   # enrolments after entry...
        hi = np.searchsorted(self._times, until, side="left")    # ...and before until
        ch = np.r_[0.0, self._cumhaz]
        dH = ch[hi] - ch[np.minimum(lo, hi)]
        return np.exp(-dH * np.exp(lin))

    def summary(self) -> pd.DataFrame:
        """Coefficients of the enrolment model (hazard ratios, SEs, p-values)."""
        if self.model_ is None:
            return pd.DataFrame({"coef": self.params_})
        return self.model_.summary

    def __repr__(self) -> str:
        return (f"EnrolmentCensoring(n={getattr(self, 'n_', 0)}, enrolled={getattr(self, 'n_enrolled_', 0)}, "
                f"covariates={getattr(self, 'covariates_', [])})")


def _breslow(entry: np.ndarray, exit: np.ndarray, event: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Breslow cumulative hazard for (entry, exit] data with relative risks ``r``."""
    times = np.unique(exit[event])
    o_stop = np.argsort(exit, kind="stable")
    o_start = np.argsort(entry, kind="stable")
    # sum of r over rows with exit >= t, minus rows with entry >= t (not yet at risk)
    rs_stop = np.r_[np.cumsum(r[o_stop][::-1])[::-1], 0.0]
    rs_start = np.r_[np.cumsum(r[o_start][::-1])[::-1], 0.0]
    at_risk = rs_stop[np.searchsorted(exit[o_stop], times, side="left")] \
        - rs_start[np.searchsorted(entry[o_start], times, side="left")]
    d = np.bincount(np.searchsorted(times, exit[event]), minlength=len(times)).astype(float)
    return times, np.cumsum(d / at_risk)


def ipc_weights(cens: EnrolmentCensoring, X: np.ndarray, entry: np.ndarray, exit: np.ndarray,
                known_at: np.ndarray) -> np.ndarray:
    """``1 / G`` for rows whose outcome became known ``known_at`` days after their entry.

    ``known_at`` is capped at the row's exit from risk of enrolment (``exit - entry``);
    NaN gives NaN.
    """
    entry = np.asarray(entry, dtype=float)
    b = np.minimum(entry + np.asarray(known_at, dtype=float), np.asarray(exit, dtype=float))
    g = cens.not_enrolled(X, entry, np.where(np.isfinite(b), b, entry))
    return np.where(np.isfinite(b), 1.0 / g, np.nan)
