package optlockotel_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/go-optlock/optlock"
	optlockotel "github.com/go-optlock/optlock/otel"
)

// OtItem is the guarded model of the telemetry tests. Its BeforeUpdate fails with failWith when set,
// as a database does when it aborts the transaction.
type OtItem struct {
	ID        uint `gorm:"primaryKey"`
	Qty       int
	Version   int64
	failWith  error `gorm:"-"`
	failedYet bool  `gorm:"-"`
}

func (OtItem) TableName() string { return "ot_items" }

func (i *OtItem) BeforeUpdate(*gorm.DB) error {
	if i.failWith != nil && !i.failedYet {
		i.failedYet = true
		return i.failWith
	}
	return nil
}

// serializationFailure is a driver error as PostgreSQL's reports one (SQLSTATE 40001).
type serializationFailure struct{}

func (serializationFailure) Error() string {
	return "ERROR: could not serialize access (SQLSTATE 40001)"
}
func (serializationFailure) SQLState() string { return "40001" }

// otEnv is a SQLite database with the plugin, the recorder on an in-memory reader, a span recorder,
// and a second pool on the same file that reads results back.
type otEnv struct {
	db, observer *gorm.DB
	reader       *sdkmetric.ManualReader
	spans        *tracetest.SpanRecorder
	tracer       *sdktrace.TracerProvider
	rec          *optlockotel.Recorder
}

func openOt(t *testing.T) *otEnv {
	t.Helper()
	reader := sdkmetric.NewManualReader()
	rec, err := optlockotel.New(optlockotel.WithMeterProvider(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))))
	require.NoError(t, err)
	spans := tracetest.NewSpanRecorder()
	dsn := "file:" + filepath.Join(t.TempDir(), "ot.db") + "?_journal_mode=WAL&_busy_timeout=10000&_txlock=immediate"
	open := func() *gorm.DB {
		db, err := gorm.Open(sqlite.Open(dsn), &gorm.Config{Logger: logger.Discard})
		require.NoError(t, err)
		t.Cleanup(func() {
			if conn, err := db.DB(); err == nil {
				_ = conn.Close()
			}
		})
		return db
	}
	db, observer := open(), open()
	require.NoError(t, db.Use(optlock.New(append(rec.Options(), optlock.Guard(&OtItem{}))...)))
	require.NoError(t, observer.AutoMigrate(&OtItem{}))
	require.NoError(t, observer.Create(&[]OtItem{{Qty: 1, Version: 1}, {Qty: 2, Version: 1}}).Error)
	return &otEnv{db: db, observer: observer, reader: reader, spans: spans,
		tracer: sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans)), rec: rec}
}

// read returns the items as the other pool sees them.
func (e *otEnv) read(t *testing.T) []OtItem {
	t.Helper()
	var items []OtItem
	require.NoError(t, e.observer.Order("id").Find(&items).Error)
	return items
}

// bump moves every row on, as another writer would.
func (e *otEnv) bump(t *testing.T) {
	t.Helper()
	require.NoError(t, e.observer.Exec("UPDATE ot_items SET version = version + 1").Error)
}

// sums returns every counter's points by metric name and attribute set, and each histogram's count
// and sum by name.
func (e *otEnv) sums(t *testing.T) (map[string]map[attribute.Distinct]int64, map[string][2]int64) {
	t.Helper()
	var rm metricdata.ResourceMetrics
	require.NoError(t, e.reader.Collect(context.Background(), &rm))
	counters := map[string]map[attribute.Distinct]int64{}
	histograms := map[string][2]int64{}
	for _, sm := range rm.ScopeMetrics {
		assert.Equal(t, optlockotel.ScopeName, sm.Scope.Name)
		for _, m := range sm.Metrics {
			switch data := m.Data.(type) {
			case metricdata.Sum[int64]:
				counters[m.Name] = map[attribute.Distinct]int64{}
				for _, p := range data.DataPoints {
					counters[m.Name][p.Attributes.Equivalent()] = p.Value
				}
			case metricdata.Histogram[int64]:
				for _, p := range data.DataPoints {
					h := histograms[m.Name]
					histograms[m.Name] = [2]int64{h[0] + int64(p.Count), h[1] + p.Sum}
				}
			}
		}
	}
	return counters, histograms
}

