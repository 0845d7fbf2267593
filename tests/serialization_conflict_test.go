package tests

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/go-optlock/optlock"
)

// SerItem is the model of the serialization-failure tests (own table).
type SerItem struct {
	ID      uint `gorm:"primaryKey"`
	Qty     int
	Version int64
}

func (SerItem) TableName() string { return "ser_items" }

// SerWeight gives the other writer's transaction weight, so InnoDB picks the caller's as the deadlock
// victim.
type SerWeight struct{ ID uint }

func (SerWeight) TableName() string { return "ser_weights" }

// serPath is one lock-checked write of all the rows it is given.
type serPath struct {
	name  string
	bulk  bool // a single row cannot deadlock with one other writer on MariaDB
	write func(db *gorm.DB, rows []SerItem) error
}

var serPaths = []serPath{
	{"UpdateSafely one row", false, func(db *gorm.DB, rows []SerItem) error {
		return optlock.UpdateSafely(db, &rows[0], map[string]any{"qty": 7}).Error
	}},
	{"WithLock Updates one row", false, func(db *gorm.DB, rows []SerItem) error {
		return db.Scopes(optlock.WithLock()).Model(&rows[0]).Updates(map[string]any{"qty": 7}).Error
	}},
	{"UpdateSafely slice", true, func(db *gorm.DB, rows []SerItem) error {
		return optlock.UpdateSafely(db, &rows, map[string]any{"qty": 7}).Error
	}},
	{"UpdateEach", true, func(db *gorm.DB, rows []SerItem) error {
		for i := range rows {
			rows[i].Qty = 7
		}
		return optlock.UpdateEach(db, &rows, "qty").Error
	}},
	{"WithLock Delete slice", true, func(db *gorm.DB, rows []SerItem) error {
		return db.Scopes(optlock.WithLock()).Delete(&rows).Error
	}},
}

// TestSerializationFailureOutsideATransactionIsAnOptimisticLockError: when the database itself refuses
// a lock-checked write because of a concurrent transaction (PostgreSQL 40001 under REPEATABLE READ,
// MariaDB's deadlock 1213) and the caller has no transaction of its own, the README's error switch
// must file it as a conflict: errors.As reaches an *OptimisticLockError naming every refused key, and
// the database's error; nothing is written and the caller's pool is left idle.
func TestSerializationFailureOutsideATransactionIsAnOptimisticLockError(t *testing.T) {
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			if d.name == "sqlite" {
				t.Skip("SQLite serializes writers: it reports neither serialization failures nor deadlocks")
			}
			for _, skip := range []bool{false, true} {
				for _, path := range serPaths {
					if d.name == "mysql" && !path.bulk {
						continue
					}
					t.Run(fmt.Sprintf("%s/SkipDefaultTransaction=%v", path.name, skip), func(t *testing.T) {
						observer := openObserver(t, d)
						recreate(t, observer, &SerItem{}, &SerWeight{})
						t.Cleanup(func() { _ = observer.Migrator().DropTable(&SerItem{}, &SerWeight{}) })
						var reported []*optlock.OptimisticLockError
						c := openCaller(t, d, observer, &gorm.Config{SkipDefaultTransaction: skip}, func(dsn string) string {
							if d.name == "postgres" {
								return withPostgresParam(dsn, "default_transaction_isolation", "'repeatable read'")
							}
							return dsn
						}, optlock.OnConflict(func(_ context.Context, err *optlock.OptimisticLockError) {
							reported = append(reported, err)
						}))
						t.Cleanup(func() { endLeftTransactions(observer, c.pool, c.appName) })
						conflict := runSerializationFailure(t, c, path)
						assert.Equal(t, []*optlock.OptimisticLockError{conflict}, reported, "OnConflict hears of it")
					})
				}
			}
		})
	}
}

