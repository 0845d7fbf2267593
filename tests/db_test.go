package tests

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gorm.io/driver/mysql"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/go-optlock/optlock"
	"github.com/go-optlock/optlock/internal/testenv"
)

// dialect is one database the tests run against.
type dialect struct {
	name string
	open func(t testing.TB) (*gorm.DB, error)
}

var dialects = []dialect{
	{"sqlite", tracked("sqlite", openSQLite)},
	{"postgres", tracked("postgres", sharedServer("pgx", "OPTLOCK_POSTGRES_DSN", testenv.PostgresDSN(), func(conn *sql.DB) gorm.Dialector {
		return postgres.New(postgres.Config{Conn: conn})
	}))},
	{"mysql", tracked("mysql", sharedServer("mysql", "OPTLOCK_MYSQL_DSN", testenv.MySQLDSN(), func(conn *sql.DB) gorm.Dialector {
		return mysql.New(mysql.Config{Conn: conn})
	}))},
}

func gormConfig() *gorm.Config {
	level := logger.Silent
	if os.Getenv("OPTLOCK_SQL_LOG") != "" {
		level = logger.Info
	}
	return &gorm.Config{Logger: logger.Default.LogMode(level)}
}

// openSQLite opens a fresh database file: a file, not :memory:, so every pooled connection and every
// process sees the same data; WAL and a busy timeout let concurrent writers queue instead of failing.
func openSQLite(t testing.TB) (*gorm.DB, error) {
	db, err := openSQLiteFile(filepath.Join(t.TempDir(), "optlock.db"))
	if err == nil {
		t.Cleanup(func() {
			if conn, err := db.DB(); err == nil {
				_ = conn.Close()
			}
		})
	}
	return db, err
}

func openSQLiteFile(path string) (*gorm.DB, error) {
	return gorm.Open(sqliteOpen(sqliteDSN(path, 10000)), gormConfig())
}

// sharedServer shares one connection pool per server across the test binary; each test gets a
// *gorm.DB of its own on it, so plugins registered by one test stay out of the others.
func sharedServer(driver, env, dsn string, dialector func(*sql.DB) gorm.Dialector) func(testing.TB) (*gorm.DB, error) {
	var (
		once sync.Once
		conn *sql.DB
		err  error
	)
	return func(testing.TB) (*gorm.DB, error) {
		once.Do(func() {
			if conn, err = sql.Open(driver, dsn); err == nil {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				err = conn.PingContext(ctx)
			}
			if err != nil {
				err = fmt.Errorf("%s at %q (set %s) unreachable: %w", driver, dsn, env, err)
			}
		})
		if err != nil {
			return nil, err
		}
		return gorm.Open(dialector(conn), gormConfig())
	}
}

// eachDB runs fn once per database, on a *gorm.DB with the plugin registered and the given models'
// tables freshly created (and dropped afterwards).
func eachDB(t *testing.T, models []any, fn func(t *testing.T, db *gorm.DB), opts ...optlock.Option) {
	t.Helper()
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			db := openDB(t, d, models, opts...)
			fn(t, db)
		})
	}
}

// openDB opens dialect d with the plugin and fresh tables for models.
func openDB(t *testing.T, d dialect, models []any, opts ...optlock.Option) *gorm.DB {
	t.Helper()
	db, err := d.open(t)
	if err != nil {
		if testenv.Required(d.name) {
			t.Fatalf("%v (required: CI=true or OPTLOCK_REQUIRE_DBS)", err)
		}
		t.Skipf("skipping %s: %v", d.name, err)
	}
	require.NoError(t, db.Use(optlock.New(opts...)))
	recreate(t, db, models...)
	t.Cleanup(func() { _ = db.Migrator().DropTable(models...) })
	return db
}

func recreate(t *testing.T, db *gorm.DB, models ...any) {
	t.Helper()
	require.NoError(t, db.Migrator().DropTable(models...))
	require.NoError(t, db.AutoMigrate(models...))
}
