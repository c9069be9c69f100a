-- One Postgres serves both metadata stores: Airflow's (created by POSTGRES_DB) and MLflow's.
CREATE DATABASE mlflow;
