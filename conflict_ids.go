package optlock

import (
	"database/sql"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
	"gorm.io/gorm/schema"
)

var deletedAtType = reflect.TypeOf(gorm.DeletedAt{})

// fillConflicts tells, for every row of a refused write, whether it was changed (and to what) or is
// gone. It runs once nothing of the write is left, on the connection that took the write (pool), with
// one plain SELECT of the keys and lock columns (per chunk of rows, if they need more bind parameters
// than one statement takes), compared with the snapshot in Go: linear in the rows on every database.
//
//	SELECT id, version FROM items WHERE id IN (...)
//
// The SELECT goes out on pool directly, not through GORM's query callbacks, which could route it to a
// lagging read replica. When it fails, the conflict names every row of the write, state unknown, and
// keeps the error. Inside the caller's transaction on a database where an error aborts it
// (PostgreSQL) the SELECT runs under a savepoint (guard, the write's, or one of its own:
// readUnderSavepoint), so a failed SELECT does not abort the caller's transaction.
func (p *Plugin) fillConflicts(db *gorm.DB, st *lockState, pool gorm.ConnPool, guard string) {
	st.findConflicts = false
	readErr, undoErr := p.readUnderSavepoint(db, st.spec.dialect, st.inCallersTx(), guard, func() error {
		return p.readConflicts(db, st, pool)
	})
	if readErr != nil {
		st.conflict.unknown(st, readErr)
	}
	st.tx.err = joinCauses(st.tx.err, undoErr)
}

// unknown makes e name every row of the write, state unknown, because err kept them from being read.
func (e *OptimisticLockError) unknown(st *lockState, err error) {
	e.ConflictIDs, e.Rows, e.DetailsErr = nil, nil, err
	for i := range st.snapshot.rows {
		e.add(RowConflict{ID: st.snapshot.key(st.spec, i), Unknown: true})
	}
}

// readConflicts reads the stored rows and adds to st.conflict every row that no longer holds what was
// read. It returns the first error of the query or of scanning.
func (p *Plugin) readConflicts(db *gorm.DB, st *lockState, pool gorm.ConnPool) error {
	rows := len(st.snapshot.rows)
	perQuery := max(1, p.bindVarLimitFor(st.spec.dialect)/len(st.spec.keys))
	// Only refused rows come back: a row not found holds what was read.
	filtered := st.spec.dialect.comparesInSQL(lockPredicate{spec: st.spec, values: st.snapshot.values})
	if filtered {
		perQuery = rows
	}
	found := make(map[any]storedRow)
	for start := 0; start < rows; start += perQuery {
		c := chunk{start, min(start+perQuery, rows)}
		if err := readStoredRows(db, st, pool, c, filtered, true, found); err != nil {
			return err
		}
	}
	for i := range st.snapshot.rows {
		id := st.snapshot.key(st.spec, i)
		stored, ok := found[st.snapshot.mapKey(st.spec, i)]
		if filtered && !ok {
			continue
		}
		if !ok || stored.absent {
			ok = false
			st.absent++
		}
		switch {
		case !ok || stored.deleted:
			st.conflict.add(RowConflict{ID: id, Deleted: true})
		case !st.holdsSnapshot(i, stored.locks):
			st.conflict.add(RowConflict{ID: id, Current: stored.current(st.spec), Locks: stored.lockValues(st.spec)})
		}
	}
	return nil
}

// storedRow is what the conflict query found of one row.
type storedRow struct {
	locks   []lockValue
	deleted bool
	// absent marks a key the filtered query (sqliteDialect.comparesInSQL) reports as not found at all.
	absent bool
}

// current returns the lock columns as stored, by column name, NULL as nil.
func (r storedRow) current(spec *lockSpec) map[string]any {
	m := make(map[string]any, len(r.locks))
	for j, l := range spec.locks {
		m[l.field.DBName] = r.locks[j].goValue(l.field.FieldType)
	}
	return m
}

