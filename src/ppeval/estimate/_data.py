"""Input handling shared by the estimators: arms, weights and clusters from a matched
sample or a plain DataFrame, and the columns of a cohort outcome."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import DataError
from ..outcomes import _WINDOW_PREFIX as _COHORT_WINDOW_PREFIX

#: outcome name -> prefix of its window columns (``<prefix>_<w>m``), as the cohort names them
# (days in care within a window is a count, not a binary window rate)
WINDOW_PREFIX = {k: v for k, v in _COHORT_WINDOW_PREFIX.items() if k != "time_in_care"}


@dataclass
class Design:
    """Rows of an analysis with their arm, weight and cluster.

    ``cluster`` holds integer codes 0..G-1 (``None``: no clustering, each row its own
    cluster); ``cluster_text`` says what the clusters are, for the method text.
    """

    df: pd.DataFrame
    treated: np.ndarray
    weights: np.ndarray
    cluster: np.ndarray | None
    cluster_text: str
    weighted: bool
    #: matched with replacement: the matched sets overlap, so ``match_id`` is not a partition
    replaced: bool = False

    @property
    def n_clusters(self) -> int:
        return int(self.cluster.max()) + 1 if self.cluster is not None and self.cluster.size else len(self.df)

    def subset(self, keep: np.ndarray) -> Design:
        """Rows where ``keep`` is true, with cluster codes renumbered."""
        cl = None
        if self.cluster is not None:
            cl = pd.factorize(self.cluster[keep])[0].astype(np.int64)
        return Design(self.df.loc[keep].reset_index(drop=True), self.treated[keep],
                      self.weights[keep], cl, self.cluster_text, self.weighted, self.replaced)


def _merge_families(match_id: pd.Series, family_id: pd.Series) -> np.ndarray:
    """Cluster codes: matched sets joined whenever they share a family (siblings matched
    into different sets are then in one cluster, so the SE allows for their correlation)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(match_id)
    m_codes, _ = pd.factorize(match_id)
    f_codes, _ = pd.factorize(family_id)
    # rows with a missing id get their own node
    m_codes = np.where(m_codes < 0, np.arange(n) + m_codes.max() + 1, m_codes)
    nm = m_codes.max() + 1
    has_f = f_codes >= 0
    # bipartite graph: matched-set nodes 0..nm-1 linked to family nodes nm..
    rows = m_codes[has_f]
    cols = nm + f_codes[has_f]
    size = nm + (f_codes.max() + 1 if has_f.any() else 0)
    graph = coo_matrix((np.ones(rows.size), (rows, cols)), shape=(size, size))
    _, labels = connected_components(graph, directed=False)
    return pd.factorize(labels[m_codes])[0].astype(np.int64)


