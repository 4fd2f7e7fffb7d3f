#!/usr/bin/env python3
"""How long each phase of each molecule scenario took, from the logs scripts/run-molecule.sh writes.

    python scripts/molecule_phases.py .cache/molecule-*.log

run-molecule.sh starts every log line with the Unix time it was written; molecule logs a line ending in
"Executing" at the start of each phase (create, converge, idempotence, verify, destroy...). A phase
lasts until the next one starts, the last one until the log's last line. Prints one JSON object,
{scenario: {phase: seconds}}, phases in the order they ran (a phase run twice, such as destroy, is
numbered: destroy, destroy#2).
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


def main(paths: list[str]) -> int:
    merged: dict[str, dict[str, int]] = {}
    for path in paths:
        if not Path(path).is_file():  # a scenario that did not run
            continue
        merged.update(phases(Path(path).read_text(encoding="utf-8", errors="replace").splitlines()))
    print(json.dumps(merged, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
