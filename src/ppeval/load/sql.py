"""SQL sources through SQLAlchemy, always read-only and always with bound parameters.

A source like::

    [data.episodes]
    url = "sqlite:///warehouse.db"          # relative paths: against the config's folder
    query = "SELECT * FROM removals WHERE county = :county AND removed >= :since"
    params = { county = "19153", since = 2016-01-01 }

runs the query with ``params`` bound by the driver: values are never pasted into SQL text.
The connection cannot write: SQLite is opened through a ``mode=ro`` URI, PostgreSQL with
``default_transaction_read_only`` and ``SET TRANSACTION READ ONLY``; for other databases the
transaction is rolled back and a warning says read-only mode was not enforced.

Examples
--------
>>> import sqlite3, tempfile, pathlib
>>> db = pathlib.Path(tempfile.mkdtemp()) / "w.db"
>>> with sqlite3.connect(db) as con:
...     _ = con.execute("CREATE TABLE kids (id TEXT, dob TEXT)")
...     _ = con.execute("INSERT INTO kids VALUES ('A1', '2015-02-03'), ('B2', '2016-01-01')")
>>> con.close()
>>> raw = read_sql(f"sqlite:///{db}", "SELECT * FROM kids WHERE id = :id", {"id": "A1"}, label="sql:children")
>>> raw.columns, raw.rows.tolist()
(['id', 'dob'], [1])
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from ..problems import ERROR, WARNING, Problem
from .readers import RawTable, objects_to_arrow


def _url(url: str):
    from sqlalchemy.engine import make_url

    return make_url(url)


def safe_url(url: str) -> str:
    """The URL with any password masked (for messages).

    Examples
    --------
    >>> safe_url("postgresql+psycopg://me:secret@db.example/cw")
    'postgresql+psycopg://me:***@db.example/cw'
    """
    try:
        return _url(url).render_as_string(hide_password=True)
    except Exception:  # an unparseable URL: show only its scheme
        return url.split(":", 1)[0] + ":..."


def _sqlite_path(database: str | None, base_dir: Path) -> Path | None:
    if not database or database == ":memory:":
        return None
    if database.startswith("file:"):
        database = database[5:].split("?", 1)[0]
    p = Path(database)
    return p if p.is_absolute() else base_dir / p


#: ``mode=ro`` protects the database file itself (a write fails with "attempt to write a
#: readonly database"), but ``ATTACH DATABASE 'x.db'`` or ``VACUUM INTO 'x.db'`` would still
#: create files elsewhere and a PRAGMA could change the connection: an authorizer refuses
#: those when the statement is compiled.
_SQLITE_DENIED = frozenset({sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH})
#: PRAGMAs that only report (SQLAlchemy's dialect asks some of these on connecting).
_SQLITE_READ_PRAGMAS = frozenset(
    {"table_info", "table_xinfo", "index_list", "index_info", "index_xinfo", "foreign_key_list", "database_list",
     "collation_list", "read_uncommitted", "encoding", "user_version", "schema_version", "compile_options"}
)


def _sqlite_authorizer(action: int, arg1: str | None, arg2: str | None, _db: str | None, _trigger: str | None) -> int:
    if action in _SQLITE_DENIED:
        return sqlite3.SQLITE_DENY
    if action == sqlite3.SQLITE_PRAGMA and (arg2 is not None or (arg1 or "").lower() not in _SQLITE_READ_PRAGMAS):
        return sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK


def _sqlite_readonly(uri: str) -> sqlite3.Connection:
    """A SQLite connection that can only read (``mode=ro`` plus an authorizer)."""
    con = sqlite3.connect(uri, uri=True, check_same_thread=False)
    con.set_authorizer(_sqlite_authorizer)
    return con


@contextmanager
def connect_readonly(url: str, base_dir: str | Path = ".") -> Iterator[Any]:
    """A SQLAlchemy connection that cannot write (see the module notes).

    Parameters
    ----------
    url : str
        SQLAlchemy URL, e.g. ``sqlite:///data/cw.db`` or ``postgresql+psycopg://user@host/db``.
    base_dir : str or Path
        Folder that a relative SQLite path is resolved against (the config's folder).

    Yields
    ------
    sqlalchemy.engine.Connection
        Inside a transaction that is rolled back at the end.

    Examples
    --------
    >>> import sqlite3, tempfile, pathlib, sqlalchemy
    >>> db = pathlib.Path(tempfile.mkdtemp()) / "w.db"
    >>> sqlite3.connect(db).execute("CREATE TABLE t (x INT)").connection.close()
    >>> with connect_readonly(f"sqlite:///{db}") as conn:
    ...     try:
    ...         conn.execute(sqlalchemy.text("INSERT INTO t VALUES (1)"))
    ...     except sqlalchemy.exc.OperationalError as exc:
    ...         print("refused:", exc.orig)
    refused: attempt to write a readonly database
    """
    from sqlalchemy import create_engine, text

    u = _url(url)
    backend = u.get_backend_name()
    if backend == "sqlite":
        path = _sqlite_path(u.database, Path(base_dir))
        if path is None:
            raise FileNotFoundError("an in-memory SQLite database holds no data; give the path of a database file")
        if not path.is_file():
            raise FileNotFoundError(f"SQLite database not found (looked for {path})")
        uri = f"file:{quote(str(path.resolve().as_posix()))}?mode=ro"
        engine = create_engine("sqlite://", creator=lambda: _sqlite_readonly(uri))
    elif backend == "postgresql":
        connect_args: dict[str, Any] = {}
        if u.get_driver_name() in ("psycopg", "psycopg2", "psycopg2cffi"):
            # libpq option: every transaction on this session starts read-only.
            connect_args["options"] = "-c default_transaction_read_only=on"
        engine = create_engine(u, connect_args=connect_args)
    else:
        engine = create_engine(u)
    try:
        with engine.connect() as conn:
            if backend == "postgresql":
                conn.execute(text("SET TRANSACTION READ ONLY"))
            try:
                yield conn
            finally:
                conn.rollback()
    finally:
        engine.dispose()


def read_sql(
    url: str,
    query: str,
    params: Mapping[str, Any] | None = None,
    *,
    label: str = "sql",
    base_dir: str | Path = ".",
    table: str | None = None,
) -> RawTable:
    """Run a query read-only with bound parameters and return the result as a :class:`RawTable`.

    Connection and query failures become problems (the password is never shown). The
    sha256 recorded is that of the result written as CSV, so a rerun on changed data shows
    a different hash.
    """
    from sqlalchemy import exc as sa_exc
    from sqlalchemy import text

    raw = RawTable(label, "sql")
    backend = ""
    try:
        backend = _url(url).get_backend_name()
    except Exception as exc:
        raw.error(f"not a valid database URL ({type(exc).__name__})", "a SQLAlchemy URL such as sqlite:///file.db", table=table)
        return raw
    try:
        with connect_readonly(url, base_dir) as conn:
            result = conn.execute(text(query), dict(params or {}))
            names = [str(k) for k in result.keys()]
            records = result.fetchall()
    except FileNotFoundError as exc:
        raw.error(str(exc), "an existing database file", table=table)
        return raw
    except ModuleNotFoundError as exc:
        raw.error(f"the database driver is not installed ({exc.name}) for {safe_url(url)}", "an installed driver", table=table)
        return raw
    except sa_exc.ResourceClosedError:
        raw.error(f"the statement on {safe_url(url)} returns no result: a source query must be a SELECT",
                  "a SELECT query", table=table)
        return raw
    except sa_exc.SQLAlchemyError as exc:
        detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0].split(" (Background on this error at")[0]
        raw.error(f"the query on {safe_url(url)} failed: {detail}", "a query that runs", table=table)
        return raw
    if backend not in ("sqlite", "postgresql"):
        raw.problems.append(
            Problem(
                WARNING,
                label,
                None,
                None,
                None,
                "a read-only connection",
                f"read-only mode is not enforced for {backend} databases; the transaction was rolled back",
                table,
            )
        )
    columns = list(zip(*records, strict=True)) if records else [() for _ in names]
    tbl = pa.table([objects_to_arrow(c) for c in columns], names=[f"c{i}" for i in range(len(names))])
    raw.columns = names
    sink = pa.BufferOutputStream()
    pacsv.write_csv(pa.table(list(tbl.columns), names=names) if names else pa.table({}), sink)
    raw.sha256 = hashlib.sha256(sink.getvalue().to_pybytes()).hexdigest()
    if not records:
        raw.problems.append(
            Problem(ERROR, label, None, None, None, "at least one row", "the query returned no rows", table)
        )
        return raw
    raw.data = tbl
    raw.rows = np.arange(1, len(records) + 1, dtype=np.int64)
    return raw
