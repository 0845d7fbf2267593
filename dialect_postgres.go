package optlock

import (
	"database/sql"
	"database/sql/driver"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
	"gorm.io/gorm/schema"
)

// postgresDialect writes PostgreSQL's SQL (GORM's PostgreSQL dialector, pgx).
type postgresDialect struct {
	standardSavepoints
	rowsTestedInWhere
}

func (postgresDialect) bindVarLimit() int   { return 65535 }
func (postgresDialect) errorAbortsTx() bool { return true }
func (postgresDialect) rowLocks() bool      { return true }

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

// postgresQuotedTable matches a table expression GORM quoted: "name" or "schema"."name".
var postgresQuotedTable = regexp.MustCompile(`^"((?:[^"]|"")+)"(?:\."((?:[^"]|"")+)")?$`)

func (postgresDialect) quotedTable() *regexp.Regexp { return postgresQuotedTable }

func (postgresDialect) columnReader() func(*gorm.Statement, gorm.ConnPool, tableKey) (*tableColumns, error) {
	return readPostgresColumns
}

// postgresColumnsSQL reads the columns of the table the name resolves to, as the statement's own name
// resolves (search path included): to_regclass of the quoted name.
const postgresColumnsSQL = `SELECT a.attname, t.typname, n.nspname, a.atttypmod
FROM pg_catalog.pg_attribute a
JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped`

func readPostgresColumns(stmt *gorm.Statement, pool gorm.ConnPool, key tableKey) (*tableColumns, error) {
	quote := func(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
	name := quote(key.table) // a parameter, parsed as a name by to_regclass, never as SQL
	if key.schema != "" {
		name = quote(key.schema) + "." + name
	}
	cols := &tableColumns{byName: map[string]storedColumn{}}
	err := queryCatalog(stmt, pool, postgresColumnsSQL, []any{name}, func(rows *sql.Rows) error {
		var column, typ, typSchema string
		var typmod int64
		if err := rows.Scan(&column, &typ, &typSchema, &typmod); err != nil {
			return err
		}
		c := storedColumn{typeName: typ, precision: -1}
		if typ == "timestamp" || typ == "timestamptz" || typ == "time" || typ == "timetz" {
			if typmod >= 0 && typmod <= 6 {
				c.precision = int(typmod)
			}
		}
		c.cast, c.castErr = postgresTypeSQL(stmt, typSchema, typ)
		cols.byName[column] = c
		return nil
	})
	return cols, err
}

// builtinTypeName is a PostgreSQL built-in type's name, safe to write as it is.
var builtinTypeName = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)

