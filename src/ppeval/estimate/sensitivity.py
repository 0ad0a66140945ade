"""Sensitivity to unmeasured confounding: E-values (VanderWeele & Ding 2017) and
Rosenbaum bounds for a binary outcome in matched sets (pairs, 1:k, variable ratio, or sets
with several treated units).

E-value: the minimum strength of association, on the risk-ratio scale, that an unmeasured
confounder would need with both the treatment and the outcome to explain away the
estimate (``evalue``) or to move the confidence limit closest to 1 to 1 (``evalue_ci``).

* risk ratio RR (>= 1): ``RR + sqrt(RR (RR - 1))``; below 1, use 1/RR;
* odds ratio: rare outcome (< 15%) OR ~ RR; common outcome RR ~ sqrt(OR);
* hazard ratio: rare outcome HR ~ RR; common outcome
  ``RR ~ (1 - 0.5^sqrt(HR)) / (1 - 0.5^sqrt(1/HR))``.

:func:`effect_evalues` is the one place the estimation stage computes them (``res.sensitivity``);
the report reads that table. An outcome counts as rare (:data:`RARE_OUTCOME`) when fewer
than 15% of the units of *each* arm had it: the window risks of the arms for a fixed-window
ratio, the share of units with an observed event for a hazard ratio.

Rosenbaum bounds (Rosenbaum 2002, *Observational Studies*, §4.4; Gastwirth, Krieger &
Rosenbaum 1998): in matched set *k* with ``n_k`` units, ``m_k`` treated and ``c_k`` with
the event, the statistic is ``T = sum_k A_k``, ``A_k`` the treated units with the event.
If hidden bias can make the odds of treatment of two units of a set differ by at most Γ,
the distribution of ``T`` is stochastically at most the sum of independent Fisher
noncentral hypergeometric variables with odds ratio Γ,
``P(A_k = a) ∝ C(c_k, a) C(n_k - c_k, m_k - a) Γ^a`` (the unobserved covariate equal to
the outcome attains the bound for a binary response), and at least the same with 1/Γ.
At Γ = 1 this is the exact conditional (Mantel–Haenszel-type) test of R's
``mantelhaen.test(exact = TRUE)``; in 1:1 pairs it is ``rbounds::binarysens``:
``P(Binom(D, Γ/(1+Γ)) >= T)`` over the D discordant pairs. The p-values are one-sided, in
the direction the data point to, and computed exactly (convolution of the sets'
distributions, grouped by their (n, m, c)).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize, special

__all__ = ["evalue", "EValue", "effect_evalues", "rosenbaum_bounds", "rosenbaum_sets", "RosenbaumBounds",
           "RARE_OUTCOME", "EVALUE_RULE"]

#: an outcome rarer than this in each arm counts as rare (VanderWeele & Ding 2017: 15%)
RARE_OUTCOME = 0.15
#: the rule in words, for the methods text
EVALUE_RULE = ("E-values (VanderWeele and Ding 2017) for every ratio: a risk ratio as it is; an odds ratio as a risk "
               "ratio when the outcome is rare (under 15% of the units of each arm), else its square root; a hazard ratio "
               "as a risk ratio when the outcome is rare, else through (1 - 0.5^sqrt(HR)) / (1 - 0.5^sqrt(1/HR)); "
               "the window risks of the arms decide for a fixed window, the share of units with the event for a hazard ratio")


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
    >>> round(evalue(0.6, 0.45, 0.8, measure="hazard_ratio").evalue, 2)  # common outcome
    2.2
    >>> round(evalue(0.6, 0.45, 0.8, measure="hazard_ratio", rare=True).evalue, 2)
    2.72
    """
    if not (estimate > 0 and np.isfinite(estimate)):
        raise ValueError("a ratio estimate must be positive and finite")
    rr = _to_rr(estimate, measure, rare)
    ev = _ev_rr(rr)
    ev_ci = None
    # a limit of 0 or infinity (an arm without events) has no E-value of its own
    if ci_low is not None and ci_high is not None and 0 < ci_low <= ci_high < np.inf:
        lo, hi = _to_rr(ci_low, measure, rare), _to_rr(ci_high, measure, rare)
        if lo <= 1 <= hi:
            ev_ci = 1.0
        else:
            ev_ci = _ev_rr(lo if rr > 1 else hi)
    return EValue(measure, float(estimate), ci_low, ci_high, rare, float(rr), ev, ev_ci)




EVALUE_COLUMNS = ["outcome", "measure", "window_months", "estimate", "ci_low", "ci_high", "outcome_share",
                  "rare_outcome", "rr_estimate", "evalue", "evalue_ci", "rule"]
