package tests

import (
	"context"
	"database/sql/driver"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/go-optlock/optlock"
)

func TestUpdateEachWritesEachRowItsOwnValues(t *testing.T) {
	eachDB(t, []any{&Item{}}, func(t *testing.T, db *gorm.DB) {
		items := seedItems(t, db, 5)
		for i := range items {
			items[i].Qty = 100 + i
			items[i].Name = fmt.Sprintf("row %d", i)
		}
		rec, log := recording(db)
		res := optlock.UpdateEach(rec, &items)
		require.NoError(t, res.Error)
		assert.EqualValues(t, 5, res.RowsAffected)
		assert.Equal(t, 1, log.count("UPDATE"), "one statement for all rows")
		stored := loadItems(t, db)
		for _, it := range items {
			assert.EqualValues(t, 2, it.Version, "advanced in memory")
			assert.Equal(t, it, stored[it.ID])
		}

		// Only the named columns; and once the table's column types are known, nothing but the UPDATE.
		items[0].Qty, items[0].Name = 1, "not written"
		rec, log = recording(db)
		require.NoError(t, optlock.UpdateEach(rec, &items, "qty").Error)
		assert.Equal(t, 0, log.count("SELECT"), "no query besides the write: %v", log.sqls)
		stored = loadItems(t, db)
		assert.Equal(t, 1, stored[items[0].ID].Qty)
		assert.Equal(t, "row 0", stored[items[0].ID].Name)
	})
}

func TestUpdateEachRefusesStaleRowsAndWritesNothing(t *testing.T) {
	eachDB(t, []any{&Item{}}, func(t *testing.T, db *gorm.DB) {
		items := seedItems(t, db, 4)
		theirs := items[2]
		require.NoError(t, optlock.UpdateSafely(db, &theirs, map[string]any{"qty": 7}).Error)
		before := loadItems(t, db)
		for i := range items {
			items[i].Qty = 50
		}
		read := append([]Item(nil), items...)
		lockErr := requireConflict(t, optlock.UpdateEach(db, &items).Error, items[2].ID)
		assert.EqualValues(t, 2, lockErr.Rows[0].Current["version"])
		assert.Equal(t, before, loadItems(t, db), "nothing written")
		assert.Equal(t, read, items, "structs as they were")
	})
}

// Meta is a custom Valuer stored as JSON text.
type Meta map[string]any

func (m Meta) Value() (driver.Value, error) {
	if m == nil {
		return nil, nil
	}
	b, err := json.Marshal(map[string]any(m))
	return string(b), err
}

func (m *Meta) Scan(src any) error {
	var b []byte
	switch v := src.(type) {
	case nil:
		*m = nil
		return nil
	case string:
		b = []byte(v)
	case []byte:
		b = v
	default:
		return fmt.Errorf("Meta: cannot scan %T", src)
	}
	return json.Unmarshal(b, (*map[string]any)(m))
}

// Typed has a column of every common type, nullable ones included.
type Typed struct {
	ID      uint `gorm:"primaryKey"`
	Text    string
	MaybeS  *string
	Int     int64
	MaybeI  *int64
	Float   float64
	Flag    bool
	At      time.Time
	MaybeAt *time.Time
	Blob    []byte
	Meta    Meta `gorm:"type:text"`
	Version int
}

func (Typed) TableName() string { return "core_typed" }

func TestUpdateEachCarriesEveryCommonType(t *testing.T) {
	eachDB(t, []any{&Typed{}}, func(t *testing.T, db *gorm.DB) {
		rows := make([]Typed, 4)
		for i := range rows {
			rows[i] = Typed{Text: "t", Int: 1, At: time.Now().UTC().Truncate(time.Second), Version: 1}
		}
		require.NoError(t, db.Create(&rows).Error)
		s, n, at := "set", int64(42), time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
		for i := range rows {
			rows[i].Text = fmt.Sprintf("text %d ' \" \\", i)
			rows[i].Int = int64(i) * 1_000_000_007
			rows[i].Float = float64(i) + 0.25
			rows[i].Flag = i%2 == 0
			rows[i].At = at.Add(time.Duration(i) * time.Hour)
			rows[i].Blob = []byte{0, byte(i), 255}
			rows[i].Meta = Meta{"i": float64(i)}
			if i%2 == 0 { // per-row NULLs
				rows[i].MaybeS, rows[i].MaybeI, rows[i].MaybeAt = &s, &n, &at
			}
		}
		rows[3].Meta = nil
		require.NoError(t, optlock.UpdateEach(db, &rows).Error)
		var stored []Typed
		require.NoError(t, db.Order("id").Find(&stored).Error)
		for i, got := range stored {
			want := rows[i]
			assert.Equal(t, want.Text, got.Text)
			assert.Equal(t, want.Int, got.Int)
			assert.Equal(t, want.Float, got.Float)
			assert.Equal(t, want.Flag, got.Flag)
			assert.True(t, want.At.Equal(got.At), "row %d: %v, stored %v", i, want.At, got.At)
			assert.Equal(t, want.Blob, got.Blob)
			assert.Equal(t, want.Meta, got.Meta)
			assert.Equal(t, want.MaybeS, got.MaybeS)
			assert.Equal(t, want.MaybeI, got.MaybeI)
			if want.MaybeAt == nil {
				assert.Nil(t, got.MaybeAt)
			} else {
				assert.True(t, want.MaybeAt.Equal(*got.MaybeAt))
			}
			assert.Equal(t, 2, got.Version)
		}
	})
}

