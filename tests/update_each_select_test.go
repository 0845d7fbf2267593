package tests

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/go-optlock/optlock"
)

// UpdateEach and Select/Omit (issue 20 item 5): the columns a caller left out of the statement, or
// never loaded, keep what is stored; only the columns Save would write under the same Select and
// Omit are written.

// EachSel has columns a caller may leave out of a write, a version lock, and an updated_at that is not
// the lock (autoUpdateTime).
type EachSel struct {
	ID        uint `gorm:"primaryKey"`
	Name      string
	Qty       int
	Note      string
	Version   int64
	CreatedAt time.Time
	UpdatedAt time.Time
}

func (EachSel) TableName() string { return "each_sel" }

var (
	eachSelCreated = time.Date(2019, 1, 1, 0, 0, 0, 0, time.UTC)
	eachSelUpdated = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
)

// seedEachSel creates n rows as another process would: name "n", qty 1, note "stored", version 1,
// and fixed timestamps, so a column left alone can be told from one written.
func seedEachSel(t *testing.T, c configured, n int) []EachSel {
	t.Helper()
	rows := make([]EachSel, n)
	for i := range rows {
		rows[i] = EachSel{Name: "n", Qty: 1, Note: "stored", Version: 1, CreatedAt: eachSelCreated, UpdatedAt: eachSelUpdated}
	}
	require.NoError(t, c.observer.Create(&rows).Error)
	return rows
}

// changeEachSel changes every column in memory: note to the zero value, as if it was never loaded.
func changeEachSel(rows []EachSel) {
	for i := range rows {
		rows[i].Name = fmt.Sprintf("changed %d", i)
		rows[i].Qty = 100 + i
		rows[i].Note = ""
		rows[i].CreatedAt = eachSelCreated.AddDate(2, 0, 0)
	}
}

// storedEachSel reads the rows as another process sees them, by ID.
func storedEachSel(t *testing.T, c configured, rows []EachSel) map[uint]EachSel {
	t.Helper()
	ids := make([]uint, len(rows))
	for i, r := range rows {
		ids[i] = r.ID
	}
	var stored []EachSel
	require.NoError(t, c.observer.Where("id IN ?", ids).Order("id").Find(&stored).Error)
	byID := make(map[uint]EachSel, len(stored))
	for _, s := range stored {
		byID[s.ID] = s
	}
	return byID
}

// requireWritten checks each stored row: the columns in written hold what the struct holds (updated_at:
// a new time), the others what was seeded; the version is 2 in the table and in the struct.
func requireWritten(t *testing.T, c configured, rows []EachSel, written ...string) {
	t.Helper()
	want := map[string]bool{}
	for _, w := range written {
		want[w] = true
	}
	stored := storedEachSel(t, c, rows)
	require.Len(t, stored, len(rows))
	for _, r := range rows {
		s := stored[r.ID]
		pick := func(col string, mem, seeded any) any {
			if want[col] {
				return mem
			}
			return seeded
		}
		assert.Equal(t, pick("name", r.Name, "n"), s.Name, "row %d: name", r.ID)
		assert.Equal(t, pick("qty", r.Qty, 1), s.Qty, "row %d: qty", r.ID)
		assert.Equal(t, pick("note", r.Note, "stored"), s.Note, "row %d: note", r.ID)
		assert.True(t, pick("created_at", r.CreatedAt, eachSelCreated).(time.Time).Equal(s.CreatedAt), "row %d: created_at %v", r.ID, s.CreatedAt)
		if want["updated_at"] {
			assert.True(t, s.UpdatedAt.After(eachSelUpdated), "row %d: updated_at %v, want set to now", r.ID, s.UpdatedAt)
		} else {
			assert.True(t, s.UpdatedAt.Equal(eachSelUpdated), "row %d: updated_at %v, want left as stored", r.ID, s.UpdatedAt)
		}
		assert.EqualValues(t, 2, s.Version, "row %d: the lock is advanced whatever Select and Omit say", r.ID)
		assert.EqualValues(t, 2, r.Version, "row %d: and advanced in memory", r.ID)
	}
}

