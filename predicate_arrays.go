package optlock

import (
	"database/sql/driver"
	"reflect"
	"strconv"
	"strings"

	"gorm.io/gorm/clause"
	"gorm.io/gorm/schema"
)

// usesIntArrays reports whether the predicate can bind its keys and locks as integer arrays.
//
// On PostgreSQL a bulk write whose key and lock columns are all integers binds them as arrays: three
// parameters and one SQL text for any number of rows, so pgx prepares the statement once and the
// planner does not re-plan a list of thousands of values on every call:
//
//	"id" = ANY(ARRAY(SELECT "id" FROM "items" WHERE "id" = ANY(CAST(CAST($1 AS text) AS bigint[])) ORDER BY "id" FOR UPDATE))
//	AND ("id","version") IN (SELECT * FROM unnest(CAST(CAST($2 AS text) AS bigint[]), CAST(CAST($3 AS text) AS bigint[])))
//
// The first condition is the key-order lock (an init plan); the second the check. A lock value that may
// be stored as NULL is compared as COALESCE(column, 0).
func (p lockPredicate) usesIntArrays() bool {
	if p.spec.dialect != "postgres" || p.rows() < 2 || !p.lockInKeyOrder {
		return false
	}
	for _, k := range p.spec.keys {
		if !isIntegerKey(k.field) {
			return false
		}
	}
	for _, l := range p.spec.locks {
		if l.kind == timeLock {
			return false
		}
	}
	return true
}

// isIntegerKey reports whether a key field holds a plain integer (not a pointer, a sql.Null type or a
// value GORM serializes), which the array and JSON forms send as a number.
func isIntegerKey(f *schema.Field) bool {
	t := f.FieldType
	return f.Serializer == nil && t.Kind() >= reflect.Int && t.Kind() <= reflect.Uint64 && t.Kind() != reflect.Uintptr
}

// buildIntArrays writes the array form of the predicate. Each column's array is built once, and bound
// wherever the statement needs it.
func (p lockPredicate) buildIntArrays(b clause.Builder) {
	w, k := p.width(), len(p.spec.keys)
	arrays := make([]pgIntArray, w)
	for i := range arrays {
		arrays[i] = make(pgIntArray, p.rows())
		for r := range arrays[i] {
			arrays[i][r] = intOf(p.values[r*w+i])
		}
	}
	column := func(i int) { b.WriteQuoted(clause.Column{Name: p.column(i).DBName}) }
	array := func(i int) {
		// Typed as text, the parameter goes to the server as the array's text, which PostgreSQL parses;
		// typed as bigint[], pgx would parse the text into a Go slice and encode it again.
		b.WriteString("CAST(CAST(")
		b.AddVar(b, arrays[i])
		b.WriteString(" AS text) AS bigint[])")
	}
	keys := func() {
		if k > 1 {
			b.WriteByte('(')
		}
		writeList(b, k, column)
		if k > 1 {
			b.WriteByte(')')
		}
	}
	// The key-order lock.
	keys()
	if k == 1 {
		b.WriteString(" = ANY(ARRAY(SELECT ")
		column(0)
		b.WriteString(" FROM ")
		b.WriteQuoted(clause.Table{Name: clause.CurrentTable})
		b.WriteString(" WHERE ")
		column(0)
		b.WriteString(" = ANY(")
		array(0)
		b.WriteString(") ORDER BY ")
		column(0)
		b.WriteString(" FOR UPDATE))")
	} else {
		b.WriteString(" IN (SELECT ")
		writeList(b, k, column)
		b.WriteString(" FROM ")
		b.WriteQuoted(clause.Table{Name: clause.CurrentTable})
		b.WriteString(" WHERE ")
		keys()
		b.WriteString(" IN (SELECT * FROM unnest(")
		writeList(b, k, array)
		b.WriteString(")) ORDER BY ")
		writeList(b, k, column)
		b.WriteString(" FOR UPDATE)")
	}
	// The check.
	b.WriteString(" AND (")
	writeList(b, w, func(i int) { p.writeColumn(b, i, i >= k && p.nullable(i-k)) })
	b.WriteString(") IN (SELECT * FROM unnest(")
	writeList(b, w, array)
	b.WriteString("))")
}

// writeList calls write for 0 … n-1, with commas between.
func writeList(b clause.Builder, n int, write func(i int)) {
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		write(i)
	}
}

// pgIntArray binds a list of integers as one PostgreSQL array parameter, in its text form.
type pgIntArray []int64

// Value implements driver.Valuer.
func (a pgIntArray) Value() (driver.Value, error) {
	var sb strings.Builder
	sb.Grow(len(a)*8 + 2)
	sb.WriteByte('{')
	buf := make([]byte, 0, 20)
	for i, v := range a {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.Write(strconv.AppendInt(buf[:0], v, 10))
	}
	sb.WriteByte('}')
	return sb.String(), nil
}
