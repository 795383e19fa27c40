# Shared by kubernetes.sh and kubeflow.sh: the stack components that do not depend on the orchestrator.
# Usage: source _common.sh; install_integrations <orchestrator integration>; register_shared "$STACK"
: "${SIDKIT_BUCKET:?set SIDKIT_BUCKET (s3://... or gs://...)}"
: "${SIDKIT_REGISTRY:?set SIDKIT_REGISTRY (container registry URI)}"
: "${SIDKIT_MLFLOW_URI:?set SIDKIT_MLFLOW_URI (a shared MLflow tracking server)}"

install_integrations() {
  case "$SIDKIT_BUCKET" in
    s3://*) STORE_FLAVOR=s3; zenml integration install -y "$1" s3 mlflow ;;
    gs://*) STORE_FLAVOR=gcp; zenml integration install -y "$1" gcp mlflow ;;
    *) echo "SIDKIT_BUCKET must start with s3:// or gs://" >&2; exit 2 ;;
  esac
}

register_shared() {  # $1: stack name; registers store, registry, image builder, MLflow, then the stack
  local stack="$1"
  zenml artifact-store register "${stack}-store" --flavor="$STORE_FLAVOR" --path="$SIDKIT_BUCKET"
  zenml container-registry register "${stack}-registry" --flavor=default --uri="$SIDKIT_REGISTRY"
  zenml image-builder register "${stack}-builder" --flavor=local
  zenml experiment-tracker register "${stack}-mlflow" --flavor=mlflow --tracking_uri="$SIDKIT_MLFLOW_URI" \
    --tracking_username="${SIDKIT_MLFLOW_USER:-sidkit}" --tracking_password="${SIDKIT_MLFLOW_PASSWORD:-}"
  zenml stack register "$stack" -o "${stack}-orchestrator" -a "${stack}-store" -c "${stack}-registry" \
    -i "${stack}-builder" -e "${stack}-mlflow" --set
}
