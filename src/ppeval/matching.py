"""Matching on the propensity score: nearest neighbour (MatchIt's rules), exact, CEM and IPW.

:func:`match` takes a :class:`~ppeval.propensity.PropensityScore` and returns a
:class:`MatchedSample`: the matched units with ``match_id`` (the matched set) and ``weight``
(MatchIt's weights for the effect on the treated), the unmatched treated units with the
reason, and the treated-to-comparison pairs.

Nearest-neighbour matching follows MatchIt's ``method = "nearest"`` with
``distance = "glm", link = "linear.logit"``:

* the distance is the logit of the propensity score;
* ``caliper_sd`` is in standard deviations of that logit: caliper = ``caliper_sd`` x SD
  (n - 1 denominator) of the logit over every unit that has a score and is not discarded
  for lack of common support, treated and comparison together (MatchIt's
  ``std.caliper = TRUE``: ``caliper * sd(distance[!discarded])``);
* treated units are taken one at a time in ``order`` (default ``"largest"``: decreasing
  score, MatchIt's default for the ATT); with ``ratio = k`` there are k passes over the
  treated units, each giving every treated unit at most one more control;
* each treated unit gets the nearest still-unused comparison unit within the caliper.
  Units are sorted once by distance (stably, so equal distances keep data order, as R's
  ``sort.list``); the search walks left and right from the treated unit's place in that
  order. When the nearest candidates on the left (lower score) and on the right are
  equally distant, the left one wins (MatchIt's ``<=``). Distances that differ by less
  than 1e-9 of the logit's range count as equal, so that the result does not depend on
  floating-point rounding of the fitted model (lalonde has exact mathematical ties).

The search is a sorted scan compiled with numba: the comparison units are sorted once, and
used units are skipped in amortised constant time with two union-find "next unused" arrays
(one per direction), so matching costs O(n log n) rather than O(treated x controls).

Family-level matching (``cluster="family_id"``): when the unit is the child, siblings are
matched as a block. Each family becomes one matching unit whose distance is the mean logit
of its children; families are matched exactly as units are (caliper in SDs of the family
mean logit over families); all children of a matched family carry the family's match_id and
weight. A family must have one arm (siblings share treatment). A numeric ``exact`` column
that differs between siblings (e.g. ``entry_year`` when siblings were removed in different
years) takes the family's smallest value, i.e. its first entry; a non-numeric one must be
the same for all siblings. A family is not matched if any of its children lacks a score or
is outside common support.

Index dates without immortal time (``delay=`` and ``eligible_until=``): a comparison unit
may serve a treated unit whose enrollment came ``d`` days after its own start only if the
comparison unit is still eligible (e.g. still in care) ``d`` days after its own start, i.e.
``eligible_until > d``. The matched comparison unit then takes the treated unit's delay in
the ``delay`` column, and an optional ``reindex`` callable recomputes outcome columns from
it. At family level a treated family's delay is the largest delay among its children and a
comparison family's ``eligible_until`` the smallest among its children (every sibling must be
eligible).

With ``delay=``, treated units are taken in increasing order of their delay (risk-set
matching in time order, as Li, Propert & Rosenbaum 2001): all treated units with delay *d*
get their matches (every pass when ``ratio`` > 1) before any treated unit with a longer
delay, and ``order`` ranks the treated units within one delay. Then whether a comparison
unit is still free at delay *d* depends only on matches made at earlier delays, i.e. on its
past. Taken in score order instead, a treated unit with a long delay can use up a comparison
unit that stays eligible long, so that treated units with short delays are left with the
comparison units that leave early: the pool is selected on its outcome (for reunification,
quicker exits), which biases the comparison against the treated arm.

Examples
--------
>>> import numpy as np, pandas as pd
>>> from ppeval.propensity import PropensityScore
>>> df = pd.DataFrame({"treated": [1, 1, 0, 0, 0], "x": [0.0, 1.0, 0.1, 0.9, 5.0]})
>>> ps = PropensityScore.from_logit(df, "treated", df["x"], ["x"])
>>> m = match(ps, caliper_sd=None)
>>> m.pairs[["treated", "control"]].values.tolist()
[[0, 2], [1, 3]]
>>> m.data["weight"].tolist()
[1.0, 1.0, 1.0, 1.0]
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from numba import njit

from .errors import PpevalError
from .privacy import format_count as _n  # counts in messages: small ones shown as "<11"
from .propensity import PropensityScore
from .text import plain

__all__ = ["MatchedSample", "MatchingError", "match"]

METHODS = ("nearest", "exact", "cem", "ipw")
ORDERS = ("largest", "smallest", "random", "data")

REASON_SUPPORT = "outside common support"
REASON_NO_SCORE = "no propensity score (missing covariates)"
REASON_STRATUM = "no control in exact stratum"
REASON_CALIPER = "no control within caliper"
REASON_DELAY = "no eligible control at this delay"

# Ties within this fraction of the distance range are decided as exact ties.
_TIE_TOL = 1e-9


class MatchingError(PpevalError):
    """Matching cannot be done as asked (bad arguments, or no unit could be matched)."""


# ---------------------------------------------------------------------------------------
# the compiled sorted scan
# ---------------------------------------------------------------------------------------


@njit(cache=True)
def _find(parent, x):  # pragma: no cover - compiled
    # Union-find root with path compression: the nearest unused slot in one direction.
    root = x
    while parent[root] != root:
        root = parent[root]
    while parent[x] != root:
        nxt = parent[x]
        parent[x] = root
        x = nxt
    return root


@njit(cache=True)
def _usable(q, i, r, mm, c_elig, t_delay, use_delay, replace):  # pragma: no cover - compiled
    # May comparison slot q serve treated unit i as its match number r? Still in care at
    # i's delay, and (with replacement) not already one of i's earlier matches.
    if use_delay and not (c_elig[q] > t_delay[i]):
        return False
    if replace:
        for s in range(r):
            if mm[i, s] == q:
                return False
    return True


@njit(cache=True)
def _nn_scan(c_dist, c_elig, t_dist, t_pos, t_lo, t_hi, t_delay, t_active, order, group_end,
             ratio, caliper, replace, use_delay, tol):  # pragma: no cover - compiled
    """Greedy nearest-neighbour matching on a sorted distance.

    c_dist     comparison units' distances, sorted within stratum blocks
    c_elig     comparison units' eligible_until (used when use_delay)
    t_dist     treated units' distances
    t_pos      number of comparison units before the treated unit in the stable joint
               sort (within all strata): its place among the comparison units
    t_lo, t_hi the treated unit's stratum block [lo, hi) of comparison positions
    order      the order in which treated units are taken
    group_end  exclusive ends of consecutive groups of ``order`` (one group per delay with
               use_delay, else one group): each group gets all ``ratio`` passes before the next
    Returns an (n_treated, ratio) array of comparison positions (-1 = no match).
    """
    nt = t_dist.shape[0]
    nc = c_dist.shape[0]
    mm = np.full((nt, ratio), -1, np.int64)
    # left[k] for k = p + 1 is the slot of comparison position p; left[0] is the "none"
    # sentinel. right[p] is position p; right[nc] is the "none" sentinel.
    left = np.arange(nc + 1)
    right = np.arange(nc + 1)
    g0 = 0
    for g1 in group_end:
        for r in range(ratio):
            for oi in range(g0, g1):
                i = order[oi]
                if not t_active[i]:
                    continue
                lo = t_lo[i]
                hi = t_hi[i]
                if lo >= hi:
                    continue
                d = t_dist[i]
                # nearest usable comparison unit on the left (lower distance)
                kl = -1
                q = _find(left, t_pos[i]) - 1
                while q >= lo:
                    if d - c_dist[q] > caliper:
                        break  # sorted: everything further left is further away
                    if _usable(q, i, r, mm, c_elig, t_delay, use_delay, replace):
                        kl = q
                        break
                    q = _find(left, q) - 1
                # ... and on the right
                kr = -1
                q = _find(right, t_pos[i])
                while q < hi:
                    if c_dist[q] - d > caliper:
                        break
                    if _usable(q, i, r, mm, c_elig, t_delay, use_delay, replace):
                        kr = q
                        break
                    q = _find(right, q + 1)
                if kl >= 0 and kr >= 0:
                    k = kl if (d - c_dist[kl]) <= (c_dist[kr] - d) + tol else kr
                elif kl >= 0:
                    k = kl
                elif kr >= 0:
                    k = kr
                else:
                    continue
                mm[i, r] = k
                if not replace:
                    left[k + 1] = k
                    right[k] = k + 1
        g0 = g1
    return mm


@njit(cache=True)
def _why_unmatched(c_dist, c_elig, t_dist, t_lo, t_hi, t_delay, idx, caliper,
                   use_delay):  # pragma: no cover - compiled
    """For unmatched treated units: comparison units within the caliper, and eligible ones."""
    n = idx.shape[0]
    within = np.zeros(n, np.int64)
    eligible = np.zeros(n, np.int64)
    for j in range(n):
        i = idx[j]
        lo = t_lo[i]
        hi = t_hi[i]
        if lo >= hi:
            continue
        d = t_dist[i]
        a = lo + np.searchsorted(c_dist[lo:hi], d - caliper, side="left")
        b = lo + np.searchsorted(c_dist[lo:hi], d + caliper, side="right")
        within[j] = b - a
        if use_delay:
            cnt = 0
            for q in range(a, b):
                if c_elig[q] > t_delay[i]:
                    cnt += 1
            eligible[j] = cnt
        else:
            eligible[j] = b - a
    return within, eligible


def _nearest_core(dist, treated, active, strata, delay, elig, ratio, caliper, replace,
                  order, rng):
    """Run the scan on arrays of units. Returns (mm, info) with mm in unit positions.

    ``dist`` float (n,), ``treated``/``active`` bool (n,), ``strata`` int codes or None,
    ``delay``/``elig`` float or None. ``mm`` is (n_treated, ratio) of unit positions
    (-1 = none) with rows in data order of the treated units.
    """
    n = len(dist)
    t_rows = np.flatnonzero(treated)
    act_rows = np.flatnonzero(active)
    a_dist = dist[act_rows]
    srt = np.argsort(a_dist, kind="stable")  # R's sort.list: stable
    if strata is not None:
        srt = srt[np.argsort(strata[act_rows][srt], kind="stable")]
    s_rows = act_rows[srt]
    s_ctrl = ~treated[s_rows]
    ctrl_before = np.cumsum(s_ctrl) - s_ctrl  # comparison units before each sorted unit
    c_rows = s_rows[s_ctrl]
    c_dist = np.ascontiguousarray(dist[c_rows])
    c_elig = np.ascontiguousarray(elig[c_rows]) if elig is not None else np.zeros(len(c_rows))

    nt = len(t_rows)
    pos_of_row = np.full(n, -1, np.int64)
    pos_of_row[s_rows] = ctrl_before
    t_pos = pos_of_row[t_rows]
    t_active = active[t_rows]
    if strata is not None:
        c_str = strata[c_rows]
        t_str = strata[t_rows]
        t_lo = np.searchsorted(c_str, t_str, side="left").astype(np.int64)
        t_hi = np.searchsorted(c_str, t_str, side="right").astype(np.int64)
    else:
        t_lo = np.zeros(nt, np.int64)
        t_hi = np.full(nt, len(c_rows), np.int64)
    t_dist = dist[t_rows].astype(float)
    t_delay = delay[t_rows].astype(float) if delay is not None else np.zeros(nt)

    keyd = np.where(np.isnan(t_dist), -np.inf, t_dist)
    if order == "largest":
        ord_ = np.argsort(-keyd, kind="stable")  # R's order(decreasing = TRUE) keeps ties in data order
    elif order == "smallest":
        ord_ = np.argsort(np.where(np.isnan(t_dist), np.inf, t_dist), kind="stable")
    elif order == "random":
        ord_ = rng.permutation(nt)
    else:
        ord_ = np.arange(nt)
    if delay is not None:
        # risk-set matching in time order: earliest delay first, ``order`` within a delay
        ord_ = ord_[np.argsort(np.where(np.isnan(t_delay[ord_]), np.inf, t_delay[ord_]), kind="stable")]
        dl = t_delay[ord_]
        change = np.flatnonzero(~((dl[1:] == dl[:-1]) | (np.isnan(dl[1:]) & np.isnan(dl[:-1])))) + 1
        group_end = np.r_[change, nt].astype(np.int64)
    else:
        group_end = np.array([nt], np.int64)
    ad = dist[act_rows]
    rng_d = float(ad.max() - ad.min()) if len(ad) else 0.0
    cal = np.inf if caliper is None else float(caliper)
    mm_pos = _nn_scan(c_dist, c_elig, t_dist, t_pos, t_lo, t_hi, t_delay, t_active,
                      ord_.astype(np.int64), group_end, int(ratio), cal, bool(replace),
                      delay is not None, _TIE_TOL * rng_d)
    mm = np.where(mm_pos >= 0, c_rows[np.maximum(mm_pos, 0)], -1)

    # reasons for treated units that got no match at all
    none = t_active & (mm[:, 0] < 0)
    idx = np.flatnonzero(none).astype(np.int64)
    within, eligible = _why_unmatched(c_dist, c_elig, t_dist, t_lo, t_hi, t_delay, idx, cal,
                                      delay is not None)
    info = {
        "t_rows": t_rows,
        "unmatched_idx": idx,
        "empty_stratum": (t_lo[idx] >= t_hi[idx]),
        "within": within,
        "eligible": eligible,
        "n_controls_active": len(c_rows),
        "order": ord_,
    }
    return mm, info


# ---------------------------------------------------------------------------------------
# weights and sets (MatchIt's rules)
# ---------------------------------------------------------------------------------------


def _matchit_weights(mm: np.ndarray, t_rows: np.ndarray, n: int) -> np.ndarray:
    """MatchIt's ``weights.matrix``: treated 1; each control gets 1/k from every treated unit
    it is matched to (k = that treated unit's number of matches); control weights are then
    scaled to sum to the number of distinct matched controls."""
    w = np.zeros(n)
    k = (mm >= 0).sum(axis=1)
    has = k > 0
    w[t_rows[has]] = 1.0
    rows, slots = np.nonzero(mm >= 0)
    np.add.at(w, mm[rows, slots], 1.0 / k[rows])
    is_c = np.zeros(n, dtype=bool)
    is_c[mm[mm >= 0]] = True
    tot = w[is_c].sum()
    if tot > 0:
        w[is_c] *= is_c.sum() / tot
    return w


def _subclass_weights(strata: np.ndarray, treated: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """MatchIt's exact/CEM weights for the ATT: treated 1, controls (M_C/M_T) x (m_T,s/m_C,s)."""
    w = np.zeros(len(strata))
    s = strata[keep]
    t = treated[keep]
    codes, inv = np.unique(s, return_inverse=True)
    n_t = np.bincount(inv, weights=t.astype(float), minlength=len(codes))
    n_c = np.bincount(inv, weights=(~t).astype(float), minlength=len(codes))
    ok = (n_t > 0) & (n_c > 0)
    m_t, m_c = n_t[ok].sum(), n_c[ok].sum()
    wk = np.zeros(len(s))
    inok = ok[inv]
    wk[inok & t] = 1.0
    cc = inok & ~t
    wk[cc] = (n_t[inv[cc]] / n_c[inv[cc]]) * (m_c / m_t)
    w[np.flatnonzero(keep)] = wk
    return w


# ---------------------------------------------------------------------------------------
# result
# ---------------------------------------------------------------------------------------


class MatchedSample:
    """The result of :func:`match`.

    Attributes
    ----------
    data : DataFrame
        Matched units (rows of the propensity data, one row per unit) with ``match_id``
        (matched set; the subclass) and ``weight`` (MatchIt's ATT weights: treated 1;
        comparison units 1/k from each treated unit they serve, k = that unit's number of
        matches, rescaled so comparison weights sum to the number of matched comparison
        units). With ``replace=True`` a reused comparison unit appears once, with the
        match_id of the first set it joined; use :attr:`matches` for set-level analyses.
        :func:`ppeval.estimate.estimate` then clusters by unit, not by ``match_id``
        (MatchIt's convention for ``match.data()`` output after matching with replacement).
    matches : DataFrame
        One row per (matched set, unit), as MatchIt's ``get_matches()``: comparison units
        reused with replacement appear once per set; ``weight`` is 1 for treated units and
        1/k for each of a treated unit's k controls; ``role`` and ``slot`` say who is who.
    unmatched : DataFrame
        Treated units without any match: ``reason`` (one of "outside common support",
        "no control in exact stratum", "no eligible control at this delay", "no control
        within caliper", "no propensity score (missing covariates)") and ``detail``.
    pairs : DataFrame
        treated -> control index labels (family ids with ``cluster=``), ``match_id``,
        ``slot`` and ``distance`` (absolute difference in the logit).
    counts : dict
        Treated and comparison units: total, matched, unmatched, discarded.
    method : str
        What was done, in words, including the caliper's unit.
    caliper_ : float or None
        The caliper on the logit scale.
    """

    def __init__(self, ps: PropensityScore, data: pd.DataFrame, matches: pd.DataFrame,
                 unmatched: pd.DataFrame, pairs: pd.DataFrame, counts: dict[str, int],
                 method: str, settings: dict[str, Any], caliper: float | None,
                 sd_logit: float | None):
        self.ps = ps
        self.data = data
        self.matches = matches
        self.unmatched = unmatched
        self.pairs = pairs
        self.counts = counts
        self.method = method
        self.settings = settings
        self.caliper_ = caliper
        self.sd_logit_ = sd_logit

    @property
    def treatment(self) -> str:
        return self.ps.treatment

    @property
    def covariates(self) -> list[str]:
        return self.ps.covariates

    def summary(self) -> pd.DataFrame:
        """Sample sizes by arm (as MatchIt's ``summary()$nn``), with the effective sample size.

        The effective sample size of weighted units is (sum w)^2 / sum w^2.
        """
        w = self.data["weight"]
        tm = self.data[self.treatment].astype(bool).to_numpy()

        def ess(x):
            return float(x.sum() ** 2 / (x**2).sum()) if len(x) and (x**2).sum() > 0 else 0.0

        c = self.counts
        out = pd.DataFrame(
            {
                "treated": [c["treated"], ess(w[tm]), c["treated_matched"],
                            c["treated_unmatched"], c["treated_discarded"]],
                "comparison": [c["comparison"], ess(w[~tm]), c["comparison_matched"],
                               c["comparison"] - c["comparison_matched"] - c["comparison_discarded"],
                               c["comparison_discarded"]],
            },
            index=pd.Index(["All", "Matched (ESS)", "Matched", "Unmatched", "Discarded"],
                           name="sample"),
        )
        out.attrs["method"] = self.method
        return out

    def __repr__(self) -> str:
        c = self.counts
        return (
            f"MatchedSample({c['treated_matched']} of {c['treated']} treated matched to "
            f"{c['comparison_matched']} comparison units; {self.method})"
        )

    def _repr_html_(self) -> str:
        reasons = ""
        if len(self.unmatched):
            reasons = self.unmatched["reason"].value_counts().rename("treated units").to_frame().to_html()
        return (
            f"<p><b>MatchedSample</b>: {html.escape(self.method)}</p>"
            + self.summary().to_html(float_format=lambda v: f"{v:.1f}")
            + reasons
        )


# ---------------------------------------------------------------------------------------
# match()
# ---------------------------------------------------------------------------------------


def _strata_codes(df: pd.DataFrame, cols: Sequence[str]) -> np.ndarray:
    """Integer code of each row's combination of values (missing is a value of its own)."""
    if len(cols) == 1:
        codes, _ = pd.factorize(df[cols[0]], use_na_sentinel=False)
        return codes.astype(np.int64)
    codes, _ = pd.MultiIndex.from_frame(df[list(cols)]).factorize()
    return codes.astype(np.int64)


def _describe(method, ratio, replace, caliper_sd, caliper, order, exact, cluster, delay):
    if method == "ipw":
        txt = ("inverse probability weighting for the effect on the treated: treated 1, "
               "comparison p/(1-p) normalised to sum to the number of treated units")
    elif method in ("exact", "cem"):
        what = "exact" if method == "exact" else "coarsened exact"
        txt = (f"{what} matching on {', '.join(exact)}; weights: treated 1, comparison "
               "(M_C/M_T) x (treated/comparison in the stratum)")
    else:
        order_txt = {
            "largest": "in decreasing order of the score",
            "smallest": "in increasing order of the score",
            "random": "in random order",
            "data": "in data order",
        }[order]
        txt = (f"{ratio}:1 nearest-neighbour matching on the logit of the propensity score, "
               f"{'with' if replace else 'without'} replacement, treated units {order_txt}")
        if caliper_sd is None:
            txt += ", no caliper"
        else:
            txt += (f", caliper {caliper_sd:g} SD of the logit of the propensity score "
                    f"({caliper:.4g} on the logit scale)")
        if exact:
            txt += f", exactly within {', '.join(exact)}"
        if delay:
            txt += (f", comparison units eligible only while eligible_until > the treated unit's {delay}"
                    f" (treated units taken in increasing {delay}, risk-set matching in time order)")
    if cluster:
        txt += f"; families ({cluster}) matched as blocks on their mean logit"
    return txt


def _cem_strata(df: pd.DataFrame, cols: Sequence[str], kinds: dict[str, str],
                cutpoints: dict | None) -> tuple[np.ndarray, dict]:
    """Coarsen numeric columns (Sturges bins by default, as MatchIt/cem) and combine."""
    cutpoints = dict(cutpoints or {})
    coarse = {}
    used = {}
    for c in cols:
        s = df[c]
        is_num = pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype)
        spec = cutpoints.get(c, "sturges" if is_num and kinds.get(c) != "binary" else None)
        if spec is None or not is_num or s.nunique() <= 2:
            coarse[c] = s
            used[c] = None
            continue
        x = s.to_numpy(dtype=float, na_value=np.nan)
        lo, hi = np.nanmin(x), np.nanmax(x)
        if isinstance(spec, str):
            if spec != "sturges":
                raise MatchingError(f"cutpoints for {c!r} must be 'sturges', a number of bins "
                                    f"or a list of cut points, got {spec!r}")
            k = math.ceil(math.log2(np.isfinite(x).sum()) + 1)  # R's nclass.Sturges
            spec = k
        if isinstance(spec, (int, np.integer)):
            # R's cut(x, breaks = k): k equal-width intervals over the range, widened by
            # 0.1% of the range at both ends, closed on the right.
            br = np.linspace(lo, hi, int(spec) + 1)
            dx = (hi - lo) or abs(lo) or 1.0
            br[0] -= dx / 1000
            br[-1] += dx / 1000
        else:
            br = np.unique(np.r_[-np.inf, np.asarray(spec, dtype=float), np.inf])
        coarse[c] = pd.Series(np.searchsorted(br, x, side="left"), index=s.index).where(~np.isnan(x))
        used[c] = br.tolist()
    codes = _strata_codes(pd.DataFrame(coarse), list(cols))
    return codes, used


