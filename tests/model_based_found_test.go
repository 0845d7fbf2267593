package tests

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/go-optlock/optlock"
)

// Failures TestModelBased found, each as a deterministic test of its own (the shrunk sequences are in
// testdata/rapid/TestModelBased_*).

// mbtFound opens dialect d for one of these tests: the caller's pool under cfg, the plugin registered
// as p, and rows seeded through the observer (qty 10, version 1, keys 1..n).
func mbtFound(t *testing.T, d dialect, cfg func() *gorm.Config, p mbtPlugin, n int) (*mbtCaller, *gorm.DB, []MbtItem) {
	t.Helper()
	env := openMbtEnv(t, d)
	caller := env.caller(t, "found", cfg)
	db := caller.handle(p)
	rows := make([]MbtItem, n)
	for i := range rows {
		rows[i] = MbtItem{ID: uint(i + 1), Qty: 10, Version: 1}
	}
	require.NoError(t, caller.observer.Exec("DELETE FROM mbt_items").Error)
	require.NoError(t, caller.observer.Create(&rows).Error)
	return caller, db, rows
}

func (c *mbtCaller) storedRows(t *testing.T) []MbtItem {
	t.Helper()
	var rows []MbtItem
	require.NoError(t, c.observer.Order("id").Find(&rows).Error)
	return rows
}

func skipDefaultTransaction() *gorm.Config { return &gorm.Config{SkipDefaultTransaction: true} }

// TestModelBasedFoundStaleUpdateSafelyInCallersTxUnderSkipDefaultTransaction: under
// SkipDefaultTransaction, a stale single-row UpdateSafely inside the caller's db.Transaction is
// refused, but the caller's struct is left with the refused values and an advanced version (shrunk
// sequence: a blind UPDATE of row 3, then client 0's UpdateSafely(&row 3) in db.Transaction). The
// same write outside a transaction is TestSkipDefaultTransactionInConfig/single_row_UpdateSafely.
func TestModelBasedFoundStaleUpdateSafelyInCallersTxUnderSkipDefaultTransaction(t *testing.T) {
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			caller, db, rows := mbtFound(t, d, skipDefaultTransaction, mbtPlugin{}, 3)
			require.NoError(t, caller.observer.Exec("UPDATE mbt_items SET qty = 101, version = version + 1 WHERE id = 3").Error)
			stale := rows[2]
			before := caller.storedRows(t)

			var writeErr error
			require.NoError(t, db.Transaction(func(tx *gorm.DB) error {
				writeErr = optlock.UpdateSafely(tx, &stale, map[string]any{"qty": 102}).Error
				return nil // a conflict leaves the transaction alive: commit
			}))
			requireConflict(t, writeErr, uint(3))
			assert.Equal(t, MbtItem{ID: 3, Qty: 10, Version: 1}, stale, "the struct is as before the call")
			assert.Equal(t, before, caller.storedRows(t), "nothing written")
			assert.Zero(t, caller.pool.Stats().InUse, "the caller's pool has a connection checked out")
		})
	}
}

// TestModelBasedFoundRefusedDeleteLeaksTxUnderSkipDefaultTransaction: under SkipDefaultTransaction,
// a Delete of a slice that needs more bind parameters than WithBindVarLimit allows is refused with
// ErrInvalidLock (as documented: a delete is never split), but the connection stays checked out in an
// open transaction that holds its locks (shrunk sequence: client 0's Delete(&rows) of keys [2 1]
// with WithBindVarLimit(5)).
func TestModelBasedFoundRefusedDeleteLeaksTxUnderSkipDefaultTransaction(t *testing.T) {
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			caller, db, rows := mbtFound(t, d, skipDefaultTransaction, mbtPlugin{bindVarLimit: 5}, 3)
			before := caller.storedRows(t)
			del := []MbtItem{rows[1], rows[0]}

			err := db.Scopes(optlock.WithLock()).Delete(&del).Error
			require.ErrorIs(t, err, optlock.ErrInvalidLock)
			assert.Equal(t, before, caller.storedRows(t), "nothing deleted")
			assert.Zero(t, caller.pool.Stats().InUse, "the caller's pool has a connection checked out (an open transaction)")
		})
	}
}
