package optlock

import (
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// addCheck adds conds to stmt's WHERE clause, after the caller's own conditions, bracketed.
//
// GORM joins a WHERE clause's conditions with AND, or with OR for those given by Or, and puts no
// brackets around conditions it did not build: the caller's Where("a").Or("b") followed by the lock
// check would read "a OR b AND <check>", and every row matching a would be written unchecked. So the
// caller's conditions go in brackets of their own before the check is added: "(a OR b) AND <check>".
func addCheck(stmt *gorm.Statement, conds ...clause.Expression) {
	if c, ok := stmt.Clauses["WHERE"]; ok {
		if where, ok := c.Expression.(clause.Where); ok && len(where.Exprs) > 0 {
			// A copy: GORM's Where.Build reorders the list it builds, which other statements share.
			caller := clause.Where{Exprs: append([]clause.Expression(nil), where.Exprs...)}
			where.Exprs = []clause.Expression{callerConditions(caller)}
			c.Expression = where
			stmt.Clauses["WHERE"] = c
		}
	}
	stmt.AddClause(clause.Where{Exprs: conds})
}

// callerConditions are the caller's WHERE conditions, built as GORM builds them, in brackets.
type callerConditions clause.Where

// Build implements clause.Expression.
func (c callerConditions) Build(b clause.Builder) {
	b.WriteByte('(')
	clause.Where(c).Build(b)
	b.WriteByte(')')
}
