"""The throwaway PostgreSQL cluster the label tests rely on is real and isolated."""

import sqlalchemy as sa


def test_each_pg_url_is_a_fresh_database_on_a_real_server(postgres_cluster, pg_url):
    engine = sa.create_engine(pg_url)
    with engine.connect() as conn:
        version = conn.execute(sa.text("show server_version")).scalar()
        tables = conn.execute(sa.text("select count(*) from pg_tables where schemaname = 'public'")).scalar()
    engine.dispose()
    assert int(version.split(".")[0]) >= 15
    assert tables == 0
    assert pg_url != postgres_cluster.create_database()
