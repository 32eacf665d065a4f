package main

import (
	"os"
	"path/filepath"
	"strings"
)

// leash leaves the directory it was started in once the child runs, as
// dumb-init does, so that it never keeps a file system busy: unmounting
// the directory works while leash runs (issue 23). Every relative path the
// user gave is made absolute against that directory first, and the child
// starts, and restarts, there.

// absPaths makes o's relative file and socket paths absolute against wd.
// Templates are not among them: they are read before the child starts.
func (o *Options) absPaths(wd string) {
	for _, p := range []*string{&o.TokenFile, &o.RoleIDFile, &o.SecretIDFile, &o.JWTFile,
		&o.AuditFile, &o.AuditKeyFile, &o.ControlSocket, &o.Dir} {
		*p = absPath(wd, *p)
	}
	if strings.Contains(o.StatusAddr, "/") { // a Unix socket (listenStatus)
		o.StatusAddr = absPath(wd, o.StatusAddr)
	}
	// --vault's files (a Vault Agent config's vault {}), as absEnv does
	// for their VAULT_* variables.
	for i, kv := range o.Vault {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "ca_cert", "ca_path", "client_cert", "client_key":
			o.Vault[i] = k + "=" + absPath(wd, v)
		case "address":
			if sock, ok := strings.CutPrefix(v, "unix://"); ok && sock != "" && !filepath.IsAbs(sock) {
				o.Vault[i] = k + "=unix://" + absPath(wd, sock)
			}
		}
	}
}

// absPath returns p made absolute against wd, keeping a trailing slash
// (--control-socket refuses a directory); "" stays "".
func absPath(wd, p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	abs := filepath.Join(wd, p)
	if strings.HasSuffix(p, "/") {
		abs += "/"
	}
	return abs
}

// vaultPathVars are the VAULT_ (and BAO_) variables whose values are files
// or directories read after the start: the client certificate at every
// handshake, and all of them whenever vault/api clones a client (a login),
// which reads the process environment again.
var vaultPathVars = []string{"CACERT", "CAPATH", "CLIENT_CERT", "CLIENT_KEY"}

// vaultAddrVars may name a Unix socket (unix://PATH), dialled at every
// request.
var vaultAddrVars = []string{"ADDR", "AGENT_ADDR"}

// awsPathVars are read from the process environment by the AWS SDK (aws
// auth), at every credential refresh.
var awsPathVars = []string{"AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE"}

// absEnv makes the relative paths in leash's own environment that leash
// reads after the start (vaultPathVars, vaultAddrVars, awsPathVars)
// absolute against wd. The environment, not a copy: vault/api and the AWS
// SDK read it themselves. The child gets the same files.
func absEnv(wd string) error {
	for _, p := range []string{"VAULT_", "BAO_", ""} {
		vars, addrs := vaultPathVars, vaultAddrVars
		if p == "" {
			vars, addrs = awsPathVars, nil
		}
		for _, k := range vars {
			if v := os.Getenv(p + k); v != "" && !filepath.IsAbs(v) {
				if err := os.Setenv(p+k, absPath(wd, v)); err != nil {
					return err
				}
			}
		}
		for _, k := range addrs {
			if sock, ok := strings.CutPrefix(os.Getenv(p+k), "unix://"); ok && sock != "" && !filepath.IsAbs(sock) {
				if err := os.Setenv(p+k, "unix://"+absPath(wd, sock)); err != nil {
					return err
				}
			}
		}
	}
	return nil
}
