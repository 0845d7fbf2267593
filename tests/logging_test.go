package tests

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/go-optlock/optlock"
)

// Logging: a conflict is an expected outcome of a lock-checked write. With GORM's default logger every
// one is logged as an error with its SQL; with optlock.QuietConflicts around the same logger, none is,
// while a real error still is.

// LogItem is the logging tests' guarded model (own table).
type LogItem struct {
	ID      uint `gorm:"primaryKey"`
	Qty     int
	Version int64
}

func (LogItem) TableName() string { return "core_log_items" }

const logRows = 3 // rows the writers share: few, so they conflict

// logDuration is how long the writers run with each logger: OPTLOCK_LOG_DURATION ("15s", or seconds),
// else 1s (300ms with -short).
func logDuration(t *testing.T) time.Duration {
	t.Helper()
	v := os.Getenv("OPTLOCK_LOG_DURATION")
	switch {
	case v == "" && testing.Short():
		return 300 * time.Millisecond
	case v == "":
		return time.Second
	}
	if d, err := time.ParseDuration(v); err == nil && d > 0 {
		return d
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil && s > 0 {
		return time.Duration(s * float64(time.Second))
	}
	t.Fatalf("OPTLOCK_LOG_DURATION=%q is not a duration (e.g. 15s)", v)
	return 0
}

// logRecorder is a logger.Writer that prints what it is given as GORM's default logger does (to a
// buffer) and keeps every error it was given to print: the errors logged at error level.
type logRecorder struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	out    *log.Logger
	errs   []error
	slowSQ int
}

func newLogRecorder() *logRecorder {
	r := &logRecorder{}
	r.out = log.New(&r.buf, "\r\n", log.LstdFlags) // as logger.Default
	return r
}

func (r *logRecorder) Printf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.out.Printf(format, args...)
	for _, a := range args {
		if err, ok := a.(error); ok {
			r.errs = append(r.errs, err)
		}
		if s, ok := a.(string); ok && strings.HasPrefix(s, "SLOW SQL") {
			r.slowSQ++
		}
	}
}

// defaultLogger is logger.Default writing to r: level Warn, slow statements from 200ms, colours.
func (r *logRecorder) defaultLogger() logger.Interface {
	return logger.New(r, logger.Config{SlowThreshold: 200 * time.Millisecond, LogLevel: logger.Warn, Colorful: true})
}

// conflictErrors counts the errors logged that match optlock.ErrConflict.
func (r *logRecorder) conflictErrors() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, err := range r.errs {
		if errors.Is(err, optlock.ErrConflict) {
			n++
		}
	}
	return n
}

// logRun is what one conflict-heavy run produced.
type logRun struct {
	writes, conflicts   int64
	lines, bytes        int
	errors, conflictErr int
	slow                int
}

// conflictHeavyRun runs writers that read and increment a few shared guarded rows, through
// optlock.Retry, for d, on c's database with lg as its logger. It checks that every successful write
// counted once, read back through the observer.
func conflictHeavyRun(t *testing.T, c configured, lg logger.Interface, rec *logRecorder, conflicts *atomic.Int64, d time.Duration) logRun {
	t.Helper()
	rows := make([]LogItem, logRows)
	for i := range rows {
		rows[i] = LogItem{Qty: 0}
	}
	require.NoError(t, c.observer.Session(&gorm.Session{AllowGlobalUpdate: true}).Delete(&LogItem{}).Error)
	require.NoError(t, c.observer.Create(&rows).Error)
	conflicts.Store(0)
	db := c.db.Session(&gorm.Session{Logger: lg})

	// The writers stop between writes, never by an ended context: every error logged is then one the
	// writes themselves met.
	ctx, cancel := context.WithTimeout(context.Background(), d+time.Minute)
	defer cancel()
	deadline := time.Now().Add(d)
	var writes atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				id := rows[rand.N(len(rows))].ID
				err := optlock.Retry(ctx, func(ctx context.Context) error {
					var it LogItem
					if err := db.WithContext(ctx).First(&it, id).Error; err != nil {
						return err
					}
					return db.WithContext(ctx).Model(&it).Update("qty", it.Qty+1).Error
				}, optlock.RetryAttempts(1000))
				if err != nil {
					errs <- err
					return
				}
				writes.Add(1)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}

	var stored []LogItem
	require.NoError(t, c.observer.Find(&stored).Error)
	total := 0
	for _, r := range stored {
		total += r.Qty
	}
	require.Equal(t, writes.Load(), int64(total), "the stored increments are not the writes made")

	rec.mu.Lock()
	run := logRun{
		writes: writes.Load(), conflicts: conflicts.Load(),
		lines: bytes.Count(rec.buf.Bytes(), []byte("\n")), bytes: rec.buf.Len(),
		errors: len(rec.errs), slow: rec.slowSQ,
	}
	rec.mu.Unlock()
	run.conflictErr = rec.conflictErrors()
	return run
}

