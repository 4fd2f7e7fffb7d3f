#!/usr/bin/env python3
"""What the stack tests cover, balancer by balancer, read by collecting them: no host is needed.

    python scripts/stack_coverage.py          # the tables, in Markdown
    python scripts/stack_coverage.py --json   # the same, for tests/unit/test_stack_coverage.py

The stack tests are collected as the molecule `stack` scenario's verifier would collect them
(molecule/stack/molecule.yml gives the hosts and the STACK_* variables, molecule/stack/group_vars/all/main.yml
the settings, with stand-in secrets), against a
stand-in inventory. Printed: the test functions and `assert` statements of each file; for each test
function, how many tests it makes per balancer and how many run once; the order the tests run in.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import json
import os
import sys
import tempfile
from pathlib import Path

import yaml

from lab_vault import SECRETS  # scripts/lab_vault.py: the secrets a stack's vault holds

REPO = Path(__file__).resolve().parents[1]
STACK_TESTS = REPO / "molecule" / "resources" / "stack_tests"
SCENARIO = REPO / "molecule" / "stack" / "molecule.yml"
SETTINGS = REPO / "molecule" / "stack" / "group_vars" / "all" / "main.yml"
ONCE = "once"


def census() -> dict[str, dict[str, int]]:
    """Test functions and assert statements of each stack test file."""
    counts = {}
    for path in sorted(STACK_TESTS.glob("test_*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        counts[path.name] = {
            "functions": sum(isinstance(node, ast.FunctionDef) and node.name.startswith("test_")
                             for node in ast.walk(tree)),
            "asserts": sum(isinstance(node, ast.Assert) for node in ast.walk(tree)),
        }
    return counts


def stand_in(directory: Path) -> dict[str, str]:
    """A molecule-like inventory of the stack scenario under `directory`, and the verifier's environment."""
    scenario = yaml.safe_load(SCENARIO.read_text(encoding="utf-8"))
    inventory: dict = {"all": {"hosts": {platform["name"]: {} for platform in scenario["platforms"]}}}
    for platform in scenario["platforms"]:
        for group in platform.get("groups", []):
            inventory.setdefault(group, {"hosts": {}})["hosts"][platform["name"]] = {}
    (directory / "inventory" / "group_vars").mkdir(parents=True)
    (directory / "inventory" / "ansible_inventory.yml").write_text(yaml.safe_dump(inventory), encoding="utf-8")
    settings = yaml.safe_load(SETTINGS.read_text(encoding="utf-8"))
    group_vars = {**settings, **{name: "stand-in" for name in SECRETS}}
    (directory / "inventory" / "group_vars" / "all").write_text(yaml.safe_dump(group_vars), encoding="utf-8")
    return {**{name: str(value) for name, value in scenario["verifier"]["env"].items()},
            "MOLECULE_EPHEMERAL_DIRECTORY": str(directory),
            "MOLECULE_INVENTORY_FILE": str(directory / "inventory" / "ansible_inventory.yml")}


class Collector:
    """A pytest plugin that keeps each collected test's file, function and balancer, in run order."""

    def __init__(self) -> None:
        self.items: list[dict[str, str]] = []

    def pytest_collection_finish(self, session) -> None:
        # The part of the run a test goes in is the stack tests' conftest's own rule (kind_of): its
        # balancer's, the balancer of its once_with_balancer marker, or the last part, once.
        conftest = session.config.pluginmanager.get_plugin(str(STACK_TESTS / "conftest.py"))
        for item in session.items:
            callspec = getattr(item, "callspec", None)
            kind = (callspec.params.get("balancer") if callspec else None) or ONCE
            part = conftest.kind_of(item) or ONCE
            self.items.append({"file": Path(str(item.fspath)).name, "function": item.originalname,
                               "kind": kind, "part": part})


def collect() -> tuple[list[str], list[dict[str, str]]]:
    """The balancers of the stack scenario, and its stack tests as collected."""
    import pytest  # the project's venv has it; imported here so that --help needs nothing

    with tempfile.TemporaryDirectory() as directory:
        os.environ.update(stand_in(Path(directory)))
        collector = Collector()
        with contextlib.redirect_stdout(sys.stderr):  # pytest's own listing; stdout is the report
            code = pytest.main(["--collect-only", "-qq", "-p", "no:cacheprovider", "--rootdir",
                                str(REPO / "molecule"), str(STACK_TESTS)], plugins=[collector])
        if code != 0:
            raise SystemExit(f"collecting the stack tests failed (pytest exit {code})")
    return os.environ["STACK_KINDS"].split(), collector.items


def coverage(kinds: list[str], items: list[dict[str, str]]) -> list[dict]:
    """Per test function: its file, its name, and how many tests it makes per balancer and once."""
    rows: dict[tuple[str, str], dict] = {}
    for item in items:
        row = rows.setdefault((item["file"], item["function"]), {
            "file": item["file"], "function": item["function"], **{kind: 0 for kind in [*kinds, ONCE]}, "part": None})
        row[item["kind"]] += 1
        if item["kind"] == ONCE and item["part"] != ONCE:
            row["part"] = item["part"]
    return list(rows.values())


def markdown(kinds: list[str], counts: dict, rows: list[dict], items: list[dict]) -> str:
    columns = [*kinds, ONCE]
    lines = ["| file | test functions | asserts |", "| --- | --- | --- |"]
    lines += [f"| `{name}` | {count['functions']} | {count['asserts']} |" for name, count in counts.items()]
    lines += [f"| all | {sum(c['functions'] for c in counts.values())} | {sum(c['asserts'] for c in counts.values())} |",
              "", f"| test | {' | '.join(columns)} |", f"| --- | {' | '.join('---' for _ in columns)} |"]
    for row in rows:
        lines.append(f"| `{row['file']}::{row['function']}` | "
                     + " | ".join(str(row[column] or "") for column in columns)
                     + (f" (with {row['part']})" if row["part"] else "") + " |")
    totals = {column: sum(1 for item in items if item["kind"] == column) for column in columns}
    lines.append(f"| all ({len(items)} tests) | " + " | ".join(str(totals[column]) for column in columns) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print JSON instead of Markdown tables")
    arguments = parser.parse_args()
    kinds, items = collect()
    counts, rows = census(), coverage(kinds, items)
    if arguments.json:
        print(json.dumps({"kinds": kinds, "census": counts, "coverage": rows,
                          "order": [item["part"] for item in items],
                          "runs": [{"test": f"{item['file']}::{item['function']}", "kind": item["kind"],
                                    "part": item["part"]} for item in items]}))
    else:
        print(markdown(kinds, counts, rows, items))


if __name__ == "__main__":
    sys.exit(main())
