package optlock

import (
	"database/sql"
	"strings"
	"time"

	"gorm.io/gorm"
)

// storedColumn is one column's type as the database has it.
type storedColumn struct {
	// typeName is the type's name in the catalog, lower case for built-in types: "timestamptz",
	// "datetime", "uuid", "bpchar", "binary", or an enum's own name.
	typeName string
	// precision is a timestamp's number of fractional-second digits; -1 when not known.
	precision int
	// cast is, on PostgreSQL, the type as CAST(? AS …) takes it: a built-in name, or the schema and
	// name quoted; empty when the name cannot be written safely (castErr says why).
	cast    string
	castErr error
	// binary marks a MySQL binary string column (binary, varbinary, blob): a value in a derived
	// table must be cast to BINARY, or it is typed as text in the connection's character set.
	binary bool
}

// tableColumns are a table's columns as the database has them, by name.
type tableColumns struct {
	byName map[string]storedColumn
	// foldCase says names match whatever their case (MySQL); PostgreSQL's are exact.
	foldCase bool
}

// column returns the stored column called name; a nil receiver (types not read) has none.
func (c *tableColumns) column(name string) (storedColumn, bool) {
	if c == nil {
		return storedColumn{}, false
	}
	if c.foldCase {
		name = strings.ToLower(name)
	}
	col, ok := c.byName[name]
	return col, ok
}

// tableKey names a table as the statement writes it: schema (empty for the connection's default
// schema or search path) and name.
type tableKey struct {
	dialect, schema, table string
}

// tableOf returns the table the statement writes, schema included: Table("s.items") and a TableName
// of "s.items" leave stmt.Table as "items" and keep the schema only in stmt.TableExpr.
func tableOf(stmt *gorm.Statement) tableKey {
	key := tableKey{dialect: stmt.Dialector.Name(), table: stmt.Table}
	if e := stmt.TableExpr; e != nil && len(e.Vars) == 0 {
		if d, ok := dialectNamed(key.dialect); ok && d.quotedTable() != nil {
			re := d.quotedTable()
			if m := re.FindStringSubmatch(e.SQL); m != nil {
				q := e.SQL[:1]
				unquote := func(s string) string { return strings.ReplaceAll(s, q+q, q) }
				if m[2] == "" {
					key.table = unquote(m[1])
				} else {
					key.schema, key.table = unquote(m[1]), unquote(m[2])
				}
			}
		}
	}
	return key
}

// storedColumns returns the types of the statement's table as the database has them, read once per
// table while it stays in the plugin's cache. A table made by hand, or before optlock, may hold a
// timestamp coarser than GORM's migrator would create (MySQL datetime, whole seconds; PostgreSQL
// timestamptz(0)) or without a time zone, a uuid or char(n) key where the model has a string, a
// binary(16) key, an enum: the lock must round, compare, cast and advance by what is really stored,
// never by what a tag says. It returns nil when the types cannot be read (the migrator's types are
// used then, and the read is tried again on the next write); SQLite, which compares by value whatever
// a column's declared type, is not asked.
//
// The query goes to the statement's own connection, not through GORM's callbacks: a table made in the
// caller's uncommitted transaction is seen, a dry run reads the real types (its SQL is then the SQL a
// real write sends), and no resolver routes it to a replica. Inside the caller's PostgreSQL
// transaction on a database where an error aborts it (PostgreSQL) it runs under a savepoint, so a
// failure cannot abort that transaction. It is one extra
// round trip on the first write of each table (while the table stays in the cache).
func storedColumns(p *Plugin, stmt *gorm.Statement) *tableColumns {
	key := tableOf(stmt)
	d, ok := dialectNamed(key.dialect)
	if !ok || d.columnReader() == nil {
		return nil
	}
	_, pinned := stmt.ConnPool.(gorm.TxCommitter)
	return p.columns.get(stmt.Context, key, pinned, func() *tableColumns {
		return readColumns(p, stmt, key, d)
	})
}

// readColumns queries the catalog for the table's columns.
func readColumns(p *Plugin, stmt *gorm.Statement, key tableKey, d sqlDialect) *tableColumns {
	pool := stmt.ConnPool
	if prepared, ok := pool.(*gorm.PreparedStmtTX); ok {
		pool = prepared.Tx
	}
	_, inTx := pool.(gorm.TxCommitter)
	// In the transaction GORM opened for this very write a failure would only fail the write, which
	// the read cannot harm otherwise: no savepoint (two round trips) is needed there.
	_, gormTx := stmt.DB.InstanceGet(gormStartedTransaction)
	var cols *tableColumns
	err, _ := p.readUnderSavepoint(stmt.DB, d, inTx && !gormTx, "", func() (err error) {
		cols, err = d.columnReader()(stmt, pool, key)
		return err
	})
	if err != nil || len(cols.byName) == 0 {
		return nil // no such table (yet): not cached, so a table made later is read then
	}
	return cols
}

// queryCatalog runs a catalog query on pool, logged as the statement's other queries are, and hands
// each row to scan.
func queryCatalog(stmt *gorm.Statement, pool gorm.ConnPool, query string, vars []any, scan func(*sql.Rows) error) (err error) {
	begin := time.Now()
	var n int64
	defer func() {
		stmt.DB.Logger.Trace(stmt.Context, begin, func() (string, int64) {
			return stmt.DB.Dialector.Explain(query, vars...), n
		}, err)
	}()
	rows, err := pool.QueryContext(stmt.Context, query, vars...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err = scan(rows); err != nil {
			return err
		}
		n++
	}
	return rows.Err()
}
