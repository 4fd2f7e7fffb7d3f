"""The postgresql and redis roles applied again (prepare.yml a second time) change nothing: their
idempotence check, with the scenario's passwords full of quotes. The scenario's idempotence phase checks
the app role's; site.yml changing nothing on the stack's database and Redis hosts is a stack test."""

from app_scenario import run_scenario_playbook


def test_the_database_and_redis_roles_applied_again_change_nothing():
    run, output, recap = run_scenario_playbook("prepare.yml")
    assert run.returncode == 0, output[-4000:]
    assert recap == {host: (0, 0) for host in ("ap-app1", "ap-db1", "ap-other1", "ap-redis1")}, (recap, output[-6000:])