// readStoredRows reads the rows of chunk c into found, keyed by rowKey; filtered, only those that no
// longer hold what was read (sqliteDialect.comparesInSQL). locking asks, inside a transaction, for a
// read of the latest committed rows (the dialect's lockingRead) rather than the transaction's snapshot.
func readStoredRows(db *gorm.DB, st *lockState, pool gorm.ConnPool, c chunk, filtered, locking bool, found map[any]storedRow) error {
	q := sibling(db)
	q.ConnPool = pool
	q.Clauses = map[string]clause.Clause{}
	// A soft-deleted row is gone, unless the write itself was Unscoped.
	var softDelete *schema.Field
	if !db.Statement.Unscoped {
		softDelete = softDeleteField(q.Schema)
	}

	columns := make([]clause.Column, 0, len(st.spec.keys)+len(st.spec.locks)+1)
	for _, k := range st.spec.keys {
		columns = append(columns, clause.Column{Name: k.field.DBName})
	}
	for _, l := range st.spec.locks {
		columns = append(columns, clause.Column{Name: l.field.DBName})
	}
	if softDelete != nil {
		columns = append(columns, clause.Column{Name: softDelete.DBName})
	}
	if filtered {
		st.spec.dialect.writeChangedRows(q, st, softDelete)
	} else {
		q.AddClause(clause.Select{Columns: columns})
		q.AddClause(clause.From{})
		q.AddClause(clause.Where{Exprs: []clause.Expression{keysIn(st, c)}})
		q.Build("SELECT", "FROM", "WHERE")
	}
	if _, inTx := q.ConnPool.(gorm.TxCommitter); inTx && locking {
		q.SQL.WriteString(st.spec.dialect.lockingRead())
	}

	begin := time.Now()
	var n int64
	rows, err := q.ConnPool.QueryContext(q.Context, q.SQL.String(), q.Vars...)
	defer func() {
		db.Logger.Trace(q.Context, begin, func() (string, int64) {
			return db.Dialector.Explain(q.SQL.String(), q.Vars...), n
		}, err)
	}()
	if err != nil {
		return err
	}
	defer rows.Close()

	keys, locks := len(st.spec.keys), len(st.spec.locks)
	for rows.Next() {
		dest := make([]any, 0, keys+locks+1)
		for _, k := range st.spec.keys {
			dest = append(dest, reflect.New(k.field.FieldType).Interface())
		}
		stored := storedRow{locks: make([]lockValue, locks)}
		for j := range stored.locks {
			dest = append(dest, &stored.locks[j])
		}
		var deletedAt sql.NullTime
		if softDelete != nil {
			dest = append(dest, &deletedAt)
		}
		var present int64
		if filtered {
			dest = append(dest, &present)
		}
		if err = rows.Scan(dest...); err != nil {
			return err
		}
		stored.absent = filtered && present == 0
		key := make([]any, keys)
		for i := range key {
			key[i] = reflect.ValueOf(dest[i]).Elem().Interface()
		}
		stored.deleted = deletedAt.Valid
		found[rowKey(key)] = stored
		n++
	}
	err = rows.Err()
	return err
}

// lockValue scans a stored lock column of any type a driver returns for it, NULL included.
type lockValue struct {
	null  bool
	i     int64
	t     time.Time
	isInt bool
	raw   any
}

// Scan implements sql.Scanner.
func (v *lockValue) Scan(src any) error {
	*v = lockValue{raw: src}
	switch x := src.(type) {
	case nil:
		v.null = true
	case int64:
		v.i, v.isInt = x, true
	case uint64:
		v.i, v.isInt = int64(x), true
	case int32:
		v.i, v.isInt = int64(x), true
	case float64:
		v.i, v.isInt = int64(x), true
	case time.Time:
		v.t = x
	case []byte:
		return v.parse(string(x))
	case string:
		return v.parse(x)
	default:
		return fmt.Errorf("optlock: cannot read a lock value of type %T", src)
	}
	return nil
}

// storedTimeLayouts are the texts SQLite and text protocols store timestamps in.
var storedTimeLayouts = []string{
	"2006-01-02 15:04:05.999999999-07:00",
	"2006-01-02T15:04:05.999999999-07:00",
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02T15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999",
	"2006-01-02T15:04:05.999999999",
}

func (v *lockValue) parse(s string) error {
	if i, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64); err == nil {
		v.i, v.isInt = i, true
		return nil
	}
	for _, layout := range storedTimeLayouts {
		if t, err := time.Parse(layout, strings.TrimSpace(s)); err == nil {
			v.t = t
			return nil
		}
	}
	return fmt.Errorf("optlock: cannot read the stored lock value %q", s)
}

