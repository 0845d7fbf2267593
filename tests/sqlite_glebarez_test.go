//go:build sqlite_glebarez

package tests

import (
	"strconv"

	"github.com/glebarez/sqlite"
	"gorm.io/gorm"
)

// The SQLite driver of this test binary (-tags sqlite_glebarez): github.com/glebarez/sqlite, pure Go
// (modernc.org's SQLite translated to Go). See sqlite_mattn_test.go.
const sqliteDriver = "glebarez"

// sqlDriverName is the database/sql name of this binary's SQLite driver.
const sqlDriverName = "sqlite"

// sqliteDSN is a SQLite file at path for concurrent writers: WAL, a busy timeout of busyMS
// milliseconds, and transactions that take the write lock when they begin. The busy timeout comes
// first: the pragmas run in order, and journal_mode waits for a lock another connection may hold.
func sqliteDSN(path string, busyMS int) string {
	return "file:" + path + "?_pragma=busy_timeout(" + strconv.Itoa(busyMS) + ")&_pragma=journal_mode(WAL)&_txlock=immediate"
}

// sqliteOpen is this driver's GORM dialector for a DSN.
func sqliteOpen(dsn string) gorm.Dialector { return sqlite.Open(dsn) }

// sqliteOn is this driver's GORM dialector on an open pool.
func sqliteOn(conn gorm.ConnPool) gorm.Dialector { return &sqlite.Dialector{Conn: conn} }
