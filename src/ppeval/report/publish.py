"""The publication layer: statistics that would give back a suppressed count are withheld.

A proportion of a binary covariate times its arm size is a count; so is a difference of two
proportions, a binary SMD (a function of the two proportions; standardized, as MatchIt's
``summary()`` and ppeval's default, it is that difference over sqrt(p_t(1 - p_t)), whose
denominator gives back the treated proportion before matching), a binary variance ratio and an
eCDF maximum (for a 0/1 variable the eCDF maximum *is* the difference in proportions). Rounding
does not save a small arm: with ``n < 100`` a rounded ``k/n`` still pins ``k`` from its rounding
interval. The rule here is therefore all or nothing per covariate: a binary covariate's
statistics are published only when every cell beneath them (units with and without the level,
per arm, before and after matching) is 0 or at least the threshold *and* the arm size is
published; otherwise all of that covariate's binary statistics are withheld in every artefact
(tables/balance.csv, Table 1, results.json, the love plot). Continuous covariates' SMDs stay.

Rosenbaum bounds are exact tail probabilities of the matched sets' counts (in 1:1 pairs,
binomial tails of the discordant pair counts): a p-value to ten digits gives the counts back
by a search over small integers, and so can the critical Γ. The whole bound table, its
p-value without hidden bias and its critical Γ are withheld (with the reason) unless every
count they rest on (informative sets, their served and comparison units and events) is
publishable.

Verdicts ("every covariate balanced") are computed on the true values; they state no number.

The identifier guard learns here where published numbers come from (:func:`published_labels`):
a covariate level printed in Table 1, the balance table and the love plot (``county_19013``)
is a value of that covariate's column, not an id, even when the extract's ids are numbers
in the same range.
"""
from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..privacy import _is_id_field, is_sensitive
from .content import pretty_covariate

#: Balance-table columns that, for a binary covariate, are functions of its cell counts.
BINARY_STAT_COLUMNS = (
    "mean_treated_before", "mean_control_before", "mean_treated_after", "mean_control_after",
    "smd_before", "smd_after", "variance_ratio_before", "variance_ratio_after",
    "ecdf_mean_before", "ecdf_mean_after", "ecdf_max_before", "ecdf_max_after",
    "diff_prop_before", "diff_prop_after", "sd_denominator",
)

SUPPRESSED_REASON = ("withheld: a number of units behind it is below the suppression threshold, "
                     "and the value would give that number back")


def _small(k: pd.Series | np.ndarray, threshold: int) -> np.ndarray:
    k = np.asarray(k, dtype=float)
    return (k >= 1) & (k < threshold)


def hidden_binary_covariates(table: pd.DataFrame, sizes: dict[str, int], threshold: int,
                             hidden_sizes: dict[str, bool] | None = None) -> pd.Series:
    """Which binary rows of a balance table must have all their statistics withheld.

    Parameters
    ----------
    table : DataFrame
        A balance table (``covariate``, ``type`` and ``mean_{treated,control}_{before,after}``).
    sizes : dict
        Arm sizes ``before_t``, ``before_c``, ``after_t``, ``after_c`` (unweighted units).
    threshold : int
        The suppression threshold.
    hidden_sizes : dict, optional
        ``{"before_t": True}`` when that arm size is itself not published.

    Returns
    -------
    Series of bool, aligned with ``table``: True where the binary statistics are withheld.

    Examples
    --------
    >>> t = pd.DataFrame({"covariate": ["a", "b"], "type": ["binary", "binary"],
    ...                   "mean_treated_before": [0.5, 0.05], "mean_control_before": [0.5, 0.5],
    ...                   "mean_treated_after": [0.5, 0.5], "mean_control_after": [0.5, 0.5]})
    >>> hidden_binary_covariates(t, {"before_t": 100, "before_c": 100, "after_t": 100, "after_c": 100}, 11).tolist()
    [False, True]
    """
    hidden_sizes = hidden_sizes or {}
    binary = table["type"].eq("binary") if "type" in table else pd.Series(False, index=table.index)
    hide = np.zeros(len(table), dtype=bool)
    cols = {"mean_treated_before": "before_t", "mean_control_before": "before_c",
            "mean_treated_after": "after_t", "mean_control_after": "after_c"}
    for col, arm in cols.items():
        if col not in table:
            continue
        n = int(sizes[arm])
        if is_sensitive(n, threshold) or (hidden_sizes.get(arm, False) and not arm.startswith("before")):
            # a small (or unpublished matched) arm size: every proportion of it is unsafe
            hide |= True
            continue
        if hidden_sizes.get(arm, False):
            # a cohort size hidden because the number left unmatched is small: the before-matching
            # proportions would pin it (one n fits them all), so they are withheld for every binary
            # row (:func:`withhold_before_columns`); the matched arms' cells are checked as usual
            continue
        k = (table[col].astype(float) * n).round()
        hide |= _small(k, threshold) | _small(n - k, threshold) | table[col].isna().to_numpy()
    hide = pd.Series(hide & binary.to_numpy(), index=table.index)
    checked = {c: a for c, a in cols.items() if not hidden_sizes.get(a, False)}
    return _hide_categorical_remainders(table, hide, sizes, threshold, checked)