// plainIdentifier is a schema or type name that can be quoted safely: no quote, dot or other
// character GORM's quoting would have to escape.
var plainIdentifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_$]*$`)

// sqlTypeNames are the SQL names of built-in types whose catalog names differ (int8 is bigint).
var sqlTypeNames = map[string]string{
	"int2": "smallint", "int4": "integer", "int8": "bigint", "float4": "real",
	"float8": "double precision", "bool": "boolean",
}

// postgresTypeSQL is the type as CAST(? AS …) takes it: a built-in type by its name (never with a
// length: a value longer than the column must not be cut down to match another row), any other
// (an enum, a domain, an extension's type) schema-qualified and quoted through GORM's quoting. A name
// that quoting could not keep intact is refused.
func postgresTypeSQL(stmt *gorm.Statement, typSchema, typ string) (string, error) {
	if typSchema == "pg_catalog" && builtinTypeName.MatchString(typ) {
		if name, ok := sqlTypeNames[typ]; ok {
			return name, nil
		}
		return typ, nil
	}
	if !plainIdentifier.MatchString(typSchema) || !plainIdentifier.MatchString(typ) {
		return "", invalidf("column type %q.%q cannot be written into a cast safely: rename it to letters, digits and underscores", typSchema, typ)
	}
	var b strings.Builder
	stmt.DB.Dialector.QuoteTo(&b, typSchema)
	b.WriteByte('.')
	stmt.DB.Dialector.QuoteTo(&b, typ)
	return b.String(), nil
}

// castType is the type a VALUES list casts a value of column f to: the column's type as stored, or
// as GORM would create it when the stored types are not known.
func (postgresDialect) castType(stmt *gorm.Statement, f *schema.Field, columns *tableColumns) (string, error) {
	if c, ok := columns.column(f.DBName); ok {
		return c.cast, c.castErr
	}
	return postgresCastType(stmt, f), nil
}

// postgresCastType is the column type a PostgreSQL VALUES list needs to compare with f, as GORM would
// create it. Serial types name a sequence default, not a type.
func postgresCastType(stmt *gorm.Statement, f *schema.Field) string {
	t := strings.TrimSpace(strings.ToLower(stmt.Dialector.DataTypeOf(f)))
	switch t {
	case "smallserial":
		return "smallint"
	case "serial":
		return "integer"
	case "bigserial":
		return "bigint"
	}
	return t
}

func (postgresDialect) binaryCast(storedColumn, *schema.Field) string { return "" }

// timeLock casts the snapshot to the column's type at its precision (microseconds at most); a
// timestamp without time zone stores a wall clock.
func (postgresDialect) timeLock(lf *lockField, typeName string, digits int) int {
	if digits < 0 || digits > 6 {
		digits = 6
	}
	switch typeName {
	case "timestamp", "timestamp without time zone":
		lf.wallClock = true
		typeName = "timestamp"
	case "timestamptz", "timestamp with time zone":
		typeName = "timestamptz"
	default:
		if !builtinTypeName.MatchString(typeName) {
			typeName = "timestamptz" // never SQL from a name that was not checked
		}
	}
	lf.castType = typeName + "(" + strconv.Itoa(digits) + ")"
	return digits
}

// keyListFirst is false: a VALUES list is planned as a join on the primary key.
func (postgresDialect) keyListFirst() bool { return false }

// locksInKeyOrder is true: PostgreSQL locks rows in the order its plan meets them (buildKeyOrderLock).
func (postgresDialect) locksInKeyOrder() bool { return true }

func (postgresDialect) writeKeyOrderLock(b clause.Builder, p lockPredicate) { p.buildKeyOrderLock(b) }

// rowList is a VALUES list, its first row cast to the columns' types: PostgreSQL plans a long
// row-value IN list as a chain of ORs, slow to plan and to JIT-compile.
func (postgresDialect) rowList() rowListForm { return typedValuesList }

// inlinesIntegers is false: integer rows are bound as arrays (compactRows).
func (postgresDialect) inlinesIntegers() bool { return false }

// compactRows binds integer keys and versions as arrays (usesIntArrays).
func (postgresDialect) compactRows(p lockPredicate) bool { return p.usesIntArrays() }

func (postgresDialect) writeCompactRows(b clause.Builder, p lockPredicate) { p.buildIntArrays(b) }

// instant is empty: a timestamp is compared as the cast value it is.
func (postgresDialect) instant(lockField) (string, string) { return "", "" }

// buildKeyOrderLock writes the key-order lock of the predicate's rows, their keys as a list:
// "id = ANY(ARRAY(SELECT id FROM t WHERE id IN (...) ORDER BY id FOR UPDATE))" ("(a, b) IN (SELECT
// a, b ...)" for a composite key).
//
// Two bulk writes over the same rows must lock them in the same order, or each can hold a row the
// other waits for: a deadlock. MySQL and MariaDB walk the primary key in order for a row-value IN, and
// SQLite locks the whole database, but PostgreSQL locks rows in whatever order its plan meets them (a
// hash join meets them in the order they lie on disk). A sub-select that sorts the keys and locks them
// FOR UPDATE runs once, before the update, and takes the locks in key order.
func (p lockPredicate) buildKeyOrderLock(b clause.Builder) {
	w := p.width()
	composite := len(p.spec.keys) > 1
	writeKeyOrderLock(b, p.spec.keys, func() {
		b.WriteString(" IN (")
		if composite {
			// A row-value list recurses once per element in PostgreSQL's parser; VALUES does not.
			b.WriteString("VALUES ")
		}
		for r := range p.rows() {
			if r > 0 {
				b.WriteByte(',')
			}
			key := p.values[r*w : r*w+len(p.spec.keys)]
			if len(key) == 1 {
				b.AddVar(b, key[0])
			} else {
				b.WriteByte('(')
				for i := range key {
					if i > 0 {
						b.WriteByte(',')
					}
					p.writeValue(b, key, i, r == 0)
				}
				b.WriteByte(')')
			}
		}
		b.WriteByte(')')
	})
}

// writeKeyOrderLock writes "id = ANY(ARRAY(SELECT id FROM t WHERE id<match> ORDER BY id FOR UPDATE))"
// ("(a,b) IN (SELECT a,b FROM t WHERE (a,b)<match> ORDER BY a,b FOR UPDATE)" for a composite key),
// where match writes how the keys are matched with the rows' (a list of values, or arrays).
func writeKeyOrderLock(b clause.Builder, keys []keyField, match func()) {
	composite := len(keys) > 1
	writeKeys := func(row bool) {
		if row {
			b.WriteByte('(')
		}
		writeList(b, len(keys), func(i int) { b.WriteQuoted(clause.Column{Name: keys[i].field.DBName}) })
		if row {
			b.WriteByte(')')
		}
	}
	writeKeys(composite)
	if composite {
		b.WriteString(" IN (SELECT ")
	} else {
		// An ARRAY(sub-select) is an init plan: it runs once, first, and the outer scan can still use
		// the primary key, where IN (sub-select) would be planned as a join over the whole table.
		b.WriteString(" = ANY(ARRAY(SELECT ")
	}
	writeKeys(false)
	b.WriteString(" FROM ")
	b.WriteQuoted(clause.Table{Name: clause.CurrentTable})
	b.WriteString(" WHERE ")
	writeKeys(composite)
	match()
	b.WriteString(" ORDER BY ")
	writeKeys(false)
	b.WriteString(" FOR UPDATE)")
	if !composite {
		b.WriteByte(')')
	}
}

// usesIntArrays reports whether the predicate can bind its keys and locks as integer arrays.
//
// A bulk write whose key and lock columns are all integers binds them as arrays: three
// parameters and one SQL text for any number of rows, so pgx prepares the statement once and the
// planner does not re-plan a list of thousands of values on every call:
//
//	"id" = ANY(ARRAY(SELECT "id" FROM "items" WHERE "id" = ANY(CAST(CAST($1 AS text) AS bigint[])) ORDER BY "id" FOR UPDATE))
//	AND ("id","version") IN (SELECT * FROM unnest(CAST(CAST($2 AS text) AS bigint[]), CAST(CAST($3 AS text) AS bigint[])))
//
// The first condition is the key-order lock (an init plan); the second the check. A lock value that may
// be stored as NULL is compared as COALESCE(column, 0).
func (p lockPredicate) usesIntArrays() bool {
	if p.rows() < 2 || !p.lockInKeyOrder {
		return false
	}
	for _, k := range p.spec.keys {
		if !isIntegerKey(k.field) {
			return false
		}
	}
	for _, l := range p.spec.locks {
		if l.kind == timeLock {
			return false
		}
	}
	return true
}

// buildIntArrays writes the array form of the predicate. Each column's array is built once, and bound
// wherever the statement needs it.
func (p lockPredicate) buildIntArrays(b clause.Builder) {
	w, k := p.width(), len(p.spec.keys)
	arrays := make([]pgIntArray, w)
	for i := range arrays {
		arrays[i] = make(pgIntArray, p.rows())
		for r := range arrays[i] {
			arrays[i][r] = intOf(p.values[r*w+i])
		}
	}
	array := func(i int) {
		// Typed as text, the parameter goes to the server as the array's text, which PostgreSQL parses;
		// typed as bigint[], pgx would parse the text into a Go slice and encode it again.
		b.WriteString("CAST(CAST(")
		b.AddVar(b, arrays[i])
		b.WriteString(" AS text) AS bigint[])")
	}
	// The key-order lock.
	writeKeyOrderLock(b, p.spec.keys, func() {
		if k == 1 {
			b.WriteString(" = ANY(")
			array(0)
			b.WriteByte(')')
		} else {
			b.WriteString(" IN (SELECT * FROM unnest(")
			writeList(b, k, array)
			b.WriteString("))")
		}
	})
	// The check.
	b.WriteString(" AND (")
	writeList(b, w, func(i int) { p.writeColumn(b, i, i >= k && p.nullable(i-k)) })
	b.WriteString(") IN (SELECT * FROM unnest(")
	writeList(b, w, array)
	b.WriteString("))")
}

// pgIntArray binds a list of integers as one PostgreSQL array parameter, in its text form.
type pgIntArray []int64

// Value implements driver.Valuer.
func (a pgIntArray) Value() (driver.Value, error) {
	var sb strings.Builder
	sb.Grow(len(a)*8 + 2)
	sb.WriteByte('{')
	buf := make([]byte, 0, 20)
	for i, v := range a {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.Write(strconv.AppendInt(buf[:0], v, 10))
	}
	sb.WriteByte('}')
	return sb.String(), nil
}

// lockingRead is empty: a READ COMMITTED statement reads the latest committed rows.
func (postgresDialect) lockingRead() string { return "" }

// buildEach writes UpdateEach's statement: a VALUES list typed by its first row (timestamp locks cast
// in every row), joined in FROM, after the key-order lock.
//
//	UPDATE t SET c=v.c0, version=COALESCE(t.version,0)+1 FROM (VALUES (CAST(? AS int8),…),…) AS v(k0,l0,c0)
//	WHERE id = ANY(ARRAY(SELECT id … ORDER BY id FOR UPDATE)) AND t.id=v.k0 AND t.version=v.l0
func (postgresDialect) buildEach(b clause.Builder, w eachWrite) {
	b.WriteString("UPDATE ")
	b.WriteQuoted(clause.Table{Name: clause.CurrentTable})
	b.WriteString(" SET ")
	w.writeSet(b, false)
	b.WriteString(" FROM (VALUES ")
	w.writeValueRows(b, true, true)
	b.WriteString(") AS ")
	b.WriteQuoted("v")
	b.WriteByte('(')
	w.writeAliases(b)
	b.WriteString(") WHERE ")
	w.predicate().buildKeyOrderLock(b)
	b.WriteString(" AND ")
	w.writeMatch(b, false)
}
