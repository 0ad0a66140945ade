"""Privacy: small-cell suppression, the identifier guard, pseudonyms and atomic output.

The suppression tests attack the published tables the way a reader would: by subtracting
published cells from published totals until nothing more follows, and by solving the
whole linear system of totals (an independent numpy implementation, not the module's).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ppeval.config import Config
from ppeval.errors import ConfigError, PpevalError
from ppeval.extract import Extract
from ppeval.io_safety import OutputRefused, write_manifest
from ppeval.privacy import (
    SUPPRESSED_TEXT,
    IdentifierGuard,
    PrivacyError,
    atomic_output_dir,
    audit_suppression,
    format_count,
    format_rate,
    is_sensitive,
    json_count,
    pseudonymise,
    recover_output_dir,
    suppress_counts,
    suppress_value,
    write_bytes_atomic,
    write_text_atomic,
)

matplotlib.use("Agg")


# ---------------------------------------------------------------------------------------
# Attackers (independent of ppeval.privacy)
# ---------------------------------------------------------------------------------------


def table_lines(table, count_cols, total_row=None, total_col=None, events=None):
    """Every published sum as (cells, coefficients): sum(coef * value) == 0.

    Cells are (row label, column); ``(row, ("nonevents", ev))`` is the implied n - events.
    """
    lines = []
    parts_cols = [c for c in count_cols if c != total_col]
    all_cols = list(dict.fromkeys([*count_cols, *([total_col] if total_col else []), *(events or {}),
                                   *(events or {}).values()]))
    rows = list(table.index)
    body = [r for r in rows if r != total_row]
    if total_col is not None:
        for r in rows:
            lines.append(([(r, c) for c in parts_cols] + [(r, total_col)], [1] * len(parts_cols) + [-1]))
    if total_row is not None:
        for c in all_cols:
            lines.append(([(r, c) for r in body] + [(total_row, c)], [1] * len(body) + [-1]))
    for ev, n in (events or {}).items():
        key = ("nonevents", ev)
        for r in rows:
            lines.append(([(r, ev), (r, key), (r, n)], [1, 1, -1]))
        if total_row is not None:
            lines.append(([(r, key) for r in body] + [(total_row, key)], [1] * len(body) + [-1]))
    return lines


def true_values(table, events=None):
    values = {(r, c): int(table.loc[r, c]) for r in table.index for c in table.columns
              if pd.api.types.is_integer_dtype(table[c])}
    for ev, n in (events or {}).items():
        for r in table.index:
            values[(r, ("nonevents", ev))] = int(table.loc[r, n]) - int(table.loc[r, ev])
    return values


def subtraction_attack(published, lines):
    """Repeatedly solve any line with exactly one unknown cell; return what was recovered."""
    known = dict(published)
    recovered = {}
    progress = True
    while progress:
        progress = False
        for cells, coefs in lines:
            unknown = [(c, k) for c, k in zip(cells, coefs, strict=True) if c not in known]
            if len(unknown) != 1:
                continue
            cell, coef = unknown[0]
            rest = sum(k * known[c] for c, k in zip(cells, coefs, strict=True) if c != cell)
            known[cell] = recovered[cell] = -rest // coef
            progress = True
    return recovered


def linear_attack(unknown, lines):
    """Unknown cells fixed by the linear system of all published sums (numpy SVD)."""
    idx = {c: i for i, c in enumerate(unknown)}
    rows = []
    for cells, coefs in lines:
        row = np.zeros(len(unknown))
        for c, k in zip(cells, coefs, strict=True):
            if c in idx:
                row[idx[c]] += k
        if row.any():
            rows.append(row)
    if not rows or not unknown:
        return set()
    a = np.array(rows)
    _u, s, vh = np.linalg.svd(a)
    rank = int((s > 1e-9).sum())
    null = vh[rank:].T  # columns span the solutions of a x = 0
    return {c for c, i in idx.items() if null.shape[1] == 0 or np.allclose(null[i], 0, atol=1e-9)}


def assert_safe(table, res, count_cols, threshold, total_row=None, total_col=None, events=None):
    """No published count in 1..threshold-1; nothing hidden can be worked out."""
    lines = table_lines(table, count_cols, total_row, total_col, events)
    values = true_values(table, events)
    published = {}
    hidden = set()
    for (r, c), v in values.items():
        if isinstance(c, tuple):
            hidden.add((r, c))  # implied cells are never published
            continue
        if bool(res.mask.loc[r, c]):
            hidden.add((r, c))
            assert pd.isna(res.table.loc[r, c])
        else:
            published[(r, c)] = v
            assert int(res.table.loc[r, c]) == v, "a published cell must keep its true value"
            assert not 1 <= v < threshold, f"published small count at {(r, c)}"
    protect = {c for c in hidden if not isinstance(c[1], tuple) or 1 <= values[c] < threshold}
    by_subtraction = subtraction_attack(published, lines)
    assert not protect & set(by_subtraction), f"recovered by subtraction: {protect & set(by_subtraction)}"
    by_algebra = linear_attack(sorted(hidden, key=str), lines)
    assert not protect & by_algebra, f"recovered by solving the totals: {protect & by_algebra}"


# ---------------------------------------------------------------------------------------
# Scalar helpers
# ---------------------------------------------------------------------------------------


def test_scalar_suppression_boundaries():
    assert [suppress_value(n) for n in (0, 1, 10, 11, 250)] == [0, None, None, 11, 250]
    assert suppress_value(None) is None
    assert suppress_value(np.int64(7)) is None and suppress_value(12.0) == 12
    assert suppress_value(4, threshold=5) is None and suppress_value(5, threshold=5) == 5
    assert suppress_value(3, threshold=1) == 3  # threshold 1: nothing is small
    assert [is_sensitive(n) for n in (0, 1, 10, 11)] == [False, True, True, False]
    with pytest.raises(ValueError):
        suppress_value(-1)
    with pytest.raises(ValueError):
        suppress_value(2.5)
    with pytest.raises(ValueError):
        suppress_value(3, threshold=0)


def test_json_count_and_format_count():
    assert json_count(0) == {"value": 0, "suppressed": False}
    assert json_count(10) == {"value": None, "suppressed": True}
    assert json_count(11) == {"value": 11, "suppressed": False}
    assert json.dumps(json_count(3)) == '{"value": null, "suppressed": true}'
    assert format_count(0) == "0"
    assert format_count(1) == "<11"
    assert format_count(10) == "<11"
    assert format_count(11) == "11"
    assert format_count(104233) == "104,233"
    assert format_count(4, threshold=5) == "<5"
    assert format_count(None) == SUPPRESSED_TEXT


def test_format_rate_hides_rates_from_small_counts():
    assert format_rate(31, 50) == "62%"
    assert format_rate(24, 50) == "48%"
    assert format_rate(25, 40) == "63%"  # 62.5 rounds half-up, not to even
    assert format_rate(125, 1000, digits=1) == "12.5%"
    assert format_rate(0, 40) == "0%"
    assert format_rate(40, 40) == "100%"
    assert format_rate(5, 50) == SUPPRESSED_TEXT  # numerator 1-10
    assert format_rate(0, 8) == SUPPRESSED_TEXT  # denominator 1-10
    assert format_rate(45, 50) == SUPPRESSED_TEXT  # 5 without the event: 50 - 45
    assert format_rate(None, 50) == SUPPRESSED_TEXT
    assert format_rate(0, 0) == "n/a"
    with pytest.raises(ValueError):
        format_rate(6, 5)


# ---------------------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------------------

COUNTY = pd.DataFrame(
    {
        "reunification": [34, 22, 51, 6, 113],
        "relative": [12, 4, 19, 0, 35],
        "adoption": [3, 15, 27, 2, 47],
        "other": [0, 8, 14, 1, 23],
    },
    index=["Adams", "Boone", "Clay", "Dallas", "Total"],
)
COUNTY["total"] = COUNTY.sum(axis=1)
COUNTY_COLS = ["reunification", "relative", "adoption", "other"]


def test_small_table_with_many_small_cells():
    res = suppress_counts(COUNTY, COUNTY_COLS, total_row="Total", total_col="total")
    t = res.table
    # Primary: the seven cells from 1 to 10 (Adams adoption 3, Boone relative 4 and
    # other 8, Dallas 6, 2, 1 and its total 9).
    assert res.primary.to_numpy().sum() == 7
    assert res.primary.loc["Dallas"].tolist() == [True, False, True, True, True]
    # Complementary, by the line rule:
    #  Adams row has only adoption hidden -> smallest non-zero of 34, 12, 0, 49 is relative 12;
    #  reunification column has only Dallas hidden -> smallest of 34, 22, 51, 113 is Boone 22;
    #  total column has only Dallas hidden -> smallest of 49, 49, 111, 218: Adams' 49
    #  (tie with Boone's 49, broken by table order).
    assert res.complementary.to_numpy().sum() == 3
    assert bool(res.complementary.loc["Adams", "relative"])
    assert bool(res.complementary.loc["Boone", "reunification"])
    assert bool(res.complementary.loc["Adams", "total"])
    assert t.loc["Adams"].tolist()[0] == 34 and t.loc["Adams", "other"] == 0  # zero is published
    assert t.loc["Clay"].tolist() == [51, 19, 27, 14, 111]
    assert t.loc["Total"].tolist() == [113, 35, 47, 23, 218]
    assert t.loc["Boone", "adoption"] == 15 and t.loc["Boone", "total"] == 49
    assert res.n_suppressed == 10
    # No published number from 1 to 10, and nothing hidden can be worked out.
    published = t[COUNTY_COLS + ["total"]].to_numpy().ravel()
    assert not any(1 <= v < 11 for v in published if not pd.isna(v))
    assert_safe(COUNTY, res, COUNTY_COLS, 11, total_row="Total", total_col="total")
    assert audit_suppression(res, COUNTY) == []
    # Every row and column with a total has 0 or at least 2 hidden cells.
    assert res.mask[COUNTY_COLS + ["total"]].sum(axis=1).tolist() == [3, 3, 0, 4, 0]
    assert res.mask[COUNTY_COLS + ["total"]].sum(axis=0).tolist() == [2, 2, 2, 2, 2]


def test_without_complements_a_small_cell_is_recovered():
    # The checker is not vacuous: hiding only the primary cells leaks them.
    res = suppress_counts(COUNTY, COUNTY_COLS, total_row="Total", total_col="total")
    leaky = res.mask.copy()
    leaky.loc[:, :] = res.primary
    published = {(r, c): int(COUNTY.loc[r, c]) for r in COUNTY.index for c in COUNTY.columns if not leaky.loc[r, c]}
    lines = table_lines(COUNTY, COUNTY_COLS, "Total", "total")
    recovered = subtraction_attack(published, lines)
    assert recovered[("Adams", "adoption")] == 3
    assert recovered[("Dallas", "reunification")] == 6


def test_events_with_a_small_complement_and_rates():
    # Treated: 35 of 40 reunified, so 5 were not: n - events is recoverable from 40 and 35.
    t = pd.DataFrame({"n": [40, 52, 92], "events": [35, 20, 55]}, index=["treated", "comparison", "total"])
    t["pct"] = 100 * t["events"] / t["n"]
    res = suppress_counts(t, ["n"], total_row="total", events={"events": "n"}, rate_cols={"pct": ("events", "n")})
    assert res.table["n"].tolist() == [40, 52, 92]  # n stays: events is hidden, so n - events is unknown
    assert res.table["events"].isna().tolist() == [True, True, False]  # comparison's 20 is a complement
    assert res.table.loc["total", "events"] == 55
    assert res.table["pct"].isna().tolist() == [True, True, False]
    assert round(float(res.table.loc["total", "pct"]), 2) == 59.78
    assert res.primary.to_numpy().sum() == 0  # no published cell was itself small
    assert_safe(t, res, ["n"], 11, total_row="total", events={"events": "n"})
    assert audit_suppression(res, t) == []
    records = res.to_records()
    assert records[0] == {"index": "treated", "n": 40, "n_suppressed": False, "events": None,
                          "events_suppressed": True, "pct": None, "pct_suppressed": True}
    assert records[2]["events"] == 55 and records[2]["events_suppressed"] is False
    json.dumps(records)  # JSON-ready


def test_events_small_in_either_direction_per_arm():
    t = pd.DataFrame({"arm": ["treated", "comparison"], "n": [60, 75], "events": [7, 70]})
    res = suppress_counts(t, ["n"], events={"events": "n"})
    # 7 events (primary) and 75 - 70 = 5 without (complement); n per arm stays published.
    assert res.table["events"].isna().tolist() == [True, True]
    assert res.table["n"].tolist() == [60, 75]
    assert res.primary["events"].tolist() == [True, False]
    t2 = pd.DataFrame({"n": [8, 75], "events": [0, 30]})
    res2 = suppress_counts(t2, ["n"], events={"events": "n"})
    # n = 8 is hidden; events 0 stays (0 of an unknown n reveals nothing small).
    assert res2.table["n"].isna().tolist() == [True, False]
    assert res2.table["events"].tolist() == [0, 30]


def test_rate_columns_follow_their_counts():
    t = pd.DataFrame({"county": ["a", "b", "c"], "moves": [4, 30, 0], "days": [2000, 9, 5000]})
    t["per_1000"] = 1000 * t["moves"] / t["days"]
    res = suppress_counts(t, ["moves", "days"], rate_cols={"per_1000": ("moves", "days")})
    assert res.table["per_1000"].isna().tolist() == [True, True, False]  # 4 moves; 9 days
    assert res.table.loc[2, "per_1000"] == 0.0
    assert res.formatted()["per_1000"].tolist() == [SUPPRESSED_TEXT, SUPPRESSED_TEXT, "0.0"]
    assert res.formatted()["moves"].tolist() == [SUPPRESSED_TEXT, "30", "0"]
    table, mask = res  # unpacks as (table, mask)
    assert mask["county"].sum() == 0 and table["county"].tolist() == ["a", "b", "c"]


def test_all_ones_in_a_line_are_protected():
    # Two hidden 1s with a published total: their sum, 2, pins each to 1 (a hidden count
    # is at least 1). A third cell must be hidden.
    t = pd.DataFrame({"a": [1], "b": [1], "c": [30], "total": [32]})
    res = suppress_counts(t, ["a", "b", "c"], total_col="total")
    assert res.mask.loc[0].tolist() == [True, True, True, False]


def test_flow_table_with_row_relations():
    flow = pd.DataFrame(
        {"treated": [120, 4, 116, 9, 107], "comparison": [900, 31, 869, 40, 829]},
        index=["eligible", "stay < 8 days", "after stays", "age 18+", "analysed"],
    )
    rel = {"eligible": ["stay < 8 days", "after stays"], "after stays": ["age 18+", "analysed"]}
    res = suppress_counts(flow, ["treated", "comparison"], row_sums=rel)
    # 4 and 9 are small. eligible = 4 + after stays would give the 4 away (120 - 116), so
    # the next-smallest non-zero cell of that relation, 116, is hidden too; that also
    # protects the 9 (after stays = 9 + analysed now has two unknowns), so 107 stays.
    assert res.primary["treated"].tolist() == [False, True, False, True, False]
    assert res.mask["treated"].tolist() == [False, True, True, True, False]
    assert res.table["treated"].tolist()[::4] == [120, 107]
    assert res.table["comparison"].tolist() == [900, 31, 869, 40, 829]
    assert audit_suppression(res, flow) == []


def test_exact_audit_catches_what_lines_miss():
    # After the line rule every row and column below holds 0 or >= 2 hidden cells, yet r2's
    # 3 in c2 still follows from the totals: r1: c0 + c2 = 27 - 15; column c0: r1 = T (the
    # other cells are 0); row T: T.c0 + T.c2 = 55 - 28; column c2: 12 + r1.c2 + r2.c2 = T.c2,
    # so r2.c2 = 27 - 12 - 12 = 3. The exact audit hides r0's 12 in c2 as well.
    t = pd.DataFrame({"c0": [0, 3, 0, 3], "c1": [12, 15, 1, 28], "c2": [12, 9, 3, 24]}, index=["r0", "r1", "r2", "T"])
    t["tot"] = t.sum(axis=1)
    res = suppress_counts(t, ["c0", "c1", "c2"], total_row="T", total_col="tot")
    assert res.mask.astype(int).to_numpy().tolist() == [
        [0, 1, 1, 1],
        [1, 0, 1, 0],
        [0, 1, 1, 1],
        [1, 0, 1, 0],
    ]
    assert bool(res.complementary.loc["r0", "c2"])
    assert_safe(t, res, ["c0", "c1", "c2"], 11, total_row="T", total_col="tot")
    # Publishing that 12 again gives the 3 away, to the independent attacker and the audit.
    leaky = res.mask.copy()
    leaky.loc["r0", "c2"] = False
    hidden = [(r, c) for r in t.index for c in t.columns if leaky.loc[r, c]]
    assert ("r2", "c2") in linear_attack(hidden, table_lines(t, ["c0", "c1", "c2"], "T", "tot"))
    res.mask.loc["r0", "c2"] = False
    assert audit_suppression(res, t) == [("r2", "c2")]


def test_random_tables_survive_both_attackers():
    rng = np.random.default_rng(7)
    for _ in range(30):
        body = rng.choice([0, 2, 5, 9, 12, 15, 40, 90], size=(5, 5))
        t = pd.DataFrame(body, columns=list("abcde"), index=list("vwxyz"))
        t.loc["T"] = t.sum()
        t["tot"] = t.sum(axis=1)
        res = suppress_counts(t, list("abcde"), total_row="T", total_col="tot")
        assert_safe(t, res, list("abcde"), 11, total_row="T", total_col="tot")
        assert audit_suppression(res, t) == []


def test_inconsistent_tables_are_refused():
    bad = COUNTY.copy()
    bad.loc["Adams", "total"] = 50
    with pytest.raises(ValueError, match="does not add up"):
        suppress_counts(bad, COUNTY_COLS, total_row="Total", total_col="total")
    with pytest.raises(ValueError, match="missing value"):
        suppress_counts(pd.DataFrame({"n": [1.0, np.nan]}), ["n"])
    with pytest.raises(ValueError, match="exceeds"):
        suppress_counts(pd.DataFrame({"n": [20], "e": [21]}), ["n"], events={"e": "n"})
    with pytest.raises(ValueError, match="not in the table"):
        suppress_counts(COUNTY, ["nope"])


def test_zero_threshold_one_and_empty_tables():
    t = pd.DataFrame({"n": [0, 0, 3]})
    assert suppress_counts(t, ["n"], threshold=1).n_suppressed == 0
    assert suppress_counts(t, ["n"]).table["n"].isna().tolist() == [False, False, True]
    empty = pd.DataFrame({"n": pd.Series([], dtype="int64")})
    assert suppress_counts(empty, ["n"]).table.empty


# ---------------------------------------------------------------------------------------
# Property-based
# ---------------------------------------------------------------------------------------

small_or_large = st.one_of(st.integers(0, 12), st.integers(0, 12), st.integers(0, 400))


@st.composite
def count_tables(draw):
    n_rows = draw(st.integers(1, 5))
    n_cols = draw(st.integers(1, 4))
    cols = [f"c{j}" for j in range(n_cols)]
    body = pd.DataFrame(
        [[draw(small_or_large) for _ in cols] for _ in range(n_rows)], columns=cols, index=[f"r{i}" for i in range(n_rows)]
    )
    with_total_row = draw(st.booleans())
    with_total_col = draw(st.booleans())
    if with_total_row:
        body.loc["T"] = body.sum()
    if with_total_col:
        body["tot"] = body.sum(axis=1)
    threshold = draw(st.sampled_from([3, 5, 11]))
    return body, cols, ("T" if with_total_row else None), ("tot" if with_total_col else None), threshold


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(count_tables())
def test_property_random_count_tables(case):
    table, cols, total_row, total_col, threshold = case
    res = suppress_counts(table, cols, threshold=threshold, total_row=total_row, total_col=total_col)
    counts = cols + ([total_col] if total_col else [])
    # Primary suppression is exactly the cells from 1 to threshold - 1.
    small = table[counts].apply(lambda s: s.between(1, threshold - 1))
    assert (res.primary[counts] == small).all().all()
    # Every row and every column that has a total holds 0 or at least 2 hidden cells.
    hidden = res.mask[counts]
    if total_col:
        assert not (hidden.sum(axis=1) == 1).any()
    if total_row:
        assert not (hidden.sum(axis=0) == 1).any()
    # No published cell in 1..threshold-1; nothing hidden recoverable by subtraction or algebra.
    assert_safe(table, res, cols, threshold, total_row=total_row, total_col=total_col)


@st.composite
def event_tables(draw):
    n_arms = draw(st.integers(1, 4))
    ns = [draw(st.one_of(st.integers(0, 15), st.integers(0, 200))) for _ in range(n_arms)]
    evs = [draw(st.integers(0, n)) for n in ns]
    t = pd.DataFrame({"n": ns, "events": evs}, index=[f"arm{i}" for i in range(n_arms)])
    with_total = draw(st.booleans())
    if with_total:
        t.loc["all"] = t.sum()
    return t, ("all" if with_total else None)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(event_tables())
def test_property_events_never_reveal_small_non_events(case):
    t, total_row = case
    t = t.copy()
    t["pct"] = np.where(t["n"] > 0, 100 * t["events"] / t["n"].where(t["n"] > 0, 1), np.nan)
    res = suppress_counts(t, ["n"], total_row=total_row, events={"events": "n"}, rate_cols={"pct": ("events", "n")})
    shown = res.table
    for r in t.index:
        n, e = shown.loc[r, "n"], shown.loc[r, "events"]
        if not pd.isna(n) and not pd.isna(e):
            assert not 1 <= int(n) - int(e) < 11  # n - events, as a reader computes it
        if not pd.isna(shown.loc[r, "pct"]):
            assert not pd.isna(n) and not pd.isna(e)
    assert_safe(t, res, ["n"], 11, total_row=total_row, events={"events": "n"})
    assert audit_suppression(res, t) == []


# ---------------------------------------------------------------------------------------
# Identifier guard
# ---------------------------------------------------------------------------------------


def make_extract(child_ids, family_ids, report_ids, birth_dates, extract_date="2023-12-31", config=None):
    children = pd.DataFrame(
        {"child_id": child_ids, "birth_date": pd.to_datetime(birth_dates), "family_id": family_ids}
    )
    reports = pd.DataFrame(
        {"child_id": child_ids[: len(report_ids)], "report_date": pd.to_datetime(["2020-01-01"] * len(report_ids)),
         "substantiated": [True] * len(report_ids), "report_id": report_ids}
    )
    episodes = pd.DataFrame({"child_id": child_ids, "removal_date": pd.to_datetime(["2020-02-01"] * len(child_ids))})
    return Extract({"children": children, "reports": reports, "episodes": episodes}, extract_date, config=config)


@pytest.fixture
def coded_guard():
    ext = make_extract(
        ["C000123", "C000456", "C1"], ["F0042", "F0042", "F0077"], ["R-2019-0007"],
        ["2015-03-04", "2012-11-30", "2016-01-01"],
        config=Config.from_dict({"data": {"extract_date": "2023-12-31"}, "seed": 20121130,
                                 "cohort": {"entry_from": "2016-01-01", "entry_to": "2021-12-31"}}),
    )
    return IdentifierGuard.from_extract(ext)


@pytest.fixture
def numeric_guard():
    # Ids that look like ordinary numbers: a pure substring search would flag every count.
    ext = make_extract(
        ["104233", "98871", "12", "2019", "365"], ["5521", "77", "0077", "660012", "5521"], ["31", "4410021"],
        ["2014-06-09", "2017-12-25", "2019-02-03", "2010-10-10", "2011-01-31"],
    )
    return IdentifierGuard.from_extract(ext)


def kinds(findings):
    return sorted({f.kind for f in findings})


def test_guard_holds_every_identifier_and_never_shows_them(coded_guard):
    # 2016-01-01 is a child's birth date but also the configured entry_from: allowed.
    assert repr(coded_guard) == "IdentifierGuard(6 ids, 2 birth dates)"
    with pytest.raises(PrivacyError) as exc:
        coded_guard.check_text("title\nchildren C000123 and C000456 (family F0042)", "report.html")
    msg = str(exc.value)
    assert "report.html" in msg and "child id" in msg and "family id" in msg and "line 2" in msg
    for secret in ("C000123", "C000456", "F0042"):
        assert secret not in msg and secret.lower() not in msg
    assert isinstance(exc.value, PpevalError) and exc.value.exit_status == 1
    assert {str(f) for f in exc.value.findings} == {"report.html, line 2: child id", "report.html, line 2: family id"}


@pytest.mark.parametrize(
    "text, expected",
    [
        ("child C000123 left care", ["child id"]),
        ("id=c000123;", ["child id"]),  # case-insensitive
        ('"C000456"', ["child id"]),
        ("report R-2019-0007 was screened in", ["report id"]),
        ("family F0077.", ["family id"]),
        ("born 2015-03-04", ["birth date"]),
        ("born 03/04/2015", ["birth date"]),
        ("born 3/4/2015", ["birth date"]),
        ("dob 20150304", ["birth date"]),
        ("born 2012-11-30, seed 20121130", ["birth date"]),  # the seed token is allowed, the date is not
        ("2012-11-30T00:00:00", ["birth date"]),
        ("born 2012/11/30", ["birth date"]),
        ("born March 4, 2015", ["birth date"]),
        ("born 30 Nov 2012", ["birth date"]),
        ("C000123 born 2015-03-04", ["birth date", "child id"]),
    ],
)
def test_guard_positives_coded_ids(coded_guard, text, expected):
    assert kinds(coded_guard.scan_text(text, "x")) == expected


@pytest.mark.parametrize(
    "text",
    [
        "C0001234 and XC000123 and C000123X",  # other tokens that contain an id
        "R-2019-00071",
        "born 2015-03-05, 2015-04-03 in 04/03/2015",  # other dates; day-first not read
        "C1 in table C1, seed 20121130",  # short id (free text skips it); the config seed is allowed
        "extract date 2023-12-31, entries 2016-01-01 to 2021-12-31 (01/01/2016)",  # allowed config dates
        "12 children, 2019 entries, 365 days, 62% vs 48%",
    ],
)
def test_guard_negatives_coded_ids(coded_guard, text):
    assert coded_guard.scan_text(text, "x") == []


@pytest.mark.parametrize(
    "text, expected",
    [
        ("case 104233 was reviewed", ["child id"]),
        ("case 0104233", []),  # another token: leading zeros are only dropped from the id
        ("child 98871,", ["child id"]),
        ("104233.0", ["child id"]),  # an id written as a float
        ("families 660012 and 4410021", ["family id", "report id"]),
        ("born 2014-06-09", ["birth date"]),
    ],
)
def test_guard_positives_numeric_ids(numeric_guard, text, expected):
    assert kinds(numeric_guard.scan_text(text, "x")) == expected


@pytest.mark.parametrize(
    "text",
    [
        "12 children, 2019 entries, 365 days, 77 families, 31 reports, 5521 hours",  # short numeric ids
        "104,233 days in care; 98,871 nights",  # counts with thousands separators
        "p = 0.104233, HR 0.98871",  # decimals
        "1104233 and 988710",
        "x: 1.04233e+05",
    ],
)
def test_guard_negatives_numeric_ids(numeric_guard, text):
    assert numeric_guard.scan_text(text, "x") == []


def test_guard_structured_outputs_with_numeric_ids(numeric_guard, tmp_path):
    # In id fields every id counts, however short, after normalising the number.
    df = pd.DataFrame({"child_id": [12.0, 7.0], "family_id": ["0077", "9"], "n": [12, 2019], "days": [365, 104233]})
    found = numeric_guard.scan_frame(df, "tables/units.csv")
    assert {str(f) for f in found} == {
        "tables/units.csv, line 1, column 'child_id': child id",
        "tables/units.csv, line 1, column 'family_id': family id",
    }
    # Counts that equal ids are not ids outside id fields.
    counts = pd.DataFrame({"arm": ["treated", "comparison"], "n": [12, 365], "days": [104233, 98871]})
    assert numeric_guard.scan_frame(counts, "t") == []
    # CSV and JSON read as text: the same rules.
    (tmp_path / "tables").mkdir()
    (tmp_path / "tables" / "ok.csv").write_text("arm,n,days\ntreated,12,104233\ncomparison,2019,365\n")
    (tmp_path / "tables" / "bad.csv").write_text("arm,ChildID,n\ntreated,3,12\ntreated,2019,14\n")
    (tmp_path / "tables" / "wide.csv").write_text("arm,104233\ntreated,40\n")
    (tmp_path / "results.json").write_text(json.dumps(
        {"cohort": {"treated": 12, "comparison": 365, "events": {"reunification": {"treated": 2019}}},
         "matching": {"treated_matched": 104233}, "examples": [{"child_id": 98871}], "note": "case 660012"}
    ))
    found = numeric_guard.scan_dir(tmp_path)
    assert sorted(str(f) for f in found) == [
        "results.json, column 'examples.child_id': child id",
        "results.json, column 'note': family id",
        "tables/bad.csv, line 3, column 'ChildID': child id",
        "tables/wide.csv, line 1, column '*': child id",
    ]


def test_guard_frame_checks_dates_index_and_column_names(coded_guard):
    df = pd.DataFrame({"when": pd.to_datetime(["2015-03-04", "2020-01-01"]), "n": [12, 13]})
    assert [str(f) for f in coded_guard.scan_frame(df, "t")] == ["t, line 1, column 'when': birth date"]
    wide = pd.DataFrame({"C000123": [1]}, index=pd.Index(["F0042"], name="family"))
    assert kinds(coded_guard.scan_frame(wide, "t")) == ["child id", "family id"]
    assert all("C000123" not in str(f) for f in coded_guard.scan_frame(wide, "t"))
    with pytest.raises(PrivacyError):
        coded_guard.check_frame(wide, "t")
    coded_guard.check_frame(pd.DataFrame({"arm": ["treated"], "n": [40]}), "t")  # no error


def _png(title=None, metadata=None):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2, 2))
    ax.bar(["treated", "comparison"], [62, 48])
    if title:
        ax.set_title(title)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata=metadata)
    plt.close(fig)
    return buf.getvalue()


def _figure_bytes(fmt, title):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 12, 24], [0.2, 0.5, 0.6])
    ax.set_title(title)
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt)
    plt.close(fig)
    return buf.getvalue()


def test_scan_dir_over_every_artefact_type(coded_guard, tmp_path):
    out = tmp_path / "report"
    (out / "charts").mkdir(parents=True)
    (out / "tables").mkdir()
    clean_png = _png()
    leaky_png = _png(metadata={"Title": "Reunification, C000456", "Author": "born 3/4/2015"})
    (out / "charts" / "ok.png").write_bytes(clean_png)
    (out / "charts" / "meta.png").write_bytes(leaky_png)
    (out / "charts" / "ok.svg").write_bytes(_figure_bytes("svg", "Returned home: 62% vs 48%"))
    (out / "charts" / "bad.svg").write_bytes(_figure_bytes("svg", "child C000123"))
    (out / "charts" / "ok.pdf").write_bytes(_figure_bytes("pdf", "Returned home: 62% vs 48%"))
    (out / "charts" / "bad.pdf").write_bytes(_figure_bytes("pdf", "family F0042"))
    embedded = base64.b64encode(leaky_png).decode()
    (out / "report.html").write_text(
        "<html><body>\n<h1>Report</h1>\n<p>62% vs 48%</p>\n"
        f'<img src="data:image/png;base64,{embedded}">\n<p>&#67;000123</p>\n</body></html>\n'
    )
    (out / "factsheet.html").write_text("<p>Children returned home more often: 62% vs 48%</p>")
    (out / "results.json").write_text(json.dumps({"cohort": {"treated": 40}, "seed": 20121130}))
    (out / "tables" / "flow.csv").write_text("step,treated,comparison\neligible,120,900\n")
    (out / "run.log").write_text("loaded children.csv\nwarning: row 3: child R-2019-0007 has no episode\n")
    found = coded_guard.scan_dir(out)
    # matplotlib writes each text of an SVG as a comment above its glyph paths
    svg_line = (out / "charts" / "bad.svg").read_text().splitlines().index("    <!-- child C000123 -->") + 1
    assert sorted(str(f) for f in found) == [
        "charts/bad.pdf (PDF page text): family id",
        f"charts/bad.svg, line {svg_line}: child id",
        "charts/meta.png (PNG tEXt chunk): birth date",
        "charts/meta.png (PNG tEXt chunk): child id",
        "report.html (decoded entities): child id",
        "report.html (embedded image/png #1.png: PNG tEXt chunk): birth date",
        "report.html (embedded image/png #1.png: PNG tEXt chunk): child id",
        "run.log, line 2: report id",
    ]
    assert {f.where for f in found} == {
        "charts/bad.pdf", "charts/bad.svg", "charts/meta.png", "report.html", "run.log"
    }
    with pytest.raises(PrivacyError) as exc:
        coded_guard.check_dir(out)
    assert "C000123" not in str(exc.value) and "R-2019-0007" not in str(exc.value)
    assert "run.log: refusing to publish: it contains a report id from the extract (line 2)" in str(exc.value)


def test_scan_dir_numeric_ids_clean_report_has_no_findings(numeric_guard, tmp_path):
    # A realistic clean report whose numbers collide with short numeric ids.
    (tmp_path / "charts").mkdir()
    (tmp_path / "charts" / "km.png").write_bytes(_png("12 vs 365 days"))
    (tmp_path / "charts" / "km.svg").write_bytes(_figure_bytes("svg", "2019 entries: 77 vs 31"))
    (tmp_path / "charts" / "km.pdf").write_bytes(_figure_bytes("pdf", "5521 hours, 104,233 days"))
    (tmp_path / "results.json").write_text(json.dumps(
        {"cohort": {"treated": 12, "comparison": 365}, "total_days": 104233, "p_value": 0.98871}
    ))
    (tmp_path / "report.html").write_text("<p>12 children; 2019; 104,233 days in care; p = 0.104233</p>")
    assert numeric_guard.scan_dir(tmp_path) == []
    (tmp_path / "leak.txt").write_text("see case 98871\n")
    assert [str(f) for f in numeric_guard.scan_dir(tmp_path)] == ["leak.txt, line 1: child id"]


def test_guard_png_trailing_bytes_and_mixed_birth_date_inputs():
    g = IdentifierGuard(child_ids=["C000123"], birth_dates=["2015-03-04", "11/30/2012", None, pd.NaT])
    assert repr(g) == "IdentifierGuard(1 ids, 2 birth dates)"
    assert kinds(g.scan_text("born 2012-11-30", "x")) == ["birth date"]
    png = _png() + b"\x00\x01hidden: C000123\x00"
    assert [str(f) for f in g.scan_bytes(png, "c.png")] == ["c.png (PNG trailing bytes): child id"]


def test_scan_zip_and_gzip_members(coded_guard):
    import gzip
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("xl/sharedStrings.xml", "<sst><si><t>C000456</t></si></sst>")
    assert [str(f) for f in coded_guard.scan_bytes(buf.getvalue(), "tables.xlsx")] == [
        "tables.xlsx (xl/sharedStrings.xml), line 1: child id"
    ]
    gz = gzip.compress(b"ok\nF0077\n")
    assert [str(f) for f in coded_guard.scan_bytes(gz, "run.log.gz")] == ["run.log.gz (run.log), line 2: family id"]


# ---------------------------------------------------------------------------------------
# Pseudonymised export
# ---------------------------------------------------------------------------------------

KEY = "k3y-for-tests-" + "x7Qp2mZ9" * 3


def test_pseudonymise_known_answer_stability_and_key_dependence():
    df = pd.DataFrame(
        {
            "child_id": ["C000123", "C000456", None],
            "family_id": ["F0042", "F0042", "F0077"],
            "birth_date": pd.to_datetime(["2015-03-04", "2012-11-30", "2016-01-01"]),
            "treated": [True, False, True],
            "_source_file": ["children.csv"] * 3,
            "_source_row": [2, 3, 4],
        }
    )
    out = pseudonymise(df, KEY)
    expected = hmac.new(KEY.encode(), b"ppeval-pseudonym-v1\0C000123", hashlib.sha256).hexdigest()[:16]
    assert out.loc[0, "child_id"] == expected
    assert pd.isna(out.loc[2, "child_id"])
    assert out.loc[0, "family_id"] == out.loc[1, "family_id"] != out.loc[2, "family_id"]
    assert out.columns.tolist() == ["child_id", "family_id", "birth_year", "treated"]
    assert out["birth_year"].tolist() == [2015, 2012, 2016]
    assert df.loc[0, "child_id"] == "C000123"  # input untouched
    pd.testing.assert_frame_equal(out, pseudonymise(df, KEY))  # stable for the same key
    other = pseudonymise(df, KEY.encode() + b"!")
    assert (other["child_id"].dropna() != out["child_id"].dropna()).all()
    dropped = pseudonymise(df, KEY, birth_dates="drop", length=32)
    assert "birth_year" not in dropped.columns and len(dropped.loc[0, "child_id"]) == 32
    # Links across tables survive: the same id gives the same pseudonym.
    episodes = pd.DataFrame({"child_id": ["C000456", "C000123"]})
    assert pseudonymise(episodes, KEY)["child_id"].tolist() == [out.loc[1, "child_id"], expected]
    # Nothing identifying is left in the export.
    guard = IdentifierGuard(child_ids=["C000123", "C000456"], family_ids=["F0042", "F0077"],
                            birth_dates=["2015-03-04", "2012-11-30", "2016-01-01"])
    assert guard.scan_frame(out, "export.csv") == []


@pytest.mark.parametrize("key", ["", b"", "short", b"\0" * 32, "a" * 40])
def test_pseudonymise_refuses_weak_keys(key):
    with pytest.raises(ConfigError):
        pseudonymise(pd.DataFrame({"child_id": ["C1"]}), key)


# ---------------------------------------------------------------------------------------
# Atomic output
# ---------------------------------------------------------------------------------------


def snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def leftovers(final: Path) -> list[str]:
    return sorted(p.name for p in final.parent.iterdir() if p.name.startswith(f".{final.name}."))


def write_report(root: Path, tag: str, n_files: int = 5) -> None:
    (root / "charts").mkdir(exist_ok=True)
    for i in range(n_files):
        (root / "charts" / f"c{i}.svg").write_text(f"<svg>{tag} {i}</svg>")
    (root / "results.json").write_text(json.dumps({"run": tag}))


@pytest.fixture
def previous(tmp_path):
    final = tmp_path / "reports" / "demo"
    with atomic_output_dir(final) as tmp:
        write_report(tmp, "old")
    return final, snapshot(final)


def test_atomic_dir_success_replaces_whole_folder(previous):
    final, old = previous
    assert old["results.json"] == b'{"run": "old"}' and len(old) == 7  # 6 files + the manifest
    with atomic_output_dir(final) as tmp:
        assert tmp.parent == final.parent and tmp != final
        (tmp / "results.json").write_text('{"run": "new"}')
    now = snapshot(final)
    assert sorted(now) == [".ppeval-output.json", "results.json"]  # old charts are gone: no mix
    assert now["results.json"] == b'{"run": "new"}'
    listed = json.loads(now[".ppeval-output.json"])["files"]
    assert [f["path"] for f in listed] == ["results.json"] and listed[0]["size"] == 14
    assert leftovers(final) == []


def test_atomic_dir_exception_leaves_previous_byte_identical(previous):
    final, old = previous
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_output_dir(final) as tmp:
            write_report(tmp, "new", n_files=2)
            (tmp / "results.json").write_text("{partial")
            raise RuntimeError("boom")
    assert snapshot(final) == old
    assert leftovers(final) == []
    fresh = final.parent / "never"
    with pytest.raises(KeyboardInterrupt):
        with atomic_output_dir(fresh) as tmp:
            (tmp / "a").write_text("x")
            raise KeyboardInterrupt
    assert not fresh.exists() and leftovers(fresh) == []


@pytest.mark.skipif(os.name != "posix", reason="symlinks")
def test_atomic_dir_refuses_a_symlink_and_keeps_its_target(previous):
    """A symlinked output is never followed into a replacement: swapping its target would
    empty a folder the link's owner may not know ppeval writes."""
    final, old = previous
    link = final.parent / "latest"
    link.symlink_to(final.name)
    with pytest.raises(OutputRefused, match="symbolic link"):
        with atomic_output_dir(link) as tmp:
            (tmp / "results.json").write_text('{"run": "via link"}')
    assert link.is_symlink() and snapshot(final) == old
    assert leftovers(final) == [] and leftovers(link) == []


