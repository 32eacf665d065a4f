vault {
  address     = "https://vault.internal:8200"
  client_cert = "/etc/vault/client.pem"
  client_key  = "/etc/vault/client-key.pem"
}
auto_auth {
  method "cert" {
    mount_path = "auth/cert"
    config = {
      name        = "web"
      client_cert = "/etc/vault/client.pem"
      client_key  = "/etc/vault/client-key.pem"
      reload      = true
    }
  }
}
template {
  destination = "/run/secrets/tls/bundle.pem"
  contents = <<EOT
{{ with pkiCert "pki/issue/web" "common_name=web.internal" "ttl=24h" }}{{ .Cert }}{{ .CA }}{{ .Key }}{{ end }}
EOT
  error_on_missing_key = true
}
