#!/bin/sh
# Writes Grafana's admin password to FILE, once per stack; Grafana reads it through
# GF_SECURITY_ADMIN_PASSWORD__FILE (stack/compose.yml, service grafana-init).
#
#   init-admin-password.sh FILE
#
# - FILE exists and is not empty: it is kept. Grafana reads the admin password only
#   when it creates its database, which lives next to FILE (the grafana-data volume),
#   so FILE must go on saying what the database got.
# - Otherwise FILE gets GRAFANA_ADMIN_PASSWORD when that is set, or else 48 random
#   hexadecimal digits (192 bits from /dev/urandom). No password is known in advance.
#
# It runs in the grafana/grafana image (Alpine: busybox sh, od, tr, mv, rm) and in the
# tests with the host's /bin/sh, so it sticks to POSIX sh and those commands.
set -eu

file=${1:?usage: init-admin-password.sh FILE}
directory=${file%/*}

if [ -s "$file" ]; then
    if [ -n "${GRAFANA_ADMIN_PASSWORD:-}" ]; then
        echo "grafana-init: $file already holds the admin password;" \
            "GRAFANA_ADMIN_PASSWORD is ignored (Grafana reads it only when it creates" \
            "its database: change the password in Grafana, or start afresh with python3 tasks.py compose clean)" >&2
    fi
    echo "grafana-init: keeping the admin password in $file"
    exit 0
fi

if [ -e "$directory/grafana.db" ]; then
    echo "grafana-init: Grafana's database already exists, so it keeps the admin password" \
        "it was created with, not the one written now; change it in Grafana" \
        "(or start afresh with python3 tasks.py compose clean)" >&2
fi

# Only the owner (Grafana's user) may read it. Write aside, then rename: Grafana never
# sees a half-written file, and a failure leaves no file behind.
umask 077
partial="$file.partial"
rm -f "$partial"
if [ -n "${GRAFANA_ADMIN_PASSWORD:-}" ]; then
    printf '%s' "$GRAFANA_ADMIN_PASSWORD" >"$partial"
    source=GRAFANA_ADMIN_PASSWORD
else
    od -A n -t x1 -N 24 /dev/urandom | tr -d ' \n' >"$partial"
    source="a random password"
fi
# An empty file would make Grafana fall back to its built-in default password.
if [ ! -s "$partial" ]; then
    rm -f "$partial"
    echo "grafana-init: could not write a password to $partial" >&2
    exit 1
fi
mv -f "$partial" "$file"
echo "grafana-init: wrote $source to $file (python3 tasks.py compose grafana-password prints it)"
