"""Product-limit estimators (Kaplan–Meier and Aalen–Johansen) with exact ties, case
weights and infinitesimal-jackknife (IJ) influence functions.

The IJ variance (R ``survfit``'s robust variance) is ``sum_g (sum_{i in g} w_i D_i(t))^2``
where ``D_i(t)`` is the derivative of the estimate with respect to unit i's weight.  For
one row per cluster the sum over rows is computed for *every* time at once in O(n): rows
whose follow-up ended before t have an influence that is linear in the current estimate
(three cumulative sums), and rows still at risk share one influence value.  Clustered
variances (matched sets) are computed at the times asked for, O(n) per time.

Notation: distinct times ``u_1 < ... < u_M`` (event or censoring); at ``u_l`` the weighted
number at risk ``Y_l``, weighted events ``dN_l`` (all causes) and ``dN_kl`` (cause k);
``S_l = prod_{m<=l} (1 - dN_m / Y_m)``; ``F_kl = sum_{m<=l} S_{m-1} dN_km / Y_m``.
Row i leaves at ``u_{p_i}``; ``h_l = 1 / ((1 - dN_l/Y_l) Y_l)``; ``A_j = sum_{l<=j} h_l dN_l/Y_l``;
``B_kj = sum_{l<=j} S_{l-1} dN_kl / Y_l^2``; ``C_kj = sum_{l<=j} f_kl A_{l-1}``.  Then

* ``dS_J/dw_i = -S_J [delta_i h_{p_i} 1(p_i <= J) - A_{min(J, p_i)}]``
* ``dF_kJ/dw_i = delta_ki 1(p_i <= J) S_{p_i-1}/Y_{p_i} - B_{k,min(J,p_i)}
  - delta_i 1(p_i <= J) h_{p_i} (F_kJ - F_{k,p_i}) + C_{k,min(J,p_i+1)}
  + A_{p_i} (F_kJ - F_{k,min(J,p_i+1)})``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def _cumsum0(a: np.ndarray) -> np.ndarray:
    out = np.zeros((a.shape[0] + 1,) + a.shape[1:])
    np.cumsum(a, axis=0, out=out[1:])
    return out


def _rev_cumsum(a: np.ndarray) -> np.ndarray:
    return np.cumsum(a[::-1], axis=0)[::-1]


@dataclass
class ProductLimit:
    """All-cause survival and cumulative incidence by cause on the distinct times."""

    time: np.ndarray  # (M,) distinct times (events and censorings)
    n_risk: np.ndarray  # (M,) weighted number at risk
    n_risk_unweighted: np.ndarray
    n_event: np.ndarray  # (M, K) weighted events by cause
    n_event_unweighted: np.ndarray
    n_event_all: np.ndarray  # (M,) weighted events of any kind
    n_censor: np.ndarray  # (M,) weighted censorings
    n_censor_unweighted: np.ndarray
    surv: np.ndarray  # (M,) all-cause event-free probability
    cif: np.ndarray  # (M, K) cumulative incidence by cause
    causes: tuple
    pos: np.ndarray  # (n,) 1-based index of each row's time
    cause_index: np.ndarray  # (n,) k + 1 for cause k, 0 otherwise
    event: np.ndarray  # (n,) any event (a listed cause or not)
    w: np.ndarray
    h: np.ndarray
    A: np.ndarray  # (M + 1,)
    Sm: np.ndarray  # (M,) S_{l-1}
    SmY: np.ndarray  # (M,) S_{l-1} / Y_l
    B: np.ndarray  # (M + 1, K)
    C: np.ndarray  # (M + 1, K)
    F0: np.ndarray  # (M + 1, K)

    @property
    def M(self) -> int:
        return self.time.size


def product_limit(time, status, weights=None, causes=(1,)) -> ProductLimit:
    """Aalen–Johansen estimator; with one cause and no other event codes, Kaplan–Meier.

    Parameters
    ----------
    time : follow-up time of each row.
    status : 0 censored, otherwise an event code; codes not in ``causes`` end follow-up
        as competing events without a curve of their own.
    weights : case weights (default 1).
    causes : event codes that get a cumulative incidence curve.
    """
    time = np.asarray(time, dtype=float)
    status = np.asarray(status)
    n = time.size
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=float)
    causes = tuple(causes)
    K = len(causes)
    u, inv = np.unique(time, return_inverse=True)
    M = u.size
    cause_index = np.zeros(n, dtype=np.int64)
    for k, c in enumerate(causes):
        cause_index[status == c] = k + 1
    event = status != 0

    def count(mask_w):
        return np.bincount(inv, weights=mask_w, minlength=M)

    Y = _rev_cumsum(count(w))
    Yu = _rev_cumsum(count(np.ones(n)))
    dN = count(w * event)
    dNk = np.zeros((M, K))
    dNku = np.zeros((M, K))
    for k in range(K):
        dNk[:, k] = count(w * (cause_index == k + 1))
        dNku[:, k] = count((cause_index == k + 1).astype(float))
    with np.errstate(divide="ignore", invalid="ignore"):
        dL = np.where(Y > 0, dN / Y, 0.0)
        dLk = np.where(Y[:, None] > 0, dNk / Y[:, None], 0.0)
        # an all-cause hazard of 1 (everyone left at risk has the event) makes S zero
        # from then on; those rows' influence on S there is not needed (S is 0), so h = 0
        h = np.where((1.0 - dL) > 0, 1.0 / ((1.0 - dL) * Y), 0.0)
        SmY_base = np.where(Y > 0, 1.0 / Y, 0.0)
    S = np.cumprod(1.0 - dL)
    Sm = np.concatenate([[1.0], S[:-1]])
    f = Sm[:, None] * dLk
    F0 = _cumsum0(f)
    A = _cumsum0(h * dL)
    SmY = Sm * SmY_base
    B = _cumsum0(SmY[:, None] * dLk)
    C = _cumsum0(f * A[:-1, None])
    return ProductLimit(
        time=u, n_risk=Y, n_risk_unweighted=Yu, n_event=dNk, n_event_unweighted=dNku,
        n_event_all=dN, n_censor=count(w * ~event), n_censor_unweighted=count((~event) * 1.0),
        surv=S, cif=F0[1:], causes=causes, pos=inv + 1, cause_index=cause_index,
        event=event, w=w, h=h, A=A, Sm=Sm, SmY=SmY, B=B, C=C, F0=F0,
    )


def influence_at(pl: ProductLimit, J: int) -> np.ndarray:
    """IJ influence ``w_i dEstimate/dw_i`` of every row at time index J (1-based).

    Returns an (n, 1 + K) array: column 0 for the all-cause survival, then one column per
    cause for the cumulative incidence.  J = 0 (before the first time) gives zeros.
    """
    n, K = pl.pos.size, pl.cif.shape[1]
    if J <= 0:
        return np.zeros((n, 1 + K))
    p, dlt = pl.pos, pl.event
    le = p <= J
    mJ = np.minimum(p, J)
    m1 = np.minimum(p + 1, J)
    hp = pl.h[p - 1]
    out = np.empty((n, 1 + K))
    out[:, 0] = -pl.surv[J - 1] * (dlt * le * hp - pl.A[mJ])
    for k in range(K):
        dk = pl.cause_index == k + 1
        FkJ = pl.F0[J, k]
        out[:, 1 + k] = (
            dk * le * pl.SmY[p - 1]
            - pl.B[mJ, k]
            - dlt * le * hp * (FkJ - pl.F0[mJ, k])
            + pl.C[m1, k]
            + pl.A[p] * (FkJ - pl.F0[m1, k])
        )
    return out * pl.w[:, None]


def ij_variance(pl: ProductLimit) -> np.ndarray:
    """IJ variance at every distinct time, each row its own cluster: (M, 1 + K) array."""
    M, K = pl.M, pl.cif.shape[1]
    p, dlt, w2 = pl.pos, pl.event.astype(float), pl.w**2
    J = np.arange(1, M + 1)
    hp, Ap = pl.h[p - 1], pl.A[p]

    def by_pos(v):  # sum of v over rows leaving at each time, (M,)
        return np.bincount(p - 1, weights=v, minlength=M)

    W_at = by_pos(w2)
    W_after = _rev_cumsum(W_at) - W_at  # rows with p_i > J
    out = np.empty((M, 1 + K))
    # survival: rows with p_i < J contribute (delta h - A_p)^2, p_i = J (delta h_J - A_J)^2,
    # p_i > J A_J^2; all times S_J^2
    g = dlt * hp - Ap
    before = _cumsum0(by_pos(w2 * g**2))[:-1]  # sum over p_i < J
    AJ = pl.A[J]
    at = by_pos(w2 * (dlt * pl.h[J - 1][p - 1] - AJ[p - 1]) ** 2)
    out[:, 0] = pl.surv**2 * (before + at + W_after * AJ**2)
    for k in range(K):
        dk = (pl.cause_index == k + 1).astype(float)
        F = pl.F0[:, k]
        alpha = (dk * pl.SmY[p - 1] - pl.B[p, k] + dlt * hp * F[p]
                 + pl.C[np.minimum(p + 1, M), k] - Ap * F[np.minimum(p + 1, M)])
        beta = -dlt * hp + Ap
        s_aa = _cumsum0(by_pos(w2 * alpha**2))[:-1]
        s_ab = _cumsum0(by_pos(w2 * alpha * beta))[:-1]
        s_bb = _cumsum0(by_pos(w2 * beta**2))[:-1]
        FJ = F[J]
        common = -pl.B[J, k] + pl.C[J, k]  # rows still at risk after J
        at = by_pos(w2 * (dk * pl.SmY[p - 1] + common[p - 1]) ** 2)
        out[:, 1 + k] = s_aa + 2 * FJ * s_ab + FJ**2 * s_bb + at + W_after * common**2
    return out


def clustered_variance(pl: ProductLimit, J: int, cluster: np.ndarray | None) -> np.ndarray:
    """IJ variance at time index J with influences summed within clusters: (1 + K,)."""
    infl = influence_at(pl, J)
    if cluster is not None:
        G = int(cluster.max()) + 1
        infl = np.column_stack(
            [np.bincount(cluster, weights=infl[:, c], minlength=G) for c in range(infl.shape[1])]
        )
    return (infl**2).sum(axis=0)


def time_index(pl: ProductLimit, t) -> np.ndarray:
    """Index J (1-based; 0 = before the first time) of the step in force at time t."""
    return np.searchsorted(pl.time, np.asarray(t, dtype=float), side="right")


def _cluster_sums_of_squares(pos, cluster, M, terms, w_tail):
    """Sums over clusters of products of within-cluster partial sums, at every time.

    Row i (cluster g, leaving at time index ``pos_i``) adds ``terms[r][i]`` to the partial
    sum ``a_rg(J)`` once ``pos_i <= J``; ``b_g(J)`` is the weight ``w_tail`` of g's rows
    still at risk after J.  Returns ``P`` with ``P[r, s, J-1] = sum_g a_rg(J) a_sg(J)``,
    the index ``R = len(terms)`` standing for b.  Each row changes only its own cluster's
    sums, so the change in ``sum_g a_r a_s`` it causes is ``a_r' a_s' - a_r a_s`` with the
    before/after values from within-cluster cumulative sums (sorted by cluster, then time):
    O(n log n) for all M times together instead of O(n) per time.
    """
    order = np.lexsort((pos, cluster))
    cl, p = cluster[order], pos[order]
    R = len(terms)
    inc = np.stack([t[order] for t in terms] + [-w_tail[order]])  # (R + 1, n)
    after = np.cumsum(inc, axis=1)
    first = np.r_[True, cl[1:] != cl[:-1]]
    start = np.flatnonzero(first)
    # subtract the running total at each cluster's start: within-cluster cumulative sums
    offset = np.repeat(after[:, start] - inc[:, start], np.diff(np.r_[start, cl.size]), axis=1)
    after = after - offset
    total_w = np.bincount(cl, weights=w_tail[order])
    after[R] += total_w[cl]  # b starts at the cluster's total weight
    before = after - inc
    P = np.empty((R + 1, R + 1, M))
    for r in range(R + 1):
        for s in range(r, R + 1):
            d = after[r] * after[s] - before[r] * before[s]
            init = (total_w**2).sum() if r == s == R else 0.0
            P[r, s] = P[s, r] = init + np.cumsum(np.bincount(p - 1, weights=d, minlength=M))
    return P


def ij_variance_clustered(pl: ProductLimit, cluster: np.ndarray | None) -> np.ndarray:
    """IJ variance at every distinct time with influences summed within clusters.

    Equals :func:`clustered_variance` at each time index (R ``survfit(..., cluster = )``);
    ``cluster`` holds integer codes 0..G-1 for the rows of ``pl`` (``None``: each row its
    own cluster, :func:`ij_variance`).  Returns an (M, 1 + K) array.

    For ``p_i <= J`` the influence of row i is ``w_i (alpha_i + x_J beta_i)`` and for
    ``p_i > J`` it is ``w_i y_J`` (module notation: for S, ``alpha = -(delta h_p - A_p)``,
    ``beta = 0``, ``y = A_J``, all times ``S_J``; for F_k, ``alpha`` and ``beta`` as in
    :func:`ij_variance`, ``x = F_kJ``, ``y = C_kJ - B_kJ``), so the cluster sum is
    ``a_g(J) + x_J c_g(J) + y_J b_g(J)`` and its square summed over clusters needs only
    the six sums of products from :func:`_cluster_sums_of_squares`.
    """
    if cluster is None:
        return ij_variance(pl)
    cluster = np.asarray(cluster, dtype=np.int64)
    M, K = pl.M, pl.cif.shape[1]
    p, dlt, w = pl.pos, pl.event.astype(float), pl.w
    J = np.arange(1, M + 1)
    hp, Ap = pl.h[p - 1], pl.A[p]
    out = np.empty((M, 1 + K))
    P = _cluster_sums_of_squares(p, cluster, M, [w * (dlt * hp - Ap)], w)
    AJ = pl.A[J]
    # S influence cluster sum: -S_J (a_g - A_J b_g)
    out[:, 0] = pl.surv**2 * (P[0, 0] - 2 * AJ * P[0, 1] + AJ**2 * P[1, 1])
    p1 = np.minimum(p + 1, M)
    for k in range(K):
        dk = (pl.cause_index == k + 1).astype(float)
        F = pl.F0[:, k]
        alpha = dk * pl.SmY[p - 1] - pl.B[p, k] + dlt * hp * F[p] + pl.C[p1, k] - Ap * F[p1]
        beta = -dlt * hp + Ap
        P = _cluster_sums_of_squares(p, cluster, M, [w * alpha, w * beta], w)
        x = F[J]
        y = pl.C[J, k] - pl.B[J, k]
        out[:, 1 + k] = (P[0, 0] + x**2 * P[1, 1] + y**2 * P[2, 2]
                         + 2 * x * P[0, 1] + 2 * y * P[0, 2] + 2 * x * y * P[1, 2])
    return np.maximum(out, 0.0)  # rounding can leave -1e-18 where the variance is 0


CI_TRANSFORMS = {"log": "log", "linear": "linear", "plain": "linear", "loglog": "loglog",
                 "log-log": "loglog"}


def check_ci_transform(ci_transform: str) -> str:
    """The canonical name of a CI transform (R's ``conf.type`` names accepted too)."""
    try:
        return CI_TRANSFORMS[ci_transform]
    except (KeyError, TypeError):
        raise ValueError(f"ci_transform must be 'log', 'linear' or 'loglog', not {ci_transform!r}") from None


def confint(p: np.ndarray, se_log: np.ndarray, ci_transform: str, alpha: float):
    """Pointwise CI of a probability ``p`` from the SE of ``log p``, as R's
    ``survival:::survfit_confint`` (``conf.type`` "plain", "log", "log-log"; upper limits
    capped at 1, lower at 0).  Where the transform is undefined (p = 0 for "log", p = 0
    or 1 for "loglog") the limits are NaN, as R's NA."""
    from scipy import stats

    z = stats.norm.ppf(1 - alpha / 2)
    p = np.asarray(p, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        if ci_transform == "linear":
            se2 = z * se_log * p
            return np.maximum(p - se2, 0.0), np.minimum(p + se2, 1.0)
        if ci_transform == "log":
            xx = np.where(p == 0, np.nan, p)
            return np.exp(np.log(xx) - z * se_log), np.minimum(np.exp(np.log(xx) + z * se_log), 1.0)
        xx = np.where((p == 0) | (p == 1), np.nan, p)
        se2 = z * se_log / np.log(xx)
        return np.exp(-np.exp(np.log(-np.log(xx)) - se2)), np.exp(-np.exp(np.log(-np.log(xx)) + se2))
