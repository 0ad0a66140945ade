"""The Cox benchmark (benchmarks/bench_cox.py): a small run on every test run, the full
200,000-row run (target <= 3 s on a 2-core machine) with ``-m slow``."""


import pytest
from scripts import load_script


def _bench():
    return load_script("benchmarks/bench_cox.py")


def test_benchmark_small_run():
    mod = _bench()
    res = mod.run(n=10_000, n_lifelines=2_000, repeat=1)
    ours, ours_small, ll = res["rows"]
    assert ours["n"] == 10_000 and ours["seconds"] < 3
    # same point estimate as lifelines on the same rows
    assert ours_small["coef"] == pytest.approx(ll["coef"], abs=1e-6)
    assert "| ppeval CoxPH" in mod.table(res)


@pytest.mark.slow
def test_benchmark_200k_under_3_seconds(tmp_path):
    mod = _bench()
    mod.main(["--n", "200000", "--lifelines-n", "0", "--out", str(tmp_path / "cox.json")])
    import json

    res = json.loads((tmp_path / "cox.json").read_text())
    assert res["rows"][0]["seconds"] <= 3.0