_EVALUE_MEASURES = ("risk_ratio", "odds_ratio", "hazard_ratio", "subdistribution_hazard_ratio")


def _arm_share(risk: float | None, events: int | None, n: int | None) -> float | None:
    if risk is not None and np.isfinite(risk):
        return float(risk)
    if events is not None and n:
        return events / n
    return None


def effect_evalues(effects: Sequence[Any]) -> pd.DataFrame:
    """E-values of every estimated ratio effect, with the rare-outcome rule applied per effect.

    Parameters
    ----------
    effects : :class:`~ppeval.estimate.results.Effect` objects (others than ratios and
        effects that were not estimated are skipped).

    Returns
    -------
    DataFrame with :data:`EVALUE_COLUMNS`: ``outcome_share`` is the larger of the two arms'
    shares with the event (window risks for a fixed window, events / units for a hazard
    ratio); ``rare_outcome`` is ``outcome_share < 0.15``; ``rule`` says which conversion
    to the risk-ratio scale was used.

    Examples
    --------
    >>> from ppeval.estimate.results import Effect
    >>> e = Effect("hazard_ratio", 0.6, 0.15, 0.45, 0.8, 0.001, "Cox", n_treated=100, n_comparison=100,
    ...            events_treated=30, events_comparison=45)
    >>> effect_evalues([e])[["rare_outcome", "evalue"]].round(2).values.tolist()
    [[False, 2.2]]
    """
    rows = []
    for e in effects:
        if e.measure not in _EVALUE_MEASURES or not (np.isfinite(e.estimate) and e.estimate > 0):
            continue
        shares = [_arm_share(e.risk_treated, e.events_treated, e.n_treated),
                  _arm_share(e.risk_comparison, e.events_comparison, e.n_comparison)]
        known = [x for x in shares if x is not None]
        # unknown prevalence: the common-outcome conversion, which never overstates the E-value
        share = max(known) if known else None
        rare = share is not None and share < RARE_OUTCOME
        lo = e.ci_low if np.isfinite(e.ci_low) else None
        hi = e.ci_high if np.isfinite(e.ci_high) else None
        ev = evalue(e.estimate, lo, hi, measure=e.measure, rare=rare)
        if e.measure == "risk_ratio":
            rule = "risk ratio"
        elif rare:
            rule = "rare outcome: ratio taken as a risk ratio"
        elif e.measure == "odds_ratio":
            rule = "common outcome: RR = sqrt(OR)"
        else:
            rule = "common outcome: RR = (1 - 0.5^sqrt(HR)) / (1 - 0.5^sqrt(1/HR))"
        rows.append({"outcome": e.outcome, "measure": e.measure, "window_months": e.window_months,
                     "estimate": e.estimate, "ci_low": e.ci_low, "ci_high": e.ci_high, "outcome_share": share,
                     "rare_outcome": rare, "rr_estimate": ev.rr_estimate, "evalue": ev.evalue,
                     "evalue_ci": ev.evalue_ci, "rule": rule})
    return pd.DataFrame(rows, columns=EVALUE_COLUMNS)


@dataclass
class RosenbaumBounds:
    """Rosenbaum bounds on the one-sided p-value of the matched-set test at each Γ.

    Attributes
    ----------
    table : DataFrame with gamma, p_lower, p_upper.
    gamma_critical : the Γ at which the upper bound reaches ``alpha`` (inf if never; 1 if
        the test is not significant even without hidden bias, ``p_value`` > ``alpha``).
    p_value : the exact one-sided p-value at Γ = 1 (no hidden bias).
    statistic, expected : treated units with the event, and their expectation at Γ = 1.
    n_sets, n_treated, n_comparison, events_treated, events_comparison : the informative
        matched sets (both arms, and units with and without the event) and their units.
    design : the sets in words ("1:1 pairs", "matched sets of 2 to 6 units").
    n10, n01 : in 1:1 pairs, the discordant pairs (event in the treated unit only, in the
        comparison unit only); ``None`` otherwise.
    """

    direction: str
    table: pd.DataFrame
    gamma_critical: float
    alpha: float
    p_value: float
    statistic: int
    expected: float
    n_sets: int
    n_treated: int
    n_comparison: int
    events_treated: int
    events_comparison: int
    design: str
    n10: int | None = None
    n01: int | None = None

    def _repr_html_(self) -> str:
        return (f"<p>{self.design}: {self.n_sets} informative sets; T = {self.statistic} "
                f"(expected {self.expected:.2f} without hidden bias); critical Γ at α={self.alpha}: "
                f"{self.gamma_critical:.3f}</p>" + self.table.to_html(index=False))


