package status

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
)

// BrokenError says where an audit trail fails to verify. Line is 1-based;
// File is "" until the caller names it.
type BrokenError struct {
	File string
	Line int
	Msg  string
}

func (e *BrokenError) Error() string {
	return fmt.Sprintf("audit verify %s: line %d: %s", e.File, e.Line, e.Msg)
}

// Run is what Verify found of one run.
type Run struct {
	ID          string
	First, Last int    // line numbers
	Records     uint64 // the last seq
	Ended       bool   // audit_end seen
	next        string // the link the next record must carry
}

// Verify checks r's records run by run: each run begins with its
// audit_start record, whose prev is the link of its run id; every later
// record carries the next seq and the link of the record before it; a run
// ends where the next begins (leash locks the file, so runs never
// interleave). It returns the runs seen, the link of the last record and
// the first break (a *BrokenError, or a read error). With key set every
// run must be keyed with it. With anchor set some record's link must equal
// it.
func Verify(r io.Reader, key []byte, anchor string) (runs []*Run, last string, err error) {
	chain := newChain(key)
	seen := map[string]int{} // run id -> its start line (runs started so far)
	var cur *Run
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	broken := func(line int, format string, args ...any) error {
		return &BrokenError{Line: line, Msg: fmt.Sprintf(format, args...)}
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
		if rec.Event == EventStart {
			if at, ok := seen[rec.Run]; ok {
				return runs, last, broken(line, "run %s starts again (it started at line %d): a copied record", rec.Run, at)
			}
			if seq != 1 {
				return runs, last, broken(line, "audit_start with seq %d, want 1: the line was changed", seq)
			}
			switch {
			case rec.Chain == ChainHMAC && key == nil:
				return runs, last, broken(line, "run %s is keyed (%s): pass its --audit-key-file", rec.Run, ChainHMAC)
			case rec.Chain != ChainHMAC && key != nil:
				return runs, last, broken(line, "run %s is not keyed (chain %q) but --audit-key-file was given: anyone could have rewritten it", rec.Run, rec.Chain)
			case rec.Chain != ChainHMAC && rec.Chain != ChainSHA256:
				return runs, last, broken(line, "run %s: unknown chain %q", rec.Run, rec.Chain)
			}
			if want := chain.link([]byte(rec.Run)); rec.Prev != want {
				if key != nil {
					return runs, last, broken(line, "run %s's seed does not match: a different --audit-key-file, or the record was changed", rec.Run)
				}
				return runs, last, broken(line, "run %s's seed does not match its run id: the record was changed", rec.Run)
			}
			seen[rec.Run] = line
			cur = &Run{ID: rec.Run, First: line}
			runs = append(runs, cur)
		} else {
			switch {
			case cur == nil:
				return runs, last, broken(line, "record of run %s before any audit_start: the head of the file is missing, or the record was spliced in", rec.Run)
			case rec.Run != cur.ID:
				return runs, last, broken(line, "record of run %s inside run %s: spliced in from another run or trail", rec.Run, cur.ID)
			case cur.Ended:
				return runs, last, broken(line, "record after run %s's audit_end: spliced in or moved", cur.ID)
			case seq <= cur.Records:
				return runs, last, broken(line, "seq %d after seq %d: records were reordered or duplicated", seq, cur.Records)
			case seq > cur.Records+1:
				if cur.Records+1 == seq-1 {
					return runs, last, broken(line, "seq %d after seq %d: record %d is missing or out of order", seq, cur.Records, cur.Records+1)
				}
				return runs, last, broken(line, "seq %d after seq %d: records %d-%d are missing or out of order", seq, cur.Records, cur.Records+1, seq-1)
			case rec.Prev != cur.next:
				return runs, last, broken(line, "prev does not match the record at line %d: one of the two was changed", cur.Last)
			}
		}
		cur.Records, cur.Last = seq, line
		cur.next = chain.link(b)
		cur.Ended = rec.Event == EventEnd
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
