package tests

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/go-optlock/optlock"
)

// Fuzz targets: every input ends in a correct write or a clear error, never a panic, and an error
// leaves the table as it was. They run on SQLite; the seed corpus is in testdata/fuzz.
//
//	go test -run '^$' -fuzz FuzzLockFieldNames -fuzztime 30s ./tests

func fuzzDB(f *testing.F) *gorm.DB {
	db, err := openSQLiteFile(filepath.Join(f.TempDir(), "fuzz.db"))
	require.NoError(f, err)
	require.NoError(f, db.Use(optlock.New()))
	require.NoError(f, db.AutoMigrate(&Item{}))
	items := make([]Item, 20)
	for i := range items {
		items[i] = Item{Name: "seed", Qty: 1, Version: 1}
	}
	require.NoError(f, db.Create(&items).Error)
	return db
}

// snapshotTable reads the table raw: SQLite stores whatever a fuzzed write gives it, which a struct
// could not always scan back.
func snapshotTable(t *testing.T, db *gorm.DB) []map[string]any {
	var rows []map[string]any
	require.NoError(t, db.Table("core_items").Order("id").Find(&rows).Error)
	return rows
}

// requireOutcome checks a write's result: success, or an error of an expected kind that left the
// table unchanged.
func requireOutcome(t *testing.T, db *gorm.DB, before []map[string]any, err error, allowed ...error) {
	t.Helper()
	if err == nil {
		return
	}
	ok := false
	for _, kind := range allowed {
		ok = ok || errors.Is(err, kind)
	}
	require.True(t, ok, "unexpected error: %v", err)
	require.Equal(t, before, snapshotTable(t, db), "an error must leave the table as it was: %v", err)
}

func FuzzLockFieldNames(f *testing.F) {
	for _, seed := range [][2]string{{"version", ""}, {"Version", "qty"}, {"qty; DROP TABLE core_items", ""}, {"", ""}, {"id", ""}, {"name", "version"}, {"updated_at", "x\x00y"}} {
		f.Add(seed[0], seed[1])
	}
	db := fuzzDB(f)
	f.Fuzz(func(t *testing.T, first, second string) {
		var item Item
		require.NoError(t, db.First(&item).Error)
		before := snapshotTable(t, db)
		names := []string{first}
		if second != "" {
			names = append(names, second)
		}
		err := optlock.UpdateSafely(db.Scopes(optlock.WithLock(names...)), &item, map[string]any{"name": "fuzzed"}).Error
		requireOutcome(t, db, before, err, optlock.ErrInvalidLock)
		require.True(t, db.Migrator().HasTable(&Item{}))
	})
}

func FuzzValuesMap(f *testing.F) {
	f.Add("qty", uint8(0), int64(3), "")
	f.Add("name", uint8(1), int64(0), "x'); DROP TABLE core_items; --")
	f.Add("version", uint8(0), int64(9), "")
	f.Add("qty` = 0, `version", uint8(0), int64(1), "")
	f.Add("Name", uint8(2), int64(0), "")
	f.Add("", uint8(3), int64(0), "")
	db := fuzzDB(f)
	f.Fuzz(func(t *testing.T, key string, kind uint8, n int64, s string) {
		// A previous input may have stored a string in qty (SQLite takes it): start from sane values.
		require.NoError(t, db.Exec("UPDATE core_items SET name = 'seed', qty = 1").Error)
		var item Item
		require.NoError(t, db.First(&item).Error)
		before := snapshotTable(t, db)
		var value any
		switch kind % 5 {
		case 0:
			value = n
		case 1:
			value = s
		case 2:
			value = nil
		case 3:
			value = []byte(s)
		case 4:
			value = map[string]any{"nested": s}
		}
		err := optlock.UpdateSafely(db, &item, map[string]any{key: value}).Error
		// SQLite stores what it is given; anything else is a clear refusal or a driver's conversion error.
		if err != nil && !errors.Is(err, optlock.ErrInvalidLock) {
			require.Equal(t, before, snapshotTable(t, db), "an error must leave the table as it was: %v", err)
			return
		}
		requireOutcome(t, db, before, err, optlock.ErrInvalidLock)
		if err == nil {
			require.EqualValues(t, before[0]["version"].(int64)+1, item.Version)
		}
	})
}

func FuzzModelShapes(f *testing.F) {
	f.Add(uint8(0), uint16(0), uint16(0), uint8(0))
	f.Add(uint8(1), uint16(1), uint16(0), uint8(0))
	f.Add(uint8(3), uint16(20), uint16(3), uint8(1))
	f.Add(uint8(3), uint16(20), uint16(3), uint8(2))
	f.Add(uint8(4), uint16(5), uint16(2), uint8(0))
	f.Add(uint8(6), uint16(3), uint16(0), uint8(0))
	f.Add(uint8(8), uint16(4000), uint16(100), uint8(3))
	db := fuzzDB(f)
	f.Fuzz(func(t *testing.T, shape uint8, n uint16, at uint16, twist uint8) {
		before := snapshotTable(t, db)
		var stored []Item
		require.NoError(t, db.Order("id").Find(&stored).Error)
		rows := make([]Item, 0, int(n)%5000)
		for i := range cap(rows) {
			rows = append(rows, stored[i%len(stored)])
		}
		pos := 0
		if len(rows) > 0 {
			pos = int(at) % len(rows)
			switch twist % 4 {
			case 1:
				rows[pos].ID = 0 // a zero key
			case 2:
				rows[pos].Version-- // a stale row
			case 3:
				rows[pos].ID = 1_000_000 + uint(at) // a row that does not exist
			}
		}
		var model any
		switch shape % 9 {
		case 0:
			model = nil
		case 1:
			if len(rows) > 0 {
				model = rows[0] // not a pointer
			}
		case 2:
			if len(rows) > 0 {
				model = &rows[0]
			}
		case 3, 8:
			model = &rows
		case 4:
			ptrs := make([]*Item, len(rows))
			for i := range rows {
				ptrs[i] = &rows[i]
			}
			if len(ptrs) > 0 && twist%2 == 1 {
				ptrs[pos] = nil
			}
			model = &ptrs
		case 5:
			model = &[]int{int(n)}
		case 6:
			mixed := []any{}
			for i := range rows {
				mixed = append(mixed, &rows[i])
			}
			model = &mixed
		case 7:
			arr := [2]Item{}
			copy(arr[:], rows)
			model = &arr
		}
		err := optlock.UpdateSafely(db, model, map[string]any{"qty": gorm.Expr("qty + 1")}).Error
		requireOutcome(t, db, before, err, optlock.ErrInvalidLock, optlock.ErrConflict)
	})
}
