package main

import (
	_ "github.com/alecthomas/kong"
	_ "github.com/hashicorp/go-hclog"
	_ "github.com/hashicorp/hcl/v2"
	_ "github.com/hashicorp/vault/api"
	_ "golang.org/x/sys/unix"
)

func main() {}
