package tests

import (
	"fmt"
	"runtime/debug"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/go-optlock/optlock"
)

// a guarded table written without its model (guard_tables.go).

// RvAccount is guarded.
type RvAccount struct {
	ID      uint `gorm:"primaryKey"`
	Owner   string
	Balance int
	Version int64
}

func (RvAccount) TableName() string { return "rv_accounts" }

// RvAccountVersioned is another struct mapped to the guarded table, read with the lock column.
type RvAccountVersioned struct {
	ID      uint `gorm:"primaryKey"`
	Balance int
	Version int64
}

func (RvAccountVersioned) TableName() string { return "rv_accounts" }

// RvEmbAccount is guarded, and embeds gorm.Model, as most models do.
type RvEmbAccount struct {
	gorm.Model
	Balance int
	Version int64
}

func (RvEmbAccount) TableName() string { return "rv_emb_accounts" }

// RvEmbBalance is a narrow struct mapped to the guarded table.
type RvEmbBalance struct {
	ID      uint `gorm:"primaryKey"`
	Balance int
}

func (RvEmbBalance) TableName() string { return "rv_emb_accounts" }

// noPanic runs write and turns a panic into a test failure (so the other cases still run).
func noPanic(t *testing.T, write func() error) (err error) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Errorf("the write panicked: %v\n%s", r, debug.Stack())
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	return write()
}

// A write of a guarded table through another struct mapped to it, with a struct of values, must not
// panic: the plugin reads the other struct with the guarded model's field indexes (carriesRows,
// checkValuesStruct on lockTarget's statement).
func TestOtherStructOnGuardedTableDoesNotPanic(t *testing.T) {
	cases := []struct {
		name  string
		write func(db *gorm.DB, emb RvEmbAccount, plain RvAccount) error
	}{
		{"Updates(struct) on a model embedding gorm.Model", func(db *gorm.DB, emb RvEmbAccount, _ RvAccount) error {
			return db.Model(&RvEmbBalance{}).Where("id = ?", emb.ID).Updates(RvEmbBalance{Balance: 5}).Error
		}},
		{"Save(&struct) on a model embedding gorm.Model", func(db *gorm.DB, emb RvEmbAccount, _ RvAccount) error {
			return db.Save(&RvEmbBalance{ID: emb.ID, Balance: 6}).Error
		}},
		{"Model(&view).Updates(struct with the lock as read)", func(db *gorm.DB, _ RvEmbAccount, plain RvAccount) error {
			var view RvAccountVersioned
			if err := db.First(&view, plain.ID).Error; err != nil {
				return err
			}
			return db.Model(&view).Updates(RvAccountVersioned{Balance: 7, Version: view.Version}).Error
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// A fresh database per case: a panic leaves GORM's transaction open (on SQLite, locked).
			eachDB(t, []any{&RvEmbAccount{}, &RvAccount{}}, func(t *testing.T, db *gorm.DB) {
				emb := RvEmbAccount{Balance: 10, Version: 1}
				require.NoError(t, db.Create(&emb).Error)
				plain := RvAccount{Owner: "a", Balance: 10, Version: 1}
				require.NoError(t, db.Create(&plain).Error)
				require.NoError(t, noPanic(t, func() error { return c.write(db, emb, plain) }))
			}, optlock.Guard(&RvEmbAccount{}), optlock.Guard(&RvAccount{}))
		})
	}
}

