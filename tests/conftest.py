"""Shared test fixtures.

Loading fixtures (``canonical_tables``, ``write_config``, ``afcars_three_periods``) build
small inputs by hand so every expected value in a test can be checked by eye.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest


@pytest.fixture
def canonical_tables() -> dict[str, pd.DataFrame]:
    """Small canonical tables (three children in two families) with the schema's dtypes.

    Ids are digit strings on purpose: binary formats that store them as numbers must give
    them back as ``"1001"``, not ``"1001.0"``.
    """
    children = pd.DataFrame(
        {
            "child_id": pd.array(["1001", "1002", "1003"], dtype="string"),
            "birth_date": pd.to_datetime(["2012-05-01", "2014-07-09", "2010-01-20"]).astype("datetime64[ns]"),
            "family_id": pd.array(["501", "501", "502"], dtype="string"),
            "sex": pd.array(["female", "male", "unknown"], dtype="string"),
            "race_ethnicity": pd.array(["white", "black", "hispanic"], dtype="string"),
            "hispanic": pd.array([False, False, True], dtype="boolean"),
        }
    )
    episodes = pd.DataFrame(
        {
            "child_id": pd.array(["1001", "1002", "1003"], dtype="string"),
            "removal_date": pd.to_datetime(["2019-03-01", "2019-03-01", "2020-06-15"]).astype("datetime64[ns]"),
            "discharge_date": pd.to_datetime(["2020-01-10", None, "2021-02-01"]).astype("datetime64[ns]"),
            "discharge_reason": pd.array(["reunification", None, "adoption"], dtype="string"),
            "removal_neglect": pd.array([True, True, False], dtype="boolean"),
            "placements": pd.array([2, 1, 3], dtype="Int64"),
        }
    )
    reports = pd.DataFrame(
        {
            "child_id": pd.array(["1001", "1003"], dtype="string"),
            "report_date": pd.to_datetime(["2019-02-01", "2020-05-20"]).astype("datetime64[ns]"),
            "substantiated": pd.array([True, False], dtype="boolean"),
            "report_id": pd.array(["9001", "9002"], dtype="string"),
        }
    )
    participation = pd.DataFrame(
        {
            "family_id": pd.array(["501"], dtype="string"),
            "enrolled_date": pd.to_datetime(["2019-04-02"]).astype("datetime64[ns]"),
            "hours": [12.5],
            "parent_role": pd.array(["mother"], dtype="string"),
        }
    )
    families = pd.DataFrame(
        {
            "child_id": pd.array(["1001", "1002", "1003"], dtype="string"),
            "family_id": pd.array(["501", "501", "502"], dtype="string"),
        }
    )
    return {
        "children": children,
        "episodes": episodes,
        "reports": reports,
        "participation": participation,
        "families": families,
    }


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[..., Path]:
    """Write ``eval.toml`` (a ``[data]`` section plus the given TOML text) into ``tmp_path``.

    Usage: ``write_config('[data.children]\\npath = "kids.csv"')`` returns the config path.
    """

    def write(body: str, extract_date: str = "2023-12-31", preamble: str = "") -> Path:
        path = tmp_path / "eval.toml"
        path.write_text(f'[data]\nextract_date = "{extract_date}"\n{preamble}\n{body}\n', encoding="utf-8")
        return path

    return write


#: Three semi-annual AFCARS periods, hand-built (tab-delimited, NDACAN names).
#: Child C1: removed 2018-11-05, discharged 2019-05-20 (reunification) in period 2, re-enters
#: 2019-08-01 in period 3 (DLstFCDt = 2019-05-20). Child C2: removed 2018-06-01, still in care,
#: placements grow, TPR of the mother in period 3; period 3 file uses UPPERCASE names and 0/1
#: flags. Child C3: removed 2017-01-15, its discharge record is missing (it simply disappears)
#: and it re-enters on 2019-07-07 with DLstFCDt = 2018-12-20: the DLstFCDt rule closes the
#: first episode.
AFCARS_HEADER = (
    "State\tRepDatYr\tRepDatMo\tFIPSCode\tRecNumbr\tDOB\tSex\tAmIAKN\tAsian\tBlkAfrAm\tHawaiiPI\tWhite\t"
    "UnToDetm\tHisOrgin\tDLstFCDt\tLatRemDt\tNumPlep\tPhyAbuse\tNeglect\tDAParent\tHousing\tCurPlSet\t"
    "TPRMomDt\tTPRDadDt\tDoDFCDt\tDISREASN"
)
AFCARS_PERIODS = {
    "FC2019A.tab": [
        # period ending 2018-09-30 ... named by fiscal year: 2019A = Oct 2018 - Mar 2019
        "19\t2019\t3\t19153\tC1\t2012-05-01\t2\t2\t2\t2\t2\t1\t2\t2\t\t2018-11-05\t1\t2\t1\t2\t2\t3\t\t\t\t0",
        "19\t2019\t3\t19113\tC2\t2010-02-02\t1\t2\t2\t1\t2\t2\t2\t2\t\t2018-06-01\t1\t1\t2\t1\t2\t2\t\t\t\t",
        "19\t2019\t3\t19163\tC3\t2008-08-08\t2\t2\t2\t2\t2\t2\t2\t1\t\t2017-01-15\t4\t2\t1\t2\t99\t4\t\t\t\t99",
    ],
    "FC2019B.tab": [
        "19\t2019\t9\t19153\tC1\t2012-05-01\t2\t2\t2\t2\t2\t1\t2\t2\t\t2018-11-05\t2\t2\t1\t2\t2\t8\t\t\t2019-05-20\t1",
        "19\t2019\t9\t19113\tC2\t2010-02-02\t1\t2\t2\t1\t2\t2\t2\t2\t\t2018-06-01\t2\t1\t2\t1\t2\t3\t\t\t\t0",
    ],
    "FC2020A.tab": [
        "19\t2020\t3\t19153\tC1\t2012-05-01\t2\t0\t0\t0\t0\t1\t0\t0\t2019-05-20\t2019-08-01\t1\t0\t0\t1\t0\t2\t\t\t\t0",
        "19\t2020\t3\t19113\tC2\t2010-02-02\t1\t0\t0\t1\t0\t1\t0\t0\t\t2018-06-01\t3\t1\t0\t1\t0\t1\t2020-01-15\t\t\t0",
        "19\t2020\t3\t19163\tC3\t2008-08-08\t2\t0\t0\t0\t0\t0\t0\t1\t2018-12-20\t2019-07-07\t1\t0\t1\t0\t0\t5\t\t\t\t0",
    ],
}


@pytest.fixture
def afcars_three_periods(tmp_path: Path) -> list[str]:
    """Write the three AFCARS period files; returns their names (relative to ``tmp_path``)."""
    names = []
    for i, (name, lines) in enumerate(AFCARS_PERIODS.items()):
        header = AFCARS_HEADER.upper() if i == 2 else AFCARS_HEADER  # later years: UPPERCASE names
        (tmp_path / name).write_text(header + "\n" + "\n".join(lines) + "\n", encoding="utf-8")
        names.append(name)
    return names


@pytest.fixture(autouse=True, scope="session")
def _run_log_in_tmp(tmp_path_factory):
    """``ppeval report`` appends to a run log in the user's state folder: keep tests' out of ~."""
    import os

    old = os.environ.get("XDG_STATE_HOME")
    os.environ["XDG_STATE_HOME"] = str(tmp_path_factory.mktemp("xdg_state"))
    yield
    if old is None:
        os.environ.pop("XDG_STATE_HOME", None)
    else:
        os.environ["XDG_STATE_HOME"] = old
