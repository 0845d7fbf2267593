package optlock

import (
	"slices"

	"gorm.io/gorm"
)

// addUpdatePredicate adds p to an UPDATE: joined in FROM where the dialect can take its rows as a
// join (SQLite's JSON object, see sqliteDialect.joinRows) and the statement has room for it, in WHERE
// otherwise. A statement that already has a FROM clause (the caller's own), or whose dialect builds
// none for UPDATE, keeps the WHERE form.
//
// p is added by its address (an interface holding a pointer costs no allocation): it must not change
// until the statement is built.
func addUpdatePredicate(stmt *gorm.Statement, p *lockPredicate) {
	from, on := p.spec.dialect.joinRows(*p)
	if from == nil || !slices.Contains(stmt.BuildClauses, "FROM") {
		addCheck(stmt, p)
		return
	}
	if _, taken := stmt.Clauses["FROM"]; taken {
		addCheck(stmt, p)
		return
	}
	stmt.AddClause(from)
	addCheck(stmt, on)
}
