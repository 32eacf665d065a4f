# leash config for examples/legacy: psql (or any libpq program) that cannot
# be changed. Two templates render libpq's own files from one credential,
# and two pointers make libpq find them:
#
#   PGSERVICEFILE -> "pgservice", a pg_service.conf with the user name
#   PGPASSFILE    -> "pgpass",    a .pgpass line with the password
#
#   cd examples
#   PGHOST=127.0.0.1 PGDATABASE=app leash -c legacy.hcl -- psql service=app
#
# Template paths are relative to the working directory (on a server use
# absolute ones such as /etc/leash/pgpass.tmpl).

# Both templates read the same path with the same parameters, so they share
# one lease: the user name and the password always belong together.
template = [
  "pgservice=legacy/pg_service.conf.tmpl",
  "pgpass=legacy/pgpass.tmpl",
]
env = [
  "PGSERVICEFILE=pgservice",
  "PGPASSFILE=pgpass",
]

# psql cannot reload a credential: leash restarts it with the new one
# (for a one-shot command the lease usually outlives the run anyway).
on_rotate    = "restart"
stop_signal  = "TERM"
kill_timeout = "10s"
