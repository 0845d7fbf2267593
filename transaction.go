package optlock

import (
	"context"
	"errors"

	"gorm.io/gorm"
)

// Transaction runs fn inside db.WithContext(ctx).Transaction, and runs the whole transaction again, in
// a fresh transaction and with [Retry]'s backoff and options, when fn or the COMMIT fails with
// [ErrConflict], [ErrTxAborted], or the database's serialization failure or deadlock (PostgreSQL
// 40001/40P01, MySQL 1213; a Galera cluster reports a certification failure as 1213, often at COMMIT).
// Any other error rolls back and is returned at once.
//
// Use Transaction when a read-modify-write spans a transaction of your own; use [Retry] around one
// lock-checked write that runs without one. Retrying a single write inside a transaction cannot help
// once the database aborted the transaction, and on MySQL/MariaDB (REPEATABLE READ) every re-read
// inside it sees the transaction's old snapshot: only running the whole transaction again can succeed.
//
// Called with a db that is already inside the caller's transaction, Transaction runs fn once, under a
// savepoint, and retries nothing: only the caller can run its whole transaction again. A conflict is
// returned as it is (the savepoint is rolled back, the caller's transaction is alive); a serialization
// failure or deadlock is returned as [ErrTxAborted], because the database may have rolled back the
// caller's whole transaction (MySQL/MariaDB do on a deadlock, and then run what follows in autocommit).
//
// fn must do all its reads through tx, and must not keep anything from an earlier attempt. Under
// heavy contention on a few rows, [RetryLockAfter] makes the attempts after the first conflicts read
// with FOR UPDATE, so they queue on the rows' locks instead of conflicting again.
func Transaction(ctx context.Context, db *gorm.DB, fn func(tx *gorm.DB) error, opts ...RetryOption) error {
	if db != nil && inCallersTransaction(db) {
		policy := newRetryPolicy(opts)
		err := db.WithContext(policy.contextFor(ctx, 0)).Transaction(fn)
		if policy.contention != nil && !policy.locksReads(0) && IsRetryable(err) {
			policy.contention.conflicted()
		}
		return onceInCallersTransaction(err)
	}
	return Retry(ctx, func(ctx context.Context) error {
		return db.WithContext(ctx).Transaction(fn)
	}, opts...)
}

// inCallersTransaction reports whether db's statements run inside a transaction the caller began.
func inCallersTransaction(db *gorm.DB) bool {
	committer, ok := db.Statement.ConnPool.(gorm.TxCommitter)
	return ok && committer != nil
}

// onceInCallersTransaction is the error of fn's one run inside the caller's transaction: what the
// database aborted becomes ErrTxAborted.
func onceInCallersTransaction(err error) error {
	if err == nil || errors.Is(err, ErrTxAborted) {
		return err
	}
	if txKillingError(err) != nil {
		return &txAbortedError{reason: "the database aborted the caller's transaction, which optlock.Transaction cannot run again from inside", err: err}
	}
	return err
}
