package optlock

import (
	"cmp"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
	"gorm.io/gorm/schema"
)

// sqliteDialect writes SQLite's SQL (GORM's SQLite dialector, the cgo driver; SQLite 3.33 or later).
type sqliteDialect struct{ standardSavepoints }

func (sqliteDialect) bindVarLimit() int                   { return 32766 }
func (sqliteDialect) errorAbortsTx() bool                 { return false }
func (sqliteDialect) rowLocks() bool                      { return false }
func (sqliteDialect) isSerializationFailure(e error) bool { return false }

func (sqliteDialect) advanceUnix(next int64, col clause.Column) clause.Expression {
	return clause.Expr{SQL: "MAX(?, COALESCE(?, 0) + 1)", Vars: []any{next, col}}
}

// advanceTime compares instants with julianday(), as SQLite stores whatever text was written.
func (sqliteDialect) advanceTime(lf lockField, next time.Time, col clause.Column) clause.Expression {
	return clause.Expr{SQL: "CASE WHEN ? IS NOT NULL AND julianday(?) >= julianday(?) THEN strftime('%Y-%m-%d %H:%M:%f', ?, '+0.001 seconds') ELSE ? END", Vars: []any{col, col, next, col, next}}
}

// quotedTable is nil: SQLite's catalog is never read (columnReader), so a table is known by its name
// as the statement has it.
func (sqliteDialect) quotedTable() *regexp.Regexp { return nil }

// columnReader is nil: SQLite compares by value whatever a column's declared type, and is not asked.
func (sqliteDialect) columnReader() func(*gorm.Statement, gorm.ConnPool, tableKey) (*tableColumns, error) {
	return nil
}

// castType is empty: SQLite compares by value whatever a column's declared type.
func (sqliteDialect) castType(*gorm.Statement, *schema.Field, *tableColumns) (string, error) {
	return "", nil
}

func (sqliteDialect) binaryCast(storedColumn, *schema.Field) string { return "" }

// timeLock compares instants with julianday(), to the nanosecond SQLite keeps in its text.
func (sqliteDialect) timeLock(lf *lockField, _ string, _ int) int {
	lf.julian = true
	return 9
}

// keyListFirst is true: SQLite scans the whole table for a row-value IN, so the list is preceded by
// the plain list of keys, which it looks up in the primary key.
func (sqliteDialect) keyListFirst() bool { return true }

// locksInKeyOrder is false: SQLite locks the whole database.
func (sqliteDialect) locksInKeyOrder() bool { return false }

func (sqliteDialect) writeKeyOrderLock(clause.Builder, lockPredicate) {}

// rowList is a VALUES list, which SQLite prepares about twice as fast as a list of row values.
func (sqliteDialect) rowList() rowListForm { return valuesList }

// inlinesIntegers is false: integer rows are bound as one JSON object (compactRows).
func (sqliteDialect) inlinesIntegers() bool { return false }

// compactRows binds one integer key and one integer version as one JSON object (usesJSON).
func (sqliteDialect) compactRows(p lockPredicate) bool { return p.usesJSON() }

func (sqliteDialect) writeCompactRows(b clause.Builder, p lockPredicate) { p.buildJSON(b) }

// instant compares a timestamp with julianday(): SQLite keeps whatever text was written.
func (sqliteDialect) instant(lf lockField) (string, string) {
	if lf.julian {
		return "julianday(", ")"
	}
	return "", ""
}

