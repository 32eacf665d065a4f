auto_auth {
  method {
    type       = "jwt"
    wrap_ttl   = "5m"
    min_backoff = "1s"
    max_backoff = "1m"
    config = {
      role = "ci"
      path = "/var/run/ci/jwt"
      remove_jwt_after_reading = false
      jwt_read_period = "30s"
    }
  }
  sink "file" {
    config = { path = "/tmp/token" }
  }
}
template_config {
  static_secret_render_interval = "10m"
  exit_on_retry_failure         = true
  lease_renewal_threshold       = 0.75
  max_connections_per_host      = 20
}
template {
  destination          = "/etc/secrets/ci.json"
  error_on_missing_key = false
  contents = <<EOT
{{ with secret "secret/data/ci" }}{{ .Data.data | toJSON }}{{ .Data.data.missing }}{{ end }}
EOT
}
