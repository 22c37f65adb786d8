#!/usr/bin/env bash
# chromium.sh installs Debian's chromium package when no Chromium is found,
# for test/e2e's dashboard test (TestDashboard), which drives a headless
# Chromium through the DevTools protocol (chromedp). A browser named by
# DEDUPFN_CHROMIUM, or chromium / chromium-browser on PATH, is reused.
set -euo pipefail

if [[ -n ${DEDUPFN_CHROMIUM:-} && -x ${DEDUPFN_CHROMIUM} ]]; then
	echo "chromium: ${DEDUPFN_CHROMIUM} (DEDUPFN_CHROMIUM) already installed"
	exit 0
fi
for b in chromium chromium-browser; do
	if command -v "$b" >/dev/null 2>&1; then
		echo "chromium: $(command -v "$b") already installed"
		exit 0
	fi
done
command -v apt-get >/dev/null || { echo "chromium: no chromium and no apt-get to install it" >&2; exit 1; }
SUDO=
[[ $(id -u) -eq 0 ]] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
# Another peer script (or another checkout's `make peers`) may hold the dpkg
# lock: wait for it rather than fail.
$SUDO apt-get -o DPkg::Lock::Timeout=300 update -qq
# fonts-liberation gives the headless browser metric-compatible sans and
# mono fonts, so the dashboard screenshot looks the same on every machine.
$SUDO apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends chromium fonts-liberation >/dev/null
command -v chromium >/dev/null || { echo "chromium: apt-get did not install chromium" >&2; exit 1; }
echo "chromium: installed $(command -v chromium) ($(chromium --version 2>/dev/null || echo 'version unknown'))"
