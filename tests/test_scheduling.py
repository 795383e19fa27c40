"""The crontab entry: every argument quoted, cron's % escaped, the state folder carried."""

import json
import subprocess

from sidkit.scheduling import cron_entry


def _as_cron_runs_it(line: str) -> str:
    """What cron hands to /bin/sh: the text after the five time fields, ``\\%`` -> ``%``, an unescaped ``%``
    ends the command (crontab(5))."""
    command = line.split(None, 5)[5]
    out, i = [], 0
    while i < len(command):
        if command[i] == "\\" and command[i + 1:i + 2] == "%":
            out.append("%")
            i += 2
            continue
        if command[i] == "%":
            break
        out.append(command[i])
        i += 1
    return "".join(out)


def test_hostile_paths_stay_single_arguments_and_the_state_folder_is_carried(tmp_path):
    repo = tmp_path / "repo dir"
    repo.mkdir()
    record = tmp_path / "argv.json"
    python = tmp_path / "fake python"
    python.write_text("#!/usr/bin/env python3\nimport json, os, sys\n"
                      f"json.dump({{'argv': sys.argv[1:], 'home': os.environ.get('SIDKIT_HOME')}}, "
                      f"open({str(record)!r}, 'w'))\n")
    python.chmod(0o755)
    config = str(tmp_path / "my configs; touch PWNED; 100% $(touch PWNED2) `x`.yaml")
    state = tmp_path / "state 1"
    entry = cron_entry("0 3 * * *", "Europe/Berlin", ["retrain", "--config", config], repo, python, state)
    lines = entry.splitlines()
    assert lines[1] == "CRON_TZ=Europe/Berlin" and lines[2].startswith("0 3 * * * cd ")
    subprocess.run(["/bin/sh", "-c", _as_cron_runs_it(lines[2])], check=True, cwd=tmp_path)
    seen = json.loads(record.read_text())
    assert seen == {"argv": ["run.py", "retrain", "--config", config], "home": str(state)}
    assert not list(tmp_path.glob("PWNED*")) and not list(repo.glob("PWNED*"))
    assert (state / "logs" / "scheduled.log").exists()
