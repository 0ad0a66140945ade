"""Sensitivity to unmeasured confounding: E-values (VanderWeele & Ding 2017) and
Rosenbaum bounds for matched pairs with a binary outcome.

E-value: the minimum strength of association, on the risk-ratio scale, that an unmeasured
confounder would need with both the treatment and the outcome to explain away the
estimate (``evalue``) or to move the confidence limit closest to 1 to 1 (``evalue_ci``).

* risk ratio RR (>= 1): ``RR + sqrt(RR (RR - 1))``; below 1, use 1/RR;
* odds ratio: rare outcome (< 15%) OR ~ RR; common outcome RR ~ sqrt(OR);
* hazard ratio: rare outcome HR ~ RR; common outcome
  ``RR ~ (1 - 0.5^sqrt(HR)) / (1 - 0.5^sqrt(1/HR))``.

Rosenbaum bounds (``rbounds::binarysens`` logic): among D discordant pairs, n10 have the
event in the treated unit only and n01 in the comparison unit only.  If hidden bias can
make the odds of treatment differ by a factor Γ within a pair, the one-sided p-value of
McNemar's test for the observed direction lies between
``P(Binom(D, 1/(1+Γ)) >= T)`` and ``P(Binom(D, Γ/(1+Γ)) >= T)``, T = max(n10, n01).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import optimize, stats

__all__ = ["evalue", "EValue", "rosenbaum_bounds", "RosenbaumBounds"]


def _ev_rr(rr: float) -> float:
    rr = 1 / rr if rr < 1 else rr
    return float(rr + np.sqrt(rr * (rr - 1)))


def _to_rr(estimate: float, measure: str, rare: bool) -> float:
    if measure == "risk_ratio" or rare:
        return estimate
    if measure == "odds_ratio":
        return float(np.sqrt(estimate))
    if measure in ("hazard_ratio", "subdistribution_hazard_ratio"):
        return float((1 - 0.5 ** np.sqrt(estimate)) / (1 - 0.5 ** np.sqrt(1 / estimate)))
    raise ValueError(f"E-values are defined for risk, odds and hazard ratios, not {measure!r}")


@dataclass
class EValue:
    """E-value of a point estimate and of its confidence limit closest to the null."""

    measure: str
    estimate: float
    ci_low: float | None
    ci_high: float | None
    rare: bool
    rr_estimate: float
    evalue: float
    evalue_ci: float | None

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([self.__dict__])

    def _repr_html_(self) -> str:
        return self.to_frame().to_html(index=False)


def evalue(estimate: float, ci_low: float | None = None, ci_high: float | None = None,
           measure: str = "risk_ratio", rare: bool = False) -> EValue:
    """E-value for a risk, odds or hazard ratio (VanderWeele & Ding 2017).

    Parameters
    ----------
    estimate, ci_low, ci_high : the ratio and its confidence limits.
    measure : ``"risk_ratio"``, ``"odds_ratio"``, ``"hazard_ratio"`` or
        ``"subdistribution_hazard_ratio"``.
    rare : outcome rare (< 15%) at the end of follow-up; then OR and HR approximate RR.

    Examples
    --------
    >>> round(evalue(3.9, 1.8, 8.7).evalue, 2), round(evalue(3.9, 1.8, 8.7).evalue_ci, 2)
    (7.26, 3.0)
    """
    if not estimate > 0:
        raise ValueError("a ratio estimate must be positive")
    rr = _to_rr(estimate, measure, rare)
    ev = _ev_rr(rr)
    ev_ci = None
    if ci_low is not None and ci_high is not None:
        lo, hi = _to_rr(ci_low, measure, rare), _to_rr(ci_high, measure, rare)
        if lo <= 1 <= hi:
            ev_ci = 1.0
        else:
            ev_ci = _ev_rr(lo if rr > 1 else hi)
    return EValue(measure, float(estimate), ci_low, ci_high, rare, float(rr), ev, ev_ci)


@dataclass
class RosenbaumBounds:
    """Rosenbaum bounds on McNemar's one-sided p-value at each Γ.

    Attributes
    ----------
    table : DataFrame with gamma, p_lower, p_upper.
    gamma_critical : the Γ at which the upper bound reaches ``alpha`` (inf if never; 1 if
        the test is not significant even without hidden bias).
    """

    n10: int
    n01: int
    direction: str
    table: pd.DataFrame
    gamma_critical: float
    alpha: float

    def _repr_html_(self) -> str:
        return (f"<p>Discordant pairs: n10={self.n10}, n01={self.n01}; critical Γ at "
                f"α={self.alpha}: {self.gamma_critical:.3f}</p>" + self.table.to_html(index=False))


def _p_upper(T: int, D: int, gamma: float) -> float:
    return float(stats.binom.sf(T - 1, D, gamma / (1 + gamma)))


def rosenbaum_bounds(n10: int, n01: int, gammas=None, alpha: float = 0.05) -> RosenbaumBounds:
    """Rosenbaum bounds for a binary outcome in 1:1 matched pairs.

    Parameters
    ----------
    n10 : pairs where only the treated unit had the event.
    n01 : pairs where only the comparison unit had the event.
    gammas : Γ values for the table (default 1 to 3 by 0.25).
    alpha : level at which the critical Γ is found.

    Examples
    --------
    >>> rb = rosenbaum_bounds(30, 12, gammas=[1, 2])
    >>> rb.table.round(4).values.tolist()
    [[1.0, 0.004, 0.004], [2.0, 0.0, 0.317]]
    """
    if gammas is None:
        gammas = np.arange(1.0, 3.0001, 0.25)
    D = n10 + n01
    T = max(n10, n01)
    direction = "more events in treated" if n10 >= n01 else "fewer events in treated"
    rows = []
    for g in np.atleast_1d(gammas):
        rows.append({"gamma": float(g),
                     "p_lower": float(stats.binom.sf(T - 1, D, 1 / (1 + g))) if D else 1.0,
                     "p_upper": _p_upper(T, D, g) if D else 1.0})
    if D == 0 or _p_upper(T, D, 1.0) > alpha:
        crit = 1.0
    elif _p_upper(T, D, 1e6) <= alpha:
        crit = float("inf")
    else:
        crit = float(optimize.brentq(lambda g: _p_upper(T, D, g) - alpha, 1.0, 1e6, xtol=1e-10))
    return RosenbaumBounds(n10, n01, direction, pd.DataFrame(rows), crit, alpha)
