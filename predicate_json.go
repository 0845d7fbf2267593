package optlock

import (
	"reflect"
	"strconv"
	"strings"

	"gorm.io/gorm/clause"
)

// On SQLite a bulk write with one integer key and one integer version binds its rows as one JSON
// object {"<id>": version, ...}: two parameters instead of three per row, far cheaper for SQLite to
// prepare, with the rows still found through the primary key:
//
//	"id" IN (SELECT CAST(key AS INTEGER) FROM json_each(?))
//	AND ("id","version") IN (SELECT CAST(key AS INTEGER), value FROM json_each(?))
//
// Timestamps are not sent this way: their comparison would depend on JSON's text form.

// usesJSON reports whether the predicate can bind its rows as a JSON object.
func (p lockPredicate) usesJSON() bool {
	if p.spec.dialect != "sqlite" || p.rows() < 2 || len(p.spec.keys) != 1 || len(p.spec.locks) != 1 {
		return false
	}
	return isIntegerField(p.spec.keys[0].field.FieldType) && p.spec.locks[0].kind == counterLock
}

// buildJSON writes the JSON form of the predicate.
func (p lockPredicate) buildJSON(b clause.Builder) {
	var sb strings.Builder
	sb.Grow(p.rows() * 12)
	sb.WriteByte('{')
	buf := make([]byte, 0, 20)
	for r := range p.rows() {
		if r > 0 {
			sb.WriteByte(',')
		}
		sb.WriteByte('"')
		sb.Write(strconv.AppendInt(buf[:0], asInt64(reflect.ValueOf(p.values[r*2])), 10))
		sb.WriteString(`":`)
		sb.Write(strconv.AppendInt(buf[:0], asInt64(reflect.ValueOf(p.values[r*2+1])), 10))
	}
	sb.WriteByte('}')
	rows := sb.String()

	b.WriteQuoted(clause.Column{Name: p.column(0).DBName})
	b.WriteString(" IN (SELECT CAST(key AS INTEGER) FROM json_each(")
	b.AddVar(b, rows)
	b.WriteString(")) AND (")
	b.WriteQuoted(clause.Column{Name: p.column(0).DBName})
	b.WriteByte(',')
	p.writeColumn(b, 1, p.nullable(0))
	b.WriteString(") IN (SELECT CAST(key AS INTEGER),value FROM json_each(")
	b.AddVar(b, rows)
	b.WriteString("))")
}
