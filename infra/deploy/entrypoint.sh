#!/bin/sh
# Role -> fraudstream command. Anything that is not a role is passed to `fraudstream` as is
# (e.g. `topics`, `retrain --history ...`). The role's ops port is written for the
# HEALTHCHECK (healthcheck.py), which probes /healthz on it. `stream` (alias `stage`) is the
# one-hop stream stage: features and decisions, one per input partition at most.
set -eu
role="${1:-stream}"
[ "$#" -gt 0 ] && shift
port=""
case "$role" in
  stream|stage) port="${FRAUDSTREAM_STREAM_METRICS_PORT:-18084}"
                set -- stream worker --instance "${HOSTNAME:-0}" "$@" ;;
  learner)      port="${FRAUDSTREAM_LEARNER_METRICS_PORT:-18081}"; set -- learner "$@" ;;
  drift)        port="${FRAUDSTREAM_DRIFT_METRICS_PORT:-18082}"; set -- drift monitor "$@" ;;
  monitor)      port="${FRAUDSTREAM_MONITOR_METRICS_PORT:-18085}"; set -- monitor "$@" ;;
  api)          port="${FRAUDSTREAM_API_PORT:-18080}"; set -- api "$@" ;;
  bootstrap)
    # topics, Feast definitions and a first champion on simulated history (once)
    state="${FRAUDSTREAM_STATE_DIR:-/var/lib/fraudstream}"
    if [ ! -f "$state/.bootstrapped" ]; then
      fraudstream simulate --out "$state/history.parquet" --days "${BOOTSTRAP_DAYS:-30}"
      python -c "from pathlib import Path; from infra.bootstrap import bootstrap; \
from infra.settings import Settings; print('champion v' + bootstrap(Settings(), \
Path('$state/history.parquet')))"
      touch "$state/.bootstrapped"
    fi
    exit 0 ;;
  mlflow)
    exec mlflow server --host 0.0.0.0 --port "${MLFLOW_PORT:-5000}" \
      --backend-store-uri "${MLFLOW_BACKEND_STORE_URI:-sqlite:////var/lib/fraudstream/mlflow.db}" \
      --artifacts-destination "${MLFLOW_ARTIFACTS_DESTINATION:-/var/lib/fraudstream/artifacts}" \
      --serve-artifacts "$@" ;;
  *) set -- "$role" "$@" ;;
esac
echo "$port" > "${HEALTH_PORT_FILE:-/tmp/fraudstream-health-port}"
exec fraudstream "$@"
