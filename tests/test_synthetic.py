"""Tests of the synthetic extract generator: realism, exactness of the truth, file layouts, speed."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ppeval import schema
from ppeval.config import Config
from ppeval.synthetic import DEFAULT_EFFECTS, afcars_style, generate, write_synthetic

EXTRACT = pd.Timestamp("2023-12-31")
N = 4000
SEED = 20240601


@pytest.fixture(scope="module")
def syn():
    return generate(N, seed=SEED)


@pytest.fixture(scope="module")
def big():
    """A larger extract for rates that need more units than the default (still < 1 s)."""
    return generate(20_000, seed=5)


@pytest.fixture(scope="module")
def prevention():
    return generate(N, seed=SEED, design="prevention")


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    return write_synthetic(out / "a", n_children=N, seed=SEED)


def _period_of(dates: pd.Series) -> pd.Series:
    """AFCARS file stem of each date: FY = year ending Sep 30, A = Oct-Mar, B = Apr-Sep."""
    fy = dates.dt.year + (dates.dt.month >= 10)
    half = np.where(dates.dt.month.between(4, 9), "B", "A")
    return "FC" + fy.astype(str) + pd.Series(half, index=dates.index)


# --------------------------------------------------------------------------- realism
def test_marginals_are_realistic(syn):
    ep, ch = syn.episodes, syn.children
    first = ~ep["child_id"].duplicated()
    birth = ep["child_id"].map(ch.set_index("child_id")["birth_date"])
    age = (ep["removal_date"] - birth).dt.days / 365.25
    assert 0.15 <= (age[first] < 1).mean() <= 0.28  # infants are a large share of entries
    assert 1 <= (age >= 18).sum() <= 10  # a handful removed at 18+, for the exclusion
    los = (ep["discharge_date"] - ep["removal_date"]).dt.days
    assert 0.01 <= (los < 8).mean() <= 0.06  # a few stays under 8 days
    old = ep["removal_date"] < "2018-01-01"
    assert 250 <= los[old].fillna(1e9).median() <= 550  # median stay about a year
    shares = ep["discharge_reason"].value_counts(normalize=True)
    assert 0.40 <= shares["reunification"] <= 0.60
    assert shares["adoption"] > 0.08 and shares["emancipation"] > 0.01 and shares["death"] < 0.01
    assert ep["removal_date"].min() >= pd.Timestamp("2010-01-01")
    assert ep["removal_date"].dt.year.nunique() == 14  # entries 2010-2023
    # 12-month re-entry after reunification, among discharges with the window observed
    nxt = ep.groupby("child_id")["removal_date"].shift(-1)
    reun = (ep["discharge_reason"] == "reunification") & (ep["discharge_date"] + pd.Timedelta(days=365) <= EXTRACT)
    assert 0.06 <= ((nxt - ep["discharge_date"]).dt.days[reun] <= 365).mean() <= 0.12
    # removal reasons: neglect most common, then parental drug use
    assert 0.5 <= ep["removal_neglect"].mean() <= 0.7
    assert 0.3 <= ep["removal_parent_drugs"].mean() <= 0.45
    assert 0.1 <= ep["removal_physical_abuse"].mean() <= 0.2
    assert ep[[f"removal_{r}" for r in schema.REMOVAL_REASONS]].any(axis=1).all()
    # TPR for a share of children not reunified, mostly both parents on the same day
    tpr = ep[["tpr_mother_date", "tpr_father_date"]].min(axis=1)
    not_reunified = old & (ep["discharge_reason"] != "reunification")
    assert 0.3 <= tpr[not_reunified].notna().mean() <= 0.8
    both = ep["tpr_mother_date"].notna() & ep["tpr_father_date"].notna()
    assert (ep.loc[both, "tpr_mother_date"] == ep.loc[both, "tpr_father_date"]).mean() > 0.6
    adopted = ep["discharge_reason"] == "adoption"
    assert (tpr[adopted] <= ep.loc[adopted, "discharge_date"] - pd.Timedelta(days=90)).all()


def test_emancipation_on_the_18th_birthday(syn):
    ep = syn.episodes.merge(syn.children[["child_id", "birth_date"]], on="child_id")
    em = ep[(ep["discharge_reason"] == "emancipation") & (ep["removal_date"] < ep["birth_date"] + pd.DateOffset(years=18))]
    assert len(em) > 10
    assert (em["discharge_date"] == em["birth_date"] + pd.DateOffset(years=18)).all()


def test_siblings_share_a_family_and_mostly_a_removal_day(syn):
    fam = syn.families.set_index("child_id")["family_id"]
    ep = syn.episodes.assign(family_id=syn.episodes["child_id"].map(fam))
    first = ep.drop_duplicates("child_id")
    sizes = syn.families["family_id"].value_counts()
    assert sizes.max() <= 4 and (sizes >= 2).mean() > 0.3
    multi = first.groupby("family_id").filter(lambda g: len(g) > 1)
    together = multi.groupby("family_id")["removal_date"].nunique() == 1
    assert together.mean() > 0.75
    assert syn.children["county"].nunique() == 12


def test_uptake_is_confounded(syn, big):
    up = syn.truth["uptake"]
    assert 0.15 <= up["rate"] <= 0.30
    assert up["rate_parent_drugs"] > up["rate_no_parent_drugs"] + 0.05
    assert up["rate_infant_in_family"] > up["rate_no_infant_in_family"]
    # enrolment is d days after a removal of the family (the referral), mostly 5-120 days:
    # d from the family's latest removal at least 5 days before the enrolment
    part = big.participation
    fam = big.families.set_index("child_id")["family_id"]
    rems = big.episodes.assign(family_id=big.episodes["child_id"].map(fam))[["family_id", "removal_date"]]
    enr = pd.DataFrame({"family_id": part["family_id"].fillna(part["child_id"].map(fam)), "enrolled_date": part["enrolled_date"]})
    assert enr["family_id"].is_unique
    pairs = enr.merge(rems, on="family_id")
    d = (pairs["enrolled_date"] - pairs["removal_date"]).dt.days
    d = d[d >= 5].groupby(pairs["family_id"]).min().reindex(enr["family_id"])
    assert d.notna().all() and d.max() <= 300 and 0.85 <= (d <= 120).mean() <= 0.99
    assert part["enrolled_date"].min() >= pd.Timestamp("2014-01-01")  # the program starts in 2014
    roles = part["parent_role"].value_counts(normalize=True)
    assert roles["mother"] > 0.6 and 0.1 < roles["father"] < 0.3 and roles["other"] > 0


def test_any_episode_can_be_treated(big):
    """Every removal is a referral: first removals, newborns removed later and re-entries alike.

    An episode that could never be treated (say, one that ended before the family's only
    chance to enrol) would differ from treatable ones in its outcomes, and a cohort that
    compares served and unserved units at the same point in care would find an effect of a
    program that does nothing.
    """
    fam = big.families.set_index("child_id")["family_id"]
    ep = big.episodes.assign(family_id=big.episodes["child_id"].map(fam))
    ep["episode"] = ep.groupby("child_id").cumcount() + 1
    part = big.participation
    enrol = pd.Series(part["enrolled_date"].to_numpy(), index=part["family_id"].fillna(part["child_id"].map(fam)).to_numpy())
    e = ep["family_id"].map(enrol)
    treated = (e >= ep["removal_date"]) & (ep["discharge_date"].isna() | (e < ep["discharge_date"]))
    again = ep["episode"] > 1
    assert treated[~again].sum() > 500 and treated[again].sum() > 20  # re-entries are treated too
    assert treated[again].mean() > 0.25 * treated[~again].mean()
    # families that enrol at a later removal (a re-entry or a newborn), years after the first
    late = (enrol - ep.groupby("family_id")["removal_date"].min().reindex(enrol.index)).dt.days > 400
    assert late.sum() > 20


# --------------------------------------------------------------------------- potential outcomes
def test_untreated_units_have_identical_worlds(syn):
    p = syn.potential
    u = p[~p["treated"]]
    assert len(u) > 1000
    for col in ("discharge_date", "discharge_reason", "tpr_date", "reentry_date", "recurrence_date"):
        a, b = u[f"{col}_0"], u[f"{col}_1"]
        assert ((a == b) | (a.isna() & b.isna())).all(), col


def test_treated_worlds_agree_before_enrolment(syn):
    t = syn.potential[syn.potential["treated"]]
    assert len(t) > 100
    e = t["enrolled_date"]
    for w in (0, 1):  # in care at enrolment in both worlds
        assert (t[f"discharge_date_{w}"].isna() | (t[f"discharge_date_{w}"] > e)).all()
    before = t["tpr_date_0"] <= e  # a TPR before enrolment is the same in both worlds
    assert (t.loc[before, "tpr_date_1"] == t.loc[before, "tpr_date_0"]).all()
    # after enrolment the worlds differ for some units, in the direction of the effects
    assert (t["discharge_date_0"] != t["discharge_date_1"]).sum() > 20
    reun = [(t[f"discharge_reason_{w}"] == "reunification").sum() for w in (0, 1)]
    assert reun[1] > reun[0]
    assert t["tpr_date_1"].notna().sum() < t["tpr_date_0"].notna().sum()


def test_truth_has_the_sign_of_the_effects(syn, big):
    for s in (syn, big):
        te = s.truth["true_effects"]
        assert te["reunified_12m"]["risk_difference"] > 0
        assert te["reunified_12m"]["risk_ratio"] > 1
        assert te["tpr_24m"]["risk_difference"] < 0
        assert te["permanency_12m"]["risk_difference"] > 0
    te = big.truth["true_effects"]
    assert te["reentry_12m"]["risk_difference"] < 0 and te["recurrence_12m"]["risk_difference"] < 0
    assert te["reunified_12m"]["n"] > 500


def test_no_effect_means_zero_truth():
    none = {"reunification_hr": 1, "tpr_hr": 1, "reentry_hr": 1, "recurrence_hr": 1, "dose_slope": 0}
    s = generate(3000, seed=9, effects=none)
    for name, v in s.truth["true_effects"].items():
        if "risk_difference" in v:
            assert v["risk_difference"] == 0, name
    harmful = generate(3000, seed=9, effects={"reunification_hr": 0.6})
    assert harmful.truth["true_effects"]["reunified_12m"]["risk_difference"] < 0
    assert harmful.truth["effects"]["reunification_hr"] == 0.6


def test_truth_counts_match_an_independent_cohort(syn):
    """The generator's own counts, recomputed here from the canonical tables with pandas."""
    ep = syn.episodes.merge(syn.children[["child_id", "birth_date", "family_id"]], on="child_id")
    ep = ep.sort_values(["child_id", "removal_date"])
    ep["next_removal"] = ep.groupby("child_id")["removal_date"].shift(-1)
    win = ep[ep["removal_date"].between("2016-01-01", "2021-12-31")].drop_duplicates("child_id")
    win = win[win["removal_date"] < win["birth_date"] + pd.DateOffset(years=18)]
    win = win[~((win["discharge_date"] - win["removal_date"]).dt.days < 8)]
    part = syn.participation
    fam = part["family_id"].fillna(part["child_id"].map(syn.families.set_index("child_id")["family_id"]))
    enrol = pd.Series(part["enrolled_date"].to_numpy(), index=fam.to_numpy())
    e = win["family_id"].map(enrol)
    treated = (e >= win["removal_date"]) & (win["discharge_date"].isna() | (e < win["discharge_date"]))
    counts = syn.truth["counts"]
    for arm, m in (("treated", treated), ("comparison", ~treated)):
        x = win[m]
        reun = x["discharge_reason"] == "reunification"
        tpr = x[["tpr_mother_date", "tpr_father_date"]].min(axis=1)
        assert counts[arm]["children"] == len(x)
        assert counts[arm]["reunifications"] == reun.sum()
        assert counts[arm]["tpr_within_24m_of_removal"] == ((tpr - x["removal_date"]).dt.days <= 730).sum()
        assert counts[arm]["reentries_within_12m_of_reunification"] == (
            reun & ((x["next_removal"] - x["discharge_date"]).dt.days <= 365)).sum()
    assert counts["treated"]["children"] == syn.truth["true_effects"]["reunified_12m"]["n"] + (
        (win[treated]["removal_date"] + pd.Timedelta(days=365) > EXTRACT)
        | (e[treated] + pd.Timedelta(days=365) > EXTRACT)).sum()


