#!/bin/sh
# Writes .env from .env.example with a fresh random value for every empty secret.
# Refuses to overwrite an existing .env. Usage: infra/make-env.sh [path/to/.env]
set -eu
cd "$(dirname "$0")/.."
target="${1:-.env}"
if [ -e "$target" ]; then
    echo "$target exists: edit it, or move it away first" >&2
    exit 1
fi
umask 077
while IFS= read -r line || [ -n "$line" ]; do
    case "$line" in
        \#*) printf '%s\n' "$line" ;;
        *_PASSWORD= | *_SECRET_KEY=)
            printf '%s%s\n' "$line" "$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')" ;;
        *) printf '%s\n' "$line" ;;
    esac
done < .env.example > "$target"
echo "wrote $target (mode 600); set AIRPARADIS_DOMAIN and CADDY_TLS in it"
