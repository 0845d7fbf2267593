package tests

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/go-optlock/optlock"
)

// renamedDialector is SQLite under another dialect's name, as a driver the plugin has no SQL for
// would present itself.
type renamedDialector struct {
	gorm.Dialector
	name string
}

func (d renamedDialector) Name() string { return d.name }

// TestUnknownDialectIsRefused: a dialect the plugin writes no SQL for would get another database's
// forms (MySQL's row-value IN, SQLite's VALUES form, a blind updated_at): db.Use refuses it, naming the
// dialects supported, and registers nothing.
func TestUnknownDialectIsRefused(t *testing.T) {
	for _, name := range []string{"sqlserver", "sqlite3", "clickhouse", ""} {
		t.Run(name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "renamed.db")
			db, err := gorm.Open(renamedDialector{sqliteOpen(sqliteDSN(file, 10000)), name}, gormConfig())
			require.NoError(t, err)
			t.Cleanup(func() {
				if conn, err := db.DB(); err == nil {
					_ = conn.Close()
				}
			})
			err = db.Use(optlock.New())
			require.ErrorIs(t, err, optlock.ErrInvalidLock)
			assert.Contains(t, err.Error(), "mysql, postgres, sqlite")
			assert.Nil(t, db.Callback().Update().Get("optlock:build"), "no callback registered")
		})
	}
}
