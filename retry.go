package optlock

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// Retry runs fn, a whole read-modify-write, again while it fails with a conflict: an error matching
// [ErrConflict], or the database's own serialization failure or deadlock (PostgreSQL 40001 and 40P01,
// MySQL 1213). Between attempts it waits a random time up to a bound that doubles from 2ms to 100ms
// (capped exponential backoff with full jitter), so writers that collided spread out instead of
// colliding again. It stops at the first success or other error, after 20 attempts, or when ctx is
// done, and returns the last error (wrapped, still matching [ErrConflict] or ctx's error). With
// [RetryLockAfter], attempts after the first few conflicts lock their reads instead.
//
// fn must re-read what it writes on every attempt; writing back the stale snapshot would only
// conflict again:
//
//	err := optlock.Retry(ctx, func(ctx context.Context) error {
//		var p Product
//		if err := db.WithContext(ctx).First(&p, id).Error; err != nil {
//			return err
//		}
//		return optlock.UpdateSafely(db.WithContext(ctx), &p, map[string]any{"stock": p.Stock - 1}).Error
//	})
func Retry(ctx context.Context, fn func(ctx context.Context) error, opts ...RetryOption) error {
	policy := newRetryPolicy(opts)
	var last error
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return stopped(err, last)
		}
		attemptCtx := policy.contextFor(ctx, attempt)
		last = fn(attemptCtx)
		if last == nil || !IsRetryable(last) {
			return last
		}
		if policy.contention != nil && !policy.locksReads(attempt) {
			policy.contention.conflicted()
		}
		if attempt+1 >= policy.attempts {
			return fmt.Errorf("optlock: gave up after %d attempts: %w", policy.attempts, last)
		}
		if policy.onRetry != nil {
			policy.onRetry(attempt+1, last)
		}
		if policy.onRetryCtx != nil {
			policy.onRetryCtx(attemptCtx, attempt+1, last)
		}
		if !policy.waitsBefore(attempt + 1) {
			continue
		}
		timer := time.NewTimer(policy.delay(attempt))
		select {
		case <-ctx.Done():
			timer.Stop()
			return stopped(ctx.Err(), last)
		case <-timer.C:
		}
	}
}

func stopped(ctxErr, last error) error {
	if last == nil {
		return ctxErr
	}
	return fmt.Errorf("optlock: retry stopped: %w; last attempt: %w", ctxErr, last)
}

// RetryOption tunes [Retry].
type RetryOption func(*retryPolicy)

type retryPolicy struct {
	attempts  int
	base, max time.Duration
	onRetry   func(attempt int, err error)
	// onRetryCtx is RetryNotifyContext's fn.
	onRetryCtx func(ctx context.Context, attempt int, err error)
	// lockReads says attempts from lockAfter (0 for the first) on lock their reads (RetryLockAfter).
	lockReads bool
	lockAfter int
	// contention, when set, remembers conflicts across calls (RetryLockWhenContended).
	contention *Contention
}

// newRetryPolicy is the default policy with opts applied.
func newRetryPolicy(opts []RetryOption) retryPolicy {
	policy := retryPolicy{attempts: 20, base: 2 * time.Millisecond, max: 100 * time.Millisecond}
	for _, opt := range opts {
		opt(&policy)
	}
	if policy.contention != nil && policy.contention.startsLocked() {
		policy.lockAfter = 0
	}
	return policy
}

// delay is a random duration in [0, min(max, base·2^attempt)].
func (p retryPolicy) delay(attempt int) time.Duration {
	bound := p.max
	if attempt < 30 && p.base<<attempt < p.max {
		bound = p.base << attempt
	}
	if bound <= 0 {
		return 0
	}
	return rand.N(bound + 1)
}

// RetryAttempts sets how many times [Retry] runs fn at most (default 20; at least 1).
func RetryAttempts(n int) RetryOption {
	return func(p *retryPolicy) { p.attempts = max(1, n) }
}

// RetryBackoff sets the bound of the first wait and the cap the doubling bound never exceeds
// (default 2ms and 100ms). Each wait is random between zero and the bound.
func RetryBackoff(base, maximum time.Duration) RetryOption {
	return func(p *retryPolicy) { p.base, p.max = max(0, base), max(0, maximum) }
}

// RetryNotify calls fn before each retry (and its wait, when there is one: the first attempt that
// locks its reads has none) with the number of the attempt that failed and its error, to count or
// log retries.
func RetryNotify(fn func(attempt int, err error)) RetryOption {
	return func(p *retryPolicy) { p.onRetry = fn }
}

// IsRetryable reports whether err is worth running the whole read-modify-write (or the whole
// transaction) again: an optimistic lock conflict, an aborted transaction ([ErrTxAborted]), or a
// serialization failure or deadlock reported by the database. Bad input, a statement's other
// conditions ([ErrNotMatched]) and an ended context are not.
func IsRetryable(err error) bool {
	return errors.Is(err, ErrConflict) || errors.Is(err, ErrTxAborted) || isSerializationFailure(err)
}

// isSerializationFailure recognises, without importing the drivers, PostgreSQL's 40001
// (serialization_failure) and 40P01 (deadlock_detected) and MySQL's 1213 (ER_LOCK_DEADLOCK,
// SQLSTATE 40001) anywhere in err's chain.
func isSerializationFailure(err error) bool { return txKillingError(err) != nil }

// isSerializationFailureError reports whether e itself (not what it wraps) is such an error, as any
// of the dialects knows it: an error does not say which database it came from.
func isSerializationFailureError(e error) bool {
	for _, d := range dialects {
		if d.dialect.isSerializationFailure(e) {
			return true
		}
	}
	return false
}

// walk calls visit on err and every error it wraps, until visit returns true.
func walk(err error, visit func(error) bool) bool {
	if err == nil {
		return false
	}
	if visit(err) {
		return true
	}
	switch u := err.(type) {
	case interface{ Unwrap() error }:
		return walk(u.Unwrap(), visit)
	case interface{ Unwrap() []error }:
		for _, e := range u.Unwrap() {
			if walk(e, visit) {
				return true
			}
		}
	}
	return false
}
