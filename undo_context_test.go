package optlock

import (
	"context"
	"testing"
	"time"
)

// The undo must run even once the caller's context has ended, but not long past its deadline: on a
// connection that hangs it would otherwise keep the caller undoTimeout (10 s) past a deadline of any
// length (found by tests/fault_stall_test.go).
func TestUndoContextIsBoundedByTheCallersDeadline(t *testing.T) {
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	soon, cancelSoon := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancelSoon()
	late, cancelLate := context.WithTimeout(context.Background(), time.Hour)
	defer cancelLate()
	cases := []struct {
		name string
		ctx  context.Context
		max  time.Duration
	}{
		{"no deadline", context.Background(), undoTimeout},
		{"deadline in an hour", late, undoTimeout},
		{"deadline in 200ms", soon, 200*time.Millisecond + undoGrace},
		{"cancelled", ended, undoGrace},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := undoContext(c.ctx)
			defer cancel()
			if ctx.Err() != nil {
				t.Fatalf("the undo's context has ended already: %v", ctx.Err())
			}
			deadline, ok := ctx.Deadline()
			if !ok {
				t.Fatal("the undo's context has no deadline")
			}
			if got := time.Until(deadline); got > c.max || got < c.max-100*time.Millisecond {
				t.Errorf("got %s to undo, want %s", got, c.max)
			}
		})
	}
}
