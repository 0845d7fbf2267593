package tests

import (
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/go-optlock/optlock"
)

// ReviewPanicItem is a guarded model whose AfterUpdate hook panics when told to.
type ReviewPanicItem struct {
	ID      uint `gorm:"primaryKey"`
	Name    string
	Version int64
}

func (ReviewPanicItem) TableName() string { return "review_panic_items" }

var (
	reviewPanicNext atomic.Bool
	// reviewPanicPool is the connection pool the panicking hook ran on (the plugin's own transaction).
	reviewPanicPool atomic.Value
)

func (ReviewPanicItem) AfterUpdate(tx *gorm.DB) error {
	if reviewPanicNext.Swap(false) {
		reviewPanicPool.Store(&tx.Statement.ConnPool)
		panic("review: a hook panics")
	}
	return nil
}

// TestReviewHookPanicLeaksOwnTransaction: under SkipDefaultTransaction a write with hooks runs in a
// transaction the plugin opens in prepare and ends only in settle. A panic in a hook (recovered by the
// caller, as net/http's server does for every handler) skips settle: the transaction stays open, its
// connection is never given back to the pool, and the row lock the UPDATE took is held for as long as
// the process lives. Plain GORM under SkipDefaultTransaction opens no transaction, so the same panic
// leaks nothing. The test rolls the leaked transaction back itself once it has checked.
func TestReviewHookPanicLeaksOwnTransaction(t *testing.T) {
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			c := openConfigured(t, d, &gorm.Config{SkipDefaultTransaction: true}, []any{&ReviewPanicItem{}}, optlock.Guard(&ReviewPanicItem{}))
			require.NoError(t, c.observer.Create(&ReviewPanicItem{ID: 1, Name: "seed", Version: 1}).Error)
			row := ReviewPanicItem{ID: 1, Version: 1}

			reviewPanicPool.Store((*gorm.ConnPool)(nil))
			reviewPanicNext.Store(true)
			func() {
				defer func() { require.NotNil(t, recover(), "the hook panics") }()
				_ = c.db.Model(&row).Update("name", "edited").Error
			}()
			leaked := reviewPanicPool.Load().(*gorm.ConnPool)
			t.Cleanup(func() {
				if leaked != nil {
					if tx, ok := (*leaked).(gorm.TxCommitter); ok {
						_ = tx.Rollback()
					}
				}
			})
			require.Zero(t, c.pool.Stats().InUse, "after a recovered panic in a hook the caller's pool still has a connection checked out: the plugin's own transaction was never ended")
			c.requireIdle(t)
		})
	}
}
