package tests

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/go-optlock/optlock"
)

// LogEntry is the other work a caller does in the same transaction as a lock-checked write.
type LogEntry struct {
	ID   uint `gorm:"primaryKey"`
	Note string
}

func (LogEntry) TableName() string { return "core_log_entries" }

// requireDriverError checks that the database's own error is reachable with errors.As.
func requireDriverError(t *testing.T, err error, dialect string) {
	t.Helper()
	switch dialect {
	case "postgres":
		var pgErr *pgconn.PgError
		require.ErrorAs(t, err, &pgErr, "the PostgreSQL error stays reachable: %v", err)
	case "mysql":
		var myErr *mysql.MySQLError
		require.ErrorAs(t, err, &myErr, "the MySQL error stays reachable: %v", err)
	}
}

// A deadlock inside the caller's transaction, made deterministic: A writes a log row and locks row 3;
// B locks row 1 (and is made the heavier transaction, or the more patient one), then waits for row 3;
// A's bulk write of rows 1-2 waits for B: a cycle, and A is the victim. The database has rolled back
// (MySQL) or aborted (PostgreSQL) A's transaction, so A must get ErrTxAborted, not a conflict it could
// commit after, and nothing of A may be committed.
func TestDeadlockInCallerTransactionIsTxAborted(t *testing.T) {
	eachDB(t, []any{&Item{}, &LogEntry{}}, func(t *testing.T, db *gorm.DB) {
		dialect := db.Dialector.Name()
		if dialect == "sqlite" {
			t.Skip("SQLite admits one writer at a time: no deadlock between transactions")
		}
		items := seedItems(t, db, 3)
		before := loadItems(t, db)
		ctx := context.Background()

		a := db.Begin()
		require.NoError(t, a.Error)
		defer a.Rollback()
		b := db.Begin()
		require.NoError(t, b.Error)
		defer b.Rollback()
		if dialect == "postgres" {
			// The waiter whose deadlock_timeout expires first detects the cycle and is the victim.
			require.NoError(t, a.Exec("SET LOCAL deadlock_timeout = '100ms'").Error)
			require.NoError(t, b.Exec("SET LOCAL deadlock_timeout = '30s'").Error)
		} else {
			// InnoDB rolls back the transaction that changed fewer rows.
			heavy := make([]LogEntry, 50)
			for i := range heavy {
				heavy[i].Note = "b"
			}
			require.NoError(t, b.Create(&heavy).Error)
		}
		require.NoError(t, a.Create(&LogEntry{Note: "a's other work"}).Error)
		require.NoError(t, a.Exec("SELECT id FROM core_items WHERE id = ? FOR UPDATE", items[2].ID).Error)
		require.NoError(t, b.Exec("SELECT id FROM core_items WHERE id = ? FOR UPDATE", items[0].ID).Error)

		bSession := sessionID(t, b)
		var wg sync.WaitGroup
		wg.Add(1)
		var bErr error
		bDone := make(chan struct{})
		go func() {
			defer wg.Done()
			defer close(bDone)
			bErr = b.WithContext(ctx).Exec("SELECT id FROM core_items WHERE id = ? FOR UPDATE", items[2].ID).Error
		}()
		waitForLockWait(t, db, bSession, bDone)

		rows := items[:2]
		err := optlock.UpdateSafely(a, &rows, map[string]any{"qty": 0}).Error
		require.Error(t, err)
		assert.ErrorIs(t, err, optlock.ErrTxAborted, "got %v", err)
		assert.NotErrorIs(t, err, optlock.ErrConflict, "a dead transaction is not a conflict it could commit after")
		assert.True(t, optlock.IsRetryable(err))
		requireDriverError(t, err, dialect)
		assert.Equal(t, before[items[0].ID], rows[0], "struct as read")

		require.NoError(t, a.Rollback().Error)
		wg.Wait()
		require.NoError(t, bErr)
		require.NoError(t, b.Rollback().Error)

		assert.Equal(t, before, loadItems(t, db), "nothing of A's write")
		var count int64
		require.NoError(t, db.Model(&LogEntry{}).Where("note = ?", "a's other work").Count(&count).Error)
		assert.Zero(t, count, "nothing of A's transaction is committed")
	})
}