# --------------------------------------------------------------------------- AFCARS layout
def test_afcars_one_record_per_child_per_period(syn):
    af = syn.afcars
    assert not af.duplicated(["_file", "RecNumbr"]).any()
    # every child is in every period it spent in care: records per episode = periods spanned
    ep = syn.episodes
    end = ep["discharge_date"].fillna(EXTRACT)
    fy0 = ep["removal_date"].dt.year + (ep["removal_date"].dt.month >= 10)
    fy1 = end.dt.year + (end.dt.month >= 10)
    p0 = 2 * fy0 + ep["removal_date"].dt.month.between(4, 9)
    p1 = 2 * fy1 + end.dt.month.between(4, 9)
    assert len(af) == int((p1 - p0 + 1).sum())


def test_every_episode_is_in_a_file(syn):
    ep = syn.episodes
    keys = set(zip(syn.afcars["RecNumbr"], syn.afcars["LatRemDt"], strict=True))
    assert all((c, r) in keys for c, r in zip(ep["child_id"], ep["removal_date"], strict=True))
    # a re-entry is never in its previous discharge's period (that would hide the discharge)
    af = syn.afcars[syn.afcars["DLstFCDt"].notna()]
    assert (_period_of(af["DLstFCDt"]) < _period_of(af["LatRemDt"])).all()
    # TotalRem and Rem1Dt are consistent with the episodes
    ep = ep.assign(n=ep.groupby("child_id").cumcount() + 1, first=ep.groupby("child_id")["removal_date"].transform("min"))
    m = syn.afcars.merge(ep, left_on=["RecNumbr", "LatRemDt"], right_on=["child_id", "removal_date"])
    assert len(m) == len(syn.afcars)
    assert (m["TotalRem"] == m["n"]).all() and (m["Rem1Dt"] == m["first"]).all()
    assert m["TotalRem"].max() >= 3


