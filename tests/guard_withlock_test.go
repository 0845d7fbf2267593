package tests

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/go-optlock/optlock"
)

// TestWithLockOnAGuardedModelKeepsTheGuardsLock: WithLock naming another lock field of a
// version-guarded model adds that field for the statement; the version is still checked and
// advanced, so a holder of an older read of it is refused.
func TestWithLockOnAGuardedModelKeepsTheGuardsLock(t *testing.T) {
	eachDB(t, []any{&MtxItem{}}, func(t *testing.T, db *gorm.DB) {
		for _, name := range []string{"updated_at", "UpdatedAt"} {
			t.Run(name, func(t *testing.T) {
				row := MtxItem{Qty: 1, Version: 1}
				require.NoError(t, db.Create(&row).Error)
				older := row

				require.NoError(t, db.Scopes(optlock.WithLock(name)).Model(&row).Update("qty", 2).Error)
				assert.EqualValues(t, 2, row.Version, "the guard's version advanced with the named lock")
				var stored MtxItem
				require.NoError(t, db.First(&stored, row.ID).Error)
				assert.EqualValues(t, 2, stored.Version)

				requireConflict(t, db.Model(&older).Update("qty", 3).Error, row.ID)
				requireConflict(t, db.Scopes(optlock.WithLock(name)).Model(&MtxItem{ID: row.ID, Version: 2, UpdatedAt: older.UpdatedAt}).Update("qty", 3).Error, row.ID)
				require.NoError(t, db.First(&stored, row.ID).Error)
				assert.Equal(t, 2, stored.Qty, "no older read wrote over it")
			})
		}
	}, optlock.Guard(&MtxItem{}))
}
