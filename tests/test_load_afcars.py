"""The afcars preset: stacking period files into episodes and children (fixture in conftest)."""

from __future__ import annotations

import hashlib

import pandas as pd
import pytest

from ppeval import load_extract, schema
from ppeval.errors import ConfigError
from ppeval.load import load_afcars

D = pd.Timestamp


def _by_key(episodes: pd.DataFrame) -> dict[tuple[str, str], pd.Series]:
    return {(r["child_id"], str(r["removal_date"].date())): r for _, r in episodes.iterrows()}


def test_fixture_rows_match_the_header(tmp_path, afcars_three_periods):
    for name in afcars_three_periods:
        lines = (tmp_path / name).read_text().splitlines()
        assert {len(line.split("\t")) for line in lines} == {26}


def test_three_periods_stack_into_one_episode_per_removal(tmp_path, afcars_three_periods):
    res = load_afcars(afcars_three_periods, base_dir=tmp_path)
    ep = res.frames()["episodes"]
    assert len(ep) == 5
    e = _by_key(ep)
    assert set(e) == {("C1", "2018-11-05"), ("C1", "2019-08-01"), ("C2", "2018-06-01"), ("C3", "2017-01-15"), ("C3", "2019-07-07")}

    # C1: discharged in period 2 (reunification), re-entered in period 3
    first, again = e["C1", "2018-11-05"], e["C1", "2019-08-01"]
    assert (first.discharge_date, first.discharge_reason) == (D("2019-05-20"), "reunification")
    assert (first.placement_setting, first.placements) == ("trial_home_visit", 2)  # from the latest record
    assert (first.removal_neglect, first.removal_physical_abuse, first.removal_parent_drugs) == (True, False, False)
    assert (first[schema.SOURCE_FILE], first[schema.SOURCE_ROW]) == ("FC2019B.tab", 2)
    assert pd.isna(again.discharge_date) and pd.isna(again.discharge_reason)
    # period 3 codes flags 1/0 and names columns in UPPERCASE: both normalised
    assert (again.removal_neglect, again.removal_parent_drugs, again.removal_inadequate_housing) == (False, True, False)
    assert (again.placement_setting, again.placements, again.county) == ("relative_foster_home", 1, "19153")

    # C2: still in care; placements and setting from the latest record; TPR from period 3
    c2 = e["C2", "2018-06-01"]
    assert pd.isna(c2.discharge_date) and pd.isna(c2.discharge_reason)  # DISREASN blank / 0 = not discharged
    assert (c2.placements, c2.placement_setting) == (3, "pre_adoptive_home")
    assert c2.tpr_mother_date == D("2020-01-15") and pd.isna(c2.tpr_father_date)
    assert (c2.removal_physical_abuse, c2.removal_neglect) == (True, False)
    assert (c2[schema.SOURCE_FILE], c2[schema.SOURCE_ROW]) == ("FC2020A.tab", 3)

    # C3: 99 = missing flag and reason
    c3 = e["C3", "2017-01-15"]
    assert pd.isna(c3.removal_inadequate_housing) and c3.removal_neglect is True
    assert (c3.placement_setting, c3.placements) == ("group_home", 4)

    assert str(ep["removal_neglect"].dtype) == "boolean" and str(ep["placements"].dtype) == "Int64"
    assert str(ep["child_id"].dtype) == "string" and str(ep["discharge_reason"].dtype) == "string"


def test_dlstfcdt_closes_an_episode_without_a_discharge_record(tmp_path, afcars_three_periods):
    res = load_afcars(afcars_three_periods, base_dir=tmp_path)
    e = _by_key(res.frames()["episodes"])
    c3 = e["C3", "2017-01-15"]
    assert c3.discharge_date == D("2018-12-20") and pd.isna(c3.discharge_reason)
    [w] = [p for p in res.problems if p.column == "DLSTFCDT"]
    assert (w.severity, w.file, w.row, w.value, w.table) == ("warning", "FC2020A.tab", 4, "2018-12-20", "episodes")
    assert "removed on 2017-01-15 has no discharge record" in w.message and "reason unknown" in w.message
    # C1's first episode has its own discharge record: DLstFCDt does not override it (no warning)
    assert e["C1", "2018-11-05"].discharge_date == D("2019-05-20")


