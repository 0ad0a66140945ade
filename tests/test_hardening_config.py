"""Hardening: a config is data, SQL sources only read and only bind, paths follow the config.

* A config can never execute code: it is TOML read with :mod:`tomllib` (a Python file named
  ``eval.toml`` is a TOML error), every string in it is data (a path that reads like code is
  a missing file, a covariate that reads like code an unknown column), nothing in ``ppeval``
  calls ``eval``/``exec``/``compile``/``__import__``, unpickles, or builds a model formula
  (formula interfaces evaluate their terms as Python), and text from the config is escaped
  in the HTML report.
* SQL sources are read-only (SQLite: ``mode=ro`` plus an authorizer that refuses
  ``ATTACH``/``VACUUM INTO``/pragmas) and parameters are bound by the driver: a value with
  SQL injection text is a value; ppeval never formats the query text.
* Relative paths (files, AFCARS/NCANDS presets, SQLite databases) are relative to the config
  file, whatever the working directory.
"""

from __future__ import annotations

import ast
import hashlib
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "hardening"))
from support import GOOD, REPO, SYNTHETIC, copy_good, hash_tree, parse_validate_output, run_cli  # noqa: E402

from ppeval.config import Config  # noqa: E402
from ppeval.errors import ConfigError  # noqa: E402
from ppeval.load import load_extract  # noqa: E402

SMALL_EXTRACT = Path(__file__).parent / "hardening" / "small_extract"
CODE = "__import__('os').system('touch PWNED')"


# ------------------------------------------------------------------------------ no code
def test_a_python_file_is_not_a_config(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "eval.toml").write_text("import os\nos.system('touch PWNED')\n")
    status, _out, err = run_cli("-q", "validate", "eval.toml")
    assert status == 2 and "not valid TOML" in err
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize("where", ["path", "columns", "codes", "covariates", "exact", "title", "date_format", "url"])
def test_strings_that_read_like_code_are_data(where, tmp_path, monkeypatch):
    d = copy_good(tmp_path / "case")
    monkeypatch.chdir(d)
    cfg = d / "eval.toml"
    text = cfg.read_text()
    edits = {
        "path": ('path = "children.csv"', f'path = "{CODE}.csv"'),
        "columns": ('path = "children.csv"', f'path = "children.csv"\ncolumns = {{ county = "{CODE}" }}'),
        "codes": ('path = "children.csv"', f'path = "children.csv"\ncodes = {{ sex = {{ "female" = "{CODE}" }} }}'),
        "covariates": ("[cohort]", f'[propensity]\ncovariates = ["{CODE}"]\n[cohort]'),
        "exact": ("[cohort]", f'[matching]\nexact = ["{CODE}"]\n[cohort]'),
        "title": ('title = "bad-input fixtures: valid baseline"', f'title = "{CODE}"'),
        "date_format": ('path = "children.csv"', f'path = "children.csv"\ndate_format = "{CODE}"'),
        "url": ('[data.episodes]\npath = "episodes.csv"', f'[data.episodes]\nurl = "{CODE}"\nquery = "SELECT 1"'),
    }
    old, new = edits[where]
    assert old in text
    cfg.write_text(text.replace(old, new))
    before = hash_tree(d)
    for args in (("-q", "validate", "eval.toml"), ("-q", "report", "eval.toml", "--out", str(tmp_path / "out"))):
        status, out, err = run_cli(*args)
        assert status in (0, 1, 2), err
        assert "Traceback" not in out + err
    assert not (d / "PWNED").exists() and not (tmp_path / "PWNED").exists()
    assert hash_tree(d) == before


def test_report_text_from_the_config_is_escaped(tmp_path):
    """Title and program name reach the report as text: markup in them is escaped, never run."""
    shutil.copytree(SMALL_EXTRACT, tmp_path / "data")
    cfg = tmp_path / "data" / "eval.toml"
    evil = '<script>alert(1)</script><img src=x onerror=alert(2)>'
    text = cfg.read_text()
    text = text.replace('program_name = "Parent Partner program"', f"program_name = '{evil}'")
    text = text.replace(text.splitlines()[0], f"title = '{evil} & co'")
    cfg.write_text(text)
    status, _out, err = run_cli("-q", "report", str(cfg), "--out", str(tmp_path / "report"))
    assert status == 0, err
    for name in ("report.html", "factsheet.html"):
        html = (tmp_path / "report" / name).read_text()
        assert "<script>alert(1)" not in html and "<img src=x" not in html, name
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html, name


SOURCE = REPO / "src" / "ppeval"
FORBIDDEN_CALLS = {"eval", "exec", "compile", "__import__", "execfile"}
FORBIDDEN_MODULES = {"pickle", "marshal", "shelve", "dill", "cloudpickle", "patsy", "yaml", "subprocess"}
FORBIDDEN_ATTRS = {"system", "popen", "from_formula", "query", "dmatrices", "dmatrix"}


