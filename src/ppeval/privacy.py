"""Privacy for everything ppeval publishes.

Every writer of a published artefact (``report.html``, ``results.json``, ``tables/*.csv``,
charts, the fact sheet, logs) goes through this module. It has four parts:

1. **Small-cell suppression.** :func:`suppress_counts` hides counts from 1 to
   ``threshold - 1`` (default 11, the CMS/CCWIP rule "no cell 1-10, zero allowed") in a
   table, adds complementary suppressions so that no hidden value can be recovered from
   totals or differences, and hides rates built from hidden counts. The scalar helpers
   :func:`suppress_value`, :func:`json_count`, :func:`format_count` and
   :func:`format_rate` do the same for single numbers in ``results.json``, chart labels
   and captions.
2. **Identifiers.** :class:`IdentifierGuard` knows every child id, family id, report id and
   birth date of an extract and refuses (:class:`PrivacyError`) any text, table, file or
   folder that contains one. Its messages name the artefact, the place and the *kind* of
   identifier, never the identifier.
3. **Pseudonymised export.** :func:`pseudonymise` replaces ids by a keyed hash
   (HMAC-SHA256) and coarsens birth dates to the year, for the opt-in unit-level export.
4. **Atomic output.** :func:`atomic_output_dir` builds an output folder next to its final
   place and swaps it in whole, so a run killed at any moment leaves the previous complete
   output (or the new complete one), never a mix; :func:`write_bytes_atomic` and
   :func:`write_text_atomic` do the same for one file.

Examples
--------
>>> import pandas as pd
>>> t = pd.DataFrame({"arm": ["treated", "comparison"], "n": [40, 52], "events": [35, 20]})
>>> res = suppress_counts(t, ["n"], events={"events": "n"})
>>> res.table["events"].tolist()        # 40 - 35 = 5 children without the event: hidden
[<NA>, 20]
>>> format_count(7), format_count(1234), format_rate(31, 50)
('<11', '1,234', '62%')
"""

from __future__ import annotations

import base64
import bisect
import contextlib
import copy
import csv
import ctypes
import ctypes.util
import errno
import gc
import gzip
import hashlib
import hmac
import html
import io
import itertools
import json
import math
import numbers
import operator
import os
import re
import secrets
import shutil
import sys
import zipfile
import zlib
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from . import schema
from .errors import ConfigError, PpevalError

if TYPE_CHECKING:
    from .extract import Extract

__all__ = [
    "DEFAULT_THRESHOLD",
    "SUPPRESSED_TEXT",
    "Finding",
    "IdentifierGuard",
    "PrivacyError",
    "SuppressionResult",
    "atomic_output_dir",
    "audit_suppression",
    "format_count",
    "format_rate",
    "is_sensitive",
    "json_count",
    "pseudonymise",
    "recover_output_dir",
    "suppress_counts",
    "suppress_value",
    "write_bytes_atomic",
    "write_text_atomic",
]

#: Counts from 1 to ``DEFAULT_THRESHOLD - 1`` are never published (CMS/ResDAC, CCWIP: 1-10).
DEFAULT_THRESHOLD = 11

#: The one marker for a hidden cell in tables, labels and captions. A single marker is used
#: for primary and complementary suppressions alike: marking them differently would tell a
#: reader which hidden cells are the small ones.
SUPPRESSED_TEXT = "suppressed"


class PrivacyError(PpevalError):
    """An artefact would publish an identifier (or a suppression cannot be done safely).

    ``findings`` lists what was found: artefact, place and kind, never the value.
    """

    exit_status = 1

    def __init__(self, message: str, findings: Sequence[Finding] = ()):
        super().__init__(message)
        self.findings: list[Finding] = list(findings)


# ---------------------------------------------------------------------------------------
# Scalar helpers
# ---------------------------------------------------------------------------------------


#: what every output says when ``[report] allow_unsuppressed = true`` let the threshold fall below 2
UNSUPPRESSED_NOTE = ("Small counts are NOT suppressed in this report (allow_unsuppressed = true): "
                     "do not publish it.")


def _check_threshold(threshold: int) -> int:
    # the library's rule: a whole number of at least 1 (1 = nothing is small, which a
    # caller asks for explicitly); the config adds that below 2 needs allow_unsuppressed
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Integral) or threshold < 1:
        raise ValueError(f"threshold must be a whole number of at least 1, got {threshold!r}")
    return int(threshold)


def check_suppress_below(threshold: int, allow_unsuppressed: bool = False) -> int:
    """The one rule for a publication threshold: at least 2, or 1 only when asked for deliberately.

    A threshold of 1 suppresses nothing, so it is refused unless ``allow_unsuppressed`` is true.

    Examples
    --------
    >>> check_suppress_below(11)
    11
    >>> check_suppress_below(1, allow_unsuppressed=True)
    1
    """
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Integral) or threshold < 1:
        raise ConfigError(f"config: report.suppress_below = {threshold!r} must be a whole number of at least 2")
    if threshold < 2 and not allow_unsuppressed:
        raise ConfigError(
            f"config: report.suppress_below = {threshold} suppresses no count at all; use at least 2 "
            "(default 11), or set [report] allow_unsuppressed = true to make an unpublishable, unsuppressed report deliberately"
        )
    return int(threshold)


def suppression_sentence(threshold: int) -> str:
    """The sentence every output uses to say which counts are suppressed.

    Examples
    --------
    >>> suppression_sentence(11)
    'Counts from 1 to 10 are suppressed'
    >>> suppression_sentence(1)[:31]
    'Small counts are NOT suppressed'
    """
    threshold = _check_threshold(threshold)
    if threshold < 2:
        return UNSUPPRESSED_NOTE
    return f"Counts from 1 to {threshold - 1} are suppressed"


def _is_missing(n: Any) -> bool:
    if n is None or n is pd.NA or n is pd.NaT:
        return True
    return isinstance(n, float) and math.isnan(n)


def _as_count(n: Any, what: str = "count") -> int:
    """A count as a Python int: whole and non-negative, else ValueError (a writer's bug)."""
    if isinstance(n, bool):
        raise ValueError(f"{what} must be a whole number, got a boolean")
    if isinstance(n, numbers.Integral):
        value = int(n)
    elif isinstance(n, numbers.Real) and float(n).is_integer():
        value = int(n)
    else:
        raise ValueError(f"{what} must be a whole number, got {type(n).__name__}")
    if value < 0:
        raise ValueError(f"{what} must not be negative")
    return value


def is_sensitive(n: int, threshold: int = DEFAULT_THRESHOLD) -> bool:
    """True when ``n`` is a count that must not be published (1 <= n < threshold).

    Examples
    --------
    >>> [is_sensitive(n) for n in (0, 1, 10, 11)]
    [False, True, True, False]
    """
    value = _as_count(n)
    return 1 <= value < _check_threshold(threshold)


def suppress_value(n: int | None, threshold: int = DEFAULT_THRESHOLD) -> int | None:
    """The count to publish, or ``None`` when it must be suppressed.

    Zero is published (an empty cell reveals nobody); ``None`` in gives ``None`` out, so an
    already-suppressed value stays suppressed.

    Examples
    --------
    >>> suppress_value(0), suppress_value(7), suppress_value(11), suppress_value(7, threshold=5)
    (0, None, 11, 7)
    """
    if _is_missing(n):
        return None
    value = _as_count(n)
    return None if 1 <= value < _check_threshold(threshold) else value


def json_count(n: int | None, threshold: int = DEFAULT_THRESHOLD) -> dict[str, int | bool | None]:
    """A count in the JSON form used by ``results.json``: ``{"value": ..., "suppressed": ...}``.

    Examples
    --------
    >>> json_count(5)
    {'value': None, 'suppressed': True}
    >>> json_count(42)
    {'value': 42, 'suppressed': False}
    """
    value = suppress_value(n, threshold)
    return {"value": value, "suppressed": value is None}


def format_count(n: int | None, threshold: int = DEFAULT_THRESHOLD) -> str:
    """A count for chart labels, captions and HTML: ``"<11"`` when hidden.

    Published counts get thousands separators (``"1,234"``). That is also a privacy rule:
    in prose a bare run of five or more digits is then never a count, so the identifier
    guard can treat it as a possible id (see :class:`IdentifierGuard`). ``None`` (a value
    suppressed elsewhere, possibly by complementary suppression, so not necessarily small)
    gives :data:`SUPPRESSED_TEXT`.

    Examples
    --------
    >>> format_count(0), format_count(10), format_count(12), format_count(104233), format_count(None)
    ('0', '<11', '12', '104,233', 'suppressed')
    """
    if _is_missing(n):
        return SUPPRESSED_TEXT
    value = _as_count(n)
    threshold = _check_threshold(threshold)
    if 1 <= value < threshold:
        return f"<{threshold}"
    return f"{value:,}"


def format_rate(
    num: int | None,
    den: int | None,
    threshold: int = DEFAULT_THRESHOLD,
    *,
    digits: int = 0,
) -> str:
    """A proportion as a percentage for labels and captions, hidden when unsafe.

    The rate is shown only when the numerator, the denominator *and* their difference
    (``den - num``: the units without the event, recoverable from the other two) are all
    publishable. Rounding is half-up (``62.5%`` -> ``"63%"``), not Python's half-even.

    Parameters
    ----------
    num, den : int or None
        Events and units at risk; ``None`` means already suppressed.
    threshold : int
        Counts from 1 to ``threshold - 1`` are not published.
    digits : int
        Decimals of the percentage.

    Returns
    -------
    str
        ``"62%"``, :data:`SUPPRESSED_TEXT` when hidden, ``"n/a"`` when ``den`` is 0.

    Examples
    --------
    >>> format_rate(31, 50), format_rate(5, 50), format_rate(45, 50), format_rate(0, 0)
    ('62%', 'suppressed', 'suppressed', 'n/a')
    >>> format_rate(1, 3, threshold=1, digits=1)
    '33.3%'
    """
    if _is_missing(num) or _is_missing(den):
        return SUPPRESSED_TEXT
    n_ev = _as_count(num, "numerator")
    n_all = _as_count(den, "denominator")
    if n_ev > n_all:
        raise ValueError("the numerator of a rate must not exceed its denominator")
    threshold = _check_threshold(threshold)
    if any(1 <= v < threshold for v in (n_ev, n_all, n_all - n_ev)):
        return SUPPRESSED_TEXT
    if n_all == 0:
        return "n/a"
    pct = (Decimal(n_ev) * 100 / Decimal(n_all)).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP)
    return f"{pct}%"


# ---------------------------------------------------------------------------------------
# Table suppression
# ---------------------------------------------------------------------------------------

# A cell of the suppression problem: (row position, column key). Real cells use the column
# name; the implied "n - events" cells use ("n-minus-events", events column).
_Cell = tuple[int, Hashable]
_PRIME = 2_147_483_647  # 2**31 - 1: exact elimination mod p; products stay below 2**63


@dataclass
class _Problem:
    """The linear structure an attacker can use: every published sum is an equation."""

    values: dict[_Cell, int]
    real: list[_Cell]  # published cells, in a fixed order (row-major) for tie-breaking
    virtual: set[_Cell]  # implied, never published cells (n - events)
    equations: list[dict[_Cell, int]]  # cell -> coefficient; sum(coef * value) == 0
    totals: set[_Cell]
    order: dict[_Cell, int] = field(default_factory=dict)


