# leash config for examples/systemd on EC2: the same legacy reporting
# binary, logged in with the instance's IAM role instead of AppRole, so
# there is no secret id to distribute. Credentials come from the instance
# metadata service (IMDSv2) at every login.

auth      = "aws"
auth_role = "legacy-report"
# Vault's auth/aws/config/client iam_server_id_header_value: a signed
# request shown to another server cannot be replayed against this Vault.
aws_iam_server_id = "vault.example.com"

secret = [
  "db_user=database/creds/legacy-report#username",
  "db_password=database/creds/legacy-report#password",
]

on_rotate    = "restart"
stop_signal  = "TERM"
kill_timeout = "20s"

audit_file = "/var/log/leash/legacy-report.audit.jsonl"
