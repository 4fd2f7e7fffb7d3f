#!/usr/bin/env python3
"""How long each phase of each molecule scenario took, from the logs scripts/run-molecule.sh writes.

    python scripts/molecule_phases.py [--table] .cache/molecule-*.log

run-molecule.sh starts every log line with the Unix time it was written; molecule logs a line ending in
"Executing" at the start of each phase (create, converge, idempotence, verify, destroy...). A phase
lasts until the next one starts, the last one until the log's last line. Prints one JSON object,
{scenario: {phase: seconds}}, phases in the order they ran (a phase run twice, such as destroy, is
numbered: destroy, destroy#2). With --table, a plain-text table instead: a row per scenario, a column
per phase, and each scenario's total.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

STAMPED = re.compile(r"^(?P<time>\d{9,}) (?P<text>.*)$")
ANSI = re.compile(r"\x1b\[[0-9;]*m")
# "[stack_nginx > converge] Executing", "stack_nginx ➜ converge: Executing", "stack_nginx > converge: Executing"
PHASE_START = re.compile(r"\[?(?P<scenario>[\w.-]+)\s*(?:>|\u279c|\u2192)\s*(?P<phase>\w+)\]?:?\s+Executing\s*$")


def phases(lines: list[str]) -> dict[str, dict[str, int]]:
    """{scenario: {phase: seconds}} from timestamped molecule log lines."""
    starts: list[tuple[str, str, int]] = []
    last_time = None
    for line in lines:
        stamped = STAMPED.match(line.rstrip("\n"))
        if not stamped:
            continue
        last_time = int(stamped["time"])
        start = PHASE_START.search(ANSI.sub("", stamped["text"]))
        if start:
            starts.append((start["scenario"], start["phase"], last_time))
    result: dict[str, dict[str, int]] = {}
    for index, (scenario, phase, began) in enumerate(starts):
        ended = starts[index + 1][2] if index + 1 < len(starts) else last_time
        timings = result.setdefault(scenario, {})
        name, number = phase, 1
        while name in timings:
            number += 1
            name = f"{phase}#{number}"
        timings[name] = ended - began
    return result


def table(timings: dict[str, dict[str, int]]) -> str:
    """A row per scenario with its seconds in each phase (columns in the order phases first ran) and its total."""
    columns: list[str] = []
    for phases_of in timings.values():
        columns += [phase for phase in phases_of if phase not in columns]
    header = ["scenario", *columns, "total"]
    rows = [[scenario, *(str(phases_of.get(phase, "")) for phase in columns), str(sum(phases_of.values()))]
            for scenario, phases_of in timings.items()]
    widths = [max(len(row[index]) for row in [header, *rows]) for index in range(len(header))]
    return "\n".join("  ".join(cell.ljust(width) if index == 0 else cell.rjust(width)
                               for index, (cell, width) in enumerate(zip(row, widths))).rstrip()
                     for row in [header, *rows])


def main(paths: list[str]) -> int:
    as_table = bool(paths) and paths[0] == "--table"
    paths = paths[1:] if as_table else paths
    merged: dict[str, dict[str, int]] = {}
    for path in paths:
        if not Path(path).is_file():  # a scenario that did not run
            continue
        merged.update(phases(Path(path).read_text(encoding="utf-8", errors="replace").splitlines()))
    print(table(merged) if as_table else json.dumps(merged, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
