package optlock

import "context"

// RetryLockAfter makes [Retry] and [Transaction] switch from optimistic to pessimistic after k
// failed attempts: every attempt from the (k+1)th on runs with a context for which [LocksReads] is
// true, and the plugin then adds FOR UPDATE to fn's reads of lock-checked models inside a
// transaction. Such a read locks the rows it read until the transaction ends, so the write that
// follows cannot conflict: writers of a hot row queue on its lock instead of racing each other to a
// conflict, a rollback and a retry.
//
//	err := optlock.Transaction(ctx, db, func(tx *gorm.DB) error {
//		var it Item
//		if err := tx.First(&it, id).Error; err != nil { // SELECT … FOR UPDATE after one conflict
//			return err
//		}
//		return optlock.UpdateSafely(tx, &it, map[string]any{"qty": it.Qty + 1}).Error
//	}, optlock.RetryLockAfter(1))
//
// The first attempt that locks runs at once, without the backoff: the lock queues the writers, and
// waiting first would only add to the latency. A locking attempt that fails all the same (a deadlock,
// or a serialization failure under REPEATABLE READ or SERIALIZABLE) is followed by the usual wait.
//
// k <= 0 locks from the first attempt on (a negative k counts as 0). With Transaction the option
// applies also when db is inside the caller's transaction (fn runs once, locking only when k <= 0).
//
// Only reads made inside a transaction are locked: a FOR UPDATE in autocommit would release its lock
// as soon as the read ends, before the write. So the option takes effect with Transaction, or with a
// Retry whose fn reads and writes inside a transaction of its own. A read is locked only when it is
// through GORM's query chain (First, Take, Last, Find, FirstOrCreate, Preload's reads), on
// PostgreSQL or MySQL/MariaDB (SQLite has no row locks: a write transaction there locks the whole
// database), into rows of its own model (a struct or a slice of structs), of a model with a lock
// field (guarded by [Guard], marked with [WithLock] on the read, or with a version or updated_at
// field), without raw SQL, a locking clause of its own, Distinct, Joins, GROUP BY, a Select of
// anything but the model's columns, or a table expression other than a table's name. Count, Pluck,
// Scan, Raw and Row are never locked, nor is a sub-query (a *gorm.DB passed as a value) or a dry run. A read left unlocked is still correct: its write is checked as
// always and, on a conflict, retried. fn must pass the context it is given on (tx already carries it
// with Transaction; with Retry, db.WithContext(ctx)).
func RetryLockAfter(k int) RetryOption {
	return func(p *retryPolicy) { p.lockReads, p.lockAfter = true, max(0, k) }
}

// LocksReads reports whether ctx is that of an attempt of [Retry] or [Transaction] that locks its
// reads ([RetryLockAfter]), so fn can tell an optimistic attempt from a pessimistic one (to log it,
// or to lock a read the plugin leaves alone with clause.Locking).
func LocksReads(ctx context.Context) bool {
	if ctx == nil {
		return false
	}
	locks, _ := ctx.Value(locksReadsKey{}).(bool)
	return locks
}

// locksReadsKey marks the context of an attempt that locks its reads. A struct{} key does not
// allocate when it is boxed: the query callback looks it up on every read.
type locksReadsKey struct{}

// locksReads says whether attempt (0 for the first) locks its reads.
func (p retryPolicy) locksReads(attempt int) bool { return p.lockReads && attempt >= p.lockAfter }

// waitsBefore says whether Retry waits its backoff before attempt (1 for the second): before every
// attempt but the first that locks its reads.
func (p retryPolicy) waitsBefore(attempt int) bool { return !p.lockReads || attempt != p.lockAfter }

// contextFor is the context attempt runs with: ctx, marked when the attempt locks its reads.
func (p retryPolicy) contextFor(ctx context.Context, attempt int) context.Context {
	if p.locksReads(attempt) {
		return context.WithValue(ctx, locksReadsKey{}, true)
	}
	return ctx
}