// sessionID returns the server's id for the connection of transaction tx.
func sessionID(t *testing.T, tx *gorm.DB) int64 {
	t.Helper()
	query := "SELECT pg_backend_pid()"
	if tx.Dialector.Name() == "mysql" {
		query = "SELECT CONNECTION_ID()"
	}
	var id int64
	require.NoError(t, tx.Raw(query).Scan(&id).Error)
	return id
}

// waitForLockWait blocks until the server session id waits for a lock, or fails the test, saying what
// the server's sessions were doing, if done closes first or after 60 s (a liveness guard, not a timing
// assertion).
func waitForLockWait(t *testing.T, db *gorm.DB, id int64, done <-chan struct{}) {
	t.Helper()
	query := "SELECT count(*) FROM pg_stat_activity WHERE pid = ? AND wait_event_type = 'Lock'"
	if db.Dialector.Name() == "mysql" {
		query = `SELECT (SELECT count(*) FROM information_schema.innodb_trx WHERE trx_mysql_thread_id = ? AND trx_state = 'LOCK WAIT')
			+ (SELECT count(*) FROM information_schema.processlist WHERE id = ? AND state LIKE '%lock%')`
	}
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			t.Fatalf("session %d finished instead of waiting for a lock", id)
		default:
		}
		var waiting int
		args := []any{id}
		if db.Dialector.Name() == "mysql" {
			args = append(args, id)
		}
		require.NoError(t, db.Raw(query, args...).Scan(&waiting).Error)
		if waiting > 0 {
			return
		}
		sleepShortly()
	}
	var sessions []map[string]any
	activity := "SELECT pid, state, wait_event_type, wait_event, left(query, 80) AS query FROM pg_stat_activity WHERE datname = current_database()"
	if db.Dialector.Name() == "mysql" {
		activity = "SELECT id, command, state, left(info, 80) AS info FROM information_schema.processlist"
	}
	db.Raw(activity).Scan(&sessions)
	t.Fatalf("session %d did not start waiting for a lock; sessions: %v", id, sessions)
}

// A conflict inside the caller's transaction leaves it alive: the caller may commit, and all its
// other work is there (the contract of ErrConflict).
func TestConflictInCallerTransactionKeepsItAlive(t *testing.T) {
	for _, bulk := range []bool{false, true} {
		eachDB(t, []any{&Item{}, &LogEntry{}}, func(t *testing.T, db *gorm.DB) {
			items := seedItems(t, db, 3)
			stale := append([]Item(nil), items...)
			theirs := items[1]
			require.NoError(t, optlock.UpdateSafely(db, &theirs, map[string]any{"qty": 99}).Error)
			rows := stale[1:2]
			if bulk {
				rows = stale
			}

			err := db.Transaction(func(tx *gorm.DB) error {
				require.NoError(t, tx.Create(&LogEntry{Note: "before"}).Error)
				err := optlock.UpdateSafely(tx, &rows, map[string]any{"qty": 0}).Error
				requireConflict(t, err, items[1].ID)
				assert.NotErrorIs(t, err, optlock.ErrTxAborted)
				return tx.Create(&LogEntry{Note: "after"}).Error
			})
			require.NoError(t, err)
			var notes []string
			require.NoError(t, db.Model(&LogEntry{}).Order("id").Pluck("note", &notes).Error)
			assert.Equal(t, []string{"before", "after"}, notes, "all other work committed")
			stored := loadItems(t, db)
			assert.Equal(t, 10, stored[items[0].ID].Qty, "nothing of the refused write")
			assert.Equal(t, 99, stored[items[1].ID].Qty)
		})
	}
}

// GORM's ROLLBACK after a refused write can fail (a Galera node answers it with 1213; here the
// transaction is already gone). GORM then joins the errors with "%v; %w": the conflict must stay
// reachable, with its keys, and so must the rollback's error.
func TestConflictSurvivesAFailedRollback(t *testing.T) {
	eachDB(t, []any{&Item{}}, func(t *testing.T, db *gorm.DB) {
		for _, n := range []int{1, 3} {
			recreate(t, db, &Item{})
			items := seedItems(t, db, n)
			theirs := items[0]
			require.NoError(t, optlock.UpdateSafely(db, &theirs, map[string]any{"qty": 1}).Error)
			injectFault(t, db, "after", func(tx *gorm.DB) {
				_ = tx.Statement.ConnPool.(gorm.TxCommitter).Rollback() // GORM's own ROLLBACK will fail
			})

			err := optlock.UpdateSafely(db, &items, map[string]any{"qty": 2}).Error
			lockErr := requireConflict(t, err, items[0].ID)
			assert.ErrorIs(t, err, sql.ErrTxDone, "the rollback's error stays reachable")
			assert.NotContains(t, lockErr.Error(), "0 rows")
		}
	})
}

