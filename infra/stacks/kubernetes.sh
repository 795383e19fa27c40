#!/usr/bin/env bash
# Register a ZenML stack that runs sidkit's pipelines on Kubernetes (one pod per step).
#   SIDKIT_K8S_CONTEXT=my-cluster SIDKIT_BUCKET=s3://my-bucket/sidkit SIDKIT_REGISTRY=123.dkr.ecr.eu-west-1.amazonaws.com \
#   SIDKIT_MLFLOW_URI=https://mlflow.example.com infra/stacks/kubernetes.sh
# Then:  python run.py --overlay configs/overlays/kubernetes.yaml train --config configs/train_beauty_rqvae.yaml
set -euo pipefail
: "${SIDKIT_K8S_CONTEXT:?set SIDKIT_K8S_CONTEXT (kubectl config get-contexts)}"
source "$(dirname "$0")/_common.sh"
STACK="${SIDKIT_STACK:-sidkit-k8s}"
install_integrations kubernetes
zenml orchestrator register "${STACK}-orchestrator" --flavor=kubernetes \
  --kubernetes_context="$SIDKIT_K8S_CONTEXT" --kubernetes_namespace="${SIDKIT_K8S_NAMESPACE:-sidkit}"
register_shared "$STACK"
echo "stack $STACK is active; schedules work here: python run.py schedule --pipeline retraining ..."
