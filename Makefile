# rollgate: the commands a user runs. See README.md.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
VENV := $(CURDIR)/.venv
export PATH := $(VENV)/bin:$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
# The lab's vault password (scripts/lab_vault.py prints it, making it once under .cache/), unless one is given.
# Kept out of ansible.cfg, so that an `ansible-vault encrypt` of your own never uses the lab's password.
export ANSIBLE_VAULT_PASSWORD_FILE ?= $(CURDIR)/scripts/lab_vault.py
INVENTORY ?= inventories/lab
# Every molecule scenario; `make molecule SCENARIOS="fresh lb_nginx"` runs fewer, MOLECULE_JOBS=N at a time.
SCENARIOS ?= $(sort $(notdir $(patsubst %/molecule.yml,%,$(wildcard molecule/*/molecule.yml))))

.PHONY: help up bootstrap lab site stage deploy status balancer balancer-restart down faults check test lab-test fresh-machine lint unit app-test molecule services

help:
	@echo "make up        bring the whole lab stack up (bootstrap, lab hosts, site.yml); APP_HOSTS=N sizes it, LB_KIND=haproxy picks its balancer,"
	@echo "               LB_HOSTS=2 a balancer pair behind a floating address, LAB_CONNECTION=ssh reaches its hosts over SSH as deploy with sudo"
	@echo "make test      everything CI checks: make check beside the molecule scenarios, three at a time, the stack first"
	@echo "make check     before every commit (about 5.5 min): the bootstrap on a fresh container, lint, unit and playbook tests, app tests"
	@echo "make lab-test KIND=haproxy [TESTS=test_upgrade.py::test_rolling_deploy_succeeds]"
	@echo "               the stack tests against the running lab (make up first), its balancer switched to KIND"
	@echo "make stage VERSION=X    install version X beside the running one on every app host, nothing restarted"
	@echo "make deploy VERSION=X   rolling, health-gated deploy of version X (playbooks/rolling_deploy.yml)"
	@echo "make status    every instance: version, readiness, balancer weight and state, metrics"
	@echo "make balancer  reconfigure the balancer alone (playbooks/balancer.yml), nothing else changes"
	@echo "make balancer-restart [UPGRADE=1]  restart (upgrade) the balancers one at a time, a pair with no gap"
	@echo "make faults    the fault suite under load on the lab, per balancer (figures, not a test)"
	@echo "make down      remove the lab hosts and their network"

## The lab ---------------------------------------------------------------------------------

bootstrap:
	@bash scripts/bootstrap.sh all

# make up APP_HOSTS=N: a lab of N app hosts; make up LB_KIND=haproxy: the lab's balancer; make up
# LB_HOSTS=2: a balancer pair, lb1 and lb2, behind the floating address .250 of the lab network; make up
# LAB_CONNECTION=ssh: hosts reached over SSH as deploy with sudo, as servers are (podman: as root through
# podman exec). inventories/lab/hosts.py reads them; each is kept for the commands after it.
APP_HOSTS ?=
LB_KIND ?=
LB_HOSTS ?=
LAB_CONNECTION ?=
LAB_DEBIAN ?=

# $(call keep_lab_setting,VARIABLE,file under .cache/): a setting given on the command line, checked by the
# inventory (which exits naming it when bad) before it is kept.
keep_lab_setting = if [ -n "$($(1))" ]; then ROLLGATE_$(1)="$($(1))" python3 inventories/lab/hosts.py > /dev/null \
	&& mkdir -p .cache && echo "$($(1))" > .cache/$(2); fi

lab: bootstrap
	@$(call keep_lab_setting,APP_HOSTS,lab-app-hosts)
	@$(call keep_lab_setting,LB_KIND,lab-lb-kind)
	@$(call keep_lab_setting,LB_HOSTS,lab-lb-hosts)
	@$(call keep_lab_setting,LAB_CONNECTION,lab-connection)
	@$(call keep_lab_setting,LAB_DEBIAN,lab-debian)
	@python scripts/lab_vault.py ensure
	ansible-playbook -i $(INVENTORY) playbooks/lab.yml

site:
	ansible-playbook -i $(INVENTORY) site.yml

up: lab site
	@bash scripts/show-endpoint.sh

stage:
	@test -n "$(VERSION)" || { echo "make stage needs the version to stage: make stage VERSION=1.1.0" >&2; exit 2; }
	ansible-playbook -i $(INVENTORY) playbooks/stage_release.yml -e app_version=$(VERSION)

deploy:
	@test -n "$(VERSION)" || { echo "make deploy needs the version to deploy: make deploy VERSION=1.1.0" >&2; exit 2; }
	ansible-playbook -i $(INVENTORY) playbooks/rolling_deploy.yml -e app_version=$(VERSION)

status:
	ansible-playbook -i $(INVENTORY) playbooks/status.yml

balancer:
	ansible-playbook -i $(INVENTORY) playbooks/balancer.yml

# The balancers restarted one at a time, a pair's holder last after handing its address over; UPGRADE=1 upgrades
# their packages first.
UPGRADE ?=
balancer-restart:
	ansible-playbook -i $(INVENTORY) playbooks/balancer_restart.yml $(if $(UPGRADE),-e lb_restart_upgrade=true)

# Faults under load on the lab (scripts/bench/faults.py): FAULTS_ARGS="--kinds nginx --faults kill_instance".
faults:
	python scripts/bench/faults.py $(FAULTS_ARGS)

down:
	@bash scripts/bootstrap.sh venv
	ansible-playbook -i $(INVENTORY) playbooks/lab_destroy.yml

## Tests -----------------------------------------------------------------------------------

# Everything CI checks. make check runs beside the molecule scenarios, not before them: the stack, the
# longest, takes one slot from the start; make check and then the other scenarios take the other.
test: bootstrap
	@WITH_CHECK=1 bash scripts/run-molecule.sh $(SCENARIOS)
	@echo "make test: all checks passed"

# The loop before every commit: everything in make test but the molecule scenarios. It starts the
# services it needs itself (the app tests' Redis and PostgreSQL).
check: bootstrap fresh-machine lint unit app-test
	@echo "make check: all checks passed"

# The stack tests (molecule/resources/stack_tests) against the running lab: KIND switches its balancer
# first when it runs another (site.yml, keeping the fleet's version); TESTS picks files or tests in that
# folder (default: all of them). The lab is left serving on the inventory's version.
KIND ?=
TESTS ?=
lab-test:
	@bash scripts/bootstrap.sh venv
	python scripts/lab_test.py $(if $(KIND),--kind "$(KIND)") $(TESTS)

# The bootstrap's host step on a fresh Debian 12 container: catches a missing install step that this
# machine, with the packages of earlier runs, would hide.
fresh-machine: bootstrap
	@bash scripts/test-fresh-machine.sh

lint:
	yamllint --strict .
	ansible-lint --profile production

# Unit tests of filters and modules, and the playbooks that run on the controller only. The
# balancers are installed here (never started) so the generator's checkers really run.
unit:
	@bash scripts/install-checkers.sh
	pytest tests -q -n auto

services:
	@bash scripts/test-services.sh start

app-test: services
	pip install -q --disable-pip-version-check -e 'app[test]'
	pytest app/tests -q

molecule:
	@bash scripts/run-molecule.sh $(SCENARIOS)
