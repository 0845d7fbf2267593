package tests

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/go-optlock/optlock"
)

// bumpBehindTheirBack changes rows the way another writer would, advancing their version.
func bumpBehindTheirBack(t *testing.T, db *gorm.DB, ids ...uint) {
	t.Helper()
	res := db.Model(&Item{}).Where("id IN ?", ids).Updates(map[string]any{"qty": 99, "version": gorm.Expr("version + 1")})
	require.NoError(t, res.Error)
	require.EqualValues(t, len(ids), res.RowsAffected)
}

func TestUpdateSafelyWritesAllRowsOfASlice(t *testing.T) {
	eachDB(t, []any{&Item{}}, func(t *testing.T, db *gorm.DB) {
		items := seedItems(t, db, 50)

		res := optlock.UpdateSafely(db, &items, map[string]any{"qty": 3})
		require.NoError(t, res.Error)
		assert.EqualValues(t, 50, res.RowsAffected)
		stored := loadItems(t, db)
		for _, it := range items {
			assert.EqualValues(t, 2, it.Version)
			assert.Equal(t, 3, it.Qty)
			assert.Equal(t, it, stored[it.ID])
		}
	})
}

func TestUpdateSafelyWritesSliceOfPointers(t *testing.T) {
	eachDB(t, []any{&Item{}}, func(t *testing.T, db *gorm.DB) {
		seeded := seedItems(t, db, 3)
		items := []*Item{&seeded[0], &seeded[1], &seeded[2]}

		require.NoError(t, optlock.UpdateSafely(db, &items, map[string]any{"qty": 4}).Error)
		stored := loadItems(t, db)
		for _, it := range items {
			assert.EqualValues(t, 2, it.Version)
			assert.Equal(t, *it, stored[it.ID])
		}
	})
}

func TestBulkConflictWritesNothingAndNamesExactlyTheChangedRows(t *testing.T) {
	eachDB(t, []any{&Item{}}, func(t *testing.T, db *gorm.DB) {
		items := seedItems(t, db, 10)
		read := append([]Item(nil), items...)
		bumpBehindTheirBack(t, db, items[2].ID, items[6].ID)
		before := loadItems(t, db)

		res := optlock.UpdateSafely(db, &items, map[string]any{"qty": 0})
		requireConflict(t, res.Error, items[2].ID, items[6].ID)
		assert.EqualValues(t, 0, res.RowsAffected)
		assert.Equal(t, before, loadItems(t, db), "no row written")
		assert.Equal(t, read, items, "structs left as they were")
	})
}

func TestBulkConflictNamesDeletedRows(t *testing.T) {
	eachDB(t, []any{&Item{}}, func(t *testing.T, db *gorm.DB) {
		items := seedItems(t, db, 5)
		require.NoError(t, db.Delete(&Item{}, items[4].ID).Error)
		require.NoError(t, db.Delete(&Item{}, items[0].ID).Error)
		before := loadItems(t, db)

		res := optlock.UpdateSafely(db, &items, map[string]any{"qty": 0})
		requireConflict(t, res.Error, items[0].ID, items[4].ID)
		assert.Equal(t, before, loadItems(t, db))
	})
}

func TestSingleConflictNamesDeletedRow(t *testing.T) {
	eachDB(t, []any{&Item{}}, func(t *testing.T, db *gorm.DB) {
		item := seedItems(t, db, 1)[0]
		require.NoError(t, db.Delete(&Item{}, item.ID).Error)

		requireConflict(t, optlock.UpdateSafely(db, &item, map[string]any{"qty": 0}).Error, item.ID)
	})
}

// A caller that catches the conflict and commits its own transaction must still have written none of
// the batch, while keeping its other work in that transaction.
func TestBulkConflictInsideCallerTransactionThatCommits(t *testing.T) {
	eachDB(t, []any{&Item{}, &Tag{}}, func(t *testing.T, db *gorm.DB) {
		items := seedItems(t, db, 6)
		bumpBehindTheirBack(t, db, items[3].ID)
		before := loadItems(t, db)

		var caught error
		err := db.Transaction(func(tx *gorm.DB) error {
			require.NoError(t, tx.Create(&Tag{Name: "before"}).Error)
			caught = optlock.UpdateSafely(tx, &items, map[string]any{"qty": 0}).Error
			require.NoError(t, tx.Create(&Tag{Name: "after"}).Error)
			return nil // commit anyway
		})
		require.NoError(t, err)
		requireConflict(t, caught, items[3].ID)
		assert.Equal(t, before, loadItems(t, db), "no row of the batch written")
		var tags int64
		require.NoError(t, db.Model(&Tag{}).Count(&tags).Error)
		assert.EqualValues(t, 2, tags, "the caller's own work committed")
	})
}

func TestBulkSuccessInsideCallerTransaction(t *testing.T) {
	eachDB(t, []any{&Item{}}, func(t *testing.T, db *gorm.DB) {
		items := seedItems(t, db, 4)
		err := db.Transaction(func(tx *gorm.DB) error {
			for range 3 { // repeated writes in one transaction, each with its own savepoint
				if err := optlock.UpdateSafely(tx, &items, map[string]any{"qty": gorm.Expr("qty - 1")}).Error; err != nil {
					return err
				}
			}
			return nil
		})
		require.NoError(t, err)
		stored := loadItems(t, db)
		for _, it := range items {
			assert.EqualValues(t, 4, stored[it.ID].Version)
			assert.Equal(t, 7, stored[it.ID].Qty)
			assert.Equal(t, it.Version, stored[it.ID].Version)
		}
	})
}