def _rref_mod(a: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """Reduced row echelon form modulo a prime (exact: the matrices hold small integers)."""
    a = a % _PRIME
    n_rows, n_cols = a.shape
    r = 0
    pivots: list[int] = []
    for c in range(n_cols):
        if r == n_rows:
            break
        nz = np.nonzero(a[r:, c])[0]
        if nz.size == 0:
            continue
        k = r + int(nz[0])
        if k != r:
            a[[r, k]] = a[[k, r]]
        inv = pow(int(a[r, c]), _PRIME - 2, _PRIME)
        a[r] = (a[r] * inv) % _PRIME
        others = np.nonzero(a[:, c])[0]
        others = others[others != r]
        if others.size:
            factors = a[others, c][:, None]
            a[others] = (a[others] - (factors * a[r][None, :]) % _PRIME) % _PRIME
        pivots.append(c)
        r += 1
    return a[:r], pivots


def _determined(problem: _Problem, unknown: Sequence[_Cell]) -> set[_Cell]:
    """The unknown cells whose value follows exactly from the published ones.

    With the unknowns ``x`` and the equations ``A x = b`` (``b`` from published cells), a
    cell is determined when every solution of ``A x = 0`` is zero there: in the reduced
    echelon form it is a pivot whose row has no entry in a free column.
    """
    idx = {c: i for i, c in enumerate(unknown)}
    rows = []
    for eq in problem.equations:
        row = np.zeros(len(unknown), dtype=np.int64)
        hit = False
        for c, coef in eq.items():
            if c in idx:
                row[idx[c]] = coef
                hit = True
        if hit:
            rows.append(row)
    if not rows:
        return set()
    rref, pivots = _rref_mod(np.vstack(rows))
    free = np.ones(len(unknown), dtype=bool)
    free[pivots] = False
    out = set()
    for i, pc in enumerate(pivots):
        if not rref[i, free].any():
            out.add(unknown[pc])
    return out


def _recoverable(problem: _Problem, suppressed: set[_Cell], hidden_virtual: set[_Cell]) -> list[_Cell]:
    """Suppressed cells (and small implied cells) an attacker could solve for exactly."""
    unknown = sorted(suppressed | problem.virtual, key=lambda c: problem.order[c])
    det = _determined(problem, unknown)
    protect = suppressed | hidden_virtual
    return sorted((c for c in det if c in protect), key=lambda c: problem.order[c])


def _candidate_key(problem: _Problem, c: _Cell) -> tuple:
    # Next-smallest non-zero cell first (hiding a 0 adds little uncertainty), interior cells
    # before totals on ties, then table order so the result is deterministic.
    v = problem.values[c]
    return (v == 0, v, c in problem.totals, problem.order[c])


def _line_pick(problem: _Problem, eq: dict[_Cell, int], suppressed: set[_Cell], hidden_virtual: set[_Cell]) -> _Cell | None:
    """The complementary cell this line needs, or None when the line is safe.

    A line (a published sum) is unsafe when it holds exactly one hidden cell that must be
    protected and no other unknown: that cell is its total minus the published rest. It is
    also unsafe when its hidden cells are all parts (coefficient +1) that each equal 1:
    their known sum equals their number and, since a hidden cell is at least 1, each is 1.
    """
    protect = [c for c in eq if c in suppressed or c in hidden_virtual]
    free_unknown = [c for c in eq if c in problem.virtual and c not in hidden_virtual]
    if free_unknown or not protect:
        return None
    single = len(protect) == 1
    pinned = all(eq[c] > 0 for c in protect) and sum(problem.values[c] for c in protect) == len(protect)
    if not (single or pinned):
        return None
    candidates = [c for c in eq if c not in problem.virtual and c not in suppressed]
    if not candidates:
        return None
    return min(candidates, key=lambda c: _candidate_key(problem, c))


def _protect(problem: _Problem, threshold: int) -> tuple[set[_Cell], set[_Cell]]:
    """Primary and complementary suppression (see :func:`suppress_counts`)."""
    primary = {c for c in problem.real if 1 <= problem.values[c] < threshold}
    hidden_virtual = {c for c in problem.virtual if 1 <= problem.values[c] < threshold}
    suppressed = set(primary)
    while True:
        # 1. The line heuristic, over rows, columns and event lines until nothing changes.
        changed = True
        while changed:
            changed = False
            for eq in problem.equations:
                pick = _line_pick(problem, eq, suppressed, hidden_virtual)
                if pick is not None:
                    suppressed.add(pick)
                    changed = True
        # 2. Exact audit: lines can be safe one at a time and still combine (a "bridge"
        # between two suppressed rectangles). Add the cheapest cell that breaks the
        # recovery and run the heuristic again; every round hides one more cell, so this ends.
        bad = _recoverable(problem, suppressed, hidden_virtual)
        if not bad:
            return suppressed, primary
        target = bad[0]
        neighbours = {c for eq in problem.equations if target in eq for c in eq}
        candidates = sorted(
            (c for c in neighbours if c not in problem.virtual and c not in suppressed),
            key=lambda c: _candidate_key(problem, c),
        )
        if not candidates:
            candidates = sorted(
                (c for c in problem.real if c not in suppressed), key=lambda c: _candidate_key(problem, c)
            )
        if not candidates:  # everything is hidden already: nothing can be recovered
            return suppressed, primary
        pick = candidates[0]
        for c in candidates:
            trial = suppressed | {c}
            if target not in _recoverable(problem, trial, hidden_virtual):
                pick = c
                break
        suppressed.add(pick)


@dataclass(frozen=True)
class SuppressionResult:
    """A table after suppression.

    Attributes
    ----------
    table : DataFrame
        The input with hidden count cells set to ``<NA>`` (count columns become ``Int64``,
        rate columns ``Float64``); other columns unchanged.
    mask : DataFrame of bool
        True where a cell is hidden (primary, complementary or a rate), same shape.
    primary : DataFrame of bool
        True where a count was hidden because it is itself from 1 to ``threshold - 1``.
    threshold : int
    count_cols, rate_cols : tuple of str

    Unpacks as ``table, mask = suppress_counts(...)``.
    """

    table: pd.DataFrame
    mask: pd.DataFrame
    primary: pd.DataFrame
    threshold: int
    count_cols: tuple[str, ...]
    rate_cols: tuple[str, ...]
    # The declared structure (column names and row labels only, never values), so that
    # audit_suppression can rebuild the equations.
    _structure: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def __iter__(self) -> Iterator[pd.DataFrame]:
        yield self.table
        yield self.mask

    @property
    def n_suppressed(self) -> int:
        """Number of hidden cells (counts and rates)."""
        return int(self.mask.to_numpy().sum())

    @property
    def complementary(self) -> pd.DataFrame:
        """True where a count was hidden only to protect another cell."""
        comp = self.mask & ~self.primary
        comp.loc[:, list(self.rate_cols)] = False
        return comp

    def formatted(self, mark: str = SUPPRESSED_TEXT, rate_digits: int = 1) -> pd.DataFrame:
        """The table as display strings: counts ``"1,234"``, rates with ``rate_digits``
        decimals, hidden cells ``mark``. Other columns are left as they are.

        Examples
        --------
        >>> t = pd.DataFrame({"n": [3, 1200]})
        >>> suppress_counts(t, ["n"]).formatted()["n"].tolist()
        ['suppressed', '1,200']
        """
        out = self.table.astype(object).copy()
        for col in self.count_cols:
            out[col] = [
                mark if hidden else ("" if _is_missing(v) else f"{int(v):,}")
                for v, hidden in zip(self.table[col], self.mask[col], strict=True)
            ]
        for col in self.rate_cols:
            out[col] = [
                mark if hidden else ("" if _is_missing(v) else f"{float(v):.{rate_digits}f}")
                for v, hidden in zip(self.table[col], self.mask[col], strict=True)
            ]
        return out

    def to_records(self) -> list[dict[str, Any]]:
        """Rows as JSON-ready dicts: a hidden value is ``None`` with ``"<col>_suppressed":
        True`` beside it (every count and rate column carries its ``_suppressed`` flag, so
        the schema does not depend on the data). A named or non-default index is included.

        Examples
        --------
        >>> t = pd.DataFrame({"arm": ["treated"], "n": [8]})
        >>> suppress_counts(t, ["n"]).to_records()
        [{'arm': 'treated', 'n': None, 'n_suppressed': True}]
        """
        table = self.table
        include_index = table.index.name is not None or not isinstance(table.index, pd.RangeIndex)
        protected = set(self.count_cols) | set(self.rate_cols)
        records = []
        for pos, (label, row) in enumerate(table.iterrows()):
            rec: dict[str, Any] = {}
            if include_index:
                rec[str(table.index.name or "index")] = _jsonable(label)
            for col in table.columns:
                value = row[col]
                if col in protected:
                    hidden = bool(self.mask.iloc[pos][col])
                    rec[str(col)] = None if hidden else _jsonable(value)
                    rec[f"{col}_suppressed"] = hidden
                else:
                    rec[str(col)] = _jsonable(value)
            records.append(rec)
        return records


def _jsonable(value: Any) -> Any:
    if _is_missing(value):
        return None
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (pd.Timestamp, datetime, date)):
        return value.isoformat()
    return value


def _build_problem(
    table: pd.DataFrame,
    count_cols: Sequence[str],
    total_row: Hashable | None,
    total_col: str | None,
    rate_cols: Mapping[str, tuple[str, str]],
    events: Mapping[str, str],
    row_sums: Mapping[Hashable, Sequence[Hashable]],
    col_sums: Mapping[str, Sequence[str]],
) -> tuple[_Problem, list[str]]:
    """Check a table against its declared structure and turn it into equations."""
    if not table.index.is_unique:
        raise ValueError("suppress_counts needs a table with a unique index")
    row_rel: dict[Hashable, list[Hashable]] = {k: list(v) for k, v in row_sums.items()}
    col_rel: dict[str, list[str]] = {k: list(v) for k, v in col_sums.items()}
    counts: list[str] = []
    for col in [*count_cols, *([total_col] if total_col is not None else []), *events, *events.values()]:
        if col not in counts:
            counts.append(col)
    for num, den in rate_cols.values():
        for col in (num, den):
            if col not in counts:
                counts.append(col)
    for col in counts + list(rate_cols):
        if col not in table.columns:
            raise ValueError(f"column {col!r} is not in the table")
    if total_col is not None:
        col_rel[total_col] = [c for c in count_cols if c != total_col]
    labels = list(table.index)
    if total_row is not None:
        if total_row not in table.index:
            raise ValueError(f"total row {total_row!r} is not in the table's index")
        row_rel[total_row] = [r for r in labels if r != total_row]
    for total, parts in row_rel.items():
        for r in [total, *parts]:
            if r not in table.index:
                raise ValueError(f"row {r!r} (in row_sums) is not in the table's index")
    for total, parts in col_rel.items():
        for c in [total, *parts]:
            if c not in counts:
                raise ValueError(f"column {c!r} (in col_sums) is not a count column")

    pos = {label: i for i, label in enumerate(labels)}
    values: dict[_Cell, int] = {}
    for col in counts:
        for i, v in enumerate(table[col].tolist()):
            if _is_missing(v):
                raise ValueError(f"count column {col!r} has a missing value in row {labels[i]!r}; use 0")
            values[(i, col)] = _as_count(v, f"count in column {col!r}, row {labels[i]!r}")
    real = [(i, col) for i in range(len(labels)) for col in counts]
    equations: list[dict[_Cell, int]] = []
    totals: set[_Cell] = set()

    def add_equation(parts: Iterable[_Cell], total: _Cell, what: str | None) -> None:
        eq: dict[_Cell, int] = {}
        for c in parts:
            eq[c] = eq.get(c, 0) + 1
        eq[total] = eq.get(total, 0) - 1
        if what is not None and sum(coef * values[c] for c, coef in eq.items()) != 0:
            # Never the values in the message: only where the table is inconsistent.
            raise ValueError(f"{what} does not add up; suppression would be unsafe")
        equations.append({c: k for c, k in eq.items() if k != 0})

    for total, parts in col_rel.items():
        for i in range(len(labels)):
            totals.add((i, total))
            add_equation(((i, c) for c in parts), (i, total), f"row {labels[i]!r}: column {total!r}")
    for total, parts in row_rel.items():
        for col in counts:
            totals.add((pos[total], col))
            add_equation(((pos[r], col) for r in parts), (pos[total], col), f"column {col!r}: row {total!r}")
    virtual: set[_Cell] = set()
    for ev, n_col in events.items():
        key = ("n-minus-events", ev)
        for i in range(len(labels)):
            e, n = values[(i, ev)], values[(i, n_col)]
            if e > n:
                raise ValueError(f"row {labels[i]!r}: {ev!r} exceeds {n_col!r}")
            values[(i, key)] = n - e
            virtual.add((i, key))
            add_equation([(i, ev), (i, key)], (i, n_col), None)
        # The implied column obeys the same row relations as the two it comes from.
        for total, parts in row_rel.items():
            add_equation(((pos[r], key) for r in parts), (pos[total], key), None)

    problem = _Problem(values, real, virtual, equations, totals)
    problem.order = {c: k for k, c in enumerate(real)}
    for k, c in enumerate(sorted(virtual, key=lambda c: (c[0], str(c[1]))), start=len(real)):
        problem.order[c] = k
    return problem, counts