#: the before-matching statistics of a binary row that involve both arms
BEFORE_DIFFERENCES = ("smd_before", "variance_ratio_before", "ecdf_mean_before", "ecdf_max_before",
                      "diff_prop_before", "sd_denominator")


def withhold_before_columns(table: pd.DataFrame, hidden_sizes: dict[str, bool] | None) -> pd.DataFrame:
    """Before-matching statistics set to NaN when a cohort arm's size is hidden.

    Binary rows lose every before-matching statistic, of both arms: the hidden arm's
    proportions would pin its size (one n fits them all), and the comparison arm's
    proportions before matching are shares of a pool that also holds the served units'
    rows from before their enrolment, so they pin the served size too (pool minus the
    published comparison size). Every row loses its before-matching eCDF statistics: an
    eCDF difference is ``i/n_t - j/n_c``, which narrows the hidden size down. Continuous
    rows keep their means, SMDs and variance ratios (a mean age does not pin a size).
    A standardized binary SMD *after* matching goes too (unless the table's
    ``attrs["binary_convention"]`` is ``"raw"``): its denominator is sqrt(p_t(1 - p_t)) of
    the treated arm before matching, so beside the published matched proportions it gives
    p_t, a share of the hidden size.

    Examples
    --------
    >>> t = pd.DataFrame({"type": ["binary", "continuous"], "mean_treated_before": [0.5, 3.0],
    ...                   "mean_control_before": [0.4, 2.0], "smd_before": [0.1, 0.2], "ecdf_max_before": [0.1, 0.3]})
    >>> out = withhold_before_columns(t, {"before_t": True})
    >>> out["mean_control_before"].isna().tolist(), out["smd_before"].isna().tolist(), out["ecdf_max_before"].isna().tolist()
    ([True, False], [True, False], [True, True])
    """
    if not any((hidden_sizes or {}).get(a, False) for a in ("before_t", "before_c")):
        return table
    out = table.copy()
    binary = out["type"].eq("binary").to_numpy() if "type" in out else np.zeros(len(out), dtype=bool)
    cols = [c for c in ("mean_treated_before", "mean_control_before", *BEFORE_DIFFERENCES) if c in out]
    if table.attrs.get("binary_convention") != "raw" and "smd_after" in out:
        cols.append("smd_after")
    out.loc[binary, cols] = np.nan
    out[[c for c in ("ecdf_mean_before", "ecdf_max_before") if c in out]] = np.nan
    return out


def _hide_categorical_remainders(table: pd.DataFrame, hide: pd.Series, sizes: dict[str, int], threshold: int,
                                 cols: dict[str, str]) -> pd.Series:
    """Withhold more levels of a categorical covariate until its hidden levels add up to 0 or >= threshold.

    The levels of one categorical covariate (``variable``) add up to the arm's units with
    the covariate observed, so the arm size minus the published levels is the sum of the
    hidden ones: two hidden levels of 3 and 4 units would publish their 7. While some arm's
    hidden sum (before or after matching) is from 1 to ``threshold - 1``, the published level
    with the fewest units in that arm is withheld as well. The ``_missing`` indicator is
    not a level (its share sets how many units the levels are shares of).

    Examples
    --------
    >>> t = pd.DataFrame({"covariate": ["r_a", "r_b", "r_c"], "variable": "r", "type": "binary",
    ...                   "mean_treated_after": [0.05, 0.35, 0.6]})
    >>> _hide_categorical_remainders(t, pd.Series([True, False, False]), {"after_t": 100}, 11,
    ...                              {"mean_treated_after": "after_t"}).tolist()
    [True, True, False]
    """
    if "variable" not in table:
        return hide
    hide = hide.copy()
    binary = table["type"].eq("binary") if "type" in table else pd.Series(False, index=table.index)
    for var, rows in table[binary].groupby("variable", sort=False):
        is_missing = rows["covariate"].eq(f"{var}_missing")
        levels, missing = rows[~is_missing], rows[is_missing]
        if len(levels) < 2:
            continue  # a single 0/1 column: its k and n - k are checked above
        counts = {}
        for col, arm in cols.items():
            if col not in table:
                continue
            share_missing = float(missing[col].iloc[0]) if len(missing) and pd.notna(missing[col].iloc[0]) else 0.0
            observed = round(int(sizes[arm]) * (1 - share_missing))
            counts[col] = (levels[col].astype(float).fillna(0) * observed).round()
        while hide[levels.index].any() and not hide[levels.index].all():
            h = hide[levels.index]
            bad = next((c for c, k in counts.items() if 1 <= k[h].sum() < threshold), None)
            if bad is None:
                break
            hide.loc[counts[bad][~h].idxmin()] = True
    return hide


