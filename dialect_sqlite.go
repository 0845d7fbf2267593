package optlock

import (
	"time"

	"gorm.io/gorm/clause"
)

// sqliteDialect writes SQLite's SQL (GORM's "sqlite" dialector; SQLite 3.33 or later).
type sqliteDialect struct{ standardSavepoints }

func (sqliteDialect) name() string                        { return "sqlite" }
func (sqliteDialect) bindVarLimit() int                   { return 32766 }
func (sqliteDialect) errorAbortsTx() bool                 { return false }
func (sqliteDialect) isSerializationFailure(e error) bool { return false }

func (sqliteDialect) advanceUnix(next int64, col clause.Column) clause.Expression {
	return clause.Expr{SQL: "MAX(?, COALESCE(?, 0) + 1)", Vars: []any{next, col}}
}

// advanceTime compares instants with julianday(), as SQLite stores whatever text was written.
func (sqliteDialect) advanceTime(lf lockField, next time.Time, col clause.Column) clause.Expression {
	return clause.Expr{SQL: "CASE WHEN ? IS NOT NULL AND julianday(?) >= julianday(?) THEN strftime('%Y-%m-%d %H:%M:%f', ?, '+0.001 seconds') ELSE ? END", Vars: []any{col, col, next, col, next}}
}