def test_no_code_evaluation_anywhere_in_ppeval():
    """Static guard: no dynamic evaluation, unpickling, shell or formula interface in the package."""
    offences = []
    for py in sorted(SOURCE.rglob("*.py")):
        tree = ast.parse(py.read_text(encoding="utf-8"), filename=str(py))
        for node in ast.walk(tree):
            where = f"{py.relative_to(SOURCE)}:{getattr(node, 'lineno', '?')}"
            if isinstance(node, ast.Call):
                f = node.func
                if isinstance(f, ast.Name) and f.id in FORBIDDEN_CALLS:
                    offences.append(f"{where}: {f.id}()")
                if isinstance(f, ast.Attribute) and f.attr in FORBIDDEN_ATTRS:
                    # DataFrame.query / .eval-like string interfaces evaluate expressions
                    offences.append(f"{where}: .{f.attr}()")
                if isinstance(f, ast.Attribute) and f.attr == "eval" and not isinstance(f.value, ast.Name | ast.Attribute):
                    offences.append(f"{where}: .eval()")
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = [a.name for a in node.names] + ([node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
                bad = {n.split(".")[0] for n in names} & FORBIDDEN_MODULES
                if bad:
                    offences.append(f"{where}: import {', '.join(sorted(bad))}")
    assert not offences, offences


def test_config_is_toml_only():
    """The only config reader is tomllib (a data-only format)."""
    source = (SOURCE / "config.py").read_text()
    assert "tomllib.loads" in source
    with pytest.raises(ConfigError, match="not valid TOML"):
        Config.from_toml(_write_tmp("x = __import__('os')\n"))


def _write_tmp(text: str) -> Path:
    import tempfile

    p = Path(tempfile.mkdtemp()) / "eval.toml"
    p.write_text(text)
    return p


# ------------------------------------------------------------------------------ SQL
@pytest.fixture
def warehouse(tmp_path) -> Path:
    """A SQLite database with the good extract's episodes, in a project folder with a config."""
    import csv

    proj = tmp_path / "project"
    copy_good(proj)
    rows = list(csv.reader((GOOD / "episodes.csv").read_text().splitlines()))
    db = proj / "warehouse.db"
    with sqlite3.connect(db) as con:
        con.execute(f"CREATE TABLE removals ({', '.join(c + ' TEXT' for c in rows[0])}, county TEXT)")
        con.executemany(f"INSERT INTO removals VALUES ({', '.join('?' * (len(rows[0]) + 1))})",
                        [[*r, "19153" if i % 2 else "19013"] for i, r in enumerate(rows[1:])])
    con.close()
    return proj


def _sql_config(proj: Path, query: str, params: str) -> Path:
    cfg = proj / "eval.toml"
    text = cfg.read_text().replace('[data.episodes]\npath = "episodes.csv"',
                                   f"[data.episodes]\nurl = \"sqlite:///warehouse.db\"\nquery = '''{query}'''\nparams = {params}")
    cfg.write_text(text)
    return cfg


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


@pytest.mark.parametrize("value", [
    "19153' OR '1'='1",
    "19153'; DROP TABLE removals; --",
    "19153\" OR \"1\"=\"1",
    "x' UNION SELECT name, sql, 1, 1, 1, 1, 1, 1, 1, 1 FROM sqlite_master --",
    ":county",
    "%s",
])
def test_a_param_with_sql_injection_text_is_a_value(warehouse, value, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    esc = value.replace("\\", "\\\\").replace('"', '\\"')
    cfg = _sql_config(warehouse, "SELECT child_id, removal_date, discharge_date, discharge_reason FROM removals WHERE county = :county",
                      f'{{ county = "{esc}" }}')
    db_before = _sha(warehouse / "warehouse.db")
    ext = load_extract(cfg)
    [p] = [p for p in ext.load_problems if p.file == "sql:episodes"]
    assert p.message == "the query returned no rows"  # matched nothing: the text was compared as a value
    status, out, _err = run_cli("-q", "validate", str(cfg))
    assert status == 1 and "sql:episodes: the query returned no rows" in out
    assert _sha(warehouse / "warehouse.db") == db_before
    with sqlite3.connect(warehouse / "warehouse.db") as con:
        assert con.execute("SELECT count(*) FROM removals").fetchone()[0] == 7


def test_the_same_query_with_a_plain_value_returns_rows(warehouse):
    cfg = _sql_config(warehouse, "SELECT child_id, removal_date, discharge_date, discharge_reason FROM removals WHERE county = :county",
                      '{ county = "19153" }')
    ext = load_extract(cfg)
    assert not [p for p in ext.load_problems if p.file == "sql:episodes"]
    assert len(ext.episodes) == 3


def test_the_query_text_is_never_formatted(warehouse):
    """Placeholders of Python string formatting stay in the SQL: ppeval binds, never builds."""
    cfg = _sql_config(warehouse, "SELECT child_id, removal_date FROM removals WHERE county = '{county}' OR county = '%(county)s'",
                      '{ county = "19153" }')
    ext = load_extract(cfg)
    [p] = [p for p in ext.load_problems if p.file == "sql:episodes"]
    assert p.message == "the query returned no rows"


@pytest.mark.parametrize("statement, created", [
    ("DELETE FROM removals", None),
    ("UPDATE removals SET county = 'x'", None),
    ("DROP TABLE removals", None),
    ("CREATE TABLE x (a)", None),
    ("INSERT INTO removals (child_id) VALUES ('Z')", None),
    ("ATTACH DATABASE 'side.db' AS side", "side.db"),
    ("VACUUM INTO 'copy.db'", "copy.db"),
    ("PRAGMA journal_mode = WAL", None),
    ("SELECT child_id, removal_date FROM removals; DELETE FROM removals", None),
    ("WITH x AS (SELECT 1) DELETE FROM removals", None),
])
def test_sql_sources_cannot_write(warehouse, statement, created, tmp_path, monkeypatch):
    monkeypatch.chdir(warehouse)  # a relative file name in SQL would land here
    cfg = _sql_config(warehouse, statement, "{}")
    before = hash_tree(warehouse)
    status, out, err = run_cli("-q", "validate", str(cfg))
    assert status == 1 and "Traceback" not in out + err, out + err
    [p] = [p for p in parse_validate_output(out) if p["file"] == "sql:episodes"]
    assert p["severity"] == "error" and p["row"] is None
    assert hash_tree(warehouse) == before, "the database (or a file beside it) changed"
    if created:
        assert not (warehouse / created).exists() and not (tmp_path / created).exists()


# ------------------------------------------------------------------------------ relative paths
def test_paths_are_relative_to_the_config_not_the_working_directory(tmp_path, monkeypatch):
    """Files, a folder above the config, presets and a SQLite database, from three working directories."""
    proj = tmp_path / "project"
    (proj / "config").mkdir(parents=True)
    (proj / "data").mkdir()
    shared = tmp_path / "shared"
    shared.mkdir()
    for name in ("children.csv", "episodes.csv", "reports.csv", "participation.csv"):
        shutil.copy(GOOD / name, proj / "data" / name)
    shutil.copy(GOOD / "families.csv", shared / "families.csv")
    (proj / "data" / "afcars").mkdir()
    shutil.copy(SYNTHETIC / "afcars" / "FC2016A.tab", proj / "data" / "afcars" / "FC2016A.tab")
    cfg = proj / "config" / "eval.toml"
    cfg.write_text(
        'title = "relative paths"\n[data]\nextract_date = "2023-12-31"\n'
        '[data.children]\npath = "../data/children.csv"\n'
        '[data.episodes]\npath = "../data/episodes.csv"\n'
        '[data.reports]\npath = "../data/reports.csv"\n'
        '[data.participation]\npath = "../data/participation.csv"\n'
        f'[data.families]\npath = "{(shared / "families.csv").as_posix()}"\n'
    )
    expected_rows = {"children": 6, "episodes": 7, "reports": 7, "participation": 3, "families": 6}
    for cwd in (tmp_path, proj / "data", Path(tmp_path.anchor)):
        monkeypatch.chdir(cwd)
        rel = os.path.relpath(cfg, cwd)  # the config named relative to where the command runs
        ext = load_extract(rel)
        assert {t: len(df) for t, df in ext.tables.items()} == expected_rows, cwd
        assert ext.load_problems == []
        status, out, err = run_cli("-q", "validate", rel)
        assert status == 0, out + err
    # the presets and a SQLite URL follow the same rule
    (proj / "config" / "presets.toml").write_text(
        '[data]\nextract_date = "2023-12-31"\nafcars = ["../data/afcars/FC2016A.tab"]\n'
    )
    monkeypatch.chdir(tmp_path)
    ext = load_extract(proj / "config" / "presets.toml")
    assert len(ext.episodes) > 10 and not [p for p in ext.load_problems if "not found" in p.message]
    with sqlite3.connect(proj / "data" / "w.db") as con:
        con.execute("CREATE TABLE f (child_id TEXT, family_id TEXT)")
        con.execute("INSERT INTO f VALUES ('C001', 'F01')")
    con.close()
    (proj / "config" / "sql.toml").write_text(
        '[data]\nextract_date = "2023-12-31"\n[data.families]\nurl = "sqlite:///../data/w.db"\nquery = "SELECT * FROM f"\n'
    )
    ext = load_extract(proj / "config" / "sql.toml")
    assert ext.families["child_id"].tolist() == ["C001"] and ext.load_problems == []


def test_relative_paths_from_another_directory_in_a_real_process(tmp_path):
    proj = copy_good(tmp_path / "project")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = subprocess.run([sys.executable, "-m", "ppeval", "-q", "validate", "../project/eval.toml"], cwd=elsewhere,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == "0 error(s), 0 warning(s)"
    assert list(elsewhere.iterdir()) == []
    assert hash_tree(proj) == {k: v for k, v in hash_tree(GOOD).items() if k != "expected.toml"}
