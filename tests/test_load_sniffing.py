"""Files that are not what their name says, too large or sparse are refused before they are read.

Each refusal is a file-level error problem (``ppeval validate`` exits 1) that names the
file and the fix; a binary file is never told to "set encoding = latin-1". Workbooks with
data on several sheets need ``sheet = "<name>"``. Running out of memory while reading is a
:class:`~ppeval.errors.DataError` (exit 1) naming the file and the options.
"""

from __future__ import annotations

import gzip
import io
import os
import time
import zipfile

import pandas as pd
import pytest

from ppeval import load_extract
from ppeval.cli import main
from ppeval.config import DEFAULT_MAX_FILE_MB, Config
from ppeval.errors import ConfigError, DataError
from ppeval.load import load_source, read_file, readers

FAMILIES = b"child_id,family_id\n1001,F1\n1002,F1\n1003,F2\n"
AFCARS_ROW = b"StFCID\tRecNumbr\tDOB\tLatRemDt\n19A\tC1\t2012-05-01\t2018-11-05\n"


def _load(tmp_path, name: str, data: bytes, table: str = "families", **source):
    (tmp_path / name).write_bytes(data)
    return load_source(table, {"path": name, **source}, base_dir=tmp_path)


def _refusal(res, name: str, read: bool = False):
    """The one problem of a refused file: file-level, an error, nothing loaded, no latin-1 advice.

    A file refused before reading is not in the inputs (it was not hashed); a workbook is
    read (and hashed) before its sheets are known.
    """
    [p] = res.problems
    assert (p.severity, p.file, p.row, p.column) == ("error", name, None, None)
    assert "latin-1" not in p.message
    assert res.frames() == {}
    assert [(i.path, i.rows) for i in res.inputs] == ([(name, 0)] if read else [])
    return p


def _xlsx_bytes(sheets: dict[str, pd.DataFrame]) -> bytes:
    buf = io.BytesIO()
    with pd.ExcelWriter(buf, engine="openpyxl") as xl:
        for name, df in sheets.items():
            df.to_excel(xl, sheet_name=name, index=False)
    return buf.getvalue()


FAMILY_FRAME = pd.DataFrame({"child_id": ["1001", "1002", "1003"], "family_id": ["F1", "F1", "F2"]})


# ------------------------------------------------------------------------------ wrong content
def test_gzip_named_tab_is_refused_with_the_fix(tmp_path):
    res = _load(tmp_path, "FC2016A.tab", gzip.compress(AFCARS_ROW, mtime=0), table="children")
    p = _refusal(res, "FC2016A.tab")
    assert p.message.startswith("the file is a gzip-compressed file, not tab-delimited text")
    assert "decompress it (gunzip) or name it with .gz at the end" in p.message


def test_gzip_named_gz_is_still_read_transparently(tmp_path):
    res = _load(tmp_path, "families.csv.gz", gzip.compress(FAMILIES, mtime=0))
    assert res.problems == []
    assert res.frames()["families"]["family_id"].tolist() == ["F1", "F1", "F2"]


def test_gz_name_on_a_file_that_is_not_gzip(tmp_path):
    p = _refusal(_load(tmp_path, "families.csv.gz", FAMILIES), "families.csv.gz")
    assert "the name ends .gz but the file is not gzip-compressed" in p.message and "name it without .gz" in p.message


def test_gzip_of_a_workbook_is_refused(tmp_path):
    book = _xlsx_bytes({"Crosswalk": FAMILY_FRAME})
    p = _refusal(_load(tmp_path, "families.csv.gz", gzip.compress(book, mtime=0)), "families.csv.gz")
    assert "gzip-compressed an Excel .xlsx workbook, not comma-delimited text" in p.message


def test_elf_program_named_tab_is_refused(tmp_path):
    elf = b"\x7fELF\x02\x01\x01\x00" + bytes(8) + b"\x02\x00\x3e\x00" + os.urandom(4000)
    p = _refusal(_load(tmp_path, "FC2016A.tab", elf, table="children"), "FC2016A.tab")
    assert p.message.startswith("the file is a program or script, not a data file, not tab-delimited text")
    assert "check the path" in p.message


