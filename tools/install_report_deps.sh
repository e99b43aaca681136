#!/usr/bin/env bash
# Installs what tests/test_report.py needs beyond the Python package: Debian's headless-capable
# Chromium, used to load the generated report/index.html, catch JavaScript errors and take a
# screenshot. The report itself needs nothing extra (its plots are SVG written by igs-tex).
#
# Idempotent and non-interactive: apt is only touched when chromium is missing.
set -euo pipefail

if ! dpkg-query -W -f='${Status}' chromium 2>/dev/null | grep -q "install ok installed"; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
        SUDO="sudo"
    fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -q
    # Recommends pull in a desktop's worth of fonts and themes the headless test does not need.
    $SUDO apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core
fi

# Fail here, with a clear message, rather than in the middle of the test run.
command -v chromium >/dev/null
chromium --version
