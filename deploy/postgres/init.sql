-- Runs once, when the PostgreSQL data volume is first initialised
-- (mounted into /docker-entrypoint-initdb.d by deploy/compose.yaml).
--
-- Database per service: each service owns its data and no tables are shared.
-- Only the empty databases are created here; the tables come from each
-- service's own migrations.
--
-- For brevity the services connect as the POSTGRES_USER superuser in the
-- compose setup. In production give each service its own login role that
-- owns only its own database.

CREATE DATABASE listings;
CREATE DATABASE membership;
CREATE DATABASE notifications;
-- The website's sign-in state (addresses, sessions, signing keys).
CREATE DATABASE gateway;
