package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
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

// auditBrokenError: the trail does not verify. Line is 1-based.
type auditBrokenError struct {
	File string
	Line int
	Msg  string
}

func (e *auditBrokenError) Error() string {
	return fmt.Sprintf("audit verify %s: line %d: %s", e.File, e.Line, e.Msg)
}

// auditRun is what the verifier knows of one run.
type auditRun struct {
	id          string
	first, last int // line numbers
	seq         uint64
	next        string // the link the next record must carry
	ended       bool   // audit_end seen
}

// run verifies the file and prints one line per run and the last hash.
func (c *AuditVerifyCmd) run(w io.Writer) error {
	key, err := readAuditKey(c.AuditKeyFile)
	if err != nil {
		return &configError{err}
	}
	f, err := os.Open(c.File)
	if err != nil {
		return &configError{fmt.Errorf("audit verify: %w", err)}
	}
	defer f.Close()
	runs, last, err := verifyAudit(f, key, c.Anchor)
	for _, r := range runs {
		note := "audit_end"
		if !r.ended {
			note = "no audit_end: leash was killed, or the run's tail was cut off"
		}
		fmt.Fprintf(w, "run %s: lines %d-%d, %d records, %s\n", r.id, r.first, r.last, r.seq, note)
	}
	if err != nil {
		var be *auditBrokenError
		if errors.As(err, &be) {
			be.File = c.File
		}
		return err
	}
	if len(runs) == 0 {
		return &auditBrokenError{File: c.File, Line: 1, Msg: "no records"}
	}
	fmt.Fprintf(w, "ok: runs %d; last record at line %d, hash %s\n", len(runs), runs[len(runs)-1].last, last)
	return nil
}

// verifyAudit checks r's records run by run: each run begins with its
// audit_start record, whose prev is the link of its run id; every later
// record carries the next seq and the link of the record before it; a run
// ends where the next begins (leash locks the file, so runs never
// interleave). It returns the runs seen, the link of the last record and
// the first break. With key set every run must be keyed with it. With
// anchor set some record's link must equal it.
func verifyAudit(r io.Reader, key []byte, anchor string) (runs []*auditRun, last string, err error) {
	chain := newAuditChain(key)
	seen := map[string]int{} // run id -> its start line (runs started so far)
	var cur *auditRun
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	broken := func(line int, format string, args ...any) error {
		return &auditBrokenError{Line: line, Msg: fmt.Sprintf(format, args...)}
	}
	line := 0
	for sc.Scan() {
		line++
		b := sc.Bytes()
		var rec struct {
			Run   string  `json:"run"`
			Seq   *uint64 `json:"seq"`
			Prev  string  `json:"prev"`
			Event string  `json:"event"`
			Chain string  `json:"chain"`
		}
		if len(bytes.TrimSpace(b)) == 0 {
			return runs, last, broken(line, "empty line")
		}
		if err := json.Unmarshal(b, &rec); err != nil {
			return runs, last, broken(line, "not a JSON record (%v): the line was changed", err)
		}
		if rec.Run == "" || rec.Seq == nil || rec.Prev == "" {
			return runs, last, broken(line, "record without run, seq or prev: not written by a chaining leash, or changed")
		}
		seq := *rec.Seq
		if rec.Event == auditStart {
			if at, ok := seen[rec.Run]; ok {
				return runs, last, broken(line, "run %s starts again (it started at line %d): a copied record", rec.Run, at)
			}
			if seq != 1 {
				return runs, last, broken(line, "audit_start with seq %d, want 1: the line was changed", seq)
			}
			switch {
			case rec.Chain == chainHMAC && key == nil:
				return runs, last, broken(line, "run %s is keyed (%s): pass its --audit-key-file", rec.Run, chainHMAC)
			case rec.Chain != chainHMAC && key != nil:
				return runs, last, broken(line, "run %s is not keyed (chain %q) but --audit-key-file was given: anyone could have rewritten it", rec.Run, rec.Chain)
			case rec.Chain != chainHMAC && rec.Chain != chainSHA256:
				return runs, last, broken(line, "run %s: unknown chain %q", rec.Run, rec.Chain)
			}
			if want := chain.link([]byte(rec.Run)); rec.Prev != want {
				if key != nil {
					return runs, last, broken(line, "run %s's seed does not match: a different --audit-key-file, or the record was changed", rec.Run)
				}
				return runs, last, broken(line, "run %s's seed does not match its run id: the record was changed", rec.Run)
			}
			seen[rec.Run] = line
			cur = &auditRun{id: rec.Run, first: line}
			runs = append(runs, cur)
		} else {
			switch {
			case cur == nil:
				return runs, last, broken(line, "record of run %s before any audit_start: the head of the file is missing, or the record was spliced in", rec.Run)
			case rec.Run != cur.id:
				return runs, last, broken(line, "record of run %s inside run %s: spliced in from another run or trail", rec.Run, cur.id)
			case cur.ended:
				return runs, last, broken(line, "record after run %s's audit_end: spliced in or moved", cur.id)
			case seq <= cur.seq:
				return runs, last, broken(line, "seq %d after seq %d: records were reordered or duplicated", seq, cur.seq)
			case seq > cur.seq+1:
				if cur.seq+1 == seq-1 {
					return runs, last, broken(line, "seq %d after seq %d: record %d is missing or out of order", seq, cur.seq, cur.seq+1)
				}
				return runs, last, broken(line, "seq %d after seq %d: records %d-%d are missing or out of order", seq, cur.seq, cur.seq+1, seq-1)
			case rec.Prev != cur.next:
				return runs, last, broken(line, "prev does not match the record at line %d: one of the two was changed", cur.last)
			}
		}
		cur.seq, cur.last = seq, line
		cur.next = chain.link(b)
		cur.ended = rec.Event == auditEnd
		last = cur.next
		if last == anchor {
			anchor = ""
		}
	}
	if err := sc.Err(); err != nil {
		return runs, last, broken(line+1, "%v", err)
	}
	if anchor != "" {
		return runs, last, broken(line, "no record hashes to --anchor %s: records were removed from the tail, or the anchor is another file's", anchor)
	}
	return runs, last, nil
}