def resolve(data, treatment: str | None = None, weights: str | None = None,
            cluster: str | None = None) -> Design:
    """Arms, weights and clusters of ``data`` (a matched sample with ``.data`` or a DataFrame).

    A matched sample defaults to ``treated``, ``weight`` and clusters by ``match_id``
    (joined across sets that share a ``family_id`` when that column is present); one
    matched with replacement (``settings["replace"]``) clusters by matched unit instead
    (the family when siblings were matched as a block), since its sets overlap.  A plain
    DataFrame defaults to ``treated``, weights 1 and no clusters; pass column names to
    change either.
    """
    matched = hasattr(data, "data") and isinstance(data.data, pd.DataFrame)
    if matched:
        df = data.data
    elif isinstance(data, pd.DataFrame):
        df = data
    else:
        raise TypeError("estimate() needs a DataFrame or a matched sample with a .data DataFrame")
    df = df.reset_index(drop=True)
    treatment = treatment or "treated"
    if treatment not in df.columns:
        raise DataError(f"treatment column {treatment!r} not found; columns are {list(df.columns)[:20]}")
    t_raw = df[treatment]
    if t_raw.isna().any():
        raise DataError(f"treatment column {treatment!r} has missing values")
    vals = set(pd.unique(t_raw.astype(object)))
    if not vals <= {0, 1}:  # True == 1 and False == 0 in a set
        raise DataError(f"treatment column {treatment!r} must be boolean or 0/1, found {sorted(map(str, vals))[:5]}")
    t = t_raw.astype(bool).to_numpy()
    if weights is None and matched and "weight" in df.columns:
        weights = "weight"
    if weights is not None:
        if weights not in df.columns:
            raise DataError(f"weights column {weights!r} not found")
        w = df[weights].to_numpy(dtype=float)
        if not np.all(np.isfinite(w)) or np.any(w < 0):
            raise DataError(f"weights column {weights!r} must be finite and non-negative")
    else:
        w = np.ones(len(df))
    settings = getattr(data, "settings", None) if matched else None
    replaced = isinstance(settings, dict) and bool(settings.get("replace"))
    if cluster is None and replaced:
        # With replacement a comparison unit serves several matched sets, so the sets do not
        # partition the rows (``match_id`` holds only the first set a reused unit joined).
        # MatchIt's recommendation for match.data() output (vignette "Estimating Effects
        # After Matching", after Hill & Reiter 2006): the weights carry the reuse and the SE
        # is robust with the unit as cluster, i.e. sandwich::vcovCL(fit, cluster = ~id).
        # The matched unit is the family when siblings were matched as a block.
        fam = settings.get("cluster")
        fam = fam if fam in df.columns else ("family_id" if "family_id" in df.columns else None)
        if fam is not None and df[fam].notna().any():
            codes = _codes(df[fam])
            text = (f"matched unit ({fam}; with replacement a reused comparison unit is one cluster across "
                    "all the matched sets it serves, as cluster = ~id on MatchIt's match.data())")
        else:
            codes = np.arange(len(df), dtype=np.int64)
            text = ("matched unit (with replacement a reused comparison unit is one cluster across "
                    "all the matched sets it serves, as cluster = ~id on MatchIt's match.data())")
    elif cluster is None and matched and "match_id" in df.columns:
        if "family_id" in df.columns and df["family_id"].notna().any():
            codes = _merge_families(df["match_id"], df["family_id"])
            text = "matched set (match_id), sets sharing a family_id joined"
        else:
            codes = _codes(df["match_id"])
            text = "matched set (match_id)"
    elif cluster is not None:
        if cluster not in df.columns:
            raise DataError(f"cluster column {cluster!r} not found")
        codes = _codes(df[cluster])
        text = f"cluster column {cluster!r}"
    else:
        codes, text = None, "none (each row its own cluster)"
    keep = w > 0  # zero-weight rows (unmatched units) carry no information
    design = Design(df, t, w, codes, text, weights is not None, replaced)
    if not keep.all():
        design = design.subset(keep)
    if design.treated.all() or not design.treated.any():
        raise DataError("both arms need at least one row with positive weight")
    return design


def _codes(s: pd.Series) -> np.ndarray:
    """Integer codes of a cluster column; a missing id is a cluster of its own."""
    codes, _ = pd.factorize(s)
    missing = codes < 0
    if missing.any():
        codes = codes.copy()
        codes[missing] = codes.max() + 1 + np.arange(missing.sum())
    return pd.factorize(codes)[0].astype(np.int64)


def window_columns(df: pd.DataFrame, outcome: str) -> dict[int, str]:
    """Window booleans of a cohort outcome: {months: column}, sorted by months."""
    prefix = WINDOW_PREFIX.get(outcome, outcome)
    pat = re.compile(rf"^{re.escape(prefix)}_(\d+)m$")
    found = {int(m.group(1)): c for c in df.columns if (m := pat.match(str(c)))}
    return dict(sorted(found.items()))


def window_of(column: str) -> int | None:
    """Months of a window column name such as ``reunified_12m`` (None if not a window)."""
    m = re.search(r"_(\d+)m$", column)
    return int(m.group(1)) if m else None


def outcome_of(column: str) -> str | None:
    """The cohort outcome of a window column (``reunified_12m`` -> ``reunification``), or None."""
    prefix = column.rsplit("_", 1)[0]
    return next((k for k, v in WINDOW_PREFIX.items() if v == prefix), None)


def as_binary(s: pd.Series, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(values as 0/1 floats, observed mask) of a binary outcome column."""
    obs = s.notna().to_numpy()
    vals = pd.unique(s[obs].astype(object))
    if not set(vals) <= {0, 1}:  # also matches True/False and 0.0/1.0
        raise DataError(f"binary outcome {name!r} must be boolean or 0/1, found {sorted(map(str, vals))[:5]}")
    y = np.zeros(len(s))
    y[obs] = s[obs].astype(float).to_numpy()
    return y, obs
