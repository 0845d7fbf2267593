package tests

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/go-optlock/optlock"
)

// With a bind-variable limit of 10, notes locked on version and updated_at (no form that binds a
// fixed number of parameters applies) go two to a statement: SET binds two values, each row three
// (MySQL: key, version, updated_at) or four (SQLite and PostgreSQL bind a key list too). Ten rows take
// five UPDATEs, which still write all rows or none.
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
	eachDB(t, []any{&Note{}}, func(t *testing.T, db *gorm.DB) {
		for name, session := range sessions {
			t.Run(name, func(t *testing.T) {
				recreate(t, db, &Note{})
				notes := make([]Note, 10)
				require.NoError(t, db.Create(&notes).Error)
				rec, log := recording(db)
				write := func(tx *gorm.DB, body string) error {
					return optlock.UpdateSafely(tx.Scopes(optlock.WithLock("version", "updated_at")), &notes, map[string]any{"body": body}).Error
				}

				require.NoError(t, session(rec, func(tx *gorm.DB) error { return write(tx, "one") }))
				assert.Equal(t, 5, log.count("UPDATE"), "ten rows, two to a statement")
				stored := loadNotes(t, db)
				for _, n := range notes {
					assert.Equal(t, "one", stored[n.ID].Body)
					assert.EqualValues(t, 1, stored[n.ID].Version)
				}

				// Changed behind the write's back: rows of the first and the last chunk.
				require.NoError(t, db.Model(&Note{}).Where("id IN ?", []uint{notes[1].ID, notes[9].ID}).
					Update("version", gorm.Expr("version + 1")).Error)
				before := loadNotes(t, db)
				read := append([]Note(nil), notes...)
				err := session(rec, func(tx *gorm.DB) error { return write(tx, "two") })
				requireConflict(t, err, notes[1].ID, notes[9].ID)
				assert.Equal(t, before, loadNotes(t, db), "no chunk written")
				assert.Equal(t, read, notes)
			})
		}
	}, small)
}

// Rows with one integer key and one integer version are bound as a fixed number of parameters on
// SQLite (one JSON object) and PostgreSQL (arrays): however low the bind-parameter limit, the write is
// one UPDATE. MySQL binds two parameters a row and is split.
func TestFixedParameterFormsAreNeverSplit(t *testing.T) {
	eachDB(t, []any{&Item{}}, func(t *testing.T, db *gorm.DB) {
		items := seedItems(t, db, 10)
		rec, log := recording(db)

		require.NoError(t, optlock.UpdateSafely(rec, &items, map[string]any{"qty": 1}).Error)
		switch db.Dialector.Name() {
		case "mysql":
			assert.Greater(t, log.count("UPDATE"), 1, "the write was split")
		case "sqlite":
			assert.Equal(t, 1, log.count("UPDATE"))
			assert.Contains(t, log.find("UPDATE"), "FROM (SELECT CAST(key AS INTEGER) AS optlock_key,value AS optlock_lock FROM json_each(")
		default:
			assert.Equal(t, 1, log.count("UPDATE"))
			assert.Contains(t, log.find("UPDATE"), `unnest(`)
		}
		stored := loadItems(t, db)
		for _, it := range items {
			assert.Equal(t, it, stored[it.ID])
			assert.EqualValues(t, 2, it.Version)
		}

		bumpBehindTheirBack(t, db, items[0].ID, items[9].ID)
		before := loadItems(t, db)
		requireConflict(t, optlock.UpdateSafely(rec, &items, map[string]any{"qty": 2}).Error, items[0].ID, items[9].ID)
		assert.Equal(t, before, loadItems(t, db), "nothing written")
	}, optlock.WithBindVarLimit(10))
}

func loadNotes(t *testing.T, db *gorm.DB) map[uint]Note {
	t.Helper()
	var rows []Note
	require.NoError(t, db.Find(&rows).Error)
	byID := make(map[uint]Note, len(rows))
	for _, n := range rows {
		byID[n.ID] = n
	}
	return byID
}
