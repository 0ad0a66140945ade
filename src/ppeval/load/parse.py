"""Vectorised cell parsers: source values (as Arrow arrays) to canonical values.

Each parser takes one source column and returns a :class:`Parsed` holding the canonical
values, which cells are missing and which cells could **not** be parsed (``bad``). A bad cell
becomes missing and is reported by the caller as a :class:`~ppeval.problems.Problem`; the row
is kept. Parsing is strict but fast: a whole-column Arrow cast is tried first (clean columns,
the usual case, cost a few milliseconds per million cells) and only when it fails are the
cells examined one pattern at a time, still vectorised.

Accepted spellings
------------------
* dates: ``YYYY-MM-DD`` (optionally followed by a time), ``MM/DD/YYYY`` (one- or two-digit
  month and day), ``YYYYMMDD``, ``YYYY/MM/DD``, and real date or timestamp values from binary
  formats; a ``date_format`` (strftime codes) replaces the text patterns;
* yes/no flags: ``1``/``0``, ``1``/``2`` (2 = no), ``Y``/``N``, ``yes``/``no``, ``true``/``false``,
  ``T``/``F`` in any case; blank and ``99`` are missing;
* codes: the canonical code in any case, with spaces or hyphens for underscores (``Trial home
  visit`` = ``trial_home_visit``), plus ``F``/``M``/``U`` for sex;
* numbers: what Arrow accepts (``12``, ``-3``, ``1.5``, ``1e3``); a whole-number column also
  accepts ``12.0``.

A file's date columns are also checked as a whole before they are parsed (the order of day
and month, Excel serial numbers, placeholder dates such as 1900-01-01): see
:mod:`ppeval.load.dates`.

Examples
--------
>>> import pyarrow as pa
>>> p = parse_column(pa.array(["2020-01-31", "01/02/2021", "", "2020-02-30"]), "date")
>>> [str(v) for v in p.to_series()]
['2020-01-31 00:00:00', '2021-01-02 00:00:00', 'NaT', 'NaT']
>>> p.bad.tolist()
[False, False, False, True]
>>> parse_column(pa.array(["Y", "2", "99", "maybe"]), "bool").to_series().tolist()
[True, False, <NA>, <NA>]
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import ConfigError

#: What each kind of column expects, as printed in a Problem.
EXPECTED: dict[str, str] = {
    "date": "a date (YYYY-MM-DD, MM/DD/YYYY or YYYYMMDD)",
    "bool": "yes/no (1/0, 1/2, Y/N, yes/no or true/false; blank or 99 = missing)",
    "int": "a whole number",
    "float": "a number",
}

#: The message of a Problem for a cell of each kind that could not be parsed.
MESSAGES: dict[str, str] = {
    "date": "unparseable date",
    "bool": "not a yes/no value",
    "int": "not a whole number",
    "float": "not a number",
    "code": "unknown code",
}

_TRUE = ("1", "y", "yes", "true", "t", "1.0")
_FALSE = ("0", "2", "n", "no", "false", "f", "0.0", "2.0")
_BOOL_MISSING = ("99", "99.0")
# The exact spellings met in practice, so a clean column needs one hash lookup and no
# lower-casing; anything else is lower-cased and trimmed on the (small) unmatched subset.
_BOOL_EXACT = {
    **{k: True for k in (*_TRUE, "Y", "Yes", "YES", "True", "TRUE", "T")},
    **{k: False for k in (*_FALSE, "N", "No", "NO", "False", "FALSE", "F")},
}

#: Extra spellings accepted for some code lists (canonical column -> alias -> code).
CODE_ALIASES: dict[tuple[str, ...], dict[str, str]] = {
    ("female", "male", "unknown"): {"f": "female", "m": "male", "u": "unknown"},
}

# Years outside this range are almost always sentinels (0001-01-01, 9999-12-31) and do not
# fit datetime64[ns] anyway; map them with a `codes` entry if they mean "missing".
_MIN_YEAR, _MAX_YEAR = 1800, 2200
#: The message for a well-formed date whose year is outside the range ppeval accepts.
OUT_OF_RANGE_DATE = (
    f"date out of range (years {_MIN_YEAR}-{_MAX_YEAR} only; a placeholder? (the common ones, such as 9999-12-31, are read as missing) "
    "a codes entry mapping it to \"\" makes it missing)"
)

# A time of day after a date is dropped, but it must be a time (hour 0-23 or 1-12 with AM/PM,
# minutes and seconds 0-59): "2019-02-20T25:61" is damaged, not a date.
_HM = r"(?:[01]?\d|2[0-3]):[0-5]\d"
_DATE_PATTERNS = (
    rf"^(?P<y>\d{{4}})[-/](?P<m>\d{{1,2}})[-/](?P<d>\d{{1,2}})(?:[ T]{_HM}(?::[0-5]\d(?:\.\d*)?)?)?$",
    rf"^(?P<m>\d{{1,2}})/(?P<d>\d{{1,2}})/(?P<y>\d{{4}})(?: {_HM}(?::[0-5]\d)?(?: ?[AaPp][Mm])?)?$",
    r"^(?P<y>\d{4})(?P<m>\d{2})(?P<d>\d{2})$",
)
_INT_RE = r"^[+-]?\d+(?:\.0*)?$"
_FLOAT_RE = r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$"


@dataclass
class Parsed:
    """One parsed column.

    Attributes
    ----------
    kind : str
        ``id``, ``str``, ``code``, ``bool``, ``int``, ``float`` or ``date``.
    values : numpy.ndarray or pyarrow.Array
        ``id``/``str``: an Arrow string array (null = missing); ``code``: int16 positions in
        ``categories`` (-1 = missing); ``bool``: int8 1/0 (-1 = missing); ``int``: int64 with
        ``missing``; ``float``: float64 (NaN = missing); ``date``: ``datetime64[D]`` (NaT).
    missing : numpy.ndarray of bool
        True where the canonical value is missing (including bad cells).
    bad : numpy.ndarray of bool
        True where a non-blank source cell could not be parsed.
    text : pyarrow.Array
        The source cells as text (for naming bad values in problems).
    categories : tuple of str
        The code list of a ``code`` column.
    """

    kind: str
    values: np.ndarray | pa.Array
    missing: np.ndarray
    bad: np.ndarray
    text: pa.Array | None = None
    categories: tuple[str, ...] = ()
    #: dates only: bad cells that are well-formed dates with a year outside 1800-2200
    #: (placeholders such as 9999-12-31 or 0001-01-01), reported as such
    out_of_range: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.missing)

    def to_series(self, index: pd.Index | None = None) -> pd.Series:
        """The values as a pandas Series with the canonical dtype of :mod:`ppeval.schema`."""
        k = self.kind
        if k in ("id", "str"):
            arr = pd.array(self.values.to_numpy(zero_copy_only=False), dtype="string")
        elif k == "code":
            arr = pd.Categorical.from_codes(self.values, categories=list(self.categories)).astype("string")
        elif k == "bool":
            arr = pd.arrays.BooleanArray(self.values == 1, self.missing.copy())
        elif k == "int":
            arr = pd.arrays.IntegerArray(self.values.astype("int64"), self.missing.copy())
        elif k == "float":
            arr = self.values
        elif k == "date":
            arr = self.values.astype("datetime64[ns]")
        else:  # pragma: no cover - kinds come from schema.Column
            raise ValueError(f"unknown column kind {k!r}")
        return pd.Series(arr, index=index, copy=False)


# --------------------------------------------------------------------------- text helpers
def _combine(arr: pa.Array | pa.ChunkedArray) -> pa.Array:
    return arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr


def _null_mask(arr: pa.Array) -> np.ndarray:
    if arr.null_count == 0:
        return np.zeros(len(arr), dtype=bool)
    return np.asarray(arr.is_null(), dtype=bool)


def as_text(arr: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Any Arrow column as strings; empty strings become null.

    Whole floats print without ``.0`` (an id read from Excel or Stata as ``1234.0`` becomes
    ``"1234"``), dates print as ``YYYY-MM-DD`` and timestamps at midnight as dates.

    Examples
    --------
    >>> as_text(pa.array([1234.0, 2.5, None])).to_pylist()
    ['1234', '2.5', None]
    """
    arr = _combine(arr)
    t = arr.type
    if pa.types.is_dictionary(t):
        arr = arr.dictionary_decode()
        t = arr.type
    if pa.types.is_large_string(t):
        arr = arr.cast(pa.string())
    elif pa.types.is_null(t):
        arr = pa.nulls(len(arr), pa.string())
    elif pa.types.is_floating(t):
        a = arr.to_numpy(zero_copy_only=False).astype("float64")
        ok = ~np.isnan(a)
        whole = ok & (np.floor(a) == a) & (np.abs(a) < 2**63)
        out = np.full(len(a), None, dtype=object)
        out[whole] = a[whole].astype("int64").astype(str)
        rest = ok & ~whole
        out[rest] = a[rest].astype(str)
        arr = pa.array(out, type=pa.string())
    elif pa.types.is_timestamp(t):
        days = pc.cast(pc.floor_temporal(arr, unit="day"), pa.timestamp("s"))
        midnight = pc.equal(days, pc.cast(arr, pa.timestamp("s")))
        arr = pc.if_else(midnight, pc.strftime(arr, format="%Y-%m-%d"), pc.strftime(arr, format="%Y-%m-%d %H:%M:%S"))
    elif pa.types.is_boolean(t):
        arr = pc.if_else(arr, "true", "false")
    elif not pa.types.is_string(t):
        arr = pc.cast(arr, pa.string())
    if arr.null_count < len(arr):
        arr = pc.if_else(pc.equal(arr, ""), pa.scalar(None, pa.string()), arr)
    return arr


