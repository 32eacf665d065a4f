vault {
  address         = "https://vault.internal:8200"
  ca_cert         = "/etc/vault/ca.pem"
  ca_path         = "/etc/vault/ca.d"
  tls_server_name = "vault.internal"
  tls_skip_verify = false
  namespace       = "team-a"
  retry { num_retries = 5 }
}
auto_auth {
  method "kubernetes" {
    mount_path = "auth/k8s-prod/"
    namespace  = "team-a"
    config = {
      role       = "app-service-role"
      token_path = "/var/run/secrets/tokens/vault"
    }
  }
}
template {
  source      = "/etc/templates/app.ctmpl"
  destination = "/etc/secrets/app.conf"
  perms       = "0440"
  left_delimiter  = "[["
  right_delimiter = "]]"
  create_dest_dirs = true
  wait { min = "2s" }
}
template {
  destination = "/etc/secrets/app.conf.d/app.conf"
  contents    = "{{ with secret \"secret/data/app\" }}{{ .Data.data.key }}{{ end }}"
  error_fatal = true
}
