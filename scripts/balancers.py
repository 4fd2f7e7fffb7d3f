"""The balancer kinds rollgate knows, for the Python parts: tests, scripts, benchmarks, the lab inventory
and the weight filter. A kind is one file, roles/lb/vars/kinds/<kind>.yml, whose ``__lb_kind`` mapping
the lb role loads too (service, config file, checker, weight range, runtime API or reload); its steps
are roles/lb/tasks/kinds/<kind>/ and its handlers roles/lb/handlers/kinds/<kind>/.

The list of kinds needs only the standard library (the lab inventory runs under the system Python);
a kind's facts need PyYAML, which Ansible brings.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

KINDS_DIR = Path(__file__).resolve().parents[1] / "roles" / "lb" / "vars" / "kinds"


def kinds() -> tuple[str, ...]:
    """Every balancer kind, in name order: the file names under roles/lb/vars/kinds/."""
    return tuple(sorted(path.stem for path in KINDS_DIR.glob("*.yml")))


@cache
def facts(kind: str) -> dict[str, Any]:
    """The ``__lb_kind`` mapping of ``kind`` (its values unrendered: Jinja stays text)."""
    import yaml  # here, not at the top: kinds() must not need it

    if kind not in kinds():
        raise ValueError(f"unknown balancer {kind!r}: expected one of {', '.join(kinds())}")
    return yaml.safe_load((KINDS_DIR / f"{kind}.yml").read_text(encoding="utf-8"))["__lb_kind"]


def service(kind: str) -> str:
    """The systemd service ``kind`` runs as on the balancer host."""
    return facts(kind)["service"]


def max_weight(kind: str) -> int:
    """The highest weight the role renders for ``kind``."""
    return int(facts(kind)["weight_max"])
