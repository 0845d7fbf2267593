package optlock

import (
	"database/sql"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
	"gorm.io/gorm/schema"
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
