package tests

import (
	"errors"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/go-optlock/optlock"
)

// errors that lose their cause.

// RvDlItem runs hook, when set, from its AfterUpdate hook.
type RvDlItem struct {
	ID      uint `gorm:"primaryKey"`
	Qty     int
	Version int64
	hook    func(tx *gorm.DB) error
}

func (RvDlItem) TableName() string { return "rv_dl_items" }

func (r *RvDlItem) AfterUpdate(tx *gorm.DB) error {
	if r.hook != nil {
		return r.hook(tx)
	}
	return nil
}

type RvDlSide struct {
	ID      uint `gorm:"primaryKey"`
	Qty     int
	Version int64
}

func (RvDlSide) TableName() string { return "rv_dl_sides" }

type RvDlWeight struct{ ID uint }

func (RvDlWeight) TableName() string { return "rv_dl_weights" }

// A bulk write in the caller's MariaDB transaction whose AfterUpdate hook is chosen as a deadlock
// victim: InnoDB rolls the whole transaction back, so keepError's ROLLBACK TO SAVEPOINT fails (1305),
// and db.AddError(st.tx.err) flattens the hook's 1213 into text; outcome then keeps only the undo
// error. The call is ErrTxAborted (right), but the deadlock is no longer reachable with errors.As,
// nor even named in the message.
func TestDeadlockInAfterHookKeepsItsCauseInCallersTx(t *testing.T) {
	for _, d := range dialects {
		if d.name != "mysql" {
			continue
		}
		t.Run(d.name, func(t *testing.T) {
			err := runDeadlockInAfterHook(t, d, true, func(h *gorm.DB, side *RvDlSide) error {
				return h.Exec("UPDATE rv_dl_sides SET qty = qty + 1 WHERE id = ?", side.ID).Error
			})
			t.Logf("error: %v", err)
			assert.ErrorIs(t, err, optlock.ErrTxAborted)
			var myErr *mysql.MySQLError
			found := false
			for e := range walkAll(err) {
				if errors.As(e, &myErr) && myErr.Number == 1213 {
					found = true
				}
			}
			assert.True(t, found, "the deadlock (1213) that aborted the transaction is reachable with errors.As")
			assert.Contains(t, err.Error(), "1213", "the deadlock is named in the message")
		})
	}
}

// Without a transaction of the caller's, an AfterUpdate hook's guarded write (inside GORM's own
// transaction, which the inner write takes for a caller's) is a deadlock victim: the inner write
// reports ErrTxAborted, and the outer call's refusedByDatabase wraps that in an *OptimisticLockError.
// The result matches both ErrConflict and ErrTxAborted, which docs/api.md says never happens
// ("ErrTxAborted ... Never matches ErrConflict"), and tells a caller without a transaction that its
// transaction cannot go on.
func TestDeadlockInNestedGuardedWriteIsNotBothConflictAndTxAborted(t *testing.T) {
	for _, d := range dialects {
		if d.name != "mysql" {
			continue
		}
		t.Run(d.name, func(t *testing.T) {
			err := runDeadlockInAfterHook(t, d, false, func(h *gorm.DB, side *RvDlSide) error {
				return h.Model(side).Update("qty", side.Qty+1).Error
			})
			t.Logf("error: %v", err)
			assert.ErrorIs(t, err, optlock.ErrConflict)
			assert.NotErrorIs(t, err, optlock.ErrTxAborted, "the caller has no transaction to abort")
		})
	}
}

// runDeadlockInAfterHook makes the AfterUpdate hook of a two-row UpdateSafely (in the caller's
// transaction when inTx) the victim of a MariaDB deadlock, and returns the call's error.
func runDeadlockInAfterHook(t *testing.T, d dialect, inTx bool, hook func(h *gorm.DB, side *RvDlSide) error) error {
	t.Helper()
	observer := openObserver(t, d)
	recreate(t, observer, &RvDlItem{}, &RvDlSide{}, &RvDlWeight{})
	t.Cleanup(func() { _ = observer.Migrator().DropTable(&RvDlItem{}, &RvDlSide{}, &RvDlWeight{}) })
	c := openCaller(t, d, observer, &gorm.Config{}, nil, optlock.Guard(&RvDlItem{}), optlock.Guard(&RvDlSide{}))
	t.Cleanup(func() { endLeftTransactions(observer, c.pool, c.appName) })

	seeded := []RvDlItem{{Qty: 1, Version: 1}, {Qty: 2, Version: 1}}
	require.NoError(t, observer.Create(&seeded).Error)
	side := RvDlSide{Qty: 1}
	require.NoError(t, observer.Create(&side).Error)

	tx := c.db
	if inTx {
		tx = c.db.Begin()
		require.NoError(t, tx.Error)
		defer tx.Rollback()
	}
	var items []RvDlItem
	require.NoError(t, tx.Order("id").Find(&items).Error)
	items[0].hook = func(h *gorm.DB) error { return hook(h, &side) }

	other := observer.Begin()
	require.NoError(t, other.Error)
	defer other.Rollback()
	require.NoError(t, other.Create(make([]RvDlWeight, 200)).Error) // InnoDB picks the caller as the victim
	require.NoError(t, other.Exec("UPDATE rv_dl_sides SET qty = qty + 100 WHERE id = ?", side.ID).Error)

	done := make(chan error, 1)
	go func() { done <- optlock.UpdateSafely(tx, &items, map[string]any{"qty": 9}).Error }()
	// Wait until the caller's hook waits for the side row.
	deadline := time.Now().Add(20 * time.Second)
	for {
		var waiting int
		require.NoError(t, observer.Raw(`SELECT count(*) FROM information_schema.processlist
			WHERE db = DATABASE() AND id <> CONNECTION_ID() AND info LIKE ? AND time_ms > 300`, "%rv_dl_sides%").Scan(&waiting).Error)
		if waiting > 0 {
			break
		}
		require.True(t, time.Now().Before(deadline), "the caller's hook never waited for the side row")
		time.Sleep(10 * time.Millisecond)
	}
	// The caller holds the items and waits for the side row: taking an item closes the cycle.
	require.NoError(t, other.Exec("UPDATE rv_dl_items SET qty = qty + 100 WHERE id = ?", items[0].ID).Error)
	require.NoError(t, other.Commit().Error)
	err := <-done
	require.Error(t, err)
	return err
}

// walkAll yields err and every error it wraps.
func walkAll(err error) func(func(error) bool) {
	return func(yield func(error) bool) {
		var visit func(error) bool
		visit = func(e error) bool {
			if e == nil {
				return true
			}
			if !yield(e) {
				return false
			}
			switch u := e.(type) {
			case interface{ Unwrap() []error }:
				for _, x := range u.Unwrap() {
					if !visit(x) {
						return false
					}
				}
			case interface{ Unwrap() error }:
				return visit(u.Unwrap())
			}
			return true
		}
		visit(err)
	}
}