func TestUpdateEachWritesWhatSelectAndOmitLeave(t *testing.T) {
	cases := []struct {
		name    string
		scope   func(*gorm.DB) *gorm.DB
		columns []string
		written []string
	}{
		{"neither", func(db *gorm.DB) *gorm.DB { return db }, nil, []string{"name", "qty", "note", "updated_at"}},
		{"Omit a column", func(db *gorm.DB) *gorm.DB { return db.Omit("note") }, nil, []string{"name", "qty", "updated_at"}},
		{"Omit a Go field name", func(db *gorm.DB) *gorm.DB { return db.Omit("Note", "Name") }, nil, []string{"qty", "updated_at"}},
		{"Omit updated_at", func(db *gorm.DB) *gorm.DB { return db.Omit("updated_at") }, nil, []string{"name", "qty", "note"}},
		// As Save: a column with autoUpdateTime is set to now unless omitted, Select or not.
		{"Select one column", func(db *gorm.DB) *gorm.DB { return db.Select("qty") }, nil, []string{"qty", "updated_at"}},
		{"Select a table-qualified column", func(db *gorm.DB) *gorm.DB { return db.Select("each_sel.qty") }, nil, []string{"qty", "updated_at"}},
		{"Select one column, Omit updated_at", func(db *gorm.DB) *gorm.DB { return db.Select("qty").Omit("updated_at") }, nil, []string{"qty"}},
		{"Select created_at by name", func(db *gorm.DB) *gorm.DB { return db.Select("Qty", "created_at") }, nil, []string{"qty", "created_at", "updated_at"}},
		{"Select *", func(db *gorm.DB) *gorm.DB { return db.Select("*") }, nil, []string{"name", "qty", "note", "updated_at"}},
		{"Select * Omit a column", func(db *gorm.DB) *gorm.DB { return db.Select("*").Omit("name") }, nil, []string{"qty", "note", "updated_at"}},
		// The read's own Select: the key matches the rows, the lock is checked and advanced.
		{"Select naming the key and the lock", func(db *gorm.DB) *gorm.DB { return db.Select("id", "qty", "version") }, nil, []string{"qty", "updated_at"}},
		{"Omit the lock", func(db *gorm.DB) *gorm.DB { return db.Omit("version") }, nil, []string{"name", "qty", "note", "updated_at"}},
		{"Omit the key", func(db *gorm.DB) *gorm.DB { return db.Omit("id") }, nil, []string{"name", "qty", "note", "updated_at"}},
		{"Omit associations", func(db *gorm.DB) *gorm.DB { return db.Omit(clause.Associations) }, nil, []string{"name", "qty", "note", "updated_at"}},
		// The columns argument names exactly what is written, of what Select and Omit leave.
		{"columns", func(db *gorm.DB) *gorm.DB { return db }, []string{"qty", "note"}, []string{"qty", "note"}},
		{"columns and Omit", func(db *gorm.DB) *gorm.DB { return db.Omit("note") }, []string{"qty", "note"}, []string{"qty"}},
		{"columns and Select", func(db *gorm.DB) *gorm.DB { return db.Select("qty", "updated_at") }, []string{"qty", "name"}, []string{"qty"}},
		{"columns and Select *", func(db *gorm.DB) *gorm.DB { return db.Select("*") }, []string{"qty"}, []string{"qty"}},
	}
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			c := openConfigured(t, d, &gorm.Config{}, []any{&EachSel{}})
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					rows := seedEachSel(t, c, 3)
					changeEachSel(rows)
					res := optlock.UpdateEach(tc.scope(c.db), &rows, tc.columns...)
					c.requireIdle(t)
					require.NoError(t, res.Error)
					assert.EqualValues(t, 3, res.RowsAffected)
					requireWritten(t, c, rows, tc.written...)
				})
			}
		})
	}
}