func TestUpdateEachWithCompositeKeysAndTimestamps(t *testing.T) {
	eachDB(t, []any{&Stock{}, &Doc{}}, func(t *testing.T, db *gorm.DB) {
		stocks := []Stock{{"north", 1, 5, 1}, {"north", 2, 5, 1}, {"south", 1, 5, 1}}
		require.NoError(t, db.Create(&stocks).Error)
		for i := range stocks {
			stocks[i].Qty = i
		}
		require.NoError(t, optlock.UpdateEach(db, &stocks).Error)
		stale := append([]Stock(nil), stocks...)
		stale[1].Version = 1
		lockErr := asLockError(t, optlock.UpdateEach(db, &stale).Error)
		assert.Equal(t, []any{[]any{"north", 2}}, lockErr.ConflictIDs)

		docs := []Doc{{Title: "a"}, {Title: "b"}}
		require.NoError(t, db.Session(&gorm.Session{NowFunc: nanoClock}).Create(&docs).Error)
		staleDocs := append([]Doc(nil), docs...)
		docs[0].Title, docs[1].Title = "a2", "b2"
		require.NoError(t, optlock.UpdateEach(db, &docs).Error)
		for _, d := range docs {
			assert.True(t, d.UpdatedAt.Equal(loadDoc(t, db, d.ID).UpdatedAt))
		}
		requireConflict(t, optlock.UpdateEach(db, &staleDocs).Error, staleDocs[0].ID, staleDocs[1].ID)
	})
}

func TestUpdateEachRefusesBadInput(t *testing.T) {
	eachDB(t, []any{&Item{}}, func(t *testing.T, db *gorm.DB) {
		items := seedItems(t, db, 2)
		dup := []Item{items[0], items[0]}
		zero := []Item{items[0], {Name: "no key"}}
		cases := []struct {
			name    string
			rows    any
			columns []string
		}{
			{"unknown column", &items, []string{"nope"}},
			{"key column", &items, []string{"id"}},
			{"lock column", &items, []string{"version"}},
			{"malformed column", &items, []string{"qty; DROP TABLE core_items"}},
			{"one struct", &items[0], nil},
			{"not a pointer", items, nil},
			{"mixed types", &[]any{&items[0], &Doc{ID: 1}}, nil},
			{"duplicate keys", &dup, nil},
			{"zero key", &zero, nil},
			{"nil", nil, nil},
		}
		before := loadItems(t, db)
		for _, tc := range cases {
			assert.NotPanics(t, func() {
				err := optlock.UpdateEach(db, tc.rows, tc.columns...).Error
				assert.ErrorIs(t, err, optlock.ErrInvalidLock, "%s: %v", tc.name, err)
			}, tc.name)
		}
		assert.Equal(t, before, loadItems(t, db))
	})
}

// EachHooked counts its hooks and sets a value in BeforeUpdate.
type EachHooked struct {
	ID      uint `gorm:"primaryKey"`
	Qty     int
	Note    string
	Version int
	after   int
}

func (EachHooked) TableName() string { return "core_each_hooked" }

func (h *EachHooked) BeforeUpdate(*gorm.DB) error { h.Note = fmt.Sprintf("qty %d", h.Qty); return nil }
func (h *EachHooked) AfterUpdate(*gorm.DB) error  { h.after++; return nil }

func TestUpdateEachRunsHooksPerRow(t *testing.T) {
	eachDB(t, []any{&EachHooked{}}, func(t *testing.T, db *gorm.DB) {
		rows := []EachHooked{{Qty: 1, Version: 1}, {Qty: 2, Version: 1}}
		require.NoError(t, db.Create(&rows).Error)
		rows[0].Qty, rows[1].Qty = 10, 20
		require.NoError(t, optlock.UpdateEach(db, &rows).Error)
		var stored []EachHooked
		require.NoError(t, db.Order("id").Find(&stored).Error)
		assert.Equal(t, "qty 10", stored[0].Note)
		assert.Equal(t, "qty 20", stored[1].Note)
		assert.Equal(t, 1, rows[0].after)
		assert.Equal(t, 1, rows[1].after)
	})
}

