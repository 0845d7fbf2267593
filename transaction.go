package optlock

import (
	"context"

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
// fn must do all its reads through tx, and must not keep anything from an earlier attempt.
func Transaction(ctx context.Context, db *gorm.DB, fn func(tx *gorm.DB) error, opts ...RetryOption) error {
	return Retry(ctx, func(ctx context.Context) error {
		return db.WithContext(ctx).Transaction(fn)
	}, opts...)
}