// usesJSON reports whether the predicate can bind its rows as a JSON object.
//
// A bulk write with one integer key and one integer version binds its rows as one JSON
// object {"<id>": version, ...}, in key order: one parameter instead of two or three per row, far
// cheaper for SQLite to prepare. An UPDATE joins the object in FROM (joinRows); a DELETE, which
// has no FROM, tests it in WHERE, where the rows are still found through the primary key:
//
//	"id" IN (SELECT CAST(key AS INTEGER) FROM json_each(?))
//	AND ("id","version") IN (SELECT CAST(key AS INTEGER), value FROM json_each(?))
//
// Timestamps are not sent this way: their comparison would depend on JSON's text form.
func (p lockPredicate) usesJSON() bool {
	if p.rows() < 2 || len(p.spec.keys) != 1 || len(p.spec.locks) != 1 {
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

// joinedRowsAlias names the joined rows; its columns are optlock_key and optlock_lock.
const joinedRowsAlias = "optlock_rows"

// joinRows joins p's rows in an UPDATE's FROM when they can be bound as one JSON object.
//
// An UPDATE of many rows with one integer key and one integer version joins its rows in
// FROM instead of testing them in WHERE:
//
//	UPDATE "items" SET ... FROM (SELECT CAST(key AS INTEGER) AS optlock_key, value AS optlock_lock
//	  FROM json_each(?)) AS optlock_rows
//	WHERE "id" = optlock_rows.optlock_key AND "version" = optlock_rows.optlock_lock
//
// SQLite walks the JSON object once, in key order, and looks each row up by its primary key: the
// checked write costs about what GORM's unchecked "id IN (...)" costs (docs/benchmarks.md). The
// sub-select renames json_each's columns, one of which is called id, so that no column of the table is
// ambiguous in SET or in the caller's conditions. GORM builds a FROM clause for UPDATE on SQLite; a
// statement that already has one (the caller's own) keeps the WHERE form.
func (sqliteDialect) joinRows(p lockPredicate) (clause.Interface, clause.Expression) {
	if !p.usesJSON() {
		return nil, nil
	}
	return joinedRows{p}, joinCondition{p}
}

// joinedRows is the FROM clause that carries the rows.
type joinedRows struct{ p lockPredicate }

// Name implements clause.Interface.
func (joinedRows) Name() string { return "FROM" }

// MergeClause implements clause.Interface.
func (j joinedRows) MergeClause(c *clause.Clause) { c.Expression = j }

// Build writes the sub-select over the JSON object.
func (j joinedRows) Build(b clause.Builder) { writeJSONRows(b, j.p.jsonRows()) }

// writeJSONRows writes the sub-select that renames json_each's columns over the rows' JSON object:
// "(SELECT CAST(key AS INTEGER) AS optlock_key,value AS optlock_lock FROM json_each(?)) AS optlock_rows".
func writeJSONRows(b clause.Builder, rows string) {
	b.WriteString("(SELECT CAST(key AS INTEGER) AS optlock_key,value AS optlock_lock FROM json_each(")
	b.AddVar(b, rows)
	b.WriteString(")) AS " + joinedRowsAlias)
}

// joinCondition matches each row of the table to its joined key and lock value.
type joinCondition struct{ p lockPredicate }

// Build writes "id" = optlock_rows.optlock_key AND "version" = optlock_rows.optlock_lock.
func (j joinCondition) Build(b clause.Builder) {
	b.WriteQuoted(clause.Column{Name: j.p.column(0).DBName})
	b.WriteString(" = " + joinedRowsAlias + ".optlock_key AND ")
	j.p.writeColumn(b, 1, j.p.nullable(0))
	b.WriteString(" = " + joinedRowsAlias + ".optlock_lock")
}

// lockingRead is empty: SQLite reads the latest rows.
func (sqliteDialect) lockingRead() string { return "" }

// comparesInSQL reports whether the conflict query over p's rows can return only the refused rows.
//
// For the rows the JSON form carries (one integer key, one integer version), the conflict
// query lets SQLite compare and returns only the rows that no longer hold what was read: those found
// changed (or soft-deleted), then the keys not found at all.
//
//	SELECT "t"."id","t"."version",1 FROM "t" JOIN (SELECT CAST(key AS INTEGER) AS optlock_key,
//	  value AS optlock_lock FROM json_each(?)) AS optlock_rows ON "t"."id" = optlock_rows.optlock_key
//	  WHERE COALESCE("t"."version",0) <> optlock_rows.optlock_lock
//	UNION ALL SELECT optlock_key,NULL,0 FROM (SELECT ...json_each(?)) AS optlock_rows
//	  WHERE NOT EXISTS (SELECT 1 FROM "t" WHERE "t"."id" = optlock_rows.optlock_key)
//
// A refused write of N rows usually has a few stale ones: scanning those instead of all N rows (and
// binding one JSON object instead of N keys) keeps the conflict path within twice the write's own cost.
// The comparison is exact: both sides are integers, NULL counts as 0 as in the write.
func (sqliteDialect) comparesInSQL(p lockPredicate) bool { return p.usesJSON() }

// writeChangedRows writes that query on q; the columns are the key, the lock, the soft-delete column
// (when softDelete is set) and whether the row was found.
func (sqliteDialect) writeChangedRows(q *gorm.Statement, st *lockState, softDelete *schema.Field) {
	rows := lockPredicate{spec: st.spec, values: st.snapshot.values}.jsonRows()
	key := clause.Column{Table: clause.CurrentTable, Name: st.spec.keys[0].field.DBName}
	lock := clause.Column{Table: clause.CurrentTable, Name: st.spec.locks[0].field.DBName}
	q.WriteString("SELECT ")
	q.WriteQuoted(key)
	q.WriteByte(',')
	q.WriteQuoted(lock)
	if softDelete != nil {
		q.WriteByte(',')
		q.WriteQuoted(clause.Column{Table: clause.CurrentTable, Name: softDelete.DBName})
	}
	q.WriteString(",1 FROM ")
	q.WriteQuoted(clause.Table{Name: clause.CurrentTable})
	q.WriteString(" JOIN ")
	writeJSONRows(q, rows)
	q.WriteString(" ON ")
	q.WriteQuoted(key)
	q.WriteString(" = " + joinedRowsAlias + ".optlock_key WHERE COALESCE(")
	q.WriteQuoted(lock)
	q.WriteString(",0) <> " + joinedRowsAlias + ".optlock_lock")
	if softDelete != nil {
		q.WriteString(" OR ")
		q.WriteQuoted(clause.Column{Table: clause.CurrentTable, Name: softDelete.DBName})
		q.WriteString(" IS NOT NULL")
	}
	q.WriteString(" UNION ALL SELECT optlock_key,NULL")
	if softDelete != nil {
		q.WriteString(",NULL")
	}
	q.WriteString(",0 FROM ")
	writeJSONRows(q, rows)
	q.WriteString(" WHERE NOT EXISTS (SELECT 1 FROM ")
	q.WriteQuoted(clause.Table{Name: clause.CurrentTable})
	q.WriteString(" WHERE ")
	q.WriteQuoted(key)
	q.WriteString(" = " + joinedRowsAlias + ".optlock_key)")
}

// buildEach writes UpdateEach's statement: a VALUES list joined in FROM, its columns renamed.
//
//	UPDATE t SET c=v.c0, … FROM (SELECT column1 AS k0, … FROM (VALUES (?,…),…)) AS v WHERE t.id=v.k0 AND …
func (sqliteDialect) buildEach(b clause.Builder, w eachWrite) {
	b.WriteString("UPDATE ")
	b.WriteQuoted(clause.Table{Name: clause.CurrentTable})
	b.WriteString(" SET ")
	w.writeSet(b, false)
	b.WriteString(" FROM (SELECT ")
	for i := range w.width() {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("column") // written in parts: a concatenation allocates per column and call
		b.WriteString(strconv.Itoa(i + 1))
		b.WriteString(" AS ")
		b.WriteQuoted(w.alias(i))
	}
	b.WriteString(" FROM (VALUES ")
	w.writeValueRows(b, false, false)
	b.WriteString(")) AS ")
	b.WriteQuoted("v")
	b.WriteString(" WHERE ")
	w.writeMatch(b, false)
}
