"""Binary outcomes on matched or weighted samples: risks by arm, risk difference, risk
ratio and odds ratio with cluster-robust standard errors, covariate-adjusted (doubly
robust) marginal effects, and McNemar's test for 1:1 pairs.

Standard errors
---------------
All SEs are sandwich (cluster-robust) SEs by matched set, with the small-sample factor of
R's ``sandwich::vcovCL(fit, cluster = ~subclass, type = "HC1", cadjust = TRUE)``: the meat
is scaled by ``G/(G-1) * (n-1)/(n-k)`` (G clusters, n rows, k coefficients), for linear and
logistic models alike.  Note that ``vcovCL``'s *default* ``type`` is ``"HC1"`` only for
``lm`` fits; for a ``glm`` it is ``"HC0"`` (factor ``G/(G-1)`` alone), so an R user who calls
``vcovCL(glm_fit, cluster = ~subclass)`` without ``type`` gets an SE smaller by
``sqrt((n-k)/(n-1))`` (0.2% for 117 pairs); ``small_sample="HC0"`` reproduces that.
statsmodels' ``cov_type="cluster"`` uses yet another convention for GLMs, so the sandwich is
computed here from the fitted GLM.

* risk difference: weighted linear probability model ``y ~ treated`` (coefficient = the
  difference in weighted risks), R ``lm(y ~ treat, weights)`` + ``vcovCL``;
* risk ratio: Poisson (log link) GLM ``y ~ treated`` ("modified Poisson", Zou 2004),
  R ``glm(y ~ treat, quasipoisson, weights)`` + ``vcovCL``;
* odds ratio: logistic GLM ``y ~ treated``, R ``glm(y ~ treat, quasibinomial, weights)``.

With covariates (``adjust=[...]``) the effects are marginal: a weighted logistic model
``y ~ treated + covariates`` is averaged over the target units (the treated, for the
ATT of a matched sample) with everyone set to treated and to comparison (g-computation,
"doubly robust" because the matching weights and the outcome model each remove bias).  The
SE is the delta method on the cluster-robust covariance of the coefficients, treating the
target units' covariates as fixed: the same as ``marginaleffects::avg_comparisons(fit,
variables = "treat", vcov = ~subclass, newdata = subset(md, treat == 1), wts = "weights")``.
We chose the delta method over a cluster bootstrap because it is deterministic, agrees
with the R workflow number for number, and costs one model fit.

Constant and aliased covariates
-------------------------------
A covariate in ``adjust=`` that is constant among the rows analysed, or a linear
combination of the intercept, the treatment and earlier covariates (a copy, a dummy set
that sums to another column), is dropped as R drops it (an ``NA`` coefficient): columns
are taken in order and one is dropped when its part not explained by the columns kept
before it has a norm below ``1e-7`` times its own (R's ``lm.fit``/``dqrdc2`` rule with
``tol = 1e-7``, on the weighted columns ``sqrt(w) x``).  The effect's method text and
``extra["dropped_covariates"]`` name what was dropped.  (R's ``glm.fit`` applies the same
rule with ``tol = min(1e-7, epsilon / 1000) = 1e-11`` to its IRLS working weights: exactly
aliased columns are dropped by both; a column aliased only to within a relative 1e-7 is
dropped here and may be kept by R's glm with a coefficient that has no usable SE.)
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import DataError
from ._data import Design
from .results import Effect

_SE_TEXT = ("cluster-robust (sandwich) SE by {clusters}, small-sample factor G/(G-1)*(n-1)/(n-k) "
            "as R sandwich::vcovCL(type = 'HC1', cadjust = TRUE)")


def se_text(design: Design) -> str:
    """Words for the SE type, used in every binary method text."""
    if design.cluster is None:
        return "robust (sandwich) SE, HC1 (each row its own cluster)"
    return _SE_TEXT.format(clusters=design.cluster_text)


@dataclass
class GLMCluster:
    """A weighted GLM with a cluster-robust covariance (vcovCL HC1 convention).

    Attributes
    ----------
    params : coefficients (Series).
    cov : cluster-robust covariance (DataFrame).
    bse : its standard errors.
    n, k, n_clusters : rows, coefficients and clusters used in the small-sample factor.
    """

    params: pd.Series
    cov: pd.DataFrame
    n: int
    k: int
    n_clusters: int
    mu: np.ndarray

    @property
    def bse(self) -> pd.Series:
        return pd.Series(np.sqrt(np.diag(self.cov.to_numpy())), index=self.params.index)

    def wald(self, names: list[str]) -> tuple[float, int, float]:
        """Joint Wald chi-square test that the named coefficients are 0: (stat, df, p)."""
        b = self.params[names].to_numpy()
        V = self.cov.loc[names, names].to_numpy()
        stat = float(b @ np.linalg.solve(V, b))
        return stat, len(names), float(stats.chi2.sf(stat, len(names)))


def fit_glm_cluster(y: np.ndarray, X: pd.DataFrame, w: np.ndarray, cluster: np.ndarray | None,
                    family: str = "logit", small_sample: str = "HC1") -> GLMCluster:
    """Fit ``y ~ X`` (X includes the intercept) with weights; vcovCL-type sandwich.

    ``family`` is ``"logit"`` (binomial), ``"log"`` (Poisson, log link) or ``"identity"``
    (least squares).  All three are canonical links, so the score of row i is
    ``w_i (y_i - mu_i) x_i`` and the bread is the inverse weighted information.
    ``small_sample``: ``"HC1"`` scales by ``G/(G-1) * (n-1)/(n-k)`` (R ``vcovCL(type =
    "HC1")``), ``"HC0"`` by ``G/(G-1)`` (R ``vcovCL``'s default for ``glm`` fits).

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> X = pd.DataFrame({"const": 1.0, "t": [0, 0, 1, 1, 0, 1.0]})
    >>> fit = fit_glm_cluster(np.array([0, 1, 1, 1, 0, 0.0]), X, np.ones(6), None, "identity")
    >>> round(float(fit.params["t"]), 4)
    0.3333
    """
    # statsmodels takes a second to import: only when a model is fitted, not for `ppeval --help`
    import statsmodels.api as sm

    fam = {"logit": sm.families.Binomial(), "log": sm.families.Poisson(),
           "identity": sm.families.Gaussian()}[family]
    Xn = X.to_numpy(dtype=float)
    bad = aliased_columns(Xn, w)
    if bad:
        # inverting a (near-)singular information matrix gives SEs off by percents with no
        # warning; callers that can drop the columns (binary_effects) do so first
        raise np.linalg.LinAlgError(
            "the model matrix is rank-deficient: column(s) " + ", ".join(repr(X.columns[j]) for j in bad)
            + " are constant or a linear combination of the columns before them")
    with warnings.catch_warnings():
        # var_weights are matching weights, not frequencies; non-integer values are fine
        warnings.simplefilter("ignore")
        res = sm.GLM(y, Xn, family=fam, var_weights=w).fit(tol=1e-12, maxiter=200)
    beta = np.asarray(res.params)
    mu = np.asarray(res.fittedvalues)
    var_fn = {"logit": mu * (1 - mu), "log": mu, "identity": np.ones_like(mu)}[family]
    bread = np.linalg.inv((Xn * (w * var_fn)[:, None]).T @ Xn)
    psi = Xn * (w * (y - mu))[:, None]
    if cluster is not None:
        G = int(cluster.max()) + 1
        psi = np.column_stack([np.bincount(cluster, weights=psi[:, j], minlength=G)
                               for j in range(psi.shape[1])])
    else:
        G = len(y)
    n, k = len(y), Xn.shape[1]
    if small_sample not in ("HC1", "HC0"):
        raise ValueError(f"small_sample must be 'HC1' or 'HC0', got {small_sample!r}")
    adj = G / (G - 1) * ((n - 1) / (n - k) if small_sample == "HC1" else 1.0)
    V = adj * bread @ (psi.T @ psi) @ bread
    names = list(X.columns)
    return GLMCluster(pd.Series(beta, index=names), pd.DataFrame(V, index=names, columns=names),
                      n, k, G, mu)


#: names of the model matrix's own columns: the intercept and the treatment indicator
INTERNAL_COLUMNS = ("const", "treated")

#: R's ``lm.fit`` tolerance for a column to count as aliased (``dqrdc2``)
ALIAS_TOL = 1e-7


def design_matrix(df: pd.DataFrame, treated: np.ndarray, covariates: list[str] | None) -> pd.DataFrame:
    """Intercept, ``treated`` and covariates (categoricals as treatment-coded dummies with
    the first sorted level as reference, like R's ``model.matrix``).

    Raises
    ------
    DataError
        When a covariate (or one of its dummy columns) would have the name of another
        column of the matrix: ``const`` (the intercept), ``treated`` (the treatment
        indicator, whatever the treatment column is called) or a dummy ``c[level]``.
        Assigning it would silently replace that column (issue 15: a covariate named
        ``const`` replaced the intercept and the risk difference read -0.209, not -0.139).

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> df = pd.DataFrame({"age": [20, 30, 40.0], "const": [1, 2, 3.0]})
    >>> design_matrix(df, np.array([True, False, True]), ["age"]).columns.tolist()
    ['const', 'treated', 'age']
    >>> design_matrix(df, np.array([True, False, True]), ["const"])
    Traceback (most recent call last):
    ...
    ppeval.errors.DataError: covariate 'const' has the name of the model's intercept column; rename it before adjusting for it (e.g. df.rename(columns={'const': 'const_x'}))
    """
    X = pd.DataFrame({"const": np.ones(len(df)), "treated": treated.astype(float)})
    role = {"const": "the model's intercept column", "treated": "the model's treatment indicator column"}
    seen: set[str] = set()
    for c in covariates or []:
        if c in seen:  # R's formula y ~ a + a has one column a
            continue
        seen.add(c)
        s = df[c]
        if s.isna().any():
            raise ValueError(f"covariate {c!r} has missing values")
        if s.dtype == bool:
            cols = {c: s.astype(float).to_numpy()}
        elif pd.api.types.is_numeric_dtype(s):
            cols = {c: s.to_numpy(dtype=float)}
        else:
            levels = sorted(pd.unique(s.astype(str)))
            cols = {f"{c}[{lev}]": (s.astype(str) == lev).to_numpy(dtype=float) for lev in levels[1:]}
        for name, values in cols.items():
            if name in X.columns:
                what = role.get(name, f"a column of another covariate ({name!r})")
                label = f"covariate {c!r}" if name == c else f"the dummy column {name!r} of covariate {c!r}"
                raise DataError(f"{label} has the name of {what}; rename it before adjusting for it "
                                f"(e.g. df.rename(columns={{{c!r}: {c + '_x'!r}}}))")
            X[name] = values
    return X


def aliased_columns(X: np.ndarray, w: np.ndarray | None = None, tol: float = ALIAS_TOL) -> list[int]:
    """Positions of the columns of ``X`` that R's ``lm.fit`` would give an ``NA`` coefficient.

    Columns are taken in order (R's ``dqrdc2`` limited pivoting): a column is aliased when
    the norm of its part orthogonal to the columns kept before it is below ``tol`` times
    its own norm (a zero column always is).  With weights the rule applies to
    ``sqrt(w) x``, as ``lm.wfit``.  The loop is over columns, each step a vector operation.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.column_stack([np.ones(4), [0, 1, 0, 1.0], [2, 2, 2, 2.0], [1, 0, 1, 0.0]])
    >>> aliased_columns(X)   # a constant, and 1 - column 1
    [2, 3]
    """
    Z = np.asarray(X, float)
    if w is not None:
        Z = Z * np.sqrt(np.asarray(w, float))[:, None]
    Q = np.zeros((Z.shape[0], 0))
    out = []
    for j in range(Z.shape[1]):
        z = Z[:, j]
        norm0 = float(np.linalg.norm(z))
        r = z - Q @ (Q.T @ z)
        r = r - Q @ (Q.T @ r)  # a second pass: classical Gram-Schmidt loses orthogonality
        nr = float(np.linalg.norm(r))
        if nr < tol * (norm0 if norm0 > 0 else 1.0):
            out.append(j)
        else:
            Q = np.column_stack([Q, r / nr])
    return out


def _arm_counts(design: Design, y: np.ndarray) -> dict:
    t, w = design.treated, design.weights
    return dict(
        n=int(len(y)), n_treated=int(t.sum()), n_comparison=int((~t).sum()),
        events_treated=int(y[t].sum()), events_comparison=int(y[~t].sum()),
        risk_treated=float(np.sum(w[t] * y[t]) / np.sum(w[t])),
        risk_comparison=float(np.sum(w[~t] * y[~t]) / np.sum(w[~t])),
        n_clusters=design.n_clusters,
    )


def binary_effects(design: Design, y: np.ndarray, *, outcome: str | None = None,
                   window_months: int | None = None, adjust: list[str] | None = None,
                   target: str = "treated") -> tuple[list[Effect], dict]:
    """Risk difference, risk ratio and odds ratio of a 0/1 outcome between the arms.

    Parameters
    ----------
    design : rows, arms, weights and clusters (see :func:`ppeval.estimate._data.resolve`).
    y : 0/1 outcome, one per row of ``design``.
    adjust : covariates for the doubly robust (g-computation) version.
    target : ``"treated"`` (ATT, default for matched samples) or ``"all"``: the units the
        adjusted model is averaged over.

    Returns
    -------
    (effects, models) : three :class:`Effect` and the fitted :class:`GLMCluster` models.
    """
    counts = _arm_counts(design, y)
    common = dict(outcome=outcome, window_months=window_months, **counts)
    wtext = "matching weights" if design.weighted else "no weights"
    setext = se_text(design)
    X = design_matrix(design.df, design.treated, adjust)
    w, cl = design.weights, design.cluster
    models: dict = {}
    p1, p0 = counts["risk_treated"], counts["risk_comparison"]
    degenerate = p1 in (0.0, 1.0) or p0 in (0.0, 1.0)
    why = _degenerate_reason(p1, p0)
    rd_method = f"difference in weighted risks (weighted linear probability model, {wtext}); {setext}"
    if p1 == p0 and p1 in (0.0, 1.0):
        return _constant_outcome(common, why), models
    if p1 in (0.0, 1.0) and p0 in (0.0, 1.0):
        # every row's outcome is its arm's (complete separation, or no variation at all):
        # the residuals and so the SE are 0, and a difference of exactly 0 or 1 "with CI
        # [d, d]" would be a number from nothing
        return [Effect.not_estimable("risk_difference", why + ", so its uncertainty cannot be estimated",
                                     method=rd_method, **common)] + _undefined(common, why), models
    if not adjust:
        lpm = fit_glm_cluster(y, X, w, cl, "identity")
        models["linear"] = lpm
        effects = [Effect.from_wald(
            "risk_difference", lpm.params["treated"], lpm.bse["treated"], method=rd_method, **common)]
        if degenerate:
            effects += _undefined(common, why)
            return effects, models
        pois = fit_glm_cluster(y, X, w, cl, "log")
        logit = fit_glm_cluster(y, X, w, cl, "logit")
        models.update(poisson=pois, logistic=logit)
        effects.append(Effect.from_wald(
            "risk_ratio", np.exp(pois.params["treated"]), pois.bse["treated"],
            method=f"ratio of weighted risks (Poisson log-link GLM, {wtext}); {setext}", **common))
        effects.append(Effect.from_wald(
            "odds_ratio", np.exp(logit.params["treated"]), logit.bse["treated"],
            method=f"odds ratio (logistic regression, {wtext}); {setext}", **common))
        return effects, models
    who = "the treated units" if target == "treated" else "all units"
    Xfull = X
    X, dropped = _drop_aliased(X, w)
    used = [c for c in dict.fromkeys(adjust) if c not in dropped]
    base = (f"marginal (g-computation) from a weighted logistic model adjusted for "
            f"{', '.join(used) if used else 'no covariate'}, averaged over {who}; delta-method SE from the {setext}")
    if dropped:
        base += "; " + _dropped_text(Xfull, dropped)
        common["extra"] = {"dropped_covariates": dropped}
    if degenerate:
        return [Effect.not_estimable(m, why + " (the adjusted logistic model has no finite fit)",
                                     method=f"{m.replace('_', ' ')}, {base}", **common)
                for m in ("risk_difference", "risk_ratio", "odds_ratio")], models
    logit = fit_glm_cluster(y, X, w, cl, "logit")
    models["logistic_adjusted"] = logit
    if not (np.isfinite(logit.params.to_numpy()).all() and np.isfinite(logit.cov.to_numpy()).all()
            and np.abs(logit.params.to_numpy()).max() < SEPARATION_LOGIT):
        # a coefficient running off to infinity: the covariates predict the outcome exactly
        # in some rows (quasi-complete separation), as R's glm warns "fitted probabilities
        # numerically 0 or 1 occurred"
        sep = ("the adjusted logistic model separates: a covariate (or a combination) predicts the outcome "
               "exactly, so a coefficient is not finite")
        return [Effect.not_estimable(m, sep, method=f"{m.replace('_', ' ')}, {base}", **common)
                for m in ("risk_difference", "risk_ratio", "odds_ratio")], models
    tgt = design.treated if target == "treated" else np.ones(len(y), bool)
    X1 = X[tgt].copy()
    X1["treated"] = 1.0
    X0 = X1.copy()
    X0["treated"] = 0.0
    b = logit.params.to_numpy()
    wt = w[tgt] / w[tgt].sum()
    m1 = 1 / (1 + np.exp(-X1.to_numpy() @ b))
    m0 = 1 / (1 + np.exp(-X0.to_numpy() @ b))
    q1, q0 = float(wt @ m1), float(wt @ m0)
    g1 = (wt * m1 * (1 - m1)) @ X1.to_numpy()
    g0 = (wt * m0 * (1 - m0)) @ X0.to_numpy()
    V = logit.cov.to_numpy()

    def se(grad):
        return float(np.sqrt(grad @ V @ grad))

    common["extra"] = {**common.get("extra", {}), "adjusted_risk_treated": q1, "adjusted_risk_comparison": q0}
    effects = [
        Effect.from_wald("risk_difference", q1 - q0, se(g1 - g0), method=f"risk difference, {base}", **common),
        Effect.from_wald("risk_ratio", q1 / q0, se(g1 / q1 - g0 / q0), method=f"risk ratio, {base}", **common),
        Effect.from_wald("odds_ratio", (q1 / (1 - q1)) / (q0 / (1 - q0)),
                         se(g1 / (q1 * (1 - q1)) - g0 / (q0 * (1 - q0))),
                         method=f"marginal odds ratio, {base}", **common),
    ]
    return effects, models


#: a logistic coefficient this large (odds ratio e^15 ~ 3e6) is a fit running off to
#: infinity under separation, not an estimate
SEPARATION_LOGIT = 15.0


#: the note of a risk difference when every unit has the same outcome
CONSTANT_OUTCOME_NOTE = "the outcome is the same for every unit: no difference is possible"


def _constant_outcome(common: dict, why: str) -> list[Effect]:
    """Effects of an outcome equal for every unit (all 0 or all 1).

    The risk difference is exactly 0 with SE 0 and interval [0, 0], whatever the weights,
    clusters or covariates: R's ``lm(y ~ treat, weights = w)`` gives coefficient 0 and
    ``vcovCL`` SE 0 when nobody had the event (t and p NaN, "essentially perfect fit"), and
    rounding noise when everybody did (coefficient 1.8e-16, SE 1.4e-16, p 0.22: a p-value
    from nothing).  The p-value is NaN, and the ratios are not estimable: a risk ratio
    0/0 when nobody had the event, and odds that are infinite in both arms when everybody
    did (R's logistic fit runs off to an intercept of -24.6 or +24.6 with a warning).
    """
    rd = Effect(measure="risk_difference", estimate=0.0, se=0.0, ci_low=0.0, ci_high=0.0,
                p_value=float("nan"),
                method=f"difference in weighted risks; {CONSTANT_OUTCOME_NOTE} ({why}), so the difference is "
                       "exactly 0 with no sampling uncertainty (SE 0, no p-value)",
                **{**common, "extra": {**common.get("extra", {}), "note": CONSTANT_OUTCOME_NOTE}})
    reason = f"{CONSTANT_OUTCOME_NOTE} ({why})"
    return [rd] + [Effect.not_estimable(m, reason, method="ratio of weighted risks" if m == "risk_ratio"
                                        else "odds ratio", **common)
                   for m in ("risk_ratio", "odds_ratio")]


def _drop_aliased(X: pd.DataFrame, w: np.ndarray) -> tuple[pd.DataFrame, list[str]]:
    """``X`` without its aliased covariate columns (:func:`aliased_columns`), and their names.

    The intercept and the treatment come first, so they are always kept (both arms have
    rows of positive weight: the treatment column is not constant).
    """
    bad = aliased_columns(X.to_numpy(dtype=float), w)
    names = [str(X.columns[j]) for j in bad]
    if set(names) & set(INTERNAL_COLUMNS):  # cannot happen with both arms present
        raise np.linalg.LinAlgError("the treatment indicator is constant among the rows analysed")
    return X.drop(columns=names), names


def _dropped_text(X: pd.DataFrame, dropped: list[str]) -> str:
    """Words for covariate columns left out of the adjusted model, each with why."""
    def why(c: str) -> str:
        v = X[c].to_numpy()
        return ("constant among the rows analysed" if np.all(v == v[0])
                else "a linear combination of the treatment and the covariates before it")

    parts = [f"{c} ({why(c)})" for c in dropped]
    return (f"{'covariate' if len(dropped) == 1 else 'covariates'} {', '.join(parts)} dropped from the adjusted "
            "model, as R does (an NA coefficient)")


def _degenerate_reason(p1: float, p0: float) -> str:
    """Why ratios of risks ``p1`` (treated) and ``p0`` (comparison) are not finite, in words."""
    def arm(p: float, name: str) -> str | None:
        return (f"no unit in the {name} arm had the event" if p == 0.0
                else f"every unit in the {name} arm had the event" if p == 1.0 else None)

    if p1 == p0 and p1 in (0.0, 1.0):
        return "no unit in either arm had the event" if p1 == 0.0 else "every unit in both arms had the event"
    parts = [x for x in (arm(p1, "treated"), arm(p0, "comparison")) if x]
    if p1 == 1.0 and p0 == 0.0 or p1 == 0.0 and p0 == 1.0:
        parts = [f"{' and '.join(parts)} (complete separation)"]
    return " and ".join(parts)


def _undefined(common: dict, why: str) -> list[Effect]:
    """Risk and odds ratios that are not finite (a risk of 0 or 1 in an arm)."""
    return [Effect.not_estimable(m, f"{why}, so the {m.replace('_', ' ')} is not finite",
                                 method="ratio of weighted risks" if m == "risk_ratio" else "odds ratio", **common)
            for m in ("risk_ratio", "odds_ratio")]


@dataclass
class McNemarResult:
    """McNemar's test for 1:1 matched pairs (discordant pairs n10 and n01).

    ``statistic``/``p_value`` use the continuity correction as R's ``mcnemar.test``
    default; ``statistic_uncorrected``/``p_value_uncorrected`` without it; ``p_exact`` is the
    exact (conditional binomial) test, R ``binom.test(n10, n10 + n01)``.
    """

    n11: int
    n10: int
    n01: int
    n00: int
    statistic: float
    p_value: float
    statistic_uncorrected: float
    p_value_uncorrected: float
    p_exact: float
    n_pairs: int

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([self.__dict__])

    def _repr_html_(self) -> str:
        return self.to_frame().to_html(index=False)


def pairs_table(treated: np.ndarray, y: np.ndarray, pair: np.ndarray) -> tuple[int, int, int, int]:
    """(n11, n10, n01, n00) over 1:1 pairs: first index = treated unit's outcome."""
    df = pd.DataFrame({"pair": pair, "t": treated, "y": y.astype(int)})
    size = df.groupby("pair")["t"].agg(["size", "sum"])
    if not ((size["size"] == 2) & (size["sum"] == 1)).all():
        raise ValueError("McNemar's test and Rosenbaum bounds need 1:1 pairs "
                         "(each match_id with one treated and one comparison unit)")
    yt = df[df.t].set_index("pair")["y"]
    yc = df[~df.t].set_index("pair")["y"].reindex(yt.index)
    return (int(((yt == 1) & (yc == 1)).sum()), int(((yt == 1) & (yc == 0)).sum()),
            int(((yt == 0) & (yc == 1)).sum()), int(((yt == 0) & (yc == 0)).sum()))


def mcnemar(treated: np.ndarray, y: np.ndarray, pair: np.ndarray) -> McNemarResult:
    """McNemar's test for a binary outcome in 1:1 matched pairs.

    Examples
    --------
    >>> import numpy as np
    >>> t = np.array([1, 0] * 4, bool); y = np.array([1, 0, 1, 0, 1, 1, 0, 1])
    >>> r = mcnemar(t, y, np.repeat(np.arange(4), 2))
    >>> (r.n10, r.n01)
    (2, 1)
    """
    n11, n10, n01, n00 = pairs_table(treated, y, pair)
    D = n10 + n01
    if D == 0:
        st = stu = p = pu = np.nan
        pe = 1.0
    else:
        st = (abs(n10 - n01) - 1) ** 2 / D
        stu = (n10 - n01) ** 2 / D
        p, pu = stats.chi2.sf(st, 1), stats.chi2.sf(stu, 1)
        pe = stats.binomtest(n10, D, 0.5).pvalue
    return McNemarResult(n11, n10, n01, n00, float(st), float(p), float(stu), float(pu),
                         float(pe), n11 + n10 + n01 + n00)
