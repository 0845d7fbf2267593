package tests

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/go-optlock/optlock"
)

// Eight goroutines increment one row through Transaction with each hybrid option: no increment is
// lost, a locking attempt never conflicts (its read holds the row), and the caller's pool has every
// connection back afterwards.
func TestHybridUnderContentionLosesNoIncrement(t *testing.T) {
	const goroutines, increments = 8, 15
	hybrids := []struct {
		name   string
		option func() optlock.RetryOption
	}{
		{"RetryLockAfter(1)", func() optlock.RetryOption { return optlock.RetryLockAfter(1) }},
		{"RetryLockWhenContended", func() optlock.RetryOption { return optlock.RetryLockWhenContended(&optlock.Contention{}) }},
	}
	for _, d := range dialects {
		for _, h := range hybrids {
			t.Run(d.name+"/"+h.name, func(t *testing.T) {
				c := openConfigured(t, d, &gorm.Config{}, []any{&HybridCounter{}})
				counter := HybridCounter{Version: 1}
				require.NoError(t, c.observer.Create(&counter).Error)

				option := h.option() // one Contention shared by every goroutine's calls
				var retries, lockedConflicts atomic.Int64
				runConcurrently(t, goroutines, increments, func() error {
					return optlock.Transaction(context.Background(), c.db, func(tx *gorm.DB) error {
						var row HybridCounter
						if err := tx.First(&row, counter.ID).Error; err != nil {
							return err
						}
						err := optlock.UpdateSafely(tx, &row, map[string]any{"value": row.Value + 1}).Error
						if errors.Is(err, optlock.ErrConflict) && optlock.LocksReads(tx.Statement.Context) {
							lockedConflicts.Add(1)
						}
						return err
					}, option, optlock.RetryAttempts(1000), optlock.RetryNotify(func(int, error) { retries.Add(1) }))
				})

				var stored HybridCounter
				require.NoError(t, c.observer.First(&stored, counter.ID).Error)
				assert.Equal(t, goroutines*increments, stored.Value, "no lost increment")
				assert.EqualValues(t, 1+goroutines*increments, stored.Version)
				assert.Zero(t, lockedConflicts.Load(), "a write after a locked read conflicted")
				c.requireIdle(t)
				t.Logf("%d increments, %d retries", goroutines*increments, retries.Load())
			})
		}
	}
}
