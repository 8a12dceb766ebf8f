#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian machine (and CI): system packages, the Python
# environment, and the Kafka broker's jars. Re-running it reuses what is already there.
#   VENV=path  where the virtualenv goes (default .venv)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY=${PYTHON:-python3}

need_apt=()
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
command -v java >/dev/null 2>&1 || need_apt+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || need_apt+=(maven)
# operations kit (infra/deploy): promtool + prometheus for the rule tests and the scrape
# test, docker-compose to validate the compose file
command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
command -v docker-compose >/dev/null 2>&1 || need_apt+=(docker-compose)
# the analyst console's browser test: Debian's Chromium and its driver (no browser downloads)
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need_apt+=(chromium-driver)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing system packages: ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating virtualenv $VENV"
  "$PY" -m venv "$VENV"
fi
stamp="$VENV/.fraudstream-installed"
want=$(cat pyproject.toml | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing Python dependencies (first time takes a minute or two)"
  start=$(date +%s)
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q -e '.[dev]'
  echo "$want" > "$stamp"
  echo "setup: Python dependencies installed in $(( $(date +%s) - start ))s ($(du -sh "$VENV" | cut -f1))"
fi
# helm (chart lint/render tests), built once from the Go module proxy, cached across runs
HELM_VERSION=${HELM_VERSION:-v3.22.0}
HELM_BIN=${FRAUDSTREAM_TOOLS:-$HOME/.cache/fraudstream/bin}
if [ ! -x "$HELM_BIN/helm" ] || ! "$HELM_BIN/helm" version --short 2>/dev/null | grep -q "^${HELM_VERSION%.*}"; then
  [ -x /usr/local/go/bin/go ] && PATH="$PATH:/usr/local/go/bin"
  if ! command -v go >/dev/null 2>&1; then
    echo "setup: installing golang-go to build helm"
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq golang-go >/dev/null
  fi
  echo "setup: building helm $HELM_VERSION from the Go module proxy (a few minutes, once)"
  start=$(date +%s)
  mkdir -p "$HELM_BIN"
  (cd /tmp && GOBIN="$HELM_BIN" go install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION")
  echo "setup: helm built in $(( $(date +%s) - start ))s"
fi
"$VENV/bin/fraudstream" setup