def small_count_covariates(before: pd.DataFrame, after: pd.DataFrame, covariates: list[str], treatment: str,
                           threshold: int) -> list[str]:
    """Count covariates (non-negative whole numbers, not 0/1) whose total in some arm is from 1 to threshold - 1.

    The mean of a count is its total over the arm size: with the size published, a mean
    of prior removals of 0.02 in an arm of 47 is a total of 1, so one child with one prior
    removal. When an arm's total (before or after matching) is from 1 to ``threshold - 1``,
    at most that many units have a nonzero value, and every statistic of the covariate
    (mean, SMD, variance ratio, eCDF) is withheld, as for a binary covariate.

    Examples
    --------
    >>> b = pd.DataFrame({"t": [True] * 3 + [False] * 30, "k": [0, 2, 0] + [1] * 30, "x": [0.5] * 33})
    >>> small_count_covariates(b, b, ["k", "x"], "t", 11)
    ['k']
    """
    out = []
    for cov in covariates:
        if cov not in before or not pd.api.types.is_numeric_dtype(before[cov]) or pd.api.types.is_bool_dtype(before[cov]):
            continue
        x = pd.concat([before[cov], after[cov]]).dropna().astype(float)
        if x.empty or (x < 0).any() or (x != np.round(x)).any() or x.isin([0.0, 1.0]).all():
            continue  # not a count (or a 0/1 column, checked as binary)
        for df in (before, after):
            arm = df[treatment].astype(bool)
            totals = [float(df.loc[arm, cov].sum()), float(df.loc[~arm, cov].sum())]
            if any(1 <= t < threshold for t in totals):
                out.append(cov)
                break
    return out


def publish_balance_table(table: pd.DataFrame, hidden: pd.Series) -> pd.DataFrame:
    """A copy of ``table`` with every count-bearing statistic of the ``hidden`` rows set to NaN."""
    out = table.copy()
    cols = [c for c in BINARY_STAT_COLUMNS if c in out]
    out.loc[hidden.to_numpy(), cols] = np.nan
    return out


def published_balance(bal: Any, sizes: dict[str, int], threshold: int,
                      hidden_sizes: dict[str, bool] | None = None, also_hidden: list[str] | None = None) -> Any:
    """A shallow copy of a :class:`~ppeval.balance.Balance` whose ``table`` is safe to publish.

    The verdict (``passed``, ``verdict``) is kept from the true values: it states no number.
    ``hidden_covariates`` lists the covariates withheld (for the love plot's marks and notes).
    ``also_hidden``: further rows to withhold whole (count covariates with a small total,
    :func:`small_count_covariates`).
    """
    hidden = hidden_binary_covariates(bal.table, sizes, threshold, hidden_sizes)
    if also_hidden:
        hidden = hidden | bal.table["covariate"].isin(also_hidden)
    pub = copy.copy(bal)
    pub.table = withhold_before_columns(publish_balance_table(bal.table, hidden), hidden_sizes)
    # the true verdict table carries per-covariate SMDs: keep only the pass/fail flags
    if getattr(bal, "verdict", None) is not None:
        v = bal.verdict.copy()
        for c in ("abs_smd_after", "variance_ratio_after"):
            if c in v:
                v.loc[hidden.to_numpy(), c] = np.nan
        v.attrs = dict(bal.verdict.attrs)
        pub.verdict = v
    pub.hidden_covariates = list(bal.table.loc[hidden.to_numpy(), "covariate"])
    return pub


def publish_table_one(t1: pd.DataFrame, hidden_covariates: list[str], suppressed_text: str) -> pd.DataFrame:
    """Table 1 with the rows of withheld binary covariates suppressed in every statistic column."""
    out = t1.copy()
    rows = out["covariate"].isin(hidden_covariates)
    for c in out.columns:
        if c in ("covariate", "level"):
            continue
        if pd.api.types.is_numeric_dtype(out[c]):
            out[c] = out[c].astype(float)
            out.loc[rows, c] = np.nan
        else:
            out[c] = out[c].astype(object)
            out.loc[rows, c] = suppressed_text
    return out


