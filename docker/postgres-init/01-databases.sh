#!/usr/bin/env bash
# Creates Airflow's metadata database and the engage warehouse, each with its
# own owner, on the compose file's PostgreSQL server. The postgres image runs
# this once, when its data volume is empty (docker-entrypoint-initdb.d).
#
# Names and passwords come from the environment (.env); passwords are passed
# as psql variables and quoted by psql (:'name'), never spliced into SQL text.
set -euo pipefail

: "${AIRFLOW_DB_PASSWORD:?set AIRFLOW_DB_PASSWORD in .env}"
: "${ENGAGE_DB_PASSWORD:?set ENGAGE_DB_PASSWORD in .env}"

psql -v ON_ERROR_STOP=1 --username "${POSTGRES_USER:-postgres}" --dbname "${POSTGRES_DB:-postgres}" \
    -v airflow_db="${AIRFLOW_DB_NAME:-airflow}" -v airflow_user="${AIRFLOW_DB_USER:-airflow}" \
    -v airflow_password="${AIRFLOW_DB_PASSWORD}" \
    -v engage_db="${ENGAGE_DB_NAME:-engage}" -v engage_user="${ENGAGE_DB_USER:-engage}" \
    -v engage_password="${ENGAGE_DB_PASSWORD}" <<'SQL'
CREATE ROLE :"airflow_user" LOGIN PASSWORD :'airflow_password';
CREATE DATABASE :"airflow_db" OWNER :"airflow_user";
CREATE ROLE :"engage_user" LOGIN PASSWORD :'engage_password';
CREATE DATABASE :"engage_db" OWNER :"engage_user";
-- PostgreSQL 15+: only the owner may create objects in a database's public schema.
\connect :"airflow_db"
ALTER SCHEMA public OWNER TO :"airflow_user";
\connect :"engage_db"
ALTER SCHEMA public OWNER TO :"engage_user";
SQL
