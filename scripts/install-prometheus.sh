#!/usr/bin/env bash
# Installs Debian's Prometheus when it is missing. Tests start the binary themselves on 127.0.0.1.
set -euo pipefail
if command -v prometheus >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
    # The package's service is not wanted: tests and local mode start their own instances.
    exit 0
fi
echo "prometheus is missing: run 'sudo apt-get install -y --no-install-recommends prometheus'" >&2
exit 1
