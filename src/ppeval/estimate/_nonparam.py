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
