package tests

import (
	"database/sql"
	"database/sql/driver"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/go-optlock/optlock"
)

// LockPart is embedded through a pointer: GORM assigns its fields in place, in memory a copy of the
// struct shares.
type LockPart struct {
	Version int64
	Label   *string
}

// PointerDoc keeps its lock field behind an embedded pointer.
type PointerDoc struct {
	ID   uint `gorm:"primaryKey"`
	Body string
	Lock *LockPart `gorm:"embedded"`
}

func (PointerDoc) TableName() string { return "core_pointer_docs" }

// A refused write leaves the struct exactly as read, through pointers too: sending the same stale
// struct again is refused again, and never overwrites the other writer.
func TestRefusedWriteRestoresFieldsBehindPointers(t *testing.T) {
	eachDB(t, []any{&PointerDoc{}}, func(t *testing.T, db *gorm.DB) {
		label := "first"
		doc := PointerDoc{Body: "a", Lock: &LockPart{Version: 1, Label: &label}}
		require.NoError(t, db.Create(&doc).Error)
		var mine, theirs PointerDoc
		require.NoError(t, db.First(&mine, doc.ID).Error)
		require.NoError(t, db.First(&theirs, doc.ID).Error)
		require.NoError(t, optlock.UpdateSafely(db, &theirs, map[string]any{"body": "theirs"}).Error)

		for attempt := range 2 {
			err := optlock.UpdateSafely(db, &mine, map[string]any{"body": "mine", "label": "mine"}).Error
			requireConflict(t, err, doc.ID)
			assert.EqualValues(t, 1, mine.Lock.Version, "attempt %d: version as read", attempt)
			assert.Equal(t, "first", *mine.Lock.Label, "attempt %d: pointer field as read", attempt)
		}
		var stored PointerDoc
		require.NoError(t, db.First(&stored, doc.ID).Error)
		assert.Equal(t, "theirs", stored.Body, "the other writer's update is not lost")
	})
}

// NullableVersion models a table whose version column was added later (NULL in old rows), and the
// nullable lock types a model may use, including the official plugin's Version (a sql.NullInt64).
type NullableVersion struct {
	ID      uint `gorm:"primaryKey"`
	Qty     int
	Version sql.NullInt64
}

func (NullableVersion) TableName() string { return "core_nullable_versions" }

type PointerVersion struct {
	ID      uint `gorm:"primaryKey"`
	Qty     int
	Version *int64
}

func (PointerVersion) TableName() string { return "core_pointer_versions" }

// officialVersion has the shape of gorm.io/plugin/optimisticlock's Version: a sql.NullInt64 with
// its own Scan and Value.
type officialVersion sql.NullInt64

func (v *officialVersion) Scan(value any) error { return (*sql.NullInt64)(v).Scan(value) }

func (v officialVersion) Value() (driver.Value, error) { return sql.NullInt64(v).Value() }

type OfficialShaped struct {
	ID      uint `gorm:"primaryKey"`
	Qty     int
	Version officialVersion
}

func (OfficialShaped) TableName() string { return "core_official_shaped" }