def test_discharge_only_on_the_discharge_period_record(syn):
    af = syn.afcars
    has = af["DoDFCDt"].notna()
    assert (af.loc[has, "_file"].astype(str) == _period_of(af.loc[has, "DoDFCDt"])).all()
    assert (af["DISREASN"].notna() == has).all()
    assert af.loc[has, "DISREASN"].between(1, 8).all()
    ep = syn.episodes
    assert has.sum() == ep["discharge_date"].notna().sum()
    # records describe the episode as of the period end: no date after it
    end = af["_file"].astype(str).map(lambda s: pd.Timestamp(f"{s[2:6]}-{'03-31' if s[6] == 'A' else '09-30'}"))
    end = end.where(end < EXTRACT, EXTRACT)
    for col in ("LatRemDt", "DoDFCDt", "TPRMomDt", "TPRDadDt"):
        assert (af[col].isna() | (af[col] <= end)).all(), col
    # codes follow schema order: DISREASN 1 = reunification, CurPlSet 8 = trial home visit
    m = af[has].merge(ep, left_on=["RecNumbr", "LatRemDt"], right_on=["child_id", "removal_date"])
    assert (np.array(schema.DISCHARGE_REASONS)[m["DISREASN"].astype(int) - 1] == m["discharge_reason"]).all()
    assert (np.array(schema.PLACEMENT_SETTINGS)[m["CurPlSet"].astype(int) - 1] == m["placement_setting"]).all()


