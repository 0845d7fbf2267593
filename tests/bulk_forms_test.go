package tests

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/go-optlock/optlock"
)

// Entry has columns named as SQLite's json_each names its own (key, value, type, path) and as the
// form helpers' usual aliases: a bulk write that joins its rows must keep the table's columns
// unambiguous, in SET, in the caller's conditions and in the check.
type Entry struct {
	ID      uint   `gorm:"primaryKey"`
	Key     string `gorm:"size:32"`
	Value   int
	Type    string `gorm:"size:16"`
	Path    string `gorm:"size:16"`
	Version int64
}

func (Entry) TableName() string { return "core_entries" }

func TestBulkWriteOfColumnsNamedLikeTheFormsOwn(t *testing.T) {
	eachDB(t, []any{&Entry{}}, func(t *testing.T, db *gorm.DB) {
		entries := make([]Entry, 20)
		for i := range entries {
			entries[i] = Entry{Key: "k", Value: i, Type: "t", Path: "a", Version: 1}
		}
		require.NoError(t, db.Create(&entries).Error)
		load := func() map[uint]Entry {
			var rows []Entry
			require.NoError(t, db.Order("id").Find(&rows).Error)
			byID := map[uint]Entry{}
			for _, e := range rows {
				byID[e.ID] = e
			}
			return byID
		}
		write := func(path string) *gorm.DB {
			scoped := db.Where("value >= ?", 0).Where(map[string]any{"type": "t", "key": "k"})
			return optlock.UpdateSafely(scoped, &entries, map[string]any{"value": gorm.Expr("value + ?", 100), "path": path})
		}

		res := write("b")
		require.NoError(t, res.Error)
		assert.EqualValues(t, 20, res.RowsAffected)
		for i, e := range entries {
			stored := load()[e.ID]
			assert.Equal(t, i+100, stored.Value)
			assert.Equal(t, "b", stored.Path)
			assert.EqualValues(t, 2, stored.Version)
			assert.EqualValues(t, 2, e.Version)
		}

		require.NoError(t, db.Model(&Entry{}).Where("id IN ?", []uint{entries[3].ID, entries[17].ID}).
			Update("version", gorm.Expr("version + 1")).Error)
		before := load()
		requireConflict(t, write("c").Error, entries[3].ID, entries[17].ID)
		assert.Equal(t, before, load(), "nothing written")
	})
}

// PointerKeyed has a pointer primary key: not a plain integer, so no form sends it as a number.
type PointerKeyed struct {
	ID      *uint `gorm:"primaryKey"`
	Qty     int
	Version int64
}

func (PointerKeyed) TableName() string { return "core_pointer_keyed" }

// A bulk write of rows with a pointer primary key is checked like any other (it panicked in the JSON
// and array forms, which took every integer-like key for a number).
func TestBulkWriteWithAPointerPrimaryKey(t *testing.T) {
	eachDB(t, []any{&PointerKeyed{}}, func(t *testing.T, db *gorm.DB) {
		rows := make([]PointerKeyed, 5)
		for i := range rows {
			id := uint(i + 1)
			rows[i] = PointerKeyed{ID: &id, Version: 1}
		}
		require.NoError(t, db.Create(&rows).Error)

		res := optlock.UpdateSafely(db, &rows, map[string]any{"qty": 2})
		require.NoError(t, res.Error)
		assert.EqualValues(t, 5, res.RowsAffected)

		require.NoError(t, db.Model(&PointerKeyed{}).Where("id = ?", 3).Update("version", 9).Error)
		err := optlock.UpdateSafely(db, &rows, map[string]any{"qty": 3}).Error
		require.ErrorIs(t, err, optlock.ErrConflict)
		var written int64
		require.NoError(t, db.Model(&PointerKeyed{}).Where("qty = 3").Count(&written).Error)
		assert.Zero(t, written, "nothing written")
	})
}

