package optlock

import (
	"database/sql"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
	"gorm.io/gorm/schema"
)

// mysqlDialect writes MySQL's and MariaDB's SQL (GORM's MySQL dialector, go-sql-driver).
type mysqlDialect struct {
	standardSavepoints
	rowsTestedInWhere
}

func (mysqlDialect) bindVarLimit() int   { return 65535 }
func (mysqlDialect) errorAbortsTx() bool { return false }
func (mysqlDialect) rowLocks() bool      { return true }

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

// mysqlQuotedTable matches a table expression GORM quoted: `name` or `schema`.`name`.
var mysqlQuotedTable = regexp.MustCompile("^`((?:[^`]|``)+)`(?:\\.`((?:[^`]|``)+)`)?$")

func (mysqlDialect) quotedTable() *regexp.Regexp { return mysqlQuotedTable }

func (mysqlDialect) columnReader() func(*gorm.Statement, gorm.ConnPool, tableKey) (*tableColumns, error) {
	return readMySQLColumns
}

const mysqlColumnsSQL = `SELECT column_name, data_type, datetime_precision FROM information_schema.columns
WHERE table_schema = COALESCE(?, DATABASE()) AND table_name = ?`

func readMySQLColumns(stmt *gorm.Statement, pool gorm.ConnPool, key tableKey) (*tableColumns, error) {
	var schema any
	if key.schema != "" {
		schema = key.schema
	}
	cols := &tableColumns{byName: map[string]storedColumn{}, foldCase: true}
	err := queryCatalog(stmt, pool, mysqlColumnsSQL, []any{schema, key.table}, func(rows *sql.Rows) error {
		var column, typ string
		var precision sql.NullInt64
		if err := rows.Scan(&column, &typ, &precision); err != nil {
			return err
		}
		typ = strings.ToLower(typ)
		c := storedColumn{typeName: typ, precision: -1}
		if precision.Valid && precision.Int64 >= 0 && precision.Int64 <= 6 {
			c.precision = int(precision.Int64)
		}
		switch typ {
		case "binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob":
			c.binary = true
		}
		cols.byName[strings.ToLower(column)] = c
		return nil
	})
	return cols, err
}

// castType is empty: row values need no cast to be compared.
func (mysqlDialect) castType(*gorm.Statement, *schema.Field, *tableColumns) (string, error) {
	return "", nil
}

// binaryCast is BINARY for a binary string column: a derived table types a bare parameter as text
// in the connection's character set, which refuses bytes that are not valid in it.
func (mysqlDialect) binaryCast(stored storedColumn, f *schema.Field) string {
	if stored.binary || f.DataType == schema.Bytes {
		return "BINARY"
	}
	return ""
}

// timeLock casts the snapshot to DATETIME at the column's precision (whole seconds by default).
func (mysqlDialect) timeLock(lf *lockField, _ string, digits int) int {
	if digits < 0 {
		digits = 0
	}
	lf.castType = "DATETIME(" + strconv.Itoa(digits) + ")"
	return digits
}

// keyListFirst is false: MySQL and MariaDB plan a row-value IN as a range on the primary key.
func (mysqlDialect) keyListFirst() bool { return false }

// locksInKeyOrder is false: a row-value IN walks the primary key in order, locking rows in key order.
func (mysqlDialect) locksInKeyOrder() bool { return false }

func (mysqlDialect) writeKeyOrderLock(clause.Builder, lockPredicate) {}

// rowList is a row-value IN list: (id, version) IN ((?, ?), (?, ?)).
func (mysqlDialect) rowList() rowListForm { return rowValueList }

// inlinesIntegers is true: two bound parameters per row cost more than the statement's text
// (lockPredicate.integerLiterals).
func (mysqlDialect) inlinesIntegers() bool { return true }

// compactRows is false: every row's values are bound.
func (mysqlDialect) compactRows(lockPredicate) bool { return false }

func (mysqlDialect) writeCompactRows(clause.Builder, lockPredicate) {}

// instant is empty: a timestamp is compared as the cast value it is.
func (mysqlDialect) instant(lockField) (string, string) { return "", "" }

// lockingRead makes the conflict query a locking read: inside a REPEATABLE READ transaction a plain
// SELECT reads the transaction's old snapshot, where the UPDATE read the latest rows; a locking read
// sees what the UPDATE saw.
func (mysqlDialect) lockingRead() string { return " LOCK IN SHARE MODE" }

// buildEach writes UpdateEach's statement: the rows as a derived table of SELECTs, joined to the
// table (STRAIGHT_JOIN: the derived table first, each row looked up by its key); the values are
// untyped, so a timestamp lock's is cast where it is matched.
//
//	UPDATE (SELECT ? AS k0, ? AS l0, ? AS c0 UNION ALL SELECT ?,?,? …) AS v STRAIGHT_JOIN t
//	ON t.id=v.k0 AND t.version=v.l0 SET t.c=v.c0, t.version=COALESCE(t.version,0)+1
func (mysqlDialect) buildEach(b clause.Builder, w eachWrite) {
	b.WriteString("UPDATE ")
	w.writeRowsMySQL(b)
	b.WriteString(" STRAIGHT_JOIN ")
	b.WriteQuoted(clause.Table{Name: clause.CurrentTable})
	b.WriteString(" ON ")
	w.writeMatch(b, true)
	b.WriteString(" SET ")
	w.writeSet(b, true)
}

// writeRowsMySQL writes the derived table "(SELECT ? AS k0, … UNION ALL SELECT ?, … ) AS v".
func (w eachWrite) writeRowsMySQL(b clause.Builder) {
	b.WriteByte('(')
	for pos := w.c.start; pos < w.c.end; pos++ {
		if pos > w.c.start {
			b.WriteString(" UNION ALL ")
		}
		r := w.st.each.order[pos]
		b.WriteString("SELECT ")
		for i := range w.width() {
			if i > 0 {
				b.WriteByte(',')
			}
			w.writeValue(b, r, i, false, false)
			if pos == w.c.start {
				b.WriteString(" AS ")
				b.WriteQuoted(w.alias(i))
			}
		}
	}
	b.WriteString(") AS ")
	b.WriteQuoted("v")
}
