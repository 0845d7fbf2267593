package tests

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/go-optlock/optlock"
)

// With a bind-variable limit of 10, (id, version) rows go four to a statement (three where a key list
// is bound too): ten
// rows take several UPDATEs, which still write all rows or none.
func TestChunkedBulkWritesAllOrNothing(t *testing.T) {
	small := optlock.WithBindVarLimit(10)
	sessions := map[string]func(db *gorm.DB, fn func(tx *gorm.DB) error) error{
		"default transaction": func(db *gorm.DB, fn func(*gorm.DB) error) error { return fn(db) },
		"caller transaction": func(db *gorm.DB, fn func(*gorm.DB) error) error {
			var inner error
			err := db.Transaction(func(tx *gorm.DB) error { inner = fn(tx); return nil })
			if err != nil {
				return err
			}
			return inner
		},
		"no default transaction": func(db *gorm.DB, fn func(*gorm.DB) error) error {
			return fn(db.Session(&gorm.Session{SkipDefaultTransaction: true}))
		},
	}
	eachDB(t, []any{&Item{}}, func(t *testing.T, db *gorm.DB) {
		for name, session := range sessions {
			t.Run(name, func(t *testing.T) {
				recreate(t, db, &Item{})
				items := seedItems(t, db, 10)
				rec, log := recording(db)

				require.NoError(t, session(rec, func(tx *gorm.DB) error {
					return optlock.UpdateSafely(tx, &items, map[string]any{"qty": 1}).Error
				}))
				chunks := 3 // ten rows, four to a statement
				if db.Dialector.Name() != "mysql" {
					chunks = 4 // SQLite and PostgreSQL also bind a key list: three rows to a statement
				}
				assert.Equal(t, chunks, log.count("UPDATE"))
				stored := loadItems(t, db)
				for _, it := range items {
					assert.Equal(t, it, stored[it.ID])
					assert.EqualValues(t, 2, it.Version)
				}

				bumpBehindTheirBack(t, db, items[1].ID, items[9].ID) // first and last chunk
				before := loadItems(t, db)
				read := append([]Item(nil), items...)
				err := session(rec, func(tx *gorm.DB) error {
					return optlock.UpdateSafely(tx, &items, map[string]any{"qty": 2}).Error
				})
				requireConflict(t, err, items[1].ID, items[9].ID)
				assert.Equal(t, before, loadItems(t, db), "no chunk written")
				assert.Equal(t, read, items)
			})
		}
	}, small)
}
