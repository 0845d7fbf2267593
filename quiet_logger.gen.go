package optlock

// This file is written by hand. Its name ends in .gen.go on purpose: GORM's loggers print the first
// caller outside GORM's own source and outside files named *.gen.go (gorm.io/gorm/utils.CallerFrame
// skips them for GORM Gen's generated code), so with this name a log line of a wrapped logger still
// points at the application's line that ran the statement, not at this wrapper.

import (
	"context"
	"errors"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// QuietConflicts wraps a GORM logger so that an optimistic lock conflict is not logged as an error.
// A conflict is an expected outcome of a lock-checked write, as gorm.ErrRecordNotFound is of a read
// (which GORM's own logger skips with IgnoreRecordNotFoundError), and the caller gets it as its
// error; logged as an error with its SQL it floods the error log of any busy service. The statement
// of a refused write is passed on to l as a statement that succeeded: l shows it only where it shows
// every statement (at logger.Info) or as a slow statement (at logger.Warn with a SlowThreshold).
// Every other error is passed on as it is, at error level: an error that wraps a conflict and
// something else (a rollback that failed), [ErrTxAborted], [ErrNotMatched], [ErrInvalidLock] and the
// database's own errors. Count or log conflicts with [OnConflict].
//
//	db, err := gorm.Open(dialector, &gorm.Config{Logger: optlock.QuietConflicts(logger.Default)})
//
// LogMode (and so db.Debug()) keeps the wrapper; a logger that filters parameters (gorm.ParamsFilter)
// still does.
func QuietConflicts(l logger.Interface) logger.Interface {
	if q, ok := l.(quietConflicts); ok {
		return q
	}
	return quietConflicts{inner: l}
}

// quietConflicts is the logger QuietConflicts returns.
type quietConflicts struct {
	inner logger.Interface
}

var (
	_ logger.Interface  = quietConflicts{}
	_ gorm.ParamsFilter = quietConflicts{}
)

// LogMode returns the inner logger at level, still wrapped.
func (q quietConflicts) LogMode(level logger.LogLevel) logger.Interface {
	return quietConflicts{inner: q.inner.LogMode(level)}
}

// Info passes msg on to the inner logger.
func (q quietConflicts) Info(ctx context.Context, msg string, data ...any) {
	q.inner.Info(ctx, msg, data...)
}

// Warn passes msg on to the inner logger.
func (q quietConflicts) Warn(ctx context.Context, msg string, data ...any) {
	q.inner.Warn(ctx, msg, data...)
}

// Error passes msg on to the inner logger.
func (q quietConflicts) Error(ctx context.Context, msg string, data ...any) {
	q.inner.Error(ctx, msg, data...)
}

// Trace passes a statement on to the inner logger, without its error when the error is only a
// conflict.
func (q quietConflicts) Trace(ctx context.Context, begin time.Time, fc func() (string, int64), err error) {
	if onlyConflict(err) {
		err = nil
	}
	q.inner.Trace(ctx, begin, fc, err)
}

// ParamsFilter lets the inner logger filter a statement's parameters, as GORM would without the
// wrapper; an inner logger that does not filter gets them all.
func (q quietConflicts) ParamsFilter(ctx context.Context, sql string, params ...any) (string, []any) {
	if f, ok := q.inner.(gorm.ParamsFilter); ok {
		return f.ParamsFilter(ctx, sql, params...)
	}
	return sql, params
}

// onlyConflict reports whether err is an optimistic lock conflict and nothing else: an
// [*OptimisticLockError], possibly wrapped, but not joined with another error (a conflict whose undo
// failed) and not an aborted transaction. A conflict the database reported (DatabaseErr) is one.
func onlyConflict(err error) bool {
	for err != nil {
		if _, ok := err.(*OptimisticLockError); ok {
			return true
		}
		if errors.Is(err, ErrTxAborted) {
			return false
		}
		switch u := err.(type) {
		case interface{ Unwrap() error }:
			err = u.Unwrap()
		case interface{ Unwrap() []error }:
			errs := u.Unwrap()
			if len(errs) != 1 {
				return false
			}
			err = errs[0]
		default:
			return false
		}
	}
	return false
}