func set(kvs ...attribute.KeyValue) attribute.Distinct {
	s := attribute.NewSet(kvs...)
	return s.Equivalent()
}

// event is a span event's name and attributes.
type event struct {
	name  string
	attrs map[attribute.Key]attribute.Value
}

func (e *otEnv) events(t *testing.T) []event {
	t.Helper()
	ended := e.spans.Ended()
	require.Len(t, ended, 1, "the test's span")
	var out []event
	for _, ev := range ended[0].Events() {
		attrs := map[attribute.Key]attribute.Value{}
		for _, kv := range ev.Attributes {
			attrs[kv.Key] = kv.Value
		}
		out = append(out, event{ev.Name, attrs})
	}
	return out
}

// TestRecorder: each way a write is refused or run again is counted with its table (or reason) and
// added to the active span as an event, with the number of keys a conflict names.
func TestRecorder(t *testing.T) {
	table := optlockotel.TableKey.String("ot_items")
	cases := []struct {
		name string
		// run makes the writes under ctx, which carries the test's span.
		run        func(t *testing.T, ctx context.Context, e *otEnv)
		counters   map[string]map[attribute.Distinct]int64
		histograms map[string][2]int64 // count, sum
		events     []string
		eventKeys  []int64 // optlock.conflict.keys of each optlock.conflict event
	}{
		{
			name: "one stale row",
			run: func(t *testing.T, ctx context.Context, e *otEnv) {
				var item OtItem
				require.NoError(t, e.db.First(&item, 1).Error)
				e.bump(t)
				require.ErrorIs(t, e.db.WithContext(ctx).Model(&item).Update("qty", 9).Error, optlock.ErrConflict)
				assert.Equal(t, 1, e.read(t)[0].Qty, "nothing written")
			},
			counters:   map[string]map[attribute.Distinct]int64{"optlock.conflicts": {set(table): 1}},
			histograms: map[string][2]int64{"optlock.conflict.keys": {1, 1}},
			events:     []string{"optlock.conflict"},
			eventKeys:  []int64{1},
		},
		{
			name: "two stale rows in one write",
			run: func(t *testing.T, ctx context.Context, e *otEnv) {
				var items []OtItem
				require.NoError(t, e.db.Order("id").Find(&items).Error)
				e.bump(t)
				require.ErrorIs(t, optlock.UpdateSafely(e.db.WithContext(ctx), &items, map[string]any{"qty": 9}).Error, optlock.ErrConflict)
				assert.Equal(t, []int{1, 2}, []int{e.read(t)[0].Qty, e.read(t)[1].Qty}, "nothing written")
			},
			counters:   map[string]map[attribute.Distinct]int64{"optlock.conflicts": {set(table): 1}},
			histograms: map[string][2]int64{"optlock.conflict.keys": {1, 2}},
			events:     []string{"optlock.conflict"},
			eventKeys:  []int64{2},
		},
		{
			name: "Retry after a conflict",
			run: func(t *testing.T, ctx context.Context, e *otEnv) {
				var stale OtItem
				require.NoError(t, e.db.First(&stale, 1).Error)
				e.bump(t)
				attempts := 0
				err := optlock.Retry(ctx, func(ctx context.Context) error {
					attempts++
					item := stale
					if attempts > 1 {
						if err := e.db.WithContext(ctx).First(&item, 1).Error; err != nil {
							return err
						}
					}
					return e.db.WithContext(ctx).Model(&item).Update("qty", 7).Error
				}, e.rec.RetryOption(), optlock.RetryBackoff(0, 0))
				require.NoError(t, err)
				assert.Equal(t, 7, e.read(t)[0].Qty, "the second attempt wrote")
			},
			counters: map[string]map[attribute.Distinct]int64{
				"optlock.conflicts": {set(table): 1},
				"optlock.retries":   {set(optlockotel.ReasonKey.String("conflict")): 1},
			},
			histograms: map[string][2]int64{"optlock.conflict.keys": {1, 1}},
			events:     []string{"optlock.conflict", "optlock.retry"},
			eventKeys:  []int64{1},
		},
		{
			name: "a write that ends the caller's transaction, then Transaction runs it again",
			run: func(t *testing.T, ctx context.Context, e *otEnv) {
				attempts := 0
				err := optlock.Transaction(ctx, e.db, func(tx *gorm.DB) error {
					attempts++
					var item OtItem
					if err := tx.First(&item, 1).Error; err != nil {
						return err
					}
					if attempts == 1 {
						item.failWith = serializationFailure{}
					}
					// Inside Transaction's own transaction: a write the database aborted is ErrTxAborted.
					inner := optlock.Transaction(ctx, tx, func(tx *gorm.DB) error {
						return tx.Model(&item).Update("qty", 8).Error
					})
					if attempts == 1 {
						require.ErrorIs(t, inner, optlock.ErrTxAborted)
					}
					return inner
				}, e.rec.RetryOption(), optlock.RetryBackoff(0, 0))
				require.NoError(t, err)
				assert.Equal(t, 2, attempts)
				assert.Equal(t, 8, e.read(t)[0].Qty, "the second run wrote")
			},
			counters: map[string]map[attribute.Distinct]int64{
				"optlock.tx_aborted": {set(table): 1},
				"optlock.retries":    {set(optlockotel.ReasonKey.String("tx_aborted")): 1},
			},
			events: []string{"optlock.tx_aborted", "optlock.retry"},
		},
		{
			name: "Transaction run again after a serialization failure",
			run: func(t *testing.T, ctx context.Context, e *otEnv) {
				attempts := 0
				err := optlock.Transaction(ctx, e.db, func(tx *gorm.DB) error {
					attempts++
					if attempts == 1 {
						return serializationFailure{}
					}
					return tx.Model(&OtItem{}).Where("id = ?", 2).Update("qty", 5).Error
				}, e.rec.RetryOption(), optlock.RetryBackoff(0, 0))
				require.NoError(t, err)
				assert.Equal(t, 5, e.read(t)[1].Qty)
			},
			counters: map[string]map[attribute.Distinct]int64{
				"optlock.retries": {set(optlockotel.ReasonKey.String("serialization_failure")): 1},
			},
			events: []string{"optlock.retry"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := openOt(t)
			ctx, span := e.tracer.Tracer("test").Start(context.Background(), "request")
			tc.run(t, ctx, e)
			span.End()

			counters, histograms := e.sums(t)
			for name, want := range tc.counters {
				assert.Equal(t, want, counters[name], "counter %s", name)
			}
			for _, name := range []string{"optlock.conflicts", "optlock.tx_aborted", "optlock.retries"} {
				if _, ok := tc.counters[name]; !ok {
					assert.Empty(t, counters[name], "counter %s: nothing recorded", name)
				}
			}
			assert.Equal(t, tc.histograms["optlock.conflict.keys"], histograms["optlock.conflict.keys"], "keys per conflict (count, sum)")

			var names []string
			var keys []int64
			for _, ev := range e.events(t) {
				names = append(names, ev.name)
				if ev.name == "optlock.conflict" {
					keys = append(keys, ev.attrs[optlockotel.KeysKey].AsInt64())
					assert.Equal(t, "ot_items", ev.attrs[optlockotel.TableKey].AsString())
				}
			}
			assert.Equal(t, tc.events, names, "span events")
			assert.Equal(t, tc.eventKeys, keys, "keys named by each conflict event")
		})
	}
}

// TestRecorderWithoutSpan: with no span in the context, only the metrics are recorded.
func TestRecorderWithoutSpan(t *testing.T) {
	e := openOt(t)
	e.rec.Conflict(context.Background(), &optlock.OptimisticLockError{Table: "t", ConflictIDs: []any{1, 2, 3}})
	e.rec.Retry(context.Background(), 1, errors.Join(optlock.ErrTxAborted))
	counters, histograms := e.sums(t)
	assert.Equal(t, map[attribute.Distinct]int64{set(optlockotel.TableKey.String("t")): 1}, counters["optlock.conflicts"])
	assert.Equal(t, map[attribute.Distinct]int64{set(optlockotel.ReasonKey.String("tx_aborted")): 1}, counters["optlock.retries"])
	assert.Equal(t, [2]int64{1, 3}, histograms["optlock.conflict.keys"])
}
