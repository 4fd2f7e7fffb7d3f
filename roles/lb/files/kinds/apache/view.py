#!/usr/bin/python3
"""Apache's view of its backends, from balancer-manager's member table (each member's route is its
backend name), as JSON {name: {weight, state}}.

Usage: view.py SETTINGS_JSON   ({"manager", "balancer"})
"""

import json
import sys
import urllib.request
from html.parser import HTMLParser


class Cells(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self._in_cell = False

    def handle_starttag(self, tag, attrs):  # noqa: ANN001 - HTMLParser's signature
        if tag == "tr":
            self.rows.append([])
        elif tag == "td" and self.rows:
            self.rows[-1].append("")
            self._in_cell = True

    def handle_endtag(self, tag):  # noqa: ANN001
        if tag == "td":
            self._in_cell = False

    def handle_data(self, data):  # noqa: ANN001
        if self._in_cell and self.rows and self.rows[-1]:
            self.rows[-1][-1] += data


def readable(flags: str) -> str:
    """The state as make status words it for every balancer, balancer-manager's flags beside it: Drn
    (draining), Dis (disabled) or Stop take a member out of rotation; Ok alone keeps it in."""
    words = flags.split()
    if {"Drn", "Dis", "Stop"} & set(words):
        return f"drained ({flags})"
    if "Ok" in words:
        return f"in rotation ({flags})"
    return flags


def main() -> None:
    settings = json.loads(sys.argv[1])
    with urllib.request.urlopen(f"{settings['manager']}?b={settings['balancer']}", timeout=3) as response:
        parser = Cells()
        parser.feed(response.read().decode())
    print(json.dumps({row[1]: {"weight": row[3], "state": readable(row[5].strip())}
                      for row in parser.rows if len(row) > 5 and row[0].startswith("http")}))


if __name__ == "__main__":
    main()