def test_dlstfcdt_outside_the_episodes_is_not_used(tmp_path):
    header = "RecNumbr\tDOB\tLatRemDt\tDLstFCDt\tDoDFCDt\tDISREASN\n"
    (tmp_path / "a.tab").write_text(header + "K\t2010-01-01\t2015-01-01\t\t\t0\n")
    (tmp_path / "b.tab").write_text(header + "K\t2010-01-01\t2016-01-01\t2014-06-30\t\t0\n")
    res = load_afcars(["a.tab", "b.tab"], base_dir=tmp_path)
    ep = res.frames()["episodes"]
    assert ep["discharge_date"].isna().all()
    [w] = [p for p in res.problems if p.severity == "warning" and p.column == "DLstFCDt"]
    assert "not between the removal dates 2015-01-01 and 2016-01-01" in w.message


def test_children_come_from_the_latest_record(tmp_path, afcars_three_periods):
    res = load_afcars(afcars_three_periods, base_dir=tmp_path)
    kids = res.frames()["children"].set_index("child_id")
    assert list(kids.index) == ["C1", "C2", "C3"]
    assert kids.loc["C1", ["birth_date", "sex", "race_ethnicity", "hispanic", "county"]].tolist() == [
        D("2012-05-01"), "female", "white", False, "19153"
    ]
    # C2 was flagged black in period 1, black and white in period 3 (the latest): multiracial
    assert kids.loc["C2", ["sex", "race_ethnicity", "hispanic"]].tolist() == ["male", "multiracial", False]
    # C3: Hispanic origin wins over race flags
    assert kids.loc["C3", ["sex", "race_ethnicity", "hispanic"]].tolist() == ["female", "hispanic", True]
    assert kids.loc["C2", [schema.SOURCE_FILE, schema.SOURCE_ROW]].tolist() == ["FC2020A.tab", 3]
    for col in ("sex", "race_ethnicity", "county"):
        assert str(kids[col].dtype) == "string"


def test_record_order_follows_the_report_period_not_the_file_order(tmp_path, afcars_three_periods):
    forward = load_afcars(afcars_three_periods, base_dir=tmp_path).frames()
    backward = load_afcars(list(reversed(afcars_three_periods)), base_dir=tmp_path).frames()
    cols = [c for c in forward["episodes"].columns if c != schema.SOURCE_FILE]
    pd.testing.assert_frame_equal(forward["episodes"][cols], backward["episodes"][cols])
    assert forward["children"]["race_ethnicity"].tolist() == backward["children"]["race_ethnicity"].tolist()


def test_race_derivation_rules(tmp_path):
    header = "RecNumbr\tDOB\tLatRemDt\tAmIAKN\tAsian\tBlkAfrAm\tHawaiiPI\tWhite\tUnToDetm\tHisOrgin\n"
    rows = [
        "A\t2010-01-01\t2015-01-01\t1\t2\t2\t2\t2\t2\t2",  # single race
        "B\t2010-01-01\t2015-01-01\t2\t1\t2\t2\t1\t2\t2",  # two races
        "C\t2010-01-01\t2015-01-01\t2\t2\t2\t2\t2\t1\t2",  # undetermined
        "D\t2010-01-01\t2015-01-01\t2\t2\t2\t2\t2\t2\t2",  # none flagged
        "E\t2010-01-01\t2015-01-01\t2\t2\t1\t2\t2\t2\t1",  # Hispanic of any race
        "F\t2010-01-01\t2015-01-01\t2\t2\t2\t1\t2\t2\t3",  # HisOrgin 3 = unable to determine
        "G\t2010-01-01\t2015-01-01\t\t\t\t\t\t\t",  # nothing reported
    ]
    (tmp_path / "fc.tab").write_text(header + "\n".join(rows) + "\n")
    kids = load_afcars(["fc.tab"], base_dir=tmp_path).frames()["children"].set_index("child_id")
    assert kids["race_ethnicity"].to_dict() == {
        "A": "american_indian_alaska_native",
        "B": "multiracial",
        "C": "unknown",
        "D": "unknown",
        "E": "hispanic",
        "F": "native_hawaiian_pacific_islander",
        "G": "unknown",
    }
    assert kids["hispanic"].tolist() == [False, False, False, False, True, pd.NA, pd.NA]


