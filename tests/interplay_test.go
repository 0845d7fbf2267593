package tests

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/go-optlock/optlock"
)

// Hooked runs model hooks around updates and logs them where a restored struct keeps them.
type Hooked struct {
	ID      uint `gorm:"primaryKey"`
	Qty     int
	Note    string
	Version int
	seen    *[]string
}

func (Hooked) TableName() string { return "core_hooked" }

func (h *Hooked) BeforeUpdate(tx *gorm.DB) error {
	*h.seen = append(*h.seen, "before")
	if h.Qty < 0 {
		return errors.New("qty must not be negative")
	}
	tx.Statement.SetColumn("note", "set by hook")
	return nil
}

func (h *Hooked) AfterUpdate(*gorm.DB) error {
	*h.seen = append(*h.seen, "after")
	return nil
}

func TestModelHooksRunAroundTheCheckedWrite(t *testing.T) {
	eachDB(t, []any{&Hooked{}}, func(t *testing.T, db *gorm.DB) {
		var seen []string
		h := Hooked{Qty: 1, Version: 1, seen: &seen}
		require.NoError(t, db.Create(&h).Error)
		stale := h

		require.NoError(t, db.Scopes(optlock.WithLock()).Model(&h).Updates(map[string]any{"qty": 2}).Error)
		assert.Equal(t, []string{"before", "after"}, seen)
		var stored Hooked
		require.NoError(t, db.First(&stored, h.ID).Error)
		assert.Equal(t, "set by hook", stored.Note, "SetColumn in BeforeUpdate still reaches SET")
		assert.Equal(t, 2, stored.Version)

		seen = nil
		err := db.Scopes(optlock.WithLock()).Model(&stale).Updates(map[string]any{"qty": 3}).Error
		requireConflict(t, err, h.ID)
		assert.Equal(t, []string{"before"}, seen, "AfterUpdate does not run for a refused write")

		// A hook's own error stops the write like any other error, without a conflict.
		fresh := stored
		fresh.seen, fresh.Qty = &seen, -1
		err = db.Scopes(optlock.WithLock()).Model(&fresh).Updates(map[string]any{"note": "x"}).Error
		require.Error(t, err)
		assert.NotErrorIs(t, err, optlock.ErrConflict)
		require.NoError(t, db.First(&stored, h.ID).Error)
		assert.Equal(t, 2, stored.Version)
	})
}

func TestSelectAndOmitStillLockTheRow(t *testing.T) {
	eachDB(t, []any{&Item{}}, func(t *testing.T, db *gorm.DB) {
		item := seedItems(t, db, 1)[0]
		stale := item
		locked := db.Scopes(optlock.WithLock())

		require.NoError(t, locked.Model(&item).Select("qty").Updates(Item{Name: "ignored", Qty: 4}).Error)
		require.NoError(t, locked.Model(&item).Omit("name").Updates(map[string]any{"name": "ignored", "qty": 5}).Error)
		stored := loadItems(t, db)[item.ID]
		assert.Equal(t, "ia", stored.Name)
		assert.Equal(t, 5, stored.Qty)
		assert.EqualValues(t, 3, stored.Version, "the version advances even when Select leaves it out")
		assert.EqualValues(t, 3, item.Version)

		requireConflict(t, locked.Model(&stale).Select("qty").Updates(map[string]any{"qty": 9}).Error, item.ID)
	})
}

func TestExplicitTableName(t *testing.T) {
	eachDB(t, []any{&Item{}}, func(t *testing.T, db *gorm.DB) {
		items := seedItems(t, db, 3)
		stale := items[0]
		require.NoError(t, optlock.UpdateSafely(db.Table("core_items"), &items, map[string]any{"qty": 1}).Error)
		err := optlock.UpdateSafely(db.Table("core_items"), &[]Item{stale, items[1]}, map[string]any{"qty": 2}).Error
		lockErr := requireConflict(t, err, stale.ID)
		assert.Equal(t, "core_items", lockErr.Table)
	})
}

func TestPreparedStatementMode(t *testing.T) {
	eachDB(t, []any{&Item{}}, func(t *testing.T, db *gorm.DB) {
		prepared := db.Session(&gorm.Session{PrepareStmt: true})
		items := seedItems(t, db, 4)
		stale := append([]Item(nil), items...)

		require.NoError(t, optlock.UpdateSafely(prepared, &items, map[string]any{"qty": 1}).Error)
		require.NoError(t, optlock.UpdateSafely(prepared, &items[0], map[string]any{"qty": 2}).Error)
		requireConflict(t, optlock.UpdateSafely(prepared, &stale, map[string]any{"qty": 3}).Error, stale[0].ID, stale[1].ID, stale[2].ID, stale[3].ID)

		// Savepoints inside a prepared-statement transaction.
		err := prepared.Transaction(func(tx *gorm.DB) error {
			requireConflict(t, optlock.UpdateSafely(tx, &stale, map[string]any{"qty": 4}).Error, stale[0].ID, stale[1].ID, stale[2].ID, stale[3].ID)
			return optlock.UpdateSafely(tx, &items, map[string]any{"qty": 5}).Error
		})
		require.NoError(t, err)
		for _, it := range loadItems(t, db) {
			assert.Equal(t, 5, it.Qty)
		}
	})
}

// Noisy writes an audit row from its BeforeUpdate hook, through the statement's own connection.
type Noisy struct {
	ID      uint `gorm:"primaryKey"`
	Qty     int
	Version int
}

func (Noisy) TableName() string { return "core_noisy" }

func (n *Noisy) BeforeUpdate(tx *gorm.DB) error {
	return tx.Session(&gorm.Session{NewDB: true}).Create(&Tag{Name: "audit"}).Error
}

// A hook's write in the same call is undone with a refused one-row write, even inside the caller's
// transaction that goes on to commit.
func TestHookWritesAreUndoneWithARefusedWrite(t *testing.T) {
	eachDB(t, []any{&Noisy{}, &Tag{}}, func(t *testing.T, db *gorm.DB) {
		row := Noisy{Qty: 1, Version: 1}
		require.NoError(t, db.Create(&row).Error)
		stale := row
		require.NoError(t, optlock.UpdateSafely(db, &row, map[string]any{"qty": 2}).Error)
		assert.EqualValues(t, 1, countRows(t, db, &Tag{}), "the fresh write's hook wrote its row")

		requireConflict(t, optlock.UpdateSafely(db, &stale, map[string]any{"qty": 3}).Error, row.ID)
		err := db.Transaction(func(tx *gorm.DB) error {
			requireConflict(t, optlock.UpdateSafely(tx, &stale, map[string]any{"qty": 3}).Error, row.ID)
			return nil
		})
		require.NoError(t, err)
		requireConflict(t, optlock.UpdateSafely(db.Session(&gorm.Session{SkipDefaultTransaction: true}), &stale, map[string]any{"qty": 3}).Error, row.ID)
		assert.EqualValues(t, 1, countRows(t, db, &Tag{}), "no audit row from a refused write")
	})
}
