package main

import (
	"os"
	"slices"
	"testing"
)

func TestAbsPaths(t *testing.T) {
	o := Options{TokenFile: "tok", RoleIDFile: "/abs/role", ControlSocket: "ctl/", StatusAddr: "127.0.0.1:8080", AuditFile: "../audit"}
	o.absPaths("/start")
	if o.TokenFile != "/start/tok" || o.RoleIDFile != "/abs/role" || o.ControlSocket != "/start/ctl/" || o.StatusAddr != "127.0.0.1:8080" || o.AuditFile != "/audit" {
		t.Errorf("absPaths: %+v", o)
	}
	o = Options{StatusAddr: "run/status.sock"}
	if o.absPaths("/start"); o.StatusAddr != "/start/run/status.sock" {
		t.Errorf("status socket: %q", o.StatusAddr)
	}
	// --vault, as a Vault Agent config's vault {} sets it.
	o = Options{Vault: []string{"address=unix://proxy.sock", "ca_cert=ca.pem", "ca_path=./ca.d", "client_cert=/abs/c.pem",
		"client_key=k.pem", "tls_server_name=vault.internal", "namespace=team-a"}}
	o.absPaths("/start")
	if want := []string{"address=unix:///start/proxy.sock", "ca_cert=/start/ca.pem", "ca_path=/start/ca.d", "client_cert=/abs/c.pem",
		"client_key=/start/k.pem", "tls_server_name=vault.internal", "namespace=team-a"}; !slices.Equal(o.Vault, want) {
		t.Errorf("--vault: %q, want %q", o.Vault, want)
	}
	for k, v := range map[string]string{"VAULT_CACERT": "ca.pem", "BAO_CLIENT_KEY": "/k", "VAULT_ADDR": "unix://agent.sock",
		"BAO_AGENT_ADDR": "http://x", "VAULT_TOKEN": "t", "AWS_CONFIG_FILE": "aws/config"} {
		t.Setenv(k, v)
	}
	if err := absEnv("/start"); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{"VAULT_CACERT": "/start/ca.pem", "BAO_CLIENT_KEY": "/k", "VAULT_ADDR": "unix:///start/agent.sock",
		"BAO_AGENT_ADDR": "http://x", "VAULT_TOKEN": "t", "AWS_CONFIG_FILE": "/start/aws/config"} {
		if got := os.Getenv(k); got != want {
			t.Errorf("absEnv: %s=%s, want %s", k, got, want)
		}
	}
}
