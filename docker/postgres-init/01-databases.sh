#!/bin/sh
# One PostgreSQL server, one login role per purpose, each owning its own database and nothing else:
#
#   role and database  used by                                             password from .env
#   airflow            Airflow metadata: API server, scheduler, DAG         AIRFLOW_DB_PASSWORD
#                      processor, triggerer, airflow-init
#   celery             Celery result backend: scheduler, Celery workers     CELERY_DB_PASSWORD
#   mlflow             MLflow tracking server (runs, registered models)     MLFLOW_DB_PASSWORD
#   features           feature store (MLOPS_FEATURE_STORE=postgres),        FEATURES_DB_PASSWORD
#                      tables features_<use_case> and labels_<use_case>,
#                      written by the workers through mlops_feature_store
#
# The superuser (POSTGRES_USER, POSTGRES_PASSWORD) runs this script and is used by nothing else.
# No role may connect to another's database, create roles or create databases. Airflow, Celery
# and MLflow create their tables on start, the feature store on first write, each as the owner.
#
# The postgres image runs this once, on the first start with an empty volume
# (/docker-entrypoint-initdb.d). It is idempotent: run it again to apply passwords changed in
# .env, or to convert a volume created before the per-purpose roles (tables that another role
# owns are handed over to the database's role):
#   docker compose up -d postgres
#   docker compose exec postgres sh /docker-entrypoint-initdb.d/01-databases.sh
#
# The passwords stay off command lines: psql reads each one from the environment (\getenv).

# A subshell: the image's entrypoint sources (rather than runs) a script without its execute bit,
# and neither `set` nor a failure here may leak into the entrypoint's own shell.
(
    set -eu

    provision() {  # ROLE PASSWORD_VARIABLE
        psql -X -q -v ON_ERROR_STOP=1 --no-password --username "$POSTGRES_USER" --dbname postgres \
            --set=role="$1" --set=password_variable="$2" <<'SQL'
\getenv password :password_variable
SELECT format('CREATE ROLE %I', :'role')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'role') \gexec
ALTER ROLE :"role" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
    PASSWORD :'password';
SELECT format('CREATE DATABASE %I OWNER %I', :'role', :'role')
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'role') \gexec
ALTER DATABASE :"role" OWNER TO :"role";
REVOKE ALL ON DATABASE :"role" FROM PUBLIC;

\connect :"role"
ALTER SCHEMA public OWNER TO :"role";
REVOKE ALL ON SCHEMA public FROM PUBLIC;
-- Tables, views and sequences another role owns (a volume from the single-superuser layout).
-- A sequence that belongs to a column moves with its table and cannot be moved by itself.
SELECT format('ALTER TABLE %I.%I OWNER TO %I', n.nspname, c.relname, :'role')
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_%'
   AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
   AND pg_get_userbyid(c.relowner) <> :'role'
   AND NOT EXISTS (SELECT FROM pg_depend d
                    WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                      AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')) \gexec
-- Enum, domain and range types (MLflow and Airflow migrations may alter the ones they created).
SELECT format('ALTER TYPE %I.%I OWNER TO %I', n.nspname, t.typname, :'role')
  FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_%'
   AND t.typtype IN ('e', 'd', 'r')
   AND pg_get_userbyid(t.typowner) <> :'role' \gexec
SQL
    }

    : "${POSTGRES_USER:?}" "${AIRFLOW_DB_PASSWORD:?}" "${CELERY_DB_PASSWORD:?}" \
        "${MLFLOW_DB_PASSWORD:?}" "${FEATURES_DB_PASSWORD:?}"
    # The maintenance database is the superuser's alone.
    psql -X -q -v ON_ERROR_STOP=1 --no-password --username "$POSTGRES_USER" --dbname postgres \
        -c 'REVOKE CONNECT ON DATABASE postgres FROM PUBLIC'
    provision airflow AIRFLOW_DB_PASSWORD
    provision celery CELERY_DB_PASSWORD
    provision mlflow MLFLOW_DB_PASSWORD
    provision features FEATURES_DB_PASSWORD
    echo "roles and databases airflow, celery, mlflow, features are ready"
)