// Whatever Select and Omit name, the lock is checked: a stale row is refused, and nothing is written.
func TestUpdateEachSelectOrOmitOfTheLockStillChecks(t *testing.T) {
	scopes := []struct {
		name  string
		scope func(*gorm.DB) *gorm.DB
	}{
		{"Select naming the key and the lock", func(db *gorm.DB) *gorm.DB { return db.Select("id", "qty", "version") }},
		{"Select the lock", func(db *gorm.DB) *gorm.DB { return db.Select("Version") }},
		{"Omit the lock", func(db *gorm.DB) *gorm.DB { return db.Omit("version") }},
		{"Select * Omit the lock and the key", func(db *gorm.DB) *gorm.DB { return db.Select("*").Omit("version", "id") }},
	}
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			c := openConfigured(t, d, &gorm.Config{}, []any{&EachSel{}})
			for _, sc := range scopes {
				t.Run(sc.name, func(t *testing.T) {
					rows := seedEachSel(t, c, 3)
					require.NoError(t, c.observer.Model(&EachSel{}).Where("id = ?", rows[1].ID).Update("version", 9).Error)
					before := storedEachSel(t, c, rows)
					changeEachSel(rows)
					given := append([]EachSel(nil), rows...)
					err := optlock.UpdateEach(sc.scope(c.db), &rows).Error
					c.requireIdle(t)
					requireConflict(t, err, rows[1].ID)
					assert.Equal(t, before, storedEachSel(t, c, rows), "nothing written")
					assert.Equal(t, given, rows, "the structs are as they were")
				})
			}
		})
	}
}

// Select or Omit naming no column of the model, or leaving nothing to write, is bad input: an error
// wrapping ErrInvalidLock, and nothing written (a typo in Omit would otherwise overwrite the column the
// caller meant to keep).
func TestUpdateEachRefusesSelectOrOmitOfUnknownColumns(t *testing.T) {
	cases := []struct {
		name    string
		scope   func(*gorm.DB) *gorm.DB
		columns []string
	}{
		{"Select of an unknown column", func(db *gorm.DB) *gorm.DB { return db.Select("qty", "nope") }, nil},
		{"Select of another table's column", func(db *gorm.DB) *gorm.DB { return db.Select("other.qty") }, nil},
		{"Select of an expression", func(db *gorm.DB) *gorm.DB { return db.Select("qty, name") }, nil},
		{"Omit of an unknown column", func(db *gorm.DB) *gorm.DB { return db.Omit("notes") }, nil},
		{"Select * and Omit of an unknown column", func(db *gorm.DB) *gorm.DB { return db.Select("*").Omit("nope") }, nil},
		{"nothing left to write", func(db *gorm.DB) *gorm.DB { return db.Select("version").Omit("updated_at") }, nil},
		{"columns all omitted", func(db *gorm.DB) *gorm.DB { return db.Omit("note") }, []string{"note"}},
		{"columns none selected", func(db *gorm.DB) *gorm.DB { return db.Select("qty") }, []string{"name"}},
		{"columns and an unknown Select", func(db *gorm.DB) *gorm.DB { return db.Select("nope") }, []string{"qty"}},
	}
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			// A small limit splits the write into chunks: none of them may be sent.
			c := openConfigured(t, d, &gorm.Config{}, []any{&EachSel{}}, optlock.WithBindVarLimit(40))
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					rows := seedEachSel(t, c, 12)
					before := storedEachSel(t, c, rows)
					changeEachSel(rows)
					given := append([]EachSel(nil), rows...)
					rec, log := recording(c.db)
					err := optlock.UpdateEach(tc.scope(rec), &rows, tc.columns...).Error
					c.requireIdle(t)
					require.ErrorIs(t, err, optlock.ErrInvalidLock)
					assert.NotErrorIs(t, err, optlock.ErrConflict)
					assert.Zero(t, log.count("UPDATE"), "no chunk sent: %v", log.sqls)
					assert.Equal(t, before, storedEachSel(t, c, rows), "nothing written")
					assert.Equal(t, given, rows, "the structs are as they were")
				})
			}
		})
	}
}

