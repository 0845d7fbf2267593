package tests

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"gorm.io/driver/mysql"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"

	"github.com/go-optlock/optlock"
	"github.com/go-optlock/optlock/internal/testenv"
)

// The type tests (dry runs, time zones, schemas, hand-made column types, caches) use tables and types
// named typ_…, so they can run beside other tests on the shared servers.

// TypStamp is a gorm.Model: its lock is updated_at, a timestamp.
type TypStamp struct {
	gorm.Model
	Body string
}

func (TypStamp) TableName() string { return "typ_stamps" }

// TypItem has an integer version lock.
type TypItem struct {
	ID      uint `gorm:"primaryKey"`
	Qty     int
	Version int64
}

func (TypItem) TableName() string { return "typ_items" }

// openTyped is openConfigured with the caller's dialector of the test's choosing: dsn returns the
// dialector for the server's default DSN (nil: the default dialector). The observer is opened as
// openConfigured opens it; tables are made by the test.
func openTyped(t *testing.T, d dialect, cfg *gorm.Config, dial func(dsn string) gorm.Dialector, opts ...optlock.Option) configured {
	t.Helper()
	observer, err := d.open(t)
	if err != nil {
		if testenv.Required(d.name) {
			t.Fatalf("%v (required: CI=true or OPTLOCK_REQUIRE_DBS)", err)
		}
		t.Skipf("skipping %s: %v", d.name, err)
	}
	var dialector gorm.Dialector
	switch d.name {
	case "sqlite":
		path := filepath.Join(t.TempDir(), "typed.db")
		observer, err = openSQLiteFile(path)
		require.NoError(t, err)
		t.Cleanup(func() {
			if conn, err := observer.DB(); err == nil {
				_ = conn.Close()
			}
		})
		dialector = sqliteOpen(sqliteDSN(path, 10000))
	case "postgres":
		// An observer of its own: the shared pool's connections keep prepared plans of tables that
		// other tests made with other column types ("cached plan must not change result type").
		observer, err = gorm.Open(postgres.Open(testenv.PostgresDSN()), gormConfig())
		require.NoError(t, err)
		if conn, err := observer.DB(); err == nil {
			t.Cleanup(func() { _ = conn.Close() })
		}
		dialector = postgres.Open(testenv.PostgresDSN())
		if dial != nil {
			dialector = dial(testenv.PostgresDSN())
		}
	case "mysql":
		dialector = mysql.Open(testenv.MySQLDSN())
		if dial != nil {
			dialector = dial(testenv.MySQLDSN())
		}
	}
	cfg.Logger = gormConfig().Logger
	db, err := gorm.Open(dialector, cfg)
	require.NoError(t, err)
	pool, err := db.DB()
	require.NoError(t, err)
	t.Cleanup(func() { _ = pool.Close() })
	require.NoError(t, db.Use(optlock.New(opts...)))
	return configured{db: db, pool: pool, observer: observer}
}

// typTables recreates the models' tables through the observer and drops them when the test ends.
func typTables(t *testing.T, c configured, models ...any) {
	t.Helper()
	recreate(t, c.observer, models...)
	t.Cleanup(func() { _ = c.observer.Migrator().DropTable(models...) })
}

// typExec runs statements through the observer, failing the test on the first error.
func typExec(t *testing.T, c configured, statements ...string) {
	t.Helper()
	for _, s := range statements {
		require.NoError(t, c.observer.Exec(s).Error, s)
	}
}

// typCleanup runs statements through the observer when the test ends, ignoring errors (DROP … IF EXISTS).
func typCleanup(t *testing.T, c configured, statements ...string) {
	t.Helper()
	t.Cleanup(func() {
		for _, s := range statements {
			_ = c.observer.Exec(s).Error
		}
	})
}
