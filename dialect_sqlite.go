package optlock

import (
	"regexp"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
	"gorm.io/gorm/schema"
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

// quotedTable is nil: SQLite has no schemas to tell apart in a table expression.
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
