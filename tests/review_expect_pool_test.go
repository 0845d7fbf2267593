package tests

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/go-optlock/optlock"
	"github.com/go-optlock/optlock/optlockhttp"
)

// ReviewPoolItem is a guarded model with a version.
type ReviewPoolItem struct {
	ID      uint `gorm:"primaryKey"`
	Name    string
	Version int64
}

func (ReviewPoolItem) TableName() string { return "review_pool_items" }

// TestReviewExpectRowOnePoolConnection: ExpectRow (If-Match: *) and ExpectLocks with several
// alternatives (If-Match: "1", "4") read the row's stored lock values in prepare, on the pool the
// write was routed to, while GORM's default transaction already holds a connection of that same
// pool. With a pool of one connection (SetMaxOpenConns(1), the usual SQLite setting, or any pool
// whose every connection is held by a write under load) the read waits for a connection that only
// the write itself can give back: the write hangs until the caller's deadline. Plain GORM, and the
// same write under a single ExpectLocks alternative, run fine on one connection.
func TestReviewExpectRowOnePoolConnection(t *testing.T) {
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			c := openConfigured(t, d, &gorm.Config{}, []any{&ReviewPoolItem{}}, optlock.Guard(&ReviewPoolItem{}))
			c.pool.SetMaxOpenConns(1)
			require.NoError(t, c.observer.Create(&ReviewPoolItem{ID: 1, Name: "seed", Version: 2}).Error)

			write := func(t *testing.T, scope func(*gorm.DB) *gorm.DB) error {
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
				defer cancel()
				row := ReviewPoolItem{ID: 1}
				return c.db.WithContext(ctx).Scopes(scope).Model(&row).Update("name", "edited").Error
			}
			// Control: one alternative needs no read first, and writes on one connection.
			one := [][]optlock.LockValue{{{Int: 2}}}
			require.NoError(t, write(t, optlock.ExpectLocks(one...)), "control: a single alternative")

			t.Run("ExpectRow", func(t *testing.T) {
				require.NoError(t, write(t, optlock.ExpectRow()), "If-Match: * of an existing row on a pool of one connection")
			})
			t.Run("IfMatch list", func(t *testing.T) {
				// The control wrote version 3, ExpectRow version 4.
				r := request(`"1", "4"`)
				require.NoError(t, write(t, optlockhttp.IfMatch(r)), "If-Match: \"1\", \"4\" holding the current tag on a pool of one connection")
			})
		})
	}
}
