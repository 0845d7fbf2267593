//go:build sqlite_glebarez || sqlite_ncruces

package tests

import (
	"context"
	"database/sql"
	"strings"
)

// sqliteInTransaction says whether conn is inside a transaction, for a driver that does not expose
// SQLite's autocommit flag: a BEGIN inside a transaction fails with "cannot start a transaction within
// a transaction"; outside one it begins one, which is rolled back again.
func sqliteInTransaction(ctx context.Context, conn *sql.Conn) (bool, error) {
	_, err := conn.ExecContext(ctx, "BEGIN")
	switch {
	case err != nil && strings.Contains(err.Error(), "within a transaction"):
		return true, nil
	case err != nil:
		return false, err
	}
	_, err = conn.ExecContext(ctx, "ROLLBACK")
	return false, err
}
