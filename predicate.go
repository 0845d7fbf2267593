package optlock

import (
	"database/sql/driver"
	"reflect"
	"regexp"
	"time"

	"gorm.io/gorm/clause"
	"gorm.io/gorm/schema"
)

// lockPredicate is the WHERE condition that makes a write conditional on what was read: every row's
// primary key together with the lock values the caller holds. It is a clause.Expression, so GORM
// quotes the columns and binds every value; nothing the caller passes is written into the SQL text
// but the integers of MySQL's bulk form (int_literals.go), formatted from Go integers.
//
//	one row:             id = ? AND version = ?
//	many rows, MySQL:    (id, version) IN ((?, ?), (?, ?)); integers as literals: ((1,7),(2,7))
//	many rows, SQLite:   id IN (?, ?) AND (id, version) IN (VALUES (?, ?), (?, ?))
//	many rows, Postgres: (id, version) IN (VALUES (CAST(? AS bigint), CAST(? AS bigint)), (?, ?))
//
// with integer keys and versions, PostgreSQL binds arrays instead (postgresDialect.compactRows) and
// SQLite one JSON object (sqliteDialect.compactRows), which an UPDATE joins in FROM (joinRows). The
// dialect chooses each form (dialect.go); the caller's own
// conditions go in brackets before it (caller_conditions.go).
//
// PostgreSQL plans a long row-value IN list as a chain of ORs, slow to plan and to JIT-compile; a
// VALUES list is planned as a join on the primary key. MySQL and MariaDB plan a row-value IN as a
// range on the primary key. SQLite scans the whole table for a row-value IN, so it first gets the
// plain list of keys, which it looks up in the primary key; it also prepares a VALUES list about
// twice as fast as a list of row values. An OR chain would hit SQLite's expression-depth limit.
type lockPredicate struct {
	spec *lockSpec
	// values holds, row after row, the key values then the lock values of each row.
	values []any
	// lockInKeyOrder makes a bulk write on PostgreSQL lock its rows in primary-key order first.
	lockInKeyOrder bool
}

// nullable says whether lock field j holds the zero value in some row: that row may store NULL,
// which must match as the zero value does (NULL = 0 is not true in SQL).
func (p lockPredicate) nullable(j int) bool {
	w, k := p.width(), len(p.spec.keys)
	for r := range p.rows() {
		if isZeroLockValue(p.values[r*w+k+j]) {
			return true
		}
	}
	return false
}

func (p lockPredicate) width() int { return len(p.spec.keys) + len(p.spec.locks) }

// castsEveryRow says whether every row of a list needs its lock values wrapped: timestamps, cast on
// PostgreSQL and MySQL, read with julianday() on SQLite.
func (s *lockSpec) castsEveryRow() bool {
	for _, l := range s.locks {
		if l.kind == timeLock && (l.castType != "" || l.julian) {
			return true
		}
	}
	return false
}

// paramsPerRow is how many bind parameters the predicate uses for each row.
func (s *lockSpec) paramsPerRow() int {
	n := len(s.keys) + len(s.locks)
	if s.dialect.keyListFirst() {
		n++
	}
	if s.dialect.locksInKeyOrder() {
		n += len(s.keys) // the key-order lock
	}
	return n
}

// bindsConstant says whether the predicate binds a fixed number of parameters, whatever its rows:
// then no write needs to be split for the database's bind-parameter limit.
func (p lockPredicate) bindsConstant() bool { return p.spec.dialect.compactRows(p) }

func (p lockPredicate) rows() int { return len(p.values) / p.width() }

// Build writes the condition; GORM calls it while building the statement.
func (p lockPredicate) Build(b clause.Builder) {
	if p.rows() == 1 {
		p.buildOne(b)
		return
	}
	if p.spec.dialect.compactRows(p) {
		p.spec.dialect.writeCompactRows(b, p)
		return
	}
	w := p.width()
	if p.lockInKeyOrder && p.spec.dialect.locksInKeyOrder() {
		p.spec.dialect.writeKeyOrderLock(b, p)
		b.WriteString(" AND ")
	}
	if p.spec.dialect.keyListFirst() {
		// The leading key column is enough for the index; the row values below check the rest.
		keys := make([]any, p.rows())
		for r := range keys {
			keys[r] = p.values[r*w]
		}
		b.WriteQuoted(clause.Column{Name: p.spec.keys[0].field.DBName})
		b.WriteString(" IN (")
		b.AddVar(b, keys...)
		b.WriteString(") AND ")
	}
	b.WriteByte('(')
	for i := range w {
		if i > 0 {
			b.WriteByte(',')
		}
		p.writeColumn(b, i, i >= len(p.spec.keys) && p.nullable(i-len(p.spec.keys)))
	}
	b.WriteString(") IN (")
	form := p.spec.dialect.rowList()
	if form != rowValueList {
		b.WriteString("VALUES ")
	}
	typed := form == typedValuesList
	plain := !p.spec.castsEveryRow()
	literals := p.integerLiterals(b)
	for r := range p.rows() {
		if r > 0 {
			b.WriteByte(',')
		}
		row := p.values[r*w : (r+1)*w]
		if literals != nil {
			writeIntLiterals(literals, row)
			continue
		}
		b.WriteByte('(')
		if plain && (r > 0 || !typed) {
			b.AddVar(b, row...) // one call per row: no per-value allocation
		} else {
			for i := range row {
				if i > 0 {
					b.WriteByte(',')
				}
				// In a VALUES list the first row's casts give every column its type.
				p.writeValue(b, row, i, typed && r == 0)
			}
		}
		b.WriteByte(')')
	}
	b.WriteByte(')')
}

