//go:build !sqlite_glebarez && !sqlite_ncruces

package tests

import (
	"context"
	"database/sql"
	"strconv"

	"github.com/mattn/go-sqlite3"
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"

	"github.com/go-optlock/optlock/internal/testenv"
)

// The SQLite driver of this test binary: GORM's own, on github.com/mattn/go-sqlite3 (cgo), the
// default. `-tags sqlite_glebarez` or `-tags sqlite_ncruces` builds the tests on a pure-Go driver
// instead: one driver per binary, since mattn's and ncruces' both register database/sql's "sqlite3",
// and two SQLite libraries in one process must not share a database file (each keeps its own
// bookkeeping of the POSIX locks the process holds).
const sqliteDriver = "mattn"

// sqlDriverName is the database/sql name of this binary's SQLite driver.
const sqlDriverName = "sqlite3"

// sqliteDSN is a SQLite file at path for concurrent writers: WAL, a busy timeout of busyMS
// milliseconds, and transactions that take the write lock when they begin.
func sqliteDSN(path string, busyMS int) string {
	if busyMS == 10000 {
		return testenv.SQLiteDSN(path)
	}
	return "file:" + path + "?_journal_mode=WAL&_busy_timeout=" + strconv.Itoa(busyMS) + "&_txlock=immediate"
}

// sqliteInTransaction asks the driver whether conn is inside a transaction.
func sqliteInTransaction(_ context.Context, conn *sql.Conn) (bool, error) {
	var open bool
	err := conn.Raw(func(driverConn any) error {
		open = !driverConn.(*sqlite3.SQLiteConn).AutoCommit()
		return nil
	})
	return open, err
}

// sqliteOpen is this driver's GORM dialector for a DSN.
func sqliteOpen(dsn string) gorm.Dialector { return sqlite.Open(dsn) }

// sqliteOn is this driver's GORM dialector on an open pool.
func sqliteOn(conn gorm.ConnPool) gorm.Dialector { return &sqlite.Dialector{Conn: conn} }
