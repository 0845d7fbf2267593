package optlock

import (
	"errors"
	"fmt"
	"strings"
)

// ErrConflict matches every optimistic lock conflict: errors.Is(err, ErrConflict) is true when a
// lock-checked write was refused because a row changed or was deleted since it was read.
var ErrConflict = errors.New("optlock: optimistic lock conflict")

// ErrInvalidLock is wrapped by every error about bad input or misconfiguration: an unknown or
// malformed lock field, a model without a lock field, a nil or non-pointer model, a zero primary key,
// unsupported values, or a *gorm.DB without the plugin. It never matches [ErrConflict].
var ErrInvalidLock = errors.New("optlock: invalid lock")

// maxIDsInMessage bounds how many keys Error lists, so a conflict on 10 000 rows stays one short line.
const maxIDsInMessage = 10

// OptimisticLockError reports a lock-checked write that was refused, with nothing written: the rows
// named in ConflictIDs were changed or deleted since the caller read them. Re-read them and retry.
// errors.Is(err, ErrConflict) is true for it.
type OptimisticLockError struct {
	// Table is the table the write was aimed at.
	Table string
	// ConflictIDs holds the primary keys of the rows that no longer match what was read, in the order
	// the rows were given: the key itself for a single-column key, a []any per row for a composite key.
	ConflictIDs []any
}

// Error describes the conflict and names up to ten of the conflicting keys.
func (e *OptimisticLockError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "optlock: %d row(s) of table %q changed or deleted since read", len(e.ConflictIDs), e.Table)
	if len(e.ConflictIDs) > 0 {
		b.WriteString(" (primary keys: ")
		for i, id := range e.ConflictIDs {
			if i == maxIDsInMessage {
				fmt.Fprintf(&b, " and %d more", len(e.ConflictIDs)-maxIDsInMessage)
				break
			}
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprint(&b, id)
		}
		b.WriteString(")")
	}
	b.WriteString("; nothing was written: re-read the rows and retry")
	return b.String()
}

// Is reports whether target is [ErrConflict], so errors.Is recognises every conflict.
func (e *OptimisticLockError) Is(target error) bool { return target == ErrConflict }

// invalidf returns an error wrapping [ErrInvalidLock] with a message that says what to do.
func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidLock}, args...)...)
}