def test_bad_cells_and_missing_columns_are_problems(tmp_path):
    header = "RecNumbr\tDOB\tSex\tLatRemDt\tNeglect\tDISREASN\tDoDFCDt\n"
    (tmp_path / "fc.tab").write_text(
        header + "A\t2010-02-31\t1\t2015-01-01\t7\t12\t2015-06-01\n" + "\t2010-01-01\t2\t2016-01-01\t1\t0\t\n"
    )
    res = load_afcars(["fc.tab"], base_dir=tmp_path)
    errors = [(p.row, p.column, p.value, p.message) for p in res.problems if p.severity == "error"]
    assert (2, "DOB", None, "unparseable date") in errors  # DOB identifies: value withheld
    assert (2, "Neglect", "7", "not a yes/no value") in errors
    assert (2, "DISREASN", "12", "unknown code") in errors
    assert (3, "RecNumbr", None, "RecNumbr is blank: the record cannot be assigned to a child") in errors
    [w] = [p for p in res.problems if p.severity == "warning"]
    assert "DLstFCDt" in w.message and "not found: left empty" in w.message
    ep = res.frames()["episodes"]
    assert len(ep) == 2  # the record without RecNumbr is kept as its own episode
    assert ep["child_id"].isna().sum() == 1
    assert len(res.frames()["children"]) == 1


def test_missing_required_afcars_columns(tmp_path):
    (tmp_path / "fc.tab").write_text("RecNumbr\tDOB\n1\t2010-01-01\n")
    res = load_afcars(["fc.tab"], base_dir=tmp_path)
    [p] = res.problems
    assert p.message.startswith("missing required column(s) LatRemDt; nothing was loaded from this file")
    assert res.frames() == {}


def test_preset_column_overrides(tmp_path):
    (tmp_path / "fc.txt").write_text("StFCID\tDOB\tRemovalDate\nIA-1\t2010-01-01\t2015-01-01\n")
    res = load_afcars(["fc.txt"], base_dir=tmp_path, columns={"recnumbr": "stfcid", "LatRemDt": "RemovalDate"})
    assert res.frames()["episodes"][["child_id", "removal_date"]].values.tolist() == [["IA-1", D("2015-01-01")]]
    with pytest.raises(ConfigError, match="did you mean 'LatRemDt'"):
        load_afcars(["fc.txt"], base_dir=tmp_path, columns={"LatRemDate": "x"})


def test_afcars_from_a_binary_file(tmp_path):
    pd.DataFrame(
        {"RECNUMBR": [101.0, 101.0], "DOB": pd.to_datetime(["2010-01-01"] * 2), "LATREMDT": pd.to_datetime(["2015-01-01"] * 2),
         "DODFCDT": pd.to_datetime([None, "2015-09-09"]), "DISREASN": [0.0, 3.0], "REPDATYR": [2015, 2015], "REPDATMO": [3, 9]}
    ).to_parquet(tmp_path / "fc.parquet")
    ep = load_afcars(["fc.parquet"], base_dir=tmp_path).frames()["episodes"]
    assert ep[["child_id", "discharge_date", "discharge_reason"]].values.tolist() == [["101", D("2015-09-09"), "adoption"]]


def test_presets_mix_with_explicit_sources(tmp_path, afcars_three_periods, write_config):
    (tmp_path / "roster.csv").write_text("FamilyID,StartDate\nF1,2019-01-10\n")
    (tmp_path / "families.csv").write_text("child_id,family_id\nC1,F1\nC2,F2\nC3,F3\n")
    cfg = write_config(
        '[data.participation]\npath = "roster.csv"\ncolumns = { family_id = "FamilyID", enrolled_date = "StartDate" }\n'
        '[data.families]\npath = "families.csv"',
        preamble=f"afcars = {afcars_three_periods!r}".replace("'", '"'),
    )
    ext = load_extract(cfg)
    # warnings only: the DLstFCDt rule, and the removal reasons the hand-built files leave out
    assert {(p.severity, p.column) for p in ext.load_problems} == {("warning", "DLSTFCDT"), ("warning", None)}
    assert (len(ext.children), len(ext.episodes), len(ext.participation), len(ext.families)) == (3, 5, 1, 3)
    prov = ext.provenance()
    assert [f["path"] for f in prov] == [*afcars_three_periods, "roster.csv", "families.csv"]
    assert prov[0]["table"] == "afcars" and prov[0]["rows"] == 3 and prov[1]["rows"] == 2
    assert prov[0]["sha256"] == hashlib.sha256((tmp_path / "FC2019A.tab").read_bytes()).hexdigest()
