package tests

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/go-optlock/optlock"
)

// hybridConflict is a conflict an attempt reports without a database.
var hybridConflict = &optlock.OptimisticLockError{Table: "hybrid_counters", ConflictIDs: []any{1}}

// RetryLockAfter(k): the attempts after k failures lock their reads; k <= 0 locks from the first.
func TestRetryLockAfterLocksTheAttemptsAfterK(t *testing.T) {
	cases := []struct {
		name string
		opts []optlock.RetryOption
		want []bool // LocksReads per attempt
	}{
		{"without the option", nil, []bool{false, false, false, false}},
		{"k = 1", []optlock.RetryOption{optlock.RetryLockAfter(1)}, []bool{false, true, true, true}},
		{"k = 2", []optlock.RetryOption{optlock.RetryLockAfter(2)}, []bool{false, false, true, true}},
		{"k = 0 locks from the first attempt", []optlock.RetryOption{optlock.RetryLockAfter(0)}, []bool{true, true, true, true}},
		{"a negative k counts as 0", []optlock.RetryOption{optlock.RetryLockAfter(-3)}, []bool{true, true, true, true}},
		{"k beyond the attempts never locks", []optlock.RetryOption{optlock.RetryLockAfter(9)}, []bool{false, false, false, false}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got []bool
			opts := append([]optlock.RetryOption{optlock.RetryAttempts(4), optlock.RetryBackoff(0, 0)}, tc.opts...)
			err := optlock.Retry(context.Background(), func(ctx context.Context) error {
				got = append(got, optlock.LocksReads(ctx))
				return hybridConflict
			}, opts...)
			require.ErrorIs(t, err, optlock.ErrConflict)
			assert.Equal(t, tc.want, got, "LocksReads per attempt")
		})
	}
}

// The first attempt that locks runs at once: the row lock queues the writers, a wait would only add
// latency. With an hour of backoff, any wait would outlast the test's context.
func TestRetryLockAfterRunsTheFirstLockingAttemptWithoutWaiting(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	calls := 0
	err := optlock.Retry(ctx, func(ctx context.Context) error {
		calls++
		if calls == 1 {
			return hybridConflict
		}
		return nil
	}, optlock.RetryLockAfter(1), optlock.RetryBackoff(time.Hour, time.Hour))
	require.NoError(t, err)
	assert.Equal(t, 2, calls)
}

// A locking attempt that fails all the same (a deadlock, a serialization failure) failed for a reason
// the lock does not queue: the next attempt waits the backoff as usual.
func TestRetryLockAfterWaitsAfterAFailedLockingAttempt(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	calls := 0
	err := optlock.Retry(ctx, func(ctx context.Context) error {
		calls++
		return hybridConflict
	}, optlock.RetryLockAfter(1), optlock.RetryBackoff(time.Hour, time.Hour))
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.ErrorIs(t, err, optlock.ErrConflict)
	assert.Equal(t, 2, calls, "the optimistic attempt, then the first locking one; then a wait")
}

// Inside the caller's transaction Transaction runs fn once: it locks its reads only when k <= 0.
func TestTransactionInCallersTransactionLocksOnlyWithKZero(t *testing.T) {
	cases := []struct {
		name string
		opts []optlock.RetryOption
		want bool
	}{
		{"without the option", nil, false},
		{"k = 1", []optlock.RetryOption{optlock.RetryLockAfter(1)}, false},
		{"k = 0", []optlock.RetryOption{optlock.RetryLockAfter(0)}, true},
	}
	eachDB(t, []any{&HybridCounter{}}, func(t *testing.T, db *gorm.DB) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				var got bool
				err := db.Transaction(func(outer *gorm.DB) error {
					return optlock.Transaction(context.Background(), outer, func(tx *gorm.DB) error {
						got = optlock.LocksReads(tx.Statement.Context)
						return nil
					}, tc.opts...)
				})
				require.NoError(t, err)
				assert.Equal(t, tc.want, got)
			})
		}
	})
}

// RetryLockWhenContended: a call starts optimistic until one of the calls sharing its Contention
// conflicted optimistically; then the next ContendedCalls calls start locked, and the one after them
// tries the optimistic path again. A locked attempt's conflict does not renew the window.
func TestRetryLockWhenContendedRemembersConflictsAcrossCalls(t *testing.T) {
	var c optlock.Contention
	call := func(results ...error) []bool {
		var got []bool
		err := optlock.Retry(context.Background(), func(ctx context.Context) error {
			got = append(got, optlock.LocksReads(ctx))
			return results[len(got)-1]
		}, optlock.RetryLockWhenContended(&c), optlock.RetryBackoff(0, 0))
		if results[len(results)-1] == nil {
			require.NoError(t, err)
		}
		return got
	}
	assert.Equal(t, []bool{false}, call(nil), "cold: optimistic")
	assert.Equal(t, []bool{false}, call(nil), "still cold")
	assert.Equal(t, []bool{false, true}, call(hybridConflict, nil), "a conflict: the second attempt locks")
	for i := range optlock.ContendedCalls {
		if i == 3 {
			assert.Equal(t, []bool{true, true}, call(hybridConflict, nil), "a locked attempt's conflict (a deadlock, say)")
			continue
		}
		assert.Equal(t, []bool{true}, call(nil), "call %d after the conflict starts locked", i+1)
	}
	assert.Equal(t, []bool{false}, call(nil), "the window is over: optimistic again")
	assert.Equal(t, []bool{false}, call(nil), "and stays so without a conflict")

	var nilContention []bool
	err := optlock.Retry(context.Background(), func(ctx context.Context) error {
		nilContention = append(nilContention, optlock.LocksReads(ctx))
		return hybridConflict
	}, optlock.RetryLockWhenContended(nil), optlock.RetryAttempts(3), optlock.RetryBackoff(0, 0))
	require.ErrorIs(t, err, optlock.ErrConflict)
	assert.Equal(t, []bool{false, true, true}, nilContention, "a nil Contention is RetryLockAfter(1)")
}

// Inside the caller's transaction Transaction runs fn once: locked while the Contention remembers a
// conflict, and an optimistic conflict there is remembered too.
func TestRetryLockWhenContendedInCallersTransaction(t *testing.T) {
	eachDB(t, []any{&HybridCounter{}}, func(t *testing.T, db *gorm.DB) {
		var c optlock.Contention
		run := func(result error) (locked bool) {
			_ = db.Transaction(func(outer *gorm.DB) error {
				err := optlock.Transaction(context.Background(), outer, func(tx *gorm.DB) error {
					locked = optlock.LocksReads(tx.Statement.Context)
					return result
				}, optlock.RetryLockWhenContended(&c))
				require.ErrorIs(t, err, result)
				return nil
			})
			return locked
		}
		assert.False(t, run(nil), "cold")
		assert.False(t, run(hybridConflict), "cold, and conflicts")
		assert.True(t, run(nil), "remembered")
	})
}
