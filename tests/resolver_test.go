package tests

import (
	"path/filepath"
	"strings"
	"testing"

	mysqldriver "github.com/go-sql-driver/mysql"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gorm.io/driver/mysql"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/plugin/dbresolver"

	"github.com/go-optlock/optlock"
	"github.com/go-optlock/optlock/internal/testenv"
)

// elsewhere opens, for the database of db, another database on the same server in which the test
// tables do not exist: what gorm.Open is given when dbresolver routes writes to a different source.
func elsewhere(t *testing.T, db *gorm.DB) *gorm.DB {
	t.Helper()
	var dialector gorm.Dialector
	switch db.Dialector.Name() {
	case "sqlite":
		dialector = sqliteOpen(sqliteDSN(filepath.Join(t.TempDir(), "elsewhere.db"), 10000))
	case "postgres":
		require.NoError(t, db.Exec("CREATE SCHEMA IF NOT EXISTS core_elsewhere").Error)
		dsn := testenv.PostgresDSN()
		if strings.Contains(dsn, "://") {
			sep := "?"
			if strings.Contains(dsn, "?") {
				sep = "&"
			}
			dsn += sep + "search_path=core_elsewhere"
		} else {
			dsn += " search_path=core_elsewhere"
		}
		dialector = postgres.Open(dsn)
	case "mysql":
		require.NoError(t, db.Exec("CREATE DATABASE IF NOT EXISTS core_elsewhere").Error)
		cfg, err := mysqldriver.ParseDSN(testenv.MySQLDSN())
		require.NoError(t, err)
		cfg.DBName = "core_elsewhere"
		dialector = mysql.Open(cfg.FormatDSN())
	}
	other, err := gorm.Open(dialector, gormConfig())
	require.NoError(t, err)
	t.Cleanup(func() {
		if conn, err := other.DB(); err == nil {
			_ = conn.Close()
		}
	})
	return other
}

// Behind dbresolver the write goes to the source; the conflict details must be read there too, in
// every transaction mode, even when gorm.Open was given a database that does not have the table.
func TestConflictDetailsComeFromTheServerThatTookTheWrite(t *testing.T) {
	eachDB(t, []any{&Item{}}, func(t *testing.T, db *gorm.DB) {
		routed := elsewhere(t, db)
		require.NoError(t, routed.Use(dbresolver.Register(dbresolver.Config{Sources: []gorm.Dialector{db.Dialector}})))
		require.NoError(t, routed.Use(optlock.New()))

		modes := []struct {
			name  string
			write func(fn func(tx *gorm.DB) error) error
		}{
			{"default transaction", func(fn func(*gorm.DB) error) error { return fn(routed) }},
			{"no default transaction", func(fn func(*gorm.DB) error) error {
				return fn(routed.Session(&gorm.Session{SkipDefaultTransaction: true}))
			}},
			{"caller transaction", func(fn func(*gorm.DB) error) error {
				var inner error
				err := routed.Clauses(dbresolver.Write).Transaction(func(tx *gorm.DB) error { inner = fn(tx); return nil })
				if err != nil {
					return err
				}
				return inner
			}},
		}
		for _, mode := range modes {
			for _, n := range []int{1, 3} {
				recreate(t, db, &Item{})
				items := seedItems(t, db, n)
				theirs := items[0]
				require.NoError(t, optlock.UpdateSafely(db, &theirs, map[string]any{"qty": 1}).Error)

				err := mode.write(func(tx *gorm.DB) error {
					return optlock.UpdateSafely(tx, &items, map[string]any{"qty": 2}).Error
				})
				lockErr := requireConflict(t, err, items[0].ID)
				require.Len(t, lockErr.Rows, 1, "%s, %d rows", mode.name, n)
				assert.False(t, lockErr.Rows[0].Unknown, "%s, %d rows: details read from the source: %v", mode.name, n, err)
				assert.EqualValues(t, 2, lockErr.Rows[0].Current["version"], "%s, %d rows", mode.name, n)
			}
		}
	})
}
