#!/bin/sh
# Installs what idgraph needs from Debian when it is missing: Python 3.11+ with venv,
# JDK 17+ (to run Neo4j), Maven (to fetch Neo4j's jars once) and Chromium with its driver (for
# the console's browser tests; `IDGRAPH_NO_BROWSER=1` skips it). Safe to re-run.
set -eu

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
packages=""

java_major() {
    java -version 2>&1 | sed -n 's/.*version "\([0-9]*\)\.\{0,1\}\([0-9]*\).*/\1 \2/p' | head -n1 |
        awk '{ if ($1 == 1) print $2; else print $1 }'
}

if ! command -v java >/dev/null 2>&1 || [ "$(java_major)" -lt 17 ]; then
    packages="$packages openjdk-17-jre-headless"
fi
if ! command -v mvn >/dev/null 2>&1; then
    packages="$packages maven"
fi
if [ "${IDGRAPH_NO_BROWSER:-0}" != "1" ]; then
    if ! command -v chromium >/dev/null 2>&1; then
        packages="$packages chromium"
    fi
    if ! command -v chromedriver >/dev/null 2>&1; then
        packages="$packages chromium-driver"
    fi
fi
if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "error: Python 3.11+ is required (found: $(python3 --version 2>&1))" >&2
    exit 1
fi
if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    packages="$packages python3-venv"
fi

if [ -n "$packages" ]; then
    echo "installing from Debian:$packages"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $packages
fi
