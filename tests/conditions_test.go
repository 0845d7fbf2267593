package tests

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"gorm.io/gorm"

	"github.com/go-optlock/optlock"
)

// A caller's own conditions, with Or among them, narrow a checked write and never widen it: the lock
// check applies to every row the write touches (GORM joins conditions with AND and OR without
// brackets around expressions it did not build).
func TestCallersOrConditionsCannotBypassTheCheck(t *testing.T) {
	scopes := map[string]func(db *gorm.DB) *gorm.DB{
		"Where then Or": func(db *gorm.DB) *gorm.DB { return db.Where("qty >= ?", 0).Or("qty < ?", 0) },
		"Or alone":      func(db *gorm.DB) *gorm.DB { return db.Or("qty >= ?", 0) },
		"OR in the text": func(db *gorm.DB) *gorm.DB {
			return db.Where("qty >= ? OR qty < ?", 0, 0)
		},
	}
	eachDB(t, []any{&Item{}, &SoftItem{}}, func(t *testing.T, db *gorm.DB) {
		for name, scope := range scopes {
			t.Run(name, func(t *testing.T) {
				for _, n := range []int{1, 3} {
					recreate(t, db, &Item{})
					items := seedItems(t, db, n)
					bumpBehindTheirBack(t, db, items[0].ID)
					requireConflict(t, optlock.UpdateSafely(scope(db), &items, map[string]any{"qty": 5}).Error, items[0].ID)
					for _, it := range loadItems(t, db) {
						assert.NotEqual(t, 5, it.Qty, "%d rows: row %d written unchecked", n, it.ID)
					}

					recreate(t, db, &SoftItem{})
					soft := []SoftItem{{Qty: 1, Version: 1}, {Qty: 1, Version: 1}}
					assert.NoError(t, db.Create(&soft).Error)
					assert.NoError(t, db.Model(&SoftItem{}).Where("id = ?", soft[0].ID).Update("version", 2).Error)
					err := scope(db).Scopes(optlock.WithLock()).Delete(&soft).Error
					requireConflict(t, err, soft[0].ID)
					var left int64
					assert.NoError(t, db.Model(&SoftItem{}).Count(&left).Error)
					assert.EqualValues(t, 2, left, "%d rows: nothing deleted", n)
				}
			})
		}
	})
}
