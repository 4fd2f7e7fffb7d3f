#!/usr/bin/env bash
# Install nginx, HAProxy and Apache on this machine for their config checkers only
# (playbooks/generate_lb_config.yml, and check_inventory.yml before every run, run them on what they
# render), and openssl, which makes the throwaway certificate the checked copy names (the balancers do not
# depend on its command). None of them is started: a policy-rc.d that refuses every start is in place while
# the packages install.
set -euo pipefail

packages=(nginx haproxy apache2 libapache2-mod-evasive openssl)
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "${package}" 2>/dev/null | grep -q "install ok installed" || missing+=("${package}")
done
((${#missing[@]})) || exit 0

[[ "$(id -u)" == "0" ]] || { echo "install-checkers: needs root to install ${missing[*]}." >&2; exit 1; }
policy=/usr/sbin/policy-rc.d
if [[ -e "${policy}" ]]; then
    # Leave a policy of the machine's own alone, but only install under one that refuses starts.
    "${policy}" nginx start >/dev/null 2>&1 && rc=0 || rc=$?
    if [[ "${rc}" != "101" ]]; then
        echo "install-checkers: ${policy} allows services to start; install ${missing[*]} by hand." >&2
        exit 1
    fi
else
    printf '#!/bin/sh\nexit 101\n' >"${policy}"
    chmod 0755 "${policy}"
    trap 'rm -f "${policy}"' EXIT
fi
echo "install-checkers: installing ${missing[*]} (not started)"
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || { DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }
