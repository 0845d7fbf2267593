package optlock

import (
	"reflect"
	"time"

	"gorm.io/gorm/clause"
)

// mysqlDialect writes MySQL's and MariaDB's SQL (GORM's "mysql" dialector).
type mysqlDialect struct{ standardSavepoints }

func (mysqlDialect) name() string        { return "mysql" }
func (mysqlDialect) bindVarLimit() int   { return 65535 }
func (mysqlDialect) errorAbortsTx() bool { return false }

// isSerializationFailure recognises 1213 (ER_LOCK_DEADLOCK, SQLSTATE 40001; Galera reports a
// certification failure as 1213 too), without importing the driver: mysql.MySQLError's Number.
func (mysqlDialect) isSerializationFailure(e error) bool {
	v := reflect.ValueOf(e)
	if v.Kind() == reflect.Ptr && !v.IsNil() && v.Elem().Kind() == reflect.Struct {
		if n := v.Elem().FieldByName("Number"); n.IsValid() && n.Kind() == reflect.Uint16 {
			return n.Uint() == 1213
		}
	}
	return false
}

func (mysqlDialect) advanceUnix(next int64, col clause.Column) clause.Expression {
	return clause.Expr{SQL: "GREATEST(?, COALESCE(?, 0) + 1)", Vars: []any{next, col}}
}

func (mysqlDialect) advanceTime(lf lockField, next time.Time, col clause.Column) clause.Expression {
	stepMicros := max(1, int64(lf.step/time.Microsecond))
	return clause.Expr{SQL: "GREATEST(CAST(? AS " + lf.castType + "), COALESCE(? + INTERVAL ? MICROSECOND, CAST(? AS " + lf.castType + ")))", Vars: []any{next, col, stepMicros, next}}
}
