package tests

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/go-optlock/optlock"
)

func TestRetryUnderContentionLosesNoUpdate(t *testing.T) {
	const goroutines, increments = 8, 20
	eachDB(t, []any{&Counter{}}, func(t *testing.T, db *gorm.DB) {
		counter := Counter{Version: 1}
		require.NoError(t, db.Create(&counter).Error)
		var retries atomic.Int64
		notify := optlock.RetryNotify(func(int, error) { retries.Add(1) })

		runConcurrently(t, goroutines, increments, func() error {
			return optlock.Retry(context.Background(), func(ctx context.Context) error {
				var c Counter
				if err := db.WithContext(ctx).First(&c, counter.ID).Error; err != nil {
					return err
				}
				return optlock.UpdateSafely(db.WithContext(ctx), &c, map[string]any{"value": c.Value + 1}).Error
			}, notify, optlock.RetryAttempts(1000))
		})
		var stored Counter
		require.NoError(t, db.First(&stored, counter.ID).Error)
		assert.Equal(t, goroutines*increments, stored.Value, "no lost update")
		t.Logf("%d increments, %d retries", goroutines*increments, retries.Load())
	})
}

func TestRetryStopsWhenTheContextIsCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var calls atomic.Int64
	done := make(chan error, 1)
	go func() {
		done <- optlock.Retry(ctx, func(context.Context) error {
			if calls.Add(1) == 3 {
				cancel()
			}
			return &optlock.OptimisticLockError{Table: "t", ConflictIDs: []any{1}}
		}, optlock.RetryAttempts(1_000_000))
	}()
	select {
	case err := <-done:
		require.ErrorIs(t, err, context.Canceled)
		require.ErrorIs(t, err, optlock.ErrConflict, "the last attempt's error is kept")
		assert.EqualValues(t, 3, calls.Load())
	case <-time.After(30 * time.Second): // a liveness guard, not a timing assertion
		t.Fatal("Retry did not stop after its context was cancelled")
	}
}

func TestRetryOutcomes(t *testing.T) {
	conflict := &optlock.OptimisticLockError{Table: "t", ConflictIDs: []any{1}}
	boom := errors.New("boom")
	cases := []struct {
		name      string
		results   []error
		wantCalls int
		wantErr   error
	}{
		{"success at once", []error{nil}, 1, nil},
		{"success after conflicts", []error{conflict, conflict, nil}, 3, nil},
		{"other error stops at once", []error{boom}, 1, boom},
		{"conflict then other error", []error{conflict, boom}, 2, boom},
		{"gives up after the attempts", []error{conflict, conflict, conflict, conflict}, 3, optlock.ErrConflict},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			err := optlock.Retry(context.Background(), func(context.Context) error {
				calls++
				return tc.results[calls-1]
			}, optlock.RetryAttempts(3), optlock.RetryBackoff(0, time.Millisecond))
			assert.Equal(t, tc.wantCalls, calls)
			if tc.wantErr == nil {
				assert.NoError(t, err)
			} else {
				assert.ErrorIs(t, err, tc.wantErr)
			}
		})
	}
}

func TestIsRetryable(t *testing.T) {
	cases := []struct {
		err  error
		want bool
	}{
		{nil, false},
		{errors.New("boom"), false},
		{&optlock.OptimisticLockError{}, true},
		{fmt.Errorf("wrapped: %w", &optlock.OptimisticLockError{}), true},
		{&pgconn.PgError{Code: "40001"}, true},
		{&pgconn.PgError{Code: "40P01"}, true},
		{fmt.Errorf("tx: %w", &pgconn.PgError{Code: "40001"}), true},
		{&pgconn.PgError{Code: "23505"}, false},
		{&mysql.MySQLError{Number: 1213}, true},
		{errors.Join(errors.New("x"), &mysql.MySQLError{Number: 1213}), true},
		{&mysql.MySQLError{Number: 1062}, false},
		{optlock.ErrInvalidLock, false},
		{context.Canceled, false},
	}
	for _, tc := range cases {
		assert.Equal(t, tc.want, optlock.IsRetryable(tc.err), "IsRetryable(%#v)", tc.err)
	}
}

// Under REPEATABLE READ, PostgreSQL refuses an UPDATE of a row changed after the transaction's
// snapshot with 40001, which aborts the caller's transaction: ErrTxAborted, with PostgreSQL's error
// reachable. MariaDB's UPDATE reads the latest version and the lock predicate refuses it: a conflict,
// and the transaction goes on.
func TestStaleWriteUnderRepeatableReadIsAConflict(t *testing.T) {
	eachDB(t, []any{&Item{}}, func(t *testing.T, db *gorm.DB) {
		if db.Dialector.Name() == "sqlite" {
			t.Skip("SQLite has no isolation levels to choose")
		}
		item := seedItems(t, db, 1)[0]
		tx := db.Begin(&sql.TxOptions{Isolation: sql.LevelRepeatableRead})
		require.NoError(t, tx.Error)
		defer tx.Rollback()
		var mine Item
		require.NoError(t, tx.First(&mine, item.ID).Error) // the transaction's snapshot is taken

		theirs := item
		require.NoError(t, optlock.UpdateSafely(db, &theirs, map[string]any{"qty": 1}).Error)

		err := optlock.UpdateSafely(tx, &mine, map[string]any{"qty": 2}).Error
		assert.True(t, optlock.IsRetryable(err))
		if db.Dialector.Name() == "postgres" {
			require.ErrorIs(t, err, optlock.ErrTxAborted)
			require.NotErrorIs(t, err, optlock.ErrConflict)
			var pgErr *pgconn.PgError
			require.ErrorAs(t, err, &pgErr)
			assert.Equal(t, "40001", pgErr.Code)
		} else {
			require.ErrorIs(t, err, optlock.ErrConflict)
			require.NotErrorIs(t, err, optlock.ErrTxAborted)
		}
		assert.EqualValues(t, 1, mine.Version, "struct left as it was")
	})
}