def _subset(mask: np.ndarray) -> np.ndarray:
    return np.flatnonzero(mask)


def _normalise(arr: pa.Array) -> pa.Array:
    """Lower-case, trimmed, spaces and hyphens as underscores (for code look-ups)."""
    s = pc.utf8_lower(pc.utf8_trim_whitespace(arr))
    return pc.replace_substring_regex(s, r"[\s\-]+", "_")


def apply_code_map(text: pa.Array, code_map: Mapping[str, str | None]) -> pa.Array:
    """Replace source values by canonical ones (exact match first, then case-insensitive).

    A target of ``None`` or ``""`` makes the value missing.

    Examples
    --------
    >>> apply_code_map(pa.array(["M", "f", "x", None]), {"M": "male", "F": "female"}).to_pylist()
    ['male', 'female', 'x', None]
    """
    if not code_map or len(text) == 0:
        return text
    keys = [str(k) for k in code_map]
    vals = [None if v is None or str(v) == "" else str(v) for v in code_map.values()]
    idx = pc.index_in(text, value_set=pa.array(keys, pa.string()))
    out = pc.if_else(pc.is_valid(idx), pc.take(pa.array(vals, pa.string()), idx), text)
    unmatched = _subset(np.asarray(pc.and_(pc.is_null(idx), pc.is_valid(text)).fill_null(False)))
    if len(unmatched):
        low_keys: dict[str, str | None] = {}
        for k, v in zip(keys, vals, strict=True):
            low_keys.setdefault(k.strip().lower(), v)
        sub = pc.utf8_lower(pc.utf8_trim_whitespace(text.take(pa.array(unmatched))))
        j = pc.index_in(sub, value_set=pa.array(list(low_keys), pa.string()))
        hit = np.asarray(pc.is_valid(j))
        if hit.any():
            mapped = pc.take(pa.array(list(low_keys.values()), pa.string()), j)
            values = out.to_numpy(zero_copy_only=False).copy()
            values[unmatched[hit]] = np.asarray(mapped.to_numpy(zero_copy_only=False))[hit]
            out = pa.array(values, type=pa.string())
    return out


