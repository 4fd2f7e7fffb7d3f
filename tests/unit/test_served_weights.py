"""testlib.served_weights: nginx's weights as it serves them, from a window of X-Instance answers counted
by molecule/resources/balancer_probe.py and the server lines of the config nginx was reloaded with."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "molecule"))

import testlib  # noqa: E402


def server_line(name: str, weight: int, down: bool = False) -> str:
    address = {"app1": "10.89.0.5", "app2": "10.89.0.6"}[name.split("_")[0]]
    port = name.split("_")[1]
    return (f"        server {address}:{port} weight={weight} max_fails=3 fail_timeout=10s"
            f"{' down' if down else ''};  # {name}")


def window(config: dict[str, int | str], answers: dict[str, int], steady: bool = True) -> str:
    """A probe window: config maps a name to its weight, or to "down"."""
    lines = [server_line(name, 1 if weight == "down" else weight, weight == "down") for name, weight in config.items()]
    return json.dumps({"servers": "\n".join(lines), "answers": answers, "sent": sum(answers.values()) + 2,
                       "steady": steady})


FULL = {"app1_8000": 1, "app1_8001": 1, "app2_8000": 3, "app2_8001": 3}


def test_answers_in_the_configured_shares_give_the_configured_weights():
    answers = {"app1_8000": 11, "app1_8001": 12, "app2_8000": 34, "app2_8001": 33}
    assert testlib.parse_weights("nginx", window(FULL, answers)) == FULL


def test_a_drained_server_that_answers_nothing_weighs_zero_and_the_others_keep_their_weight():
    config = {"app1_8000": "down", "app1_8001": "down", "app2_8000": 3, "app2_8001": 3}
    answers = {"app2_8000": 45, "app2_8001": 45}
    assert testlib.served_weights(window(config, answers)) == {
        "app1_8000": 0, "app1_8001": 0, "app2_8000": 3, "app2_8001": 3}


def test_a_ramp_step_shows_in_the_answers():
    config = {**FULL, "app2_8000": 2, "app2_8001": 2}
    answers = {"app1_8000": 15, "app1_8001": 16, "app2_8000": 29, "app2_8001": 30}
    assert testlib.served_weights(window(config, answers)) == {**FULL, "app2_8000": 2, "app2_8001": 2}


def test_nginx_serving_other_weights_than_its_config_says_shows_in_the_figures():
    """Config written with 3 for app2, but nginx still serves every server alike (not reloaded)."""
    answers = dict.fromkeys(FULL, 22)
    weights = testlib.served_weights(window(FULL, answers))
    assert weights != FULL
    assert weights == dict.fromkeys(FULL, 2)


def test_a_server_served_though_marked_down_is_no_clean_reading_and_the_error_shows_it():
    config = {**FULL, "app1_8000": "down"}
    answers = {"app1_8000": 10, "app1_8001": 10, "app2_8000": 30, "app2_8001": 30}
    with pytest.raises(ValueError, match=r"all of them: \{'app1_8000': 0.88, 'app1_8001': 0.88, 'app2_8000': 2.62"):
        testlib.served_weights(window(config, answers))


def test_a_server_served_that_the_config_does_not_name_shows_in_the_error():
    config = {"app1_8000": 1, "app1_8001": 1}
    answers = {"app1_8000": 30, "app1_8001": 30, "app3_8000": 30}
    with pytest.raises(ValueError, match=r"'app3_8000': 0.67"):
        testlib.served_weights(window(config, answers))


def test_a_window_across_a_reload_or_before_one_cannot_be_weighed():
    answers = {"app1_8000": 11, "app1_8001": 12, "app2_8000": 34, "app2_8001": 33}
    with pytest.raises(ValueError, match="not steady during the window"):
        testlib.served_weights(window(FULL, answers, steady=False))


def test_too_few_answers_cannot_be_weighed_and_the_error_gives_the_counts():
    with pytest.raises(ValueError, match=r"^5 answers of 7 requests, fewer than 40$"):
        testlib.served_weights(window(FULL, {"app2_8000": 5}))


def test_a_share_between_two_weights_is_no_reading():
    """30 of 90 at a total of 8 is 2.67: neither 2 nor 3."""
    answers = {"app1_8000": 12, "app1_8001": 12, "app2_8000": 36, "app2_8001": 30}
    with pytest.raises(ValueError, match=r"between two whole numbers: \{'app2_8001': 2.67\}; all of them"):
        testlib.served_weights(window(FULL, answers))
