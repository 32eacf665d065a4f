# Process supervisor mode: env_template + exec.
vault { address = "http://127.0.0.1:8200" }
auto_auth {
  method "token_file" {
    config = { token_file_path = "/home/app/.vault-token" }
  }
}
template_config {
  static_secret_render_interval = 300
  exit_on_retry_failure         = false
}
env_template "DB_USER" {
  contents             = "{{ with secret \"database/creds/app\" }}{{ .Data.username }}{{ end }}"
  error_on_missing_key = true
}
env_template "DB_PASS" {
  contents        = "<% with secret \"database/creds/app\" %><% .Data.password %><% end %>"
  left_delimiter  = "<%"
  right_delimiter = "%>"
}
env_template "API_KEY" {
  source = "/etc/templates/api-key.ctmpl"
}
exec {
  command                   = ["/usr/bin/app", "--port", "8080"]
  restart_on_secret_changes = "never"
  restart_stop_signal       = "SIGINT"
  env = {
    APP_MODE = "production"
  }
}
