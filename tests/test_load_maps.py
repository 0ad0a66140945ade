"""Column maps, code maps and the accepted spellings of dates, flags, codes and ids."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from ppeval import schema
from ppeval.errors import ConfigError
from ppeval.load import load_source
from ppeval.load.parse import parse_column


def _load(tmp_path, table: str, text: str, **source) -> tuple[pd.DataFrame, list]:
    (tmp_path / "src.csv").write_text(text, encoding="utf-8")
    res = load_source(table, {"path": "src.csv", **source}, base_dir=tmp_path)
    frames = res.frames()
    return frames.get(table), res.problems


def test_columns_map_is_case_insensitive_and_extras_pass_through(tmp_path):
    df, problems = _load(
        tmp_path,
        "participation",
        "FAMILYID,startdate,Hrs,Caseworker,Zip,Score\nF1,2021-03-15,4.5,Ann,02134,7\nF2,03/01/2021,,Bo,10001,8\n",
        columns={"family_id": "FamilyID", "enrolled_date": "StartDate", "hours": "HRS"},
    )
    assert problems == []
    assert df["family_id"].tolist() == ["F1", "F2"]
    assert df["enrolled_date"].tolist() == [pd.Timestamp("2021-03-15"), pd.Timestamp("2021-03-01")]
    assert df["hours"].tolist()[0] == 4.5 and np.isnan(df["hours"].tolist()[1])
    # extra columns keep their source names; numbers become numeric, leading zeros stay text
    assert df["Caseworker"].tolist() == ["Ann", "Bo"]
    assert df["Zip"].tolist() == ["02134", "10001"]
    assert df["Score"].dtype == "Int64" and df["Score"].tolist() == [7, 8]


def test_canonical_names_are_found_in_any_case_without_a_map(tmp_path):
    df, problems = _load(tmp_path, "families", "Child_ID,FAMILY_ID\n7,F7\n")
    assert problems == [] and df[["child_id", "family_id"]].values.tolist() == [["7", "F7"]]


def test_a_renamed_extra_column_and_a_missing_mapped_optional_column(tmp_path):
    df, problems = _load(
        tmp_path,
        "children",
        "ID,DOB,AgeGrp\n1,2015-01-01,young\n",
        columns={"child_id": "ID", "birth_date": "DOB", "age_group": "AgeGrp", "county": "CountyFIPS"},
    )
    assert df["age_group"].tolist() == ["young"]
    [warning] = problems
    assert warning.severity == "warning" and warning.column == "CountyFIPS"
    assert "no such column" in warning.message and "ID, DOB, AgeGrp" in warning.message


def test_code_maps_recode_before_parsing_and_canonical_codes_need_no_map(tmp_path):
    df, problems = _load(
        tmp_path,
        "episodes",
        "child_id,removal_date,discharge_reason,placement_setting,discharge_date\n"
        "1,2020-01-01,RU,Trial Home Visit,9999-12-31\n"
        "2,2020-01-01,ADOPTION,group-home,2021-01-01\n"
        "3,2020-01-01,ru ,Foster home,\n",
        codes={
            "discharge_reason": {"RU": "reunification"},
            "placement_setting": {"Foster home": "nonrelative_foster_home"},
            "discharge_date": {"9999-12-31": ""},  # an "open" sentinel means missing
        },
    )
    assert problems == []
    assert df["discharge_reason"].tolist() == ["reunification", "adoption", "reunification"]
    assert df["placement_setting"].tolist() == ["trial_home_visit", "group_home", "nonrelative_foster_home"]
    assert df["discharge_date"].isna().tolist() == [True, False, True]


def test_a_code_map_target_outside_the_code_list_is_a_problem(tmp_path):
    df, problems = _load(
        tmp_path, "children", "child_id,birth_date,sex\n1,2015-01-01,W\n", codes={"sex": {"W": "woman"}}
    )
    [p] = problems
    assert (p.row, p.column, p.value, p.message) == (2, "sex", "W", "unknown code")
    assert p.expected == "one of female, male, unknown (after the codes map)"
    assert df["sex"].isna().all()


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["1", "0", "", "99"], [True, False, None, None]),  # 1/0 coding
        (["1", "2", "2", "1"], [True, False, False, True]),  # legacy AFCARS 1/2 coding
        (["Y", "n", "yes", "No"], [True, False, True, False]),
        (["TRUE", "false", "T", "f"], [True, False, True, False]),
        ([" 1 ", "1.0", "0.0", "99.0"], [True, True, False, None]),
    ],
)
def test_yes_no_flags(values, expected):
    p = parse_column(pa.array(values), "bool")
    assert [None if v is pd.NA else v for v in p.to_series().tolist()] == expected
    assert not p.bad.any()


def test_flags_from_numbers_and_a_bad_flag():
    p = parse_column(pa.array([1.0, 2.0, 0.0, 99.0, None, 7.0]), "bool")
    assert p.to_series().tolist()[:4] == [True, False, False, pd.NA]
    assert p.bad.tolist() == [False, False, False, False, False, True]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2020-01-31", "2020-01-31"),
        ("01/31/2020", "2020-01-31"),
        ("1/5/2020", "2020-01-05"),
        ("20200131", "2020-01-31"),
        ("2020-01-31 00:00:00", "2020-01-31"),
        ("2020-01-31T13:45:00", "2020-01-31"),
        ("2020/01/31", "2020-01-31"),
        ("2024-02-29", "2024-02-29"),
    ],
)
def test_accepted_dates(text, expected):
    # mixed with a clean ISO value, so the per-pattern path is exercised as well as the fast cast
    p = parse_column(pa.array([text, "2019-12-01"]), "date")
    assert p.to_series().tolist() == [pd.Timestamp(expected), pd.Timestamp("2019-12-01")]
    assert not p.bad.any()


@pytest.mark.parametrize("text", ["2021-02-29", "2020-13-01", "13/45/2020", "31.01.2020", "2020115", "soon", "0001-01-01", "9999-12-31"])
def test_rejected_dates(text):
    p = parse_column(pa.array([text, "2019-12-01", None]), "date")
    assert p.bad.tolist() == [True, False, False]
    assert p.missing.tolist() == [True, False, True]


def test_date_format_overrides_the_patterns(tmp_path):
    df, problems = _load(
        tmp_path, "children", "child_id,birth_date\n1,31.01.2015\n2,2015-01-31\n", date_format="%d.%m.%Y"
    )
    assert df["birth_date"].tolist()[0] == pd.Timestamp("2015-01-31") and pd.isna(df["birth_date"].tolist()[1])
    [p] = problems
    assert p.row == 3 and p.expected == "a date in the format %d.%m.%Y"
    assert p.value is None  # birth_date identifies a child: never echoed
    with pytest.raises(ConfigError, match="date_format"):
        _load(tmp_path, "children", "child_id,birth_date\n1,x\n", date_format="%Q")


def test_real_dates_from_binary_formats_keep_their_day(tmp_path):
    ts = pd.to_datetime(["2020-01-31 23:59:00", "2021-06-01 00:00:00"])
    pd.DataFrame({"child_id": ["a", "b"], "removal_date": ts}).to_parquet(tmp_path / "e.parquet")
    res = load_source("episodes", {"path": "e.parquet"}, base_dir=tmp_path)
    assert res.frames()["episodes"]["removal_date"].tolist() == [pd.Timestamp("2020-01-31"), pd.Timestamp("2021-06-01")]


def test_numeric_ids_become_strings_without_decimals(tmp_path):
    pd.DataFrame({"child_id": [1234.0, 5.0, np.nan], "family_id": [77, 78, 79]}).to_parquet(tmp_path / "f.parquet")
    res = load_source("families", {"path": "f.parquet"}, base_dir=tmp_path)
    fam = res.frames()["families"]
    assert fam["child_id"].tolist() == ["1234", "5", pd.NA]
    assert fam["family_id"].tolist() == ["77", "78", "79"]
    assert str(fam["child_id"].dtype) == "string"


def test_numbers_whole_and_decimal(tmp_path):
    df, problems = _load(
        tmp_path,
        "participation",
        "family_id,enrolled_date,hours,contacts\nF,2021-01-01,1.5,3\nF,2021-01-01,2e1,4.0\nF,2021-01-01,lots,2.5\n",
    )
    assert df["hours"].tolist()[:2] == [1.5, 20.0] and np.isnan(df["hours"].tolist()[2])
    assert df["contacts"].tolist() == [3, 4, pd.NA]
    assert [(p.row, p.column, p.value, p.message) for p in problems] == [
        (4, "hours", "lots", "not a number"),
        (4, "contacts", "2.5", "not a whole number"),
    ]


def test_sex_aliases_and_canonical_codes_in_any_case():
    p = parse_column(pa.array(["F", "m", "U", "Female", "MALE", "x"]), "code", codes=schema.SEX_CODES)
    assert p.to_series().tolist()[:5] == ["female", "male", "unknown", "female", "male"]
    assert p.bad.tolist() == [False] * 5 + [True]


def test_removal_reason_flags_under_canonical_names(tmp_path):
    df, problems = _load(
        tmp_path,
        "episodes",
        "child_id,removal_date,Removal_Neglect,removal_parent_drugs,removal_other_reason\n1,2020-01-01,1,2,Y\n",
    )
    assert problems == []
    row = df.iloc[0]
    assert (row["removal_neglect"], row["removal_parent_drugs"], row["removal_other_reason"]) == (True, False, True)
    assert str(df["removal_other_reason"].dtype) == "boolean"


def test_malformed_maps_are_config_errors(tmp_path):
    (tmp_path / "f.csv").write_text("child_id,family_id\n1,F\n")
    with pytest.raises(ConfigError, match="codes.family_id must map"):
        load_source("families", {"path": "f.csv", "codes": {"family_id": "F"}}, base_dir=tmp_path)
    with pytest.raises(ConfigError, match="columns.child_id must be the name"):
        load_source("families", {"path": "f.csv", "columns": {"child_id": 3}}, base_dir=tmp_path)
