package optlock

import (
	"cmp"
	"slices"
	"strconv"
	"strings"

	"gorm.io/gorm/clause"
)

// usesJSON reports whether the predicate can bind its rows as a JSON object.
//
// On SQLite a bulk write with one integer key and one integer version binds its rows as one JSON
// object {"<id>": version, ...}, in key order: one parameter instead of two or three per row, far
// cheaper for SQLite to prepare. An UPDATE joins the object in FROM (update_join.go); a DELETE, which
// has no FROM, tests it in WHERE, where the rows are still found through the primary key:
//
//	"id" IN (SELECT CAST(key AS INTEGER) FROM json_each(?))
//	AND ("id","version") IN (SELECT CAST(key AS INTEGER), value FROM json_each(?))
//
// Timestamps are not sent this way: their comparison would depend on JSON's text form.
func (p lockPredicate) usesJSON() bool {
	if p.spec.dialect != "sqlite" || p.rows() < 2 || len(p.spec.keys) != 1 || len(p.spec.locks) != 1 {
		return false
	}
	return isIntegerKey(p.spec.keys[0].field) && p.spec.locks[0].kind == counterLock
}

// jsonRows returns the rows as one JSON object from key to lock value, in key order: SQLite then
// looks the rows up one after the other along the primary key.
func (p lockPredicate) jsonRows() string {
	n := p.rows()
	keys, locks := make([]int64, n), make([]int64, n)
	for r := range n {
		keys[r] = intOf(p.values[r*2])
		locks[r] = intOf(p.values[r*2+1])
	}
	order := make([]int, n)
	for r := range order {
		order[r] = r
	}
	if !slices.IsSorted(keys) {
		slices.SortFunc(order, func(a, b int) int { return cmp.Compare(keys[a], keys[b]) })
	}
	var sb strings.Builder
	sb.Grow(n * 24)
	sb.WriteByte('{')
	buf := make([]byte, 0, 20)
	for i, r := range order {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteByte('"')
		sb.Write(strconv.AppendInt(buf[:0], keys[r], 10))
		sb.WriteString(`":`)
		sb.Write(strconv.AppendInt(buf[:0], locks[r], 10))
	}
	sb.WriteByte('}')
	return sb.String()
}

// buildJSON writes the JSON form of the predicate for a WHERE clause.
func (p lockPredicate) buildJSON(b clause.Builder) {
	rows := p.jsonRows()
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