def test_atomic_dir_refuses_a_file(tmp_path):
    (tmp_path / "out").write_text("not a folder")
    with pytest.raises(ConfigError):
        with atomic_output_dir(tmp_path / "out"):
            pass


CHILD_WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from ppeval.privacy import atomic_output_dir
    final = Path(sys.argv[1])
    with atomic_output_dir(final) as tmp:
        (tmp / "charts").mkdir()
        for i in range(3):
            (tmp / "charts" / f"c{i}.svg").write_text("<svg>new</svg>")
        (tmp / "results.json").write_text('{"run": "ne')
        print("WRITING", flush=True)
        time.sleep(60)
        (tmp / "results.json").write_text('{"run": "new"}')
    """
)


@pytest.mark.skipif(os.name != "posix", reason="SIGKILL")
def test_killed_subprocess_leaves_previous_output_intact(previous):
    final, old = previous
    proc = subprocess.Popen([sys.executable, "-c", CHILD_WRITER, str(final)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "WRITING"
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()
    assert snapshot(final) == old
    assert len(leftovers(final)) == 1  # the killed run's unfinished folder, beside ours
    recover_output_dir(final)
    assert leftovers(final) == [] and snapshot(final) == old
    with atomic_output_dir(final) as tmp:  # the next run works normally
        write_report(tmp, "next", n_files=1)
    assert snapshot(final)["results.json"] == b'{"run": "next"}'


def _run_swap_and_die(final: Path, mode: str, kill_at: int, partial_rmtree: bool) -> int:
    """Fork; the child swaps a new output in and SIGKILLs itself at step ``kill_at`` of the
    swap (a step is a rename, an exchange or a tree removal). Returns the wait status."""
    pid = os.fork()
    if pid == 0:  # child: never returns into pytest
        try:
            from ppeval import privacy

            calls = {"n": 0}

            def step(fn):
                def wrapped(*args, **kwargs):
                    calls["n"] += 1
                    if calls["n"] == kill_at:
                        if partial_rmtree and fn is real_rmtree:
                            files = [p for p in Path(args[0]).rglob("*") if p.is_file()]
                            files[0].unlink()  # the removal got part-way
                        os.kill(os.getpid(), signal.SIGKILL)
                    return fn(*args, **kwargs)

                return wrapped

            real_rmtree = shutil.rmtree
            os.rename = step(os.rename)
            shutil.rmtree = step(real_rmtree)
            if mode == "fallback":
                privacy._exchange = lambda a, b: False
            else:
                privacy._exchange = step(privacy._exchange)
            with privacy.atomic_output_dir(final, durable=False) as tmp:
                write_report(tmp, "new", n_files=2)
        finally:
            os._exit(0)
    _pid, status = os.waitpid(pid, 0)
    return status


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
@pytest.mark.parametrize(
    "mode, kill_at, partial, expect",
    [
        ("fallback", 1, False, "old"),  # before moving the old folder aside
        ("fallback", 2, False, "old"),  # old moved aside, new not yet in place: recovery restores old
        ("fallback", 3, False, "new"),  # before removing the old folder
        ("fallback", 3, True, "new"),  # part-way through removing the old folder
        ("exchange", 1, False, "old"),  # before the atomic exchange
        ("exchange", 2, True, "new"),  # part-way through removing the old folder
    ],
)
def test_kill_at_every_step_of_the_swap(previous, mode, kill_at, partial, expect):
    from ppeval import privacy

    if mode == "exchange" and privacy._RENAMEAT2 is None:
        pytest.skip("no renameat2 here")
    final, old = previous
    new_dir = final.parent / "expected-new"
    new_dir.mkdir()
    write_report(new_dir, "new", n_files=2)
    write_manifest(new_dir)  # as atomic_output_dir writes it into every new output
    new = snapshot(new_dir)
    shutil.rmtree(new_dir)
    status = _run_swap_and_die(final, mode, kill_at, partial)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    # Right after the kill: a complete previous or new output exists, never a mix.
    if final.exists():
        assert snapshot(final) in (old, new)
    else:
        assert mode == "fallback"
        aside = [p for p in final.parent.iterdir() if ".ppeval-old-" in p.name]
        assert len(aside) == 1 and snapshot(aside[0]) == old
    recover_output_dir(final)
    assert snapshot(final) == (old if expect == "old" else new)
    assert leftovers(final) == []


def test_write_bytes_atomic_replaces_or_keeps(tmp_path, monkeypatch):
    p = tmp_path / "tables" / "flow.csv"
    write_bytes_atomic(p, b"step,n\n")
    write_text_atomic(p, "step,n\neligible,120\n")
    assert p.read_bytes() == b"step,n\neligible,120\n"

    def full_disk(src, dst):
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as m:
        m.setattr(os, "replace", full_disk)
        with pytest.raises(OSError, match="No space"):
            write_bytes_atomic(p, b"step,n\neligible,999\n")
    with pytest.raises(TypeError):
        write_bytes_atomic(p, "text is not bytes")  # type: ignore[arg-type]
    assert p.read_bytes() == b"step,n\neligible,120\n"
    assert sorted(x.name for x in p.parent.iterdir()) == ["flow.csv"]


def test_recover_ignores_live_processes_and_foreign_names(tmp_path):
    final = tmp_path / "out"
    final.mkdir()
    live = tmp_path / f".out.ppeval-tmp-{os.getpid()}-abcd"  # our own run, still going
    live.mkdir()
    foreign = tmp_path / ".out.backup"
    foreign.mkdir()
    recover_output_dir(final)
    assert live.exists() and foreign.exists()
