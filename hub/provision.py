"""Prepared notebooks in each user's home, without ever overwriting the user's edits.

On every spawn the prepared notebooks (``notebooks/*.ipynb``, or ``DEEPEPIL_NOTEBOOKS``) are
brought into the user's home and a record of what was put there is kept in
``~/.deepepil/provisioned.json`` (the fingerprint of each template version). For each template:

* missing in the home: copied (a deleted notebook comes back, fresh);
* template unchanged since it was provisioned: left alone, edited or not;
* template updated, the user's copy untouched: replaced by the new version;
* template updated, the user's copy edited: the new version is written next to it as
  ``NAME (updated).ipynb`` (``NAME (updated 2).ipynb`` when that one was edited too).

A notebook's fingerprint covers its cells' types and sources only, so running a notebook
(outputs, execution counts, metadata) does not count as an edit.

The shared team folder is linked into the home as ``~/team``. JupyterLab's question about
fetching news from the internet is answered "no" in the user's settings when they have none
(clinic networks are closed; the user can change it).

On Kubernetes this runs inside the user's container at start
(``python -m hub.provision --home ~ --templates DIR --team DIR``; see ``hub/k8s/values.yaml``).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import tempfile
from pathlib import Path

__all__ = ["ProvisionReport", "provision_home", "fingerprint", "RECORD_PATH", "TEAM_LINK", "LAB_NOTIFICATION_SETTINGS"]

#: The record of provisioned template versions, relative to the home.
RECORD_PATH = Path(".deepepil") / "provisioned.json"
#: The name of the team folder link in each home.
TEAM_LINK = "team"
#: JupyterLab's notification settings of the user, relative to the home.
LAB_NOTIFICATION_SETTINGS = (Path(".jupyter") / "lab" / "user-settings" / "@jupyterlab" / "apputils-extension"
                             / "notification.jupyterlab-settings")


@dataclasses.dataclass
class ProvisionReport:
    """What :func:`provision_home` did, file name -> action."""

    actions: dict[str, str] = dataclasses.field(default_factory=dict)
    team_link: str = "none"

    def __str__(self) -> str:
        parts = [f"{name}: {action}" for name, action in sorted(self.actions.items())]
        return "; ".join(parts + [f"team: {self.team_link}"])


def fingerprint(path: Path) -> str:
    """A content hash: for a notebook, of its cells' types and sources only; else of the bytes."""
    data = path.read_bytes()
    if path.suffix == ".ipynb":
        try:
            cells = json.loads(data)["cells"]
            canonical = [
                [c.get("cell_type"), "".join(c["source"]) if isinstance(c.get("source"), list) else c.get("source")]
                for c in cells
            ]
            data = json.dumps(canonical, ensure_ascii=False).encode()
        except (ValueError, KeyError, TypeError):
            pass  # not a valid notebook: compare bytes
    return hashlib.sha256(data).hexdigest()


def _write_atomic(src: Path, dest: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".partial")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(src.read_bytes())
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _updated_name(name: str, n: int) -> str:
    stem, suffix = os.path.splitext(name)
    return f"{stem} (updated){suffix}" if n == 1 else f"{stem} (updated {n}){suffix}"


def _read_record(home: Path) -> dict[str, str]:
    path = home / RECORD_PATH
    try:
        files = json.loads(path.read_text())["files"]
        return {str(k): str(v) for k, v in files.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}  # first spawn, or an unreadable record: start again (nothing is overwritten blindly)


def _write_record(home: Path, record: dict[str, str]) -> None:
    path = home / RECORD_PATH
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.partial")
    tmp.write_text(json.dumps({"version": 1, "files": record}, indent=1, sort_keys=True))
    os.replace(tmp, path)


def _templates(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.ipynb") if p.is_file() and not p.name.startswith("."))


def provision_home(home: Path, templates: Path | None, team_dir: Path | None = None) -> ProvisionReport:
    """Bring the prepared notebooks into ``home`` (never overwriting edits) and link the team folder.

    Parameters
    ----------
    home : Path
        The user's home folder (created when missing).
    templates : Path or None
        The folder of prepared notebooks (``*.ipynb``); None provisions no notebooks.
    team_dir : Path, optional
        The shared team notebooks folder, linked as ``home/team`` (created when missing).

    Returns
    -------
    ProvisionReport
        Per file: ``copied``, ``restored``, ``unchanged``, ``updated`` or ``updated copy: NAME``.
    """
    home = Path(home)
    home.mkdir(parents=True, exist_ok=True)
    report = ProvisionReport()
    record = _read_record(home)
    for template in _templates(templates) if templates is not None else []:
        name = template.name
        new = fingerprint(template)
        dest = home / name
        recorded = record.get(name)
        if not dest.exists():
            _write_atomic(template, dest)
            report.actions[name] = "restored" if recorded else "copied"
        elif recorded == new:
            report.actions[name] = "unchanged"
        else:
            current = fingerprint(dest)
            if current == new:
                report.actions[name] = "unchanged"
            elif recorded is not None and current == recorded:
                _write_atomic(template, dest)
                report.actions[name] = "updated"
            else:  # edited by the user (or theirs to begin with): the new version goes next to it
                n = 1
                while True:
                    side = home / _updated_name(name, n)
                    if not side.exists() or fingerprint(side) in (record.get(side.name), new):
                        break
                    n += 1
                _write_atomic(template, side)
                record[side.name] = new
                report.actions[name] = f"updated copy: {side.name}"
        record[name] = new
    _write_record(home, record)
    settings = home / LAB_NOTIFICATION_SETTINGS
    if not settings.exists():
        settings.parent.mkdir(parents=True, exist_ok=True)
        settings.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}, indent=2))
    if team_dir is not None:
        report.team_link = _link_team(home, Path(team_dir))
    return report


def _link_team(home: Path, team_dir: Path) -> str:
    team_dir.mkdir(parents=True, exist_ok=True)
    link = home / TEAM_LINK
    if link.is_symlink():
        if Path(os.readlink(link)) == team_dir:
            return "linked"
        link.unlink()  # the team folder moved: follow it
    elif link.exists():
        return f"skipped: {link} exists and is not a link"
    link.symlink_to(team_dir, target_is_directory=True)
    return "linked"


def main(argv: list[str] | None = None) -> int:
    """``python -m hub.provision --home DIR --templates DIR [--team DIR]``."""
    parser = argparse.ArgumentParser(prog="python -m hub.provision", description=__doc__.splitlines()[0])
    parser.add_argument("--home", default=os.path.expanduser("~"), help="the user's home (default ~)")
    parser.add_argument("--templates", help="folder of prepared notebooks")
    parser.add_argument("--team", help="shared team notebooks folder, linked as ~/team")
    args = parser.parse_args(argv)
    templates = Path(args.templates) if args.templates else None
    if templates is not None and not templates.is_dir():
        parser.error(f"--templates {templates}: no such folder")
    print(provision_home(Path(args.home), templates, Path(args.team) if args.team else None))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
