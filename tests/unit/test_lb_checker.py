"""Specification of checker_findings: the lines a balancer's checker refuses, named by the variables
they hold. The outputs are the checkers' own, as nginx 1.22, HAProxy 2.6 and Apache 2.4 print them."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from lb_checker import checker_findings

CONFIG = "\n".join(["events {}", "http {", "    client_max_body_size 1 MB;", "    listen 8080;",
                    "    allow 10.0.0.0/33;", "}"])
VARIABLES = {"lb_nginx_client_max_body_size": "1 MB", "lb_http_port": 80, "lb_admin_port": 8080,
             "lb_metrics_allowed_networks": ["127.0.0.1/32", "10.0.0.0/33"], "lb_tls_enabled": True,
             "lb_security_headers": {"X-Frame-Options": "DENY"}}


def test_an_nginx_error_names_the_variable_its_line_holds():
    output = ('nginx: [emerg] invalid number of arguments in "client_max_body_size" directive in '
              "/tmp/x/check/nginx.conf:3\nnginx: configuration file /tmp/x/check/nginx.conf test failed")
    assert checker_findings(output, "nginx.conf", CONFIG, VARIABLES) == [
        {"line": 3, "text": "client_max_body_size 1 MB;", "variables": ["lb_nginx_client_max_body_size"]}]


def test_haproxy_errors_name_each_line_once_and_a_line_of_no_variable_names_none():
    output = ("[ALERT] config : parsing [/tmp/x/check/haproxy.cfg:5] : '10.0.0.0/33' is not a valid IPv4 address.\n"
              "[ALERT] config : parsing [/tmp/x/check/haproxy.cfg:6] : no such ACL : 'metrics_client'.\n"
              "[ALERT] config : parsing [/tmp/x/check/haproxy.cfg:5] : again.")
    assert checker_findings(output, "haproxy.cfg", CONFIG.replace("nginx", "haproxy"), VARIABLES) == [
        {"line": 5, "text": "allow 10.0.0.0/33;", "variables": ["lb_metrics_allowed_networks"]},
        {"line": 6, "text": "}", "variables": []}]


def test_an_apache_error_is_read_from_its_line_of_form():
    output = "AH00526: Syntax error on line 5 of /tmp/rollgate-apache-check.x/sites-enabled/rollgate.conf:"
    assert checker_findings(output, "rollgate.conf", CONFIG, VARIABLES)[0]["variables"] == ["lb_metrics_allowed_networks"]


def test_a_value_inside_a_longer_one_names_only_the_longer():
    """80 is in 8080: the line holds lb_admin_port, not lb_http_port."""
    output = "nginx: [emerg] bind() failed in /tmp/nginx.conf:4"
    assert checker_findings(output, "nginx.conf", CONFIG, VARIABLES)[0]["variables"] == ["lb_admin_port"]


def test_lines_of_other_files_and_beyond_the_end_are_left_out():
    output = "in /etc/nginx/mime.types:3\nin /tmp/nginx.conf:99"
    assert checker_findings(output, "nginx.conf", CONFIG, VARIABLES) == []


def test_variables_must_be_a_mapping():
    with pytest.raises(AnsibleFilterError, match="checker_findings: variables must be a mapping"):
        checker_findings("", "nginx.conf", CONFIG, ["lb_http_port"])