def _fnch(n: np.ndarray, m: np.ndarray, c: np.ndarray, gamma: float) -> tuple[np.ndarray, np.ndarray]:
    """Fisher noncentral hypergeometric pmfs of sets (n, m, c), one row per set, on a = 0..max."""
    amax = int(np.minimum(m, c).max()) if len(n) else 0
    a = np.arange(amax + 1)[None, :]
    ok = (a >= np.maximum(0, m + c - n)[:, None]) & (a <= np.minimum(m, c)[:, None])
    with np.errstate(divide="ignore", invalid="ignore"):
        logw = (special.gammaln(c + 1)[:, None] - special.gammaln(a + 1) - special.gammaln(np.maximum(c[:, None] - a, 0) + 1)
                + special.gammaln(n - c + 1)[:, None] - special.gammaln(np.maximum(m[:, None] - a, 0) + 1)
                - special.gammaln(np.maximum(n[:, None] - c[:, None] - m[:, None] + a, 0) + 1)
                + a * np.log(gamma))
    logw = np.where(ok, logw, -np.inf)
    w = np.exp(logw - logw.max(axis=1, keepdims=True))
    return a[0], w / w.sum(axis=1, keepdims=True)


#: probabilities below this fraction of a pmf's largest one are dropped from its ends: they
#: are far below what a double can add to a tail sum, and keeping them made the convolutions
#: quadratic in the support (tens of thousands of points for a statewide cohort)
_NEGLIGIBLE = 1e-300


def _convolve(a: tuple[int, np.ndarray], b: tuple[int, np.ndarray]) -> tuple[int, np.ndarray]:
    """pmf of the sum of two independent counts, each (offset, probabilities), ends trimmed."""
    p = np.convolve(a[1], b[1])
    keep = np.flatnonzero(p > _NEGLIGIBLE * p.max())
    return a[0] + b[0] + int(keep[0]), p[keep[0]: keep[-1] + 1]


def _sum_pmf(sig: np.ndarray, mult: np.ndarray, gamma: float) -> tuple[int, np.ndarray]:
    """pmf of T = sum of independent set counts as (offset, probabilities from T = offset);
    ``sig`` rows (n, m, c) occur ``mult`` times."""
    _, pmf = _fnch(sig[:, 0], sig[:, 1], sig[:, 2], gamma)
    total = (0, np.ones(1))
    # one loop per distinct kind of set (a handful), squaring per bit of its multiplicity
    for p, k in zip(pmf, mult, strict=True):
        nz = np.flatnonzero(p)
        part = (int(nz[0]), p[nz[0]: nz[-1] + 1])
        power = (0, np.ones(1))
        k = int(k)
        while k:
            if k & 1:
                power = _convolve(power, part)
            k >>= 1
            if k:
                part = _convolve(part, part)
        total = _convolve(total, power)
    return total


def _bounds(sig: np.ndarray, mult: np.ndarray, t: int, upper_tail: bool, gamma: float) -> tuple[float, float]:
    """(lower, upper) bound on the one-sided p-value of T = t at Γ."""
    def tail(g: float) -> float:
        offset, pmf = _sum_pmf(sig, mult, g)
        i = min(max(t - offset, 0), len(pmf))
        p = pmf[i:].sum() if upper_tail else pmf[: max(t - offset + 1, 0)].sum()
        return float(min(1.0, p))

    if upper_tail:
        return tail(1 / gamma), tail(gamma)
    return tail(gamma), tail(1 / gamma)


def _bounds_from_sets(sig: np.ndarray, mult: np.ndarray, t: int, counts: dict[str, int], design: str,
                      gammas, alpha: float, n10: int | None = None, n01: int | None = None) -> RosenbaumBounds:
    if gammas is None:
        gammas = np.arange(1.0, 3.0001, 0.25)
    if len(sig):
        _, pmf1 = _fnch(sig[:, 0], sig[:, 1], sig[:, 2], 1.0)
        expected = float((pmf1 @ np.arange(pmf1.shape[1]) * mult).sum())
    else:
        expected = 0.0
    upper_tail = t >= expected
    direction = "more events in treated" if upper_tail else "fewer events in treated"
    if not len(sig):
        table = pd.DataFrame({"gamma": np.atleast_1d(gammas).astype(float), "p_lower": 1.0, "p_upper": 1.0})
        return RosenbaumBounds(direction, table, 1.0, alpha, 1.0, t, expected, 0, **counts, design=design, n10=n10, n01=n01)
    rows = [dict(zip(("p_lower", "p_upper"), _bounds(sig, mult, t, upper_tail, float(g)), strict=True), gamma=float(g))
            for g in np.atleast_1d(gammas)]
    table = pd.DataFrame(rows)[["gamma", "p_lower", "p_upper"]]
    p1 = _bounds(sig, mult, t, upper_tail, 1.0)[1]

    def excess(log_g: float) -> float:
        return _bounds(sig, mult, t, upper_tail, float(np.exp(log_g)))[1] - alpha

    if p1 > alpha:
        crit = 1.0
    elif excess(np.log(1e6)) <= 0:
        crit = float("inf")
    else:
        crit = float(np.exp(optimize.brentq(excess, 0.0, np.log(1e6), xtol=1e-12)))
    return RosenbaumBounds(direction, table, crit, alpha, p1, t, expected, int(mult.sum()), **counts,
                           design=design, n10=n10, n01=n01)


