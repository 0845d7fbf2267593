package tests

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/go-optlock/optlock"
)

// hand-set lock values. A SET clause given with Clauses(clause.Set{...}) that assigns the lock
// column is silently dropped (build: withoutLockColumns on the caller's SET) and the call reports
// success, although "Setting a lock field by hand is refused" (Guard's doc, README): checkWrittenValues
// looks at Dest only.
func TestLockSetByClauseSetIsRefused(t *testing.T) {
	eachDB(t, []any{&RvAccount{}}, func(t *testing.T, db *gorm.DB) {
		acc := RvAccount{Owner: "a", Balance: 10, Version: 1}
		require.NoError(t, db.Create(&acc).Error)
		err := db.Model(&acc).Clauses(clause.Set{
			{Column: clause.Column{Name: "balance"}, Value: 5},
			{Column: clause.Column{Name: "version"}, Value: 99},
		}).Updates(map[string]any{}).Error
		assert.ErrorIs(t, err, optlock.ErrInvalidLock, "a SET clause setting the lock is refused")
		var stored RvAccount
		require.NoError(t, db.First(&stored, acc.ID).Error)
		t.Logf("stored after the call: %+v (err %v)", stored, err)
	}, optlock.Guard(&RvAccount{}))
}
