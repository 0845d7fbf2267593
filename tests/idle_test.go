package tests

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/stdlib"
	"github.com/stretchr/testify/require"
	"gorm.io/gorm"
)

// requireNoOpenTransaction checks out every idle connection of pool at once (so each is a different
// one) and asks the database whether it is inside a transaction: what another session would see as
// "idle in transaction", holding its row locks.
func requireNoOpenTransaction(t *testing.T, pool *sql.DB, dialect string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	idle := pool.Stats().Idle
	conns := make([]*sql.Conn, 0, idle)
	defer func() {
		for _, conn := range conns {
			_ = conn.Close()
		}
	}()
	for range idle {
		conn, err := pool.Conn(ctx)
		require.NoError(t, err)
		conns = append(conns, conn)
		open, err := inTransaction(ctx, conn, dialect)
		require.NoError(t, err)
		require.False(t, open, "a connection of the caller's pool was given back inside an open transaction")
	}
}

// inTransaction asks the database whether conn is inside a transaction.
func inTransaction(ctx context.Context, conn *sql.Conn, dialect string) (bool, error) {
	switch dialect {
	case "postgres":
		// The transaction status of the server's last ReadyForQuery: 'I' outside a transaction.
		var open bool
		err := conn.Raw(func(driverConn any) error {
			open = driverConn.(*stdlib.Conn).Conn().PgConn().TxStatus() != 'I'
			return nil
		})
		return open, err
	case "mysql":
		var open int
		err := conn.QueryRowContext(ctx, "SELECT @@in_transaction").Scan(&open)
		return open != 0, err
	default:
		return sqliteInTransaction(ctx, conn)
	}
}

// endLeftTransactions rolls back whatever transaction a failed test left open on pool's idle
// connections and, on PostgreSQL, ends the sessions of the pool's application name that a leaked
// *sql.Tx still holds, so the cleanup's DROP TABLE does not wait behind their locks.
func endLeftTransactions(observer *gorm.DB, pool *sql.DB, appName string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	idle := pool.Stats().Idle
	conns := make([]*sql.Conn, 0, idle)
	for range idle {
		conn, err := pool.Conn(ctx)
		if err != nil {
			break
		}
		conns = append(conns, conn)
		if open, err := inTransaction(ctx, conn, observer.Dialector.Name()); err == nil && open {
			_, _ = conn.ExecContext(ctx, "ROLLBACK")
		}
	}
	for _, conn := range conns {
		_ = conn.Close()
	}
	if pool.Stats().InUse > 0 && observer.Dialector.Name() == "postgres" {
		observer.Exec("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = ?", appName)
	}
}
