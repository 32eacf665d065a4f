auto_auth {
  method "approle" {
    mount_path = "auth/apps"
    config = {
      role_id_file_path                   = "/etc/app/role-id"
      secret_id_file_path                 = "/etc/app/secret-id"
      remove_secret_id_file_after_reading = false
      secret_id_response_wrapping_path    = "auth/apps/role/app/secret-id"
    }
  }
  enable_reauth_on_new_credentials = true
}
exec {
  command = ["/usr/bin/app"]
  restart_on_secret_changes = "always"
}
env_template "DB" {
  contents = "{{ with secret \"database/creds/app\" }}{{ .Data | toJSON }}{{ end }}"
}
