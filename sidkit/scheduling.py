"""Cron schedules for orchestrators that cannot schedule (ZenML's local orchestrator).

``cron_entry`` gives a crontab line with an explicit time zone (``CRON_TZ``, understood by
cronie and systemd-cron; Vixie cron ignores it, so the comment repeats the zone) that runs the
sidkit CLI from the repository with the project's Python, appending to a log file.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sidkit.errors import SidkitError

_FIELDS = [("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12), ("day of week", 0, 7)]
_ATOM = re.compile(r"^(\*|\d+)(?:-(\d+))?(?:/(\d+))?$")


class ScheduleError(SidkitError):
    pass


def validate_cron(expr: str) -> None:
    """Five numeric fields (``*``, ``a``, ``a-b``, ``*/n``, ``a-b/n``, comma lists)."""
    fields = expr.split()
    if len(fields) != 5:
        raise ScheduleError(f"cron expression {expr!r} must have 5 fields (minute hour day month weekday), "
                            f"got {len(fields)}")
    for text, (name, lo, hi) in zip(fields, _FIELDS):
        for atom in text.split(","):
            m = _ATOM.match(atom)
            if not m:
                raise ScheduleError(f"cron {name} field {text!r}: {atom!r} is not *, a number, a range or a step")
            for v in (m.group(1), m.group(2)):
                if v not in (None, "*") and not lo <= int(v) <= hi:
                    raise ScheduleError(f"cron {name} field {text!r}: {v} is outside {lo}-{hi}")
            if m.group(3) is not None and int(m.group(3)) == 0:
                raise ScheduleError(f"cron {name} field {text!r}: step 0")


def validate_timezone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ScheduleError(f"unknown time zone {name!r} (use an IANA name such as UTC or Europe/Berlin)") from exc


def cron_entry(cron: str, tz: str, args: list[str], repo: Path, python: Path, state: Path,
               log: Path | None = None) -> str:
    """A crontab entry running ``python run.py <args>`` in ``repo`` with ``SIDKIT_HOME=state``.

    Every argument is shell-quoted (a path with a space or ``;`` stays one argument) and cron's
    ``%`` (a newline to cron) is escaped; the state folder is carried, so the job uses the same
    ZenML store, MLflow runs and caches as the command that scheduled it.
    """
    log = log or state / "logs" / "scheduled.log"
    q = shlex.quote
    run = (f"cd {q(str(repo))} && mkdir -p {q(str(log.parent))} && SIDKIT_HOME={q(str(state))} "
           f"{q(str(python))} run.py {' '.join(q(a) for a in args)} >> {q(str(log))} 2>&1")
    return f"# sidkit: {args[0]} ({cron}, time zone {tz})\nCRON_TZ={tz}\n{cron} {run.replace('%', chr(92) + '%')}"


def install_crontab(entry: str) -> None:
    """Add ``entry`` to the current user's crontab unless the same line is already there."""
    if shutil.which("crontab") is None:
        raise ScheduleError("no `crontab` command on this machine: install cron, or add the entry to your scheduler")
    current = subprocess.run(["crontab", "-l"], capture_output=True, text=True)
    existing = current.stdout if current.returncode == 0 else ""
    job_line = entry.strip().splitlines()[-1]
    if job_line in existing:
        return
    new = existing.rstrip("\n") + ("\n" if existing.strip() else "") + entry.strip() + "\n"
    proc = subprocess.run(["crontab", "-"], input=new, capture_output=True, text=True)
    if proc.returncode:
        raise ScheduleError(f"crontab refused the entry: {proc.stderr.strip()}")
