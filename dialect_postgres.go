package optlock

import (
	"strconv"
	"time"

	"gorm.io/gorm/clause"
)

// postgresDialect writes PostgreSQL's SQL (GORM's "postgres" dialector, pgx).
type postgresDialect struct{ standardSavepoints }

func (postgresDialect) name() string        { return "postgres" }
func (postgresDialect) bindVarLimit() int   { return 65535 }
func (postgresDialect) errorAbortsTx() bool { return true }

// isSerializationFailure recognises 40001 (serialization_failure) and 40P01 (deadlock_detected),
// without importing the driver: pgconn.PgError has SQLState().
func (postgresDialect) isSerializationFailure(e error) bool {
	if s, ok := e.(interface{ SQLState() string }); ok {
		return s.SQLState() == "40001" || s.SQLState() == "40P01"
	}
	return false
}

func (postgresDialect) advanceUnix(next int64, col clause.Column) clause.Expression {
	return clause.Expr{SQL: "GREATEST(?, COALESCE(?, 0) + 1)", Vars: []any{next, col}}
}

func (postgresDialect) advanceTime(lf lockField, next time.Time, col clause.Column) clause.Expression {
	stepMicros := max(1, int64(lf.step/time.Microsecond))
	return clause.Expr{SQL: "GREATEST(CAST(? AS " + lf.castType + "), ? + CAST(? AS interval))", Vars: []any{next, col, strconv.FormatInt(stepMicros, 10) + " microseconds"}}
}
