package optlock

import (
	"reflect"
	"time"

	"gorm.io/gorm"
)

// settingExpect is the key of an expectation ExpectLocks or ExpectRow leaves on a statement.
const settingExpect = "optlock:expect"

// LockValue is one lock field's value as its column stores it: what [LockValues] reports of a row,
// and what [ExpectLocks] checks a write against. It is the form to carry a row's lock outside the
// process (an HTTP ETag, a hidden form field) and back: plain values, the same whichever driver read
// them.
type LockValue struct {
	// Column is the lock field's column name. ExpectLocks matches values to the write's lock fields by
	// position; a Column that is set must name the field at its position.
	Column string
	// IsTime says the field is a timestamp (updated_at); otherwise it is an integer: a version, or an
	// integer autoUpdateTime.
	IsTime bool
	// Int is an integer field's value; NULL is 0.
	Int int64
	// Time is a timestamp field's value in UTC, at the column's precision; for a column without a time
	// zone (a PostgreSQL timestamp), the wall clock it stores, labelled UTC. NULL is the zero time.
	Time time.Time
}

// expectation is what ExpectLocks or ExpectRow asks of one statement.
type expectation struct {
	stmt *gorm.Statement
	// alternatives are the lock values the row may hold; none with anyValue: whatever it holds.
	alternatives [][]LockValue
	anyValue     bool
}

// LockValues returns the lock values of row, a pointer to one struct read from db (or just written
// through it with a lock-checked write), as its columns store them: the fields a write of it is
// checked on (a [Guard]'s, else the model's version field, else its updated_at), in that order. A
// timestamp is taken at the column's precision (extra digits of a value still in memory since
// Create are truncated; a server that rounds them, as Oracle MySQL does, stores what a re-read shows).
// The same stored row gives the same values through every driver and in every time zone of the
// process (a MySQL DATETIME read with loc=Local is an instant in the process's zone: write and read it
// in one zone). An unusable row or model gives an error wrapping [ErrInvalidLock].
func LockValues(db *gorm.DB, row any) ([]LockValue, error) {
	p, ok := db.Config.Plugins[pluginName].(*Plugin)
	if !ok {
		return nil, errNotRegistered
	}
	v := reflect.ValueOf(row)
	if row == nil || v.Kind() != reflect.Ptr || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return nil, invalidf("row is a %T: pass a pointer to the struct you read", row)
	}
	tx := db.Session(&gorm.Session{NewDB: true}).Model(row) // a statement of its own (Model clones one)
	stmt := tx.Statement
	if err := stmt.Parse(row); err != nil {
		return nil, invalidf("model %T: %v", row, err)
	}
	stmt.ReflectValue = v.Elem()
	names := p.guardsOf()[stmt.Schema.ModelType]
	spec, err := p.lockSpec(stmt, names)
	if err != nil {
		return nil, err
	}
	var binding timeBinding
	if spec.hasWallClock() {
		binding = p.timeBindingOf(stmt, nil)
	}
	values := make([]LockValue, len(spec.locks))
	for j, lf := range spec.locks {
		plain := plainLockValue(lf.kind, lf.field.ReflectValueOf(stmt.Context, stmt.ReflectValue))
		values[j] = LockValue{Column: lf.field.DBName}
		t, isTime := plain.(time.Time)
		if !isTime {
			values[j].Int = plain.(int64)
			continue
		}
		values[j].IsTime = true
		if t.IsZero() {
			continue
		}
		if lf.wallClock {
			t = binding.storedWallClock(t)
		}
		values[j].Time = t.UTC().Truncate(lf.unit)
	}
	return values, nil
}