def _risk_set_rows(df: pd.DataFrame) -> bool:
    """Whether ``df`` holds cohort rows whose served units start later than their comparisons:
    an index delay after removal (or report), or served units' own rows before enrolment."""
    if "index_delay_days" not in df.columns or "eligible_until_days" not in df.columns:
        return False
    later = "served_later" in df.columns and bool(df["served_later"].fillna(False).astype(bool).any())
    return later or bool(pd.to_numeric(df["index_delay_days"], errors="coerce").fillna(0).gt(0).any())


def match(
    ps: PropensityScore,
    ratio: int = 1,
    caliper_sd: float | None = 0.2,
    replace: bool = False,
    exact: Sequence[str] | str | None = None,
    order: str = "largest",
    *,
    method: str = "nearest",
    cluster: str | None = None,
    delay: str | None = None,
    eligible_until: str | None = None,
    reindex: Callable[[pd.DataFrame], pd.DataFrame] | None = None,
    cutpoints: dict[str, Any] | None = None,
    random_state: int | None = 0,
) -> MatchedSample:
    """Match treated units to comparison units on the logit of the propensity score.

    Parameters
    ----------
    ps : PropensityScore
        From :func:`ppeval.propensity` (or :meth:`PropensityScore.from_logit`).
    ratio : int
        Comparison units per treated unit (k:1), found in k passes as MatchIt does.
    caliper_sd : float or None
        Caliper in standard deviations of the logit of the propensity score (0.2 = Austin's
        recommendation); the SD is over all units with a score that are not discarded for
        common support, treated and comparison together (MatchIt's rule). None: no caliper.
    replace : bool
        Whether a comparison unit may serve more than one treated unit.
    exact : list of str, optional
        Match only within identical values of these columns (e.g. entry year). With
        ``method="exact"`` or ``"cem"``, the columns matched exactly (default: the
        propensity covariates for ``"exact"``).
    order : {"largest", "smallest", "random", "data"}
        Order in which treated units choose: decreasing score (MatchIt's default),
        increasing score, random (``random_state``) or data order.
    method : {"nearest", "exact", "cem", "ipw"}
        Nearest neighbour; exact matching; coarsened exact matching (numeric propensity
        covariates coarsened with ``cutpoints``, Sturges' rule by default; ``exact``
        columns kept whole); or inverse probability weights for the ATT (treated 1,
        comparison p/(1-p) normalised to sum to the number of treated units; every unit is
        kept and ``match_id`` identifies the unit or, with ``cluster``, its family).
    cluster : str, optional
        Family id column: siblings are matched together as a block (see the module notes).
    delay, eligible_until : str, optional
        Columns for index dates without immortal time: a comparison unit can serve a treated
        unit with ``delay = d`` only if its ``eligible_until > d``; the matched comparison
        unit's ``delay`` is set to ``d``. Treated units are then taken in increasing delay
        (``order`` ranks them within a delay; see the module notes).
    reindex : callable, optional
        Applied to the matched data (and to :attr:`MatchedSample.matches`) after matching,
        e.g. to recompute outcomes from the new index dates. Defaults to ``ps.reindex``.
    cutpoints : dict, optional
        For ``method="cem"``: column -> number of equal-width bins, list of cut points, or
        "sturges".
    random_state : int, optional
        Seed for ``order="random"``.

    Returns
    -------
    MatchedSample

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from ppeval.propensity import propensity
    >>> rng = np.random.default_rng(3)
    >>> df = pd.DataFrame({"x": rng.normal(size=2000)})
    >>> df["treated"] = (rng.random(2000) < 1 / (1 + np.exp(2 - df["x"]))).astype(int)
    >>> m = match(propensity(df, "treated", ["x"]), ratio=1, caliper_sd=0.2)
    >>> bool(m.counts["treated_matched"] == (m.data["treated"] == 1).sum())
    True
    >>> m.method.split(",")[-1].strip()[:45]
    'caliper 0.2 SD of the logit of the propensity'
    """
    if not isinstance(ps, PropensityScore):
        raise MatchingError("match() needs a PropensityScore from ppeval.propensity()")
    if method not in METHODS:
        raise MatchingError(f"method must be one of {METHODS}, got {method!r}")
    if order not in ORDERS:
        raise MatchingError(f"order must be one of {ORDERS}, got {order!r}")
    if not isinstance(ratio, (int, np.integer)) or ratio < 1:
        raise MatchingError(f"ratio must be a whole number >= 1, got {ratio!r}")
    if caliper_sd is not None and not (caliper_sd > 0):
        raise MatchingError(f"caliper_sd must be positive or None, got {caliper_sd!r}")
    if isinstance(exact, str):
        exact = [exact]
    exact = list(exact or [])
    df = ps.data
    for c in [*exact, cluster, delay, eligible_until]:
        if c is not None and c not in df.columns:
            raise MatchingError(f"column {c!r} is not in the data")
    if (delay is None) != (eligible_until is None):
        raise MatchingError("give both delay= and eligible_until= (or neither)")
    if delay is None and _risk_set_rows(df):
        # cohort rows: served units start at enrolment, comparison rows are a risk set (served
        # units' own rows before their enrolment among them); matched at their own start they
        # give estimates with immortal time (a served child matched to its own earlier row
        # gave a hazard ratio of 22), so no number is better than that one
        if method != "nearest":
            raise MatchingError(
                f"method={method!r} cannot be used on cohort rows yet: it would start each comparison unit at its "
                "own removal (or report) while served units start at enrolment, which biases every effect "
                "(immortal time); use method='nearest', which matches each comparison unit at the served unit's delay"
            )
        raise MatchingError(
            "these rows come from a cohort (they carry index_delay_days and eligible_until_days): pass "
            "delay='index_delay_days', eligible_until='eligible_until_days', cluster='match_family' (child unit) "
            "and reindex=cohort.reindex, as Evaluation.match does; matched without them, served units would be "
            "compared at their own start with comparison rows that include their own rows before enrolment"
        )
    if delay is not None and method != "nearest":
        raise MatchingError("delay= and eligible_until= work with method='nearest' only")
    if cluster is not None and method in ("exact", "cem"):
        raise MatchingError("cluster= works with method='nearest' or 'ipw'")
    if exact and method == "ipw":
        raise MatchingError("exact= does not apply to method='ipw' (weights use the score only)")
    if method == "exact" and not (exact or ps.covariates):
        raise MatchingError("method='exact' needs exact=[columns] (or propensity covariates)")
    if reindex is None:
        reindex = getattr(ps, "reindex", None)
    if method == "cem" and not exact and not ps.covariates:
        raise MatchingError("method='cem' needs covariates (from the propensity model) or exact=")

    rng = np.random.default_rng(random_state)
    treated = ps.treated_.to_numpy()
    logit = ps.logit_.to_numpy(dtype=float)
    has_score = ~np.isnan(logit)
    discarded = ps.discarded_.to_numpy()
    active = has_score & ~discarded
    n = len(df)

    if method == "ipw":
        return _ipw(ps, df, treated, active, has_score, discarded, cluster, reindex)
    if method in ("exact", "cem"):
        return _exact_or_cem(ps, df, treated, active, has_score, discarded, exact, method,
                             cutpoints, reindex)

    if not (active & ~treated).any():
        raise MatchingError("no comparison unit has a propensity score inside common support")

    # ---- matching units: children, or families as blocks -------------------------------
    if cluster is not None:
        fam = df[cluster]
        if fam.isna().any():
            raise MatchingError(f"{_n(int(fam.isna().sum()))} unit(s) have no {cluster!r}")
        fcode, fam_ids = pd.factorize(fam)
        nf = len(fam_ids)
        n_t = np.bincount(fcode, weights=treated.astype(float), minlength=nf)
        size = np.bincount(fcode, minlength=nf)
        mixed = (n_t > 0) & (n_t < size)
        if mixed.any():
            # name the data row, never the family id (identifiers stay out of messages)
            row = df.index[int(np.flatnonzero(fcode == np.flatnonzero(mixed)[0])[0])]
            row = row.item() if isinstance(row, np.generic) else row  # 5, not np.int64(5)
            raise MatchingError(
                f"{_n(int(mixed.sum()))} famil(ies) have both treated and comparison children "
                f"(e.g. the family of data row {plain(row)!r}); siblings must share an arm for family-level matching"
            )
        fam_exact = {}
        for c in exact:
            col = df[c]
            nun = col.groupby(fcode).nunique(dropna=False)
            if (nun > 1).any() and not (pd.api.types.is_numeric_dtype(col.dtype)
                                        and not pd.api.types.is_bool_dtype(col.dtype)):
                row = df.index[int(np.flatnonzero(fcode == int(nun.index[np.argmax(nun.to_numpy() > 1)]))[0])]
                row = row.item() if isinstance(row, np.generic) else row
                raise MatchingError(
                    f"column {c!r} differs between siblings (e.g. the family of data row {plain(row)!r}); a "
                    "non-numeric exact column must be the same for every child of a family"
                )
            # numeric (e.g. entry_year): the family's smallest value, i.e. its first entry
            fam_exact[c] = col.groupby(fcode).min().reindex(range(nf)).to_numpy()
        u_treated = n_t > 0
        n_act = np.bincount(fcode, weights=active.astype(float), minlength=nf)
        u_active = n_act == size  # every child scored and inside common support
        s_logit = np.bincount(fcode, weights=np.where(has_score, logit, 0.0), minlength=nf)
        u_dist = np.where(u_active, s_logit / np.maximum(size, 1), np.nan)
        u_strata = _strata_codes(pd.DataFrame(fam_exact), exact) if exact else None
        u_delay = u_elig = None
        if delay is not None:
            dl = df[delay].to_numpy(dtype=float, na_value=np.nan)
            el = df[eligible_until].to_numpy(dtype=float, na_value=np.nan)
            u_delay = np.full(nf, -np.inf)
            np.maximum.at(u_delay, fcode, np.where(np.isnan(dl), -np.inf, dl))
            # a family none of whose children has a delay has no delay (NaN), not -inf
            u_delay[np.bincount(fcode, weights=(~np.isnan(dl)).astype(float), minlength=nf) == 0] = np.nan
            u_elig = np.full(nf, np.inf)
            np.minimum.at(u_elig, fcode, np.where(np.isnan(el), -np.inf, el))
        unit_of_row = fcode
        u_labels = np.asarray(fam_ids, dtype=object)
        u_has_score = np.bincount(fcode, weights=has_score.astype(float), minlength=nf) == size
    else:
        u_treated, u_active, u_dist = treated, active, logit
        u_strata = _strata_codes(df, exact) if exact else None
        u_delay = df[delay].to_numpy(dtype=float, na_value=np.nan) if delay else None
        u_elig = df[eligible_until].to_numpy(dtype=float, na_value=np.nan) if delay else None
        if u_elig is not None:
            u_elig = np.where(np.isnan(u_elig), -np.inf, u_elig)  # unknown: never eligible
        unit_of_row = np.arange(n)
        u_labels = df.index.to_numpy()
        u_has_score = has_score
    if delay is not None and np.isnan(u_delay[u_treated & u_active]).any():
        raise MatchingError(f"treated units need a value of {delay!r}")

    sd = float(np.std(u_dist[u_active], ddof=1)) if u_active.sum() > 1 else float("nan")
    caliper = None if caliper_sd is None else caliper_sd * sd
    mm, info = _nearest_core(u_dist, u_treated, u_active, u_strata, u_delay, u_elig, ratio,
                             caliper, replace, order, rng)
    t_units = info["t_rows"]
    nu = len(u_dist)
    if not (mm >= 0).any():
        raise MatchingError(
            "no treated unit could be matched: "
            + _no_match_summary(info, u_active[t_units], exact, delay)
        )
    u_w = _matchit_weights(mm, t_units, nu)

    # ---- matched sets ------------------------------------------------------------------
    k = (mm >= 0).sum(axis=1)
    matched_t = k > 0
    set_id = np.zeros(len(t_units), np.int64)
    set_id[matched_t] = np.arange(1, matched_t.sum() + 1)  # numbered in data order
    u_set = np.zeros(nu, np.int64)
    u_set[t_units[matched_t]] = set_id[matched_t]
    rr, ss = np.nonzero(mm >= 0)
    # with replacement a control joins several sets: keep the first (lowest id) here
    ctrl_units = mm[rr, ss]
    ord_first = np.lexsort((set_id[rr], ctrl_units))
    cu, first_idx = np.unique(ctrl_units[ord_first], return_index=True)
    u_set[cu] = set_id[rr[ord_first[first_idx]]]
    u_delay_out = None
    if delay is not None:
        u_delay_out = np.full(nu, np.nan)
        u_delay_out[cu] = u_delay[t_units[rr[ord_first[first_idx]]]]

    in_match = u_w > 0
    row_sel = in_match[unit_of_row]
    rows = np.flatnonzero(row_sel)
    data = df.iloc[rows].copy()
    data["match_id"] = u_set[unit_of_row[rows]]
    data["weight"] = u_w[unit_of_row[rows]]
    if delay is not None:
        is_ctrl_row = ~treated[rows]
        new = u_delay_out[unit_of_row[rows]]
        dcol = data[delay].to_numpy(dtype=float, na_value=np.nan).copy()
        dcol[is_ctrl_row] = new[is_ctrl_row]
        data[delay] = dcol

    # ---- long form (get_matches) --------------------------------------------------------
    t_set_units = t_units[rr]
    pair_dist = np.abs(u_dist[t_set_units] - u_dist[ctrl_units])
    long_units = np.r_[t_units[matched_t], ctrl_units]
    long_set = np.r_[set_id[matched_t], set_id[rr]]
    long_role = np.r_[np.zeros(matched_t.sum(), np.int8), np.ones(len(rr), np.int8)]
    long_slot = np.r_[np.zeros(matched_t.sum(), np.int64), ss + 1]
    long_w = np.r_[np.ones(matched_t.sum()), 1.0 / k[rr]]
    long_delay = None
    if delay is not None:
        long_delay = np.r_[u_delay[t_units[matched_t]], u_delay[t_set_units]]
    o = np.lexsort((long_slot, long_set))
    long_units, long_set, long_role, long_slot, long_w = (
        long_units[o], long_set[o], long_role[o], long_slot[o], long_w[o])
    if long_delay is not None:
        long_delay = long_delay[o]
    # expand units to rows (children of families)
    if cluster is not None:
        order_rows = np.argsort(unit_of_row, kind="stable")
        starts = np.searchsorted(unit_of_row[order_rows], np.arange(nu), side="left")
        ends = np.searchsorted(unit_of_row[order_rows], np.arange(nu), side="right")
        counts_u = (ends - starts)[long_units]
        rep = np.repeat(np.arange(len(long_units)), counts_u)
        within = np.arange(len(rep)) - np.repeat(np.cumsum(counts_u) - counts_u, counts_u)
        long_rows = order_rows[starts[long_units][rep] + within]
    else:
        rep = np.arange(len(long_units))
        long_rows = long_units
    matches = df.iloc[long_rows].copy()
    matches["match_id"] = long_set[rep]
    matches["weight"] = long_w[rep]
    matches["role"] = np.where(long_role[rep] == 0, "treated", "comparison")
    matches["slot"] = long_slot[rep]
    if delay is not None:
        is_c = long_role[rep] == 1
        dcol = matches[delay].to_numpy(dtype=float, na_value=np.nan).copy()
        dcol[is_c] = long_delay[rep][is_c]
        matches[delay] = dcol

    pairs = pd.DataFrame({
        "treated": u_labels[t_set_units],
        "control": u_labels[ctrl_units],
        "match_id": set_id[rr],
        "slot": ss + 1,
        "distance": pair_dist,
    })
    pairs = pairs.sort_values(["match_id", "slot"], kind="stable").reset_index(drop=True)
    if cluster is not None:
        pairs.attrs["unit"] = f"family ({cluster})"

    # ---- unmatched treated units and why --------------------------------------------------
    reason_u = np.full(len(t_units), None, dtype=object)
    detail_u = np.full(len(t_units), "", dtype=object)
    t_disc = ~u_active[t_units]
    if cluster is not None:
        no_score = ~u_has_score[t_units]
    else:
        no_score = ~has_score[t_units]
    reason_u[t_disc] = REASON_SUPPORT
    detail_u[t_disc] = "score outside the comparison units' range (common_support)"
    reason_u[no_score] = REASON_NO_SCORE
    detail_u[no_score] = "a covariate is missing and missing='drop'"
    idx = info["unmatched_idx"]
    for j, i in enumerate(idx):
        if info["empty_stratum"][j]:
            reason_u[i] = REASON_STRATUM
            detail_u[i] = f"no comparison unit shares its {', '.join(exact)}"
        elif info["within"][j] == 0:
            reason_u[i] = REASON_CALIPER
            detail_u[i] = "no comparison unit within the caliper"
        elif delay is not None and info["eligible"][j] == 0:
            reason_u[i] = REASON_DELAY
            detail_u[i] = (f"{info['within'][j]} comparison unit(s) within the caliper, none "
                           f"with {eligible_until} > {delay}")
        else:
            reason_u[i] = REASON_CALIPER
            detail_u[i] = (f"{info['eligible'][j]} eligible comparison unit(s) within the "
                           "caliper, all already matched")
    un_t = np.flatnonzero(~matched_t)
    if cluster is not None:
        un_units = t_units[un_t]
        mask = np.isin(unit_of_row, un_units)
        un_rows = np.flatnonzero(mask)
        pos_in = np.searchsorted(un_units, unit_of_row[un_rows])
        unmatched = pd.DataFrame({
            cluster: df[cluster].to_numpy()[un_rows],
            "logit": logit[un_rows],
            "reason": reason_u[un_t][pos_in],
            "detail": detail_u[un_t][pos_in],
        }, index=df.index[un_rows])
    else:
        un_rows = t_units[un_t]
        unmatched = pd.DataFrame({
            "logit": logit[un_rows],
            "reason": reason_u[un_t],
            "detail": detail_u[un_t],
        }, index=df.index[un_rows])

    # ---- counts, text, reindex -----------------------------------------------------------
    tm = treated[rows]
    counts = {
        "treated": int(treated.sum()),
        "comparison": int((~treated).sum()),
        "treated_matched": int(tm.sum()),
        "treated_unmatched": int(len(unmatched)),
        "treated_partially_matched": int(((k > 0) & (k < ratio)).sum()) if cluster is None
        else int(np.isin(unit_of_row, t_units[(k > 0) & (k < ratio)]).sum()),
        "comparison_matched": int((~tm).sum()),
        "treated_discarded": int((treated & has_score & discarded).sum()),
        "comparison_discarded": int((~treated & has_score & discarded).sum()),
        "matched_sets": int(matched_t.sum()),
    }
    text = _describe("nearest", ratio, replace, caliper_sd, caliper, order, exact, cluster, delay)
    settings = {"method": "nearest", "ratio": int(ratio), "caliper_sd": caliper_sd,
                "caliper_logit": caliper, "replace": bool(replace), "exact": exact,
                "order": order, "cluster": cluster, "delay": delay,
                "eligible_until": eligible_until, "random_state": random_state,
                "sd_logit": sd}
    data, matches = _apply_reindex(reindex, data, matches)
    return MatchedSample(ps, data, matches, unmatched, pairs, counts, text, settings,
                         caliper, sd)