// When the conflict details cannot be read, the conflict still names every refused row, says their
// state is unknown, and keeps the reason reachable.
func TestConflictWithUnreadableDetailsNamesEveryRow(t *testing.T) {
	eachDB(t, []any{&Item{}}, func(t *testing.T, db *gorm.DB) {
		items := seedItems(t, db, 3)
		theirs := items[1]
		require.NoError(t, optlock.UpdateSafely(db, &theirs, map[string]any{"qty": 1}).Error)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		// After GORM's rollback, before the details are read: the caller's context ends.
		update := db.Callback().Update()
		require.NoError(t, update.After("gorm:commit_or_rollback_transaction").Before("optlock:finish").Register("test:cancel", func(*gorm.DB) { cancel() }))
		t.Cleanup(func() { _ = update.Remove("test:cancel") })

		err := optlock.UpdateSafely(db.WithContext(ctx), &items, map[string]any{"qty": 2}).Error
		lockErr := requireConflict(t, err, items[0].ID, items[1].ID, items[2].ID)
		require.Len(t, lockErr.Rows, 3)
		for _, r := range lockErr.Rows {
			assert.True(t, r.Unknown, "row %v: state unknown", r.ID)
		}
		assert.ErrorIs(t, err, context.Canceled)
		assert.NotContains(t, err.Error(), "0 rows")
		assert.Contains(t, err.Error(), "could not be read")
	})
}

// A chunked bulk write in the caller's transaction whose context ends between two chunks is undone
// completely: the savepoint commands do not inherit the cancellation. (Notes locked on version and
// updated_at: a form that binds a fixed number of parameters would not be split.)
func TestDeadlineBetweenChunksInCallerTransactionWritesNothing(t *testing.T) {
	eachDB(t, []any{&Note{}, &LogEntry{}}, func(t *testing.T, db *gorm.DB) {
		notes := make([]Note, 60)
		require.NoError(t, db.Create(&notes).Error)
		read := append([]Note(nil), notes...)
		before := loadNotes(t, db)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		rec := db.Session(&gorm.Session{Logger: &cancellingLogger{Interface: logger.Discard, prefix: "UPDATE", n: 2, cancel: cancel}})

		err := rec.Transaction(func(tx *gorm.DB) error {
			require.NoError(t, tx.Create(&LogEntry{Note: "kept"}).Error)
			locked := tx.WithContext(ctx).Scopes(optlock.WithLock("version", "updated_at"))
			err := optlock.UpdateSafely(locked, &notes, map[string]any{"body": "x"}).Error
			require.ErrorIs(t, err, context.Canceled)
			require.NotErrorIs(t, err, optlock.ErrConflict)
			if errors.Is(err, optlock.ErrTxAborted) {
				return err // the write could not be undone: the transaction must not commit
			}
			return nil
		})
		if err == nil {
			var count int64
			require.NoError(t, db.Model(&LogEntry{}).Count(&count).Error)
			assert.EqualValues(t, 1, count, "the caller's other work is committed")
		}
		assert.Equal(t, before, loadNotes(t, db), "no row of the chunked write")
		assert.Equal(t, read, notes, "structs as read")
	}, optlock.WithBindVarLimit(10))
}

// cancellingLogger cancels a context once n statements starting with prefix were sent.
type cancellingLogger struct {
	logger.Interface
	prefix string
	n      int
	seen   int
	cancel context.CancelFunc
}

func (l *cancellingLogger) LogMode(logger.LogLevel) logger.Interface { return l }

func (l *cancellingLogger) Trace(_ context.Context, _ time.Time, fc func() (string, int64), _ error) {
	if sql, _ := fc(); strings.HasPrefix(sql, l.prefix) {
		if l.seen++; l.seen == l.n {
			l.cancel()
		}
	}
}

// sleepShortly waits 10 ms between polls.
func sleepShortly() { time.Sleep(10 * time.Millisecond) }