// With SkipDefaultTransaction GORM opens no transaction; the plugin opens one for a bulk write.
func TestBulkConflictWithoutDefaultTransaction(t *testing.T) {
	eachDB(t, []any{&Item{}}, func(t *testing.T, db *gorm.DB) {
		items := seedItems(t, db, 5)
		bumpBehindTheirBack(t, db, items[1].ID)
		before := loadItems(t, db)
		skip := db.Session(&gorm.Session{SkipDefaultTransaction: true})

		requireConflict(t, optlock.UpdateSafely(skip, &items, map[string]any{"qty": 0}).Error, items[1].ID)
		assert.Equal(t, before, loadItems(t, db))

		fresh := loadItems(t, db)
		rows := make([]Item, 0, len(items))
		for _, it := range items {
			rows = append(rows, fresh[it.ID])
		}
		require.NoError(t, optlock.UpdateSafely(skip, &rows, map[string]any{"qty": 1}).Error)
		for _, it := range rows {
			assert.Equal(t, it, loadItems(t, db)[it.ID])
		}
	})
}

func TestBulkOfTenThousandRows(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	eachDB(t, []any{&Item{}}, func(t *testing.T, db *gorm.DB) {
		items := seedItems(t, db, 10_000)
		require.NoError(t, optlock.UpdateSafely(db, &items, map[string]any{"qty": 1}).Error)
		var advanced int64
		require.NoError(t, db.Model(&Item{}).Where("version = 2 AND qty = 1").Count(&advanced).Error)
		assert.EqualValues(t, 10_000, advanced)

		stale := items[9_999]
		stale.Version = 1
		items[9_999] = stale
		requireConflict(t, optlock.UpdateSafely(db, &items, map[string]any{"qty": 2}).Error, stale.ID)
		require.NoError(t, db.Model(&Item{}).Where("version = 2 AND qty = 1").Count(&advanced).Error)
		assert.EqualValues(t, 10_000, advanced, "nothing written")
	})
}

// 12 000 rows locked on version and updated_at need 36 000 bind parameters: beyond SQLite's 32 766,
// so there the write is split, and still all or nothing.
func TestBulkBeyondTheDatabaseBindLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	eachDB(t, []any{&Note{}}, func(t *testing.T, db *gorm.DB) {
		notes := make([]Note, 12_000)
		require.NoError(t, db.CreateInBatches(&notes, 1000).Error)
		locked := db.Scopes(optlock.WithLock("version", "updated_at"))

		require.NoError(t, optlock.UpdateSafely(locked, &notes, map[string]any{"body": "x"}).Error)
		var written int64
		require.NoError(t, db.Model(&Note{}).Where("version = 1 AND body = ?", "x").Count(&written).Error)
		assert.EqualValues(t, len(notes), written)

		require.NoError(t, db.Model(&Note{}).Where("id = ?", notes[11_999].ID).Update("version", 7).Error)
		requireConflict(t, optlock.UpdateSafely(locked, &notes, map[string]any{"body": "y"}).Error, notes[11_999].ID)
		require.NoError(t, db.Model(&Note{}).Where("body = ?", "y").Count(&written).Error)
		assert.Zero(t, written)
	})
}

// Values are assigned in memory to every row of the slice, as GORM does for Updates on a slice,
// whether they come as a map or as a struct; expressions are left to the database.
func TestBulkAssignsValuesToEveryRowInMemory(t *testing.T) {
	eachDB(t, []any{&Item{}}, func(t *testing.T, db *gorm.DB) {
		items := seedItems(t, db, 4)
		require.NoError(t, optlock.UpdateSafely(db, &items, Item{Name: "struct", Qty: 5}).Error)
		require.NoError(t, optlock.UpdateSafely(db, &items, map[string]any{"name": "map", "qty": gorm.Expr("qty * 2")}).Error)
		stored := loadItems(t, db)
		for _, it := range items {
			assert.Equal(t, "map", it.Name)
			assert.Equal(t, 5, it.Qty, "an expression is not evaluated in memory")
			assert.Equal(t, 10, stored[it.ID].Qty)
			assert.EqualValues(t, 3, it.Version)
		}
	})
}

// 10 000 rows with a two-column key: the key-order lock and the conflict query use VALUES lists,
// which PostgreSQL does not recurse into (a row-value IN list ran out of stack above ~7 500 rows).
func TestBulkOfTenThousandRowsWithACompositeKey(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	eachDB(t, []any{&Stock{}}, func(t *testing.T, db *gorm.DB) {
		stocks := make([]Stock, 10_000)
		for i := range stocks {
			stocks[i] = Stock{Warehouse: []string{"north", "south"}[i%2], SKU: i + 1, Qty: 5, Version: 1}
		}
		require.NoError(t, db.CreateInBatches(&stocks, 1000).Error)
		require.NoError(t, optlock.UpdateSafely(db, &stocks, map[string]any{"qty": 4}).Error)
		var advanced int64
		require.NoError(t, db.Model(&Stock{}).Where("version = 2 AND qty = 4").Count(&advanced).Error)
		assert.EqualValues(t, 10_000, advanced)

		stocks[7_777].Version = 1 // stale
		lockErr := requireConflict(t, optlock.UpdateSafely(db, &stocks, map[string]any{"qty": 3}).Error, []any{"south", 7_778})
		assert.False(t, lockErr.Rows[0].Unknown, "details read: %v", lockErr)
		require.NoError(t, db.Model(&Stock{}).Where("qty = 3").Count(&advanced).Error)
		assert.Zero(t, advanced, "nothing written")
	})
}