def _no_match_summary(info, t_active, exact, delay) -> str:
    parts = []
    if (~t_active).any():
        parts.append(f"{_n(int((~t_active).sum()))} without a score or outside common support")
    empty = int(info["empty_stratum"].sum())
    if empty:
        parts.append(f"{_n(empty)} with no comparison unit in their {', '.join(exact)} stratum")
    no_cal = int(((info["within"] == 0) & ~info["empty_stratum"]).sum())
    if no_cal:
        parts.append(f"{_n(no_cal)} with no comparison unit within the caliper (try a wider caliper_sd)")
    if delay is not None:
        no_el = int(((info["within"] > 0) & (info["eligible"] == 0)).sum())
        if no_el:
            parts.append(f"{_n(no_el)} with no comparison unit still eligible at their {delay}")
    return "; ".join(parts) or "no comparison units available"


def _apply_reindex(reindex, data, matches):
    if reindex is None:
        return data, matches
    out = []
    for frame in (data, matches):
        new = reindex(frame)
        if not isinstance(new, pd.DataFrame) or len(new) != len(frame) \
                or not {"match_id", "weight"} <= set(new.columns):
            raise MatchingError(
                "reindex must return a DataFrame with the same rows, keeping match_id and weight"
            )
        out.append(new)
    return out[0], out[1]


