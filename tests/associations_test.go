package tests

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/go-optlock/optlock"
)

// Parent has children (has-many) and a profile (has-one); only the parent is versioned.
type Parent struct {
	ID       uint `gorm:"primaryKey"`
	Name     string
	Version  int64
	Children []Child        `gorm:"foreignKey:ParentID"`
	Profile  *ParentProfile `gorm:"foreignKey:ParentID"`
}

func (Parent) TableName() string { return "core_parents" }

type Child struct {
	ID       uint `gorm:"primaryKey"`
	ParentID uint
	Name     string
}

func (Child) TableName() string { return "core_children" }

type ParentProfile struct {
	ID       uint `gorm:"primaryKey"`
	ParentID uint
	Bio      string
}

func (ParentProfile) TableName() string { return "core_parent_profiles" }

// Save, UpdateSafely and Create of a parent with loaded children through a locked session: the
// parent's write is checked, GORM saves the children as it does without the plugin, and a refused
// parent write leaves the children as they were.
func TestParentsWithChildren(t *testing.T) {
	eachDB(t, []any{&Parent{}, &Child{}, &ParentProfile{}}, func(t *testing.T, db *gorm.DB) {
		locked := db.Scopes(optlock.WithLock()).Session(&gorm.Session{})
		parent := Parent{Name: "p", Version: 1, Children: []Child{{Name: "a"}, {Name: "b"}}, Profile: &ParentProfile{Bio: "x"}}
		require.NoError(t, locked.Create(&parent).Error, "Create with children through a locked session")

		var mine, theirs Parent
		require.NoError(t, db.Preload("Children").Preload("Profile").First(&mine, parent.ID).Error)
		require.NoError(t, db.Preload("Children").Preload("Profile").First(&theirs, parent.ID).Error)

		theirs.Name = "theirs"
		theirs.Children = append(theirs.Children, Child{Name: "c"})
		require.NoError(t, locked.Save(&theirs).Error, "Save of a parent with children")
		assert.EqualValues(t, 2, theirs.Version)
		require.NoError(t, optlock.UpdateSafely(db, &theirs, map[string]any{"name": "theirs again"}).Error, "UpdateSafely of a parent with children")

		mine.Name = "mine"
		mine.Children = append(mine.Children, Child{Name: "stale"})
		requireConflict(t, locked.Save(&mine).Error, parent.ID)

		var stored Parent
		require.NoError(t, db.Preload("Children", func(db *gorm.DB) *gorm.DB { return db.Order("id") }).First(&stored, parent.ID).Error)
		assert.Equal(t, "theirs again", stored.Name)
		names := []string{}
		for _, c := range stored.Children {
			names = append(names, c.Name)
		}
		assert.Equal(t, []string{"a", "b", "c"}, names, "the refused Save added no child")
	})
}

// RETURNING on a lock-checked write is refused with a clear error, never a corrupted slice.
func TestReturningIsRefused(t *testing.T) {
	eachDB(t, []any{&Item{}}, func(t *testing.T, db *gorm.DB) {
		items := seedItems(t, db, 3)
		read := append([]Item(nil), items...)
		err := optlock.UpdateSafely(db.Clauses(clause.Returning{}), &items, map[string]any{"qty": 1}).Error
		require.ErrorIs(t, err, optlock.ErrInvalidLock)
		assert.Contains(t, err.Error(), "Returning")
		assert.Equal(t, read, items, "the slice is left as it was")
	})
}

// FailingAfter fails its AfterUpdate hook on demand.
type FailingAfter struct {
	ID      uint `gorm:"primaryKey"`
	Qty     int
	Version int64
	fail    bool
}

func (FailingAfter) TableName() string { return "core_failing_after" }

var errAfterHook = errors.New("after hook failed")

func (f *FailingAfter) AfterUpdate(*gorm.DB) error {
	if f.fail {
		return errAfterHook
	}
	return nil
}

