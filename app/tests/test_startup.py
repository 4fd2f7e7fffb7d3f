"""Many instances starting at once on an empty database: the schema is created once, safely."""

from __future__ import annotations

import psycopg

from support import login


def test_instances_starting_together_migrate_once(launcher, make_database, services: dict[str, str]) -> None:
    database = make_database()
    apps = [launcher.start(f"boot-{n}", wait="none", DB_DATABASE=database) for n in range(4)]
    for app in apps:
        app.wait_ready(timeout=60)
    with psycopg.connect(host=services["DB_HOST"], port=services["DB_PORT"], dbname=database,
                         user=services["DB_USERNAME"], password=services["DB_PASSWORD"]) as conn:
        migrations = conn.execute("SELECT version, count(*) FROM schema_migrations GROUP BY version").fetchall()
        admins = conn.execute("SELECT count(*) FROM users").fetchone()
    assert migrations and all(count == 1 for _, count in migrations)
    assert admins == (1,)
    for app in apps:
        login(app.base_url)
