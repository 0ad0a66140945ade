"""Published curves do not reveal single events: an attack on the charts' path data.

An exact Kaplan–Meier or cumulative-incidence curve rises at every event, by about 1/n
for each: a reader who takes the ``d=`` attribute of a curve's ``<path>`` in an SVG (in
``charts/`` or embedded in ``report.html``), turns pixels into days and probabilities with
the axis ticks and takes differences, counts the events one by one, although the numbers
at risk are rounded to tens.

The attack here is written without the report's code: it reads only the SVG text (tick
positions and their labels, which matplotlib keeps in comments; the legend, to tell the
arms apart; the curves' path data) and, to judge what it found, the unit-level truth of
the Evaluation (each arm's event days). Every rise it recovers must pool 0 or at least 11
events of its arm since the point before it, and no published point may be 1 to 10 events
away from an outcome window's end (whose event counts are published in the tables). A
planted leak (an exact curve, drawn as the report drew it before) shows the attack finds
what it looks for.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent / "hardening"))
from support import run_cli  # noqa: E402

from ppeval.evaluation import Evaluation  # noqa: E402

THRESHOLD = 11
SMALL_EXTRACT = Path(__file__).parent / "hardening" / "small_extract"
ARMS = ("Served", "Matched comparison")


# ------------------------------------------------------------------------------ the attack
def _number(label: str) -> float:
    """A tick label as a number: ``"182"`` -> 182, ``"1,095"`` -> 1095, ``"25%"`` -> 0.25."""
    label = label.replace(",", "").replace("\u2212", "-").strip()
    return float(label[:-1]) / 100 if label.endswith("%") else float(label)


def _calibration(svg: str, axis: str):
    """Pixel -> value along ``axis`` ("x" or "y"), fitted on the tick marks and their labels."""
    pix, val = [], []
    for m in re.finditer(rf'<g id="{axis}tick_\d+">(.*?)<!-- (.*?) -->', svg, re.S):
        pos = re.search(rf'<use [^>]*\b{axis}="([-\d.e]+)"', m.group(1))
        if pos is None:
            continue
        pix.append(float(pos.group(1)))
        val.append(_number(m.group(2).replace("&lt;", "<")))
    assert len(pix) >= 2, f"no {axis} axis ticks to calibrate on"
    slope, icpt = np.polyfit(pix, val, 1)
    assert np.allclose(np.polyval([slope, icpt], pix), val, atol=1e-6), f"{axis} ticks are not linear"
    return lambda p: slope * np.asarray(p, float) + icpt


def _path_points(d: str) -> np.ndarray:
    nums = [float(v) for v in re.findall(r"-?\d+(?:\.\d+)?(?:e-?\d+)?", d)]
    return np.asarray(nums, float).reshape(-1, 2)


def read_curves(svg: str) -> dict[str, np.ndarray]:
    """The curves drawn on a chart, by arm: (days, probability) at every vertex of the path.

    The legend pairs a stroke colour with an arm's name; the curves are the clipped paths
    (data lines, not the legend's samples) stroked in that colour.
    """
    to_day, to_prob = _calibration(svg, "x"), _calibration(svg, "y")
    legend = svg[svg.index('<g id="legend_1">'):]
    colour_of = {}
    for m in re.finditer(r'stroke: (#[0-9a-f]{6})[^>]*/>\s*</g>\s*<g id="text_\d+">\s*<!-- (.*?) -->', legend, re.S):
        name = m.group(2).split(":")[0]
        colour_of.setdefault(name, m.group(1))
    curves = {}
    for name, colour in colour_of.items():
        paths = re.findall(rf'<path d="([^"]*)"\s+clip-path="[^"]*"\s+style="fill: none; stroke: {colour};', svg)
        if paths:
            pts = np.vstack([_path_points(p) for p in paths])
            curves[name] = np.column_stack([to_day(pts[:, 0]), to_prob(pts[:, 1])])
    return curves


def rises(points: np.ndarray, tol: float = 1e-3) -> list[tuple[float, float, float]]:
    """Every vertical step of a curve: (day of the vertex before it, day of the step, height).

    A step drawn with ``where="post"`` is a horizontal segment to day t and a vertical one
    at t; the events it pools are those after the previous vertex's day, up to t.
    """
    out = []
    for (t0, p0), (t1, p1) in zip(points[:-1], points[1:], strict=True):
        if abs(t1 - t0) < tol and abs(p1 - p0) > 1e-9:
            before = points[points[:, 0] < t1 - tol, 0]
            out.append((float(before.max()) if before.size else 0.0, float(t1), float(p1 - p0)))
    return out


def _day(t: float) -> int:
    """A recovered day: the steps are on whole days, to pixel precision."""
    assert abs(t - round(t)) < 0.05, f"a step at day {t:.3f}, not a whole day (bad calibration?)"
    return int(round(t))


def leaks(curves: dict[str, np.ndarray], truth: dict[str, np.ndarray], anchors=(), threshold: int = THRESHOLD) -> list[str]:
    """The rises (and published points) from which a count from 1 to threshold-1 follows.

    ``truth``: each arm's event days (unit level). A rise from day a to day b pools the
    events in (a, b]; it must be 0 (then the curve must be flat) or at least the threshold.
    Each vertex's cumulative count (after day 0) must also be 0 or at least the threshold away from the
    count at every anchor (a window end whose count is published elsewhere).
    """
    found = []
    for arm, pts in curves.items():
        days = np.sort(truth[arm])

        def count(a, b, days=days):
            return int(np.searchsorted(days, b, side="right") - np.searchsorted(days, a, side="right"))

        for a, b, h in rises(pts):
            k = count(_day(a), _day(b))
            if 0 < k < threshold:
                found.append(f"{arm}: a rise of {h:+.4f} (1/{1 / abs(h):.1f}) at day {_day(b)} pools {k} event(s) since day {_day(a)}")
            elif k == 0:
                found.append(f"{arm}: a rise of {h:+.4f} at day {_day(b)} without any event since day {_day(a)}")
        for t in np.unique(np.round(pts[:, 0]))[1:]:  # day 0: the gap is the window's own count
            for w in anchors:
                k = count(min(t, w), max(t, w))
                if 0 < k < threshold:
                    found.append(f"{arm}: the point at day {t:g} is {k} event(s) from the window end at day {w}")
    return found


def curve_svgs(folder: Path) -> list[tuple[str, str, str]]:
    """(where, outcome, svg text) for every curve chart: charts/curve_*.svg and those in report.html.

    An embedded chart is a curve chart when its x axis is days since the index date; its
    outcome is found by its y-axis label, matched with the chart files'.
    """
    out, by_label = [], {}
    for p in sorted((folder / "charts").glob("curve_*.svg")):
        svg = p.read_text(encoding="utf-8")
        outcome = p.stem[len("curve_"):]
        by_label[re.findall(r"<!-- (Share [^>]*?) -->", svg)[0]] = outcome
        out.append((p.name, outcome, svg))
    page = (folder / "report.html").read_text(encoding="utf-8")
    for i, b64 in enumerate(re.findall(r'src="data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)"', page)):
        svg = base64.b64decode(b64).decode("utf-8")
        if "<!-- Days since the index date" in svg:
            out.append((f"report.html image {i + 1}", by_label[re.findall(r"<!-- (Share [^>]*?) -->", svg)[0]], svg))
    return out


def event_days(ev: Evaluation, outcome: str) -> dict[str, np.ndarray]:
    """Unit-level truth: each arm's days to the event (status 1), rows the curves analyse."""
    d = ev.matched.data
    days, status = d[f"{outcome}_days"], d[f"{outcome}_status"]
    used = days.notna() & status.notna() & (d["weight"] > 0 if "weight" in d else True)
    tr = d["treated"].astype(bool)
    return {arm: days[used & (tr == served) & (status == 1)].to_numpy(float)
            for arm, served in zip(ARMS, (True, False), strict=True)}


def window_ends(results: dict, outcome: str) -> list[int]:
    """Days of the outcome's windows whose rates results.json publishes (``"12m"`` -> 365)."""
    rates = results["outcomes"].get(outcome, {}).get("treated", {}).get("rates", {})
    return [int(k[:-1]) * 365 // 12 for k in rates]


# ------------------------------------------------------------------------------ a planted leak
def exact_curve_svg(res, horizon: float = 730) -> str:
    """An exact per-event curve drawn as the report drew it before (the leak to find)."""
    fitted = res.cif if res.cif is not None else res.km
    ycol, start = ("cif_event", 0.0) if res.cif is not None else ("surv", 1.0)
    fig, ax = plt.subplots(figsize=(8, 5.2))
    for group, name, colour in (("treated", "Served", "#0072b2"), ("comparison", "Matched comparison", "#e69f00")):
        tab = fitted.table_[(fitted.table_["group"] == group) & (fitted.table_["time"] <= horizon)]
        ax.step(np.r_[0, tab["time"]], np.r_[start, tab[ycol]], where="post", color=colour, lw=2.5, label=name)
    ax.set_xlim(0, horizon)
    ax.set_ylim(0, 1)
    ax.set_yticks([0, 0.25, 0.5, 0.75, 1.0], ["0%", "25%", "50%", "75%", "100%"])
    ax.set_xticks([0, 182, 365, 548, 730], ["0", "182", "365", "548", "730"])
    ax.set_xlabel("Days since the index date")
    ax.legend(loc="upper left")
    buf = __import__("io").BytesIO()
    with plt.rc_context({"svg.fonttype": "path", "svg.hashsalt": "test"}):
        fig.savefig(buf, format="svg")
    plt.close(fig)
    return buf.getvalue().decode("utf-8")


# ------------------------------------------------------------------------------ fixtures
def _report(tmp_path_factory, name: str, make) -> SimpleNamespace:
    d = tmp_path_factory.mktemp(name)
    cfg = make(d)
    out = d / "report"
    status, _out, err = run_cli("-q", "report", str(cfg), "--out", str(out))
    assert status == 0, err
    return SimpleNamespace(out=out, ev=Evaluation.from_toml(cfg), results=json.loads((out / "results.json").read_text()))


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> SimpleNamespace:
    """``ppeval report`` on the committed 500-child extract (tests/hardening/small_extract)."""
    def make(d: Path) -> Path:
        shutil.copytree(SMALL_EXTRACT, d / "data")
        return d / "data" / "eval.toml"
    return _report(tmp_path_factory, "curves_small", make)


# ------------------------------------------------------------------------------ the tests
def test_the_attack_finds_a_planted_exact_curve(small):
    """The old drawing (one step per event) is caught: single events, read off the path data."""
    assert small.ev.estimates, "no outcome estimated"
    found = []
    for outcome, res in small.ev.estimates.items():
        if res.km is None and res.cif is None:
            continue
        curves = read_curves(exact_curve_svg(res))
        assert set(curves) == set(ARMS)
        found += leaks(curves, event_days(small.ev, outcome))
    assert any("pools 1 event(s)" in f for f in found), found
    assert len(found) >= 10, found


def test_the_attack_reads_the_report_charts(small):
    """Every curve chart is found (files and report.html) and its axes read back."""
    svgs = curve_svgs(small.out)
    files = [w for w, _, _ in svgs if w.endswith(".svg")]
    embedded = [w for w, _, _ in svgs if w.startswith("report.html")]
    assert files and len(embedded) == len(files), svgs
    for where, _outcome, svg in svgs:
        curves = read_curves(svg)
        for pts in curves.values():
            assert pts[0, 0] == pytest.approx(0, abs=1e-6), where  # a curve starts at the index date
            assert ((pts[:, 1] > -1e-6) & (pts[:, 1] < 1 + 1e-6)).all(), where


def test_no_published_rise_pools_fewer_than_the_threshold(small):
    """The attack on the report: every rise pools 0 or at least 11 events of its arm."""
    found = []
    for where, outcome, svg in curve_svgs(small.out):
        found += [f"{where}: {f}" for f in leaks(read_curves(svg), event_days(small.ev, outcome),
                                                   window_ends(small.results, outcome))]
    assert not found, "published curve steps that give away small counts:\n" + "\n".join(found)


def check_values(svg: str, res) -> int:
    """No re-estimation: each drawn point is the fitted curve's own value at its day.

    Returns the number of points checked.
    """
    checked = 0
    for arm, pts in read_curves(svg).items():
        group = "treated" if arm == "Served" else "comparison"
        days = np.unique(np.round(pts[:, 0]))
        if res.cif is not None:
            tab = res.cif.cumulative_incidence_at(days)
            want = tab.loc[tab["group"] == group, "cif_event"].to_numpy()
        else:
            tab = res.km.survival_at(days)
            want = tab.loc[tab["group"] == group, "surv"].to_numpy()
        # from a day on, the drawn value is the estimate at that day (post steps)
        got = np.array([pts[np.isclose(np.round(pts[:, 0]), t), 1][-1] for t in days])
        np.testing.assert_allclose(got, want, atol=1e-5, err_msg=arm)
        checked += len(days)
    return checked


def test_arms_too_small_to_draw_are_marked_not_drawn(small):
    """An arm with fewer than 11 events in all has no publishable step: the legend says so."""
    marked = 0
    for where, outcome, svg in curve_svgs(small.out):
        truth = event_days(small.ev, outcome)
        curves = read_curves(svg)
        for arm in ARMS:
            if 0 < truth[arm][truth[arm] <= 730].size < THRESHOLD:
                assert arm not in curves, f"{where}: {arm} drawn with fewer than {THRESHOLD} events"
                assert f"<!-- {arm}: not drawn (fewer than {THRESHOLD} events) -->" in svg, where
                marked += 1
    assert marked  # the 500-child extract has such arms (tpr: 9 and 4 events)


def test_captions_and_methods_say_how_the_curves_were_drawn(small):
    captions = (small.out / "charts" / "captions.txt").read_text(encoding="utf-8")
    assert captions.count(f"drawn in steps of at least {THRESHOLD} events") == len(list((small.out / "charts").glob("curve_*.svg")))
    page = (small.out / "report.html").read_text(encoding="utf-8")
    assert f"drawn in steps of at least {THRESHOLD} events" in page


def _simulated_fit(kind: str, seed: int, n: int = 400):
    """A fitted curve on simulated arms (n per arm, ties on whole days, matching-like weights)."""
    from ppeval.estimate.competing import AalenJohansen
    from ppeval.estimate.survival import KaplanMeier

    rng = np.random.default_rng(seed)
    treated = np.repeat([True, False], n)
    days = np.ceil(rng.exponential(np.where(treated, 500.0, 350.0))).astype(float)
    censor = np.ceil(rng.uniform(30, 1200, 2 * n))
    status = np.where(days <= censor, rng.choice([1, 2], 2 * n, p=[0.8, 0.2]), 0)
    days = np.minimum(days, censor)
    w = np.where(treated, 1.0, rng.choice([0.5, 1.0, 1.5], 2 * n))
    labels = {True: "treated", False: "comparison"}
    if kind == "km":
        status = (status == 1).astype(int)
        fit = KaplanMeier().fit(days, status, w, groups=treated, labels=labels)
        res = SimpleNamespace(km=fit, cif=None)
    else:
        fit = AalenJohansen().fit(days, status, w, groups=treated, labels=labels)
        res = SimpleNamespace(km=None, cif=fit)
    truth = {arm: days[(treated == served) & (status == 1)] for arm, served in zip(ARMS, (True, False), strict=True)}
    return res, truth


@pytest.mark.parametrize(("kind", "seed"), [("km", 1), ("cif", 2), ("cif", 5)])
def test_the_attack_on_simulated_curves(kind, seed):
    """Hundreds of events per arm: many steps drawn, none pooling fewer than 11 events, and
    the same curves drawn exactly are caught."""
    from ppeval.report import charts

    res, truth = _simulated_fit(kind, seed)
    ax = charts.curve_chart(res, "reunification", THRESHOLD, horizon=730, anchors=[365, 730])
    svg = base64.b64decode(charts.save(ax, None, "x").split(",", 1)[1]).decode("utf-8")
    curves = read_curves(svg)
    assert set(curves) == set(ARMS)
    assert all(len(rises(p)) >= 5 for p in curves.values())
    assert not leaks(curves, truth, [365, 730])
    # the published rises hold the threshold, and more than one month of events where events are rare
    assert min(abs(h) for p in curves.values() for _, _, h in rises(p)) > 0
    assert check_values(svg, res) >= 10
    assert len(leaks(read_curves(exact_curve_svg(res)), truth)) > 20


def test_curve_charts_are_byte_identical_when_drawn_again(small):
    """Same fitted curves -> same SVG bytes (stable ids, no dates), so reruns are identical."""
    from ppeval.report import charts

    res = small.ev.estimates["reunification"]
    digests = set()
    for _ in range(2):
        ax = charts.curve_chart(res, "reunification", THRESHOLD, horizon=730, anchors=[365, 730])
        digests.add(hashlib.sha256(base64.b64decode(charts.save(ax, None, "x").split(",", 1)[1])).hexdigest())
    assert len(digests) == 1


def test_published_steps_pool_the_threshold_on_random_curves():
    """The grid rule itself, on many random event patterns and anchors."""
    from ppeval.report.charts import published_steps

    rng = np.random.default_rng(3)
    for _ in range(300):
        n = int(rng.integers(0, 200))
        days = np.sort(rng.integers(1, 800, n)).astype(float)
        times, events = np.unique(days, return_counts=True)
        anchors = sorted(rng.choice([182, 365, 547, 730], size=int(rng.integers(0, 3)), replace=False).tolist())
        pts = published_steps(times, events, THRESHOLD, 730, anchors)
        cum = [int((days <= t).sum()) for t in np.r_[0, pts]]
        gaps = np.diff(cum)
        assert ((gaps == 0) | (gaps >= THRESHOLD)).all(), (pts, cum)
        assert (np.diff(np.r_[0, pts]) > 0).all() and (pts <= 730).all()
        assert np.isin(pts[pts < 730], [m * 365 // 12 for m in range(1, 25)]).all()  # month ends
        for t in pts:
            for w in anchors:
                k = int(((days > min(t, w)) & (days <= max(t, w))).sum())
                assert k == 0 or k >= THRESHOLD, (t, w, k)
        if (days <= 730).sum() >= THRESHOLD and not anchors:
            assert pts.size and pts[-1] == 730  # with nothing else in the way the curve reaches the horizon


@pytest.mark.slow
def test_no_published_rise_pools_fewer_than_the_threshold_900_children(tmp_path_factory):
    """The same attack on a synthetic 900-child extract."""
    from ppeval.synthetic import write_synthetic

    def make(d: Path) -> Path:
        write_synthetic(d, n_children=900, seed=7)
        return d / "eval.toml"
    big = _report(tmp_path_factory, "curves_900", make)
    svgs = curve_svgs(big.out)
    assert svgs
    found, drawn = [], 0
    for where, outcome, svg in svgs:
        curves = read_curves(svg)
        drawn += sum(len(rises(p)) for p in curves.values())
        check_values(svg, big.ev.estimates[outcome])
        found += [f"{where}: {f}" for f in leaks(curves, event_days(big.ev, outcome), window_ends(big.results, outcome))]
    assert drawn > 0  # the test means something only if steps were drawn
    assert not found, "\n".join(found)
