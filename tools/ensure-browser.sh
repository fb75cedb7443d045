#!/usr/bin/env bash
# The browser tests (tests/browser) drive Debian's chromium through Debian's chromium-driver.
# If both are there: nothing to do. If not and we are root with apt-get: install them (and a
# CJK font, so Chinese text renders in the screenshots). Otherwise: one line saying what to
# install, and a non-zero exit, because the tests never skip.
set -euo pipefail

CHROMIUM=/usr/bin/chromium
DRIVER=/usr/bin/chromedriver
PACKAGES=(chromium chromium-driver fonts-wqy-microhei)

have() { [ -x "$CHROMIUM" ] && [ -x "$DRIVER" ]; }

if have; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "ensure-browser: installing ${PACKAGES[*]} with apt-get" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${PACKAGES[@]}" >/dev/null
  have && exit 0
fi
echo "ensure-browser: the browser tests need $CHROMIUM and $DRIVER: install Debian's packages with 'apt-get install chromium chromium-driver fonts-wqy-microhei' (as root)" >&2
exit 1
