"""The DuckDB engine: AFCARS and NCANDS presets stacked out of core, for national extracts.

The pandas engine (:mod:`ppeval.load.afcars`, :mod:`ppeval.load.ncands`) keeps every record
of every period file in memory while it stacks them into episodes and children: fine for a
state, too much for many years of national files (several hundred thousand AFCARS records
per period, several million NCANDS reports a year). This engine keeps only **one file** in
memory at a time:

1. each file is read and parsed by the very same code as the pandas engine
   (:func:`~ppeval.load.preset.read_preset_file`: the same accepted spellings, the same
   problems naming file, line and column, the same provenance), reduced to its compact
   typed columns, and appended to a DuckDB table; the file's text is then released;
2. DuckDB stacks the records with SQL (``GROUP BY`` child and removal date, "latest
   non-missing value" as a ``max`` over the record's time order) under a memory limit
   (``PPEVAL_DUCKDB_MEMORY_LIMIT``), moving table blocks and sort runs to a temporary
   folder when the records do not fit;
3. only the finished canonical tables (children, episodes, reports) come back as pandas
   DataFrames, with the same rows, order, values and dtypes as the pandas engine gives
   (``tests/test_scale_duckdb.py`` compares them, and the cohorts built on them).

Select it in the config with ``[data] engine = "duckdb"``, or ``engine = "auto"`` to use it
when the preset files add up to more than :data:`AUTO_BYTES` (and DuckDB is installed).
``PPEVAL_DUCKDB_MEMORY_LIMIT`` (default ``"2GB"``) and ``PPEVAL_DUCKDB_TEMP`` (default: the
system's temporary folder) tune DuckDB.

Examples
--------
>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> _ = (d / "FC2019A.tab").write_text(
...     "RecNumbr\\tDOB\\tSex\\tLatRemDt\\tDoDFCDt\\tDISREASN\\tNeglect\\n"
...     "C1\\t2012-05-01\\t2\\t2019-01-10\\t\\t0\\t1\\n")
>>> _ = (d / "FC2019B.tab").write_text(
...     "RecNumbr\\tDOB\\tSex\\tLatRemDt\\tDoDFCDt\\tDISREASN\\tNeglect\\n"
...     "C1\\t2012-05-01\\t2\\t2019-01-10\\t2019-09-30\\t1\\t1\\n")
>>> res = load_afcars_duckdb(["FC2019A.tab", "FC2019B.tab"], base_dir=d)
>>> res.frames()["episodes"][["discharge_date", "discharge_reason"]].astype(str).values.tolist()
[['2019-09-30', 'reunification']]
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from .. import schema
from ..errors import ConfigError
from ..problems import WARNING, Problem
from . import afcars as _afcars
from . import ncands as _ncands
from .canonical import DEFAULT_MAX_PROBLEMS_PER_COLUMN, LoadResult
from .preset import (
    absent_warnings,
    bool_column,
    check_overrides,
    code_column,
    date_column,
    iter_preset_files,
    source_columns,
    string_column,
)

__all__ = ["AUTO_BYTES", "ENGINES", "duckdb_available", "load_afcars_duckdb", "load_ncands_duckdb", "resolve_engine"]

ENGINES = ("pandas", "duckdb", "auto")
#: ``engine = "auto"`` switches to DuckDB past this many bytes of AFCARS and NCANDS files.
#: The pandas engine peaks at 3-4x the bytes it reads (2.1 GiB for the 530 MB extract of
#: 1,000,000 children; 2.2 GiB for bench_load's 840 MB), so past 4 GiB of input it would
#: need 12-16 GiB: more than a 16 GB laptop has to spare.
AUTO_BYTES = 4 * 2**30
# The time key of a record packs (period index, global row) into 45 bits, so that a value
# of up to 18 bits (a date as days since 1800, a code) fits beside it in one BIGINT and
# "the latest valid value" is a plain max() - several times faster than max_by ... FILTER.
_ROW_BITS = 36
_PERIOD_BITS = 9
_DAY0 = "DATE '1800-01-01'"  # the parser turns dates outside 1800-2200 into missing: < 2**18 days
_DATE_BITS = 18
_DUCKDB_HINT = 'data.engine = "duckdb" needs DuckDB: pip install duckdb'


def duckdb_available() -> bool:
    """Whether the ``duckdb`` package can be imported.

    Examples
    --------
    >>> isinstance(duckdb_available(), bool)
    True
    """
    try:
        import duckdb  # noqa: F401
    except ImportError:
        return False
    return True


def _preset_paths(data: Mapping[str, Any], base_dir: Path) -> list[Path]:
    out = []
    for name in ("afcars", "ncands"):
        preset = data.get(name) or {}
        for p in preset.get("paths", []) if isinstance(preset, Mapping) else preset:
            path = Path(p)
            out.append(path if path.is_absolute() else base_dir / path)
    return out


def resolve_engine(config: Mapping[str, Any], base_dir: str | Path = ".") -> str:
    """The engine that will load the presets: ``"pandas"`` or ``"duckdb"``.

    ``"auto"`` chooses DuckDB when it is installed and the AFCARS and NCANDS files add up
    to more than :data:`AUTO_BYTES`.

    Raises
    ------
    ConfigError
        An unknown engine, or ``"duckdb"`` without DuckDB installed.

    Examples
    --------
    >>> resolve_engine({"data": {"engine": "pandas"}})
    'pandas'
    >>> resolve_engine({"data": {"engine": "auto"}})   # no files: small
    'pandas'
    """
    data = config.get("data", {})
    engine = str(data.get("engine") or "pandas").lower()
    if engine not in ENGINES:
        raise ConfigError(f"config: data.engine must be one of {', '.join(map(repr, ENGINES))}, got {engine!r}")
    if engine == "duckdb":
        if not duckdb_available():
            raise ConfigError(_DUCKDB_HINT)
        return "duckdb"
    if engine == "auto":
        base = Path(getattr(config, "base_dir", base_dir))
        size = sum(p.stat().st_size for p in _preset_paths(data, base) if p.exists())
        return "duckdb" if size > AUTO_BYTES and duckdb_available() else "pandas"
    return "pandas"


@contextlib.contextmanager
def _database() -> Iterator[Any]:
    """A DuckDB database that spills to a temporary folder past its memory limit.

    An in-memory database with a ``temp_directory`` moves table blocks and sort runs to
    disk when the memory limit is reached, without the write-ahead log and checkpoints of
    a database file (which made loading three times slower here).
    """
    import duckdb

    parent = os.environ.get("PPEVAL_DUCKDB_TEMP") or None
    with tempfile.TemporaryDirectory(prefix="ppeval-duckdb-", dir=parent) as tmp:
        con = duckdb.connect(":memory:")
        try:
            limit = os.environ.get("PPEVAL_DUCKDB_MEMORY_LIMIT", "2GB").replace("'", "")
            con.execute(f"SET memory_limit = '{limit}'")
            con.execute(f"SET threads = {_threads(con)}")
            con.execute(f"SET temp_directory = '{Path(tmp) / 'spill'}'")
            con.execute("SET enable_progress_bar = false")
            # every result is ordered by explicit unique keys: insertion order is not needed
            con.execute("SET preserve_insertion_order = false")
            try:
                yield con
            except duckdb.Error as exc:
                # out of buffer memory also arrives as a failed commit ("could not allocate block")
                if not isinstance(exc, duckdb.OutOfMemoryException) and "could not allocate" not in str(exc):
                    raise
                # the loaders turn MemoryError into a message naming the files and the limit
                first = str(exc).splitlines()[0]
                raise MemoryError(f"DuckDB ran out of memory under its limit of {limit} ({first})") from None
        finally:
            con.close()


#: DuckDB's documented floor of buffer memory per worker thread: below it, joins and
#: aggregations fail with OutOfMemoryException instead of spilling
MEMORY_PER_THREAD = 128 * 2**20


def _threads(con: Any) -> int:
    """Worker threads: the cores this process may use, fewer when the memory limit is small.

    DuckDB counts the machine's cores, not the ones a container or ``taskset`` allows, and
    every thread reserves buffers of its own: with a small limit on a many-core host that
    alone runs out of memory (DuckDB's advice for OutOfMemoryException: fewer threads).
    """
    # DuckDB shows the limit in binary units, e.g. "22.8 MiB" for '24MB'
    shown = str(con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0])
    m = re.fullmatch(r"\s*([\d.]+)\s*([KMGTP]?i?B|bytes)?\s*", shown)
    units = {"B": 1, "bytes": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40, "PiB": 2**50}
    nbytes = float(m.group(1)) * units.get(m.group(2) or "B", 1) if m and (m.group(2) or "B") in units else None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    by_memory = max(1, int(nbytes) // MEMORY_PER_THREAD) if nbytes else cores
    return max(1, min(cores, by_memory))


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _read_files(
    preset: str, elements: Sequence[Any], compact: Any, paths: Sequence[str | Path], *, base_dir: str | Path,
    encoding: str, delimiter: str | None, columns: Mapping[str, str] | None, max_problems_per_column: int | None,
    con: Any, res: LoadResult, extra: bool,
) -> tuple[list[str], dict[int, dict[str, str]], int]:
    """Parse each file as the pandas engine does and append its records to table ``records``.

    Returns the labels, each file's source names of the elements, and the record count.
    """
    overrides = check_overrides(preset, columns, elements)
    labels = [str(p) for p in paths]
    names_by_file: dict[int, dict[str, str]] = {}
    absent: list[tuple[str, list[str], list[str]]] = []
    offset = 0
    for i, _label, box in iter_preset_files(
        preset, labels, base_dir, elements, overrides, res.problems, res.inputs, absent,
        encoding=encoding, delimiter=delimiter, max_problems_per_column=max_problems_per_column,
    ):
        pf = box.pop()
        part = compact(pf, res.problems) if extra else compact(pf)
        names_by_file[i] = {e.name: pf.source_name(e.name) for e in elements}
        del pf  # the file's text columns go before its records are copied into DuckDB
        n = len(part["line"])
        cols = {k: (v.cast(pa.string()) if isinstance(v, pa.Array) else pa.array(v)) for k, v in part.items()}
        # g: the record's position in all files stacked (the pandas engine's row order)
        cols["g"] = pa.array(np.arange(offset, offset + n, dtype=np.int64))
        batch = pa.table(cols)
        del part, cols
        con.register("_batch", batch)
        if offset == 0:
            con.execute("CREATE TABLE records AS SELECT * FROM _batch")
        else:
            con.execute("INSERT INTO records SELECT * FROM _batch")
        con.unregister("_batch")
        offset += n
    res.problems.extend(absent_warnings(preset, absent))
    return labels, names_by_file, offset


def _row(con: Any, sql: str) -> tuple:
    """The one row of a query (fetched to the end: DuckDB 2 refuses new work while a result is open)."""
    return con.execute(sql).fetchall()[0]


def _fetch(con: Any, sql: str) -> pa.Table:
    """A query's result as an Arrow table, streamed out in batches.

    Streaming keeps DuckDB from holding the whole result inside its memory limit (the
    result is the output we need in Python anyway).
    """
    rel = con.sql(sql)
    # the method's name changed across DuckDB releases
    for name in ("to_arrow_reader", "fetch_arrow_reader", "record_batch"):
        if hasattr(rel, name):
            return getattr(rel, name)(200_000).read_all()
    return rel.arrow()  # pragma: no cover - older releases


def _np(table: pa.Table, name: str) -> np.ndarray:
    return table.column(name).combine_chunks().to_numpy(zero_copy_only=False)


def _strings(table: pa.Table, name: str) -> pa.Array:
    return table.column(name).combine_chunks().cast(pa.string())


def _dates(table: pa.Table, name: str) -> np.ndarray:
    return np.asarray(_np(table, name), dtype="datetime64[D]")


def load_afcars_duckdb(
    paths: Sequence[str | Path],
    *,
    base_dir: str | Path = ".",
    encoding: str = "utf-8",
    delimiter: str | None = None,
    columns: Mapping[str, str] | None = None,
    max_problems_per_column: int | None = DEFAULT_MAX_PROBLEMS_PER_COLUMN,
) -> LoadResult:
    """Legacy AFCARS files to children and episodes, stacked in DuckDB.

    The same parameters and result as :func:`ppeval.load.afcars.load_afcars` (same rows,
    order, values, dtypes, problems and inputs), with one file in memory at a time.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "FC2020A.tab").write_text("recnumbr\\tdob\\tlatremdt\\tneglect\\nA7\\t2015-01-01\\t2019-12-01\\t2\\n")
    >>> res = load_afcars_duckdb(["FC2020A.tab"], base_dir=d)
    >>> res.frames()["episodes"][["child_id", "removal_neglect"]].values.tolist()
    [['A7', False]]
    """
    res = LoadResult()
    with _database() as con:
        labels, names_by_file, n = _read_files(
            "afcars", _afcars.ELEMENTS, _afcars._compact, paths, base_dir=base_dir, encoding=encoding,
            delimiter=delimiter, columns=columns, max_problems_per_column=max_problems_per_column, con=con, res=res,
            extra=True,
        )
        if n == 0:
            return res
        if n >= 2**_ROW_BITS:  # pragma: no cover - 68 billion records
            raise ConfigError(f"the duckdb engine handles at most 2**{_ROW_BITS} records")
        episodes, warnings = _afcars_episodes(con, labels, names_by_file, max_problems_per_column)
        children = _afcars_children(con, labels)
    res.problems.extend(warnings)
    res.add_table("children", children)
    res.add_table("episodes", episodes)
    return res


def _last_int(col: str, valid: str, bits: int, missing: int) -> str:
    """SQL: the value of ``col`` on the latest record (by ``tkey``) where ``valid`` holds.

    ``col`` is a small non-negative integer (< 2**bits); ``missing`` when no record is valid.
    """
    return (f"coalesce(CAST(max(CASE WHEN {valid} THEN (tkey << {bits}) + CAST({col} AS BIGINT) END) "
            f"& {2**bits - 1} AS INTEGER), {missing})")


def _last_date(con: Any, col: str, table: str = "r") -> str:
    """SQL: the latest non-missing date of ``col`` (NULL when none).

    Packed beside the time key when every date lies within 2**18 days of 1800-01-01 (text
    dates always do: the parser makes others missing); dates read from binary files are
    not range-checked, so a column with an outlier takes the slower ``max_by``.
    """
    lo, hi = _row(con, f"SELECT min({col}) >= {_DAY0}, max({col}) < {_DAY0} + {2**_DATE_BITS} FROM {table}")
    if lo is False or hi is False:
        return f"max_by({col}, tkey) FILTER (WHERE {col} IS NOT NULL)"
    packed = f"max(CASE WHEN {col} IS NOT NULL THEN (tkey << {_DATE_BITS}) + CAST({col} - {_DAY0} AS BIGINT) END)"
    return f"{_DAY0} + CAST({packed} & {2**_DATE_BITS - 1} AS INTEGER)"


def _time_key(con: Any, when: str) -> str:
    """SQL for ``tkey``: the rank of ``when`` among its distinct values, then the row ``g``."""
    con.execute(f"CREATE TABLE periods AS SELECT w, CAST(row_number() OVER (ORDER BY w) - 1 AS BIGINT) AS pidx "
                f"FROM (SELECT DISTINCT {when} AS w FROM records)")
    n_periods = _row(con, "SELECT count(*) FROM periods")[0]
    if n_periods > 2**_PERIOD_BITS:  # pragma: no cover - more than 512 report periods or files
        raise ConfigError(f"the duckdb engine orders at most {2**_PERIOD_BITS} report periods or files")
    return f"(periods.pidx << {_ROW_BITS}) + g"


def _afcars_keys(con: Any) -> None:
    """Add the order keys to ``records``: child (``ckey``) and time (``tkey``).

    ``ckey``: children in order of first appearance (the pandas engine's dictionary codes);
    a record without RecNumbr is a child of its own, after all others. ``tkey``: report
    period (RepDatYr, RepDatMo) when every record has one, else the file's position; then
    the record's position.
    """
    all_periods = _row(con, "SELECT bool_and(period >= 0) FROM records")[0]
    when = "period" if all_periods else "CAST(file AS BIGINT)"
    tkey = _time_key(con, when)
    con.execute(f"""
        CREATE TABLE r AS
        SELECT records.*,
               CASE WHEN rec IS NULL THEN (CAST(1 AS BIGINT) << {_ROW_BITS}) + g ELSE first.first_g END AS ckey,
               {tkey} AS tkey
        FROM records
        JOIN periods ON {when} = periods.w
        LEFT JOIN (SELECT rec AS frec, min(g) AS first_g FROM records WHERE rec IS NOT NULL GROUP BY rec) first
             ON records.rec = first.frec
    """)
    con.execute("DROP TABLE records")


def _afcars_episodes(
    con: Any, labels: list[str], names_by_file: dict[int, dict[str, str]], limit: int | None
) -> tuple[pd.DataFrame, list[Problem]]:
    _afcars_keys(con)
    flags = list(schema.REMOVAL_REASONS.values())
    flag_sql = ",\n".join(f"{_last_int(_q(e), f'{_q(e)} >= 0', 2, -1)} AS {_q('f_' + e)}" for e in flags)
    # One row per episode (child, LatRemDt): the latest value of each element by time order.
    # A struct keeps values that must come from one record (discharge date and reason; the
    # episode's last record) together, NULLs included.
    con.execute(f"""
        CREATE TABLE ep AS
        SELECT ckey, "LatRemDt" AS lat, any_value(rec) AS rec,
               arg_max({{'d': "DoDFCDt", 'r': "DISREASN"}}, tkey) FILTER (WHERE "DoDFCDt" IS NOT NULL) AS dis,
               {_last_date(con, '"TPRMomDt"')} AS tpr_m,
               {_last_date(con, '"TPRDadDt"')} AS tpr_d,
               arg_max({{'d': "DLstFCDt", 'f': file, 'l': line}}, tkey) FILTER (WHERE "DLstFCDt" IS NOT NULL) AS dl,
               arg_max({{'cps': "CurPlSet", 'np': "NumPlep", 'fips': fips, 'f': file, 'l': line}}, tkey) AS last,
               {flag_sql}
        FROM r GROUP BY ckey, "LatRemDt"
    """)
    # The DLstFCDt rule: an episode without a discharge record is closed by the DLstFCDt of
    # the child's next episode when that date lies between the two removals.
    con.execute("""
        CREATE TABLE ep2 AS
        SELECT *,
               (next_ckey = ckey AND dis IS NULL AND lat IS NOT NULL AND next_dl.d IS NOT NULL) AS k,
               (next_ckey = ckey AND dis IS NULL AND lat IS NOT NULL AND next_dl.d IS NOT NULL
                AND next_dl.d >= lat AND next_dl.d <= next_lat) AS inside
        FROM (SELECT *, lead(ckey) OVER w AS next_ckey, lead(lat) OVER w AS next_lat, lead(dl) OVER w AS next_dl
              FROM ep WINDOW w AS (ORDER BY ckey, lat NULLS FIRST))
    """)
    t = _fetch(con, f"""
        SELECT rec, lat,
               CASE WHEN inside THEN next_dl.d ELSE dis.d END AS discharge,
               coalesce(dis.r, -1) AS reason, tpr_m, tpr_d,
               coalesce(last.cps, -1) AS cps, last.np AS np, last.fips AS fips, last.f AS file, last.l AS line,
               {", ".join(_q('f_' + e) for e in flags)}
        FROM ep2 ORDER BY ckey, lat NULLS FIRST
    """)
    warnings = _dlst_warnings(con, labels, names_by_file, limit)
    con.execute("DROP TABLE ep; DROP TABLE ep2")  # memory for the children's aggregate
    ep: dict[str, pd.Series] = {
        "child_id": string_column(_strings(t, "rec")),
        "removal_date": date_column(_dates(t, "lat")),
        "tpr_mother_date": date_column(_dates(t, "tpr_m")),
        "tpr_father_date": date_column(_dates(t, "tpr_d")),
        "discharge_date": date_column(_dates(t, "discharge")),
        "discharge_reason": code_column(_np(t, "reason"), schema.DISCHARGE_REASONS),
    }
    for reason_name, element in schema.REMOVAL_REASONS.items():
        ep[f"removal_{reason_name}"] = bool_column(_np(t, "f_" + element).astype(np.int8))
    ep["placement_setting"] = code_column(_np(t, "cps"), schema.PLACEMENT_SETTINGS)
    numplep = _np(t, "np").astype("float64")
    ep["placements"] = pd.Series(pd.arrays.IntegerArray(np.nan_to_num(numplep).astype("int64"), np.isnan(numplep)))
    ep["county"] = string_column(_strings(t, "fips"))
    ep.update(source_columns(labels, _np(t, "file"), _np(t, "line")))
    cols = [c for c in schema.TABLES["episodes"].names if c in ep] + [schema.SOURCE_FILE, schema.SOURCE_ROW]
    return pd.DataFrame({c: ep[c] for c in cols}), warnings


def _dlst_warnings(con: Any, labels: list[str], names_by_file: dict[int, dict[str, str]], limit: int | None) -> list[Problem]:
    """The warnings of the DLstFCDt rule, worded and ordered as the pandas engine's."""
    total = _row(con, "SELECT count(*) FROM ep2 WHERE k")[0]
    if not total:
        return []
    top = "" if limit is None else f"LIMIT {int(limit) + 1}"
    rows = con.execute(f"""
        SELECT inside, strftime(lat, '%Y-%m-%d'), strftime(next_lat, '%Y-%m-%d'), strftime(next_dl.d, '%Y-%m-%d'),
               next_dl.f, next_dl.l
        FROM ep2 WHERE k ORDER BY ckey, lat NULLS FIRST {top}
    """).fetchall()
    out: list[Problem] = []
    for j, (ok, removed, next_removed, d, f, line) in enumerate(rows):
        if limit is not None and j >= limit:
            out.append(
                Problem(WARNING, labels[int(f)], None, "DLstFCDt", None, "a discharge record for every episode that ended",
                        f"{total - limit} more episode(s) were closed (or not) from DLstFCDt as above; "
                        f"only the first {limit} are listed", "episodes")
            )
            break
        if ok:
            message = (f"the episode removed on {removed} has no discharge record; its discharge date was set "
                       f"from DLstFCDt on this record of the next episode (discharge reason unknown)")
        else:
            message = (f"DLstFCDt is not between the removal dates {removed} and {next_removed} of the "
                       f"child's episodes; not used to close the earlier episode, which stays open")
        out.append(
            Problem(WARNING, labels[int(f)], int(line), names_by_file[int(f)]["DLstFCDt"], d,
                    "a discharge record (DoDFCDt, DISREASN) for every episode that ended", message, "episodes")
        )
    return out


def _afcars_children(con: Any, labels: list[str]) -> pd.DataFrame:
    unknown = list(schema.RACE_ETHNICITY_CODES).index("unknown")
    t = _fetch(con, f"""
        SELECT any_value(rec) AS rec,
               {_last_date(con, '"DOB"')} AS dob,
               {_last_int('"Sex"', '"Sex" >= 0 AND "Sex" < 2', 2, 2)} AS sex,
               {_last_int('race', f'race >= 0 AND race <> {unknown}', 5, unknown)} AS race,
               {_last_int('hisp', 'hisp >= 0', 2, -1)} AS hisp,
               max_by(fips, tkey) FILTER (WHERE fips IS NOT NULL) AS county,
               arg_max({{'f': file, 'l': line}}, tkey) AS latest
        FROM r WHERE rec IS NOT NULL GROUP BY ckey ORDER BY ckey
    """)
    latest = t.column("latest").combine_chunks()
    return pd.DataFrame({
        "child_id": string_column(_strings(t, "rec")),
        "birth_date": date_column(_dates(t, "dob")),
        "sex": code_column(_np(t, "sex"), ("male", "female", "unknown")),
        "race_ethnicity": code_column(_np(t, "race"), schema.RACE_ETHNICITY_CODES),
        "hispanic": bool_column(_np(t, "hisp").astype(np.int8)),
        "county": string_column(_strings(t, "county")),
        **source_columns(labels, latest.field("f").to_numpy(), latest.field("l").to_numpy()),
    })


def load_ncands_duckdb(
    paths: Sequence[str | Path],
    *,
    base_dir: str | Path = ".",
    encoding: str = "utf-8",
    delimiter: str | None = None,
    columns: Mapping[str, str] | None = None,
    max_problems_per_column: int | None = DEFAULT_MAX_PROBLEMS_PER_COLUMN,
) -> LoadResult:
    """NCANDS Child Files to reports (and NCANDS-only children), stacked in DuckDB.

    The same parameters and result as :func:`ppeval.load.ncands.load_ncands`.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "CF.tab").write_text("RptID\\tChID\\tAFCARSID\\tRptDt\\tMal1Lev\\nR1\\tK1\\tA7\\t2020-02-02\\t2\\n")
    >>> load_ncands_duckdb(["CF.tab"], base_dir=d).frames()["reports"][["child_id", "substantiated"]].values.tolist()
    [['A7', True]]
    """
    res = LoadResult()
    with _database() as con:
        labels, _names, n = _read_files(
            "ncands", _ncands.ELEMENTS, _ncands._compact, paths, base_dir=base_dir, encoding=encoding,
            delimiter=delimiter, columns=columns, max_problems_per_column=max_problems_per_column, con=con, res=res,
            extra=False,
        )
        if n == 0:
            return res
        reports, children, problems = _ncands_tables(con, labels)
        linked = _fetch(con, "SELECT afcarsid, max(bmin) AS lo, min(bmax) AS hi, min(bmin) AS hull_lo, max(bmax) AS hull_hi "
                             "FROM r WHERE afcarsid IS NOT NULL AND bmin IS NOT NULL GROUP BY afcarsid")
    res.problems.extend(problems)
    res.add_table("reports", reports)
    res.add_table("children", children)
    if linked.num_rows:
        res.linked_ages.append(_ncands.linked_age_table(
            _strings(linked, "afcarsid").to_numpy(zero_copy_only=False),
            *(_dates(linked, k) for k in ("lo", "hi", "hull_lo", "hull_hi"))))
    return res


def _ncands_tables(con: Any, labels: list[str]) -> tuple[pd.DataFrame, pd.DataFrame | None, list[Problem]]:
    # Keys as the pandas engine's dictionary codes: first appearance, a blank id unique and
    # after all others; time order: submission year (SubYr), then file and line.
    one = f"(CAST(1 AS BIGINT) << {_ROW_BITS})"
    tkey = _time_key(con, "subyr")
    con.execute(f"""
        CREATE TABLE r AS
        SELECT records.*,
               CASE WHEN rpt IS NULL THEN {one} + g ELSE fr.first_g END AS rkey,
               CASE WHEN chid IS NULL THEN {one} + g ELSE fc.first_g END AS ckey,
               {tkey} AS tkey
        FROM records
        JOIN periods ON subyr = periods.w
        LEFT JOIN (SELECT rpt AS k, min(g) AS first_g FROM records WHERE rpt IS NOT NULL GROUP BY rpt) fr ON records.rpt = fr.k
        LEFT JOIN (SELECT chid AS k, min(g) AS first_g FROM records WHERE chid IS NOT NULL GROUP BY chid) fc ON records.chid = fc.k
    """)
    con.execute("DROP TABLE records")
    con.execute("""
        CREATE TABLE rep AS
        SELECT rkey, ckey, count(*) AS size,
               coalesce(max_by(afcarsid, tkey) FILTER (WHERE afcarsid IS NOT NULL),
                        arg_max({'c': chid}, tkey).c) AS child_id,
               arg_max({'d': "date", 'rpt': rpt, 'f': file, 'l': line}, tkey) AS last,
               max(subst) AS subst, bit_or(types) AS types
        FROM r GROUP BY rkey, ckey
    """)
    t = _fetch(con, "SELECT child_id, last.d AS d, last.rpt AS rpt, last.f AS f, last.l AS l, subst, types "
                    "FROM rep ORDER BY rkey, ckey")
    problems: list[Problem] = []
    n_dup, n_rec = _row(con, "SELECT count(*) FILTER (WHERE size > 1), sum(size) FROM rep")
    if n_dup:
        # the first duplicated (RptID, ChID) in report order, at its second record in time
        f, line = _row(con, """
            SELECT r.file, r.line FROM r JOIN (SELECT rkey, ckey FROM rep WHERE size > 1 ORDER BY rkey, ckey LIMIT 1) d
              USING (rkey, ckey)
            ORDER BY r.tkey LIMIT 1 OFFSET 1
        """)
        problems.append(
            Problem(WARNING, labels[int(f)], int(line), "RptID", None, "one record per (RptID, ChID)",
                    f"{int(n_dup)} (RptID, ChID) pair(s) appear on more than one record; each became one "
                    f"report (latest record's date, substantiated if any record is, all maltreatment types)",
                    "reports")
        )
    reports = pd.DataFrame({
        "child_id": string_column(_strings(t, "child_id")),
        "report_date": date_column(_dates(t, "d")),
        "substantiated": bool_column(_np(t, "subst").astype(np.int8)),
        "report_id": string_column(_strings(t, "rpt")),
        "maltreatment_types": _ncands._type_names(_np(t, "types").astype(np.int64)),
        **source_columns(labels, _np(t, "f"), _np(t, "l")),
    })

    # children known to NCANDS only: records without AFCARSID, one child per ChID
    unknown = list(schema.RACE_ETHNICITY_CODES).index("unknown")
    c = _fetch(con, f"""
        SELECT any_value(chid) AS chid,
               {_last_date(con, 'dob')} AS dob,
               max(bmin) AS lo, min(bmax) AS hi, min(bmin) AS hull_lo, max(bmax) AS hull_hi,
               {_last_int('sex', 'sex >= 0 AND sex < 2', 2, 2)} AS sex,
               {_last_int('race', f'race >= 0 AND race <> {unknown}', 5, unknown)} AS race,
               {_last_int('hisp', 'hisp >= 0', 2, -1)} AS hisp,
               max_by(county, tkey) FILTER (WHERE county IS NOT NULL) AS county,
               arg_max({{'f': file, 'l': line}}, tkey) AS latest
        FROM r WHERE afcarsid IS NULL AND chid IS NOT NULL GROUP BY ckey ORDER BY ckey
    """)
    if c.num_rows == 0:
        return reports, None, problems
    latest = c.column("latest").combine_chunks()
    src_file, src_line = latest.field("f").to_numpy(), latest.field("l").to_numpy()
    # the children's age intervals, finished by the pandas engine's own code
    dob = _dates(c, "dob")
    bmin, bmax, age_problems = _ncands.birth_intervals(
        dob, *(_dates(c, k) for k in ("lo", "hi", "hull_lo", "hull_hi")), labels, src_file, src_line
    )
    problems.extend(age_problems)
    children = pd.DataFrame({
        "child_id": string_column(_strings(c, "chid")),
        "birth_date": date_column(dob),
        "birth_date_min": date_column(bmin),
        "birth_date_max": date_column(bmax),
        "sex": code_column(_np(c, "sex"), ("male", "female", "unknown")),
        "race_ethnicity": code_column(_np(c, "race"), schema.RACE_ETHNICITY_CODES),
        "hispanic": bool_column(_np(c, "hisp").astype(np.int8)),
        "county": string_column(_strings(c, "county")),
        **source_columns(labels, src_file, src_line),
    })
    return reports, children, problems
