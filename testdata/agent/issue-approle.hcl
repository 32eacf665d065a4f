# The issue's example with approle instead of kubernetes.
vault { address = "https://vault.internal:8200" }
auto_auth {
  method "approle" {
    mount_path = "auth/approle"
    config = {
      role_id_file_path   = "/etc/app/role-id"
      secret_id_file_path = "/etc/app/secret-id"
    }
  }
  sink "file" { config = { path = "/var/run/secrets/vault-token" } }
}
template {
  destination = "/etc/secrets/db-creds"
  contents = <<EOT
{{ with secret "database/creds/app-readonly" }}
DB_USER={{ .Data.username }}
DB_PASS={{ .Data.password }}
{{ end }}
EOT
}
