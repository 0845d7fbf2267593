package tests

import (
	"testing"

	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/go-optlock/optlock"
)

// TestASoftDeleteFieldIsNeverALock: a lock field is advanced on every write, and advancing a soft
// delete's field deletes the row. Naming one as a lock, however it is named, is refused before
// anything is written.
func TestASoftDeleteFieldIsNeverALock(t *testing.T) {
	qty := map[string]any{"qty": 5}
	lock := func(db *gorm.DB, fields ...string) *gorm.DB { return db.Scopes(optlock.WithLock(fields...)) }
	runRefusals(t, []invCase{
		{"WithLock by Go name", false, func(db *gorm.DB, r *invRows) *gorm.DB {
			return lock(db, "DeletedAt").Model(&r.acc[0]).Update("qty", 5)
		}, `"DeletedAt"`},
		{"WithLock by column", false, func(db *gorm.DB, r *invRows) *gorm.DB {
			return lock(db, "deleted_at").Model(&r.acc[0]).Updates(qty)
		}, "soft delete"},
		{"WithLock beside the version", false, func(db *gorm.DB, r *invRows) *gorm.DB {
			return lock(db, "version", "deleted_at").Model(&r.acc[0]).Updates(InvAccount{Qty: 5})
		}, "soft delete"},
		{"WithLock on many rows", false, func(db *gorm.DB, r *invRows) *gorm.DB {
			return lock(db, "deleted_at").Model(&r.acc).Updates(qty)
		}, "soft delete"},
		{"Save", false, func(db *gorm.DB, r *invRows) *gorm.DB {
			return lock(db, "deleted_at").Save(&r.acc[0])
		}, "soft delete"},
		{"Delete", false, func(db *gorm.DB, r *invRows) *gorm.DB {
			return lock(db, "DeletedAt").Delete(&r.acc[0])
		}, "soft delete"},
		{"UpdateSafely one row", false, func(db *gorm.DB, r *invRows) *gorm.DB {
			return optlock.UpdateSafely(lock(db, "deleted_at"), &r.acc[0], qty)
		}, "soft delete"},
		{"UpdateSafely many rows", false, func(db *gorm.DB, r *invRows) *gorm.DB {
			return optlock.UpdateSafely(lock(db, "DeletedAt"), &r.acc, qty)
		}, "soft delete"},
		{"UpdateEach", false, func(db *gorm.DB, r *invRows) *gorm.DB {
			return optlock.UpdateEach(lock(db, "deleted_at"), &r.acc, "qty")
		}, "soft delete"},
		{"WithLock on a guarded model", true, func(db *gorm.DB, r *invRows) *gorm.DB {
			return lock(db, "deleted_at").Model(&r.acc[0]).Update("qty", 5)
		}, "soft delete"},
		{"UpdateSafely on a guarded model", true, func(db *gorm.DB, r *invRows) *gorm.DB {
			return optlock.UpdateSafely(lock(db, "DeletedAt"), &r.acc, qty)
		}, "soft delete"},
		{"soft_delete flag by Go name", false, func(db *gorm.DB, r *invRows) *gorm.DB {
			return lock(db, "IsDel").Model(&r.flagged[0]).Update("qty", 5)
		}, "soft delete"},
		{"soft_delete flag by column", false, func(db *gorm.DB, r *invRows) *gorm.DB {
			return optlock.UpdateSafely(lock(db, "is_del"), &r.flagged, qty)
		}, "soft delete"},
		{"soft_delete's deletion time", false, func(db *gorm.DB, r *invRows) *gorm.DB {
			return optlock.UpdateSafely(lock(db, "deleted_at"), &r.flagged[0], qty)
		}, "soft delete"},
		{"soft_delete's deletion time by Go name", false, func(db *gorm.DB, r *invRows) *gorm.DB {
			return optlock.UpdateEach(lock(db, "DeletedAt"), &r.flagged, "qty")
		}, "soft delete"},
	})
}

// TestGuardRefusesASoftDeleteLock: a Guard naming a soft delete's field fails db.Use.
func TestGuardRefusesASoftDeleteLock(t *testing.T) {
	guards := []struct {
		name  string
		guard optlock.Option
	}{
		{"gorm.DeletedAt by Go name", optlock.Guard(&InvAccount{}, "DeletedAt")},
		{"gorm.DeletedAt by column", optlock.Guard(&InvAccount{}, "deleted_at")},
		{"beside the version", optlock.Guard(&InvAccount{}, "version", "deleted_at")},
		{"soft_delete flag", optlock.Guard(&InvFlagged{}, "is_del")},
		{"soft_delete's deletion time", optlock.Guard(&InvFlagged{}, "DeletedAt")},
	}
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			for _, g := range guards {
				t.Run(g.name, func(t *testing.T) {
					db := openObserver(t, d)
					err := db.Use(optlock.New(g.guard))
					require.ErrorIs(t, err, optlock.ErrInvalidLock, "got %v", err)
					require.ErrorContains(t, err, "soft delete")
				})
			}
		})
	}
}