def suppress_counts(
    table: pd.DataFrame,
    count_cols: Sequence[str],
    threshold: int = DEFAULT_THRESHOLD,
    total_row: Hashable | None = None,
    total_col: str | None = None,
    rate_cols: Mapping[str, tuple[str, str]] | None = None,
    *,
    events: Mapping[str, str] | None = None,
    row_sums: Mapping[Hashable, Sequence[Hashable]] | None = None,
    col_sums: Mapping[str, Sequence[str]] | None = None,
) -> SuppressionResult:
    """Small-cell suppression of a published table, with complementary suppression.

    **Primary suppression.** Every count from 1 to ``threshold - 1`` is hidden. Zero is
    published.

    **Complementary suppression.** Each published sum is a *line*: a row whose total is in
    ``total_col``, a column whose total is in row ``total_row`` (lines include their total
    cell), any extra relation in ``row_sums``/``col_sums``, and for each pair in ``events``
    the line ``events + (n - events) = n``. A line with exactly one hidden cell gives that
    cell away (total minus the rest), so the heuristic is: *while some line has exactly one
    hidden cell, also hide the smallest non-zero published cell of that line* (ties:
    interior before total, then table order), sweeping rows, columns and event lines until
    no line changes. A line whose hidden cells are all parts equal to 1 is treated the same
    way (their known sum would pin each to 1). This is the usual row/column heuristic
    (CCWIP/CDSS: "further cells to prevent back-calculation"). Lines that are safe one at a
    time can still combine, so the result is then audited exactly: a hidden cell is
    recoverable when the published cells determine it through the linear system of all
    lines (exact elimination). Any such cell gets one more complementary suppression (the
    neighbour that breaks the recovery) and the heuristic runs again; each round hides one
    more cell, so it ends.

    **Events.** For ``events={"events": "n"}`` the number without the event, ``n - events``,
    is never published but follows from the other two. When it is from 1 to
    ``threshold - 1``, the smaller published cell of its line (``events``) is hidden. When
    only ``events`` is hidden, ``n`` stays published: ``n - events`` is unknown as well.

    **Rates.** A rate cell ``rate_cols[rate] = (num, den)`` is hidden when its numerator or
    denominator is hidden (rate x den gives the numerator; num / rate the denominator).
    For a proportion also list the pair in ``events`` so that a small ``den - num`` is
    protected.

    Not covered (say so beside the artefact): bounds from non-negativity beyond the
    "all 1s" case (a hidden cell may be narrowed to a range, never to one value), and sums
    across *different* artefacts: publish every number from one suppressed table, and
    declare every count column (undeclared columns pass through untouched).

    Parameters
    ----------
    table : DataFrame
        One row per category. The index must be unique (``total_row`` is an index label).
    count_cols : sequence of str
        The count columns. With ``total_col``, that column is the row sum of the others.
    threshold : int, default 11
        Counts from 1 to ``threshold - 1`` are hidden.
    total_row : index label, optional
        The row holding, in every count column, the sum of all other rows.
    total_col : str, optional
        The column holding, in every row, the sum of the other ``count_cols``.
    rate_cols : dict of rate column -> (numerator column, denominator column), optional
    events : dict of events column -> n column, optional
        Event counts within a number of units (both counts; ``0 <= events <= n``).
    row_sums : dict of row label -> row labels, optional
        Further relations: that row equals the sum of those rows in every count column
        (e.g. a sample flow: ``{"eligible": ["excluded", "included"]}``).
    col_sums : dict of column -> columns, optional
        Further relations: that column equals the sum of those columns in every row.

    Returns
    -------
    SuppressionResult
        ``table`` (hidden cells ``<NA>``), ``mask`` and ``primary``; unpacks as
        ``table, mask``.

    Raises
    ------
    ValueError
        When a count is negative, missing or not whole, a declared sum does not add up, or
        a column is missing: the table is wrong and suppressing it would be unsafe.

    Examples
    --------
    >>> t = pd.DataFrame({"A": [3, 40, 43], "B": [30, 25, 55], "total": [33, 65, 98]},
    ...                  index=["county 1", "county 2", "total"])
    >>> res = suppress_counts(t, ["A", "B"], total_row="total", total_col="total")
    >>> res.table
                 A     B  total
    county 1  <NA>  <NA>     33
    county 2  <NA>  <NA>     65
    total       43    55     98
    >>> int(res.primary.to_numpy().sum()), res.n_suppressed
    (1, 4)
    """
    threshold = _check_threshold(threshold)
    structure: dict[str, Any] = {
        "count_cols": list(count_cols),
        "total_row": total_row,
        "total_col": total_col,
        "rate_cols": dict(rate_cols or {}),
        "events": dict(events or {}),
        "row_sums": {k: list(v) for k, v in (row_sums or {}).items()},
        "col_sums": {k: list(v) for k, v in (col_sums or {}).items()},
    }
    problem, counts = _build_problem(table, **structure)
    suppressed, primary = _protect(problem, threshold)

    mask = pd.DataFrame(False, index=table.index, columns=table.columns)
    prim = pd.DataFrame(False, index=table.index, columns=table.columns)
    for i, col in suppressed:
        mask.iat[i, table.columns.get_loc(col)] = True
    for i, col in primary:
        prim.iat[i, table.columns.get_loc(col)] = True
    for rate, (num, den) in structure["rate_cols"].items():
        mask[rate] = mask[rate] | mask[num] | mask[den]

    out = table.copy()
    n_rows = len(table)
    for col in counts:
        out[col] = pd.array([problem.values[(i, col)] for i in range(n_rows)], dtype="Int64")
        out.loc[mask[col].to_numpy(), col] = pd.NA
    for rate in structure["rate_cols"]:
        out[rate] = pd.array(pd.to_numeric(table[rate], errors="raise"), dtype="Float64")
        out.loc[mask[rate].to_numpy(), rate] = pd.NA
    return SuppressionResult(out, mask, prim, threshold, tuple(counts), tuple(structure["rate_cols"]), structure)


def audit_suppression(result: SuppressionResult, original: pd.DataFrame) -> list[tuple[Hashable, str]]:
    """Cells of a suppressed table that are still disclosed (an empty list when safe).

    Rebuilds the equations of :func:`suppress_counts` from the unsuppressed ``original``
    and the structure the result was made with, and lists ``(row label, column)`` for every
    published count from 1 to ``threshold - 1``, every hidden count the published cells
    determine exactly, and every implied ``n - events`` from 1 to ``threshold - 1`` that
    they determine (named ``"<events column> (n - events)"``). Use it in a writer's tests,
    or after a suppressed table was edited.

    Examples
    --------
    >>> t = pd.DataFrame({"A": [3, 40, 43], "B": [30, 25, 55]}, index=["x", "y", "total"])
    >>> res = suppress_counts(t, ["A", "B"], total_row="total")
    >>> audit_suppression(res, t)
    []
    >>> leaky = suppress_counts(t, ["A", "B"], total_row="total")
    >>> leaky.mask.loc["y", "A"] = False                        # publish a complement again
    >>> audit_suppression(leaky, t)
    [('x', 'A')]
    """
    problem, counts = _build_problem(original, **result._structure)
    labels = list(original.index)
    hidden = {(i, c) for i in range(len(labels)) for c in counts if bool(result.mask.iat[i, result.mask.columns.get_loc(c)])}
    issues: list[tuple[Hashable, str]] = [
        (labels[i], c) for (i, c) in problem.real if (i, c) not in hidden and 1 <= problem.values[(i, c)] < result.threshold
    ]
    small_virtual = {c for c in problem.virtual if 1 <= problem.values[c] < result.threshold}
    for i, c in _recoverable(problem, hidden, small_virtual):
        issues.append((labels[i], c if isinstance(c, str) else f"{c[1]} (n - events)"))
    return issues


# ---------------------------------------------------------------------------------------
# Identifier guard
# ---------------------------------------------------------------------------------------

