package optlock

import (
	"errors"
	"fmt"
	"sort"
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
	// Rows tells, for each key in ConflictIDs and in the same order, whether the row was changed (and
	// what its lock fields hold now) or is gone.
	Rows []RowConflict
	// DetailsErr, when set, is why the rows' state could not be read after the write was refused (a
	// failed query, an ended context). ConflictIDs then names every row of the write, each with
	// Unknown set. Unwrap returns it, so errors.As reaches the database's error.
	DetailsErr error
	// DatabaseErr, when set, is the database's own refusal of the whole write, outside the caller's
	// transaction: a serialization failure or deadlock with a concurrent transaction (PostgreSQL
	// 40001/40P01, MySQL 1213, a Galera certification failure). ConflictIDs then names every row of
	// the write, each with Unknown set: all of them were refused. Unwrap returns it, so errors.As
	// reaches the driver's error.
	DatabaseErr error
}

// RowConflict describes one conflicting row of an [OptimisticLockError].
type RowConflict struct {
	// ID is the row's primary key, as in ConflictIDs.
	ID any
	// Deleted is true when the row no longer exists, or is soft-deleted.
	Deleted bool
	// Current holds, for a changed row, its lock columns as now stored, by column name.
	Current map[string]any
	// Locks holds the same lock values typed, as [LockValues] reports a row: the same whichever
	// driver read them (Current's types are the driver's). Nil unless Current is set.
	Locks []LockValue
	// Unknown is true when the row's state could not be read (see DetailsErr), or the database refused
	// the whole write (see DatabaseErr): the write was refused because this row or another of the same
	// write changed, was deleted, or was being written concurrently.
	Unknown bool
}

func (e *OptimisticLockError) add(row RowConflict) {
	e.ConflictIDs = append(e.ConflictIDs, row.ID)
	e.Rows = append(e.Rows, row)
}

// Error describes the conflict in one line, naming up to ten of the conflicting keys.
func (e *OptimisticLockError) Error() string {
	var b strings.Builder
	if e.DatabaseErr != nil {
		fmt.Fprintf(&b, "optlock: the database refused the write of %d row(s) of table %q because of a concurrent transaction (%v), primary keys ", len(e.ConflictIDs), e.Table, e.DatabaseErr)
		writeIDs(&b, e.ConflictIDs)
		b.WriteString("; nothing was written: re-read the rows and retry")
		return b.String()
	}
	if e.DetailsErr != nil {
		fmt.Fprintf(&b, "optlock: the write of %d row(s) of table %q was refused: one or more changed or were deleted since read, but which could not be read (%v), primary keys ", len(e.ConflictIDs), e.Table, e.DetailsErr)
		writeIDs(&b, e.ConflictIDs)
		b.WriteString("; nothing was written: re-read the rows and retry")
		return b.String()
	}
	if len(e.ConflictIDs) == 1 {
		fmt.Fprintf(&b, "optlock: row %v of table %q ", e.ConflictIDs[0], e.Table)
		switch {
		case len(e.Rows) != 1:
			b.WriteString("was changed or deleted since it was read")
		case e.Rows[0].Deleted:
			b.WriteString("was deleted since it was read")
		default:
			b.WriteString("was changed since it was read")
			writeCurrent(&b, e.Rows[0].Current)
		}
		b.WriteString("; nothing was written: re-read it and retry")
		return b.String()
	}
	deleted := 0
	for _, r := range e.Rows {
		if r.Deleted {
			deleted++
		}
	}
	fmt.Fprintf(&b, "optlock: %d rows of table %q changed or deleted since read", len(e.ConflictIDs), e.Table)
	if len(e.Rows) > 0 {
		fmt.Fprintf(&b, " (%d changed, %d deleted)", len(e.Rows)-deleted, deleted)
	}
	b.WriteString(", primary keys ")
	writeIDs(&b, e.ConflictIDs)
	b.WriteString("; nothing was written: re-read the rows and retry")
	return b.String()
}

// writeIDs appends up to maxIDsInMessage keys, and how many more there are.
func writeIDs(b *strings.Builder, ids []any) {
	for i, id := range ids {
		if i == maxIDsInMessage {
			fmt.Fprintf(b, " and %d more", len(ids)-maxIDsInMessage)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprint(b, id)
	}
}

// writeCurrent appends " (version is now 5)" for the current lock values, in column order.
func writeCurrent(b *strings.Builder, current map[string]any) {
	if len(current) == 0 {
		return
	}
	columns := make([]string, 0, len(current))
	for c := range current {
		columns = append(columns, c)
	}
	sort.Strings(columns)
	b.WriteString(" (")
	for i, c := range columns {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(b, "%s is now %v", c, current[c])
	}
	b.WriteString(")")
}

// Is reports whether target is [ErrConflict], so errors.Is recognises every conflict.
func (e *OptimisticLockError) Is(target error) bool { return target == ErrConflict }

// Unwrap returns DatabaseErr, the database's refusal of the write, or DetailsErr, why the
// conflict's details could not be read (never both: a write the database refused has no details read).
func (e *OptimisticLockError) Unwrap() error {
	if e.DatabaseErr != nil {
		return e.DatabaseErr
	}
	return e.DetailsErr
}

// ErrNotMatched matches a lock-checked write that was refused although every row still holds what was
// read: the statement's other conditions (the caller's Where, a scope) excluded the rows. Nothing was
// written. It is not a conflict, and a retry would do the same: it never matches [ErrConflict].
var ErrNotMatched = errors.New("optlock: the rows did not match the statement's other conditions")

// notMatchedError names the rows that still hold what was read but were not written.
type notMatchedError struct {
	table string
	ids   []any
}

func (e *notMatchedError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "optlock: %d row(s) of table %q still hold what was read, but the statement's other conditions (its Where clause or scopes) excluded them, primary keys ", len(e.ids), e.table)
	writeIDs(&b, e.ids)
	b.WriteString("; nothing was written. This is not a conflict: check the conditions")
	return b.String()
}

// Is reports whether target is [ErrNotMatched].
func (e *notMatchedError) Is(target error) bool { return target == ErrNotMatched }

// invalidf returns an error wrapping [ErrInvalidLock] with a message that says what to do.
func invalidf(format string, args ...any) error {
	// format reaches Sprintf as it is, so go vet checks every call's format against its arguments.
	return fmt.Errorf("%w: %s", ErrInvalidLock, fmt.Sprintf(format, args...))
}