# --------------------------------------------------------------------------- the parsers
def parse_column(
    arr: pa.Array | pa.ChunkedArray,
    kind: str,
    *,
    codes: Sequence[str] | None = None,
    code_map: Mapping[str, str | None] | None = None,
    missing: Sequence[str] = (),
    other: str | None = None,
    date_format: str | None = None,
) -> Parsed:
    """Parse one source column into canonical values.

    Parameters
    ----------
    arr : pyarrow.Array or ChunkedArray
        The source column: text (from CSV/tab files), or typed (Parquet, Excel, SAS, ...).
    kind : str
        The canonical kind (:attr:`ppeval.schema.Column.kind`).
    codes : sequence of str, optional
        The code list of a ``code`` column.
    code_map : mapping, optional
        Source value -> canonical value, applied first (the config's ``codes``).
    missing : sequence of str
        Extra source values that mean "missing" (no problem is raised for them).
    other : str, optional
        For ``code`` columns: the code given to any value not in the list (instead of a
        problem), e.g. ``"unknown"`` for AFCARS sex codes other than 1 and 2.
    date_format : str, optional
        strftime format for text dates, replacing the default patterns.

    Returns
    -------
    Parsed

    Examples
    --------
    >>> p = parse_column(pa.array(["1", "2", "3"]), "code", codes=("male", "female"),
    ...                  code_map={"1": "male", "2": "female"})
    >>> p.to_series().tolist(), p.bad.tolist()
    (['male', 'female', <NA>], [False, False, True])
    """
    arr = _combine(arr)
    t = arr.type
    n = len(arr)
    native = not code_map and not missing
    # Typed values need no text round trip when the kinds agree.
    if kind == "date" and (pa.types.is_timestamp(t) or pa.types.is_date(t)):
        values = _temporal_to_days(arr)
        miss = np.isnat(values)
        return Parsed(kind, values, miss, np.zeros(n, dtype=bool))
    if native and kind in ("int", "float") and (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)):
        return _numeric_native(arr, kind)
    if native and kind == "bool" and pa.types.is_boolean(t):
        miss = _null_mask(arr)
        values = np.where(miss, -1, np.asarray(arr.fill_null(False), dtype=np.int8)).astype(np.int8)
        return Parsed(kind, values, miss, np.zeros(n, dtype=bool))

    text = as_text(arr)
    if kind == "code":
        return _parse_code(text, tuple(codes or ()), code_map or {}, missing, other)
    if kind == "bool":
        return _parse_bool(text, code_map or {}, missing)
    recode = {**{str(m): None for m in missing}, **(code_map or {})}
    mapped = apply_code_map(text, recode) if recode else text
    if kind in ("id", "str"):
        return _parse_id(mapped, text, kind)
    if kind in ("int", "float"):
        return _parse_number(mapped, text, kind)
    if kind == "date":
        return _parse_date(mapped, text, date_format)
    raise ValueError(f"unknown column kind {kind!r}")


