"""The run log of published cohorts: a warning before two reports can be subtracted.

Two reports on the same extract whose cohorts differ by a few units (an entry window one
month longer, say) publish, between them, the counts of those few units: a reader
subtracts one report from the other. ``ppeval report`` therefore appends one line per
report to a log of ppeval's own (JSON lines; default ``$XDG_STATE_HOME/ppeval/runs.jsonl``,
i.e. ``~/.local/state/ppeval/runs.jsonl``, or ``[report] run_log``) holding only aggregates: hashes of the config and the
inputs, the design, unit and entry window, and the per-arm cohort and matched sizes and
event counts. No identifier and no child's date is ever written to it. A new report
whose cohort differs from a logged one on the same inputs by 1 to threshold - 1 units in
any arm (but is not identical) gets a warning on the console and in the report's notes.
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

_MARK = "ppeval_run_log"


def default_log() -> Path:
    """``$XDG_STATE_HOME/ppeval/runs.jsonl`` (``~/.local/state/ppeval/runs.jsonl``).

    Not beside the config: the config's folder is usually the extract's, and ppeval writes
    nothing into input folders. Records are keyed by the inputs' hashes, so one log per
    user serves every evaluation.
    """
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "ppeval" / "runs.jsonl"


def log_path(config_path: Path, cfg) -> Path:
    """Where the run log lives: ``[report] run_log`` (relative to the config's folder) or :func:`default_log`."""
    configured = cfg["report"].get("run_log")
    if configured:
        return Path(config_path).resolve().parent / Path(configured).expanduser()
    return default_log()


def _counts(ev) -> dict[str, int]:
    cd = ev.cohort.data
    arm = cd["treated"].astype(bool) if "treated" in cd else None
    out: dict[str, int] = {}
    if arm is not None:
        out["cohort.treated"] = int(arm.sum())
        out["cohort.comparison"] = int((~arm).sum())
        for name in ev.outcomes:
            col = f"{name}_status"
            if col in cd:
                s = cd[col]
                out[f"events.{name}.treated"] = int((s[arm] == 1).sum())
                out[f"events.{name}.comparison"] = int((s[~arm] == 1).sum())
    counts = ev.matched.counts
    for k in ("treated_matched", "comparison_matched"):
        if counts.get(k) is not None:
            out[f"matched.{k}"] = int(counts[k])
    return out


def record(ev, config_path: Path) -> dict[str, Any]:
    """The log line of this evaluation's cohort: aggregates and hashes only."""
    c = ev.config["cohort"]
    window = [None if c.get(k) is None else str(c.get(k))[:10] for k in ("entry_from", "entry_to")]
    return {
        _MARK: 1,
        "written": datetime.now(UTC).strftime("%Y-%m-%d"),
        "config_sha256": hashlib.sha256(Path(config_path).read_bytes()).hexdigest(),
        "inputs_sha256": sorted(f["sha256"] for f in ev.extract.provenance()),
        "design": ev.cohort.design,
        "unit": ev.cohort.unit,
        "entry_window": window,
        "counts": _counts(ev),
    }


def read(path: Path) -> list[dict[str, Any]]:
    """The logged records (lines that are not ppeval's records are ignored)."""
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict) and rec.get(_MARK) == 1:
            out.append(rec)
    return out


def differencing_warning(new: dict[str, Any], logged: list[dict[str, Any]], threshold: int) -> str | None:
    """The warning when ``new`` differs from a logged cohort of the same inputs by a few units.

    Examples
    --------
    >>> a = {"inputs_sha256": ["x"], "design": "in_care", "unit": "child", "written": "2026-01-05",
    ...      "counts": {"cohort.treated": 40, "cohort.comparison": 400}}
    >>> b = {**a, "counts": {"cohort.treated": 43, "cohort.comparison": 400}}
    >>> differencing_warning(b, [a], 11)[:47]
    'this cohort differs from the one published on 2'
    >>> differencing_warning(a, [a], 11) is None
    True
    """
    hits = []
    for old in logged:
        if [old.get(k) for k in ("inputs_sha256", "design", "unit")] != [new[k] for k in ("inputs_sha256", "design", "unit")]:
            continue
        if old.get("counts") == new["counts"]:
            continue  # the same cohort again: nothing new to subtract
        keys = set(old.get("counts", {})) & set(new["counts"])
        if any(1 <= abs(new["counts"][k] - old["counts"][k]) < threshold for k in keys):
            hits.append(old.get("written", "an earlier date"))
    if not hits:
        return None
    return (f"this cohort differs from the one published on {max(hits)} by fewer than {threshold} served units "
            "(or comparison units, or events); publishing both lets a reader subtract them. Publish from one "
            "fixed cohort definition.")


def append(path: Path, rec: dict[str, Any]) -> None:
    """Append ``rec`` as one line (one ``write`` of an ``O_APPEND`` file: lines never interleave)."""
    if path.exists() and path.stat().st_size and not read(path):
        raise FileExistsError(f"{path} exists and is not a ppeval run log; set [report] run_log to another file")
    same = {k: v for k, v in rec.items() if k != "written"}
    if any({k: v for k, v in old.items() if k != "written"} == same for old in read(path)):
        return  # this cohort is logged already
    path.parent.mkdir(parents=True, exist_ok=True)
    data = (json.dumps(rec, sort_keys=True) + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