func runSerializationFailure(t *testing.T, c configured, path serPath) *optlock.OptimisticLockError {
	seeded := []SerItem{{Qty: 1, Version: 1}, {Qty: 2, Version: 1}, {Qty: 3, Version: 1}}
	require.NoError(t, c.observer.Create(&seeded).Error)
	var rows []SerItem
	require.NoError(t, c.db.Order("id").Find(&rows).Error)
	if !path.bulk {
		rows = rows[len(rows)-1:]
	}
	last := rows[len(rows)-1]

	// Another writer holds the last row, then the caller's write waits for it.
	other := c.observer.Begin()
	require.NoError(t, other.Error)
	defer other.Rollback()
	if c.db.Dialector.Name() == "mysql" {
		weights := make([]SerWeight, 200)
		require.NoError(t, other.Create(&weights).Error)
	}
	require.NoError(t, other.Exec("UPDATE ser_items SET qty = qty + 100, version = version + 1 WHERE id = ?", last.ID).Error)

	written := append([]SerItem(nil), rows...)
	done := make(chan error, 1)
	go func() { done <- path.write(c.db, written) }()
	waitForCallerLockWait(t, c, done)

	if c.db.Dialector.Name() == "mysql" {
		// The caller holds the first rows and waits for the last: taking the first closes the cycle,
		// and InnoDB rolls back the lighter transaction, the caller's.
		require.NoError(t, other.Exec("UPDATE ser_items SET qty = qty + 100 WHERE id = ?", rows[0].ID).Error)
	}
	require.NoError(t, other.Commit().Error)
	err := <-done

	require.Error(t, err)
	assert.ErrorIs(t, err, optlock.ErrConflict)
	assert.NotErrorIs(t, err, optlock.ErrTxAborted, "the caller has no transaction to abort")
	assert.True(t, optlock.IsRetryable(err))
	var conflict *optlock.OptimisticLockError
	require.True(t, errors.As(err, &conflict), "the README's switch: errors.As(err, &conflict) for every conflict; got %T: %v", err, err)
	want := make([]any, len(rows))
	for i, r := range rows {
		want[i] = r.ID
	}
	assert.ElementsMatch(t, want, conflict.ConflictIDs, "every refused key is named")
	require.Len(t, conflict.Rows, len(rows))
	for _, r := range conflict.Rows {
		assert.True(t, r.Unknown, "row %v: which rows changed is not known", r.ID)
	}
	assert.ErrorIs(t, conflict, conflict.DatabaseErr)
	if c.db.Dialector.Name() == "postgres" {
		var pgErr *pgconn.PgError
		require.ErrorAs(t, err, &pgErr, "the database's error stays reachable")
		assert.Contains(t, []string{"40001", "40P01"}, pgErr.Code)
	} else {
		var myErr *mysql.MySQLError
		require.ErrorAs(t, err, &myErr, "the database's error stays reachable")
		assert.EqualValues(t, 1213, myErr.Number)
	}

	// Nothing of the caller's write: only the other writer's change is stored.
	var stored []SerItem
	require.NoError(t, c.observer.Order("id").Find(&stored).Error)
	for _, s := range stored {
		want := seeded[s.ID-seeded[0].ID]
		want.ID = s.ID
		if s.ID == last.ID {
			want.Qty += 100
			want.Version++
		}
		if c.db.Dialector.Name() == "mysql" && s.ID == rows[0].ID {
			want.Qty += 100
		}
		assert.Equal(t, want, s, "row %d", s.ID)
	}
	for i := range rows {
		assert.Equal(t, rows[i].Version, written[i].Version, "row %d: the struct's version is as it was", rows[i].ID)
	}
	c.requireIdle(t)
	return conflict
}

// waitForCallerLockWait returns once the caller's write waits for the other writer's row lock.
func waitForCallerLockWait(t *testing.T, c configured, done chan error) {
	t.Helper()
	query := "SELECT count(*) FROM pg_stat_activity WHERE application_name = ? AND wait_event_type = 'Lock'"
	args := []any{c.appName}
	if c.db.Dialector.Name() == "mysql" {
		// MariaDB's innodb_trx does not reliably list a statement waiting inside the range scan of a
		// row-value IN: a statement on the table that has run for a while is the caller's, waiting.
		query = `SELECT count(*) FROM information_schema.processlist
			WHERE db = DATABASE() AND id <> CONNECTION_ID() AND info LIKE ? AND time_ms > 300`
		args = []any{"%ser_items%"}
	}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-done:
			t.Fatalf("the caller's write ended (%v) instead of waiting for the other writer's row lock", err)
		default:
		}
		var waiting int
		require.NoError(t, c.observer.Raw(query, args...).Scan(&waiting).Error)
		if waiting > 0 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	var sessions []map[string]any
	activity := "SELECT pid, state, wait_event_type, left(query, 120) AS query FROM pg_stat_activity WHERE datname = current_database()"
	if c.db.Dialector.Name() == "mysql" {
		activity = "SELECT id, command, state, left(info, 120) AS info FROM information_schema.processlist WHERE db = DATABASE()"
	}
	c.observer.Raw(activity).Scan(&sessions)
	t.Fatalf("the caller's write never waited for the other writer's row lock; sessions: %v", sessions)
}