// A NULL version behaves as the zero value the caller read: checked, advanced to 1, and a stale
// holder of the NULL read is refused with a conflict (not a raw error, not a retry loop).
func TestNullVersionsAreCheckedAndAdvanced(t *testing.T) {
	cases := []struct {
		name  string
		model any
		table string
		rows  func() any
	}{
		{"sql.NullInt64", &NullableVersion{}, "core_nullable_versions", func() any { return &[]NullableVersion{} }},
		{"*int64", &PointerVersion{}, "core_pointer_versions", func() any { return &[]PointerVersion{} }},
		{"optimisticlock.Version shape", &OfficialShaped{}, "core_official_shaped", func() any { return &[]OfficialShaped{} }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			eachDB(t, []any{tc.model}, func(t *testing.T, db *gorm.DB) {
				for _, n := range []int{1, 3} {
					recreate(t, db, tc.model)
					for range n { // rows made outside GORM: version NULL
						require.NoError(t, db.Exec("INSERT INTO "+tc.table+" (qty) VALUES (1)").Error)
					}
					mine, theirs := tc.rows(), tc.rows()
					require.NoError(t, db.Order("id").Find(mine).Error)
					require.NoError(t, db.Order("id").Find(theirs).Error)

					require.NoError(t, optlock.UpdateSafely(db, theirs, map[string]any{"qty": 2}).Error, "%d rows", n)
					var versions []sql.NullInt64
					require.NoError(t, db.Table(tc.table).Order("id").Pluck("version", &versions).Error)
					for _, v := range versions {
						assert.Equal(t, sql.NullInt64{Int64: 1, Valid: true}, v, "NULL advanced to 1")
					}
					err := optlock.UpdateSafely(db, mine, map[string]any{"qty": 3}).Error
					require.ErrorIs(t, err, optlock.ErrConflict, "%d rows: %v", n, err)
					var lockErr *optlock.OptimisticLockError
					require.ErrorAs(t, err, &lockErr)
					assert.Len(t, lockErr.ConflictIDs, n)
					for _, r := range lockErr.Rows {
						assert.False(t, r.Unknown)
						assert.EqualValues(t, 1, r.Current["version"])
					}
					// The advanced structs write again.
					require.NoError(t, optlock.UpdateSafely(db, theirs, map[string]any{"qty": 4}).Error)
				}
			})
		})
	}
}

// Renamed is locked by a Version field whose column has another name.
type Renamed struct {
	ID      uint `gorm:"primaryKey"`
	Qty     int
	Version int64 `gorm:"column:lock_version"`
}

func (Renamed) TableName() string { return "core_renamed" }

func TestRenamedVersionColumnIsTheDefaultLock(t *testing.T) {
	eachDB(t, []any{&Renamed{}}, func(t *testing.T, db *gorm.DB) {
		row := Renamed{Qty: 1, Version: 1}
		require.NoError(t, db.Create(&row).Error)
		stale := row
		require.NoError(t, optlock.UpdateSafely(db, &row, map[string]any{"qty": 2}).Error)
		assert.EqualValues(t, 2, row.Version)
		requireConflict(t, optlock.UpdateSafely(db, &stale, map[string]any{"qty": 3}).Error, row.ID)
	})
}

// The caller's own Where that excludes the row is not a conflict: nothing is written, the error says
// so, and a retry would not help.
func TestCallersWhereThatExcludesTheRowIsNotAConflict(t *testing.T) {
	eachDB(t, []any{&Item{}}, func(t *testing.T, db *gorm.DB) {
		for _, n := range []int{1, 3} {
			recreate(t, db, &Item{})
			items := seedItems(t, db, n)
			err := optlock.UpdateSafely(db.Where("qty > ?", 100), &items, map[string]any{"qty": 0}).Error
			require.ErrorIs(t, err, optlock.ErrNotMatched, "%d rows: %v", n, err)
			assert.NotErrorIs(t, err, optlock.ErrConflict)
			assert.False(t, optlock.IsRetryable(err))
			assert.EqualValues(t, 1, items[0].Version, "struct as read")
		}
	})
}

// With Unscoped, a changed soft-deleted row is reported as changed, not deleted.
func TestUnscopedChangedSoftDeletedRowIsChanged(t *testing.T) {
	eachDB(t, []any{&SoftItem{}}, func(t *testing.T, db *gorm.DB) {
		row := SoftItem{Qty: 1, Version: 1}
		require.NoError(t, db.Create(&row).Error)
		require.NoError(t, db.Delete(&row).Error)
		stale := row
		require.NoError(t, optlock.UpdateSafely(db.Unscoped(), &row, map[string]any{"qty": 2}).Error)
		err := optlock.UpdateSafely(db.Unscoped(), &stale, map[string]any{"qty": 3}).Error
		lockErr := requireConflict(t, err, row.ID)
		assert.False(t, lockErr.Rows[0].Deleted, "changed, not deleted")
		assert.EqualValues(t, 2, lockErr.Rows[0].Current["version"])
	})
}

// Hidden has a field GORM does not map.
type Hidden struct {
	ID      uint `gorm:"primaryKey"`
	Qty     int
	Note    string `gorm:"-"`
	Version int64
}

