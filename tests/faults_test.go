package tests

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/go-optlock/optlock"
)

// injectFault runs fault once, inside the next update's callback chain, at the given point:
// "before" the UPDATE is sent (the transaction is open) or "after" it (the transaction is not yet
// committed).
func injectFault(t *testing.T, db *gorm.DB, at string, fault func(tx *gorm.DB)) {
	t.Helper()
	var armed atomic.Bool
	armed.Store(true)
	fire := func(tx *gorm.DB) {
		if armed.CompareAndSwap(true, false) {
			fault(tx)
		}
	}
	name := "test:fault_" + at
	update := db.Callback().Update()
	if at == "before" {
		require.NoError(t, update.Before("gorm:update").After("optlock:build").Register(name, fire))
	} else {
		require.NoError(t, update.After("gorm:update").Before("optlock:check").Register(name, fire))
	}
	t.Cleanup(func() { _ = update.Remove(name) })
}

// killConnection ends the server session behind tx's connection from another connection, as a
// crashed network or an administrator would.
func killConnection(t *testing.T, db *gorm.DB, tx *gorm.DB) {
	ctx := context.Background()
	switch db.Dialector.Name() {
	case "postgres":
		var pid int64
		require.NoError(t, tx.Statement.ConnPool.QueryRowContext(ctx, "SELECT pg_backend_pid()").Scan(&pid))
		require.NoError(t, db.Exec("SELECT pg_terminate_backend(?)", pid).Error)
	case "mysql":
		var id int64
		require.NoError(t, tx.Statement.ConnPool.QueryRowContext(ctx, "SELECT CONNECTION_ID()").Scan(&id))
		require.NoError(t, db.Exec(fmt.Sprintf("KILL %d", id)).Error)
	}
}

// requireUntouched checks that no row of the batch was written and the structs are as read.
func requireUntouched(t *testing.T, db *gorm.DB, before map[uint]Item, read, items []Item) {
	t.Helper()
	assert.Equal(t, before, loadItems(t, db), "no row of the batch written")
	assert.Equal(t, read, items, "structs as read")
}

func TestKilledConnectionMidBulkWritesNothing(t *testing.T) {
	for _, at := range []string{"before", "after"} {
		t.Run(at+" the UPDATE", func(t *testing.T) {
			eachDB(t, []any{&Item{}}, func(t *testing.T, db *gorm.DB) {
				if db.Dialector.Name() == "sqlite" {
					t.Skip("an embedded database has no connection to kill")
				}
				items := seedItems(t, db, 50)
				read := append([]Item(nil), items...)
				before := loadItems(t, db)
				injectFault(t, db, at, func(tx *gorm.DB) { killConnection(t, db, tx) })

				err := optlock.UpdateSafely(db, &items, map[string]any{"qty": 0}).Error
				require.Error(t, err)
				assert.NotErrorIs(t, err, optlock.ErrConflict)
				requireUntouched(t, db, before, read, items)

				require.NoError(t, optlock.UpdateSafely(db, &items, map[string]any{"qty": 1}).Error, "the next call works")
				assert.Equal(t, 1, loadItems(t, db)[items[0].ID].Qty)
			})
		})
	}
}

func TestCancelledContextMidBulkWritesNothing(t *testing.T) {
	for _, at := range []string{"before", "after"} {
		t.Run(at+" the UPDATE", func(t *testing.T) {
			eachDB(t, []any{&Item{}}, func(t *testing.T, db *gorm.DB) {
				items := seedItems(t, db, 50)
				read := append([]Item(nil), items...)
				before := loadItems(t, db)
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				injectFault(t, db, at, func(*gorm.DB) { cancel() })

				err := optlock.UpdateSafely(db.WithContext(ctx), &items, map[string]any{"qty": 0}).Error
				require.Error(t, err)
				assert.ErrorIs(t, err, context.Canceled)
				requireUntouched(t, db, before, read, items)
				require.NoError(t, optlock.UpdateSafely(db, &items, map[string]any{"qty": 1}).Error, "the next call works")
			})
		})
	}
}

func TestDeadlineMidBulkWritesNothing(t *testing.T) {
	eachDB(t, []any{&Item{}}, func(t *testing.T, db *gorm.DB) {
		items := seedItems(t, db, 50)
		read := append([]Item(nil), items...)
		before := loadItems(t, db)
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		injectFault(t, db, "before", func(*gorm.DB) { <-ctx.Done() }) // the deadline passes mid-call

		err := optlock.UpdateSafely(db.WithContext(ctx), &items, map[string]any{"qty": 0}).Error
		require.ErrorIs(t, err, context.DeadlineExceeded)
		requireUntouched(t, db, before, read, items)
		require.NoError(t, optlock.UpdateSafely(db, &items, map[string]any{"qty": 1}).Error, "the next call works")
	})
}

// A SQLite database locked by another writer gives a clear error and no partial write.
func TestLockedSQLiteDatabaseWritesNothing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "locked.db")
	db, err := openSQLiteFile(path)
	require.NoError(t, err)
	require.NoError(t, db.Use(optlock.New()))
	recreate(t, db, &Item{})
	items := seedItems(t, db, 20)
	read := append([]Item(nil), items...)
	before := loadItems(t, db)

	holder, err := openSQLiteFile(path)
	require.NoError(t, err)
	lock := holder.Begin()
	require.NoError(t, lock.Error)
	require.NoError(t, lock.Exec("UPDATE core_items SET name = name WHERE id = ?", items[0].ID).Error) // takes the write lock

	impatient, err := gorm.Open(db.Dialector, &gorm.Config{Logger: db.Logger})
	require.NoError(t, err)
	require.NoError(t, impatient.Use(optlock.New()))
	require.NoError(t, impatient.Exec("PRAGMA busy_timeout = 50").Error)
	sqlDB, _ := impatient.DB()
	sqlDB.SetMaxOpenConns(1) // the pragma holds for this one connection

	err = optlock.UpdateSafely(impatient, &items, map[string]any{"qty": 0}).Error
	require.Error(t, err)
	assert.Contains(t, err.Error(), "locked")
	assert.NotErrorIs(t, err, optlock.ErrConflict)
	assert.Equal(t, read, items)

	require.NoError(t, lock.Rollback().Error)
	assert.Equal(t, before, loadItems(t, db))
	require.NoError(t, optlock.UpdateSafely(impatient, &items, map[string]any{"qty": 1}).Error, "the next call works")
	for _, conn := range []*gorm.DB{holder, impatient} {
		c, _ := conn.DB()
		c.Close()
	}
}
