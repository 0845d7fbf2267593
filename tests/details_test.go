package tests

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/go-optlock/optlock"
)

// Stock has a composite primary key.
type Stock struct {
	Warehouse string `gorm:"primaryKey;size:32"`
	SKU       int    `gorm:"primaryKey;autoIncrement:false"`
	Qty       int
	Version   int
}

func (Stock) TableName() string { return "core_stocks" }

func asLockError(t *testing.T, err error) *optlock.OptimisticLockError {
	t.Helper()
	var lockErr *optlock.OptimisticLockError
	require.True(t, errors.As(err, &lockErr), "got %v, want *optlock.OptimisticLockError", err)
	return lockErr
}

func TestConflictDetailsTellChangedFromDeleted(t *testing.T) {
	eachDB(t, []any{&Item{}}, func(t *testing.T, db *gorm.DB) {
		items := seedItems(t, db, 4)
		bumpBehindTheirBack(t, db, items[1].ID)
		require.NoError(t, db.Delete(&Item{}, items[3].ID).Error)

		// The first lock-checked write of the table reads its column types; count the conflict's queries
		// on a later one.
		warm := []Item{items[0]}
		require.NoError(t, optlock.UpdateSafely(db, &warm, map[string]any{"qty": items[0].Qty}).Error)
		require.NoError(t, db.Model(&Item{}).Where("id = ?", items[0].ID).UpdateColumn("version", items[0].Version).Error)

		rec, log := recording(db)
		lockErr := asLockError(t, optlock.UpdateSafely(rec, &items, map[string]any{"qty": 0}).Error)
		assert.Equal(t, []any{items[1].ID, items[3].ID}, lockErr.ConflictIDs)
		require.Len(t, lockErr.Rows, 2)
		assert.Equal(t, optlock.RowConflict{ID: items[1].ID, Current: map[string]any{"version": int64(2)}, Locks: []optlock.LockValue{{Column: "version", Int: 2}}}, lockErr.Rows[0])
		assert.Equal(t, optlock.RowConflict{ID: items[3].ID, Deleted: true}, lockErr.Rows[1])
		assert.Equal(t, 1, log.count("SELECT"), "one extra query on the conflict path")
		assert.Contains(t, lockErr.Error(), "(1 changed, 1 deleted)")

		single := asLockError(t, optlock.UpdateSafely(db, &items[1], map[string]any{"qty": 0}).Error)
		assert.Equal(t, []optlock.RowConflict{{ID: items[1].ID, Current: map[string]any{"version": int64(2)}, Locks: []optlock.LockValue{{Column: "version", Int: 2}}}}, single.Rows)
		assert.Contains(t, single.Error(), "version is now 2")
		gone := asLockError(t, optlock.UpdateSafely(db, &items[3], map[string]any{"qty": 0}).Error)
		assert.True(t, gone.Rows[0].Deleted)
		assert.Contains(t, gone.Error(), "was deleted")
	})
}

func TestSoftDeletedRowIsReportedDeleted(t *testing.T) {
	eachDB(t, []any{&SoftItem{}}, func(t *testing.T, db *gorm.DB) {
		rows := []SoftItem{{Qty: 1, Version: 1}, {Qty: 2, Version: 1}}
		require.NoError(t, db.Create(&rows).Error)
		require.NoError(t, db.Delete(&SoftItem{}, rows[0].ID).Error)

		lockErr := asLockError(t, optlock.UpdateSafely(db, &rows, map[string]any{"qty": 5}).Error)
		assert.Equal(t, []optlock.RowConflict{{ID: rows[0].ID, Deleted: true}}, lockErr.Rows)
	})
}

func TestErrorStaysShortForTenThousandRows(t *testing.T) {
	ids := make([]any, 10_000)
	rows := make([]optlock.RowConflict, len(ids))
	for i := range ids {
		ids[i] = i + 1
		rows[i] = optlock.RowConflict{ID: i + 1, Current: map[string]any{"version": 2}}
	}
	msg := (&optlock.OptimisticLockError{Table: "items", ConflictIDs: ids, Rows: rows}).Error()
	assert.Less(t, len(msg), 300, msg)
	assert.Contains(t, msg, "10000 rows")
	assert.Contains(t, msg, "1, 2, 3")
	assert.Contains(t, msg, "and 9990 more")
	assert.Equal(t, 1, strings.Count(msg, "\n")+1)
}

func TestCompositeKeys(t *testing.T) {
	eachDB(t, []any{&Stock{}}, func(t *testing.T, db *gorm.DB) {
		stocks := []Stock{{"north", 1, 5, 1}, {"north", 2, 5, 1}, {"south", 1, 5, 1}}
		require.NoError(t, db.Create(&stocks).Error)

		require.NoError(t, optlock.UpdateSafely(db, &stocks, map[string]any{"qty": 4}).Error)
		for _, s := range stocks {
			assert.Equal(t, 2, s.Version)
		}
		one := stocks[0]
		require.NoError(t, optlock.UpdateSafely(db, &one, map[string]any{"qty": 3}).Error)

		lockErr := asLockError(t, optlock.UpdateSafely(db, &stocks, map[string]any{"qty": 0}).Error)
		assert.Equal(t, []any{[]any{"north", 1}}, lockErr.ConflictIDs)
		var qty0 int64
		require.NoError(t, db.Model(&Stock{}).Where("qty = 0").Count(&qty0).Error)
		assert.Zero(t, qty0)

		single := asLockError(t, db.Scopes(optlock.WithLock()).Save(&stocks[0]).Error)
		assert.Equal(t, []any{[]any{"north", 1}}, single.ConflictIDs)

		stocks[0] = one
		delErr := asLockError(t, db.Scopes(optlock.WithLock()).Delete(&[]Stock{stocks[1], {"south", 1, 4, 1}}).Error)
		assert.Equal(t, []any{[]any{"south", 1}}, delErr.ConflictIDs)
		require.NoError(t, db.Scopes(optlock.WithLock()).Delete(&stocks).Error)
		assert.Zero(t, countRows(t, db, &Stock{}))
	})
}

func TestOnConflictIsToldOfEveryConflict(t *testing.T) {
	var mu sync.Mutex
	var seen []*optlock.OptimisticLockError
	hook := optlock.OnConflict(func(ctx context.Context, err *optlock.OptimisticLockError) {
		require.NotNil(t, ctx)
		mu.Lock()
		seen = append(seen, err)
		mu.Unlock()
	})
	eachDB(t, []any{&Item{}}, func(t *testing.T, db *gorm.DB) {
		seen = nil
		items := seedItems(t, db, 3)
		stale := items[0]
		require.NoError(t, optlock.UpdateSafely(db, &items, map[string]any{"qty": 1}).Error)
		assert.Empty(t, seen, "no conflict, no call")

		err1 := optlock.UpdateSafely(db, &stale, map[string]any{"qty": 2}).Error
		err2 := db.Transaction(func(tx *gorm.DB) error {
			return optlock.UpdateSafely(tx, &[]Item{stale, items[1]}, map[string]any{"qty": 2}).Error
		})
		require.Len(t, seen, 2)
		assert.Same(t, asLockError(t, err1), seen[0])
		assert.Same(t, asLockError(t, err2), seen[1])
		assert.Equal(t, []any{stale.ID}, seen[1].ConflictIDs, "details filled in before the call")
	}, hook)
}
