#!/usr/bin/env bash
# ensure-package.sh COMMAND PACKAGE: installs Debian's PACKAGE when COMMAND (a command,
# or a file's path) is missing. The suites run real nginx with its Lua module (and
# Chromium); on a fresh machine this brings them.
set -euo pipefail
{ command -v "$1" || [ -e "$1" ]; } >/dev/null && exit 0
if [ "$(id -u)" != 0 ]; then
    echo "$1 is missing: sudo apt-get install $2" >&2
    exit 1
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
