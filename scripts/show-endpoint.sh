#!/usr/bin/env bash
# Print where the lab answers, and what its /health says right now.
set -uo pipefail
url="http://127.0.0.1:8080/health"
echo
echo "rollgate lab is up:  http://127.0.0.1:8080/   https://127.0.0.1:8443/"
echo "curl ${url}"
if ! curl -sS --max-time 5 "${url}"; then
    echo "(no answer yet: the balancer role has not run, or the stack is still starting)"
fi
echo
