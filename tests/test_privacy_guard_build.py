"""The identifier guard's lookup tables: the vectorised build against the plain loop.

``IdentifierGuard.__init__`` builds its tables with array operations (an extract has
millions of ids). ``reference_tables`` below is the specification: the straightforward
loop over every id that the guard used before. Both must give exactly the same tables
(``_field_ids``, ``_first`` with its lists in the same order, ``_n_ids``, ``_dates``,
``_allow_dates``, ``_allow_tokens``) on every input.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ppeval import schema
from ppeval.privacy import (
    _TOKEN,
    CHILD_ID,
    FAMILY_ID,
    REPORT_ID,
    IdentifierGuard,
    _id_text,
    _norm_id,
)


def reference_tables(
    *,
    child_ids: Iterable[Any] = (),
    family_ids: Iterable[Any] = (),
    report_ids: Iterable[Any] = (),
    birth_dates: Iterable[Any] = (),
    allow: Iterable[str | date] = (),
    min_numeric_digits: int = 5,
    min_token_length: int = 3,
    extra_ids: Mapping[str, Iterable[Any]] | None = None,
) -> dict[str, Any]:
    """The tables as the former loop over every id built them.

    One liberty: an id with leading zeros was looked for as written and stripped, from a
    set ``{s, stripped}`` whose order depended on string hashing; here it is as written
    first. (Both forms start with different tokens unless the id has non-ASCII digits.)
    """
    allow_dates: set[date] = set()
    allow_tokens: set[str] = set()
    for a in allow:
        if isinstance(a, (date, pd.Timestamp)):
            allow_dates.add(pd.Timestamp(a).date())
        else:
            allow_tokens.add(str(a).strip().lower())
    kinds_of: dict[str, frozenset[str]] = {}
    groups: dict[str, Iterable[Any]] = {CHILD_ID: child_ids, FAMILY_ID: family_ids, REPORT_ID: report_ids}
    groups.update(extra_ids or {})
    for kind, ids in groups.items():
        one = frozenset([kind])
        for raw in ids:
            s = (raw.strip() if isinstance(raw, str) else _id_text(raw)).lower()
            if s and s not in allow_tokens:
                have = kinds_of.get(s)
                kinds_of[s] = one if have is None or have == one else have | one
    field_ids: dict[str, frozenset[str]] = {}
    for s, kinds in kinds_of.items():
        key = _norm_id(s) if s[:1].isdigit() or s[:1] in "+-" else s
        have = field_ids.get(key)
        field_ids[key] = kinds if have is None else have | kinds
    first: dict[str, list[tuple[str, int, frozenset[str], bool]]] = {}
    for s, kinds in kinds_of.items():
        forms = [s]
        numeric = s.isdigit()
        if numeric:
            if len(s) < min_numeric_digits:
                continue
            stripped = s.lstrip("0")
            if len(stripped) >= min_numeric_digits and stripped != s:
                forms.append(stripped)
        elif len(s) < min_token_length:
            continue
        for form in forms:
            m = _TOKEN.search(form)
            if m is None:
                continue
            first.setdefault(m.group(), []).append((form, m.start(), frozenset(kinds), numeric))
    parsed = pd.to_datetime(pd.Series(list(birth_dates), dtype=object), errors="coerce", format="mixed").dropna()
    return {
        "_field_ids": field_ids,
        "_first": first,
        "_n_ids": len(kinds_of),
        "_dates": set(parsed.dt.date.unique()) - allow_dates,
        "_allow_dates": allow_dates,
        "_allow_tokens": allow_tokens,
    }


def assert_same_tables(guard: IdentifierGuard, ref: dict[str, Any]) -> None:
    for name, expected in ref.items():
        assert getattr(guard, name) == expected, name
    # (list order within ``_first`` is compared above; the order of its keys is not used)
    assert list(guard._field_ids) == list(ref["_field_ids"])  # same order of first appearance
    for entries in guard._first.values():
        assert type(entries) is list
        for form, offset, kinds, numeric in entries:
            assert (type(form), type(offset), type(kinds), type(numeric)) == (str, int, frozenset, bool)
    for key, kinds in guard._field_ids.items():
        assert type(key) is str and type(kinds) is frozenset


def check(**kwargs: Any) -> IdentifierGuard:
    """Build both ways (inputs re-created for each: generators are used up) and compare."""
    def fresh() -> dict[str, Any]:
        return {k: (v() if callable(v) else v) for k, v in kwargs.items()}

    guard = IdentifierGuard(**fresh())
    assert_same_tables(guard, reference_tables(**fresh()))
    return guard


MIXED = [
    "C000123", " c000123 ", "C000123\t", "F-0042", "f-0042", "R 77 x", "00104233", "104233", "0000", "00000",
    "+00123", "-0042", "-0", "+0", "12.0", "0012.000", "12.5", "1e5", "12a", "1.2.3", "", "   ", "--", "-",
    "ABC", "ab", "a", "x-1", "--7-8", "İstanbul1", "ΑΣ", "²³⁴⁵⁶", "0²0", "١٢٣٤٥", "0١٢٣٤٥", "123\n456",
    104233, 104233.0, 123.0, -0.0, 0.5, 1e20, float("nan"), float("inf"), -7, 0, True, False, None,
    np.int64(99999), np.float64(42.0), np.float32(0.1), np.float32(7.0), pd.NA, pd.Timestamp("2015-03-04"),
    b"bytes", (1, 2),
    # pandas compares arrays of strings as C strings; ids here differ after a NUL or a surrogate
    "x\x00yz1", "x\x00yw1", "12\x0034", "12\x0035", "\ud800ab", "\ud800ac", "\udc00ab",
]


def test_mixed_types_and_kinds():
    check(
        child_ids=MIXED,
        family_ids=list(reversed(MIXED)),
        report_ids=MIXED[::3],
        extra_ids={"case id": MIXED[1::2], "person id": ["104233", "F-0042", "new-id-9"]},
    )


@pytest.mark.parametrize("min_numeric_digits, min_token_length", [(5, 3), (1, 1), (3, 5), (8, 2)])
def test_thresholds(min_numeric_digits, min_token_length):
    check(child_ids=MIXED, family_ids=MIXED[5:], min_numeric_digits=min_numeric_digits,
          min_token_length=min_token_length)


def test_allowed_tokens_and_dates():
    guard = check(
        child_ids=MIXED,
        report_ids=["2023", "seed-42", "SEED-42", "00777777"],
        allow=["c000123", " F-0042 ", "2023", "Seed-42", 104233, date(2015, 3, 4), pd.Timestamp("2020-01-01"),
               datetime(2019, 5, 6, 12)],
        birth_dates=["2015-03-04", "2020-01-01", "2019-05-06", "2011-11-11"],
    )
    assert guard._dates == {date(2011, 11, 11)}


def test_input_containers():
    strings = pd.array(["00123456", None, "F1", "f1 ", "00123456"], dtype="string")
    check(
        child_ids=lambda: pd.Series(strings),
        family_ids=lambda: pd.Series([1.0, np.nan, 123456.0, 0.25], dtype="float64"),
        report_ids=lambda: np.array([0.1, 2.0, 123456.0], dtype=np.float32),
        extra_ids=lambda: {
            "case id": (x for x in ["A1", "a1", 5, 5.0]),
            "a id": pd.Series([1, None, 300000], dtype="Int64"),
            "b id": np.array(["X-1", "x-1", 7], dtype=object),
            "c id": "C123",  # a string is iterated as characters, as before
            "d id": {"only"},
            "e id": pd.Index(["00099999", "99999"]),
        },
    )


def test_shared_and_collapsing_ids():
    # the same id in several kinds; ids that differ only in case, spaces or leading zeros;
    # numeric ids whose stripped form is another id; several ids starting with one token
    check(
        child_ids=["0012345", "12345", "C-1", "c-2", "c-1-3", "00012345", "12345 "],
        family_ids=["12345", "C-1", "C-1", "x.12345", "12345.0", "+12345"],
        report_ids=["c-1", "012345", "c"],
    )


def test_strings_pandas_would_merge():
    guard = check(child_ids=["x\x00yz1", "x\x00yw1", "\ud800ab", "\ud800ac"], family_ids=["x\x00yw1"],
                  allow=["\ud800AC"], min_token_length=1)
    assert guard._n_ids == 3
    assert guard._field_ids["x\x00yz1"] == {CHILD_ID}
    assert guard._field_ids["x\x00yw1"] == {CHILD_ID, FAMILY_ID}


def test_many_kinds():
    # more kinds than fit in one 64-bit mask
    extra = {f"kind {i} id": [f"id-{i % 7}", f"only-{i}", i % 5 * 11111] for i in range(70)}
    guard = check(child_ids=["id-1", "00011111"], extra_ids=extra)
    assert len(guard._field_ids["id-1"]) == 11


def test_empty():
    guard = check()
    assert guard._first == {} and guard._field_ids == {} and guard._n_ids == 0
    check(child_ids=["", "  ", None], allow=["none"])


def test_birth_dates():
    mixed = ["2015-03-04", "03/04/2015", "March 4, 2015", "not a date", "", None, float("nan"),
             date(2016, 7, 1), datetime(2017, 1, 2, 13, 45), pd.Timestamp("2018-02-03 23:59"), np.datetime64("2019-04-05"),
             pd.NaT, 20200101]
    check(birth_dates=mixed)
    times = pd.Series(pd.to_datetime(["2015-03-04 10:00", None, "2016-07-01 00:00", "2016-07-01 23:00"]))
    check(birth_dates=lambda: times)
    check(birth_dates=lambda: times.astype("datetime64[s]"))
    check(birth_dates=lambda: pd.DatetimeIndex(times))
    check(birth_dates=lambda: times.to_numpy())
    check(birth_dates=lambda: times.dt.tz_localize("America/New_York"))
    check(birth_dates=lambda: pd.Series(["2015-03-04", "2015-03-05"], dtype="string"), allow=[date(2015, 3, 5)])


ID_TEXT = st.text(alphabet="0000123456789aBcXz -_.+/\t²١İΣ\x00\ud800", max_size=9)
ID_VALUE = st.one_of(
    ID_TEXT,
    ID_TEXT,
    st.integers(-10**12, 10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(0, 10**7).map(float),
    st.floats(width=32).map(np.float32),
    st.none(),
    st.booleans(),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    child=st.lists(ID_VALUE, max_size=25),
    family=st.lists(ID_VALUE, max_size=25),
    report=st.lists(ID_TEXT, max_size=25),
    extra=st.dictionaries(st.sampled_from([CHILD_ID, "case id", "x id"]), st.lists(ID_VALUE, max_size=8), max_size=2),
    allow=st.lists(st.one_of(ID_TEXT, st.integers(0, 10**6)), max_size=4),
    min_numeric_digits=st.integers(1, 7),
    min_token_length=st.integers(1, 5),
)
def test_random_ids(child, family, report, extra, allow, min_numeric_digits, min_token_length):
    if child and allow:
        allow.append(child[0])  # an allowed id that occurs
    check(child_ids=child, family_ids=family, report_ids=report, extra_ids=extra, allow=allow,
          min_numeric_digits=min_numeric_digits, min_token_length=min_token_length)


def reference_from_extract(ext: Any) -> dict[str, Any]:
    """What the former ``from_extract`` passed to the former constructor."""
    ids: dict[str, list[Any]] = {}
    dates: list[Any] = []
    for name, df in ext.tables.items():
        spec = schema.TABLES[name]
        for col in df.columns:
            c = spec.column(col)
            if c is None or not c.identifying:
                continue
            values = df[col].dropna().drop_duplicates()
            if c.kind == "date":
                dates.extend(pd.to_datetime(values, errors="coerce").dropna().dt.normalize().unique().tolist())
            else:
                ids.setdefault(col.replace("_", " "), []).extend(_id_text(v) for v in values.tolist())
    allowed: list[Any] = [ext.extract_date.date()]
    cfg = getattr(ext, "config", None)
    if cfg is not None:
        for section, key in (("cohort", "entry_from"), ("cohort", "entry_to"), ("data", "extract_date")):
            value = cfg.get(section, {}).get(key)
            if isinstance(value, date):
                allowed.append(value)
        if cfg.get("seed") is not None:
            allowed.append(str(cfg["seed"]))
    return reference_tables(
        child_ids=ids.pop(CHILD_ID, ()), family_ids=ids.pop(FAMILY_ID, ()), report_ids=ids.pop(REPORT_ID, ()),
        extra_ids=ids, birth_dates=dates, allow=allowed,
    )


def test_from_extract_synthetic():
    from ppeval.synthetic import generate

    ext = generate(2000, seed=3).to_extract()
    guard = IdentifierGuard.from_extract(ext)
    ref = reference_from_extract(ext)
    assert guard._n_ids > 4000 and len(guard._dates) > 100
    assert_same_tables(guard, ref)


def test_from_extract_column_types():
    # string columns with missing values, repeats and case/space variants across tables;
    # object and float columns (pandas drops 1.0 after 1 and True as duplicates, as before)
    from ppeval.extract import Extract

    children = pd.DataFrame({
        "child_id": pd.array(["00123456", None, "C1", "c1 ", "00123456", "X-9"], dtype="string"),
        "birth_date": pd.to_datetime(["2015-03-04", None, "2016-07-01", "2016-07-01", "2010-01-01", "2012-12-12"]),
        "family_id": pd.Series([1, 1.0, True, "F1", None, 2.5], dtype=object),
    })
    reports = pd.DataFrame({
        "report_id": pd.Series([7.0, np.nan, 123456.0, 7.0, 0.5, 8.0]),
        "child_id": pd.array(["c1", "123456", None, "X-9", "Y-1", "y-1"], dtype="string[pyarrow]"),
        "family_id": pd.array(["F1", "f1", None, "F2", "F2", "F3"], dtype="string"),
    })
    ext = Extract({"children": children, "reports": reports}, "2023-12-31")
    assert_same_tables(IdentifierGuard.from_extract(ext), reference_from_extract(ext))
