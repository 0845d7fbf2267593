package tests

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/go-optlock/optlock"
)

// UpsParent has guarded children, moved between parents by GORM's association upsert.
type UpsParent struct {
	ID       uint `gorm:"primaryKey"`
	Name     string
	Children []UpsChild `gorm:"foreignKey:ParentID"`
}

func (UpsParent) TableName() string { return "ups_parents" }

// UpsChild is guarded on its version.
type UpsChild struct {
	ID       uint `gorm:"primaryKey"`
	ParentID *uint
	Qty      int
	Version  int64
}

func (UpsChild) TableName() string { return "ups_children" }

// TestUpsertsOfAGuardedModel: an upsert overwrites a row it never read. Of a guarded model, one that
// updates named columns advances the row's version, so a holder of an older read is refused; one that
// would set every column or the lock column is refused and writes nothing.
func TestUpsertsOfAGuardedModel(t *testing.T) {
	cases := []struct {
		name     string
		conflict clause.OnConflict
		refused  bool
	}{
		{"AssignmentColumns", clause.OnConflict{Columns: []clause.Column{{Name: "id"}}, DoUpdates: clause.AssignmentColumns([]string{"qty"})}, false},
		{"Assignments", clause.OnConflict{Columns: []clause.Column{{Name: "id"}}, DoUpdates: clause.Assignments(map[string]any{"qty": 5})}, false},
		{"UpdateAll", clause.OnConflict{Columns: []clause.Column{{Name: "id"}}, UpdateAll: true}, true},
		{"the lock column", clause.OnConflict{Columns: []clause.Column{{Name: "id"}}, DoUpdates: clause.AssignmentColumns([]string{"qty", "version"})}, true},
	}
	eachDB(t, []any{&UpsChild{}}, func(t *testing.T, db *gorm.DB) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				row := UpsChild{Qty: 1, Version: 1}
				require.NoError(t, db.Create(&row).Error)
				read := row

				err := db.Clauses(tc.conflict).Create(&UpsChild{ID: row.ID, Qty: 5, Version: 1}).Error
				var stored UpsChild
				require.NoError(t, db.First(&stored, row.ID).Error)
				if tc.refused {
					require.ErrorIs(t, err, optlock.ErrInvalidLock)
					assert.Equal(t, row, stored, "nothing written")
					return
				}
				require.NoError(t, err)
				assert.Equal(t, 5, stored.Qty, "the upsert wrote its column")
				assert.EqualValues(t, 2, stored.Version, "and advanced the version")
				requireConflict(t, optlock.UpdateSafely(db, &read, map[string]any{"qty": 9}).Error, row.ID)
				require.NoError(t, db.First(&stored, row.ID).Error)
				assert.Equal(t, 5, stored.Qty, "the older read did not write over the upsert")
			})
		}
		t.Run("kept *gorm.DB", func(t *testing.T) {
			kept := db.Clauses(cases[0].conflict)
			for range 3 {
				row := UpsChild{Qty: 1, Version: 1}
				require.NoError(t, db.Create(&row).Error)
				require.NoError(t, kept.Create(&UpsChild{ID: row.ID, Qty: 5, Version: 1}).Error, "each call gets one advance")
			}
		})
	}, optlock.Guard(&UpsChild{}))
}

// TestAssociationAppendOfAGuardedChild: moving a guarded child to another parent (GORM's foreign-key
// upsert) advances its version, so a holder of the child read before the move cannot undo it.
func TestAssociationAppendOfAGuardedChild(t *testing.T) {
	eachDB(t, []any{&UpsParent{}, &UpsChild{}}, func(t *testing.T, db *gorm.DB) {
		first, second := UpsParent{Name: "first"}, UpsParent{Name: "second"}
		require.NoError(t, db.Create(&first).Error)
		require.NoError(t, db.Create(&second).Error)
		child := UpsChild{ParentID: &first.ID, Qty: 1, Version: 1}
		require.NoError(t, db.Create(&child).Error)
		read := child

		moving := child
		require.NoError(t, db.Model(&second).Association("Children").Append(&moving))
		var stored UpsChild
		require.NoError(t, db.First(&stored, child.ID).Error)
		require.NotNil(t, stored.ParentID)
		assert.Equal(t, second.ID, *stored.ParentID, "moved")
		assert.EqualValues(t, 2, stored.Version, "the move advanced the version")

		requireConflict(t, db.Save(&read).Error, child.ID)
		require.NoError(t, db.First(&stored, child.ID).Error)
		assert.Equal(t, second.ID, *stored.ParentID, "the older read did not undo the move")
	}, optlock.Guard(&UpsChild{}))
}
