package optlock_test

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/utils/tests"

	"github.com/go-optlock/optlock"
)

// The plugin's own tests: registration, name, options and guards, on an empty SQLite file. The
// behaviour of lock-checked writes is tested in ./tests, on SQLite, PostgreSQL and MariaDB.

func emptyDB(t *testing.T) *gorm.DB {
	t.Helper()
	db, err := gorm.Open(sqlite.Open(filepath.Join(t.TempDir(), "plugin.db")), &gorm.Config{})
	require.NoError(t, err)
	t.Cleanup(func() {
		if conn, err := db.DB(); err == nil {
			_ = conn.Close()
		}
	})
	return db
}

// GORM's dummy dialector is a dialect the plugin has no SQL for: db.Use refuses it.
func TestPluginRefusesADialectItHasNoSQLFor(t *testing.T) {
	db, err := gorm.Open(tests.DummyDialector{}, &gorm.Config{})
	require.NoError(t, err)
	err = db.Use(optlock.New())
	require.ErrorIs(t, err, optlock.ErrInvalidLock)
	assert.Contains(t, err.Error(), `"dummy"`)
}

func TestPluginName(t *testing.T) {
	assert.Equal(t, "optlock", optlock.New().Name())
}

func TestPluginRegistersItsCallbacks(t *testing.T) {
	db := emptyDB(t)
	require.NoError(t, db.Use(optlock.New()))
	for _, name := range []string{"optlock:route", "optlock:prepare", "optlock:build", "optlock:check", "optlock:settle", "optlock:finish"} {
		assert.NotNil(t, db.Callback().Update().Get(name), "update callback %s", name)
		assert.NotNil(t, db.Callback().Delete().Get(name), "delete callback %s", name)
	}
	assert.NotNil(t, db.Callback().Create().Get("optlock:refuse_upsert"))
	assert.NotNil(t, db.Callback().Query().Get("optlock:lock_reads"))
	assert.Contains(t, db.Config.Plugins, "optlock")
}

// Initialize may run again (a second plugin value registered under the same name, say): it replaces
// its callbacks instead of adding a second set.
func TestInitializeIsIdempotent(t *testing.T) {
	db := emptyDB(t)
	p := optlock.New()
	require.NoError(t, p.Initialize(db))
	require.NoError(t, p.Initialize(db))
	require.NoError(t, db.Use(p))
	assert.ErrorIs(t, db.Use(optlock.New()), gorm.ErrRegistered, "GORM refuses a second plugin of the same name")
}

type guarded struct {
	ID      uint
	Version int
}

type timestamped struct {
	ID        uint
	Revision  int
	UpdatedAt int64 `gorm:"autoUpdateTime:milli"`
}

type unlocked struct {
	ID   uint
	Name string
}

func TestOptionsAndGuards(t *testing.T) {
	cases := []struct {
		name    string
		options []optlock.Option
		wantErr bool
	}{
		{"no options", nil, false},
		{"every option", []optlock.Option{optlock.WithBindVarLimit(100), optlock.OnConflict(nil), optlock.Guard(&guarded{})}, false},
		{"guard on a named field", []optlock.Option{optlock.Guard(&timestamped{}, "revision")}, false},
		{"guard on the default timestamp", []optlock.Option{optlock.Guard(&timestamped{}, "UpdatedAt")}, false},
		{"guard of a nil model", []optlock.Option{optlock.Guard(nil)}, true},
		{"guard of a struct value", []optlock.Option{optlock.Guard(guarded{})}, true},
		{"guard without a lock field", []optlock.Option{optlock.Guard(&unlocked{})}, true},
		{"guard on an unknown field", []optlock.Option{optlock.Guard(&guarded{}, "nope")}, true},
		{"guard on the primary key", []optlock.Option{optlock.Guard(&guarded{}, "id")}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := emptyDB(t).Use(optlock.New(tc.options...))
			if tc.wantErr {
				assert.ErrorIs(t, err, optlock.ErrInvalidLock)
				assert.NotErrorIs(t, err, optlock.ErrConflict)
			} else {
				assert.NoError(t, err)
			}
		})
	}
}

// The scopes and helpers refuse a *gorm.DB without the plugin, with a clear error.
func TestUnregisteredUseIsRefused(t *testing.T) {
	db := emptyDB(t)
	row := &guarded{ID: 1, Version: 1}
	for name, err := range map[string]error{
		"WithLock":     db.Scopes(optlock.WithLock()).Model(row).Update("version", 2).Error,
		"Unchecked":    db.Scopes(optlock.Unchecked()).Model(row).Update("version", 2).Error,
		"UpdateSafely": optlock.UpdateSafely(db, row, map[string]any{"id": 1}).Error,
		"UpdateEach":   optlock.UpdateEach(db, &[]guarded{*row}).Error,
	} {
		assert.ErrorIs(t, err, optlock.ErrInvalidLock, name)
		assert.ErrorContains(t, err, "db.Use(optlock.New())", name)
	}
}
