#!/usr/bin/env bash
# Print where the lab answers, and what its /health says right now.
# A balancer pair (make up LB_HOSTS=2) answers on its floating address too: 127.0.0.1:8080 is published
# by lb1 alone and cannot follow the address to lb2.
set -uo pipefail
cd "$(dirname "$0")/.."
show_health() {
    echo "curl $1"
    if ! curl -sS --max-time 5 "$1"; then
        echo "(no answer yet: the balancer role has not run, or the stack is still starting)"
    fi
    echo
}
echo
echo "rollgate lab is up:  http://127.0.0.1:8080/   https://127.0.0.1:8443/"
show_health "http://127.0.0.1:8080/health"
# The inventory's lb_vip (set only for a pair): empty, or undefined, with one lb host.
vip=$(ansible -i inventories/lab lb1 -m ansible.builtin.debug -a var=lb_vip 2>/dev/null \
    | sed -n 's/.*lb_vip"\{0,1\}: "\{0,1\}\([0-9.]*\).*/\1/p')
if [ -n "${vip}" ]; then
    echo "the balancer pair's floating address (send traffic here; 127.0.0.1:8080 is lb1 alone):  http://${vip}/"
    show_health "http://${vip}/health"
fi
