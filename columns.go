package optlock

import (
	"strings"

	"gorm.io/gorm"
)

// storedColumns reads the types of the table's columns as the database has them, once per model and
// table (the lock spec that uses them is cached). A table made by hand, or before optlock, may hold a
// timestamp coarser than GORM's migrator would create (MySQL datetime, whole seconds; PostgreSQL
// timestamptz(0)) or without a time zone: the lock must round, compare and advance by what is really
// stored, never by what a tag says. It returns nil when the types cannot be read; the migrator's
// types are used then.
//
// The query runs on the statement's own connection, so a table made in the caller's uncommitted
// transaction is seen; inside a PostgreSQL transaction it runs under a savepoint, so a failure
// cannot abort the caller's transaction.
func storedColumns(p *Plugin, stmt *gorm.Statement) map[string]gorm.ColumnType {
	db := stmt.DB.Session(&gorm.Session{NewDB: true, Context: stmt.Context, SkipDefaultTransaction: true})
	db.Statement.ConnPool = stmt.ConnPool
	_, inTx := stmt.ConnPool.(gorm.TxCommitter)
	savepoint := ""
	if inTx && stmt.Dialector.Name() == "postgres" {
		savepoint = p.savepointName()
		if execRaw(stmt.DB, stmt.Context, "SAVEPOINT "+savepoint) != nil {
			return nil
		}
	}
	types, err := db.Migrator().ColumnTypes(stmt.Table)
	if savepoint != "" {
		ctx, cancel := undoContext(stmt.Context)
		defer cancel()
		if err != nil {
			_ = execRaw(stmt.DB, ctx, "ROLLBACK TO SAVEPOINT "+savepoint)
		}
		_ = execRaw(stmt.DB, ctx, "RELEASE SAVEPOINT "+savepoint)
	}
	if err != nil {
		return nil
	}
	byName := make(map[string]gorm.ColumnType, len(types))
	for _, t := range types {
		byName[strings.ToLower(t.Name())] = t
	}
	return byName
}