def _simple_result(ps, df, treated, has_score, discarded, keep, w, set_ids, reasons, details,
                   text, settings, reindex):
    rows = np.flatnonzero(keep)
    data = df.iloc[rows].copy()
    data["match_id"] = set_ids[rows]
    data["weight"] = w[rows]
    matches = data.copy()
    matches["role"] = np.where(treated[rows], "treated", "comparison")
    matches["slot"] = 0
    un = treated & ~keep
    unmatched = pd.DataFrame({
        "logit": ps.logit_.to_numpy()[un],
        "reason": reasons[un],
        "detail": details[un],
    }, index=df.index[un])
    counts = {
        "treated": int(treated.sum()),
        "comparison": int((~treated).sum()),
        "treated_matched": int((keep & treated).sum()),
        "treated_unmatched": int(un.sum()),
        "treated_partially_matched": 0,
        "comparison_matched": int((keep & ~treated).sum()),
        "treated_discarded": int((treated & has_score & discarded).sum()),
        "comparison_discarded": int((~treated & has_score & discarded).sum()),
        "matched_sets": int(len(np.unique(set_ids[rows]))),
    }
    pairs = pd.DataFrame(columns=["treated", "control", "match_id", "slot", "distance"])
    data, matches = _apply_reindex(reindex, data, matches)
    return MatchedSample(ps, data, matches, unmatched, pairs, counts, text, settings, None,
                         None)