func (p lockPredicate) buildOne(b clause.Builder) {
	for i := range p.width() {
		if i > 0 {
			b.WriteString(" AND ")
		}
		p.writeColumn(b, i, i >= len(p.spec.keys) && isZeroLockValue(p.values[i]))
		b.WriteString(" = ")
		p.writeValue(b, p.values, i, false)
	}
}

// writeColumn writes column i; a lock column as writeLockColumn writes it.
func (p lockPredicate) writeColumn(b clause.Builder, i int, nullable bool) {
	col := p.spec.quotedColumn(i)
	if i < len(p.spec.keys) {
		b.WriteQuoted(col)
		return
	}
	writeLockColumn(b, p.spec.dialect, p.spec.locks[i-len(p.spec.keys)], col, nullable)
}

// writeLockColumn writes lock column col as it is compared: as COALESCE(col, zero) when a row may
// store its zero value as NULL, and a timestamp as the dialect compares instants (SQLite's
// julianday()). col is the clause.Column, in an interface (lockSpec.quotedColumn). (With COALESCE, MySQL no longer reads the rows by a primary-key range: only calls
// that hold zero lock values pay for that.)
func writeLockColumn(b clause.Builder, d sqlDialect, lf lockField, col any, nullable bool) {
	open, closing := d.instant(lf)
	b.WriteString(open)
	if nullable {
		b.WriteString("COALESCE(")
		b.WriteQuoted(col)
		b.WriteString(",")
		if lf.kind == timeLock {
			writeBound(b, []any{time.Time{}}, lf.castType)
		} else {
			b.WriteString("0")
		}
		b.WriteString(")")
	} else {
		b.WriteQuoted(col)
	}
	b.WriteString(closing)
}

// column returns the schema field of position i in a row: keys first, then lock fields.
func (p lockPredicate) column(i int) *schema.Field {
	if i < len(p.spec.keys) {
		return p.spec.keys[i].field
	}
	return p.spec.locks[i-len(p.spec.keys)].field
}

// writeValue binds row[i], cast to the column's type where the comparison needs the database to
// convert it exactly as it did when it stored the value (timestamps), or where typing a VALUES list
// needs it; a timestamp is compared as its column is (SQLite's julianday()).
func (p lockPredicate) writeValue(b clause.Builder, row []any, i int, typeRow bool) {
	v := row[i : i+1]
	var cast string
	if i < len(p.spec.keys) {
		if typeRow {
			cast = p.spec.keys[i].castType
		}
	} else {
		lf := p.spec.locks[i-len(p.spec.keys)]
		if lf.kind == timeLock || typeRow {
			cast = lf.castType
		}
		if open, closing := p.spec.dialect.instant(lf); open != "" {
			b.WriteString(open)
			writeBound(b, v, cast)
			b.WriteString(closing)
			return
		}
	}
	writeBound(b, v, cast)
}

// writeBound binds the one value in v, as CAST(? AS cast) when cast is set. A one-value sub-slice
// costs AddVar no allocation.
func writeBound(b clause.Builder, v []any, cast string) {
	if cast == "" {
		b.AddVar(b, v...)
		return
	}
	b.WriteString("CAST(")
	b.AddVar(b, v...)
	b.WriteString(" AS ")
	b.WriteString(cast)
	b.WriteByte(')')
}

// isIntegerKey reports whether a key field holds a plain integer, stored as one, which the array,
// JSON and literal forms send as the number it is in Go. Not a pointer, a sql.Null type, a value GORM
// serializes, an integer type with a Value method of its own (it may store anything: a "SKU-5"), or a
// column whose type tag is not an integer type (an int kept in a varchar): those are bound, so the
// driver converts them as it did when it stored them.
func isIntegerKey(f *schema.Field) bool {
	t := f.FieldType
	if f.Serializer != nil || t.Kind() < reflect.Int || t.Kind() > reflect.Uint64 || t.Kind() == reflect.Uintptr {
		return false
	}
	if t.Implements(valuerType) || reflect.PointerTo(t).Implements(valuerType) {
		return false
	}
	return f.DataType == schema.Int || f.DataType == schema.Uint || integerColumnType.MatchString(string(f.DataType))
}

// valuerType is driver.Valuer, the interface a type implements to choose what it stores.
var valuerType = reflect.TypeOf((*driver.Valuer)(nil)).Elem()

// integerColumnType matches the type tags of integer columns: int, integer, bigint unsigned, int8,
// bigserial, ...
var integerColumnType = regexp.MustCompile(`(?i)^\s*((tiny|small|medium|big)?int(eger)?|int[248]|(small|big)?serial)\b`)

// writeList calls write for 0 … n-1, with commas between.
func writeList(b clause.Builder, n int, write func(i int)) {
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		write(i)
	}
}
