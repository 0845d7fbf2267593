package optlockhttp

import (
	"errors"
	"net/http"

	"github.com/go-optlock/optlock"
)

// Status returns the HTTP status for err: 412 Precondition Failed for a conflict (the row changed or
// is gone since the client read it: errors.Is(err, optlock.ErrConflict)), 428 Precondition Required
// for [ErrPreconditionRequired], 400 Bad Request for an error wrapping optlock.ErrInvalidLock (a
// malformed If-Match, a tag that does not fit the resource), and 500 Internal Server Error for any
// other error. A nil err is 200.
func Status(err error) int {
	switch {
	case err == nil:
		return http.StatusOK
	case errors.Is(err, ErrPreconditionRequired):
		return http.StatusPreconditionRequired
	case errors.Is(err, optlock.ErrConflict):
		return http.StatusPreconditionFailed
	case errors.Is(err, optlock.ErrInvalidLock):
		return http.StatusBadRequest
	}
	return http.StatusInternalServerError
}

// Conflict describes the row of a refused write: what [CurrentLocks] reads out of a conflict error.
type Conflict struct {
	// ID is the row's primary key (a []any for a composite key).
	ID any
	// Deleted says the row is gone (or soft-deleted).
	Deleted bool
	// Locks are the row's lock values as now stored, typed (nil when Deleted or unknown).
	Locks []optlock.LockValue
	// ETag is the row's current entity tag ("" when Deleted or unknown).
	ETag string
}

// CurrentLocks returns, for an error that reports a refused write (errors.As reaches an
// *optlock.OptimisticLockError), each conflicting row: gone, or its current lock values and ETag,
// typed the same whichever driver read them (unlike RowConflict.Current, whose value types are the
// driver's). It returns nil for any other error.
func CurrentLocks(err error) []Conflict {
	var conflict *optlock.OptimisticLockError
	if !errors.As(err, &conflict) {
		return nil
	}
	out := make([]Conflict, len(conflict.Rows))
	for i, row := range conflict.Rows {
		out[i] = Conflict{ID: row.ID, Deleted: row.Deleted, Locks: row.Locks}
		if row.Locks != nil {
			out[i].ETag = FormatETag(row.Locks)
		}
	}
	return out
}

// CurrentETag returns the current entity tag of the one row a refused write conflicted on, when that
// row still exists: what a client that sent a stale If-Match should compare, or re-read.
func CurrentETag(err error) (string, bool) {
	rows := CurrentLocks(err)
	if len(rows) != 1 || rows[0].ETag == "" {
		return "", false
	}
	return rows[0].ETag, true
}
