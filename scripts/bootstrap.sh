#!/usr/bin/env bash
# Installs what `make run` and `make test` need on a Debian 12 machine:
# the Debian packages (through apt-get when root, otherwise prints the exact
# command), then a virtual environment in .venv with the project editable.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages: build deps of python-ldap, the real servers and clients the
# gateway manages or the tests drive.
PACKAGES=(
  python3-venv python3-dev build-essential
  libldap2-dev libsasl2-dev
  slapd ldap-utils
  postgresql
  openssl curl testssl.sh isync
  swaks libnet-ssleay-perl libio-socket-ssl-perl
  chromium chromium-driver libnss3-tools
  fonts-dejavu-core
  systemd
  haproxy
)
if [ "${1:-}" = "--bench" ]; then
  PACKAGES+=(postfix dovecot-imapd strace)  # strace: bench/smtp.py --strace counts fsyncs
fi

missing=()
for p in "${PACKAGES[@]}"; do
  if [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)" != "install ok installed" ]; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = "0" ]; then
    echo "bootstrap: installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # slapd, postfix and dovecot must not start system-wide daemons: the
    # gateway and the tests run private instances on their own ports.
    policy=/usr/sbin/policy-rc.d
    created_policy=0
    if [ ! -e "$policy" ]; then
      printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod 755 "$policy" && created_policy=1
    fi
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    [ "$created_policy" = 1 ] && rm -f "$policy"
  else
    echo "bootstrap: missing Debian packages. Run as root:" >&2
    echo "  sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi

# The portal's browser test drives Debian's chromium: say now if it cannot start headless
# rather than as a test failure later.
chromium_dom=$(timeout 60 chromium --headless=new --no-sandbox --disable-gpu --dump-dom \
  about:blank 2>/dev/null || true)
if ! grep -q "<body>" <<<"$chromium_dom"; then
  echo "bootstrap: chromium is installed but does not start headless" \
       "(try: chromium --headless=new --no-sandbox --dump-dom about:blank)" >&2
  exit 1
fi

PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
  echo "bootstrap: Python 3.11 or newer is required ($PYTHON is $("$PYTHON" --version 2>&1))" >&2
  exit 1
fi

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
extras=test
[ "${1:-}" = "--bench" ] && extras=test,bench
.venv/bin/python -m pip install -q -e ".[$extras]"

# A package can be installed and still not work (swaks without Net::SSLeay has no TLS):
# check each tool the tests drive, and name the missing piece here rather than as a test failure.
problems=()
# Each tool's output is captured before it is searched: with pipefail, `tool | grep -q`
# fails at random when grep stops reading before the tool has written everything (SIGPIPE).
swaks_support=$(swaks --support 2>&1 || true)
grep -q "^=== TLS supported" <<<"$swaks_support" \
  || problems+=("swaks has no TLS (needs libnet-ssleay-perl and libio-socket-ssl-perl)")
for tool in slapd slapadd slapcat ldapsearch ldapwhoami mbsync testssl openssl curl \
            pg_dump pg_restore psql chromedriver systemd-analyze haproxy certutil pk12util; do
  command -v "$tool" >/dev/null 2>&1 || [ -x "/usr/sbin/$tool" ] \
    || problems+=("$tool is not on the PATH")
done
haproxy_version=$( { /usr/sbin/haproxy -v || haproxy -v; } 2>/dev/null || true)
grep -q "^HAProxy version" <<<"$haproxy_version" \
  || problems+=("haproxy does not run (package haproxy)")
[ -r /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] \
  || problems+=("DejaVu Sans is missing (package fonts-dejavu-core): PDF receipts need it")
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 \
  || problems+=("PostgreSQL's initdb is missing (package postgresql)")
.venv/bin/python -c 'import ldap, argon2, aiosmtpd, sqlalchemy, asyncpg, uvloop, joserfc, httpx, fpdf, pypdf, xdist' 2>/dev/null \
  || problems+=("the Python environment lacks a module (reinstall with: make clean setup)")
if [ "${1:-}" = "--bench" ]; then
  for tool in postfix dovecot strace; do
    command -v "$tool" >/dev/null 2>&1 || [ -x "/usr/sbin/$tool" ] \
      || problems+=("$tool is not on the PATH (the benchmarks' reference)")
  done
  [ -x .venv/bin/py-spy ] || problems+=("py-spy is missing from .venv (pip extra 'bench')")
fi
if [ ${#problems[@]} -gt 0 ]; then
  printf 'bootstrap: %s\n' "${problems[@]}" >&2
  exit 1
fi

touch .venv/.installed
echo "bootstrap: ready (.venv)"