// Without GORM's default transaction, a write whose AfterUpdate hook fails is undone, and the struct
// is put back: the next write from it is not a false conflict.
func TestFailingAfterHookUndoesTheWrite(t *testing.T) {
	eachDB(t, []any{&FailingAfter{}}, func(t *testing.T, db *gorm.DB) {
		row := FailingAfter{Qty: 1, Version: 1}
		require.NoError(t, db.Create(&row).Error)
		skip := db.Session(&gorm.Session{SkipDefaultTransaction: true})

		row.fail = true
		err := optlock.UpdateSafely(skip, &row, map[string]any{"qty": 2}).Error
		require.ErrorIs(t, err, errAfterHook)
		var stored FailingAfter
		require.NoError(t, db.First(&stored, row.ID).Error)
		assert.Equal(t, 1, stored.Qty, "the write was undone")
		assert.EqualValues(t, 1, row.Version, "struct put back")

		row.fail = false
		require.NoError(t, optlock.UpdateSafely(skip, &row, map[string]any{"qty": 3}).Error, "no false conflict")
	})
}

// Inside the caller's transaction too: a write whose AfterUpdate hook fails is undone under its
// savepoint, so the caller, whose transaction is alive, commits nothing of it.
func TestFailingAfterHookUndoesTheWriteInTheCallersTransaction(t *testing.T) {
	eachDB(t, []any{&FailingAfter{}}, func(t *testing.T, db *gorm.DB) {
		row := FailingAfter{Qty: 1, Version: 1}
		require.NoError(t, db.Create(&row).Error)
		for _, write := range []func(tx *gorm.DB, row *FailingAfter) error{
			func(tx *gorm.DB, row *FailingAfter) error {
				return optlock.UpdateSafely(tx, row, map[string]any{"qty": 2}).Error
			},
			func(tx *gorm.DB, row *FailingAfter) error {
				return tx.Scopes(optlock.WithLock()).Model(row).Update("qty", 2).Error
			},
		} {
			row.fail = true
			tx := db.Begin()
			require.NoError(t, tx.Error)
			err := write(tx, &row)
			commitErr := tx.Commit().Error
			if commitErr != nil {
				tx.Rollback()
			}
			require.ErrorIs(t, err, errAfterHook)
			require.NoError(t, commitErr, "the caller's transaction is alive")
			var stored FailingAfter
			require.NoError(t, db.First(&stored, row.ID).Error)
			assert.Equal(t, 1, stored.Qty, "the write was undone")
			assert.EqualValues(t, 1, stored.Version)
			assert.EqualValues(t, 1, row.Version, "struct put back")
		}
		row.fail = false
		require.NoError(t, optlock.UpdateSafely(db, &row, map[string]any{"qty": 3}).Error, "no false conflict")
	})
}

// Doc with a key the client chooses.
type ClientKeyed struct {
	ID      string `gorm:"primaryKey;size:36"`
	Title   string
	Version int64
}

func (ClientKeyed) TableName() string { return "core_client_keyed" }

// Save of a new row with a client-assigned key and a zero lock value inserts it; a second Save of a
// new row with the same key is refused (a concurrent insert of it fails on the primary key) instead of
// overwriting.
func TestSaveOfANewRowWithAClientKeyInsertsIt(t *testing.T) {
	eachDB(t, []any{&ClientKeyed{}}, func(t *testing.T, db *gorm.DB) {
		locked := db.Scopes(optlock.WithLock()).Session(&gorm.Session{})
		doc := ClientKeyed{ID: "4f1c0d3e-0000-4000-8000-000000000001", Title: "new"}
		require.NoError(t, locked.Save(&doc).Error)
		assert.EqualValues(t, 1, doc.Version)
		var stored ClientKeyed
		require.NoError(t, db.First(&stored, "id = ?", doc.ID).Error)
		assert.Equal(t, doc, stored)

		twin := ClientKeyed{ID: doc.ID, Title: "twin"}
		err := locked.Save(&twin).Error
		require.Error(t, err, "a second new row with the same key")
		assert.NotErrorIs(t, err, optlock.ErrInvalidLock)
		require.NoError(t, db.First(&stored, "id = ?", doc.ID).Error)
		assert.Equal(t, "new", stored.Title, "the first row is not overwritten")

		require.NoError(t, locked.Save(&doc).Error, "the saved struct saves again")
		assert.EqualValues(t, 2, doc.Version)
	})
}