def _ipw(ps, df, treated, active, has_score, discarded, cluster, reindex):
    p = ps.score_.to_numpy(dtype=float)
    w = np.zeros(len(df))
    w[active & treated] = 1.0
    c = active & ~treated
    odds = p[c] / (1 - p[c])
    w[c] = odds * (active & treated).sum() / odds.sum()  # normalised to the treated count
    if cluster is not None:
        set_ids = pd.factorize(df[cluster])[0].astype(np.int64) + 1
    else:
        set_ids = np.arange(1, len(df) + 1, dtype=np.int64)
    reasons = np.where(~has_score, REASON_NO_SCORE, REASON_SUPPORT).astype(object)
    details = np.where(~has_score, "a covariate is missing and missing='drop'",
                       "score outside the comparison units' range (common_support)").astype(object)
    text = _describe("ipw", 1, False, None, None, "data", [], cluster, None)
    settings = {"method": "ipw", "cluster": cluster}
    return _simple_result(ps, df, treated, has_score, discarded, active, w, set_ids, reasons,
                          details, text, settings, reindex)


def _exact_or_cem(ps, df, treated, active, has_score, discarded, exact, method, cutpoints,
                  reindex):
    if method == "exact":
        cols = exact or ps.covariates
        strata = _strata_codes(df, cols)
        cuts = None
    else:
        cols = list(dict.fromkeys([*ps.covariates, *exact]))
        # exact= columns stay whole unless the user gave cut points for them
        spec = {**{c: None for c in exact}, **(cutpoints or {})}
        strata, cuts = _cem_strata(df, cols, dict(ps.kinds_), spec)
    # strata do not use the score, but units discarded for common support stay out
    use = ~discarded
    w = _subclass_weights(strata, treated, use)
    keep = w > 0
    if not keep.any():
        raise MatchingError(f"no stratum of {', '.join(cols)} has both treated and comparison units")
    codes = np.zeros(len(df), np.int64)
    # number the strata 1.. in order of their first treated unit, as subclasses
    kept_t = np.flatnonzero(keep & treated)
    _, first = np.unique(strata[kept_t], return_index=True)
    order_strata = strata[kept_t][np.sort(first)]
    lookup = {s: i + 1 for i, s in enumerate(order_strata)}
    codes[keep] = [lookup[s] for s in strata[keep]]
    reasons = np.full(len(df), REASON_STRATUM, dtype=object)
    details = np.full(len(df), f"no comparison unit in the same stratum of {', '.join(cols)}",
                      dtype=object)
    reasons[has_score & discarded] = REASON_SUPPORT
    details[has_score & discarded] = "score outside the comparison units' range (common_support)"
    text = _describe(method, 1, False, None, None, "data", list(cols), None, None)
    settings = {"method": method, "columns": list(cols), "cutpoints": cuts}
    return _simple_result(ps, df, treated, has_score, discarded, keep, w, codes, reasons,
                          details, text, settings, reindex)
