-- Run once by the postgres image, on the first start with an empty data volume
-- (/docker-entrypoint-initdb.d), as POSTGRES_USER. One server, three databases:
--   airflow   Airflow metadata and the Celery result backend
--   mlflow    the MLflow tracking server's backend store (runs, registered models)
--   features  the feature store (MLOPS_FEATURE_STORE=postgres), tables features_<use_case>
--             and labels_<use_case>, written through the mlops_feature_store connection
-- MLflow creates its own tables on start; the feature store creates its tables on first write.
CREATE DATABASE airflow;
CREATE DATABASE mlflow;
CREATE DATABASE features;