// Table with an alias ("rv_accounts AS a", "rv_accounts a") leaves stmt.Table as the alias, so the
// guarded-table lookup misses the table: the write neither advances the lock nor refuses a hand-set
// lock, and a holder of an older read then overwrites it.
func TestAliasedTableWriteIsGuarded(t *testing.T) {
	eachDB(t, []any{&RvAccount{}}, func(t *testing.T, db *gorm.DB) {
		for _, name := range []string{"rv_accounts AS a", "rv_accounts a"} {
			t.Run(name, func(t *testing.T) {
				if name == "rv_accounts a" && db.Dialector.Name() == "sqlite" {
					t.Skip("SQLite's UPDATE takes an alias only with AS")
				}
				acc := RvAccount{Owner: "a", Balance: 10, Version: 1}
				require.NoError(t, db.Create(&acc).Error)
				held := acc

				require.NoError(t, db.Table(name).Where("id = ?", acc.ID).Updates(map[string]any{"balance": 5}).Error)
				var stored RvAccount
				require.NoError(t, db.First(&stored, acc.ID).Error)
				require.Equal(t, 5, stored.Balance, "the write is stored")
				assert.EqualValues(t, 2, stored.Version, "the lock advanced, as for Table(%q)", "rv_accounts")

				held.Owner = "stale"
				err := db.Save(&held).Error
				require.NoError(t, db.First(&stored, acc.ID).Error)
				assert.Equal(t, 5, stored.Balance, "the older read did not overwrite the write")
				assert.ErrorIs(t, err, optlock.ErrConflict, "the holder of the older read is refused")

				err = db.Table(name).Where("id = ?", acc.ID).Updates(map[string]any{"balance": 6, "version": 1}).Error
				assert.ErrorIs(t, err, optlock.ErrInvalidLock, "a hand-set lock is refused")
			})
		}
	}, optlock.Guard(&RvAccount{}))
}

// Save(&view) of another struct mapped to the guarded table carries the lock value it was read
// with, yet it is written blind: a stale one overwrites a newer committed write.
func TestStaleSaveOfOtherStructOnGuardedTable(t *testing.T) {
	eachDB(t, []any{&RvAccount{}}, func(t *testing.T, db *gorm.DB) {
		acc := RvAccount{Owner: "a", Balance: 10, Version: 1}
		require.NoError(t, db.Create(&acc).Error)
		var view RvAccountVersioned
		require.NoError(t, db.First(&view, acc.ID).Error)

		require.NoError(t, db.Model(&acc).Update("balance", 20).Error, "another writer, checked")

		view.Balance = 11 // computed from the stale read
		err := db.Save(&view).Error
		var stored RvAccount
		require.NoError(t, db.First(&stored, acc.ID).Error)
		assert.Equal(t, 20, stored.Balance, "the stale Save did not overwrite the newer write")
		assert.ErrorIs(t, err, optlock.ErrConflict)
	}, optlock.Guard(&RvAccount{}))
}

// RvArchiveAccount is an unguarded model of a table with the guarded table's bare name in another
// PostgreSQL schema.
type RvArchiveAccount struct {
	ID      uint `gorm:"primaryKey"`
	Balance int
	Note    string
}

func (RvArchiveAccount) TableName() string { return "rv_archive.rv_accounts" }

// The guarded-table lookup keys by bare table name: a table of the same name in another schema is taken
// for the guarded one (guard_tables.go tableWrite: an unqualified guard matches any qualifier), so an
// unrelated model's writes get the guarded model's lock and value checks.
func TestSameTableNameInAnotherSchemaIsNotGuarded(t *testing.T) {
	for _, d := range dialects {
		if d.name != "postgres" {
			continue
		}
		t.Run(d.name, func(t *testing.T) {
			db := openDB(t, d, []any{&RvAccount{}}, optlock.Guard(&RvAccount{}))
			require.NoError(t, db.Exec("DROP SCHEMA IF EXISTS rv_archive CASCADE").Error)
			require.NoError(t, db.Exec("CREATE SCHEMA rv_archive").Error)
			t.Cleanup(func() { db.Exec("DROP SCHEMA IF EXISTS rv_archive CASCADE") })
			require.NoError(t, db.Exec("CREATE TABLE rv_archive.rv_accounts (id bigserial PRIMARY KEY, balance bigint, note text)").Error)
			row := RvArchiveAccount{Balance: 1, Note: "n"}
			require.NoError(t, db.Create(&row).Error)

			assert.NoError(t, db.Model(&RvArchiveAccount{}).Where("id = ?", row.ID).Updates(map[string]any{"note": "m"}).Error,
				"an unguarded model of another schema's table")
			assert.NoError(t, db.Table("rv_archive.rv_accounts").Where("id = ?", row.ID).Updates(map[string]any{"balance": 2}).Error,
				"Table naming another schema's table")
		})
	}
}
