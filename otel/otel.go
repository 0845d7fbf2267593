// Package optlockotel records optlock's refused writes and retries as OpenTelemetry metrics and as
// events on the active trace span. It is a module of its own, so the library's go.mod stays free of
// OpenTelemetry.
//
// Register its plugin options and pass its retry option to [optlock.Retry] or [optlock.Transaction]:
//
//	rec, err := optlockotel.New() // the global MeterProvider; WithMeterProvider for another
//	db.Use(optlock.New(append(rec.Options(), optlock.Guard(&Account{}))...))
//	err = optlock.Transaction(ctx, db, fn, rec.RetryOption())
//
// Metrics, each with the table as db.collection.name:
//   - optlock.conflicts: refused writes (errors matching [optlock.ErrConflict]);
//   - optlock.conflict.keys: a histogram of how many primary keys each conflict names;
//   - optlock.tx_aborted: writes that ended the caller's transaction ([optlock.ErrTxAborted]);
//   - optlock.retries: attempts run again by Retry or Transaction, by optlock.retry.reason
//     (conflict, tx_aborted or serialization_failure); the table is not known there.
//
// The same are added as span events (optlock.conflict, optlock.tx_aborted, optlock.retry) to the
// span of the statement's or the attempt's context, when it is recording. The number of keys is an
// attribute of the events and the histogram, not of the counters: a count of keys is unbounded, and
// each distinct attribute value is a new time series.
package optlockotel

import (
	"context"
	"errors"
	"fmt"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/go-optlock/optlock"
)

// ScopeName is the instrumentation scope of the meter: this package's import path.
const ScopeName = "github.com/go-optlock/optlock/otel"

// Attribute keys.
const (
	// TableKey is the table a write was aimed at (OpenTelemetry's database conventions name it so).
	TableKey = attribute.Key("db.collection.name")
	// KeysKey is the number of primary keys a conflict names.
	KeysKey = attribute.Key("optlock.conflict.keys")
	// ReasonKey says why an attempt was run again: conflict, tx_aborted or serialization_failure.
	ReasonKey = attribute.Key("optlock.retry.reason")
	// AttemptKey is the number of the attempt that failed.
	AttemptKey = attribute.Key("optlock.retry.attempt")
)

// Recorder records conflicts, aborted transactions and retries. Create it with [New]; it is safe
// for concurrent use.
type Recorder struct {
	conflicts metric.Int64Counter
	keys      metric.Int64Histogram
	aborted   metric.Int64Counter
	retries   metric.Int64Counter
}

// Option configures [New].
type Option func(*config)

type config struct {
	provider metric.MeterProvider
}

// WithMeterProvider records on provider instead of the global one (otel.GetMeterProvider).
func WithMeterProvider(provider metric.MeterProvider) Option {
	return func(c *config) { c.provider = provider }
}

// New returns a Recorder whose instruments are created on the global MeterProvider, or on the one
// given with [WithMeterProvider].
func New(opts ...Option) (*Recorder, error) {
	c := config{}
	for _, opt := range opts {
		opt(&c)
	}
	if c.provider == nil {
		c.provider = otel.GetMeterProvider()
	}
	meter := c.provider.Meter(ScopeName)
	r := &Recorder{}
	var errs []error
	var err error
	r.conflicts, err = meter.Int64Counter("optlock.conflicts", metric.WithUnit("{conflict}"),
		metric.WithDescription("Lock-checked writes refused because a row changed or was deleted since it was read."))
	errs = append(errs, err)
	r.keys, err = meter.Int64Histogram("optlock.conflict.keys", metric.WithUnit("{key}"),
		metric.WithDescription("Primary keys named by each conflict."),
		metric.WithExplicitBucketBoundaries(1, 2, 5, 10, 100, 1000, 10000))
	errs = append(errs, err)
	r.aborted, err = meter.Int64Counter("optlock.tx_aborted", metric.WithUnit("{write}"),
		metric.WithDescription("Lock-checked writes that ended the caller's transaction: roll back and run it again."))
	errs = append(errs, err)
	r.retries, err = meter.Int64Counter("optlock.retries", metric.WithUnit("{attempt}"),
		metric.WithDescription("Attempts run again by optlock.Retry or optlock.Transaction."))
	errs = append(errs, err)
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("optlockotel: create instruments: %w", err)
	}
	return r, nil
}

// Options returns the plugin options that record every conflict and aborted transaction:
// [optlock.OnConflict] and [optlock.OnTxAborted]. To run a hook of your own as well, give your own
// options instead and call [Recorder.Conflict] and [Recorder.TxAborted] from them.
func (r *Recorder) Options() []optlock.Option {
	return []optlock.Option{optlock.OnConflict(r.Conflict), optlock.OnTxAborted(r.TxAborted)}
}

// RetryOption returns the option of [optlock.Retry] and [optlock.Transaction] that records every
// attempt run again ([optlock.RetryNotifyContext] calling [Recorder.Retry]).
func (r *Recorder) RetryOption() optlock.RetryOption {
	return optlock.RetryNotifyContext(r.Retry)
}

// Conflict records one refused write: the conflicts counter, the keys histogram, and an
// optlock.conflict event on ctx's span.
func (r *Recorder) Conflict(ctx context.Context, err *optlock.OptimisticLockError) {
	table := TableKey.String(err.Table)
	r.conflicts.Add(ctx, 1, metric.WithAttributes(table))
	r.keys.Record(ctx, int64(len(err.ConflictIDs)), metric.WithAttributes(table))
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		span.AddEvent("optlock.conflict", trace.WithAttributes(table, KeysKey.Int(len(err.ConflictIDs)),
			attribute.String("exception.message", err.Error())))
	}
}

// TxAborted records one write that ended the caller's transaction: the tx_aborted counter and an
// optlock.tx_aborted event on ctx's span.
func (r *Recorder) TxAborted(ctx context.Context, table string, err error) {
	attr := TableKey.String(table)
	r.aborted.Add(ctx, 1, metric.WithAttributes(attr))
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		span.AddEvent("optlock.tx_aborted", trace.WithAttributes(attr, attribute.String("exception.message", err.Error())))
	}
}

// Retry records one attempt run again: the retries counter, by reason, and an optlock.retry event
// on ctx's span.
func (r *Recorder) Retry(ctx context.Context, attempt int, err error) {
	reason := ReasonKey.String(retryReason(err))
	r.retries.Add(ctx, 1, metric.WithAttributes(reason))
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		span.AddEvent("optlock.retry", trace.WithAttributes(reason, AttemptKey.Int(attempt),
			attribute.String("exception.message", err.Error())))
	}
}

// retryReason names why err was worth another attempt.
func retryReason(err error) string {
	switch {
	case errors.Is(err, optlock.ErrConflict):
		return "conflict"
	case errors.Is(err, optlock.ErrTxAborted):
		return "tx_aborted"
	default:
		return "serialization_failure"
	}
}
