#!/usr/bin/python3
"""nginx's view of its backends, from the server lines of the live nginx.conf (open-source nginx has no
runtime API), as JSON {name: {weight, state}}. The role's template ends each server line with the
backend's name (`# app1_8000`), which stays right whatever address the line gives.

Usage: view.py SETTINGS_JSON   ({"config_path", "pid_path"})

An nginx that does not run has no view: the file alone would say it serves (its config stays when the
lab switches to another kind).
"""

import json
import os
import re
import sys

SERVER_LINE = re.compile(r"\s*server\s+\S+\s+(?P<parameters>[^;]*);\s*#\s*(?P<name>\S+)")


def main() -> None:
    settings = json.loads(sys.argv[1])
    try:
        with open(settings["pid_path"], encoding="ascii") as pid_file:
            os.kill(int(pid_file.read().strip()), 0)
    except (OSError, ValueError) as error:
        sys.exit(f"nginx does not run ({settings['pid_path']}: {error})")
    view = {}
    with open(settings["config_path"], encoding="utf-8") as conf:
        for line in conf:
            match = SERVER_LINE.match(line)
            if match and "weight=" in match["parameters"]:
                weight = re.search(r"weight=(\d+)", match["parameters"]).group(1)
                state = "drained (down)" if re.search(r"\bdown\b", match["parameters"]) else "in rotation"
                view[match["name"]] = {"weight": weight, "state": state}
    print(json.dumps(view))


if __name__ == "__main__":
    main()
