package tests

import (
	"testing"

	"gorm.io/gorm"

	"github.com/go-optlock/optlock"
)

// TestValuesNamingAFieldThatIsNoColumnAreRefused: a values key naming a gorm:"-" field, by its column
// name or its Go name, is refused on every lock-aware write, one row or many: GORM would write nothing
// for it, and the caller would believe it written.
func TestValuesNamingAFieldThatIsNoColumnAreRefused(t *testing.T) {
	var cases []invCase
	for _, key := range []string{"note", "Note"} {
		values := map[string]any{"qty": 5, key: "x"}
		cases = append(cases, []invCase{
			{"UpdateSafely one row " + key, false, func(db *gorm.DB, r *invRows) *gorm.DB {
				return optlock.UpdateSafely(db, &r.acc[0], values)
			}, "leave it out"},
			{"UpdateSafely many rows " + key, false, func(db *gorm.DB, r *invRows) *gorm.DB {
				return optlock.UpdateSafely(db, &r.acc, values)
			}, "leave it out"},
			{"WithLock one row " + key, false, func(db *gorm.DB, r *invRows) *gorm.DB {
				return db.Scopes(optlock.WithLock()).Model(&r.acc[0]).Updates(values)
			}, "leave it out"},
			{"WithLock many rows " + key, false, func(db *gorm.DB, r *invRows) *gorm.DB {
				return db.Scopes(optlock.WithLock()).Model(&r.acc).Updates(values)
			}, "leave it out"},
			{"guarded one row " + key, true, func(db *gorm.DB, r *invRows) *gorm.DB {
				return db.Model(&r.acc[0]).Updates(values)
			}, "leave it out"},
			{"guarded many rows " + key, true, func(db *gorm.DB, r *invRows) *gorm.DB {
				return db.Model(&r.acc).Updates(values)
			}, "leave it out"},
			{"guarded Update " + key, true, func(db *gorm.DB, r *invRows) *gorm.DB {
				return db.Model(&r.acc[0]).Update(key, "x")
			}, "leave it out"},
			{"guarded UpdateColumns " + key, true, func(db *gorm.DB, r *invRows) *gorm.DB {
				return db.Model(&r.acc).UpdateColumns(values)
			}, "leave it out"},
			{"guarded without read rows " + key, true, func(db *gorm.DB, r *invRows) *gorm.DB {
				return db.Model(&InvAccount{}).Where("qty = ?", 10).Updates(values)
			}, "leave it out"},
			{"Unchecked " + key, true, func(db *gorm.DB, r *invRows) *gorm.DB {
				return db.Scopes(optlock.Unchecked()).Model(&InvAccount{ID: r.acc[0].ID}).Updates(values)
			}, "leave it out"},
			{"UpdateEach " + key, false, func(db *gorm.DB, r *invRows) *gorm.DB {
				return optlock.UpdateEach(db, &r.acc, key)
			}, "has no column"},
		}...)
	}
	runRefusals(t, cases)
}