def rosenbaum_bounds(n10: int, n01: int, gammas=None, alpha: float = 0.05) -> RosenbaumBounds:
    """Rosenbaum bounds for a binary outcome in 1:1 matched pairs (``rbounds::binarysens``).

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
    D = int(n10) + int(n01)
    sig = np.array([[2, 1, 1]]) if D else np.zeros((0, 3), int)
    mult = np.array([D]) if D else np.zeros(0, int)
    counts = {"n_treated": D, "n_comparison": D, "events_treated": int(n10), "events_comparison": int(n01)}
    return _bounds_from_sets(sig, mult, int(n10), counts, "1:1 pairs (discordant pairs)", gammas, alpha, int(n10), int(n01))


def rosenbaum_sets(treated: np.ndarray, y: np.ndarray, sets: np.ndarray, gammas=None,
                   alpha: float = 0.05) -> RosenbaumBounds:
    """Rosenbaum bounds for a binary outcome in matched sets of any shape.

    Parameters
    ----------
    treated : bool per unit.
    y : 0/1 outcome per unit (no missing values: leave those units out first).
    sets : matched-set label per unit.
    gammas : Γ values for the table (default 1 to 3 by 0.25).
    alpha : one-sided level at which the critical Γ is found.

    Returns
    -------
    RosenbaumBounds
        Only informative sets count in ``n_sets`` and the unit counts: sets with both arms
        and with units both with and without the event (the others add a constant to T).
        In 1:1 pairs the numbers equal :func:`rosenbaum_bounds` on the discordant pairs.

    Examples
    --------
    >>> t = np.array([1, 0, 0, 1, 0, 0, 1, 0], bool)
    >>> y = np.array([1, 0, 0, 1, 1, 0, 1, 0])
    >>> rb = rosenbaum_sets(t, y, np.array([0, 0, 0, 1, 1, 1, 2, 2]), gammas=[1])
    >>> rb.statistic, round(rb.p_value, 4)  # P(T >= 3) = 1/3 * 2/3 * 1/2
    (3, 0.1111)
    """
    t = np.asarray(treated, bool)
    yy = np.asarray(y, float)
    if np.isnan(yy).any():
        raise ValueError("the outcome has missing values: leave those units out first")
    df = pd.DataFrame({"s": np.asarray(sets), "t": t.astype(int), "y": (yy > 0).astype(int)})
    g = df.groupby("s", sort=False).agg(n=("t", "size"), m=("t", "sum"), c=("y", "sum"))
    g["a"] = df.assign(ty=df["t"] * df["y"]).groupby("s", sort=False)["ty"].sum()
    informative = (g["m"] > 0) & (g["m"] < g["n"]) & (g["c"] > 0) & (g["c"] < g["n"])
    gi = g[informative]
    kinds = gi.groupby(["n", "m", "c"]).size()
    sig = np.array(kinds.index.tolist(), dtype=int).reshape(-1, 3)
    mult = kinds.to_numpy(int)
    # the fixed part of T from uninformative sets drops out: T over informative sets only
    stat = int(gi["a"].sum())
    counts = {"n_treated": int(gi["m"].sum()), "n_comparison": int((gi["n"] - gi["m"]).sum()),
              "events_treated": stat, "events_comparison": int((gi["c"] - gi["a"]).sum())}
    sizes = g.loc[(g["m"] > 0) & (g["m"] < g["n"]), "n"]
    pairs = bool(len(sizes)) and bool((sizes == 2).all())
    if pairs:
        design = "1:1 pairs"
    elif len(sizes):
        design = f"matched sets of {int(sizes.min())} to {int(sizes.max())} units"
    else:
        design = "matched sets"
    n10 = n01 = None
    if pairs:
        n10, n01 = stat, counts["events_comparison"]
    return _bounds_from_sets(sig, mult, stat, counts, design, gammas, alpha, n10, n01)
