"""The balancer driver interface (issue 32): a kind is roles/lb/vars/kinds/<kind>.yml, its steps under
roles/lb/tasks/kinds/<kind>/ and its handlers under roles/lb/handlers/kinds/<kind>/; the shared files
dispatch by name and never test lb_kind."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

import balancers

REPO = Path(__file__).resolve().parents[2]
LB = REPO / "roles" / "lb"
# What every kind's facts say (roles/lb/vars/kinds/<kind>.yml, __lb_kind).
FACTS = {"service", "config_path", "config_file", "template", "checker", "live_check", "render_check_command",
         "weight_max", "runtime", "view_settings"}
# The verbs the shared entry points include by name: tasks/kinds/<kind>/<verb>.yml.
VERBS = {"install", "backends", "serving", "render_check"}
# Handlers every kind has (handlers/main.yml includes them by name); restart and connection_limit only
# for a kind that notifies them.
HANDLERS = {"reload"}
LB_KIND_TEST = re.compile(r"lb_kind *(==|!=|in )")


def test_the_kinds_are_the_choices_of_lb_kind():
    specs = yaml.safe_load((LB / "meta" / "argument_specs.yml").read_text(encoding="utf-8"))["argument_specs"]
    for entry in ("main", "validate", "render"):
        assert sorted(specs[entry]["options"]["lb_kind"]["choices"]) == list(balancers.kinds()), entry
    assert len(balancers.kinds()) >= 3


@pytest.mark.parametrize("kind", balancers.kinds())
def test_each_kind_says_what_the_shared_parts_need(kind):
    facts = balancers.facts(kind)
    assert FACTS <= facts.keys(), FACTS - facts.keys()
    assert isinstance(facts["weight_max"], int) and facts["weight_max"] >= 1
    assert facts["runtime"] in {"api", "reload"}


@pytest.mark.parametrize("kind", balancers.kinds())
def test_each_kind_has_every_verb_and_handler_the_dispatch_includes(kind):
    assert {path.stem for path in (LB / "tasks" / "kinds" / kind).glob("*.yml")} >= VERBS
    assert {path.stem for path in (LB / "handlers" / "kinds" / kind).glob("*.yml")} >= HANDLERS
    # The reader under the entry point status.
    assert (LB / "files" / "kinds" / kind / "view.py").is_file()


def test_every_notified_handler_topic_is_one_the_dispatch_listens_for():
    listened = set()
    for handler in yaml.safe_load((LB / "handlers" / "main.yml").read_text(encoding="utf-8")):
        topics = handler.get("listen", [])
        listened.update([topics] if isinstance(topics, str) else topics)
    notified = set()
    for path in (LB / "tasks").rglob("*.yml"):
        notified.update(re.findall(r"^\s*notify: (.+)$", path.read_text(encoding="utf-8"), re.MULTILINE))
    assert notified and notified <= listened, notified - listened


def test_no_shared_file_tests_the_kind():
    """Done when of issue 32: `grep -rnE "lb_kind *(==|!=|in )" roles/ playbooks/ site.yml` finds nothing
    outside roles/lb/tasks/'s dispatch (tasks/kind.yml, which checks that lb_kind is a known kind)."""
    files = [REPO / "site.yml", *(REPO / "playbooks").rglob("*.yml"), *(REPO / "roles").rglob("*.yml"),
             *(REPO / "roles").rglob("*.j2")]
    found = [f"{path.relative_to(REPO)}:{number}"
             for path in files if path != LB / "tasks" / "kind.yml"
             for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if LB_KIND_TEST.search(line)]
    assert found == []
