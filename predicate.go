package optlock

import (
	"time"

	"gorm.io/gorm/clause"
	"gorm.io/gorm/schema"
)

// lockPredicate is the WHERE condition that makes a write conditional on what was read: every row's
// primary key together with the lock values the caller holds. It is a clause.Expression, so GORM
// quotes the columns and binds every value; nothing the caller passes is written into the SQL text.
//
//	one row:             id = ? AND version = ?
//	many rows, MySQL:    (id, version) IN ((?, ?), (?, ?))
//	many rows, SQLite:   id IN (?, ?) AND (id, version) IN (VALUES (?, ?), (?, ?))
//	many rows, Postgres: (id, version) IN (VALUES (CAST(? AS bigint), CAST(? AS bigint)), (?, ?))
//
// with integer keys and versions, PostgreSQL binds arrays instead (predicate_arrays.go) and SQLite one
// JSON object (predicate_json.go), which an UPDATE joins in FROM (update_join.go). The caller's own
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

// keyListFirst says whether the dialect needs the plain key list to use the primary key index.
func (s *lockSpec) keyListFirst() bool { return s.dialect == "sqlite" }

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
	if s.keyListFirst() {
		n++
	}
	if s.dialect == "postgres" {
		n += len(s.keys) // the key-order lock
	}
	return n
}

// bindsConstant says whether the predicate binds a fixed number of parameters, whatever its rows:
// then no write needs to be split for the database's bind-parameter limit.
func (p lockPredicate) bindsConstant() bool { return p.usesIntArrays() || p.usesJSON() }

func (p lockPredicate) rows() int { return len(p.values) / p.width() }

// Build writes the condition; GORM calls it while building the statement.
func (p lockPredicate) Build(b clause.Builder) {
	if p.rows() == 1 {
		p.buildOne(b)
		return
	}
	if p.usesIntArrays() {
		p.buildIntArrays(b)
		return
	}
	if p.usesJSON() {
		p.buildJSON(b)
		return
	}
	w := p.width()
	if p.lockInKeyOrder && p.spec.dialect == "postgres" {
		p.buildKeyOrderLock(b)
	}
	if p.spec.keyListFirst() {
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
	postgres := p.spec.dialect == "postgres"
	if postgres || p.spec.dialect == "sqlite" {
		b.WriteString("VALUES ")
	}
	plain := !p.spec.castsEveryRow()
	for r := range p.rows() {
		if r > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('(')
		row := p.values[r*w : (r+1)*w]
		if plain && (r > 0 || !postgres) {
			b.AddVar(b, row...) // one call per row: no per-value allocation
		} else {
			for i := range row {
				if i > 0 {
					b.WriteByte(',')
				}
				// In a VALUES list the first row's casts give every column its type.
				p.writeValue(b, row, i, postgres && r == 0)
			}
		}
		b.WriteByte(')')
	}
	b.WriteByte(')')
}

// buildKeyOrderLock writes "id = ANY(ARRAY(SELECT id FROM t WHERE id IN (...) ORDER BY id FOR UPDATE)) AND "
// ("(a, b) IN (SELECT a, b ...)" for a composite key).
//
// Two bulk writes over the same rows must lock them in the same order, or each can hold a row the
// other waits for: a deadlock. MySQL and MariaDB walk the primary key in order for a row-value IN, and
// SQLite locks the whole database, but PostgreSQL locks rows in whatever order its plan meets them (a
// hash join meets them in the order they lie on disk). A sub-select that sorts the keys and locks them
// FOR UPDATE runs once, before the update, and takes the locks in key order.
func (p lockPredicate) buildKeyOrderLock(b clause.Builder) {
	w := p.width()
	composite := len(p.spec.keys) > 1
	writeKeys := func(row bool) {
		if row {
			b.WriteByte('(')
		}
		for i, k := range p.spec.keys {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteQuoted(clause.Column{Name: k.field.DBName})
		}
		if row {
			b.WriteByte(')')
		}
	}
	writeKeys(composite)
	if composite {
		b.WriteString(" IN (SELECT ")
	} else {
		// An ARRAY(sub-select) is an init plan: it runs once, first, and the outer scan can still use
		// the primary key, where IN (sub-select) would be planned as a join over the whole table.
		b.WriteString(" = ANY(ARRAY(SELECT ")
	}
	writeKeys(false)
	b.WriteString(" FROM ")
	b.WriteQuoted(clause.Table{Name: clause.CurrentTable})
	b.WriteString(" WHERE ")
	writeKeys(composite)
	b.WriteString(" IN (")
	if composite {
		// A row-value list recurses once per element in PostgreSQL's parser; VALUES does not.
		b.WriteString("VALUES ")
	}
	for r := range p.rows() {
		if r > 0 {
			b.WriteByte(',')
		}
		key := p.values[r*w : r*w+len(p.spec.keys)]
		if len(key) == 1 {
			b.AddVar(b, key[0])
		} else {
			b.WriteByte('(')
			for i := range key {
				if i > 0 {
					b.WriteByte(',')
				}
				p.writeValue(b, key, i, r == 0)
			}
			b.WriteByte(')')
		}
	}
	b.WriteString(") ORDER BY ")
	writeKeys(false)
	b.WriteString(" FOR UPDATE)")
	if !composite {
		b.WriteByte(')')
	}
	b.WriteString(" AND ")
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

// writeColumn writes column i, as COALESCE(column, zero) when a row may store its zero value as NULL,
// and inside julianday() for a SQLite timestamp. (With COALESCE, MySQL no longer reads the rows by a
// primary-key range: only calls that hold zero lock values pay for that.)
func (p lockPredicate) writeColumn(b clause.Builder, i int, nullable bool) {
	col := clause.Column{Name: p.column(i).DBName}
	if i < len(p.spec.keys) {
		b.WriteQuoted(col)
		return
	}
	lf := p.spec.locks[i-len(p.spec.keys)]
	if lf.julian {
		b.WriteString("julianday(")
	}
	if nullable {
		b.WriteString("COALESCE(")
		b.WriteQuoted(col)
		b.WriteString(",")
		if lf.kind == timeLock {
			p.writeBound(b, []any{time.Time{}}, lf.castType)
		} else {
			b.WriteString("0")
		}
		b.WriteString(")")
	} else {
		b.WriteQuoted(col)
	}
	if lf.julian {
		b.WriteString(")")
	}
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
// needs it; a SQLite timestamp is read with julianday(), as its column is.
func (p lockPredicate) writeValue(b clause.Builder, row []any, i int, typeRow bool) {
	v := row[i : i+1]
	var cast string
	if i < len(p.spec.keys) {
		if typeRow {
			cast = p.spec.keys[i].castType
		}
	} else {
		lf := p.spec.locks[i-len(p.spec.keys)]
		if lf.julian {
			b.WriteString("julianday(")
			b.AddVar(b, v...)
			b.WriteByte(')')
			return
		}
		if lf.kind == timeLock || typeRow {
			cast = lf.castType
		}
	}
	p.writeBound(b, v, cast)
}

// writeBound binds the one value in v, as CAST(? AS cast) when cast is set. A one-value sub-slice
// costs AddVar no allocation.
func (p lockPredicate) writeBound(b clause.Builder, v []any, cast string) {
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
