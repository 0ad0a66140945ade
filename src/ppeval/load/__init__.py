"""Loading: every source of a config into one :class:`~ppeval.extract.Extract`.

Sources are the ``[data.<table>]`` sections (CSV, tab-delimited, Parquet, Excel, SAS,
Stata, SPSS files or a SQL query; see :mod:`ppeval.load.readers` and :mod:`ppeval.load.sql`)
and the presets ``afcars`` and ``ncands`` (:mod:`ppeval.load.afcars`,
:mod:`ppeval.load.ncands`), which may be mixed: e.g. AFCARS files for children and episodes
plus a program roster for participation and a families crosswalk. Each source is translated
to the canonical tables of :mod:`ppeval.schema` with its column and code maps
(:mod:`ppeval.load.canonical`).

Bad data never raises: every cell that cannot be parsed, and every unreadable, empty,
mis-delimited or mis-encoded file, becomes a :class:`~ppeval.problems.Problem` in
:attr:`Extract.load_problems <ppeval.extract.Extract.load_problems>`, naming the file, the
line and the source column; the cell becomes missing and the row is kept. Values of
identifying columns are never repeated in a problem. Configuration mistakes (an unknown
format, a bad ``date_format``) raise :class:`~ppeval.errors.ConfigError`.

Examples
--------
>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> _ = (d / "children.csv").write_text("child_id,birth_date\\nA,2015-01-02\\nB,2016-13-01\\n")
>>> _ = (d / "episodes.csv").write_text("child_id,removal_date\\nA,2020-05-06\\n")
>>> _ = (d / "eval.toml").write_text('''
... [data]
... extract_date = "2023-12-31"
... [data.children]
... path = "children.csv"
... [data.episodes]
... path = "episodes.csv"
... ''')
>>> ext = load_extract(d / "eval.toml")
>>> ext
Extract(extract_date=2023-12-31, children=2, families=0, episodes=1, reports=0, participation=0)
>>> print(ext.load_problems[0])
error: children.csv, row 3, column 'birth_date': unparseable date; expected a date (YYYY-MM-DD, MM/DD/YYYY or YYYYMMDD)
>>> [f.path for f in ext.inputs]
['children.csv', 'episodes.csv']
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..config import DEFAULT_MAX_FILE_MB, SOURCE_TABLES, Config
from ..errors import DataError
from ..extract import Extract
from .afcars import load_afcars
from .canonical import DEFAULT_MAX_PROBLEMS_PER_COLUMN, LoadResult, to_canonical
from .duckdb_engine import resolve_engine
from .ids import normalise_ids
from .ncands import load_ncands
from .readers import RawTable, file_size_cap, out_of_memory, read_file
from .sql import connect_readonly, read_sql

__all__ = [
    "DEFAULT_MAX_PROBLEMS_PER_COLUMN",
    "LoadResult",
    "RawTable",
    "connect_readonly",
    "file_size_cap",
    "load_afcars",
    "load_config",
    "load_extract",
    "load_ncands",
    "load_source",
    "read_file",
    "read_sql",
    "resolve_engine",
    "to_canonical",
]

_SOURCE_DEFAULTS: dict[str, Any] = {
    "path": None,
    "paths": None,
    "format": None,
    "delimiter": None,
    "encoding": "utf-8",
    "sheet": None,
    "date_format": None,
    "columns": {},
    "codes": {},
    "url": None,
    "query": None,
    "params": {},
}


def load_source(
    table: str,
    source: Mapping[str, Any] | str | Path,
    *,
    base_dir: str | Path = ".",
    max_problems_per_column: int | None = DEFAULT_MAX_PROBLEMS_PER_COLUMN,
) -> LoadResult:
    """Load one ``[data.<table>]`` source (one or more files, or a SQL query).

    Parameters
    ----------
    table : str
        The canonical table the source feeds.
    source : mapping or path
        The config section (keys ``path``/``paths``/``format``/``delimiter``/``encoding``/
        ``sheet``/``date_format``/``columns``/``codes``/``url``/``query``/``params``), or
        just a file path.
    base_dir : str or Path
        Folder relative paths are resolved against.
    max_problems_per_column : int or None
        Bad cells listed one by one per file and column (None = all).

    Returns
    -------
    LoadResult

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "roster.csv").write_text("FamilyID,StartDate,Role\\nF1,03/15/2021,Mom\\n")
    >>> res = load_source("participation", {"path": "roster.csv",
    ...     "columns": {"family_id": "FamilyID", "enrolled_date": "StartDate", "parent_role": "Role"},
    ...     "codes": {"parent_role": {"mom": "mother"}}}, base_dir=d)
    >>> res.frames()["participation"][["family_id", "enrolled_date", "parent_role"]].astype(str).values.tolist()
    [['F1', '2021-03-15', 'mother']]
    """
    src = dict(_SOURCE_DEFAULTS)
    if isinstance(source, str | Path):
        src["path"] = str(source)
    else:
        src.update({k: v for k, v in source.items() if v is not None})
    base = Path(base_dir)
    kwargs = {
        "columns": src["columns"],
        "codes": src["codes"],
        "date_format": src["date_format"],
        "max_problems_per_column": max_problems_per_column,
    }
    res = LoadResult()
    if src["url"]:
        raw = read_sql(src["url"], src["query"], src["params"], label=f"sql:{table}", base_dir=base, table=table)
        return res.extend(to_canonical(raw, table, **kwargs))
    paths = [src["path"]] if src["path"] else list(src["paths"] or [])
    for label in paths:
        label = str(label)
        path = Path(label)
        raw = read_file(
            path if path.is_absolute() else base / path,
            label=label,
            format=src["format"],
            delimiter=src["delimiter"],
            encoding=src["encoding"],
            sheet=src["sheet"],
            table=table,
        )
        try:
            res.extend(to_canonical(raw, table, **kwargs))
        except MemoryError:
            raise DataError(out_of_memory(label, path if path.is_absolute() else base / path)) from None
    return res


def load_config(config: Config, *, max_problems_per_column: int | None = DEFAULT_MAX_PROBLEMS_PER_COLUMN) -> LoadResult:
    """Every source of a config (presets first, then ``[data.<table>]`` sections).

    The presets are stacked by the engine ``[data] engine`` names (``"pandas"``, the
    default; ``"duckdb"``, out of core; ``"auto"``, DuckDB past
    :data:`~ppeval.load.duckdb_engine.AUTO_BYTES` of input): both give the same tables.

    Returns the :class:`LoadResult` that :func:`load_extract` wraps into an Extract.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "f.csv").write_text("child_id,family_id\\n1,F1\\n")
    >>> cfg = Config.from_dict({"data": {"extract_date": "2023-12-31", "families": {"path": "f.csv"}}}, base_dir=d)
    >>> sorted(load_config(cfg).frames())
    ['families']
    """
    data = config["data"]
    with file_size_cap(data.get("max_file_mb", DEFAULT_MAX_FILE_MB)):
        return _load_config(config, data, max_problems_per_column)


def _load_config(config: Config, data: Mapping[str, Any], max_problems_per_column: int | None) -> LoadResult:
    res = LoadResult()
    loaders = {"afcars": load_afcars, "ncands": load_ncands}
    engine = resolve_engine(config)
    if engine == "duckdb":
        # stacked out of core; the same tables as the pandas engine (tests/test_scale_duckdb.py)
        from .duckdb_engine import load_afcars_duckdb, load_ncands_duckdb

        loaders = {"afcars": load_afcars_duckdb, "ncands": load_ncands_duckdb}
    for name, loader in loaders.items():
        preset = data.get(name)
        if preset:
            try:
                loaded = loader(
                    preset["paths"],
                    base_dir=config.base_dir,
                    encoding=preset.get("encoding", "utf-8"),
                    delimiter=preset.get("delimiter"),
                    columns=preset.get("columns"),
                    max_problems_per_column=max_problems_per_column,
                )
            except MemoryError as exc:
                files = ", ".join(map(str, preset["paths"]))
                if engine == "duckdb":
                    raise DataError(
                        f"the {name.upper()} files ({files}): {exc}; raise PPEVAL_DUCKDB_MEMORY_LIMIT (default 2GB) "
                        "or set PPEVAL_DUCKDB_TEMP to a folder on a disk with room to spill"
                    ) from None
                raise DataError(out_of_memory(f"the {name.upper()} files ({files})").replace("this file", "them")) from None
            res.extend(loaded)
    for table in SOURCE_TABLES:
        source = data.get(table)
        if source:
            res.extend(load_source(table, source, base_dir=config.base_dir, max_problems_per_column=max_problems_per_column))
    return res


def load_extract(
    config: str | Path | Config, *, max_problems_per_column: int | None = DEFAULT_MAX_PROBLEMS_PER_COLUMN
) -> Extract:
    """Read every source of a config into an :class:`~ppeval.extract.Extract`.

    Parameters
    ----------
    config : str, Path or Config
        The TOML config (relative paths in it are relative to its folder) or a loaded Config.
    max_problems_per_column : int or None
        Bad cells listed one by one per file and column; the rest are counted in one
        problem per column (None = list every one).

    Returns
    -------
    Extract
        The canonical tables (each with ``_source_file`` and ``_source_row``), the extract
        date, the provenance of every input (path as written in the config, sha256, table,
        rows, format) and every loading problem in ``load_problems``.

    Raises
    ------
    ConfigError
        The config itself is wrong (not the data).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "families.csv").write_text("ChildID,FamilyID\\n1,F1\\n2,F1\\n")
    >>> _ = (d / "eval.toml").write_text('[data]\\nextract_date = "2023-12-31"\\n[data.families]\\n'
    ...     'path = "families.csv"\\ncolumns = { child_id = "ChildID", family_id = "FamilyID" }\\n')
    >>> ext = load_extract(d / "eval.toml")
    >>> ext.families[["child_id", "family_id", "_source_row"]].values.tolist()
    [['1', 'F1', 2], ['2', 'F1', 3]]
    """
    cfg = config if isinstance(config, Config) else Config.from_toml(config)
    res = load_config(cfg, max_problems_per_column=max_problems_per_column)
    return Extract(
        # ids compared under the rules the config asks for, on every side of every link
        tables=normalise_ids(res.frames(), cfg["data"].get("id_normalise") or ()),
        extract_date=cfg["data"]["extract_date"],
        inputs=res.inputs,
        load_problems=res.problems,
        config=cfg,
    )
