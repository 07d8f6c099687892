#!/bin/sh
# Refuses to let the stack start with a weak secret. Run by the compose one-shot `preflight`
# (every service waits for it) with the secrets in its environment; prints names, never values.
# A secret must be at least 16 characters of A-Z a-z 0-9 . _ ~ - (it goes into URLs and
# nats-server's config unescaped) and not a well-known default. `infra/make-env.sh` writes good ones.
set -u
failed=0
for name in $(env | cut -d= -f1 | grep -E '^[A-Z0-9_]+_(PASSWORD|SECRET_KEY)$' | sort); do
    value=$(printenv "$name")
    lowered=$(printf '%s' "$value" | tr 'A-Z' 'a-z')
    problem=""
    case "$lowered" in
        "" ) problem="is empty" ;;
        *change*me* | *changeit* | password* | admin* | secret* | default* | example* | test* | minioadmin* | clickhouse* | grafana* | nats* | airparadis* )
            problem="is a well-known or example value" ;;
    esac
    if [ -z "$problem" ] && [ "${#value}" -lt 16 ]; then
        problem="is shorter than 16 characters"
    fi
    if [ -z "$problem" ] && printf '%s' "$value" | grep -q '[^A-Za-z0-9._~-]'; then
        problem="has characters other than A-Z a-z 0-9 . _ ~ -"
    fi
    if [ -n "$problem" ]; then
        echo "preflight: $name $problem" >&2
        failed=1
    fi
done
if [ "$failed" -ne 0 ]; then
    echo "preflight: fix .env (infra/make-env.sh generates strong values), then start again" >&2
    exit 1
fi
echo "preflight: secrets look fine"
