package tests

import (
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gorm.io/driver/mysql"
	"gorm.io/driver/postgres"
	"gorm.io/driver/sqlite"
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
}

// openConfigured opens dialect d on a connection pool of its own with cfg, registers the plugin, and
// recreates the models' tables through the observer.
func openConfigured(t *testing.T, d dialect, cfg *gorm.Config, models []any, opts ...optlock.Option) configured {
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
		path := filepath.Join(t.TempDir(), "configured.db")
		observer, err = openSQLiteFile(path)
		require.NoError(t, err)
		t.Cleanup(func() {
			if conn, err := observer.DB(); err == nil {
				_ = conn.Close()
			}
		})
		dialector = sqlite.Open(testenv.SQLiteDSN(path))
	case "postgres":
		dialector = postgres.Open(testenv.PostgresDSN())
	case "mysql":
		dialector = mysql.Open(testenv.MySQLDSN())
	}
	cfg.Logger = gormConfig().Logger
	db, err := gorm.Open(dialector, cfg)
	require.NoError(t, err)
	pool, err := db.DB()
	require.NoError(t, err)
	t.Cleanup(func() { _ = pool.Close() })
	require.NoError(t, db.Use(optlock.New(opts...)))
	recreate(t, observer, models...)
	t.Cleanup(func() { _ = observer.Migrator().DropTable(models...) })
	return configured{db: db, pool: pool, observer: observer}
}

// requireIdle fails unless the caller's pool has every connection back: none is held by an open
// transaction or a statement that never finished.
func (c configured) requireIdle(t *testing.T) {
	t.Helper()
	require.Zero(t, c.pool.Stats().InUse, "the caller's pool still has a connection checked out (an open transaction?)")
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

// TestSkipDefaultTransactionInConfig: with SkipDefaultTransaction in gorm.Config GORM registers no
// transaction callbacks at all; every write that needs the plugin's own transaction must still commit
// (or roll back) it, and refuse stale rows with their keys.
func TestSkipDefaultTransactionInConfig(t *testing.T) {
	paths := []struct {
		name  string
		write func(db *gorm.DB, rows *[]CfgItem) error
		// deletes says a success removes the rows.
		deletes bool
	}{
		{"bulk UpdateSafely", func(db *gorm.DB, rows *[]CfgItem) error {
			return optlock.UpdateSafely(db, rows, map[string]any{"qty": 7}).Error
		}, false},
		{"UpdateEach", func(db *gorm.DB, rows *[]CfgItem) error {
			for i := range *rows {
				(*rows)[i].Qty = 7
			}
			return optlock.UpdateEach(db, rows, "qty").Error
		}, false},
		{"Delete of a slice with WithLock", func(db *gorm.DB, rows *[]CfgItem) error {
			return db.Scopes(optlock.WithLock()).Delete(rows).Error
		}, true},
		{"single row UpdateSafely", func(db *gorm.DB, rows *[]CfgItem) error {
			one := (*rows)[:1]
			err := optlock.UpdateSafely(db, &one[0], map[string]any{"qty": 7}).Error
			*rows = one
			return err
		}, false},
	}
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			for _, path := range paths {
				t.Run(path.name, func(t *testing.T) {
					c := openConfigured(t, d, &gorm.Config{SkipDefaultTransaction: true}, []any{&CfgItem{}})

					rows := c.seed(t, 3)
					require.NoError(t, path.write(c.db, &rows))
					c.requireIdle(t)
					stored := c.stored(t)
					for _, r := range rows {
						if path.deletes {
							assert.NotContains(t, stored, r.ID, "deleted, as another pool sees it")
							continue
						}
						assert.Equal(t, r, stored[r.ID], "committed exactly as the struct says")
						assert.EqualValues(t, 2, r.Version)
					}

					// The conflict path: another writer moved the last row.
					fresh := c.seed(t, 3)
					stale := append([]CfgItem(nil), fresh...)
					if path.name == "single row UpdateSafely" {
						require.NoError(t, c.observer.Model(&CfgItem{}).Where("id = ?", fresh[0].ID).Update("version", 5).Error)
					} else {
						require.NoError(t, c.observer.Model(&CfgItem{}).Where("id = ?", fresh[2].ID).Update("version", 5).Error)
					}
					before := c.stored(t)
					want := []any{fresh[2].ID}
					if path.name == "single row UpdateSafely" {
						want = []any{fresh[0].ID}
					}
					err := path.write(c.db, &stale)
					requireConflict(t, err, want...)
					c.requireIdle(t)
					assert.Equal(t, before, c.stored(t), "nothing written")
					assert.Equal(t, fresh[:len(stale)], stale, "the structs are as they were")
				})
			}
		})
	}
}