def _temporal_to_days(arr: pa.Array) -> np.ndarray:
    if pa.types.is_date(arr.type):
        arr = pc.cast(arr, pa.date32())
        return np.asarray(arr.to_numpy(zero_copy_only=False), dtype="datetime64[D]")
    # Timestamps from binary formats: the day is what matters (times of day are dropped).
    return arr.to_numpy(zero_copy_only=False).astype("datetime64[D]")


def _numeric_native(arr: pa.Array, kind: str) -> Parsed:
    n = len(arr)
    if pa.types.is_boolean(arr.type):
        arr = pc.cast(arr, pa.int8())
    a = arr.to_numpy(zero_copy_only=False)
    a = a.astype("float64") if a.dtype == object else a
    miss = _null_mask(arr) | (np.isnan(a) if a.dtype.kind == "f" else np.zeros(n, dtype=bool))
    if kind == "float":
        return Parsed(kind, np.where(miss, np.nan, a.astype("float64")), miss, np.zeros(n, dtype=bool))
    if a.dtype.kind == "f":
        whole = ~miss & (np.floor(a) == a) & (np.abs(a) < 2**63)
        bad = ~miss & ~whole
        values = np.where(whole, a, 0).astype("int64")
        return Parsed(kind, values, miss | bad, bad, text=as_text(arr) if bad.any() else None)
    return Parsed(kind, np.where(miss, 0, a).astype("int64"), miss, np.zeros(n, dtype=bool))


