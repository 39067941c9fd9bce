#!/usr/bin/env bash
# Installs every Debian package Posthorn needs to build, run and test.
# Idempotent: installs only what is missing, runs apt-get update at most once.
#   scripts/deps.sh           install what is missing
#   scripts/deps.sh --check   exit 1 if something is missing, install nothing
#   scripts/deps.sh --bench   also Postfix's tools (smtp-source, smtp-sink) and OpenDKIM
set -euo pipefail

BUILD=(build-essential pkg-config clang clang-format libclang-rt-14-dev
       libevent-dev libssl-dev libc-ares-dev libsqlite3-dev libsodium-dev
       libjansson-dev libinih-dev libcmocka-dev libopendkim-dev libcurl4-openssl-dev zlib1g-dev
       libhiredis-dev libpq-dev)
TEST=(python3 python3-pytest python3-aiosmtpd python3-dkim python3-dnspython opendkim-tools swaks
      libnet-ssleay-perl dnsmasq-base openssl sqlite3 procps util-linux iproute2 nodejs npm
      python3-prometheus-client unbound ldnsutils chromium fail2ban man-db systemd curl
      redis-server postgresql)
BENCH=(postfix strace opendkim)

want=("${BUILD[@]}" "${TEST[@]}")
check=0
for arg in "$@"; do
	case "$arg" in
	--check) check=1 ;;
	--bench) want+=("${BENCH[@]}") ;;
	*) echo "usage: $0 [--check] [--bench]" >&2; exit 2 ;;
	esac
done

# Installed, or provided by an installed package (a Node.js build that
# bundles npm provides "npm"; installing Debian's npm would conflict with it).
installed() {
	dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed" && return 0
	[ -n "$provided" ] || provided=$(dpkg-query -W -f='${Status}|${Provides}\n' 2>/dev/null |
		grep "^install ok installed|" || true)
	grep -Eq "[|,] ?$1( \(|,|\$)" <<<"$provided"
}
provided=""

missing=()
for p in "${want[@]}"; do
	installed "$p" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
	exit 0
fi
if [ $check -eq 1 ]; then
	echo "missing packages: ${missing[*]}" >&2
	exit 1
fi

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
echo "installing: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# Postfix's package would start a system Postfix on port 25, OpenDKIM's its
# milter, unbound's a system resolver on port 53 (and hook it into
# resolv.conf), fail2ban's a fail2ban with Debian's jails; the benchmark
# and the tests run their own instances, so keep package scripts from
# starting services.
if printf '%s\n' "${missing[@]}" | grep -qxE 'postfix|unbound|opendkim|fail2ban'; then
	echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
	printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
	$SUDO chmod +x /usr/sbin/policy-rc.d
	trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
fi
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "installed: ${missing[*]}" >&2