def test_zip_archive_named_csv_is_refused(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("families.csv", FAMILIES)
    p = _refusal(_load(tmp_path, "families.csv", buf.getvalue()), "families.csv")
    assert p.message.startswith("the file is a zip archive, not comma-delimited text")
    assert "extract the data file from it" in p.message


def test_workbook_named_csv_is_refused_and_told_to_use_xlsx(tmp_path):
    p = _refusal(_load(tmp_path, "families.csv", _xlsx_bytes({"Sheet1": FAMILY_FRAME})), "families.csv")
    assert p.message.startswith("the file is an Excel .xlsx workbook, not comma-delimited text")
    assert 'set format = "xlsx"' in p.message
    # and the advice works
    res = load_source("families", {"path": "families.csv", "format": "xlsx"}, base_dir=tmp_path)
    assert res.problems == [] and res.frames()["families"]["child_id"].tolist() == ["1001", "1002", "1003"]


def test_pdf_named_csv_is_refused(tmp_path):
    pdf = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n" + bytes(range(256)) * 4
    p = _refusal(_load(tmp_path, "families.csv", pdf), "families.csv")
    assert p.message.startswith("the file is a PDF document, not comma-delimited text")
    assert "export the table from its source system as CSV" in p.message


@pytest.mark.parametrize(
    ("data", "start", "fix"),
    [
        (b"PAR1" + bytes(200), "the file is a Parquet file", 'set format = "parquet"'),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(200), "the file is an Excel 97-2003 workbook", "save the sheet as .xlsx"),
        (b"SQLite format 3\x00" + bytes(200), "the file is an SQLite database", 'url = "sqlite:///'),
        (b"\n<!DOCTYPE html>\n<html><body>Sign in</body></html>\n", "the file is a web page (HTML)", "download the data again"),
        (b"BZh91AY&SY" + bytes(100), "the file is a bzip2-compressed file", "decompress it"),
    ],
)
def test_other_files_under_a_text_name(tmp_path, data, start, fix):
    p = _refusal(_load(tmp_path, "families.csv", data), "families.csv")
    assert p.message.startswith(start) and fix in p.message


def test_unrecognised_binary_is_refused_not_sent_to_latin1(tmp_path):
    import random

    rnd = random.Random(7)
    blob = bytes(rnd.randrange(1, 256) for _ in range(20_000))  # no NUL runs, no signature
    p = _refusal(_load(tmp_path, "FC2016A.tab", blob, table="children"), "FC2016A.tab")
    assert p.message.startswith("the file is binary data, not tab-delimited text")
    assert "control bytes" in p.message


def test_latin1_text_still_gets_the_encoding_advice(tmp_path):
    res = _load(tmp_path, "families.csv", "child_id,family_id\n1,Mu\xf1oz\n".encode("latin-1"))
    [p] = res.problems
    assert p.row == 2 and 'encoding = "latin-1"' in p.message


def test_text_named_parquet_or_sav_is_refused(tmp_path):
    p = _refusal(_load(tmp_path, "families.parquet", FAMILIES), "families.parquet")
    assert p.message.startswith("the file is not a Parquet file (it does not start as one; it looks like text)")
    assert 'name it .csv (or .tab) or set format = "csv"' in p.message
    p = _refusal(_load(tmp_path, "families.sav", gzip.compress(FAMILIES)), "families.sav")
    assert p.message.startswith("the file is a gzip-compressed file, not an SPSS data file (.sav)")


# ------------------------------------------------------------------------------ sparse and NUL files
def _sparse(path, size: int, head: bytes = b"") -> None:
    with open(path, "wb") as f:
        f.write(head)
        f.truncate(size)


def test_five_gb_sparse_file_is_refused_at_once_without_reading_it(tmp_path):
    path = tmp_path / "FC2016A.tab"
    _sparse(path, 5 * 2**30)
    if path.stat().st_blocks * 512 > 2**20:
        pytest.skip("this file system does not make sparse files")
    t0 = time.perf_counter()
    res = load_source("children", {"path": path.name}, base_dir=tmp_path)
    assert time.perf_counter() - t0 < 0.5
    p = _refusal(res, "FC2016A.tab")
    assert p.message.startswith("the file is filled with NUL bytes (a sparse or pre-allocated file")
    assert "copy or download the file again" in p.message


