package optlock

import (
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// addCheck adds cond to stmt's WHERE clause, after the caller's own conditions, bracketed.
//
// GORM joins a WHERE clause's conditions with AND, or with OR for those given by Or, and puts no
// brackets around conditions it did not build: the caller's Where("a").Or("b") followed by the lock
// check would read "a OR b AND <check>", and every row matching a would be written unchecked. So the
// caller's conditions go in brackets of their own before the check is added: "(a OR b) AND <check>".
//
// The clause is written directly, as AddClause would merge it, without the copies AddClause and
// Where.MergeClause make of the condition list.
func addCheck(stmt *gorm.Statement, cond clause.Expression) {
	c := stmt.Clauses["WHERE"]
	exprs := []clause.Expression{cond}
	if where, ok := c.Expression.(clause.Where); ok && len(where.Exprs) > 0 {
		// A copy: GORM's Where.Build reorders the list it builds, which other statements share.
		caller := callerConditions{Exprs: append([]clause.Expression(nil), where.Exprs...)}
		exprs = []clause.Expression{caller, cond}
	}
	c.Name, c.Expression = "WHERE", clause.Where{Exprs: exprs}
	stmt.Clauses["WHERE"] = c
}

// callerConditions are the caller's WHERE conditions, built as GORM builds them, in brackets.
type callerConditions clause.Where

// Build implements clause.Expression.
func (c callerConditions) Build(b clause.Builder) {
	b.WriteByte('(')
	clause.Where(c).Build(b)
	b.WriteByte(')')
}