// TestQuietConflictsKeepsConflictsOutOfTheErrorLog: under a conflict-heavy load, GORM's default
// logger logs every conflict as an error with its SQL; optlock.QuietConflicts around the same logger
// logs none at error level, while a real error (a statement on a missing table) still is.
// OPTLOCK_LOG_DURATION=15s runs each logger for 15 seconds and prints the figures.
func TestQuietConflictsKeepsConflictsOutOfTheErrorLog(t *testing.T) {
	d := logDuration(t)
	for _, dl := range dialects {
		t.Run(dl.name, func(t *testing.T) {
			var conflicts atomic.Int64
			c := openConfigured(t, dl, &gorm.Config{}, []any{&LogItem{}},
				optlock.Guard(&LogItem{}),
				optlock.OnConflict(func(context.Context, *optlock.OptimisticLockError) { conflicts.Add(1) }))
			loggers := []struct {
				name  string
				wrap  func(logger.Interface) logger.Interface
				quiet bool
			}{
				{"GORM's default logger", func(l logger.Interface) logger.Interface { return l }, false},
				{"optlock.QuietConflicts(default logger)", optlock.QuietConflicts, true},
			}
			for _, lc := range loggers {
				rec := newLogRecorder()
				run := conflictHeavyRun(t, c, lc.wrap(rec.defaultLogger()), rec, &conflicts, d)
				t.Logf("%s, %v: %d writes, %d conflicts; log: %d lines, %d bytes, %d errors (%d conflicts), %d slow statements",
					lc.name, d, run.writes, run.conflicts, run.lines, run.bytes, run.errors, run.conflictErr, run.slow)
				require.Positive(t, run.conflicts, "%s: the run had no conflict: it proves nothing", lc.name)
				if !lc.quiet {
					require.Positive(t, run.conflictErr, "%s: the default logger logged no conflict as an error", lc.name)
					continue
				}
				for _, err := range rec.errs {
					if errors.Is(err, optlock.ErrConflict) {
						t.Errorf("%s: a conflict was logged at error level: %T %v", lc.name, err, err)
					}
				}
				require.Zero(t, run.conflictErr, "%s: a conflict was logged at error level", lc.name)
				require.Zero(t, run.errors, "%s: an error was logged: %v", lc.name, rec.errs)
				require.NotContains(t, rec.buf.String(), "optlock: ", "%s: a conflict's message reached the log", lc.name)

				// A real error is still logged, at error level.
				db := c.db.Session(&gorm.Session{Logger: optlock.QuietConflicts(rec.defaultLogger())})
				require.Error(t, db.Exec("UPDATE core_log_no_such_table SET qty = 1").Error)
				require.Len(t, rec.errs, run.errors+1, "a real error was not logged")
			}
		})
	}
}

// TestQuietConflictsLevels: a conflict reaches the wrapped logger as a statement that succeeded, so
// it is shown only where every statement is (logger.Info), without its error; LogMode (db.Debug())
// keeps the wrapper; and the line points at the caller's file, not at the wrapper's.
func TestQuietConflictsLevels(t *testing.T) {
	cases := []struct {
		name      string
		level     logger.LogLevel
		wantLines bool
	}{
		{"Warn: nothing", logger.Warn, false},
		{"Error: nothing", logger.Error, false},
		{"Info: the statement, as every statement", logger.Info, true},
	}
	for _, dl := range dialects {
		t.Run(dl.name, func(t *testing.T) {
			c := openConfigured(t, dl, &gorm.Config{}, []any{&LogItem{}}, optlock.Guard(&LogItem{}))
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					require.NoError(t, c.observer.Session(&gorm.Session{AllowGlobalUpdate: true}).Delete(&LogItem{}).Error)
					row := LogItem{Qty: 1}
					require.NoError(t, c.observer.Create(&row).Error)
					stale := row
					require.NoError(t, c.observer.Model(&LogItem{}).Where("id = ?", row.ID).Update("version", gorm.Expr("version + 1")).Error)

					rec := newLogRecorder()
					// LogMode on the wrapper, as db.Debug() does: the level changes, the wrapper stays.
					lg := optlock.QuietConflicts(logger.New(rec, logger.Config{LogLevel: logger.Silent})).LogMode(tc.level)
					err := c.db.Session(&gorm.Session{Logger: lg}).Model(&stale).Update("qty", 2).Error
					require.ErrorIs(t, err, optlock.ErrConflict)
					require.Empty(t, rec.errs, "an error was logged")
					out := rec.buf.String()
					if !tc.wantLines {
						require.Empty(t, out)
						return
					}
					require.Contains(t, out, "UPDATE")
					require.Contains(t, out, "logging_test.go:", "the line does not point at the caller")
					require.NotContains(t, out, "quiet_logger", "the line points at the wrapper")
				})
			}
		})
	}
}

// TestQuietConflictsPassesParamsFilter: a logger that filters parameters (ParameterizedQueries) still
// does behind the wrapper.
func TestQuietConflictsPassesParamsFilter(t *testing.T) {
	rec := newLogRecorder()
	lg := optlock.QuietConflicts(logger.New(rec, logger.Config{LogLevel: logger.Info, ParameterizedQueries: true}))
	f, ok := lg.(gorm.ParamsFilter)
	require.True(t, ok, "the wrapper hides the inner logger's ParamsFilter")
	sql, params := f.ParamsFilter(context.Background(), "SELECT ?", 1)
	require.Equal(t, "SELECT ?", sql)
	require.Nil(t, params, fmt.Sprintf("parameters were not filtered: %v", params))
}