def _parse_id(mapped: pa.Array, text: pa.Array, kind: str) -> Parsed:
    s = pc.utf8_trim_whitespace(mapped) if len(mapped) else mapped
    if s.null_count < len(s):
        s = pc.if_else(pc.equal(s, ""), pa.scalar(None, pa.string()), s)
    miss = _null_mask(s)
    return Parsed(kind, s, miss, np.zeros(len(s), dtype=bool), text=text)


# Look-up results besides positions in a code list.
_NOT_FOUND = -1  # not in the table: a bad cell (or `other`)
_MISSING = -2  # a value that means "missing" (99, a code mapped to "")
_BAD_TARGET = -3  # a codes-map entry whose target is not a canonical value


def _norm_key(value: str) -> str:
    return re.sub(r"[\s\-]+", "_", value.strip().lower())


def _lookup(text: pa.Array, exact: Mapping[str, int], normalised: Mapping[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """Each value's entry in a look-up table (``_NOT_FOUND`` when absent) and the null mask.

    One hash look-up on the exact spellings; only values not found are normalised
    (trimmed, lower-cased, spaces and hyphens as underscores) and looked up again.
    """
    n = len(text)
    null = _null_mask(text)
    if n == 0:
        return np.zeros(0, dtype=np.int16), null
    idx = pc.index_in(text, value_set=pa.array(list(exact), pa.string()))
    pos = np.asarray(idx.fill_null(-1), dtype=np.int32)
    target = np.asarray(list(exact.values()), dtype=np.int16)
    out = np.where(pos >= 0, target[np.clip(pos, 0, None)], _NOT_FOUND).astype(np.int16)
    unmatched = _subset((out == _NOT_FOUND) & ~null)
    if len(unmatched):
        sub = _normalise(text.take(pa.array(unmatched)))
        j = np.asarray(pc.index_in(sub, value_set=pa.array(list(normalised), pa.string())).fill_null(-1), dtype=np.int32)
        ntarget = np.asarray(list(normalised.values()), dtype=np.int16)
        out[unmatched] = np.where(j >= 0, ntarget[np.clip(j, 0, None)], _NOT_FOUND)
    return out, null


def _tables(
    base: Mapping[str, int], norm_base: Mapping[str, int], missing: Sequence[str], code_map: Mapping[str, str | None],
    target_of: Callable[[str | None], int],
) -> tuple[dict[str, int], dict[str, int]]:
    """Exact and normalised look-up tables: canonical spellings, then missing values, then the codes map."""
    exact = dict(base)
    normalised = dict(norm_base)
    for m in missing:
        exact[str(m)] = _MISSING
        normalised[_norm_key(str(m))] = _MISSING
    for key, value in code_map.items():
        t = target_of(value)
        exact[str(key)] = t
        normalised[_norm_key(str(key))] = t
    return exact, normalised


def _parse_code(
    text: pa.Array, codes: tuple[str, ...], code_map: Mapping[str, str | None], missing: Sequence[str], other: str | None
) -> Parsed:
    cats = codes
    if other is not None and other not in cats:
        cats = (*cats, other)
    index = {c: i for i, c in enumerate(cats)}
    norm = dict(index)
    for alias, code in CODE_ALIASES.get(codes, {}).items():
        norm.setdefault(alias, index[code])

    def target_of(value: str | None) -> int:
        if value is None or str(value).strip() == "":
            return _MISSING
        return norm.get(_norm_key(str(value)), _BAD_TARGET)

    exact, normalised = _tables(index, norm, missing, code_map, target_of)
    pos, null = _lookup(text, exact, normalised)
    if other is not None:
        pos = np.where(pos == _NOT_FOUND, index[other], pos).astype(np.int16)
    bad = ((pos == _NOT_FOUND) | (pos == _BAD_TARGET)) & ~null
    values = np.where(pos >= 0, pos, -1).astype(np.int16)
    return Parsed("code", values, values < 0, bad, text=text, categories=cats)


def _parse_bool(text: pa.Array, code_map: Mapping[str, str | None], missing: Sequence[str]) -> Parsed:
    base = {k: (1 if v else 0) for k, v in _BOOL_EXACT.items()}
    base.update({m: _MISSING for m in _BOOL_MISSING})
    norm = {**{k: 1 for k in _TRUE}, **{k: 0 for k in _FALSE}, **{m: _MISSING for m in _BOOL_MISSING}}

    def target_of(value: str | None) -> int:
        if value is None or str(value).strip() == "":
            return _MISSING
        return norm.get(_norm_key(str(value)), _BAD_TARGET)

    exact, normalised = _tables(base, norm, missing, code_map, target_of)
    pos, null = _lookup(text, exact, normalised)
    bad = ((pos == _NOT_FOUND) | (pos == _BAD_TARGET)) & ~null
    values = np.where(pos >= 0, pos, -1).astype(np.int8)
    return Parsed("bool", values, values < 0, bad, text=text)


def _parse_number(mapped: pa.Array, text: pa.Array, kind: str) -> Parsed:
    n = len(mapped)
    target = pa.int64() if kind == "int" else pa.float64()
    null = _null_mask(mapped)
    try:
        num = pc.cast(mapped, target)
        bad = np.zeros(n, dtype=bool)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        s = pc.utf8_trim_whitespace(mapped)
        blank = np.asarray(pc.equal(s, "").fill_null(False))
        ok = np.asarray(pc.match_substring_regex(s, _INT_RE if kind == "int" else _FLOAT_RE).fill_null(False))
        if kind == "int":
            s = pc.replace_substring_regex(s, r"\.0*$", "")
        if kind == "int":
            # More digits than a 64-bit integer holds: not a count or an amount anyone means.
            long = np.asarray(pc.greater(pc.utf8_length(pc.replace_substring_regex(s, r"^[+-]?0*", "")), 18)
                              .fill_null(False))
            ok &= ~long
        good = pa.array(ok)
        try:
            num = pc.cast(pc.if_else(good, s, pa.scalar(None, pa.string())), target)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            # a value the patterns accept but Arrow cannot convert: parse one by one
            num, ok = _cast_each(s, ok, kind)
        null = null | blank
        bad = ~ok & ~null
    miss = null | bad | _null_mask(num)
    if kind == "int":
        values = np.asarray(num.fill_null(0), dtype="int64")
    else:
        values = np.asarray(num.to_numpy(zero_copy_only=False), dtype="float64")
        # 1e400 overflows to infinity; "inf" and "NaN" are no amount of hours (a blank is missing)
        nonfinite = ~np.isfinite(values) & ~miss
        bad = bad | nonfinite
        miss = miss | nonfinite
        values = np.where(miss, np.nan, values)
    return Parsed(kind, values, miss, bad, text=text)


def _cast_each(s: pa.Array, ok: np.ndarray, kind: str) -> tuple[pa.Array, np.ndarray]:
    """Cell-by-cell conversion of the cells ``ok`` marks; cells that fail become bad."""
    out: list[int | float | None] = [None] * len(s)
    ok = ok.copy()
    conv = int if kind == "int" else float
    for i in np.flatnonzero(ok):
        text = s[int(i)].as_py()
        try:
            v = conv(float(text)) if kind == "int" and "." in text else conv(text)
            if kind == "int" and not -(2**63) <= v < 2**63:
                raise OverflowError
            out[int(i)] = v
        except (ValueError, OverflowError, TypeError):
            ok[i] = False
    return pa.array(out, type=pa.int64() if kind == "int" else pa.float64()), ok


def _parse_date(mapped: pa.Array, text: pa.Array, date_format: str | None) -> Parsed:
    n = len(mapped)
    null = _null_mask(mapped)
    if date_format:
        return _parse_date_format(mapped, text, date_format, null)
    try:
        # Arrow's ISO cast is strict (rejects 2020-02-30, padding errors, stray spaces)
        # and fast: the common case of a clean ISO column stops here.
        days = pc.cast(mapped, pa.date32())
        values = np.asarray(days.to_numpy(zero_copy_only=False), dtype="datetime64[D]")
        years = values.astype("datetime64[Y]").astype("int64") + 1970
        out_of_range = ~np.isnat(values) & ((years < _MIN_YEAR) | (years > _MAX_YEAR))
        if not out_of_range.any():
            return Parsed("date", values, np.isnat(values), np.zeros(n, dtype=bool), text=text)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    s = pc.utf8_trim_whitespace(mapped)
    blank = np.asarray(pc.equal(s, "").fill_null(False))
    null = null | blank
    y = np.zeros(n, dtype="int64")
    m = np.zeros(n, dtype="int64")
    d = np.zeros(n, dtype="int64")
    found = np.zeros(n, dtype=bool)
    for pattern in _DATE_PATTERNS:
        todo = _subset(~found & ~null)
        if not len(todo):
            break
        st = pc.extract_regex(s.take(pa.array(todo)), pattern)
        hit = np.asarray(pc.is_valid(st))
        if not hit.any():
            continue
        rows = todo[hit]
        for name, target in (("y", y), ("m", m), ("d", d)):
            part = pc.struct_field(st, name).filter(pa.array(hit))
            target[rows] = np.asarray(pc.cast(part, pa.int64()), dtype="int64")
        found[rows] = True
    values, ok = ymd_to_dates(y, m, d, found)
    bad = ~ok & ~null
    far = bad & found & (m >= 1) & (m <= 12) & (d >= 1) & (d <= 31) & ((y < _MIN_YEAR) | (y > _MAX_YEAR))
    return Parsed("date", values, ~ok, bad, text=text, out_of_range=far if far.any() else None)


def ymd_to_dates(y: np.ndarray, m: np.ndarray, d: np.ndarray, valid: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Year, month and day arrays to ``datetime64[D]``, checking that each date exists.

    Returns the dates (NaT where invalid) and the mask of valid dates.

    Examples
    --------
    >>> import numpy as np
    >>> v, ok = ymd_to_dates(np.array([2020, 2021]), np.array([2, 2]), np.array([29, 29]))
    >>> ok.tolist()
    [True, False]
    """
    y = np.asarray(y, dtype="int64")
    m = np.asarray(m, dtype="int64")
    d = np.asarray(d, dtype="int64")
    ok = np.ones(len(y), dtype=bool) if valid is None else valid.copy()
    ok &= (y >= _MIN_YEAR) & (y <= _MAX_YEAR) & (m >= 1) & (m <= 12) & (d >= 1)
    months = np.where(ok, (y - 1970) * 12 + (m - 1), 0)
    start = months.astype("datetime64[M]").astype("datetime64[D]")
    length = ((months + 1).astype("datetime64[M]").astype("datetime64[D]") - start).astype("int64")
    ok &= d <= length
    values = np.where(ok, start + np.where(ok, d - 1, 0).astype("timedelta64[D]"), np.datetime64("NaT", "D"))
    return values.astype("datetime64[D]"), ok


_STRFTIME_OK = re.compile(r"%[YmdyBbHMSpIjf%]")


def _parse_date_format(mapped: pa.Array, text: pa.Array, fmt: str, null: np.ndarray) -> Parsed:
    unknown = [code for code in re.findall(r"%.", fmt) if not _STRFTIME_OK.fullmatch(code)]
    if "%" not in fmt or unknown:
        raise ConfigError(
            f"config: date_format {fmt!r} is not a strftime format of dates "
            f"(use %Y, %m, %d, %y, %b, e.g. '%d.%m.%Y')"
        )
    n = len(mapped)
    s = pc.utf8_trim_whitespace(mapped)
    blank = np.asarray(pc.equal(s, "").fill_null(False))
    null = null | blank
    values = np.full(n, np.datetime64("NaT"), dtype="datetime64[D]")
    todo = _subset(~null)
    if len(todo):
        sub = pd.Series(s.take(pa.array(todo)).to_numpy(zero_copy_only=False), dtype=object)
        parsed = pd.to_datetime(sub, format=fmt, errors="coerce", exact=True)
        values[todo] = parsed.to_numpy().astype("datetime64[D]")
    ok = ~np.isnat(values)
    years = values.astype("datetime64[Y]").astype("int64") + 1970
    ok &= (years >= _MIN_YEAR) & (years <= _MAX_YEAR)
    values = np.where(ok, values, np.datetime64("NaT", "D"))
    return Parsed("date", values, ~ok, ~ok & ~null, text=text)