_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")
_TOKEN = re.compile(r"[a-z0-9]+")
_NUMBER_CELL = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
_INTEGRAL = re.compile(r"[+-]?\d+(\.0*)?")
_MONTHS = {
    **{m: i for i, m in enumerate(["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], 1)},
    **{m: i for i, m in enumerate(
        ["january", "february", "march", "april", "may", "june", "july", "august", "september",
         "october", "november", "december"], 1)},
    "sept": 9,
}
_MONTH_WORD = r"([a-z]{3,9})\.?"
_DATE_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?<![0-9])(\d{4})([-/.])(\d{1,2})\2(\d{1,2})(?![0-9])"), "ymd"),
    (re.compile(r"(?<![0-9])(\d{1,2})([-/])(\d{1,2})\2(\d{4})(?![0-9])"), "mdy"),
    (re.compile(r"(?<![0-9.])(\d{4})(\d{2})(\d{2})(?![0-9])"), "compact"),
    (re.compile(r"(?<![a-z])" + _MONTH_WORD + r"\s+(\d{1,2})(?:st|nd|rd|th)?,?\s+(\d{4})(?![0-9])"), "month-day-year"),
    (re.compile(r"(?<![0-9])(\d{1,2})(?:st|nd|rd|th)?\s+" + _MONTH_WORD + r",?\s+(\d{4})(?![0-9])"), "day-month-year"),
)
# Between two tokens of a declared label (IdentifierGuard.with_provenance): a short run of
# spaces and the punctuation labels are written with, an HTML character reference counting as
# one character ("county_19013", "County: 19013", "&#34;max_file_mb&#34;: 20000"). Line
# breaks, tabs, commas, semicolons and "|" are not in it: they separate the cells of a table
# and the lines of prose, and two cells are never one label.
_LABEL_SEP = r"(?:&#?[a-z0-9]{1,8};|[ _:=\-'\"()./]){1,12}"
_DATA_URI = re.compile(r"data:([a-z0-9.+/-]+)?((?:;[a-z0-9=.+-]+)*);base64,([A-Za-z0-9+/=\s]+)", re.IGNORECASE)
_MAX_FINDINGS_PER_KIND = 20
_MAX_INFLATE = 256 * 1024 * 1024  # decompression cap (zip bombs)

CHILD_ID = "child id"
FAMILY_ID = "family id"
REPORT_ID = "report id"
BIRTH_DATE = "birth date"

# Field names (lower-cased) that hold identifiers in source files and canonical tables.
_ID_FIELD_NAMES = frozenset(
    {"recnumbr", "recnum", "chid", "afcarsid", "rptid", "stfcid", "familyid", "childid", "reportid", "caseid", "personid"}
)


def _is_id_field(name: Any) -> bool:
    """True for column/key names that hold ids: ``child_id``, ``FamilyID``, ``RecNumbr``..."""
    text = str(name).strip()
    low = text.lower()
    if low in schema.identifying_columns() or low.replace("_", "").replace(" ", "") in _ID_FIELD_NAMES:
        return True
    if re.search(r"(?:^|[^a-z0-9])ids?$", low):
        return True
    return bool(re.search(r"[a-z0-9](?:ID|IDs|Id)$", text))


def _norm_id(value: str) -> str:
    """Normal form for exact matching in id fields: trimmed, lower-case, and a whole
    number without leading zeros or a ``.0`` (writers turn ``"00123"`` into 123 or 123.0)."""
    s = value.strip().lower()
    if _INTEGRAL.fullmatch(s):
        # string operations, not int(): an id of thousands of digits must not fail
        digits = s.split(".")[0].lstrip("+")
        sign = "-" if digits.startswith("-") else ""
        digits = digits.lstrip("-").lstrip("0") or "0"
        return sign + digits if digits != "0" else "0"
    return s


def _to_date(y: int, m: int, d: int) -> date | None:
    try:
        return date(y, m, d)
    except ValueError:
        return None


@dataclass(frozen=True)
class Finding:
    """One identifier found in an artefact: where and what kind, never the value.

    ``line`` is a line of a text file (or a row of a table, 1-based); ``column`` a column
    or JSON key name (names that are themselves identifying are replaced by ``"*"``);
    ``part`` a part of a container (a PNG text chunk, a PDF string, an image inside HTML,
    a member of a zip).
    """

    where: str
    kind: str
    line: int | None = None
    column: str | None = None
    part: str | None = None

    def __str__(self) -> str:
        loc = self.where
        if self.part:
            loc += f" ({self.part})"
        if self.line is not None:
            loc += f", line {self.line}"
        if self.column is not None:
            loc += f", column {self.column!r}"
        return f"{loc}: {self.kind}"


class _Collector:
    """Findings of one artefact, de-duplicated and capped per kind."""

    def __init__(self) -> None:
        self.items: list[Finding] = []
        self._seen: set[Finding] = set()
        self._per_kind: dict[str, int] = {}

    def add(self, f: Finding) -> None:
        if f in self._seen or self._per_kind.get(f.kind, 0) >= _MAX_FINDINGS_PER_KIND:
            return
        self._seen.add(f)
        self._per_kind[f.kind] = self._per_kind.get(f.kind, 0) + 1
        self.items.append(f)


class IdentifierGuard:
    """Refuses artefacts that contain a child id, family id, report id or birth date.

    Build it from the extract (:meth:`from_extract`) and run every published artefact
    through it: ``check_*`` raise :class:`PrivacyError`, ``scan_*`` return
    :class:`Finding` lists. Messages name the artefact, the line/row/column and the kind
    of identifier, never the identifier. ``repr`` shows only how many are known.

    **How ids are matched.** Ids are compared case-insensitively as whole tokens: the text
    before and after a match must not be an ASCII letter or digit (``C000123`` is found in
    ``"id=C000123;"`` but not in ``"C0001234"``). Ids containing separators (``C-000123``)
    are matched as a whole the same way.

    **Ids that look like numbers** are the hard case: with ids such as ``12`` or ``2019``
    a token search would flag every count and year. So:

    * In free text (HTML, SVG, captions, logs, JSON/CSV strings, PDF strings, PNG
      metadata) a purely numeric id is looked for only when it has at least
      ``min_numeric_digits`` digits (default 5), both as written and without leading zeros
      (``0104233`` and ``104233``). A fraction (digits right after ``<digit>.``) is never
      taken for an id. This relies on the writers' rule that a count in prose is printed
      with thousands separators (:func:`format_count`), so a bare five-digit token in prose
      is not a count. Non-numeric ids are looked for when at least ``min_token_length``
      (default 3) characters long.
    * In structured outputs (CSV cells, JSON values, DataFrame cells) every id of every
      length is checked by exact match in *id-like fields* (``child_id``, ``FamilyID``,
      ``RecNumbr``, any name ending in ``id``...), after normalising numbers (``"00123"``,
      ``123`` and ``123.0`` all match id ``123``). Numeric cells of other fields are not
      compared with numeric ids (a count of 104233 days is not an id); their text cells
      are scanned as free text.

    **Provenance of published labels.** A number is not an id because of its digits alone:
    a five-digit county FIPS code (``19013``) printed as a covariate level in Table 1 is
    the same text as child id 19013 when ids are sequential numbers. The publication layer
    therefore tells the guard which phrases it printed as *values of non-identifying
    columns* (:meth:`with_provenance`: ``{"county": ["county_19013", "County: 19013"]}``,
    and the config's own settings such as ``max_file_mb = 20000``). The rule is:

    * A purely numeric id is not reported where its occurrence is a token of a declared
      label's occurrence: the label's tokens in order, each a whole token, separated only by
      short runs (at most 12) of spaces, ``_ : = ' " ( ) . - /`` and HTML character
      references; never by a line break, tab, comma, semicolon or ``|``, which separate
      table cells and lines. ``county_19013`` in a Table 1 cell, the
      ``<td>`` of the HTML table and the love plot's ``County: 19013`` are the county's;
      ``19013`` on its own, or after any other word (``child 19013``, a caption, a log,
      another cell), is still an id. An id printed next to a label (``county_19013 19013``)
      is still found: only the label's own tokens are exempt.
    * A label has to carry context: a declared phrase made of numbers only (a bare
      ``19013``) exempts nothing, as that would allow the number everywhere.
    * Provenance never reaches id fields: a CSV column, JSON key or DataFrame column with an
      id-like name is matched exactly against every id whatever was declared, and an
      identifying column cannot be declared as a label's source (``ValueError``).
    * Non-numeric ids and birth dates are matched as before: labels exempt numbers only.

    **Birth dates** are found in any of the forms a writer produces: ``YYYY-MM-DD``,
    ``YYYY/MM/DD``, ``MM/DD/YYYY``, ``M/D/YYYY``, ``YYYYMMDD``, ISO datetimes and
    ``March 4, 2015`` / ``4 Mar 2015``. Day-first dates (``DD/MM/YYYY``) are not looked for.
    Since thousands of children cover most calendar days, legitimate dates must be allowed:
    :meth:`from_extract` allows the extract date and the configured entry window in every
    form (and the config's seed as an exact token); pass further dates or exact strings in
    ``allow``.

    **Files.** :meth:`scan_dir` scans every file below a folder (symlinks are skipped):
    text files (HTML, SVG, JSON, CSV, TXT, logs...) as above, HTML/SVG with entities
    decoded and embedded ``data:`` images decoded and scanned as files; PNG text chunks
    (``tEXt``, ``zTXt``, ``iTXt``, ``eXIf``); PDF strings (metadata, and text in
    uncompressed or Flate content streams, ``TJ`` arrays joined) and XMP metadata; zip
    (e.g. xlsx) and gzip members; other binary files through their printable runs. Text
    drawn as pixels in a PNG, or as glyph codes of an embedded font in a PDF, cannot be
    read back: check the labels and the HTML before rendering (:meth:`check_text`).

    Parameters
    ----------
    child_ids, family_ids, report_ids : iterable of str
        Identifiers (anything else is turned into a string; whole floats lose their ``.0``).
    birth_dates : iterable of date-like
    allow : iterable of str or date
        Dates allowed in every form, and exact strings (ids or date texts) allowed as written.
    min_numeric_digits : int, default 5
    min_token_length : int, default 3
    extra_ids : dict of kind -> iterable of str, optional
        Further identifiers under a kind name of their own (e.g. ``{"case id": [...]}``).

    Examples
    --------
    >>> g = IdentifierGuard(child_ids=["C000123", "104233", "12"], birth_dates=["2015-03-04"])
    >>> g
    IdentifierGuard(3 ids, 1 birth dates)
    >>> [str(f) for f in g.scan_text("child C000123 was born 03/04/2015", "caption")]
    ['caption, line 1: child id', 'caption, line 1: birth date']
    >>> g.scan_text("12 children, 104,233 days, p = 0.104233", "caption")
    []
    >>> g.check_text("case 104233", "report.html")
    Traceback (most recent call last):
    ...
    ppeval.privacy.PrivacyError: report.html: refusing to publish: it contains a child id from the extract (line 1)
    """

    def __init__(
        self,
        *,
        child_ids: Iterable[Any] = (),
        family_ids: Iterable[Any] = (),
        report_ids: Iterable[Any] = (),
        birth_dates: Iterable[Any] = (),
        allow: Iterable[str | date] = (),
        min_numeric_digits: int = 5,
        min_token_length: int = 3,
        extra_ids: Mapping[str, Iterable[Any]] | None = None,
    ):
        if min_numeric_digits < 1 or min_token_length < 1:
            raise ValueError("min_numeric_digits and min_token_length must be at least 1")
        self.min_numeric_digits = int(min_numeric_digits)
        self.min_token_length = int(min_token_length)
        self._allow_dates: set[date] = set()
        self._allow_tokens: set[str] = set()
        for a in allow:
            if isinstance(a, (date, pd.Timestamp)):
                self._allow_dates.add(pd.Timestamp(a).date())
            else:
                self._allow_tokens.add(str(a).strip().lower())

        groups: dict[str, Iterable[Any]] = {CHILD_ID: child_ids, FAMILY_ID: family_ids, REPORT_ID: report_ids}
        groups.update(extra_ids or {})
        self._n_ids, self._field_ids, self._first = _id_tables(
            groups, self._allow_tokens, self.min_numeric_digits, self.min_token_length)
        self._dates: set[date] = _birth_date_set(birth_dates) - self._allow_dates
        # declared labels (with_provenance): token tuples and one pattern finding them all
        self._labels: frozenset[tuple[str, ...]] = frozenset()
        self._label_re: re.Pattern[str] | None = None

    @classmethod
    def from_extract(
        cls,
        ext: Extract,
        *,
        allow: Iterable[str | date] = (),
        min_numeric_digits: int = 5,
        min_token_length: int = 3,
    ) -> IdentifierGuard:
        """Collect every identifier of an extract.

        Ids come from every identifying id column of every table (:mod:`ppeval.schema`:
        ``child_id``, ``family_id``, ``report_id``), birth dates from every identifying
        date column (``birth_date``). The extract date, the config's ``cohort.entry_from``
        and ``cohort.entry_to`` are allowed dates and the config's ``seed`` an allowed
        token: reports print them.

        Examples
        --------
        >>> from ppeval.extract import Extract
        >>> ext = Extract({"children": pd.DataFrame({"child_id": ["C1", "C000123"],
        ...     "birth_date": pd.to_datetime(["2015-03-04", "2016-07-01"])})}, "2023-12-31")
        >>> IdentifierGuard.from_extract(ext)
        IdentifierGuard(2 ids, 2 birth dates)
        """
        # one guard per extract and settings: building it walks every id (seconds at state size)
        cache_key = (tuple(sorted(map(str, allow))), min_numeric_digits, min_token_length)
        cache = ext.__dict__.setdefault("_identifier_guards", {})
        if cache_key in cache:
            return cache[cache_key]
        ids: dict[str, list[np.ndarray]] = {}
        date_parts: list[pd.Series] = []
        for name, df in ext.tables.items():
            spec = schema.TABLES[name]
            for col in df.columns:
                c = spec.column(col)
                if c is None or not c.identifying:
                    continue
                values = df[col].dropna()
                if c.kind == "date":
                    values = pd.to_datetime(values.drop_duplicates(), errors="coerce").dropna()
                    date_parts.append(values.dt.normalize().drop_duplicates())
                elif isinstance(values.dtype, pd.StringDtype):
                    # strings: the guard keeps one of each (ids repeat across tables anyway)
                    ids.setdefault(col.replace("_", " "), []).append(values.to_numpy(dtype=object))
                else:
                    # distinct values only (pandas' equality: 1, 1.0 and True are one value)
                    values = values.drop_duplicates().tolist()
                    ids.setdefault(col.replace("_", " "), []).append(np.fromiter(values, dtype=object, count=len(values)))
        dates: Iterable[Any]
        if date_parts and all(pd.api.types.is_datetime64_dtype(part.dtype) for part in date_parts):
            dates = pd.concat(date_parts, ignore_index=True)
        else:
            dates = [v for part in date_parts for v in part.tolist()]
        allowed: list[str | date] = list(allow)
        allowed.append(ext.extract_date.date())
        cfg = getattr(ext, "config", None)
        if cfg is not None:
            for section, key in (("cohort", "entry_from"), ("cohort", "entry_to"), ("data", "extract_date")):
                value = cfg.get(section, {}).get(key)
                if isinstance(value, date):
                    allowed.append(value)
            if cfg.get("seed") is not None:
                allowed.append(str(cfg["seed"]))
        id_arrays = {kind: np.concatenate(parts) for kind, parts in ids.items()}
        guard = cls(
            child_ids=id_arrays.pop(CHILD_ID, ()),
            family_ids=id_arrays.pop(FAMILY_ID, ()),
            report_ids=id_arrays.pop(REPORT_ID, ()),
            extra_ids=id_arrays,
            birth_dates=dates,
            allow=allowed,
            min_numeric_digits=min_numeric_digits,
            min_token_length=min_token_length,
        )
        cache[cache_key] = guard
        return guard

    def with_provenance(self, labels: Mapping[str, Iterable[Any]]) -> IdentifierGuard:
        """A copy of this guard that knows which published phrases are values of
        non-identifying columns (see "Provenance of published labels" in the class notes).

        Parameters
        ----------
        labels : dict of source -> iterable of str
            Per source (the column a label's value comes from, such as ``"county"``, or
            ``"config"`` for the config's own settings), the phrases exactly as published
            (``"county_19013"``, ``"County: 19013"``). Phrases without a number of at least
            ``min_numeric_digits`` digits cannot be mistaken for ids and are dropped;
            phrases of numbers only carry no context and are dropped too.

        Returns
        -------
        IdentifierGuard
            A new guard (this one, which :meth:`from_extract` caches, is unchanged) with
            these labels added to any it already knew.

        Raises
        ------
        ValueError
            When a source is an identifying column: its values are ids, not labels.

        Examples
        --------
        >>> g = IdentifierGuard(child_ids=["19013", "18650"])
        >>> p = g.with_provenance({"county": ["county_19013", "County: 19013"]})
        >>> [f.kind for f in p.scan_text("<td>county_19013</td> <!-- County: 19013 -->", "report.html")]
        []
        >>> [str(f) for f in p.scan_text("county_19013\\nthe served child 19013 went home", "captions.txt")]
        ['captions.txt, line 2: child id']
        >>> [f.kind for f in g.scan_text("county_19013", "table1.csv")]
        ['child id']
        >>> g.with_provenance({"child_id": ["child 19013"]})
        Traceback (most recent call last):
        ...
        ValueError: 'child_id' is an identifying column: its values are ids, not labels
        """
        phrases = set(self._labels)
        for source, values in labels.items():
            if _is_id_field(source):
                raise ValueError(f"{str(source)!r} is an identifying column: its values are ids, not labels")
            if isinstance(values, str):
                values = [values]
            for value in values:
                tokens = tuple(_TOKEN.findall(str(value).lower()))
                if not any(t.isdigit() and len(t) >= self.min_numeric_digits for t in tokens):
                    continue  # nothing in it is looked for as a numeric id
                if all(t.isdigit() for t in tokens):
                    continue  # a bare number: no context tells it from an id
                phrases.add(tokens)
        new = copy.copy(self)  # shares the id tables (they are never modified)
        new._labels = frozenset(phrases)
        new._label_re = _label_pattern(new._labels)
        return new

    def __repr__(self) -> str:
        # Never the values: a repr ends up in logs and tracebacks.
        return f"IdentifierGuard({self._n_ids} ids, {len(self._dates)} birth dates)"

    # -- low level -----------------------------------------------------------------------

    def _scan_free(self, text: str, emit: Callable[[str, int], None], *, numeric_ids: bool = True,
                   spans: list[tuple[int, int, str]] | None = None, dates: bool = True) -> None:
        """Find ids (as tokens) and birth dates in free text; ``emit(kind, offset)``.

        ``spans``, when given, also receives ``(start, end, kind)`` of every match.
        """
        low = text.lower()
        label_spans: tuple[list[int], list[int]] | None = None  # found on the first numeric hit
        if self._first:
            for m in _TOKEN.finditer(low):
                entries = self._first.get(m.group())
                if not entries:
                    continue
                for form, offset, kinds, numeric in entries:
                    if numeric and not numeric_ids:
                        continue
                    start = m.start() - offset
                    if start < 0 or not low.startswith(form, start):
                        continue
                    end = start + len(form)
                    if (start > 0 and low[start - 1] in _ALNUM) or (end < len(low) and low[end] in _ALNUM):
                        continue
                    if numeric and start >= 2 and low[start - 1] == "." and low[start - 2].isdigit():
                        continue  # the decimals of a number, not an id
                    if low[start:end] in self._allow_tokens:
                        continue
                    if numeric and self._label_re is not None:
                        if label_spans is None:
                            label_spans = _label_spans(self._label_re, low)
                        if _covered(label_spans, start, end):
                            continue  # a token of a declared label (a county code in Table 1)
                    for kind in sorted(kinds):
                        emit(kind, start)
                        if spans is not None:
                            spans.append((start, end, kind))
        if self._dates and dates:
            for pattern, form in _DATE_PATTERNS:
                for m in pattern.finditer(low):
                    d = _match_date(m, form)
                    if d is not None and d in self._dates and m.group(0).strip() not in self._allow_tokens:
                        emit(BIRTH_DATE, m.start())
                        if spans is not None:
                            spans.append((m.start(), m.end(), BIRTH_DATE))

    def _text_findings(self, text: str, where: str, out: _Collector, *, part: str | None = None,
                       lines: bool = True, column: str | None = None, numeric_ids: bool = True) -> None:
        newlines: list[int] | None = None

        def emit(kind: str, offset: int) -> None:
            nonlocal newlines
            line = None
            if lines:
                if newlines is None:
                    newlines = [i for i, ch in enumerate(text) if ch == "\n"]
                line = bisect.bisect_left(newlines, offset) + 1
            out.add(Finding(where, kind, line, column, part))

        self._scan_free(text, emit, numeric_ids=numeric_ids)

    def _safe_name(self, name: Any) -> str:
        """A column/key name for a message, or ``"*"`` when the name itself identifies."""
        text = str(name)
        hits: list[str] = []
        self._scan_free(text, lambda kind, _o: hits.append(kind))
        if hits or _norm_id(text) in self._field_ids:
            return "*"
        return text

    def _cells_findings(self, name: Any, cells: Sequence[Any], where: str, out: _Collector,
                        *, line_of: Sequence[int | None] | None = None, part: str | None = None,
                        label: str | None = None) -> None:
        """One column of a structured output (CSV column, DataFrame column, JSON key).

        ``line_of[i]`` is the line (or row) of cell ``i``; default ``i + 1``.
        """
        if label is None:
            label = self._safe_name(name)
        id_field = _is_id_field(name)

        def line(i: int) -> int | None:
            return line_of[i] if line_of is not None else i + 1

        texts: list[str] = []
        text_rows: list[int] = []
        numbers_: list[str] = []
        number_rows: list[int] = []
        for i, v in enumerate(cells):
            if _is_missing(v):
                continue
            if isinstance(v, (pd.Timestamp, datetime, date)):
                if pd.Timestamp(v).date() in self._dates:
                    out.add(Finding(where, BIRTH_DATE, line(i), label, part))
                continue
            is_number = isinstance(v, (numbers.Number, np.number)) and not isinstance(v, (bool, np.bool_))
            s = _id_text(v) if is_number else str(v)
            if id_field:
                kinds = self._field_ids.get(_norm_id(s))
                if kinds and s.strip().lower() not in self._allow_tokens:
                    for kind in sorted(kinds):
                        out.add(Finding(where, kind, line(i), label, part))
            if is_number or _NUMBER_CELL.fullmatch(s.strip()):
                numbers_.append(s)
                number_rows.append(i)
            else:
                texts.append(s)
                text_rows.append(i)
        # A number outside an id field is a count or a statistic: it is never compared with
        # numeric ids (a count of 104233 days is not an id), but may be a YYYYMMDD date.
        for strings, rows, numeric_ids in ((texts, text_rows, True), (numbers_, number_rows, False)):
            if not strings:
                continue
            joined = "\n".join(strings)
            starts = list(itertools.accumulate((len(s) + 1 for s in strings[:-1]), initial=0))

            def emit(kind: str, offset: int, starts: list[int] = starts, rows: list[int] = rows) -> None:
                out.add(Finding(where, kind, line(rows[bisect.bisect_right(starts, offset) - 1]), label, part))

            self._scan_free(joined, emit, numeric_ids=numeric_ids)

    # -- public scanning -----------------------------------------------------------------

    def scan_text(self, text: str, where: str) -> list[Finding]:
        """Findings in free text (a caption, a log, an HTML page, a chart label).

        Examples
        --------
        >>> g = IdentifierGuard(family_ids=["F-0042"])
        >>> [f.kind for f in g.scan_text("siblings of F-0042", "log")]
        ['family id']
        """
        out = _Collector()
        self._text_findings(text, where, out)
        return out.items

    def scan_frame(self, df: pd.DataFrame, where: str) -> list[Finding]:
        """Findings in a table about to be published (column names, index and cells).

        ``line`` is the 1-based row position. Id-like columns are checked by exact match
        for ids of every length; see the class notes.

        Examples
        --------
        >>> g = IdentifierGuard(child_ids=["12"])
        >>> [str(f) for f in g.scan_frame(pd.DataFrame({"child_id": ["12"], "n": [12]}), "t.csv")]
        ["t.csv, line 1, column 'child_id': child id"]
        """
        out = _Collector()
        for name in df.columns:
            self._text_findings(str(name), where, out, part="column names", lines=False)
        if not isinstance(df.index, pd.RangeIndex):
            index_name = df.index.name if df.index.name is not None else "index"
            self._cells_findings(index_name, list(df.index), where, out)
        for j, name in enumerate(df.columns):
            self._cells_findings(name, df.iloc[:, j].tolist(), where, out)
        return out.items

    def scan_bytes(self, data: bytes, where: str) -> list[Finding]:
        """Findings in a file's bytes; the format is taken from ``where``'s suffix and the
        content (text, CSV, JSON, HTML/SVG, PNG, PDF, zip, gzip, other binary)."""
        out = _Collector()
        self._scan_payload(data, where, out, part=None, depth=0)
        return out.items

    def scan_file(self, path: str | Path, where: str | None = None) -> list[Finding]:
        """Findings in one file (``where`` defaults to the path)."""
        p = Path(path)
        return self.scan_bytes(p.read_bytes(), where or str(p))

    def scan_dir(self, path: str | Path) -> list[Finding]:
        """Findings in every file below ``path`` (sorted; ``where`` is the relative path).

        Examples
        --------
        >>> import tempfile
        >>> g = IdentifierGuard(child_ids=["C000123"])
        >>> with tempfile.TemporaryDirectory() as d:
        ...     _ = (Path(d) / "tables").mkdir()
        ...     _ = (Path(d) / "tables" / "t.csv").write_text("child_id,n\\nC000123,4\\n")
        ...     [str(f) for f in g.scan_dir(d)]
        ["tables/t.csv, line 2, column 'child_id': child id"]
        """
        root = Path(path)
        findings: list[Finding] = []
        for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
            dirnames.sort()
            for name in sorted(filenames):
                p = Path(dirpath) / name
                if p.is_symlink() or not p.is_file():
                    continue
                findings.extend(self.scan_file(p, p.relative_to(root).as_posix()))
        return findings

    def redact(self, text: str, *, dates: bool = True) -> str:
        """``text`` with every id replaced by ``[child id]`` (etc.) and, with ``dates``, every
        birth date by ``[birth date]``: for messages and logs, which must never repeat one.

        Ids are matched as in free text (see the class notes: purely numeric ids only from
        ``min_numeric_digits`` digits). Pass ``dates=False`` where dates of other kinds are
        expected (a validation message quoting a removal date).

        Examples
        --------
        >>> g = IdentifierGuard(child_ids=["C000123"], family_ids=["F0042"], birth_dates=["2015-03-04"])
        >>> g.redact("siblings differ (e.g. family F0042); child C000123 born 2015-03-04")
        'siblings differ (e.g. family [family id]); child [child id] born [birth date]'
        >>> g.redact("removed 2015-03-04", dates=False)
        'removed 2015-03-04'
        """
        spans: list[tuple[int, int, str]] = []
        self._scan_free(text, lambda _k, _o: None, spans=spans, dates=dates)
        if not spans:
            return text
        out: list[str] = []
        pos = 0
        for start, end, kind in sorted(spans, key=lambda x: (x[0], -x[1])):
            if start < pos:  # overlaps a span already replaced
                continue
            out.append(text[pos:start])
            out.append(f"[{kind}]")
            pos = end
        out.append(text[pos:])
        return "".join(out)

    def check_text(self, text: str, where: str) -> None:
        """Raise :class:`PrivacyError` if ``text`` contains an identifier."""
        _raise(self.scan_text(text, where))

    def check_frame(self, df: pd.DataFrame, where: str) -> None:
        """Raise :class:`PrivacyError` if a table contains an identifier."""
        _raise(self.scan_frame(df, where))

    def check_bytes(self, data: bytes, where: str) -> None:
        """Raise :class:`PrivacyError` if a file's bytes contain an identifier."""
        _raise(self.scan_bytes(data, where))

    def check_dir(self, path: str | Path) -> None:
        """Raise :class:`PrivacyError` if any file below ``path`` contains an identifier."""
        _raise(self.scan_dir(path))

    # -- formats -------------------------------------------------------------------------

    def _scan_payload(self, data: bytes, where: str, out: _Collector, part: str | None, depth: int) -> None:
        suffix = Path(where if part is None else part).suffix.lower()
        if data.startswith(b"\x89PNG\r\n\x1a\n"):
            self._scan_png(data, where, out, part)
            return
        if data.startswith(b"%PDF"):
            self._scan_pdf(data, where, out, part)
            return
        if data.startswith(b"PK\x03\x04") and depth < 3:
            self._scan_zip(data, where, out, depth)
            return
        if data.startswith(b"\x1f\x8b") and depth < 3:
            try:
                inner = _bounded_gunzip(data)
            except (OSError, EOFError, zlib.error, ValueError):
                inner = None
            if inner is not None:
                self._scan_payload(inner, where, out, (part or Path(where).name).removesuffix(".gz"), depth + 1)
                return
        text = _decode_text(data)
        if text is None:
            for run in re.findall(rb"[\x20-\x7e\t\r\n]{4,}", data):
                self._text_findings(run.decode("ascii"), where, out, part=part or "binary", lines=False)
            return
        if suffix in (".csv", ".tsv"):
            self._scan_csv(text, where, out, part, delimiter="\t" if suffix == ".tsv" else ",")
        elif suffix in (".json", ".geojson", ".ipynb"):
            self._scan_json(text, where, out, part)
        elif suffix in (".html", ".htm", ".svg", ".xml", ".xhtml") or text.lstrip()[:1] == "<":
            self._scan_markup(text, where, out, part, depth)
        else:
            self._text_findings(text, where, out, part=part)

    def _scan_markup(self, text: str, where: str, out: _Collector, part: str | None, depth: int) -> None:
        images: list[tuple[str, bytes]] = []

        def cut(m: re.Match[str]) -> str:
            # Base64 payloads are decoded and scanned as files; left in place they would be
            # scanned as random letters and digits.
            try:
                images.append((m.group(1) or "data", base64.b64decode(re.sub(r"\s+", "", m.group(3)), validate=False)))
            except ValueError:
                pass
            return "data:" + " " * (len(m.group(0)) - 5)  # keep offsets (and so line numbers)

        stripped = _DATA_URI.sub(cut, text)
        self._text_findings(stripped, where, out, part=part)
        unescaped = html.unescape(stripped)
        if unescaped != stripped:
            # Entities (&#67;000123) hide a token from the plain scan; report only what the
            # plain scan did not already find.
            found = {f.kind for f in out.items if f.where == where}
            extra = _Collector()
            self._text_findings(unescaped, where, extra, part=part or "decoded entities", lines=False)
            for f in extra.items:
                if f.kind not in found:
                    out.add(f)
        for k, (mime, payload) in enumerate(images, start=1):
            ext = {"image/png": ".png", "image/svg+xml": ".svg", "application/pdf": ".pdf", "text/csv": ".csv",
                   "application/json": ".json", "text/html": ".html"}.get(mime.lower(), ".bin")
            if depth < 3:
                self._scan_payload(payload, where, out, f"embedded {mime} #{k}{ext}", depth + 1)

    def _scan_csv(self, text: str, where: str, out: _Collector, part: str | None, delimiter: str) -> None:
        try:
            rows = []
            reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
            line_numbers = []
            start = 1
            for row in reader:
                rows.append(row)
                line_numbers.append(start)
                start = reader.line_num + 1
        except csv.Error:
            self._text_findings(text, where, out, part=part)
            return
        if not rows:
            return
        header = rows[0]
        for name in header:
            hits = _Collector()
            self._text_findings(name, where, hits, part=part, lines=False)
            for f in hits.items:  # an identifying column name: say where, not what
                out.add(Finding(where, f.kind, line_numbers[0], "*", part))
        width = max(len(r) for r in rows)
        for j in range(width):
            name = header[j] if j < len(header) else f"#{j + 1}"
            cells = [r[j] if j < len(r) else None for r in rows[1:]]
            self._cells_findings(name, cells, where, out, line_of=line_numbers[1:], part=part)

    def _scan_json(self, text: str, where: str, out: _Collector, part: str | None) -> None:
        try:
            obj = json.loads(text)
        except ValueError:
            self._text_findings(text, where, out, part=part)
            return

        def walk(node: Any, key: Any, path: str) -> None:
            if isinstance(node, dict):
                for k, v in node.items():
                    self._text_findings(str(k), where, out, part=part, lines=False, column=path or None)
                    walk(v, k, f"{path}.{self._safe_name(k)}" if path else self._safe_name(k))
            elif isinstance(node, list):
                for v in node:
                    walk(v, key, path)
            elif node is not None and not isinstance(node, bool):
                # The JSON path (keys that identify replaced by "*") locates the value.
                self._cells_findings(key if key is not None else "", [node], where, out, line_of=[None],
                                     part=part, label=path or None)

        walk(obj, None, "")

    def _scan_png(self, data: bytes, where: str, out: _Collector, part: str | None) -> None:
        pos = 8
        prefix = f"{part}: " if part else ""
        while pos + 8 <= len(data):
            length = int.from_bytes(data[pos:pos + 4], "big")
            ctype = data[pos + 4:pos + 8]
            body = data[pos + 8:pos + 8 + length]
            pos += 12 + length
            if ctype == b"IEND":
                break
            try:
                if ctype == b"tEXt":
                    key, _, value = body.partition(b"\0")
                    text = key.decode("latin-1") + "\n" + value.decode("latin-1")
                elif ctype == b"zTXt":
                    key, _, rest = body.partition(b"\0")
                    text = key.decode("latin-1") + "\n" + _bounded_inflate(rest[1:]).decode("latin-1")
                elif ctype == b"iTXt":
                    key, _, rest = body.partition(b"\0")
                    compressed, _method = rest[0], rest[1]
                    _lang, _, rest = rest[2:].partition(b"\0")
                    translated, _, value = rest.partition(b"\0")
                    if compressed:
                        value = _bounded_inflate(value)
                    text = "\n".join(x.decode("utf-8", "replace") for x in (key, translated, value))
                elif ctype == b"eXIf":
                    text = "\n".join(r.decode("ascii") for r in re.findall(rb"[\x20-\x7e]{4,}", body))
                else:
                    continue
            except (IndexError, zlib.error, ValueError):
                text = body.decode("latin-1")
            self._text_findings(text, where, out, part=f"{prefix}PNG {ctype.decode('latin-1')} chunk", lines=False)
        trailing = data[pos:]  # bytes after IEND are ignored by viewers but still published
        if trailing:
            text = "\n".join(r.decode("ascii") for r in re.findall(rb"[\x20-\x7e\t\r\n]{4,}", trailing))
            self._text_findings(text, where, out, part=f"{prefix}PNG trailing bytes", lines=False)

    def _scan_pdf(self, data: bytes, where: str, out: _Collector, part: str | None) -> None:
        prefix = f"{part}: " if part else ""
        pieces: list[tuple[str, str]] = []
        outside = bytearray()
        last = 0
        for m in re.finditer(rb"stream\r?\n", data):
            start = m.end()
            end = data.find(b"endstream", start)
            if end < 0:
                break
            if m.start() < last:
                continue
            outside += data[last:m.start()]
            head = data[max(0, m.start() - 1024):m.start()]
            head = head[head.rfind(b"obj") + 3:] if b"obj" in head else head
            raw = data[start:end]
            last = end + len(b"endstream")
            if b"/Image" in head or b"/FontFile" in head or b"/Length1" in head:
                continue  # pixels and fonts: no text, and random bytes would be noise
            if b"/FlateDecode" in head:
                try:
                    raw = _bounded_inflate(raw)
                except (zlib.error, ValueError):
                    continue
            if b"<x:xmpmeta" in raw or b"<?xpacket" in raw:
                pieces.append(("PDF metadata", raw.decode("utf-8", "replace")))
            elif re.search(rb"\bT[Jj]\b", raw):
                pieces.append(("PDF page text", "\n".join(_pdf_strings(raw))))
        outside += data[last:]
        pieces.append(("PDF strings", "\n".join(_pdf_strings(bytes(outside)))))
        for label, text in pieces:
            self._text_findings(text, where, out, part=prefix + label, lines=False)

    def _scan_zip(self, data: bytes, where: str, out: _Collector, depth: int) -> None:
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                budget = _MAX_INFLATE
                for info in zf.infolist():
                    if info.is_dir() or info.file_size > budget:
                        continue
                    budget -= info.file_size
                    self._scan_payload(zf.read(info), where, out, info.filename, depth + 1)
        except (zipfile.BadZipFile, OSError, ValueError):
            self._text_findings(data.decode("latin-1"), where, out, part="zip", lines=False)


def _raise(findings: list[Finding]) -> None:
    if not findings:
        return
    by_where: dict[str, list[Finding]] = {}
    for f in findings:
        by_where.setdefault(f.where, []).append(f)
    parts = []
    for where, items in by_where.items():
        kinds = sorted({f.kind for f in items})
        locs = []
        for f in items[:5]:
            loc = []
            if f.part:
                loc.append(f.part)
            if f.line is not None:
                loc.append(f"line {f.line}")
            if f.column is not None:
                loc.append(f"column {f.column!r}")
            if loc:
                locs.append(", ".join(loc))
        more = f" and {len(items) - 5} more" if len(items) > 5 else ""
        where_txt = f" ({'; '.join(dict.fromkeys(locs))}{more})" if locs else ""
        kind_txt = " and ".join(f"a {k}" for k in kinds)
        parts.append(f"{where}: refusing to publish: it contains {kind_txt} from the extract{where_txt}")
    raise PrivacyError("\n".join(parts), findings)


def _label_pattern(labels: Iterable[tuple[str, ...]]) -> re.Pattern[str] | None:
    """One pattern for every declared label (token tuples, lower-case); None for none.

    Longer labels come first, so of two labels starting at one place the longer is found.
    Each token must be a whole token of the text (no letter or digit either side).
    """
    ordered = sorted(labels, key=lambda t: (-sum(map(len, t)) - len(t), t))
    if not ordered:
        return None
    alternatives = "|".join(_LABEL_SEP.join(map(re.escape, tokens)) for tokens in ordered)
    return re.compile(r"(?<![a-z0-9])(?:" + alternatives + r")(?![a-z0-9])")


def _label_spans(pattern: re.Pattern[str], low: str) -> tuple[list[int], list[int]]:
    """Starts of every occurrence of a declared label in ``low`` (overlapping ones too,
    in order) and the running maximum of their ends."""
    starts: list[int] = []
    ends: list[int] = []
    pos = 0
    while (m := pattern.search(low, pos)) is not None:
        starts.append(m.start())
        ends.append(m.end() if not ends else max(ends[-1], m.end()))
        pos = m.start() + 1
    return starts, ends


def _covered(spans: tuple[list[int], list[int]], start: int, end: int) -> bool:
    """True when ``[start, end)`` lies inside one label occurrence of ``spans``."""
    starts, ends = spans
    i = bisect.bisect_right(starts, start) - 1
    return i >= 0 and ends[i] >= end


def _id_text(value: Any) -> str:
    """An id as text: trimmed; a whole float loses its ``.0`` (ids read as numbers)."""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value).strip()


