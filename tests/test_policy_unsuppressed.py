"""``suppress_below`` below 2 suppresses nothing: refused unless asked for, and then said plainly."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "hardening"))
from support import run_cli  # noqa: E402

from ppeval.errors import ConfigError  # noqa: E402
from ppeval.privacy import UNSUPPRESSED_NOTE, check_suppress_below, suppression_sentence  # noqa: E402

SMALL_EXTRACT = Path(__file__).parent / "hardening" / "small_extract"


def _extract(dst: Path, report_lines: str) -> Path:
    shutil.copytree(SMALL_EXTRACT, dst)
    cfg = dst / "eval.toml"
    text = cfg.read_text()
    assert "suppress_below = 11\n" in text
    cfg.write_text(text.replace("suppress_below = 11\n", report_lines))
    return cfg


def test_the_one_rule():
    assert check_suppress_below(2) == 2
    assert check_suppress_below(11) == 11
    assert check_suppress_below(1, allow_unsuppressed=True) == 1
    for bad in (1, 0, -3):
        with pytest.raises(ConfigError, match=r"report\.suppress_below = " + str(bad)):
            check_suppress_below(bad)
    with pytest.raises(ConfigError):
        check_suppress_below(0, allow_unsuppressed=True)  # 0 is no threshold at all
    assert suppression_sentence(11) == "Counts from 1 to 10 are suppressed"
    assert suppression_sentence(1) == UNSUPPRESSED_NOTE
    assert "1 to 0" not in suppression_sentence(1)


@pytest.mark.parametrize("value", [1, 0])
def test_cli_refuses_a_threshold_that_suppresses_nothing(tmp_path, value):
    cfg = _extract(tmp_path / "data", f"suppress_below = {value}\n")
    status, out, err = run_cli("-q", "validate", str(cfg))
    assert status == 2, (out, err)
    assert f"report.suppress_below = {value}" in err
    if value == 1:
        assert "allow_unsuppressed = true" in err
    assert not (tmp_path / "report").exists()


def test_allow_unsuppressed_is_a_report_key_and_must_be_a_boolean(tmp_path):
    cfg = _extract(tmp_path / "data", 'suppress_below = 1\nallow_unsuppressed = "yes"\n')
    status, _, err = run_cli("-q", "validate", str(cfg))
    assert status == 2 and "allow_unsuppressed" in err


def test_an_unsuppressed_report_says_so_everywhere(tmp_path):
    cfg = _extract(tmp_path / "data", "suppress_below = 1\nallow_unsuppressed = true\n")
    out = tmp_path / "report"
    status, stdout, stderr = run_cli("-q", "report", str(cfg), "--out", str(out))
    assert status == 0, stderr
    res = json.loads((out / "results.json").read_text())
    assert res["privacy"] == {"suppressed": False, "note": UNSUPPRESSED_NOTE}
    assert res["config"]["report"]["allow_unsuppressed"] is True
    for name in ("report.html", "factsheet.html"):
        page = (out / name).read_text()
        assert UNSUPPRESSED_NOTE in page, name
        assert "1 to 0" not in page and "below 1 are" not in page, name
    # the methods paragraph (in report.html) says it too
    assert f"Privacy: {UNSUPPRESSED_NOTE}" in (out / "report.html").read_text()
    for f in out.rglob("*"):
        if f.is_file() and f.suffix in {".html", ".json", ".csv", ".txt", ".md", ".svg"}:
            assert "Counts from 1 to 0" not in f.read_text(), f


def test_separation_messages_give_no_small_count():
    """A covariate seen in 3 treated units only: the refusal says "<11 unit(s)", not "3"."""
    import numpy as np
    import pandas as pd

    from ppeval.propensity import PropensityError, propensity

    rng = np.random.default_rng(0)
    df = pd.DataFrame({"x": rng.normal(size=200), "treated": np.r_[np.ones(40), np.zeros(160)].astype(int)})
    df["rare"] = 0
    df.loc[:2, "rare"] = 1  # three treated units only
    with pytest.raises(PropensityError) as info:
        propensity(df, "treated", ["x", "rare"])
    msg = str(info.value)
    assert "<11 unit(s)" in msg, msg
    assert "3 unit(s)" not in msg and "treated 3" not in msg, msg


def test_indicators_command_says_nothing_is_suppressed(tmp_path):
    cfg = _extract(tmp_path / "data", "suppress_below = 1\nallow_unsuppressed = true\n")
    status, out, err = run_cli("-q", "indicators", str(cfg))
    assert status == 0, err
    assert out.splitlines()[-1] == UNSUPPRESSED_NOTE
    assert "1 to 0" not in out
