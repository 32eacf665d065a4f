# leash config for examples/postgres: an application with a connection pool
# that reloads its database credential on SIGHUP.
#
#   cd examples/postgres && go build -o app .
#   VAULT_ADDR=... VAULT_TOKEN=... leash -c ../postgres.hcl -- ./app
#
# Keys are leash's long flag names with "_" for "-"; a flag on the command
# line wins over its LEASH_* variable, which wins over this file.

# Log in with VAULT_TOKEN (or token_file, or ~/.vault-token). leash does not
# revoke a token it was given, only the leases it created with it.
auth = "token"

# Output "db": the credential as JSON, {"password":"...","username":"..."},
# on /dev/fd/3; the app finds the path in $DB_FILE.
secret = ["db=database/creds/app-readonly"]

# The app swaps pools on SIGHUP, so no restart is needed: leash writes the
# new credential into the same memfd, then sends the signal, and revokes the
# old lease reload_grace later (time for in-flight queries to finish).
on_rotate     = "signal"
reload_signal = "HUP"
reload_grace  = "5s"

# Hand over a new credential when a third of its lifetime is left (the
# default); "25%" or a duration like "10m" work too.
rotate_before = "33%"

# Give up with exit 69 if Vault cannot be reached within this time at start.
startup_timeout = "30s"
