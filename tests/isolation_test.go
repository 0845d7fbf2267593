package tests

import (
	"context"
	"database/sql"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/go-optlock/optlock"
)

var isolationLevels = []sql.IsolationLevel{sql.LevelReadCommitted, sql.LevelRepeatableRead, sql.LevelSerializable}

// Inside a caller's transaction at each isolation level: a stale bulk write is a conflict that writes
// nothing, and a fresh one is written.
func TestIsolationLevelsInTheCallersTransaction(t *testing.T) {
	eachDB(t, []any{&Item{}}, func(t *testing.T, db *gorm.DB) {
		if db.Dialector.Name() == "sqlite" {
			t.Skip("SQLite transactions are serializable, with no level to choose")
		}
		for _, level := range isolationLevels {
			t.Run(level.String(), func(t *testing.T) {
				recreate(t, db, &Item{})
				items := seedItems(t, db, 5)
				// InnoDB's SERIALIZABLE turns reads into shared locks: another writer waits for the
				// transaction to end, so a snapshot cannot go stale inside it.
				if level != sql.LevelSerializable || db.Dialector.Name() != "mysql" {
					staleBulkWriteInTransaction(t, db, level, items[2].ID)
				}

				fresh := db.Begin(&sql.TxOptions{Isolation: level})
				require.NoError(t, fresh.Error)
				var rows []Item
				require.NoError(t, fresh.Order("id").Find(&rows).Error)
				require.NoError(t, optlock.UpdateSafely(fresh, &rows, map[string]any{"qty": 7}).Error)
				require.NoError(t, fresh.Commit().Error)
				for _, it := range loadItems(t, db) {
					assert.Equal(t, 7, it.Qty)
				}
			})
		}
	})
}

// staleBulkWriteInTransaction reads all items in a transaction at level, lets another writer change
// row changed, then writes the snapshot back: a conflict naming that row, and nothing written even
// though the transaction commits; or, where the database itself refuses the write with a
// serialization failure (PostgreSQL above READ COMMITTED), ErrTxAborted, and the transaction is
// rolled back.
func staleBulkWriteInTransaction(t *testing.T, db *gorm.DB, level sql.IsolationLevel, changed uint) {
	t.Helper()
	tx := db.Begin(&sql.TxOptions{Isolation: level})
	require.NoError(t, tx.Error)
	defer tx.Rollback()
	var mine []Item
	require.NoError(t, tx.Order("id").Find(&mine).Error) // the snapshot, read in the transaction
	bumpBehindTheirBack(t, db, changed)
	before := loadItems(t, db)

	err := optlock.UpdateSafely(tx, &mine, map[string]any{"qty": 0}).Error
	if errors.Is(err, optlock.ErrTxAborted) {
		require.NotErrorIs(t, err, optlock.ErrConflict)
		require.True(t, isSerializationFailure(err), "the database's own error stays reachable: %v", err)
		require.NoError(t, tx.Rollback().Error)
	} else {
		requireConflict(t, err, changed)
		_ = tx.Commit().Error // may itself fail under SERIALIZABLE; either way nothing of the batch is in
	}
	assert.Equal(t, before, loadItems(t, db))
}

// isSerializationFailure reports PostgreSQL 40001 or 40P01, or MySQL 1213.
func isSerializationFailure(err error) bool {
	var pgErr *pgconn.PgError
	return isDeadlock(err) || (errors.As(err, &pgErr) && pgErr.Code == "40001")
}

// isDeadlock reports a database deadlock: PostgreSQL 40P01, MySQL 1213.
func isDeadlock(err error) bool {
	var pgErr *pgconn.PgError
	var myErr *mysql.MySQLError
	return (errors.As(err, &pgErr) && pgErr.Code == "40P01") || (errors.As(err, &myErr) && myErr.Number == 1213)
}

// Two writers update the same rows in bulk, one passing them in reverse order, again and again. The
// rows are locked in primary-key order whatever order they are given in, so they never deadlock, and
// with retries no write is lost.
func TestOverlappingBulkWritersDoNotDeadlock(t *testing.T) {
	overlappingBulkWriters(t, seedOverlapItems, "id", func(it Item) int { return it.Qty })
}

// Split into chunks (a small bind-parameter limit), the rows are still locked in key order: chunks are
// cut from the rows sorted by key, not in the order each caller passed them. (Stocks have a two-column
// key, which no form binds as a fixed number of parameters, so their writes are split everywhere.)
func TestOverlappingChunkedBulkWritersDoNotDeadlock(t *testing.T) {
	overlappingBulkWriters(t, func(t *testing.T, db *gorm.DB) {
		stocks := make([]Stock, overlapRows)
		for i := range stocks {
			stocks[i] = Stock{Warehouse: []string{"north", "south"}[i%2], SKU: i + 1, Qty: 10, Version: 1}
		}
		require.NoError(t, db.Create(&stocks).Error)
	}, "warehouse, sku", func(s Stock) int { return s.Qty }, optlock.WithBindVarLimit(30))
}

const overlapRows = 40

func seedOverlapItems(t *testing.T, db *gorm.DB) { seedItems(t, db, overlapRows) }

// overlappingBulkWriters runs two writers over all rows of T's table, each starting with qty 10.
func overlappingBulkWriters[T any](t *testing.T, seed func(*testing.T, *gorm.DB), keyOrder string, qty func(T) int, opts ...optlock.Option) {
	const rounds = 25
	var model T
	eachDB(t, []any{&model}, func(t *testing.T, db *gorm.DB) {
		seed(t, db)
		var deadlocks, retries atomic.Int64
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for w := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range rounds {
					err := optlock.Retry(context.Background(), func(ctx context.Context) error {
						var rows []T
						if err := db.WithContext(ctx).Order(keyOrder).Find(&rows).Error; err != nil {
							return err
						}
						if w == 1 {
							slices.Reverse(rows)
						}
						return optlock.UpdateSafely(db.WithContext(ctx), &rows, map[string]any{"qty": gorm.Expr("qty + 1")}).Error
					}, optlock.RetryAttempts(1000), optlock.RetryNotify(func(_ int, err error) {
						retries.Add(1)
						if isDeadlock(err) {
							deadlocks.Add(1)
						}
					}))
					if err != nil {
						errs[w] = err
						return
					}
				}
			}()
		}
		wg.Wait()
		require.NoError(t, errs[0])
		require.NoError(t, errs[1])
		assert.Zero(t, deadlocks.Load(), "deadlocks between overlapping bulk writes")
		var rows []T
		require.NoError(t, db.Find(&rows).Error)
		require.Len(t, rows, overlapRows)
		for _, row := range rows {
			assert.Equal(t, 10+2*rounds, qty(row), "no lost write")
		}
		t.Logf("%d bulk writes of %d rows, %d retries, %d deadlocks", 2*rounds, overlapRows, retries.Load(), deadlocks.Load())
	}, opts...)
}
