"""SQL sources: bound parameters, read-only connections, SQLite and a real PostgreSQL server.

The PostgreSQL test needs ``PPEVAL_TEST_POSTGRES_URL`` (``source .ci/postgres.sh`` starts a
throwaway server and exports it); it is skipped only when that variable is unset.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import uuid

import pandas as pd
import pytest
import sqlalchemy
from sqlalchemy import text

from ppeval import load_extract, schema
from ppeval.load import connect_readonly, load_source

QUERY = "SELECT kid AS child_id, removed AS removal_date, reason AS discharge_reason, moves FROM removals WHERE county = :county AND removed >= :since ORDER BY kid"


@pytest.fixture
def sqlite_db(tmp_path):
    path = tmp_path / "warehouse.db"
    with sqlite3.connect(path) as con:
        con.execute("CREATE TABLE removals (kid TEXT, removed TEXT, reason TEXT, county TEXT, moves INTEGER)")
        con.executemany(
            "INSERT INTO removals VALUES (?, ?, ?, ?, ?)",
            [
                ("A1", "2019-02-03", "reunification", "19153", 2),
                ("A2", "2020-13-01", "adoption", "19153", 1),
                ("A3", "2020-05-06", None, "19153", None),
                ("B1", "2020-01-01", "reunification", "19113", 4),
                ("A0", "2015-01-01", "reunification", "19153", 1),
            ],
        )
    con.close()
    return path


def test_sqlite_query_with_bound_params(tmp_path, sqlite_db, write_config):
    cfg = write_config(
        f'[data.episodes]\nurl = "sqlite:///warehouse.db"\nquery = "{QUERY}"\nparams = {{ county = "19153", since = "2016-01-01" }}'
    )
    before = sqlite_db.read_bytes()
    ext = load_extract(cfg)
    ep = ext.episodes
    assert ep["child_id"].tolist() == ["A1", "A2", "A3"]  # county and date filters applied by the database
    assert ep["removal_date"].tolist()[0] == pd.Timestamp("2019-02-03") and pd.isna(ep["removal_date"].tolist()[1])
    assert ep["discharge_reason"].tolist() == ["reunification", "adoption", pd.NA]
    assert ep["moves"].tolist() == [2, 1, pd.NA] and str(ep["moves"].dtype) == "Int64"  # extra column, typed
    assert ep[schema.SOURCE_FILE].unique().tolist() == ["sql:episodes"]
    assert ep[schema.SOURCE_ROW].tolist() == [1, 2, 3]
    [p] = ext.load_problems
    assert (p.file, p.row, p.column, p.value, p.message) == ("sql:episodes", 2, "removal_date", "2020-13-01", "unparseable date")
    [inp] = ext.inputs
    assert (inp.path, inp.format, inp.table, inp.rows) == ("sql:episodes", "sql", "episodes", 3)
    assert len(inp.sha256) == 64
    assert sqlite_db.read_bytes() == before  # opened read-only: nothing written, not even a journal


def test_params_are_bound_never_pasted(tmp_path, sqlite_db):
    src = {"url": f"sqlite:///{sqlite_db}", "query": QUERY, "params": {"county": "x' OR '1'='1", "since": "1900-01-01"}}
    res = load_source("episodes", src)
    [p] = res.problems
    assert p.message == "the query returned no rows"  # the quote trick matched nothing
    assert "episodes" not in res.frames()


def test_sqlite_connection_is_read_only(sqlite_db):
    with connect_readonly(f"sqlite:///{sqlite_db.name}", base_dir=sqlite_db.parent) as conn:
        assert conn.execute(text("SELECT count(*) FROM removals")).scalar() == 5
        with pytest.raises(sqlalchemy.exc.OperationalError, match="readonly"):
            conn.execute(text("INSERT INTO removals (kid) VALUES ('Z')"))
    with sqlite3.connect(sqlite_db) as con:
        assert con.execute("SELECT count(*) FROM removals").fetchone()[0] == 5


def test_query_and_connection_failures_are_problems(tmp_path, sqlite_db):
    bad_sql = load_source("episodes", {"url": f"sqlite:///{sqlite_db}", "query": "SELECT * FROM nowhere"})
    [p] = bad_sql.problems
    assert p.file == "sql:episodes" and "the query on sqlite:///" in p.message and "no such table: nowhere" in p.message
    missing = load_source("episodes", {"url": "sqlite:///absent.db", "query": "SELECT 1"}, base_dir=tmp_path)
    assert missing.problems[0].message.startswith("SQLite database not found")
    assert not (tmp_path / "absent.db").exists()  # read-only: never created
    refused = load_source("episodes", {"url": "postgresql+psycopg://me:s3cret@127.0.0.1:1/db", "query": "SELECT 1"})
    [p] = refused.problems
    assert "postgresql+psycopg://me:***@127.0.0.1:1/db" in p.message and "s3cret" not in p.message


@pytest.mark.postgres
def test_postgresql_source_read_only_with_bound_params(tmp_path, write_config):
    url = os.environ.get("PPEVAL_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("PPEVAL_TEST_POSTGRES_URL is not set (source .ci/postgres.sh to start a server)")
    table = f"removals_{uuid.uuid4().hex[:8]}"
    admin = sqlalchemy.create_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE TABLE {table} (kid TEXT, removed DATE, left_care DATE, reason TEXT, county TEXT, moves INTEGER, hours NUMERIC(6,2))"))
        conn.execute(
            text(f"INSERT INTO {table} VALUES (:k, :r, :l, :why, :c, :m, :h)"),
            [
                {"k": "A1", "r": "2019-02-03", "l": "2020-01-10", "why": "reunification", "c": "19153", "m": 2, "h": 1.5},
                {"k": "A2", "r": "2020-06-15", "l": None, "why": None, "c": "19153", "m": 1, "h": None},
                {"k": "B1", "r": "2020-01-01", "l": None, "why": "Adoption", "c": "19113", "m": 4, "h": 2},
            ],
        )
    try:
        cfg = write_config(
            f'[data.episodes]\nurl = "{url}"\n'
            f'query = "SELECT kid AS child_id, removed AS removal_date, left_care AS discharge_date, reason AS discharge_reason, moves AS placements, hours FROM {table} WHERE county = :county ORDER BY kid"\n'
            'params = { county = "19153" }'
        )
        ext = load_extract(cfg)
        assert ext.load_problems == []
        ep = ext.episodes
        assert ep["child_id"].tolist() == ["A1", "A2"]
        assert ep["removal_date"].tolist() == [pd.Timestamp("2019-02-03"), pd.Timestamp("2020-06-15")]
        assert ep["discharge_date"].tolist()[0] == pd.Timestamp("2020-01-10") and pd.isna(ep["discharge_date"].tolist()[1])
        assert ep["discharge_reason"].tolist() == ["reunification", pd.NA]
        assert ep["placements"].tolist() == [2, 1] and str(ep["placements"].dtype) == "Int64"
        assert ep["hours"].tolist()[0] == 1.5
        assert str(ep["removal_date"].dtype) == "datetime64[ns]"
        assert ep[schema.SOURCE_ROW].tolist() == [1, 2]
        [inp] = ext.inputs
        assert inp.path == "sql:episodes" and inp.rows == 2 and len(inp.sha256) == 64
        # the hash is of the result: the same query gives the same hash
        assert load_extract(cfg).inputs[0].sha256 == inp.sha256

        with connect_readonly(url) as conn:
            assert conn.execute(text("SHOW transaction_read_only")).scalar() == "on"
            with pytest.raises(sqlalchemy.exc.DBAPIError, match="read-only transaction"):
                conn.execute(text(f"INSERT INTO {table} (kid) VALUES ('Z')"))
        with admin.connect() as conn:
            assert conn.execute(text(f"SELECT count(*) FROM {table}")).scalar() == 3
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP TABLE {table}"))
        admin.dispose()


def test_sql_hash_changes_with_the_data(sqlite_db):
    src = {"url": f"sqlite:///{sqlite_db}", "query": "SELECT kid AS child_id, county AS family_id FROM removals"}
    first = load_source("families", src).inputs[0].sha256
    with sqlite3.connect(sqlite_db) as con:
        con.execute("UPDATE removals SET county = '1' WHERE kid = 'A1'")
    con.close()
    assert load_source("families", src).inputs[0].sha256 != first
    assert first != hashlib.sha256(sqlite_db.read_bytes()).hexdigest()  # a result hash, not a file hash
