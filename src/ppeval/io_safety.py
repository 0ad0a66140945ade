"""Output safety: ``--out`` never deletes or overwrites what ppeval did not write.

A folder ppeval writes carries a manifest, :data:`MARKER` (``.ppeval-output.json``), listing
every file it wrote with its size and sha256, the ppeval version and the command. An
existing ``--out`` folder may be replaced only when it is empty or when its contents match
its manifest exactly; anything else (a user's folder, an input folder, a ppeval folder the
user added a file to, a symlink) is refused with :class:`OutputRefused` (exit status 2)
before any work, and nothing is deleted. A single output file (``cohort --out x.csv``) may
be overwritten only when a sidecar ``.<name>.ppeval-output.json`` records it unchanged.

Examples
--------
>>> import tempfile
>>> with tempfile.TemporaryDirectory() as d:
...     check_replaceable_dir(Path(d) / "new")          # missing: fine
...     _ = (Path(d) / "mine.txt").write_text("x")
...     try:
...         check_replaceable_dir(Path(d))
...     except OutputRefused as exc:
...         print("refused")
refused
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from .errors import ConfigError

MARKER = ".ppeval-output.json"

__all__ = [
    "MARKER",
    "OutputRefused",
    "check_outside_inputs",
    "check_replaceable_dir",
    "check_replaceable_file",
    "record_file",
    "write_manifest",
]


class OutputRefused(ConfigError):
    """``--out`` names something ppeval did not write (or an input); nothing was touched."""


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _listing(root: Path) -> tuple[dict[str, Path], list[str]]:
    """Files under ``root`` (relative posix path -> path) and symlinks/odd entries, unfollowed."""
    files: dict[str, Path] = {}
    other: list[str] = []
    for dirpath, dirs, names in os.walk(root, followlinks=False):
        base = Path(dirpath)
        for d in list(dirs):
            if (base / d).is_symlink():
                other.append((base / d).relative_to(root).as_posix())
                dirs.remove(d)
        for n in names:
            p = base / n
            rel = p.relative_to(root).as_posix()
            if p.is_symlink() or not p.is_file():
                other.append(rel)
            else:
                files[rel] = p
    return files, sorted(other)


def write_manifest(folder: str | Path) -> Path:
    """Write :data:`MARKER` in ``folder`` listing every file in it (size, sha256).

    Called on the finished temporary folder just before the swap, so the manifest
    describes exactly what ppeval wrote. It holds no command line (paths differ between
    reruns that must stay byte-identical) and no time.
    """
    from . import __version__

    folder = Path(folder)
    files, _ = _listing(folder)
    files.pop(MARKER, None)
    manifest = {
        "written_by": "ppeval",
        "ppeval_version": __version__,
        "files": [{"path": rel, "size": p.stat().st_size, "sha256": _sha256(p)} for rel, p in sorted(files.items())],
    }
    target = folder / MARKER
    target.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return target


def _refuse(where: Path, why: str, what: str = "folder") -> OutputRefused:
    fresh = "a new or empty folder" if what == "folder" else "a new file name"
    return OutputRefused(
        f"refusing to replace {where}: {why}; nothing was deleted. "
        f"Choose {fresh} for --out (ppeval only replaces a {what} it wrote itself)"
    )


def check_replaceable_dir(final: str | Path) -> None:
    """Raise :class:`OutputRefused` unless ``final`` is missing, empty, or an unchanged ppeval output.

    A symlink is always refused (replacing it would empty or orphan its target).
    """
    final = Path(final)
    if final.is_symlink():
        raise _refuse(final, f"it is a symbolic link (to {os.readlink(final)})")
    if not final.exists():
        return
    if not final.is_dir():
        raise _refuse(final, "it exists and is not a folder")
    files, other = _listing(final)
    if not files and not other:
        return  # empty folders only: nothing to lose
    marker = final / MARKER
    if MARKER not in files:
        shown = ", ".join(sorted([*files, *other])[:5])
        raise _refuse(final, f"it holds files ppeval did not write (no {MARKER} manifest), e.g. {shown}")
    try:
        manifest = json.loads(marker.read_text(encoding="utf-8"))
        listed = {f["path"]: (int(f["size"]), str(f["sha256"])) for f in manifest["files"]}
    except (OSError, ValueError, KeyError, TypeError):
        raise _refuse(final, f"its {MARKER} manifest is unreadable") from None
    foreign = sorted([r for r in files if r != MARKER and r not in listed] + other)
    if foreign:
        raise _refuse(final, "files not written by ppeval were added to it: " + ", ".join(foreign[:10]))
    changed = sorted(
        r for r, (size, digest) in listed.items()
        if r in files and (files[r].stat().st_size != size or _sha256(files[r]) != digest)
    )
    if changed:
        raise _refuse(final, "files ppeval wrote were changed since: " + ", ".join(changed[:10]))


def _sidecar(path: Path) -> Path:
    return path.parent / f".{path.name}{MARKER}"


def check_replaceable_file(path: str | Path) -> None:
    """Raise :class:`OutputRefused` unless ``path`` is missing or a file ppeval wrote, unchanged."""
    path = Path(path)
    if path.is_symlink():
        raise _refuse(path, f"it is a symbolic link (to {os.readlink(path)})", "file")
    if not path.exists():
        return
    if not path.is_file():
        raise _refuse(path, "it exists and is not a file", "file")
    try:
        rec = json.loads(_sidecar(path).read_text(encoding="utf-8"))
        ok = rec["sha256"] == _sha256(path) and int(rec["size"]) == path.stat().st_size
    except (OSError, ValueError, KeyError, TypeError):
        raise _refuse(path, f"the file exists and ppeval did not write it (no {_sidecar(path).name})", "file") from None
    if not ok:
        raise _refuse(path, "the file was changed since ppeval wrote it", "file")


def record_file(path: str | Path) -> Path:
    """Write the sidecar that lets a later run overwrite ``path`` (see :func:`check_replaceable_file`)."""
    from . import __version__

    path = Path(path)
    side = _sidecar(path)
    side.write_text(json.dumps({
        "written_by": "ppeval", "ppeval_version": __version__,
        "path": path.name, "size": path.stat().st_size, "sha256": _sha256(path),
    }, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return side


def check_outside_inputs(out: str | Path, inputs: list[str | Path]) -> None:
    """Refuse an ``out`` that is, contains, or lies inside any input (config, data files/folders)."""
    o = Path(os.path.abspath(out))
    o_real = Path(os.path.realpath(out))
    for inp in inputs:
        for i in {Path(os.path.abspath(inp)), Path(os.path.realpath(inp))}:
            for oo in (o, o_real):
                if oo == i or oo in i.parents or i in oo.parents:
                    raise OutputRefused(
                        f"refusing --out {out}: it overlaps the input {inp}; nothing was written or deleted. "
                        "Write the output to a folder outside the extract"
                    )


def config_inputs(cfg) -> list[Path]:
    """The config file and every existing path named in its ``[data]`` section (sources,
    rosters, databases), resolved against the config's folder."""
    found: list[Path] = [Path(cfg.path)] if getattr(cfg, "path", None) else []

    def walk(node) -> None:
        if isinstance(node, dict):
            for v in node.values():
                walk(v)
        elif isinstance(node, list | tuple):
            for v in node:
                walk(v)
        elif isinstance(node, str) and node and "\n" not in node and len(node) < 4096:
            try:
                p = cfg.resolve(node)
                if p.exists():
                    found.append(p)
            except (OSError, ValueError):
                pass

    walk(cfg["data"])
    return found