def _id_tables(
    groups: Mapping[str, Iterable[Any]], allow_tokens: set[str], min_numeric_digits: int, min_token_length: int,
) -> tuple[int, dict[str, frozenset[str]], dict[str, list[tuple[str, int, frozenset[str], bool]]]]:
    """The id tables of :class:`IdentifierGuard`: number of ids, exact-match table, token index.

    Built with array operations (an extract has millions of ids): the same tables as a loop
    over every id, ``_first`` lists in the order of the ids. Python loops only run over the
    ids that share a first token or a normal form with another id.
    """
    kind_names = list(groups)
    with _gc_paused():  # millions of new objects, none in a cycle: the collector only costs time
        arrays = [_object_array(ids) for ids in groups.values()]
        raw = np.concatenate(arrays) if arrays else np.empty(0, dtype=object)
        kind_of = np.repeat(np.arange(len(arrays)), [len(a) for a in arrays])
        # Every id as text, lower-case (strings are normalised once per distinct value).
        joined = _joined(raw)
        if joined is not None:  # nothing but strings
            raw_codes, raw_uniq = _factorize(raw, joined)
            text = _each(str.lower, _each(str.strip, raw_uniq))
        else:  # e.g. 1, 1.0 and True are equal but turn into different texts
            raw_codes, text = np.arange(len(raw)), _ids_lower(raw)
        # distinct ids in order of first appearance, without empty and allowed ones
        drop = text == ""
        if allow_tokens:
            drop |= np.fromiter(map(allow_tokens.__contains__, text.tolist()), dtype=bool, count=len(text))
        text[drop] = None  # factorize: code -1
        text_codes, ids = _factorize(text, _joined(text))
        codes = text_codes[raw_codes]
        found = codes >= 0
        codes, kind_of = codes[found], kind_of[found]
        member = np.zeros((len(ids), len(kind_names)), dtype=bool)
        member[codes, kind_of] = True
        kinds = _kind_sets(member, kind_names)

        numeric = _each(str.isdigit, ids).astype(bool)
        ascii_ = np.full(len(ids), "".join(ids.tolist()).isascii()) if len(ids) else np.zeros(0, dtype=bool)
        if not ascii_.all():
            ascii_ = _each(str.isascii, ids).astype(bool)

        # Exact-match table for id fields: every id, normalised (_norm_id) when it starts
        # with a digit or a sign.
        normal = numeric.copy()
        rest = np.flatnonzero(~numeric)
        if len(rest):
            head = _each(operator.itemgetter(0), ids[rest])
            normal[rest] = _each(str.isdigit, head).astype(bool) | (head == "+") | (head == "-")
        keys = ids.copy()
        keys[normal] = _norm_ids(ids[normal], numeric[normal] & ascii_[normal])
        key_list = keys.tolist()
        field_ids = dict(zip(key_list, kinds.tolist(), strict=True))
        if len(field_ids) < len(key_list):  # ids with one normal form ("00123", "123"): all their kinds
            last = dict(zip(key_list, itertools.count()))  # each key's last id
            rows = np.fromiter(map(last.__getitem__, key_list), dtype=np.intp, count=len(key_list))
            earlier = rows != np.arange(len(key_list))
            for key, more_kinds in zip(keys[earlier].tolist(), kinds[earlier].tolist(), strict=True):
                field_ids[key] = field_ids[key] | more_kinds

        # Token index for free text: first alphanumeric run -> [(id, offset of that run, kinds,
        # numeric)...]. Numeric ids of at least min_numeric_digits digits, as written and
        # without leading zeros; other ids of at least min_token_length characters.
        length = _each(len, ids).astype(np.int64)
        pos = np.flatnonzero(np.where(numeric, length >= min_numeric_digits, length >= min_token_length))
        num_pos = pos[numeric[pos]]
        stripped = _lstrip_zeros(ids[num_pos])
        more = (_each(len, stripped).astype(np.int64) >= min_numeric_digits) & (stripped != ids[num_pos])
        forms = np.concatenate([ids[pos], stripped[more]])
        pos = np.concatenate([pos, num_pos[more]])
        order = np.argsort(pos, kind="stable")  # ids in order, each as written then stripped
        forms, pos = forms[order], pos[order]
        # a form of ASCII letters and digits (lower-case) is its own first token; stripping
        # the zeros of such an id leaves one
        simple = ascii_[pos]
        if not "".join(forms[simple].tolist()).isalnum():
            simple[simple] = _each(str.isalnum, forms[simple]).astype(bool)
        tokens, offsets = _first_tokens(forms, simple)
        found = tokens != None  # noqa: E711 (elementwise on an object array)
        forms, pos, tokens, offsets = forms[found], pos[found], tokens[found], offsets[found]
        entries = zip(forms.tolist(), offsets.tolist(), kinds[pos].tolist(), numeric[pos].tolist(), strict=True)
        lists = list(map(list, zip(entries)))  # [entry] per form, ids in order
        token_list = tokens.tolist()
        first = dict(zip(token_list, lists, strict=True))
        if len(first) < len(token_list):  # tokens that start several forms: one list of them all
            kept = np.fromiter(map(operator.is_, map(first.__getitem__, token_list), lists), dtype=bool,
                               count=len(lists))
            shared_tokens = set(itertools.compress(token_list, ~kept))
            shared = np.fromiter(map(shared_tokens.__contains__, token_list), dtype=bool, count=len(lists))
            grouped: dict[str, list[tuple[str, int, frozenset[str], bool]]] = {}
            # the one pass in Python, over the forms of shared tokens only
            for token, (entry,) in zip(itertools.compress(token_list, shared), itertools.compress(lists, shared),
                                       strict=True):
                grouped.setdefault(token, []).append(entry)
            first.update(grouped)
    return len(ids), field_ids, first


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _joined(values: np.ndarray) -> str | None:
    """The elements of an object array joined, or ``None`` unless they are all strings."""
    try:
        return "".join(values.tolist())
    except TypeError:
        return None


