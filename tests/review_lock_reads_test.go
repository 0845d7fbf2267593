package tests

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/go-optlock/optlock"
)

// ReviewCounter is a hot row locked by its version.
type ReviewCounter struct {
	ID      uint `gorm:"primaryKey"`
	Value   int
	Version int64
}

func (ReviewCounter) TableName() string { return "review_counters" }

// ReviewPlain has no lock field.
type ReviewPlain struct {
	ID  uint `gorm:"primaryKey"`
	Qty int
}

func (ReviewPlain) TableName() string { return "review_plains" }

var reviewLockModels = []any{&ReviewCounter{}, &ReviewPlain{}}

func seedReview(t *testing.T, db *gorm.DB) uint {
	t.Helper()
	c := ReviewCounter{Value: 1, Version: 1}
	require.NoError(t, db.Create(&c).Error)
	require.NoError(t, db.Create(&ReviewPlain{ID: c.ID, Qty: 1}).Error)
	return c.ID
}

// runInLockingAttempt runs read in one attempt of Transaction that locks its reads and returns the
// attempt's error and the statements it ran.
func runInLockingAttempt(db *gorm.DB, read func(tx *gorm.DB) error) (error, *statementLog) {
	var log *statementLog
	err := optlock.Transaction(context.Background(), db, func(tx *gorm.DB) error {
		var rec *gorm.DB
		rec, log = recording(tx)
		return read(rec)
	}, optlock.RetryLockAfter(0), optlock.RetryAttempts(1))
	return err, log
}

// GORM builds a *gorm.DB passed as a query argument (a sub-query) by running it through the query
// callbacks in a dry run (statement.go AddVar: subdb.callbacks.Query().Execute): optlock:lock_reads
// must not add FOR UPDATE there, inside statements that are never locked (Count, Raw, Pluck, an
// UPDATE or DELETE of another table), where it would take row locks the caller never asked for.
func TestReviewLockingAttemptNeverLocksInsideUnlockedStatements(t *testing.T) {
	sub := func(tx *gorm.DB, id uint) *gorm.DB {
		return tx.Model(&ReviewCounter{}).Select("id").Where("id = ?", id)
	}
	cases := []struct {
		name string
		read func(tx *gorm.DB, id uint) error
	}{
		{"Count with a subquery", func(tx *gorm.DB, id uint) error {
			var n int64
			return tx.Model(&ReviewPlain{}).Where("id IN (?)", sub(tx, id)).Count(&n).Error
		}},
		{"Raw with a subquery", func(tx *gorm.DB, id uint) error {
			return tx.Raw("SELECT * FROM review_plains WHERE id IN (?)", sub(tx, id)).Scan(&[]ReviewPlain{}).Error
		}},
		{"Pluck with a subquery", func(tx *gorm.DB, id uint) error {
			var qty []int
			return tx.Model(&ReviewPlain{}).Where("id IN (?)", sub(tx, id)).Pluck("qty", &qty).Error
		}},
		{"Update of another table with a subquery", func(tx *gorm.DB, id uint) error {
			return tx.Model(&ReviewPlain{}).Where("id IN (?)", sub(tx, id)).Update("qty", 2).Error
		}},
		{"read of a model without lock field, with a subquery", func(tx *gorm.DB, id uint) error {
			return tx.Where("id IN (?)", sub(tx, id)).Find(&[]ReviewPlain{}).Error
		}},
		{"a subquery as the table (a table expression)", func(tx *gorm.DB, id uint) error {
			return tx.Table("(?) AS c", tx.Model(&ReviewCounter{}).Where("id = ?", id)).Find(&[]ReviewCounter{}).Error
		}},
	}
	eachDB(t, reviewLockModels, func(t *testing.T, db *gorm.DB) {
		id := seedReview(t, db)
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				err, log := runInLockingAttempt(db, func(tx *gorm.DB) error { return tc.read(tx, id) })
				require.NoError(t, err, "statements: %q", log.sqls)
				assert.Zero(t, forUpdates(log), "FOR UPDATE clauses in %q", log.sqls)
			})
		}
	})
}

// The same seen in the database: a Count in a locking attempt, whose sub-query reads
// review_counters, must leave the counter row unlocked: another connection's FOR UPDATE NOWAIT on it
// succeeds.
func TestReviewCountWithSubqueryHoldsNoRowLock(t *testing.T) {
	eachDB(t, reviewLockModels, func(t *testing.T, db *gorm.DB) {
		if !hasRowLocks(db) {
			t.Skip("SQLite has no row locks")
		}
		id := seedReview(t, db)
		var other error
		err := optlock.Transaction(context.Background(), db, func(tx *gorm.DB) error {
			var n int64
			sub := tx.Model(&ReviewCounter{}).Select("id").Where("value = ?", 1)
			if err := tx.Model(&ReviewPlain{}).Where("id IN (?)", sub).Count(&n).Error; err != nil {
				return err
			}
			// db is another connection of the pool.
			other = db.Clauses(clause.Locking{Strength: clause.LockingStrengthUpdate, Options: "NOWAIT"}).
				First(&ReviewCounter{}, id).Error
			return nil
		}, optlock.RetryLockAfter(0), optlock.RetryAttempts(1))
		require.NoError(t, err)
		assert.NoError(t, other, "another connection could not lock the counter row: the Count locked it")
	})
}