// ExpectLocks is a scope for the lock-checked write of one row that holds given lock values rather
// than those its struct holds: values a client sent back (an HTTP If-Match), taken from [LockValues]
// when it read the row. The write (Save, Updates, Update, UpdateColumn(s), Delete, [UpdateSafely])
// goes ahead only if the row still holds one of the alternatives; the struct's own lock fields (say,
// a version in a request body) are not looked at, and on success they hold what is now stored. A row
// that is gone is a conflict: under ExpectLocks a Save never inserts. The statement is lock-checked
// even without [WithLock] or a [Guard]; its lock fields are WithLock's, a guard's, or the model's
// default, and the values are matched to them by position.
//
// With one alternative the check is the write itself. With several, the row's lock values are read
// first, and the write is checked against the alternative they hold: a row holding none of them is a
// conflict with nothing written, its current values in [RowConflict].Current. No alternative, a
// value count or kind that does not fit the lock fields, a write of more or less than one row, or of
// a row without a key, gives an error wrapping [ErrInvalidLock] and writes nothing.
func ExpectLocks(alternatives ...[]LockValue) func(*gorm.DB) *gorm.DB {
	kept := make([][]LockValue, len(alternatives))
	for i, a := range alternatives {
		kept[i] = append([]LockValue(nil), a...)
	}
	return expectScope(expectation{alternatives: kept})
}

// ExpectRow is a scope for the write of one row that must exist, whatever its lock values (HTTP's
// If-Match: *): its lock values are read first and the write is checked against them, so it never
// inserts, and a row deleted (or changed) in between is a conflict. Otherwise it is [ExpectLocks].
func ExpectRow() func(*gorm.DB) *gorm.DB {
	return expectScope(expectation{anyValue: true})
}

func expectScope(e expectation) func(*gorm.DB) *gorm.DB {
	return func(db *gorm.DB) *gorm.DB {
		if _, ok := db.Config.Plugins[pluginName]; !ok {
			_ = db.AddError(errNotRegistered)
			return db
		}
		if !e.anyValue && len(e.alternatives) == 0 {
			_ = db.AddError(invalidf("ExpectLocks was given no lock values: pass the values the client read"))
			return db
		}
		tx := db.Set(settingExpect, nil) // the instance whose statement runs
		e.stmt = tx.Statement
		tx.Statement.Settings.Store(settingExpect, e)
		if _, ok := requested(tx); !ok {
			tx.Statement.Settings.Store(settingFields, lockRequest{stmt: tx.Statement})
		}
		return tx
	}
}

// expectationOf returns the statement's own expectation, if it has one.
func expectationOf(stmt *gorm.Statement) (expectation, bool) {
	if v, ok := stmt.Settings.Load(settingExpect); ok {
		if e, ok := v.(expectation); ok && e.stmt == stmt {
			return e, true
		}
	}
	return expectation{}, false
}

// insertForbidden reports a statement under ExpectLocks or ExpectRow: its row must exist.
func insertForbidden(stmt *gorm.Statement) bool {
	_, ok := expectationOf(stmt)
	return ok
}

// refuseExpectedInsert refuses a create under ExpectLocks or ExpectRow: GORM's Save of a row without a
// key creates it.
func refuseExpectedInsert(db *gorm.DB) {
	if db.Error == nil && insertForbidden(db.Statement) {
		_ = db.AddError(invalidf("a write under ExpectLocks or ExpectRow writes an existing row, never inserts: the row has no primary key"))
	}
}

// applyExpectation puts the expected lock values into the snapshot of a statement under ExpectLocks or
// ExpectRow. It reports false when it refused the write (the error is added).
func (p *Plugin) applyExpectation(db *gorm.DB, st *lockState) bool {
	e, ok := expectationOf(db.Statement)
	if !ok {
		return true
	}
	if len(st.snapshot.rows) != 1 {
		_ = db.AddError(invalidf("a write under ExpectLocks or ExpectRow writes one row, not %d", len(st.snapshot.rows)))
		return false
	}
	wanted := make([][]any, len(e.alternatives))
	for i, alt := range e.alternatives {
		values, err := snapshotForm(st.spec, alt)
		if err != nil {
			_ = db.AddError(err)
			return false
		}
		wanted[i] = values
	}
	if len(wanted) == 1 {
		st.snapshot.setLocks(st.spec, wanted[0])
		return true
	}
	stored, found, err := p.readStoredLocks(db, st)
	if err != nil {
		_ = db.AddError(err)
		return false
	}
	if found {
		if e.anyValue {
			st.snapshot.setLocks(st.spec, storedForm(st.spec, stored))
			return true
		}
		for _, w := range wanted {
			if holds(st.spec, stored, w) {
				st.snapshot.setLocks(st.spec, w)
				return true
			}
		}
	}
	row := RowConflict{ID: st.snapshot.key(st.spec, 0), Deleted: !found}
	if found {
		row.Current = storedRow{locks: stored}.current(st.spec)
		row.Locks = storedRow{locks: stored}.lockValues(st.spec)
	}
	st.conflict = &OptimisticLockError{Table: db.Statement.Table}
	st.conflict.add(row)
	_ = db.AddError(st.conflict)
	return false
}