def _factorize(values: np.ndarray, joined: str | None) -> tuple[np.ndarray, np.ndarray]:
    """``pd.factorize`` of an object array (``None``: code -1), by Python's equality;
    ``joined`` is :func:`_joined` of the array.

    pandas compares an array of nothing but strings as UTF-8 C strings: a NUL ends a
    string there, and lone surrogates are mangled (``"a\\x00b"`` would equal ``"a\\x00c"``).
    """
    if joined is not None and ("\x00" in joined or not (joined.isascii() or _utf8_ok(joined))):
        items = values.tolist()
        index = dict(zip(dict.fromkeys(items), itertools.count()))
        codes = np.fromiter(map(index.__getitem__, items), dtype=np.intp, count=len(items))
        return codes, np.fromiter(index, dtype=object, count=len(index))
    codes, uniq = pd.factorize(values)
    return codes, np.asarray(uniq, dtype=object)


def _utf8_ok(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _each(func: Callable[[Any], Any], values: np.ndarray) -> np.ndarray:
    """``func`` (a builtin: ``str.strip``, ``len``...) on every element of an object array."""
    return np.frompyfunc(func, 1, 1)(values) if len(values) else np.empty(0, dtype=object)


def _object_array(values: Iterable[Any]) -> np.ndarray:
    """The elements ``for v in values`` yields, as a 1-d object array."""
    if isinstance(values, np.ndarray) and values.dtype == object and values.ndim == 1:
        return values
    items = values if isinstance(values, list) else list(values)
    return np.fromiter(items, dtype=object, count=len(items))


def _ids_lower(values: np.ndarray) -> np.ndarray:
    """``(v.strip() if isinstance(v, str) else _id_text(v)).lower()`` for every element."""
    if len(values) == 0:
        return np.empty(0, dtype=object)
    type_codes, types = pd.factorize(_each(type, values))
    is_str = np.array([issubclass(t, str) for t in types])[type_codes]
    is_float = np.array([issubclass(t, (float, np.floating)) for t in types])[type_codes]
    text = np.empty(len(values), dtype=object)
    text[is_str] = _each(str.strip, values[is_str])
    floats = values[is_float]
    as_float = floats.astype(np.float64)  # float(v), as in _id_text
    whole = np.isfinite(as_float) & (np.floor(as_float) == as_float)
    float_text = np.empty(len(floats), dtype=object)
    float_text[whole] = _each(str, _each(int, floats[whole]))
    float_text[~whole] = _each(str.strip, _each(str, floats[~whole]))
    text[is_float] = float_text
    other = ~(is_str | is_float)
    text[other] = _each(str.strip, _each(str, values[other]))
    return _each(str.lower, text)


def _lstrip_zeros(values: np.ndarray) -> np.ndarray:
    return np.frompyfunc(str.lstrip, 2, 1)(values, "0") if len(values) else np.empty(0, dtype=object)


def _norm_ids(values: np.ndarray, plain: np.ndarray) -> np.ndarray:
    """:func:`_norm_id` of stripped lower-case strings (``strip().lower()`` leaves them as
    they are); ``plain`` marks those of ASCII digits only."""
    out = _lstrip_zeros(values)
    out[plain & (out == "")] = "0"
    idx = np.flatnonzero(~plain)
    if len(idx):  # a sign, decimals or other digits
        idx = idx[_each(_INTEGRAL.fullmatch, values[idx]).astype(bool)]
        out[~plain] = values[~plain]
        digits = pd.Series(values[idx], dtype=object).str.split(".", n=1, regex=False).str[0].str.lstrip("+")
        negative = digits.str.startswith("-").to_numpy(dtype=bool)
        digits = digits.str.lstrip("-").str.lstrip("0").to_numpy(dtype=object)
        zero = digits == ""
        digits[negative & ~zero] = "-" + digits[negative & ~zero]
        digits[zero] = "0"
        out[idx] = digits
    return out


def _first_tokens(forms: np.ndarray, simple: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``_TOKEN.search(form)`` of every form: its text (``None`` when there is none) and
    start; ``simple`` marks forms known to be a token as a whole."""
    tokens = forms.copy()
    offsets = np.zeros(len(forms), dtype=np.int64)
    idx = np.flatnonzero(~simple)
    if len(idx):
        matches = _each(_TOKEN.search, forms[idx])
        hit = matches.astype(bool)
        tokens[idx[~hit]] = None
        tokens[idx[hit]] = _each(re.Match.group, matches[hit])
        offsets[idx[hit]] = _each(re.Match.start, matches[hit]).astype(np.int64)
    return tokens, offsets


def _kind_sets(member: np.ndarray, names: Sequence[str]) -> np.ndarray:
    """Row ``i`` of a boolean (ids x kinds) matrix as the frozenset of its kind names."""
    out = np.empty(len(member), dtype=object)
    if len(member) == 0:
        return out
    packed = np.packbits(member, axis=1, bitorder="little")
    if packed.shape[1] <= 8:  # up to 64 kinds: one integer per row
        bits = np.zeros((len(packed), 8), dtype=np.uint8)
        bits[:, : packed.shape[1]] = packed
        inverse, combos = pd.factorize(bits.view(np.uint64).reshape(-1))
        rows = [np.unpackbits(np.array([c], dtype=np.uint64).view(np.uint8), bitorder="little") for c in combos]
    else:
        uniq, inverse = np.unique(packed, axis=0, return_inverse=True)
        rows = [np.unpackbits(c, bitorder="little") for c in uniq]
    sets = np.empty(len(rows), dtype=object)
    for i, row in enumerate(rows):
        sets[i] = frozenset(names[j] for j in np.flatnonzero(row[: len(names)]))
    out[:] = sets[np.asarray(inverse).reshape(-1)]
    return out


def _birth_date_set(values: Iterable[Any]) -> set[date]:
    """The distinct calendar days of date-like values (unparseable ones are skipped)."""
    if isinstance(values, (pd.Series, pd.Index)) and pd.api.types.is_datetime64_dtype(values.dtype):
        # already dates (as from_extract passes them): no parsing, one date object per day
        return set(pd.Series(values.to_numpy()).dropna().dt.normalize().drop_duplicates().dt.date)
    parsed = pd.to_datetime(pd.Series(list(values), dtype=object), errors="coerce", format="mixed").dropna()
    return set(parsed.dt.date.unique())


def _match_date(m: re.Match[str], form: str) -> date | None:
    g = m.groups()
    if form == "ymd":
        return _to_date(int(g[0]), int(g[2]), int(g[3]))
    if form == "mdy":
        return _to_date(int(g[3]), int(g[0]), int(g[2]))
    if form == "compact":
        return _to_date(int(g[0]), int(g[1]), int(g[2]))
    if form == "month-day-year":
        month = _MONTHS.get(g[0])
        return _to_date(int(g[2]), month, int(g[1])) if month else None
    month = _MONTHS.get(g[1])
    return _to_date(int(g[2]), month, int(g[0])) if month else None


def _decode_text(data: bytes) -> str | None:
    """Text of a file, or None for binary content."""
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", "replace")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16", "replace")
    if b"\0" in data[:8192]:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    # Latin-1/cp1252 text (old exports): mostly printable bytes.
    sample = data[:8192]
    printable = sum(1 for b in sample if b >= 0x20 or b in (9, 10, 13))
    return data.decode("latin-1") if printable >= 0.95 * len(sample) else None


def _bounded_inflate(raw: bytes) -> bytes:
    d = zlib.decompressobj()
    out = d.decompress(raw, _MAX_INFLATE)
    if d.unconsumed_tail:
        raise ValueError("compressed data too large to scan")
    return out


def _bounded_gunzip(raw: bytes) -> bytes:
    with gzip.GzipFile(fileobj=io.BytesIO(raw)) as fh:
        out = fh.read(_MAX_INFLATE + 1)
    if len(out) > _MAX_INFLATE:
        raise ValueError("compressed data too large to scan")
    return out


def _pdf_decode(raw: bytes) -> str:
    if raw.startswith(b"\xfe\xff"):
        return raw[2:].decode("utf-16-be", "replace")
    return raw.decode("latin-1")


def _pdf_strings(buf: bytes) -> list[str]:
    """The string objects of a PDF fragment; strings inside one ``[...]`` array (a ``TJ``
    with kerning) are joined, since a writer may split a word there."""
    out: list[str] = []
    array: list[str] | None = None
    i, n = 0, len(buf)
    while i < n:
        c = buf[i]
        if c == 0x28:  # (
            depth, j, raw = 1, i + 1, bytearray()
            while j < n and depth:
                b = buf[j]
                if b == 0x5C and j + 1 < n:  # backslash escape
                    nxt = buf[j + 1]
                    if 0x30 <= nxt <= 0x37:
                        k = j + 1
                        digits = b""
                        while k < n and len(digits) < 3 and 0x30 <= buf[k] <= 0x37:
                            digits += bytes([buf[k]])
                            k += 1
                        raw.append(int(digits, 8) & 0xFF)
                        j = k
                        continue
                    raw += {ord("n"): b"\n", ord("r"): b"\r", ord("t"): b"\t", ord("b"): b"\b", ord("f"): b"\f"}.get(
                        nxt, bytes([nxt]) if nxt not in (0x0A, 0x0D) else b""
                    )
                    j += 2
                    continue
                if b == 0x28:
                    depth += 1
                elif b == 0x29:
                    depth -= 1
                    if depth == 0:
                        break
                raw.append(b)
                j += 1
            s = _pdf_decode(bytes(raw))
            (array.append(s) if array is not None else out.append(s))
            i = j + 1
            continue
        if c == 0x3C:  # <
            if i + 1 < n and buf[i + 1] == 0x3C:
                i += 2
                continue
            j = buf.find(b">", i)
            if j < 0:
                break
            hexs = re.sub(rb"\s+", b"", buf[i + 1:j])
            if re.fullmatch(rb"[0-9A-Fa-f]*", hexs):
                if len(hexs) % 2:
                    hexs += b"0"
                s = _pdf_decode(bytes.fromhex(hexs.decode("ascii")))
                (array.append(s) if array is not None else out.append(s))
            i = j + 1
            continue
        if c == 0x5B:  # [
            array = []
        elif c == 0x5D and array is not None:  # ]
            out.append("".join(array))
            array = None
        i += 1
    if array:
        out.append("".join(array))
    return out


# ---------------------------------------------------------------------------------------
# Pseudonymised export
# ---------------------------------------------------------------------------------------

#: Shortest key accepted by :func:`pseudonymise` (128 bits).
MIN_KEY_BYTES = 16
_DOMAIN = b"ppeval-pseudonym-v1\0"  # versioned, so a later scheme never collides with this one
_BIRTH_DATE_NAMES = frozenset({"birth_date", "birthdate", "dob", "date_of_birth"})


def _key_bytes(key: bytes | str) -> bytes:
    if isinstance(key, str):
        key = key.encode("utf-8")
    if not isinstance(key, (bytes, bytearray)):
        raise ConfigError("the pseudonymisation key must be bytes or text")
    if len(key) < MIN_KEY_BYTES:
        raise ConfigError(
            f"the pseudonymisation key is too short ({len(key)} bytes); use at least {MIN_KEY_BYTES} "
            "random bytes (e.g. python -c 'import secrets; print(secrets.token_hex(32))') and keep it secret"
        )
    if len(set(key)) < 4:
        raise ConfigError("the pseudonymisation key is not random enough (fewer than 4 distinct bytes)")
    return bytes(key)


def pseudonymise(
    df: pd.DataFrame,
    key: bytes | str,
    columns: Sequence[str] | None = None,
    *,
    length: int = 16,
    birth_dates: str = "year",
) -> pd.DataFrame:
    """Replace identifiers by keyed pseudonyms for the opt-in unit-level export.

    Each id becomes the first ``length`` hex digits of HMAC-SHA256(key, id): the same id
    and key always give the same pseudonym (tables still join; reruns are identical), and
    without the key nobody can recompute or test a guess. The hash depends on the value
    only, so a ``child_id`` links across tables. Missing ids stay missing. Birth dates are
    replaced by ``birth_year`` (``birth_dates="year"``) or dropped (``"drop"``); the
    loader's ``_source_file``/``_source_row`` columns are dropped, since they point back
    to a row of the agency's file. Other dates are kept: they are quasi-identifiers, and
    the export stays unit-level data under the data-use agreement.

    Parameters
    ----------
    df : DataFrame
    key : bytes or str
        Secret key, at least 16 bytes (refused otherwise: a short key can be brute-forced
        from the small space of agency ids). Keep it out of the config file.
    columns : sequence of str, optional
        Columns to pseudonymise; default every identifying id column present
        (``child_id``, ``family_id``, ``report_id``).
    length : int, default 16
        Hex digits kept (8 to 64); 16 = 64 bits.
    birth_dates : {"year", "drop"}

    Returns
    -------
    DataFrame
        A new frame; the input is not changed.

    Raises
    ------
    ConfigError
        For a missing, short or non-random key or a bad argument.
    PrivacyError
        When two different ids get the same pseudonym (use a larger ``length``).

    Examples
    --------
    >>> d = pd.DataFrame({"child_id": ["C1", "C2"], "birth_date": pd.to_datetime(["2015-03-04", "2016-01-01"])})
    >>> out = pseudonymise(d, key="a secret key of 32 characters!!!", length=12)
    >>> out.columns.tolist(), out["birth_year"].tolist()
    (['child_id', 'birth_year'], [2015, 2016])
    >>> len(out.loc[0, "child_id"])
    12
    """
    k = _key_bytes(key)
    if not 8 <= length <= 64:
        raise ConfigError("pseudonym length must be between 8 and 64 hex digits")
    if birth_dates not in ("year", "drop"):
        raise ConfigError(f"birth_dates must be 'year' or 'drop', got {birth_dates!r}")
    id_cols = {c.name for t in schema.TABLES.values() for c in t.columns if c.identifying and c.kind == "id"}
    cols = [c for c in df.columns if c in id_cols] if columns is None else list(columns)
    for c in cols:
        if c not in df.columns:
            raise ConfigError(f"column {c!r} to pseudonymise is not in the table")
    out = df.drop(columns=[c for c in (schema.SOURCE_FILE, schema.SOURCE_ROW) if c in df.columns])
    for c in cols:
        texts = [None if _is_missing(v) else _id_text(v) for v in out[c].tolist()]
        mapping: dict[str, str] = {}
        for t in set(x for x in texts if x is not None):
            mapping[t] = hmac.new(k, _DOMAIN + t.encode("utf-8"), hashlib.sha256).hexdigest()[:length]
        if len(set(mapping.values())) < len(mapping):
            raise PrivacyError(f"two different values of {c!r} got the same pseudonym; use a larger length")
        out[c] = pd.array([None if t is None else mapping[t] for t in texts], dtype="string")
    for c in [c for c in out.columns if str(c).lower() in _BIRTH_DATE_NAMES]:
        loc = out.columns.get_loc(c)
        years = pd.to_datetime(out[c], errors="coerce").dt.year.astype("Int64")
        out = out.drop(columns=[c])
        if birth_dates == "year" and "birth_year" not in out.columns:
            out.insert(loc, "birth_year", years)
    return out


# ---------------------------------------------------------------------------------------
# Atomic output
# ---------------------------------------------------------------------------------------

_TMP_TAG = ".ppeval-tmp-"
_OLD_TAG = ".ppeval-old-"
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _renameat2() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


_RENAMEAT2 = _renameat2()


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux ``renameat2(RENAME_EXCHANGE)``); False if the
    system or file system cannot, so the caller falls back to two renames."""
    if _RENAMEAT2 is None:
        return False
    rc = _RENAMEAT2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM):
        return False
    raise OSError(err, os.strerror(err), str(a))


def _fsync_path(path: Path, directory: bool = False) -> None:
    if os.name != "posix":
        return
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            p = Path(dirpath) / name
            if not p.is_symlink():
                _fsync_path(p)
        _fsync_path(Path(dirpath), directory=True)


def _pid_alive(pid: int) -> bool:
    if os.name != "posix":
        return True  # os.kill(pid, 0) would terminate a process on Windows: never clean up there
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _siblings(final: Path, tag: str) -> list[tuple[Path, int]]:
    """Leftovers ``.<name>.ppeval-tmp-<pid>-<hex>`` (or ``-old-``) next to ``final``, with pid."""
    prefix = f".{final.name}{tag}"
    out = []
    if not final.parent.is_dir():
        return out
    for p in final.parent.iterdir():
        if p.name.startswith(prefix):
            pid_text = p.name[len(prefix):].split("-", 1)[0]
            if pid_text.isdigit():
                out.append((p, int(pid_text)))
    return out


def recover_output_dir(final: str | Path) -> None:
    """Finish the clean-up of an output folder after a run was killed.

    Called by :func:`atomic_output_dir` before it starts; safe to call any time. Only
    leftovers of processes that are no longer running are touched:

    * if ``final`` is missing and a moved-aside previous output exists (a kill between the
      two renames of the fallback swap), the previous output is put back;
    * unfinished new outputs and moved-aside old ones are removed.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     recover_output_dir(Path(d) / "report")      # nothing to do
    """
    final = Path(final)
    olds = sorted(
        ((p, pid) for p, pid in _siblings(final, _OLD_TAG) if not _pid_alive(pid)),
        key=lambda x: x[0].stat().st_mtime_ns,
    )
    if olds and not final.exists() and not final.is_symlink():
        newest = olds.pop()[0]
        os.rename(newest, final)
    for p, _pid in olds:
        shutil.rmtree(p, ignore_errors=True)
    for p, pid in _siblings(final, _TMP_TAG):
        if not _pid_alive(pid):
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()


def _unique_sibling(final: Path, tag: str) -> Path:
    return final.parent / f".{final.name}{tag}{os.getpid()}-{secrets.token_hex(4)}"


@contextlib.contextmanager
def atomic_output_dir(final: str | Path, *, durable: bool = True) -> Iterator[Path]:
    """Write an output folder atomically: build it aside, then swap it into place.

    Yields a new empty folder next to ``final`` (``.<name>.ppeval-tmp-<pid>-<random>``, so
    the final rename stays on one file system). When the block ends without an exception,
    the folder replaces ``final``:

    * on Linux, in one step with ``renameat2(RENAME_EXCHANGE)``: ``final`` is at every
      instant either the previous complete output or the new complete one; the previous
      one is then removed;
    * elsewhere (or where the file system cannot exchange), by renaming the old folder
      aside, renaming the new one into place and removing the old. A kill between the two
      renames leaves the previous output complete beside ``final``;
      :func:`recover_output_dir` (run automatically by the next ``atomic_output_dir``)
      puts it back.

    On an exception the new folder is removed and ``final`` is untouched. With
    ``durable`` every file is fsynced before the swap (power loss, not just a kill).

    ``final`` must be missing, empty, or a folder ppeval wrote whose files still match its
    manifest (:mod:`ppeval.io_safety`); anything else, a symlink included, is refused with
    :class:`~ppeval.io_safety.OutputRefused` and nothing is deleted. The new folder gets a
    manifest of its own.

    Parameters
    ----------
    final : path
        The output folder (created with its parents if missing).
    durable : bool, default True

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     with atomic_output_dir(Path(d) / "report") as tmp:
    ...         _ = (tmp / "results.json").write_text("{}")
    ...     sorted(p.name for p in (Path(d) / "report").iterdir())
    ['.ppeval-output.json', 'results.json']
    """
    from .io_safety import check_replaceable_dir, write_manifest

    final = Path(final)
    # Only a missing or empty folder, or one ppeval wrote (unchanged since), may be replaced;
    # a symlink is refused rather than followed (swapping its target would empty it).
    check_replaceable_dir(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    recover_output_dir(final)
    tmp = _unique_sibling(final, _TMP_TAG)
    os.mkdir(tmp)  # honours the umask, unlike mkdtemp's 0700
    try:
        yield tmp
        write_manifest(tmp)
        # checked again just before the swap: a file the user put there during the run is kept
        check_replaceable_dir(final)
        if durable:
            _fsync_tree(tmp)
        if not final.exists():
            os.rename(tmp, final)
        elif _exchange(tmp, final):
            # tmp now holds the previous output. The new one is in place, so a failure to
            # delete the old one is not an error: recover_output_dir removes it later.
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            old = _unique_sibling(final, _OLD_TAG)
            os.rename(final, old)
            os.rename(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        if durable:
            _fsync_path(final.parent, directory=True)
    except BaseException:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_bytes_atomic(path: str | Path, data: bytes, *, durable: bool = True) -> Path:
    """Write one file atomically: a temporary sibling, fsync, then ``os.replace``.

    A reader (or a run killed part-way) sees the old file or the new one, never a part.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = write_bytes_atomic(Path(d) / "a.bin", b"abc")
    ...     p.read_bytes()
    b'abc'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _unique_sibling(path, _TMP_TAG)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
        if durable:
            _fsync_path(path.parent, directory=True)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def write_text_atomic(path: str | Path, text: str, encoding: str = "utf-8", *, durable: bool = True) -> Path:
    """:func:`write_bytes_atomic` for text (newlines written as given).

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     write_text_atomic(Path(d) / "a.txt", "hé").read_text(encoding="utf-8")
    'hé'
    """
    return write_bytes_atomic(path, text.encode(encoding), durable=durable)
