package tests

import (
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
	"gorm.io/driver/mysql"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"

	"github.com/go-optlock/optlock"
	"github.com/go-optlock/optlock/internal/testenv"
)

// Configurations: the plugin must behave the same however the application configured GORM. Each test
// opens the caller's database on a connection pool of its own, with the configuration under test in
// gorm.Config, and reads the results back through a separate pool, as another process would.

// CfgItem is the configuration tests' model (own table, so packages can run in parallel).
type CfgItem struct {
	ID      uint `gorm:"primaryKey"`
	Qty     int
	Version int64
}

func (CfgItem) TableName() string { return "cfg_items" }

// CfgStamp is a gorm.Model with a timestamp lock (updated_at) and the hand-made precision a table
// created before optlock may have.
type CfgStamp struct {
	gorm.Model
	Body string
}

func (CfgStamp) TableName() string { return "cfg_stamps" }

// configured is the caller's database opened with one configuration, and what the checks need.
type configured struct {
	db       *gorm.DB // the caller's, with the plugin
	pool     *sql.DB  // the caller's connection pool
	observer *gorm.DB // a separate pool on the same database
	// appName is the caller's PostgreSQL application_name, by which its sessions are found.
	appName string
}

// configuredPools numbers the pools openConfigured opens, for their PostgreSQL application_name.
var configuredPools atomic.Int64

// openConfigured opens dialect d on a connection pool of its own with cfg, registers the plugin, and
// recreates the models' tables through the observer.
func openConfigured(t *testing.T, d dialect, cfg *gorm.Config, models []any, opts ...optlock.Option) configured {
	t.Helper()
	observer := openObserver(t, d)
	c := openCaller(t, d, observer, cfg, nil, opts...)
	recreate(t, observer, models...)
	t.Cleanup(func() { _ = observer.Migrator().DropTable(models...) })
	// Runs before the DROP TABLE: a transaction a failed test left open would make it wait forever.
	t.Cleanup(func() { endLeftTransactions(observer, c.pool, c.appName) })
	return c
}

// openObserver opens the pool that reads results back as another process would: the shared pool of
// the server, or for SQLite a new database file of the test's own.
func openObserver(t *testing.T, d dialect) *gorm.DB {
	t.Helper()
	observer, err := d.open(t)
	if err != nil {
		if testenv.Required(d.name) {
			t.Fatalf("%v (required: CI=true or OPTLOCK_REQUIRE_DBS)", err)
		}
		t.Skipf("skipping %s: %v", d.name, err)
	}
	if d.name == "sqlite" {
		observer, err = openSQLiteFile(filepath.Join(t.TempDir(), "configured.db"))
		require.NoError(t, err)
		t.Cleanup(func() {
			if conn, err := observer.DB(); err == nil {
				_ = conn.Close()
			}
		})
	}
	return observer
}

// openCaller opens the caller's database: the observer's database on a pool of its own, with cfg,
// its DSN changed by editDSN (nil: unchanged), and the plugin registered with opts.
func openCaller(t *testing.T, d dialect, observer *gorm.DB, cfg *gorm.Config, editDSN func(string) string, opts ...optlock.Option) configured {
	t.Helper()
	if editDSN == nil {
		editDSN = func(dsn string) string { return dsn }
	}
	appName := fmt.Sprintf("optlock_cfg_%d_%d", os.Getpid(), configuredPools.Add(1))
	var dialector gorm.Dialector
	switch d.name {
	case "sqlite":
		var file string
		require.NoError(t, observer.Raw("SELECT file FROM pragma_database_list WHERE name = 'main'").Scan(&file).Error)
		dialector = sqliteOpen(editDSN(sqliteDSN(file, 10000)))
	case "postgres":
		dialector = postgres.Open(editDSN(withPostgresParam(testenv.PostgresDSN(), "application_name", appName)))
	case "mysql":
		dialector = mysql.Open(editDSN(testenv.MySQLDSN()))
	}
	cfg.Logger = gormConfig().Logger
	db, err := gorm.Open(dialector, cfg)
	require.NoError(t, err)
	pool, err := db.DB()
	require.NoError(t, err)
	t.Cleanup(func() { _ = pool.Close() })
	require.NoError(t, db.Use(optlock.New(opts...)))
	return configured{db: db, pool: pool, observer: observer, appName: appName}
}

// withPostgresParam adds a connection parameter to a PostgreSQL DSN in either of its forms.
func withPostgresParam(dsn, key, value string) string {
	if strings.Contains(dsn, "://") {
		sep := "?"
		if strings.Contains(dsn, "?") {
			sep = "&"
		}
		return dsn + sep + key + "=" + value
	}
	return dsn + " " + key + "=" + value
}

// requireIdle fails unless the caller's pool has every connection back (none is held by an open
// *sql.Tx or a statement that never finished) and none of its idle connections is inside a
// transaction (a BEGIN left behind on a connection given back to the pool).
func (c configured) requireIdle(t *testing.T) {
	t.Helper()
	require.Zero(t, c.pool.Stats().InUse, "the caller's pool still has a connection checked out (an open transaction?)")
	requireNoOpenTransaction(t, c.pool, c.db.Dialector.Name())
}

// stored reads the items as another process sees them.
func (c configured) stored(t *testing.T) map[uint]CfgItem {
	t.Helper()
	var rows []CfgItem
	require.NoError(t, c.observer.Order("id").Find(&rows).Error)
	byID := make(map[uint]CfgItem, len(rows))
	for _, r := range rows {
		byID[r.ID] = r
	}
	return byID
}

func (c configured) seed(t *testing.T, n int) []CfgItem {
	t.Helper()
	rows := make([]CfgItem, n)
	for i := range rows {
		rows[i] = CfgItem{Qty: 10, Version: 1}
	}
	require.NoError(t, c.observer.Create(&rows).Error)
	return rows
}
