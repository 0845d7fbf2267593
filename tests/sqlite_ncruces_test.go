//go:build sqlite_ncruces

package tests

import (
	"strconv"

	_ "github.com/ncruces/go-sqlite3/embed" // the SQLite build the driver runs (Wasm, in wazero)
	"github.com/ncruces/go-sqlite3/gormlite"
	"gorm.io/gorm"
)

// The SQLite driver of this test binary (-tags sqlite_ncruces): github.com/ncruces/go-sqlite3's GORM
// driver, gormlite, pure Go (SQLite compiled to Wasm, run by wazero). See sqlite_mattn_test.go.
const sqliteDriver = "ncruces"

// sqlDriverName is the database/sql name of this binary's SQLite driver.
const sqlDriverName = "sqlite3"

// sqliteDSN is a SQLite file at path for concurrent writers: WAL, a busy timeout of busyMS
// milliseconds, and transactions that take the write lock when they begin. The busy timeout comes
// first: the pragmas run in order, and journal_mode waits for a lock another connection may hold.
func sqliteDSN(path string, busyMS int) string {
	return "file:" + path + "?_pragma=busy_timeout(" + strconv.Itoa(busyMS) + ")&_pragma=journal_mode(wal)&_txlock=immediate"
}

// sqliteOpen is this driver's GORM dialector for a DSN.
func sqliteOpen(dsn string) gorm.Dialector { return gormlite.Open(dsn) }

// sqliteOn is this driver's GORM dialector on an open pool.
func sqliteOn(conn gorm.ConnPool) gorm.Dialector { return gormlite.OpenDB(conn) }