def publish_rosenbaum(rb: dict[str, Any] | None, counts: tuple[int, int], threshold: int) -> dict[str, Any] | None:
    """Rosenbaum bounds, withheld whole when a count they rest on is below the threshold.

    Examples
    --------
    >>> publish_rosenbaum({"outcome": "x", "gamma_critical": 1.4, "table": [{"p": 0.1}]}, (5, 4), 11)["table"] is None
    True
    """
    if rb is None:
        return None
    if not any(is_sensitive(int(k), threshold) for k in counts):
        return rb
    out = dict(rb)
    out["gamma_critical"] = None
    out["table"] = None
    if "p_value_no_hidden_bias" in out:
        out["p_value_no_hidden_bias"] = None
    out["suppressed"] = True
    out["suppressed_reason"] = ("Rosenbaum bounds withheld: a count of the matched sets they rest on is below the "
                                "suppression threshold, and their exact p-values would give it back")
    return out


def _config_phrases(node: Any, key: str = "") -> Iterator[str]:
    """The config's settings as the report prints them: ``key value`` for every scalar (as in
    ``max_file_mb = 20000`` and ``"max_file_mb": 20000``) and every string on its own (a
    title). Settings under an id-like key are left out: their values could be ids."""
    if key and _is_id_field(key):
        return
    if isinstance(node, Mapping):
        for k, v in node.items():
            yield from _config_phrases(v, str(k))
    elif isinstance(node, (list, tuple)):
        for v in node:
            yield from _config_phrases(v, key)
    elif isinstance(node, (bool, dt.date)) or node is None:
        return  # no long number in them (dates are allowed in their own right)
    else:
        text = str(node)
        if key:
            yield f"{key} {text}"
        if isinstance(node, str):
            yield text


def published_labels(balance_table: pd.DataFrame, covariates: Sequence[str],
                     configs: Iterable[Mapping[str, Any]] = (), defaults: Iterable[str] = (),
                     notes: Mapping[str, Iterable[str]] | None = None) -> dict[str, list[str]]:
    """What the report prints as values of non-identifying columns, by source: the
    provenance the identifier guard is given (:meth:`~ppeval.privacy.IdentifierGuard.with_provenance`).

    Parameters
    ----------
    balance_table : DataFrame
        The published balance table (``covariate`` and ``variable`` columns). Each row of a
        categorical covariate's level (``covariate`` ``county_19013`` of ``variable``
        ``county``) gives its label as printed in Table 1, the balance table and the HTML,
        and as the love plot prints it (``County: 19013``). Levels of id-like variables are
        never given provenance: the guard treats them as ids.
    covariates : list of str
        The propensity covariates (to split a row name into variable and level as the love
        plot does).
    configs : iterable of dict
        The config as written and as completed by defaults: its settings are the config's
        own numbers (``max_file_mb = 20000``), under the source ``"config"``.
    defaults : iterable of str
        The "defaults applied" lines the report prints (``data.max_file_mb = 20000``).
    notes : dict of column -> iterable of str, optional
        Notes that quote levels of that column and nothing else from the data but a number
        of levels (:attr:`ppeval.Evaluation.note_labels`: "county: 2 rare level(s) pooled
        into '19153' ..."), each a label of that column as a whole sentence.

    Returns
    -------
    dict of source -> list of str

    Examples
    --------
    >>> bt = pd.DataFrame({"covariate": ["county_19013", "sex_female", "age_at_removal"],
    ...                    "variable": ["county", "sex", "age_at_removal"]})
    >>> published_labels(bt, ["county", "sex", "age_at_removal"], [{"data": {"max_file_mb": 20000}}])
    {'county': ['county_19013', 'County: 19013'], 'sex': ['sex_female', 'Sex: Female'], 'config': ['max_file_mb 20000']}
    """
    labels: dict[str, list[str]] = {}
    covs = list(covariates)
    levels = balance_table.loc[balance_table["covariate"].ne(balance_table["variable"]), ["covariate", "variable"]]
    for name, var in zip(levels["covariate"].astype(str), levels["variable"].astype(str), strict=True):
        if _is_id_field(var):
            continue
        labels.setdefault(var, []).extend(dict.fromkeys([name, pretty_covariate(name, covs)]))
    for var, texts in (notes or {}).items():
        if not _is_id_field(var):
            labels.setdefault(str(var), []).extend(dict.fromkeys(map(str, texts)))
    config = [phrase for cfg in configs for phrase in _config_phrases(cfg)] + [str(d) for d in defaults]
    if config:
        labels["config"] = list(dict.fromkeys(config))
    return labels
