package tests

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/go-optlock/optlock"
)

// seedItems creates n items named i1..in with qty 10 and version 1.
func seedItems(t *testing.T, db *gorm.DB, n int) []Item {
	t.Helper()
	items := make([]Item, n)
	for i := range items {
		items[i] = Item{Name: "i" + string(rune('a'+i%26)), Qty: 10, Version: 1}
	}
	require.NoError(t, db.CreateInBatches(&items, 500).Error)
	return items
}

func loadItems(t *testing.T, db *gorm.DB) map[uint]Item {
	t.Helper()
	var rows []Item
	require.NoError(t, db.Order("id").Find(&rows).Error)
	byID := make(map[uint]Item, len(rows))
	for _, r := range rows {
		byID[r.ID] = r
	}
	return byID
}

func requireConflict(t *testing.T, err error, wantIDs ...any) *optlock.OptimisticLockError {
	t.Helper()
	require.Error(t, err)
	require.ErrorIs(t, err, optlock.ErrConflict)
	require.NotErrorIs(t, err, optlock.ErrInvalidLock)
	var lockErr *optlock.OptimisticLockError
	require.True(t, errors.As(err, &lockErr), "got %T (%v), want *optlock.OptimisticLockError", err, err)
	require.Equal(t, wantIDs, lockErr.ConflictIDs)
	return lockErr
}

func TestUpdateSafelyWritesOneRowAndAdvancesVersion(t *testing.T) {
	eachDB(t, []any{&Item{}}, func(t *testing.T, db *gorm.DB) {
		item := seedItems(t, db, 1)[0]

		res := optlock.UpdateSafely(db, &item, map[string]any{"qty": 7})
		require.NoError(t, res.Error)
		assert.EqualValues(t, 1, res.RowsAffected)
		assert.EqualValues(t, 2, item.Version, "in-memory version advanced")
		assert.Equal(t, 7, item.Qty)

		stored := loadItems(t, db)[item.ID]
		assert.Equal(t, item, stored, "struct equals what is stored")

		// The advanced struct writes again without a re-read.
		require.NoError(t, optlock.UpdateSafely(db, &item, map[string]any{"qty": 6}).Error)
		assert.EqualValues(t, 3, item.Version)
		assert.Equal(t, item, loadItems(t, db)[item.ID])
	})
}

func TestUpdateSafelyRefusesStaleRow(t *testing.T) {
	eachDB(t, []any{&Item{}}, func(t *testing.T, db *gorm.DB) {
		item := seedItems(t, db, 1)[0]
		mine, theirs := item, item

		require.NoError(t, optlock.UpdateSafely(db, &theirs, map[string]any{"qty": 1}).Error)

		res := optlock.UpdateSafely(db, &mine, map[string]any{"qty": 2, "name": "mine"})
		lockErr := requireConflict(t, res.Error, item.ID)
		assert.Equal(t, "core_items", lockErr.Table)
		assert.EqualValues(t, 0, res.RowsAffected)
		assert.Equal(t, item, mine, "a refused write leaves the struct as it was")
		assert.Equal(t, theirs, loadItems(t, db)[item.ID], "the stale write changed nothing")
	})
}