def test_ncands_links_and_substantiation(syn):
    nc, rep = syn.ncands, syn.reports
    in_care = set(syn.episodes["child_id"])
    linked = nc["AFCARSID"].notna()
    assert set(nc.loc[linked, "AFCARSID"]) <= in_care
    assert (nc["ChID"] != nc["AFCARSID"]).all()
    assert linked.mean() > 0.5 and (~linked).sum() > 100
    levels = nc[["Mal1Lev", "Mal2Lev"]].astype("float")
    victim = levels.isin([1, 2]).any(axis=1)
    assert (nc["Mal1Lev"] == 3).sum() > 0  # alternative-response victims are not CFSR victims
    assert len(nc) == len(rep) and victim.sum() == rep["substantiated"].sum()
    # each removal of a child (under 18) follows a substantiated report of the child within 10 days
    sub = rep[rep["substantiated"]]
    ep = syn.episodes.merge(syn.children[["child_id", "birth_date"]], on="child_id")
    ep = ep[ep["removal_date"] < ep["birth_date"] + pd.DateOffset(years=18)]
    m = pd.merge_asof(ep.sort_values("removal_date"), sub.sort_values("report_date"), by="child_id",
                      left_on="removal_date", right_on="report_date", direction="backward")
    assert (m["removal_date"] - m["report_date"]).dt.days.between(0, 10).all()


