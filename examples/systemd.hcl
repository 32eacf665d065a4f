# leash config for examples/systemd: a legacy reporting binary on a VM,
# logged in with AppRole. The unit (examples/systemd/legacy-report.service)
# has systemd load the role id and secret id into the service's private
# credentials directory, /run/credentials/legacy-report.service (%d).

auth           = "approle"
auth_mount     = "approle"
role_id_file   = "/run/credentials/legacy-report.service/role-id"
secret_id_file = "/run/credentials/legacy-report.service/secret-id"

# Two outputs from one path share one lease: the user name on /dev/fd/3 and
# the password on /dev/fd/4, exact bytes, no newline. The binary takes them
# as --db-user-file /dev/fd/3 --db-password-file /dev/fd/4.
secret = [
  "db_user=database/creds/legacy-report#username",
  "db_password=database/creds/legacy-report#password",
]

# The binary reads its credential once at start, so a new one means a
# graceful restart inside the unit (systemd sees leash keep running).
on_rotate    = "restart"
stop_signal  = "TERM"
kill_timeout = "20s"

# An append-only record of issue, renew, rotate and revoke (no secrets).
audit_file = "/var/log/leash/legacy-report.audit.jsonl"