def test_sparse_file_with_a_text_start_is_refused_from_its_middle(tmp_path):
    path = tmp_path / "FC2016A.tab"
    _sparse(path, 5 * 2**30, head=AFCARS_ROW * 2000)  # text beyond the first sample
    t0 = time.perf_counter()
    res = load_source("children", {"path": path.name}, base_dir=tmp_path)
    assert time.perf_counter() - t0 < 0.5
    p = _refusal(res, "FC2016A.tab")
    assert "a run of NUL bytes, which never occur in text" in p.message
    assert f"from byte {5 * 2**30 // 2:,}" in p.message


def test_small_nul_runs_stay_cell_problems(tmp_path):
    # 40 NULs in a row (a damaged line) is not a NUL-filled file: the row is reported, the rest loads
    res = _load(tmp_path, "families.csv", FAMILIES + b"\x00" * 40 + b"\n1004,F3\n")
    assert len(res.frames()["families"]) == 4
    assert all(p.row == 5 for p in res.problems)


# ------------------------------------------------------------------------------ the size cap
def test_file_over_the_configured_cap_is_refused_naming_size_cap_and_options(tmp_path, write_config):
    (tmp_path / "families.csv").write_bytes(b"child_id,family_id\n" + b"1001,F1\n" * 300_000)  # 2.3 MB
    cfg = write_config('[data.families]\npath = "families.csv"', preamble="max_file_mb = 1")
    ext = load_extract(cfg)
    [p] = ext.load_problems
    assert (p.severity, p.file, p.row) == ("error", "families.csv", None)
    assert p.message.startswith("the file is 2.3 MB, more than the limit of 1.0 MB ([data] max_file_mb = 1)")
    assert "raise [data] max_file_mb" in p.message and 'engine = "duckdb"' in p.message
    assert len(ext.families) == 0
    status = main(["-q", "validate", str(cfg)])
    assert status == 1
    # the default cap reads it
    assert len(load_extract(write_config('[data.families]\npath = "families.csv"')).families) == 300_000


def test_the_cap_applies_to_the_decompressed_size_of_a_gz(tmp_path):
    data = gzip.compress(b"child_id,family_id\n" + b"1001,F1\n" * 300_000, mtime=0)
    assert len(data) < 2**20
    (tmp_path / "families.csv.gz").write_bytes(data)
    raw = read_file(tmp_path / "families.csv.gz", label="families.csv.gz", max_bytes=2**20)
    [p] = raw.problems
    assert not raw.ok and p.message.startswith("the file decompresses to more than the limit of 1.0 MB")
    assert len(read_file(tmp_path / "families.csv.gz", max_bytes=None)) == 300_000


def test_cap_in_the_presets_too(tmp_path, write_config):
    (tmp_path / "FC2016A.tab").write_bytes(AFCARS_ROW + b"19A\tC1\t2012-05-01\t2018-11-05\n" * 30_000)  # 849.7 KB
    cfg = write_config("", preamble='afcars = ["FC2016A.tab"]\nmax_file_mb = 0.5')
    problems = [p for p in load_extract(cfg).load_problems if p.file == "FC2016A.tab"]
    [p] = problems
    assert p.message.startswith("the file is 849.7 KB, more than the limit of 512.0 KB ([data] max_file_mb = 0.5)")


def test_max_file_mb_default_and_validation():
    cfg = Config.from_dict({"data": {"extract_date": "2023-12-31"}})
    assert cfg["data"]["max_file_mb"] == DEFAULT_MAX_FILE_MB == 20_000
    assert f"data.max_file_mb = {DEFAULT_MAX_FILE_MB}" in cfg.defaults_applied
    for bad in (0, -5, float("nan"), "big"):
        with pytest.raises(ConfigError, match="max_file_mb"):
            Config.from_dict({"data": {"extract_date": "2023-12-31", "max_file_mb": bad}})


