#!/usr/bin/env bash
# Vault side of examples/postgres: the database engine, the app-readonly role
# and the policy the application's Vault token needs. Run it once with a Vault
# admin token in the environment (VAULT_ADDR, VAULT_TOKEN). The examples test
# runs this very script against a Vault dev server and a real PostgreSQL.
#
# Settings (environment):
#   PGHOST, PGPORT, PGDATABASE, PGSSLMODE  the database the app uses
#                                          (127.0.0.1, 5432, app, disable)
#   VAULT_PG_USER, VAULT_PG_PASSWORD       the PostgreSQL user Vault creates roles
#                                          with (needs CREATEROLE; vault, "")
#   DEFAULT_TTL, MAX_TTL                   credential lifetime (1h, 24h)
set -euo pipefail

: "${PGHOST:=127.0.0.1}" "${PGPORT:=5432}" "${PGDATABASE:=app}" "${PGSSLMODE:=disable}"
: "${VAULT_PG_USER:=vault}" "${VAULT_PG_PASSWORD:=}"
: "${DEFAULT_TTL:=1h}" "${MAX_TTL:=24h}"

# 1. The database secrets engine, once per Vault.
mounts=$(vault secrets list -format=json)
if [[ $mounts != *'"database/"'* ]]; then
	vault secrets enable database
fi

# 2. How Vault reaches PostgreSQL. In production, follow this with
#    `vault write -force database/rotate-root/app-db` so that only Vault
#    knows the password of the user it connects as.
vault write database/config/app-db \
	plugin_name=postgresql-database-plugin \
	connection_url="postgresql://{{username}}:{{password}}@${PGHOST}:${PGPORT}/${PGDATABASE}?sslmode=${PGSSLMODE}" \
	username="${VAULT_PG_USER}" \
	password="${VAULT_PG_PASSWORD}" \
	allowed_roles=app-readonly

# 3. The role: each read of database/creds/app-readonly creates a PostgreSQL
#    login that can read the public schema and expires with its lease.
vault write database/roles/app-readonly \
	db_name=app-db \
	creation_statements="CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}'; GRANT SELECT ON ALL TABLES IN SCHEMA public TO \"{{name}}\";" \
	default_ttl="${DEFAULT_TTL}" \
	max_ttl="${MAX_TTL}"

# 4. What the application's token may do: read credentials, and revoke the
#    ones leash hands over and retires (Vault's default policy already lets a
#    token renew its own leases, but not revoke them).
vault policy write app-readonly - <<'POLICY'
path "database/creds/app-readonly" {
  capabilities = ["read"]
}
path "sys/leases/revoke" {
  capabilities = ["update"]
}
POLICY

echo "ready: give the app a token with policy app-readonly, e.g."
echo "  vault token create -policy=app-readonly -period=24h"
