#!/usr/bin/env bash
# Register a ZenML stack that runs sidkit's pipelines on Kubeflow Pipelines (KFP v2).
#   SIDKIT_KFP_HOST=https://kubeflow.example.com/pipeline SIDKIT_BUCKET=gs://my-bucket/sidkit \
#   SIDKIT_REGISTRY=europe-docker.pkg.dev/proj/sidkit SIDKIT_MLFLOW_URI=https://mlflow.example.com \
#     infra/stacks/kubeflow.sh
# Then:  python run.py --overlay configs/overlays/kubeflow.yaml retrain --config configs/retrain_movielens.yaml
# kfp must be installed with the rest of the stack: SIDKIT_EXTRAS=test,kubeflow make setup (kfp 2.17.0).
set -euo pipefail
: "${SIDKIT_KFP_HOST:?set SIDKIT_KFP_HOST (the Kubeflow Pipelines API endpoint)}"
source "$(dirname "$0")/_common.sh"
STACK="${SIDKIT_STACK:-sidkit-kubeflow}"
install_integrations kubeflow
zenml orchestrator register "${STACK}-orchestrator" --flavor=kubeflow \
  --kubeflow_hostname="$SIDKIT_KFP_HOST" ${SIDKIT_K8S_CONTEXT:+--kubernetes_context="$SIDKIT_K8S_CONTEXT"}
register_shared "$STACK"