# ------------------------------------------------------------------------------ Excel sheets
def test_workbook_with_two_sheets_needs_a_sheet_name(tmp_path):
    book = _xlsx_bytes({"About": pd.DataFrame({"note": ["cover sheet"]}), "Crosswalk": FAMILY_FRAME})
    p = _refusal(_load(tmp_path, "book.xlsx", book), "book.xlsx", read=True)
    assert p.message == (
        "the workbook has 2 sheets ('About', 'Crosswalk') and 2 of them hold data; name the one to read with "
        'sheet = "<name>" in [data.families], e.g. sheet = "About"'
    )
    res = load_source("families", {"path": "book.xlsx", "sheet": "Crosswalk"}, base_dir=tmp_path)
    assert res.problems == [] and res.frames()["families"]["family_id"].tolist() == ["F1", "F1", "F2"]
    res = load_source("families", {"path": "book.xlsx", "sheet": 1}, base_dir=tmp_path)
    assert res.frames()["families"]["family_id"].tolist() == ["F1", "F1", "F2"]


def test_wrong_sheet_name_lists_the_sheets(tmp_path):
    book = _xlsx_bytes({"About": pd.DataFrame({"note": ["x"]}), "Crosswalk": FAMILY_FRAME})
    p = _refusal(_load(tmp_path, "book.xlsx", book, sheet="Crosswalks"), "book.xlsx", read=True)
    assert p.message == (
        "the workbook has no sheet 'Crosswalks'; its sheets are 'About', 'Crosswalk': set sheet = \"<name>\" in "
        "[data.families] to one of them (or a 0-based sheet number)"
    )


def test_one_sheet_with_data_beside_empty_ones_is_read(tmp_path):
    # Excel's old default workbook: Sheet1 with the data, Sheet2 and Sheet3 empty
    buf = io.BytesIO()
    with pd.ExcelWriter(buf, engine="openpyxl") as xl:
        pd.DataFrame().to_excel(xl, sheet_name="Sheet1", index=False)
        FAMILY_FRAME.to_excel(xl, sheet_name="Sheet2", index=False)
        pd.DataFrame().to_excel(xl, sheet_name="Sheet3", index=False)
    res = _load(tmp_path, "book.xlsx", buf.getvalue())
    assert res.problems == [] and res.frames()["families"]["child_id"].tolist() == ["1001", "1002", "1003"]


def test_workbook_sheets_through_validate(tmp_path, write_config, capsys):
    (tmp_path / "book.xlsx").write_bytes(_xlsx_bytes({"About": pd.DataFrame({"n": [1]}), "Crosswalk": FAMILY_FRAME}))
    status = main(["-q", "validate", str(write_config('[data.families]\npath = "book.xlsx"'))])
    out = capsys.readouterr().out
    assert status == 1
    assert "error: book.xlsx: the workbook has 2 sheets ('About', 'Crosswalk')" in out


# ------------------------------------------------------------------------------ out of memory
def test_out_of_memory_while_reading_names_the_file_and_the_options(tmp_path, write_config, monkeypatch, capsys):
    (tmp_path / "families.csv").write_bytes(FAMILIES)

    def exhausted(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(readers, "_read_text", exhausted)
    with pytest.raises(DataError) as info:
        load_source("families", {"path": "families.csv"}, base_dir=tmp_path)
    msg = str(info.value)
    assert msg.startswith("families.csv: out of memory while reading this file (43 bytes)")
    assert 'engine = "duckdb"' in msg and "split the file" in msg
    status = main(["-q", "validate", str(write_config('[data.families]\npath = "families.csv"'))])
    err = capsys.readouterr().err
    assert status == 1
    assert err.startswith("ppeval validate: families.csv: out of memory while reading this file")


def test_out_of_memory_after_reading_names_the_file(tmp_path, monkeypatch):
    import ppeval.load as load

    (tmp_path / "families.csv").write_bytes(FAMILIES)

    def exhausted(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(load, "to_canonical", exhausted)
    with pytest.raises(DataError, match=r"^families\.csv: out of memory while reading this file \(43 bytes\)"):
        load_source("families", {"path": "families.csv"}, base_dir=tmp_path)