// goValue returns the stored value as the field's Go type where it converts, else as read.
func (v lockValue) goValue(t reflect.Type) any {
	switch {
	case v.null:
		return nil
	case v.isInt:
		if t.Kind() >= reflect.Int && t.Kind() <= reflect.Uint64 {
			return reflect.ValueOf(v.i).Convert(t).Interface()
		}
		return v.i
	case !v.t.IsZero():
		return v.t
	}
	return v.raw
}

// holdsSnapshot reports whether stored lock values are what row i's snapshot holds, as the database
// compares them: NULL as the zero value, a timestamp at the column's precision.
func (st *lockState) holdsSnapshot(i int, stored []lockValue) bool {
	for j, lf := range st.spec.locks {
		if !sameLockValue(lf, stored[j], st.snapshot.lockValue(st.spec, i, j)) {
			return false
		}
	}
	return true
}

func sameLockValue(lf lockField, stored lockValue, snap any) bool {
	if lf.kind == timeLock {
		want, _ := snap.(time.Time)
		if stored.null {
			return want.IsZero()
		}
		return sameInstant(stored.t, want, lf.unit)
	}
	want := asInt64(reflect.ValueOf(snap))
	if stored.null {
		return want == 0
	}
	return stored.isInt && stored.i == want
}

// sameInstant compares a stored timestamp with the snapshot as the database stored it: rounded or
// truncated to the column's precision, and, for a column without a time zone read back as UTC
// wall-clock time, by its wall clock.
func sameInstant(stored, snap time.Time, unit time.Duration) bool {
	for _, s := range []time.Time{snap, snap.Truncate(unit), snap.Round(unit)} {
		if stored.Equal(s) || stored.Equal(time.Date(s.Year(), s.Month(), s.Day(), s.Hour(), s.Minute(), s.Second(), s.Nanosecond(), stored.Location())) {
			return true
		}
	}
	return false
}

// keysIn is the condition "key IN (the keys of chunk c)": a plain list for one key column, a VALUES
// list of row values for several (PostgreSQL recurses once per element of a row-value IN list, and
// runs out of stack at a few thousand).
func keysIn(st *lockState, c chunk) clause.Expression {
	if len(st.spec.keys) == 1 {
		w := len(st.spec.keys) + len(st.spec.locks)
		values := make([]any, 0, c.end-c.start)
		for i := c.start; i < c.end; i++ {
			values = append(values, st.snapshot.values[i*w])
		}
		return clause.IN{Column: clause.Column{Name: st.spec.keys[0].field.DBName}, Values: values}
	}
	return keyRows{st: st, c: c}
}

// keyRows writes "(a, b) IN (VALUES (?, ?), ...)" (MySQL: without VALUES), casting the first row on
// PostgreSQL so the list has the key columns' types.
type keyRows struct {
	st *lockState
	c  chunk
}

func (k keyRows) Build(b clause.Builder) {
	spec := k.st.spec
	w := len(spec.keys) + len(spec.locks)
	b.WriteByte('(')
	for i, key := range spec.keys {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteQuoted(clause.Column{Name: key.field.DBName})
	}
	b.WriteString(") IN (")
	if spec.dialect.rowList() != rowValueList {
		b.WriteString("VALUES ")
	}
	for r := k.c.start; r < k.c.end; r++ {
		if r > k.c.start {
			b.WriteByte(',')
		}
		b.WriteByte('(')
		row := k.st.snapshot.values[r*w : r*w+len(spec.keys)]
		for i := range row {
			if i > 0 {
				b.WriteByte(',')
			}
			cast := ""
			if r == k.c.start {
				cast = spec.keys[i].castType
			}
			writeBound(b, row[i:i+1], cast)
		}
		b.WriteByte(')')
	}
	b.WriteByte(')')
}

// softDeleteField returns the model's gorm.DeletedAt field, if it has one.
func softDeleteField(s *schema.Schema) *schema.Field {
	if s == nil {
		return nil
	}
	for _, f := range s.Fields {
		if f.FieldType == deletedAtType && f.DBName != "" {
			return f
		}
	}
	return nil
}
