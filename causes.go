package optlock

import (
	"context"
	"errors"
	"strings"
	"time"
)

// ErrTxAborted matches an error after which the caller's transaction cannot go on: the database
// rolled it back or aborted it (a deadlock or a Galera certification failure, MySQL 1213; a
// serialization failure or deadlock, PostgreSQL 40001 and 40P01), or a bulk write inside it could not
// be undone. Nothing of the transaction may be committed: roll it back and run the whole transaction
// again, as [Transaction] does. It never matches [ErrConflict]; [IsRetryable] is true for it, and the
// database's own error stays reachable with errors.As.
var ErrTxAborted = errors.New("optlock: the transaction was aborted")

// txAbortedError reports a caller's transaction that cannot go on; err is the database's error (or
// the failed undo), never a conflict, so errors.Is(err, ErrConflict) stays false.
type txAbortedError struct {
	reason string
	err    error
}

func (e *txAbortedError) Error() string {
	return "optlock: " + e.reason + ": " + e.err.Error() +
		"; nothing of the transaction may be committed: roll it back and run it again (optlock.Transaction does)"
}

// Is reports whether target is [ErrTxAborted].
func (e *txAbortedError) Is(target error) bool { return target == ErrTxAborted }

func (e *txAbortedError) Unwrap() error { return e.err }

// causes keeps every error of one call reachable with errors.Is and errors.As. GORM's AddError joins a
// second error with "%v; %w", which turns the first into text: a conflict followed by a failed
// ROLLBACK would no longer match ErrConflict.
type causes struct {
	msg  string
	errs []error
}

// Error returns the message, or, when none was fixed, every cause's message joined by "; ".
func (e *causes) Error() string {
	if e.msg != "" {
		return e.msg
	}
	parts := make([]string, len(e.errs))
	for i, err := range e.errs {
		parts[i] = err.Error()
	}
	return strings.Join(parts, "; ")
}
func (e *causes) Unwrap() []error { return e.errs }

// joinCauses returns an error that reaches both first and then.
func joinCauses(first, then error) error {
	switch {
	case first == nil:
		return then
	case then == nil || then == first || errors.Is(then, first):
		return first
	}
	return &causes{errs: []error{first, then}}
}

// afterGORM rebuilds an error GORM made with "%v; %w" from before, the call's error, and a later one
// (a failed ROLLBACK): both stay reachable, and before's message is read when the error is printed,
// so a conflict whose details came later prints them.
func afterGORM(before, after error) error {
	later := errors.Unwrap(after)
	if later == nil {
		later = after
	}
	return &causes{errs: []error{before, later}}
}

// replaceCause swaps old for replacement in err, as it stands or as the first of its causes.
func replaceCause(err, old, replacement error) error {
	if err == old {
		return replacement
	}
	if c, ok := err.(*causes); ok && len(c.errs) > 0 && c.errs[0] == old {
		return &causes{msg: c.msg, errs: append([]error{replacement}, c.errs[1:]...)}
	}
	return err
}

// undoTimeout bounds the commands that undo a write (ROLLBACK TO SAVEPOINT, RELEASE) once the caller's
// context has ended: they must still run, or a bulk write would stay half done.
const undoTimeout = 10 * time.Second

// undoGrace is how long past the caller's deadline (or cancellation) an undo may take. A server that
// answers at all answers a savepoint command in milliseconds (rolling back a 10 000-row write takes
// tens of them), so a second leaves room for a loaded one; a connection that hangs must not keep
// the caller ten seconds past its deadline. An undo that cannot run in time is an error saying the
// transaction must be rolled back (ErrTxAborted), never a half-done write.
const undoGrace = time.Second

// undoContext keeps ctx's values but not its cancellation, bounded by undoTimeout and by ctx's
// deadline (or, once ctx has ended, now) plus undoGrace.
func undoContext(ctx context.Context) (context.Context, context.CancelFunc) {
	limit := undoTimeout
	if deadline, ok := ctx.Deadline(); ok {
		limit = min(limit, max(time.Until(deadline), 0)+undoGrace)
	}
	if ctx.Err() != nil {
		limit = min(limit, undoGrace)
	}
	return context.WithTimeout(context.WithoutCancel(ctx), limit)
}

// txKillingError returns the error in err's chain after which a transaction cannot go on: a deadlock
// or serialization failure (MySQL 1213, PostgreSQL 40001/40P01), or nil.
func txKillingError(err error) error {
	var found error
	walk(err, func(e error) bool {
		if isSerializationFailureError(e) {
			found = e
		}
		return found != nil
	})
	return found
}
