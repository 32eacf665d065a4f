package main

import (
	"context"
	"errors"
	"io"
)

// run prints the lease table of a running leash.
func (c *StatusCmd) run(ctx context.Context, w io.Writer) error {
	return &usageError{errors.New("leash status: not implemented yet")}
}
