package optlock

import (
	"slices"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// joinedRowsAlias names the joined rows; its columns are optlock_key and optlock_lock.
const joinedRowsAlias = "optlock_rows"

// joinsRows reports whether an UPDATE can take p's rows as a join.
//
// On SQLite an UPDATE of many rows with one integer key and one integer version joins its rows in
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
func (p lockPredicate) joinsRows(stmt *gorm.Statement) bool {
	if !p.usesJSON() {
		return false
	}
	if _, taken := stmt.Clauses["FROM"]; taken {
		return false
	}
	return slices.Contains(stmt.BuildClauses, "FROM")
}

// addUpdatePredicate adds p to an UPDATE: joined in FROM where it can be, in WHERE otherwise.
func addUpdatePredicate(stmt *gorm.Statement, p lockPredicate) {
	if !p.joinsRows(stmt) {
		addCheck(stmt, p)
		return
	}
	stmt.AddClause(joinedRows{p})
	addCheck(stmt, joinCondition{p})
}

// joinedRows is the FROM clause that carries the rows.
type joinedRows struct{ p lockPredicate }

// Name implements clause.Interface.
func (joinedRows) Name() string { return "FROM" }

// MergeClause implements clause.Interface.
func (j joinedRows) MergeClause(c *clause.Clause) { c.Expression = j }

// Build writes the sub-select over the JSON object.
func (j joinedRows) Build(b clause.Builder) {
	b.WriteString("(SELECT CAST(key AS INTEGER) AS optlock_key,value AS optlock_lock FROM json_each(")
	b.AddVar(b, j.p.jsonRows())
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