// One refused bulk write with a row of every kind: changed, soft-deleted, deleted, changed to NULL,
// NULL where 0 was read (which holds, as in the write), and untouched. Every refused row is named with
// what became of it, in the order of the rows; the others are not. (On SQLite the comparison runs in
// SQL for these rows, elsewhere in Go.)
func TestBulkConflictDetailsOfEveryKind(t *testing.T) {
	eachDB(t, []any{&SoftItem{}}, func(t *testing.T, db *gorm.DB) {
		rows := []SoftItem{{Qty: 1, Version: 1}, {Qty: 1, Version: 1}, {Qty: 1, Version: 1}, {Qty: 1, Version: 1}, {Qty: 1, Version: 0}, {Qty: 1, Version: 1}}
		require.NoError(t, db.Create(&rows).Error)
		set := func(i int, version any) {
			require.NoError(t, db.Model(&SoftItem{}).Where("id = ?", rows[i].ID).Update("version", version).Error)
		}
		set(0, 2)
		require.NoError(t, db.Delete(&SoftItem{}, rows[1].ID).Error)
		require.NoError(t, db.Unscoped().Delete(&SoftItem{}, rows[2].ID).Error)
		set(3, nil)
		set(4, nil)

		lockErr := asLockError(t, optlock.UpdateSafely(db, &rows, map[string]any{"qty": 5}).Error)
		require.NoError(t, lockErr.DetailsErr)
		assert.Equal(t, []optlock.RowConflict{
			{ID: rows[0].ID, Current: map[string]any{"version": 2}, Locks: []optlock.LockValue{{Column: "version", Int: 2}}},
			{ID: rows[1].ID, Deleted: true},
			{ID: rows[2].ID, Deleted: true},
			{ID: rows[3].ID, Current: map[string]any{"version": nil}, Locks: []optlock.LockValue{{Column: "version"}}},
		}, lockErr.Rows)
		var written int64
		require.NoError(t, db.Unscoped().Model(&SoftItem{}).Where("qty = 5").Count(&written).Error)
		assert.Zero(t, written, "nothing written")
	})
}

// SerializedKey's primary key is an integer that GORM serializes: GORM hands it over as a serializer,
// not as a number.
type SerializedKey struct {
	ID      int64 `gorm:"primaryKey;autoIncrement:false;serializer:json;type:varchar(32)"`
	Qty     int
	Version int64
}

func (SerializedKey) TableName() string { return "core_serialized_keys" }

// A lock-checked write of such a model is refused with ErrInvalidLock: GORM hands the key over wrapped,
// the conflict query could not match the keys it reads back, and a conflict would name every row as
// deleted. Before, bulk writes panicked on SQLite and PostgreSQL.
func TestWritesOfAModelWithASerializedKeyAreRefused(t *testing.T) {
	eachDB(t, []any{&SerializedKey{}}, func(t *testing.T, db *gorm.DB) {
		rows := []SerializedKey{{ID: 1, Version: 1}, {ID: 2, Version: 1}, {ID: 3, Version: 1}}
		require.NoError(t, db.Create(&rows).Error)
		require.NotPanics(t, func() {
			err := optlock.UpdateSafely(db, &rows[0], map[string]any{"qty": 2}).Error
			require.ErrorIs(t, err, optlock.ErrInvalidLock)
			assert.Contains(t, err.Error(), "serializer")
			require.ErrorIs(t, optlock.UpdateSafely(db, &rows, map[string]any{"qty": 3}).Error, optlock.ErrInvalidLock)
			require.ErrorIs(t, db.Scopes(optlock.WithLock()).Delete(&rows).Error, optlock.ErrInvalidLock)
		})
		var stored []SerializedKey
		require.NoError(t, db.Find(&stored).Error)
		require.Len(t, stored, 3)
		for _, r := range stored {
			assert.Zero(t, r.Qty, "nothing written")
			assert.EqualValues(t, 1, r.Version)
		}
	})
}

// Table(...) with and without an alias: the check, the join and the conflict query name the table as
// the caller did.
func TestBulkWriteThroughTableWithAnAlias(t *testing.T) {
	eachDB(t, []any{&Item{}}, func(t *testing.T, db *gorm.DB) {
		for _, table := range []string{"core_items", "core_items AS i"} {
			recreate(t, db, &Item{})
			items := seedItems(t, db, 4)
			require.NoError(t, optlock.UpdateSafely(db.Table(table), &items, map[string]any{"qty": 2}).Error, table)
			bumpBehindTheirBack(t, db, items[1].ID)
			before := loadItems(t, db)
			requireConflict(t, optlock.UpdateSafely(db.Table(table), &items, map[string]any{"qty": 3}).Error, items[1].ID)
			requireConflict(t, db.Table(table).Scopes(optlock.WithLock()).Model(&items).UpdateColumns(map[string]any{"qty": 4}).Error, items[1].ID)
			assert.Equal(t, before, loadItems(t, db), "%s: nothing written", table)
		}
	})
}