// snapshotForm checks values against the spec's lock fields and returns them as a snapshot holds them.
func snapshotForm(spec *lockSpec, values []LockValue) ([]any, error) {
	if len(values) != len(spec.locks) {
		return nil, invalidf("%d lock values given for %d lock fields", len(values), len(spec.locks))
	}
	out := make([]any, len(values))
	for j, lf := range spec.locks {
		v := values[j]
		if v.Column != "" && v.Column != lf.field.DBName {
			return nil, invalidf("lock value %d is for column %q, the write locks on %q there", j, v.Column, lf.field.DBName)
		}
		if v.IsTime != (lf.kind == timeLock) {
			return nil, invalidf("lock value %d does not fit lock field %s: a timestamp and an integer", j, lf.field.Name)
		}
		if v.IsTime {
			out[j] = v.Time.UTC()
		} else {
			out[j] = v.Int
		}
	}
	return out, nil
}

// storedForm returns stored lock values as a snapshot holds them, NULL as the zero value.
func storedForm(spec *lockSpec, stored []lockValue) []any {
	out := make([]any, len(stored))
	for j, lf := range spec.locks {
		switch s := stored[j]; {
		case lf.kind != timeLock:
			out[j] = s.i
		case s.null:
			out[j] = time.Time{}
		case lf.wallClock:
			out[j] = wallClockAsUTC(s.t)
		default:
			out[j] = s.t
		}
	}
	return out
}

// holds reports whether stored lock values are those of a snapshot, as the database compares them.
func holds(spec *lockSpec, stored []lockValue, snap []any) bool {
	for j, lf := range spec.locks {
		if !sameLockValue(lf, stored[j], snap[j]) {
			return false
		}
	}
	return true
}

// setLocks replaces the lone row's lock values in the snapshot.
func (s *snapshot) setLocks(spec *lockSpec, values []any) {
	copy(s.values[len(spec.keys):len(spec.keys)+len(spec.locks)], values)
}

// readStoredLocks reads the lone row's lock values as stored, and reports whether the row exists
// (and is not soft-deleted). It reads on the write's own connection, inside its transaction: a read on
// another connection of the pool would wait forever on a pool whose every connection is held by such
// a write (one connection, as SQLite is usually run). It takes no lock (no LOCK IN SHARE MODE, whose
// shared lock the UPDATE would then have to upgrade, deadlocking two such writers): the write checks
// the alternative it picks atomically, so a value read from an older snapshot is a conflict, never a
// lost update. Inside the caller's PostgreSQL transaction it runs under a savepoint, so its failure
// cannot abort that transaction.
func (p *Plugin) readStoredLocks(db *gorm.DB, st *lockState) ([]lockValue, bool, error) {
	found := make(map[any]storedRow)
	err, undoErr := p.readUnderSavepoint(db, st.spec.dialect, st.inCallersTx(), "", func() error {
		return readStoredRows(db, st, db.Statement.ConnPool, chunk{0, 1}, false, false, found)
	})
	if err = joinCauses(err, undoErr); err != nil {
		return nil, false, err
	}
	stored, ok := found[st.snapshot.mapKey(st.spec, 0)]
	if !ok || stored.deleted {
		return nil, false, nil
	}
	return stored.locks, true, nil
}

// lockValues returns the stored lock columns as [LockValues] reports them.
func (r storedRow) lockValues(spec *lockSpec) []LockValue {
	out := make([]LockValue, len(r.locks))
	for j, lf := range spec.locks {
		s := r.locks[j]
		out[j] = LockValue{Column: lf.field.DBName, IsTime: lf.kind == timeLock}
		switch {
		case s.null:
		case lf.kind != timeLock:
			out[j].Int = s.i
		case lf.wallClock:
			out[j].Time = wallClockAsUTC(s.t).Truncate(lf.unit)
		default:
			out[j].Time = s.t.UTC().Truncate(lf.unit)
		}
	}
	return out
}
