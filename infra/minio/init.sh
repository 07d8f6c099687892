#!/bin/sh
# One-shot of the compose stack: the bucket MLflow keeps its artifacts in, and the MinIO user
# `mlflow` that may read and write that bucket only. Safe to run again.
set -eu
mc alias set local http://minio:9000 "$MINIO_ROOT_USER" "$MINIO_ROOT_PASSWORD" >/dev/null
mc mb --ignore-existing local/mlflow
mc admin policy create local mlflow-artifacts /mlflow-artifacts-policy.json
mc admin user add local mlflow "$MLFLOW_S3_SECRET_KEY"
if ! mc admin user info local mlflow | grep -q mlflow-artifacts; then
    mc admin policy attach local mlflow-artifacts --user mlflow
fi
echo "bucket mlflow and user mlflow ready"