def test_canonical_tables_have_schema_dtypes(syn):
    for name, df in syn.tables().items():
        table = schema.TABLES[name]
        for col in df.columns:
            assert str(df[col].dtype) == table.column(col).dtype, (name, col)
    assert syn.children["child_id"].is_unique
    assert syn.children["hispanic"].isna().any()  # HisOrgin 3 (unable to determine) is missing
    assert syn.participation["family_id"].isna().any() and syn.participation["child_id"].notna().any()
    assert syn.episodes["child_id"].str.fullmatch(r"0\d{9}").all()  # RecNumbr keeps its leading zero
    assert set(syn.reports["child_id"]) <= set(syn.children["child_id"])
    ext = syn.to_extract()
    assert ext.extract_date == EXTRACT and len(ext.episodes) == len(syn.episodes)


# --------------------------------------------------------------------------- files
def test_written_files_and_configs(written):
    names = {p.name for p in written.iterdir()}
    assert {"afcars", "ncands", "canonical", "eval.toml", "eval_canonical.toml", "truth.json",
            "participation.csv", "families.csv"} <= names
    for cfg_name in ("eval.toml", "eval_canonical.toml"):
        cfg = Config.from_toml(written / cfg_name)
        data = cfg["data"]
        paths = (data["afcars"] or {}).get("paths", []) + (data["ncands"] or {}).get("paths", [])
        paths += [data[t]["path"] for t in ("children", "episodes", "reports", "participation", "families") if data[t]]
        assert paths and all(cfg.resolve(p).is_file() for p in paths)
    assert Config.from_toml(written / "eval.toml")["cohort"]["entry_from"].isoformat() == "2016-01-01"
    files = sorted(p.name for p in (written / "afcars").iterdir())
    assert files[0] == "FC2010A.tab" and files[-1] == "FC2024A.tab" and len(files) == 29
    assert sum(p.stat().st_size for p in written.rglob("*") if p.is_file()) < 10e6


def test_afcars_file_styles(written):
    def header(name):
        return (written / "afcars" / name).read_text().split("\n", 2)

    h, row, _ = header("FC2011B.tab")
    assert afcars_style(2011)["upper"] and "PHYABUSE" in h.split("\t") and "DISREASN" in h.split("\t")
    old = pd.read_csv(written / "afcars" / "FC2013A.tab", sep="\t", dtype=str)
    assert set(old["Neglect"]) == {"0", "1"} and set(old["White"]) == {"0", "1"}
    assert "0" in set(old["DISREASN"]) and old["DISREASN"].notna().all()
    new = pd.read_csv(written / "afcars" / "FC2020A.tab", sep="\t", dtype=str, keep_default_na=False)
    assert set(new["Neglect"]) == {"1", "2"} and "" in set(new["DISREASN"]) and "0" not in set(new["DISREASN"])
    assert new["RecNumbr"].str.fullmatch(r"0\d{9}").all()
    assert new["DOB"].str.fullmatch(r"\d{4}-\d{2}-\d{2}").all()
    assert (new["RepDatYr"] == "2020").all() and (new["RepDatMo"] == "3").all()
    last = pd.read_csv(written / "afcars" / "FC2024A.tab", sep="\t", dtype=str)
    assert (last["RepDatYr"] == "2023").all() and (last["RepDatMo"] == "12").all()  # as of the extract date


