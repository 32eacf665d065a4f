package main

import (
	"testing"

	"github.com/leash-dev/leash/internal/status"
	"github.com/leash-dev/leash/lease"
)

// status tells lease events apart by their kind's value (it does not
// import lease): the two vocabularies must agree.
func TestStatusEventKinds(t *testing.T) {
	for _, k := range []struct {
		lease  lease.EventKind
		status string
	}{
		{lease.EventIssued, status.KindIssued},
		{lease.EventRenewed, status.KindRenewed},
		{lease.EventRotated, status.KindRotated},
		{lease.EventChanged, status.KindChanged},
		{lease.EventUnchanged, status.KindUnchanged},
		{lease.EventFailed, status.KindFailed},
		{lease.EventLost, status.KindLost},
		{lease.EventDropped, status.KindDropped},
	} {
		if string(k.lease) != k.status {
			t.Errorf("lease kind %q, status kind %q", k.lease, k.status)
		}
	}
}
