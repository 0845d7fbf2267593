package optlock

import "context"

// OnTxAborted calls fn once for every lock-checked write that ended the caller's transaction: its
// error matches [ErrTxAborted] (the database aborted or rolled back the transaction, or the write
// could not be undone inside it), and the caller must roll back and run the whole transaction again.
// table is the table the write was aimed at; err is the error the caller gets. fn runs on the
// caller's goroutine, with the statement's context, after the write: keep it quick. With
// [OnConflict] it lets a service count both ways a write can be refused (package
// github.com/go-optlock/optlock/otel records them as OpenTelemetry metrics and span events).
func OnTxAborted(fn func(ctx context.Context, table string, err error)) Option {
	return func(p *Plugin) { p.onTxAborted = fn }
}

// RetryNotifyContext is [RetryNotify] with the context of the attempt that failed: fn is called
// before each retry (and its wait, when there is one) with that context, the number of the attempt and its error, to count retries or
// record them on the context's trace span. With [Transaction] it is told of every transaction run
// again. Given with RetryNotify, both are called.
func RetryNotifyContext(fn func(ctx context.Context, attempt int, err error)) RetryOption {
	return func(p *retryPolicy) { p.onRetryCtx = fn }
}