func (Hidden) TableName() string { return "core_hidden" }

func TestBadInputIsRefusedWithoutPanic(t *testing.T) {
	eachDB(t, []any{&Hidden{}}, func(t *testing.T, db *gorm.DB) {
		row := Hidden{Qty: 1, Version: 1}
		require.NoError(t, db.Create(&row).Error)
		cases := []struct {
			name   string
			model  any
			values any
		}{
			{"values name a gorm:\"-\" field", &row, map[string]any{"note": "x"}},
			{"values name a gorm:\"-\" field by its Go name", &row, map[string]any{"Note": "x"}},
			{"values name a gorm:\"-\" field on many rows", &[]Hidden{row}, map[string]any{"Note": "x"}},
			{"nil model", nil, map[string]any{"qty": 2}},
		}
		for _, tc := range cases {
			assert.NotPanics(t, func() {
				err := optlock.UpdateSafely(db, tc.model, tc.values).Error
				assert.ErrorIs(t, err, optlock.ErrInvalidLock, tc.name)
			}, tc.name)
		}
		assert.EqualValues(t, 1, row.Version)
		assert.NotPanics(t, func() {
			assert.ErrorIs(t, optlock.UpdateSafely(nil, &row, map[string]any{"qty": 2}).Error, optlock.ErrInvalidLock)
		}, "nil db")
	})
}

// NullTimeDoc and PointerTimeDoc are locked by a nullable updated_at.
type NullTimeDoc struct {
	ID        uint `gorm:"primaryKey"`
	Title     string
	UpdatedAt sql.NullTime
}

func (NullTimeDoc) TableName() string { return "core_null_time_docs" }

type PointerTimeDoc struct {
	ID        uint `gorm:"primaryKey"`
	Title     string
	UpdatedAt *time.Time
}

func (PointerTimeDoc) TableName() string { return "core_pointer_time_docs" }

// A NULL updated_at behaves as the zero time the caller read: checked, advanced to now, and a stale
// holder of the NULL read is refused.
func TestNullTimestampsAreCheckedAndAdvanced(t *testing.T) {
	cases := []struct {
		name  string
		model any
		table string
		rows  func() any
		at    func(rows any, i int) time.Time
	}{
		{"sql.NullTime", &NullTimeDoc{}, "core_null_time_docs", func() any { return &[]NullTimeDoc{} },
			func(rows any, i int) time.Time { return (*rows.(*[]NullTimeDoc))[i].UpdatedAt.Time }},
		{"*time.Time", &PointerTimeDoc{}, "core_pointer_time_docs", func() any { return &[]PointerTimeDoc{} },
			func(rows any, i int) time.Time { return *(*rows.(*[]PointerTimeDoc))[i].UpdatedAt }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			eachDB(t, []any{tc.model}, func(t *testing.T, db *gorm.DB) {
				for _, n := range []int{1, 3} {
					recreate(t, db, tc.model)
					for range n { // rows made outside GORM: updated_at NULL
						require.NoError(t, db.Exec("INSERT INTO "+tc.table+" (title) VALUES ('a')").Error)
					}
					mine, theirs := tc.rows(), tc.rows()
					require.NoError(t, db.Order("id").Find(mine).Error)
					require.NoError(t, db.Order("id").Find(theirs).Error)

					before := time.Now().Add(-time.Minute)
					require.NoError(t, optlock.UpdateSafely(db, theirs, map[string]any{"title": "b"}).Error, "%d rows", n)
					for i := range n {
						assert.True(t, tc.at(theirs, i).After(before), "row %d advanced to now: %v", i, tc.at(theirs, i))
					}
					err := optlock.UpdateSafely(db, mine, map[string]any{"title": "c"}).Error
					var lockErr *optlock.OptimisticLockError
					require.ErrorAs(t, err, &lockErr, "%d rows: %v", n, err)
					assert.Len(t, lockErr.ConflictIDs, n)
					require.NoError(t, optlock.UpdateSafely(db, theirs, map[string]any{"title": "d"}).Error, "the advanced structs write again")
				}
			})
		})
	}
}
