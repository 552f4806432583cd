-- Run once by the postgres image on an empty volume: Optuna's database (POSTGRES_DB, "nas")
-- exists already; MLflow's tracking store gets its own, since both keep an alembic_version table.
CREATE DATABASE mlflow OWNER nas;
