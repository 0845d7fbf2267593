package tests

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/go-optlock/optlock"
	"github.com/go-optlock/optlock/internal/roundtrip"
)

// roundTrips counts what write sends to the database: statements, BEGIN, COMMIT and ROLLBACK.
func roundTrips(t *testing.T, counter *roundtrip.Counter, write func() error, wantErr bool) int64 {
	t.Helper()
	counter.Reset()
	err := write()
	if wantErr {
		require.Error(t, err)
	} else {
		require.NoError(t, err)
	}
	return counter.Count()
}

// The statement budget, counted at the connection: a lock-checked write of one row costs what plain
// GORM Updates costs; a bulk write costs the same for 10 rows as for 1 000; a conflict costs at most
// two round trips more.
func TestRoundTripBudget(t *testing.T) {
	eachDB(t, []any{&Item{}}, func(t *testing.T, db *gorm.DB) {
		counter, err := roundtrip.Install(db)
		require.NoError(t, err)
		items := seedItems(t, db, 1000)
		values := map[string]any{"qty": gorm.Expr("qty + 1")}

		// The first lock-checked write of a table reads its column types once (SQLite is not asked);
		// the budget below is for every write after it.
		first := roundTrips(t, counter, func() error { return optlock.UpdateSafely(db, &items[0], values).Error }, false)
		catalogRead := int64(1)
		if db.Dialector.Name() == "sqlite" {
			catalogRead = 0
		}
		assert.EqualValues(t, 3+catalogRead, first, "the first write: BEGIN, the column types, UPDATE, COMMIT")

		plain := roundTrips(t, counter, func() error { return db.Model(&items[0]).Updates(values).Error }, false)
		assert.EqualValues(t, 3, plain, "BEGIN, UPDATE, COMMIT")
		safely := roundTrips(t, counter, func() error { return optlock.UpdateSafely(db, &items[0], values).Error }, false)
		assert.Equal(t, plain, safely, "UpdateSafely on one row")
		scoped := roundTrips(t, counter, func() error {
			return db.Scopes(optlock.WithLock()).Model(&items[0]).Updates(values).Error
		}, false)
		assert.Equal(t, plain, scoped, "the scope on Updates")

		for _, n := range []int{10, 100, 1000} {
			batch := items[:n]
			bulk := roundTrips(t, counter, func() error { return optlock.UpdateSafely(db, &batch, values).Error }, false)
			assert.EqualValues(t, 3, bulk, "bulk of %d: BEGIN, UPDATE, COMMIT", n)
			inTx := roundTrips(t, counter, func() error {
				return db.Transaction(func(tx *gorm.DB) error {
					counter.Reset() // count only what the write adds inside the caller's transaction
					err := optlock.UpdateSafely(tx, &batch, values).Error
					assert.EqualValues(t, 3, counter.Count(), "bulk of %d in a transaction: SAVEPOINT, UPDATE, RELEASE", n)
					return err
				})
			}, false)
			assert.Positive(t, inTx)
		}

		stale := append([]Item(nil), items...)
		stale[500].Version--
		conflict := roundTrips(t, counter, func() error { return optlock.UpdateSafely(db, &stale, values).Error }, true)
		assert.LessOrEqual(t, conflict, int64(3+2), "conflict on one row of 1 000: BEGIN, UPDATE, ROLLBACK, SELECT")
		lone := stale[500]
		single := roundTrips(t, counter, func() error { return optlock.UpdateSafely(db, &lone, values).Error }, true)
		assert.LessOrEqual(t, single, plain+2, fmt.Sprintf("single-row conflict: %d round trips", single))
	})
}