// With a small bind-parameter limit the rows go in several statements; a conflict in the first, a
// middle or the last chunk writes nothing, inside and outside the caller's transaction.
func TestUpdateEachChunkedIsAllOrNothing(t *testing.T) {
	eachDB(t, []any{&Item{}, &LogEntry{}}, func(t *testing.T, db *gorm.DB) {
		for _, stalePos := range []int{0, 14, 29} {
			for _, inTx := range []bool{false, true} {
				recreate(t, db, &Item{}, &LogEntry{})
				items := seedItems(t, db, 30)
				theirs := items[stalePos]
				require.NoError(t, optlock.UpdateSafely(db, &theirs, map[string]any{"qty": 7}).Error)
				before := loadItems(t, db)
				slices.Reverse(items) // any order: chunks are cut in key order
				for i := range items {
					items[i].Qty = 1000 + i
				}
				write := func(tx *gorm.DB) error { return optlock.UpdateEach(tx, &items, "qty").Error }
				var err error
				if inTx {
					require.NoError(t, db.Transaction(func(tx *gorm.DB) error {
						require.NoError(t, tx.Create(&LogEntry{Note: "kept"}).Error)
						err = write(tx)
						return nil
					}))
					assert.EqualValues(t, 1, countRows(t, db, &LogEntry{}), "the caller's other work is committed")
				} else {
					err = write(db)
				}
				requireConflict(t, err, theirs.ID)
				assert.Equal(t, before, loadItems(t, db), "stale row %d, in a transaction %v: nothing written", stalePos, inTx)
			}
		}
		recreate(t, db, &Item{})
		items := seedItems(t, db, 30)
		for i := range items {
			items[i].Qty = i
		}
		rec, log := recording(db)
		require.NoError(t, optlock.UpdateEach(rec, &items, "qty").Error)
		assert.Greater(t, log.count("UPDATE"), 1, "the write was split")
		for _, it := range loadItems(t, db) {
			assert.EqualValues(t, 2, it.Version)
		}
	}, optlock.WithBindVarLimit(40))
}

func TestUpdateEachOfTenThousandRows(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	eachDB(t, []any{&Item{}}, func(t *testing.T, db *gorm.DB) {
		items := seedItems(t, db, 10_000)
		for i := range items {
			items[i].Qty = i
		}
		rec, log := recording(db)
		require.NoError(t, optlock.UpdateEach(rec, &items, "qty").Error)
		assert.Equal(t, 1, log.count("UPDATE"))
		stored := loadItems(t, db)
		for _, it := range items {
			require.Equal(t, it, stored[it.ID])
		}
		items[9_999].Version = 1
		requireConflict(t, optlock.UpdateEach(db, &items, "qty").Error, items[9_999].ID)
	})
}

// Writers update overlapping rows in opposite orders with Retry: no lost update, no deadlock.
func TestUpdateEachConcurrentOverlappingWriters(t *testing.T) {
	eachDB(t, []any{&Item{}}, func(t *testing.T, db *gorm.DB) {
		seeded := seedItems(t, db, 30)
		ids := make([]uint, len(seeded))
		for i, it := range seeded {
			ids[i] = it.ID
		}
		const rounds = 15
		var wg sync.WaitGroup
		errs := make([]error, 3)
		deadlocks := 0
		var mu sync.Mutex
		for w := range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range rounds {
					err := optlock.Retry(context.Background(), func(ctx context.Context) error {
						var rows []Item
						if err := db.WithContext(ctx).Where("id IN ?", ids[w*5:w*5+20]).Find(&rows).Error; err != nil {
							return err
						}
						if w%2 == 1 {
							slices.Reverse(rows)
						}
						for i := range rows {
							rows[i].Qty++
						}
						return optlock.UpdateEach(db.WithContext(ctx), &rows, "qty").Error
					}, optlock.RetryAttempts(1000), optlock.RetryNotify(func(_ int, err error) {
						if isDeadlock(err) {
							mu.Lock()
							deadlocks++
							mu.Unlock()
						}
					}))
					if err != nil {
						errs[w] = err
						return
					}
				}
			}()
		}
		wg.Wait()
		for _, err := range errs {
			require.NoError(t, err)
		}
		assert.Zero(t, deadlocks)
		want := map[uint]int{}
		for w := range 3 {
			for _, id := range ids[w*5 : w*5+20] {
				want[id] += rounds
			}
		}
		for _, it := range loadItems(t, db) {
			assert.Equal(t, 10+want[it.ID], it.Qty, "row %d: no lost update", it.ID)
		}
	})
}
