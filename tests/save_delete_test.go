package tests

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/go-optlock/optlock"
)

// SoftItem is deleted softly, through gorm.DeletedAt.
type SoftItem struct {
	ID        uint `gorm:"primaryKey"`
	Qty       int
	Version   int
	DeletedAt gorm.DeletedAt
}

func (SoftItem) TableName() string { return "core_soft_items" }

func countRows(t *testing.T, db *gorm.DB, model any) int64 {
	t.Helper()
	var n int64
	require.NoError(t, db.Model(model).Count(&n).Error)
	return n
}

func TestSaveOfAFreshRowWritesAndAdvances(t *testing.T) {
	eachDB(t, []any{&Item{}}, func(t *testing.T, db *gorm.DB) {
		item := seedItems(t, db, 1)[0]
		item.Qty = 42
		require.NoError(t, db.Scopes(optlock.WithLock()).Save(&item).Error)
		assert.EqualValues(t, 2, item.Version)
		assert.Equal(t, item, loadItems(t, db)[item.ID])
	})
}

// GORM's Save falls back to an upsert when its UPDATE matches nothing; a stale Save must neither
// update nor insert.
func TestSaveOfAStaleRowNeitherUpdatesNorInserts(t *testing.T) {
	eachDB(t, []any{&Item{}}, func(t *testing.T, db *gorm.DB) {
		item := seedItems(t, db, 1)[0]
		stale := item
		bumpBehindTheirBack(t, db, item.ID)
		before := loadItems(t, db)

		stale.Qty = 1
		requireConflict(t, db.Scopes(optlock.WithLock()).Save(&stale).Error, item.ID)
		assert.Equal(t, before, loadItems(t, db))
		assert.EqualValues(t, 1, stale.Version)

		// A deleted row is not re-created by a stale Save either.
		require.NoError(t, db.Delete(&Item{}, item.ID).Error)
		requireConflict(t, db.Scopes(optlock.WithLock()).Save(&stale).Error, item.ID)
		assert.Zero(t, countRows(t, db, &Item{}))
	})
}

func TestSaveOfASliceIsRefused(t *testing.T) {
	eachDB(t, []any{&Item{}}, func(t *testing.T, db *gorm.DB) {
		items := seedItems(t, db, 2)
		before := loadItems(t, db)
		items[0].Qty = 0
		err := db.Scopes(optlock.WithLock()).Save(&items).Error
		require.ErrorIs(t, err, optlock.ErrInvalidLock)
		assert.Contains(t, err.Error(), "UpdateSafely")
		assert.Equal(t, before, loadItems(t, db))
	})
}

func TestDeleteChecksTheLock(t *testing.T) {
	eachDB(t, []any{&Item{}}, func(t *testing.T, db *gorm.DB) {
		items := seedItems(t, db, 2)
		stale := items[0]
		bumpBehindTheirBack(t, db, items[0].ID)

		requireConflict(t, db.Scopes(optlock.WithLock()).Delete(&stale).Error, stale.ID)
		assert.EqualValues(t, 2, countRows(t, db, &Item{}))

		fresh := loadItems(t, db)[items[1].ID]
		res := db.Scopes(optlock.WithLock()).Delete(&fresh)
		require.NoError(t, res.Error)
		assert.EqualValues(t, 1, res.RowsAffected)
		assert.EqualValues(t, 1, countRows(t, db, &Item{}))
	})
}

func TestBulkDeleteIsAllOrNothing(t *testing.T) {
	eachDB(t, []any{&Item{}}, func(t *testing.T, db *gorm.DB) {
		items := seedItems(t, db, 5)
		bumpBehindTheirBack(t, db, items[3].ID)

		requireConflict(t, db.Scopes(optlock.WithLock()).Delete(&items).Error, items[3].ID)
		assert.EqualValues(t, 5, countRows(t, db, &Item{}), "nothing deleted")

		err := db.Transaction(func(tx *gorm.DB) error {
			requireConflict(t, tx.Scopes(optlock.WithLock()).Delete(&items).Error, items[3].ID)
			return nil
		})
		require.NoError(t, err)
		assert.EqualValues(t, 5, countRows(t, db, &Item{}), "nothing deleted inside a committed transaction")

		items[3] = loadItems(t, db)[items[3].ID]
		res := db.Scopes(optlock.WithLock()).Delete(&items)
		require.NoError(t, res.Error)
		assert.EqualValues(t, 5, res.RowsAffected)
		assert.Zero(t, countRows(t, db, &Item{}))
	})
}

func TestSoftDeleteChecksTheLock(t *testing.T) {
	eachDB(t, []any{&SoftItem{}}, func(t *testing.T, db *gorm.DB) {
		rows := []SoftItem{{Qty: 1, Version: 1}, {Qty: 2, Version: 1}}
		require.NoError(t, db.Create(&rows).Error)
		stale := rows[0]
		require.NoError(t, db.Model(&SoftItem{}).Where("id = ?", rows[0].ID).Update("version", 2).Error)

		requireConflict(t, db.Scopes(optlock.WithLock()).Delete(&stale).Error, stale.ID)
		assert.EqualValues(t, 2, countRows(t, db, &SoftItem{}), "not soft-deleted")
		assert.False(t, stale.DeletedAt.Valid, "struct left as it was")

		fresh := rows[1]
		require.NoError(t, db.Scopes(optlock.WithLock()).Delete(&fresh).Error)
		assert.EqualValues(t, 1, countRows(t, db, &SoftItem{}))
		assert.EqualValues(t, 2, countRows(t, db.Unscoped(), &SoftItem{}), "soft, not hard")

		// Deleting it again from the same snapshot: the row is gone as far as the lock is concerned.
		requireConflict(t, db.Scopes(optlock.WithLock()).Delete(&fresh).Error, fresh.ID)
		// And a stale update of a soft-deleted row conflicts too.
		requireConflict(t, optlock.UpdateSafely(db, &rows[1], map[string]any{"qty": 9}).Error, rows[1].ID)
	})
}

func TestDeleteWithoutTheScopeIsUntouched(t *testing.T) {
	eachDB(t, []any{&Item{}}, func(t *testing.T, db *gorm.DB) {
		items := seedItems(t, db, 1)
		stale := items[0]
		bumpBehindTheirBack(t, db, stale.ID)
		require.NoError(t, db.Delete(&stale).Error)
		assert.Zero(t, countRows(t, db, &Item{}))
	})
}

// A *gorm.DB kept and passed to several checked writes (it shares one statement between them) still
// skips rows soft-deleted in between: GORM's soft-delete mark does not carry over from the first write.
func TestKeptDBStillSkipsSoftDeletedRows(t *testing.T) {
	eachDB(t, []any{&SoftItem{}}, func(t *testing.T, db *gorm.DB) {
		rows := []SoftItem{{Qty: 1, Version: 1}, {Qty: 1, Version: 1}}
		require.NoError(t, db.Create(&rows).Error)
		kept := db.Where("qty >= ?", 0)
		require.NoError(t, optlock.UpdateSafely(kept, &rows[0], map[string]any{"qty": 2}).Error)
		require.NoError(t, db.Delete(&SoftItem{}, rows[1].ID).Error)

		lockErr := requireConflict(t, optlock.UpdateSafely(kept, &rows[1], map[string]any{"qty": 3}).Error, rows[1].ID)
		assert.True(t, lockErr.Rows[0].Deleted)
		var written int64
		require.NoError(t, db.Unscoped().Model(&SoftItem{}).Where("qty = 3").Count(&written).Error)
		assert.Zero(t, written, "the soft-deleted row is not written")
	})
}