// The other writes of many rows, and Save, go through GORM's own conversion of values to SET, which
// honours Select and Omit: they leave the columns Select and Omit leave out as stored too, split into
// chunks or not, guarded or not.
func TestBulkWritesHonourSelectAndOmit(t *testing.T) {
	chunked := optlock.WithBindVarLimit(10)
	guarded := optlock.Guard(&EachSel{})
	// A write of rows bound as one JSON object (SQLite) or as arrays (PostgreSQL) is never split.
	mysqlOnly := func(dialect string) bool { return dialect == "mysql" }
	always := func(string) bool { return true }
	never := func(string) bool { return false }
	paths := []struct {
		name    string
		opts    []optlock.Option
		splits  func(dialect string) bool
		write   func(db *gorm.DB, rows *[]EachSel) error
		written []string
	}{
		{"UpdateSafely of a slice, a map, Omit", nil, never, func(db *gorm.DB, rows *[]EachSel) error {
			return optlock.UpdateSafely(db.Omit("note"), rows, map[string]any{"qty": 5, "note": ""}).Error
		}, []string{"qty", "updated_at"}},
		{"UpdateSafely of a slice, a map, Omit, chunked", []optlock.Option{chunked}, mysqlOnly, func(db *gorm.DB, rows *[]EachSel) error {
			return optlock.UpdateSafely(db.Omit("note"), rows, map[string]any{"qty": 5, "note": ""}).Error
		}, []string{"qty", "updated_at"}},
		{"UpdateSafely of a slice, a struct, Select", nil, never, func(db *gorm.DB, rows *[]EachSel) error {
			return optlock.UpdateSafely(db.Select("qty"), rows, EachSel{Qty: 5, Name: "not written"}).Error
		}, []string{"qty", "updated_at"}},
		{"UpdateSafely of a slice, a struct, Select, guarded and chunked", []optlock.Option{guarded, chunked}, mysqlOnly, func(db *gorm.DB, rows *[]EachSel) error {
			return optlock.UpdateSafely(db.Select("qty").Omit("updated_at"), rows, EachSel{Qty: 5, Name: "not written"}).Error
		}, []string{"qty"}},
		{"UpdateEach, Omit, chunked", []optlock.Option{chunked}, always, func(db *gorm.DB, rows *[]EachSel) error {
			changeEachSel(*rows)
			return optlock.UpdateEach(db.Omit("note"), rows).Error
		}, []string{"name", "qty", "updated_at"}},
		{"UpdateEach, Select, guarded and chunked", []optlock.Option{guarded, chunked}, always, func(db *gorm.DB, rows *[]EachSel) error {
			changeEachSel(*rows)
			return optlock.UpdateEach(db.Select("qty"), rows).Error
		}, []string{"qty", "updated_at"}},
		// Save of one row writes every column, created_at included, but those Omit names.
		{"Save with WithLock, Omit", nil, never, func(db *gorm.DB, rows *[]EachSel) error {
			*rows = (*rows)[:1]
			changeEachSel(*rows)
			return db.Scopes(optlock.WithLock()).Omit("note").Save(&(*rows)[0]).Error
		}, []string{"name", "qty", "created_at", "updated_at"}},
		{"Save of a guarded model, Select", []optlock.Option{guarded}, never, func(db *gorm.DB, rows *[]EachSel) error {
			*rows = (*rows)[:1]
			changeEachSel(*rows)
			return db.Select("qty").Save(&(*rows)[0]).Error
		}, []string{"qty", "updated_at"}},
	}
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			for _, path := range paths {
				t.Run(path.name, func(t *testing.T) {
					c := openConfigured(t, d, &gorm.Config{}, []any{&EachSel{}}, path.opts...)
					rows := seedEachSel(t, c, 12)
					rec, log := recording(c.db)
					err := path.write(rec, &rows)
					c.requireIdle(t)
					require.NoError(t, err)
					requireWritten(t, c, rows, path.written...)
					if path.splits(d.name) {
						assert.Greater(t, log.count("UPDATE"), 1, "the write was split: %v", log.sqls)
					} else {
						assert.Equal(t, 1, log.count("UPDATE"), "%v", log.sqls)
					}
				})
			}
		})
	}
}

// Save of a slice of a guarded model is an upsert, refused with Select or Omit as without.
func TestGuardedSaveOfASliceWithOmitIsRefused(t *testing.T) {
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			c := openConfigured(t, d, &gorm.Config{}, []any{&EachSel{}}, optlock.Guard(&EachSel{}))
			rows := seedEachSel(t, c, 3)
			before := storedEachSel(t, c, rows)
			changeEachSel(rows)
			err := c.db.Omit("note").Save(&rows).Error
			c.requireIdle(t)
			require.ErrorIs(t, err, optlock.ErrInvalidLock)
			assert.Equal(t, before, storedEachSel(t, c, rows), "nothing written")
		})
	}
}
