package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/leash-dev/leash/internal/status"
)

// AuditCmd is `leash audit`.
type AuditCmd struct {
	Verify AuditVerifyCmd `cmd:"" help:"Check the hash chain of an --audit-file, run by run; print the last record's hash to anchor."`
}

// AuditVerifyCmd is `leash audit verify FILE`.
type AuditVerifyCmd struct {
	File         string `arg:"" type:"existingfile" name:"file" help:"The audit file."`
	AuditKeyFile string `name:"audit-key-file" env:"LEASH_AUDIT_KEY_FILE" placeholder:"FILE" help:"The key the runs were written with (HMAC-SHA256 links); then unkeyed runs fail."`
	Anchor       string `name:"anchor" placeholder:"HASH" help:"A hash an earlier verify printed: fail unless the chain still passes through it (detects a cut-off tail)."`
}

// run verifies the file and prints one line per run and the last hash.
func (c *AuditVerifyCmd) run(w io.Writer) error {
	key, err := status.ReadAuditKey(c.AuditKeyFile)
	if err != nil {
		return &configError{err}
	}
	f, err := os.Open(c.File)
	if err != nil {
		return &configError{fmt.Errorf("audit verify: %w", err)}
	}
	defer f.Close()
	runs, last, err := status.Verify(f, key, c.Anchor)
	for _, r := range runs {
		note := "audit_end"
		if !r.Ended {
			note = "no audit_end: leash was killed, or the run's tail was cut off"
		}
		fmt.Fprintf(w, "run %s: lines %d-%d, %d records, %s\n", r.ID, r.First, r.Last, r.Records, note)
	}
	if err != nil {
		var be *status.BrokenError
		if errors.As(err, &be) {
			be.File = c.File
		}
		return err
	}
	if len(runs) == 0 {
		return &status.BrokenError{File: c.File, Line: 1, Msg: "no records"}
	}
	fmt.Fprintf(w, "ok: runs %d; last record at line %d, hash %s\n", len(runs), runs[len(runs)-1].Last, last)
	return nil
}