def test_truth_json(written):
    text = (written / "truth.json").read_text()
    truth = json.loads(text)
    assert text == json.dumps(truth, indent=2, sort_keys=True) + "\n"
    assert truth["seed"] == SEED and truth["n_children_simulated"] == N
    assert truth["effects"] == {k: round(v, 6) for k, v in DEFAULT_EFFECTS.items()}
    for name in ("reunified_12m", "tpr_24m", "permanency_12m", "reentry_12m"):
        v = truth["true_effects"][name]
        assert {"risk_treated", "risk_untreated", "risk_difference", "risk_ratio", "n"} <= set(v)
        assert v["risk_difference"] == pytest.approx(v["risk_treated"] - v["risk_untreated"], abs=1e-5)
        assert name in truth["definitions"]
    assert set(truth["counts"]) == {"treated", "comparison"}


def test_same_seed_same_bytes_different_seed_different(written, tmp_path):
    again = write_synthetic(tmp_path / "b", n_children=N, seed=SEED)
    other = write_synthetic(tmp_path / "c", n_children=N, seed=SEED + 1)

    def files(root: Path) -> dict[str, bytes]:
        return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}

    a, b, c = files(written), files(again), files(other)
    assert a == b
    assert a.keys() == c.keys() or set(a) ^ set(c) <= {"afcars/FC2010A.tab"}
    assert a["afcars/FC2016A.tab"] != c["afcars/FC2016A.tab"] and a["truth.json"] != c["truth.json"]


# --------------------------------------------------------------------------- prevention design
def test_prevention_design(prevention):
    p = prevention
    up = p.truth["uptake"]
    assert 0.15 <= up["rate"] <= 0.30 and up["rate_neglect"] > up["rate_no_neglect"]
    te = p.truth["true_effects"]
    assert te["removed_12m"]["risk_difference"] < 0 and te["recurrence_12m"]["risk_difference"] < 0
    pot = p.potential
    t, u = pot[pot["treated"]], pot[~pot["treated"]]
    assert ((u["removal_date_0"] == u["removal_date_1"]) | u["removal_date_0"].isna()).all()
    # enrolled within 60 days after the index report, while the children were still at home
    assert (t["enrolled_date"] - t["report_date"]).dt.days.between(3, 60).all()
    for w in (0, 1):
        assert (t[f"removal_date_{w}"] > t["enrolled_date"]).all()
    assert not t["removed_at_report"].any()
    assert pot["removed_at_report"].mean() > 0.1
    # same file layouts as the in-care design
    assert list(p.afcars.columns) == list(generate(200, seed=1).afcars.columns)


def test_bad_arguments():
    with pytest.raises(ValueError, match="did you mean 'tpr_hr'"):
        generate(100, effects={"tpr_rh": 0.5})
    with pytest.raises(ValueError, match="design"):
        generate(100, design="foster")


# --------------------------------------------------------------------------- speed
def test_200k_children_in_under_30_seconds():
    t0 = time.perf_counter()
    s = generate(200_000, seed=3)
    assert time.perf_counter() - t0 < 30
    assert len(s.children) > 199_000 and len(s.afcars) > 400_000


@pytest.mark.slow
def test_a_million_children_in_under_a_minute():
    t0 = time.perf_counter()
    s = generate(1_000_000, seed=3)
    assert time.perf_counter() - t0 < 60
    assert len(s.children) > 999_000
