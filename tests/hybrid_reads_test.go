package tests

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/go-optlock/optlock"
)

// hasRowLocks says the database can lock the rows a SELECT reads (SQLite cannot).
func hasRowLocks(db *gorm.DB) bool { return db.Dialector.Name() != "sqlite" }

// forUpdates counts the FOR UPDATE clauses in the statements recorded in log.
func forUpdates(log *statementLog) int {
	log.mu.Lock()
	defer log.mu.Unlock()
	n := 0
	for _, s := range log.sqls {
		n += strings.Count(strings.ToUpper(s), "FOR UPDATE")
	}
	return n
}

// seedHybrid creates one row of each hybrid model and returns the counter's key.
func seedHybrid(t *testing.T, db *gorm.DB) uint {
	t.Helper()
	counter := HybridCounter{Value: 1, Version: 1}
	require.NoError(t, db.Create(&counter).Error)
	require.NoError(t, db.Create(&HybridPlain{ID: counter.ID, Qty: 1}).Error)
	require.NoError(t, db.Create(&HybridRevised{ID: counter.ID, Qty: 1, Revision: 1}).Error)
	require.NoError(t, db.Create(&HybridGuarded{ID: counter.ID, Qty: 1, Revision: 1}).Error)
	return counter.ID
}

// readInLockingAttempt runs read in one attempt of Transaction that locks its reads, on a session
// whose statements it returns; the attempt must succeed.
func readInLockingAttempt(t *testing.T, db *gorm.DB, read func(tx *gorm.DB) error) *statementLog {
	t.Helper()
	var log *statementLog
	err := optlock.Transaction(context.Background(), db, func(tx *gorm.DB) error {
		var rec *gorm.DB
		rec, log = recording(tx)
		return read(rec)
	}, optlock.RetryLockAfter(0), optlock.RetryAttempts(1))
	require.NoError(t, err)
	return log
}

// After k conflicts, Transaction's attempts read with FOR UPDATE (on a database with row locks), and
// their write goes through; before, reads are as the caller wrote them.
func TestRetryLockAfterReadsForUpdateAfterKConflicts(t *testing.T) {
	eachDB(t, hybridModels, func(t *testing.T, db *gorm.DB) {
		for _, k := range []int{1, 2} {
			t.Run(fmt.Sprintf("k = %d", k), func(t *testing.T) {
				recreate(t, db, hybridModels...)
				id := seedHybrid(t, db)
				var locked []int // FOR UPDATE clauses per attempt
				err := optlock.Transaction(context.Background(), db, func(tx *gorm.DB) error {
					rec, log := recording(tx)
					var c HybridCounter
					err := rec.First(&c, id).Error
					locked = append(locked, forUpdates(log))
					if err != nil {
						return err
					}
					if len(locked) <= k {
						return hybridConflict
					}
					return optlock.UpdateSafely(tx, &c, map[string]any{"value": c.Value + 1}).Error
				}, optlock.RetryLockAfter(k), optlock.RetryBackoff(0, time.Millisecond))
				require.NoError(t, err)

				want := make([]int, k+1)
				if hasRowLocks(db) {
					want[k] = 1
				}
				assert.Equal(t, want, locked, "FOR UPDATE per attempt")
				var stored HybridCounter
				require.NoError(t, db.First(&stored, id).Error)
				assert.Equal(t, 2, stored.Value, "the locking attempt's write is committed")
			})
		}
	})
}

// In an attempt that locks its reads, only plain reads of lock-checked models get FOR UPDATE: a
// count, a column, raw SQL, another struct, an expression or a join are left alone, and none fails.
func TestLockingAttemptLocksOnlyPlainReadsOfLockCheckedModels(t *testing.T) {
	cases := []struct {
		name   string
		read   func(tx *gorm.DB, id uint) error
		locked bool
	}{
		{"First", func(tx *gorm.DB, id uint) error { return tx.First(&HybridCounter{}, id).Error }, true},
		{"Find of a slice", func(tx *gorm.DB, id uint) error { return tx.Find(&[]HybridCounter{}, id).Error }, true},
		{"Find of a slice of pointers", func(tx *gorm.DB, id uint) error { return tx.Find(&[]*HybridCounter{}, id).Error }, true},
		{"Select of the model's columns", func(tx *gorm.DB, id uint) error {
			return tx.Select("id, value", "version").Take(&HybridCounter{}, id).Error
		}, true},
		{"Table by name", func(tx *gorm.DB, id uint) error {
			return tx.Table("hybrid_counters").Where("id = ?", id).Find(&[]HybridCounter{}).Error
		}, true},
		{"a model marked with WithLock", func(tx *gorm.DB, id uint) error {
			return tx.Scopes(optlock.WithLock("revision")).First(&HybridRevised{}, id).Error
		}, true},
		{"a guarded model", func(tx *gorm.DB, id uint) error { return tx.First(&HybridGuarded{}, id).Error }, true},

		{"Count", func(tx *gorm.DB, id uint) error {
			var n int64
			return tx.Model(&HybridCounter{}).Where("id = ?", id).Count(&n).Error
		}, false},
		{"Pluck", func(tx *gorm.DB, id uint) error {
			var values []int
			return tx.Model(&HybridCounter{}).Where("id = ?", id).Pluck("value", &values).Error
		}, false},
		{"Raw into the model", func(tx *gorm.DB, id uint) error {
			return tx.Raw("SELECT * FROM hybrid_counters WHERE id = ?", id).Find(&[]HybridCounter{}).Error
		}, false},
		{"Scan", func(tx *gorm.DB, id uint) error {
			return tx.Model(&HybridCounter{}).Where("id = ?", id).Scan(&HybridSummary{}).Error
		}, false},
		{"Find into another struct", func(tx *gorm.DB, id uint) error {
			return tx.Model(&HybridCounter{}).Where("id = ?", id).Find(&[]HybridSummary{}).Error
		}, false},
		{"an aggregate in Select", func(tx *gorm.DB, id uint) error {
			return tx.Select("MAX(value) AS value").Where("id = ?", id).Find(&[]HybridCounter{}).Error
		}, false},
		{"a Select with arguments", func(tx *gorm.DB, id uint) error {
			return tx.Select("id, value + ? AS value, version", 1).Where("id = ?", id).Find(&[]HybridCounter{}).Error
		}, false},
		{"Distinct", func(tx *gorm.DB, id uint) error {
			return tx.Distinct().Where("id = ?", id).Find(&[]HybridCounter{}).Error
		}, false},
		{"Group", func(tx *gorm.DB, id uint) error {
			return tx.Group("id").Where("id = ?", id).Find(&[]HybridCounter{}).Error
		}, false},
		{"an outer join", func(tx *gorm.DB, id uint) error {
			return tx.Joins("LEFT JOIN hybrid_plains ON hybrid_plains.id = hybrid_counters.id").
				Where("hybrid_counters.id = ?", id).Find(&[]HybridCounter{}).Error
		}, false},
		{"a subquery as table", func(tx *gorm.DB, id uint) error {
			return tx.Table("(SELECT * FROM hybrid_counters) AS c").Where("id = ?", id).Find(&[]HybridCounter{}).Error
		}, false},
		{"a model without a lock field", func(tx *gorm.DB, id uint) error { return tx.First(&HybridPlain{}, id).Error }, false},
		{"a model whose lock field no default names", func(tx *gorm.DB, id uint) error {
			return tx.First(&HybridRevised{}, id).Error
		}, false},
	}
	eachDB(t, hybridModels, func(t *testing.T, db *gorm.DB) {
		id := seedHybrid(t, db)
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				log := readInLockingAttempt(t, db, func(tx *gorm.DB) error { return tc.read(tx, id) })
				want := 0
				if tc.locked && hasRowLocks(db) {
					want = 1
				}
				assert.Equal(t, want, forUpdates(log), "FOR UPDATE clauses in %q", log.sqls)
			})
		}
	}, optlock.Guard(&HybridGuarded{}, "revision"))
}

// A read with a locking clause of the caller's keeps it as it is (here NOWAIT): the plugin adds none.
func TestLockingAttemptKeepsTheCallersLockingClause(t *testing.T) {
	eachDB(t, hybridModels, func(t *testing.T, db *gorm.DB) {
		id := seedHybrid(t, db)
		log := readInLockingAttempt(t, db, func(tx *gorm.DB) error {
			return tx.Clauses(clause.Locking{Strength: clause.LockingStrengthUpdate, Options: "NOWAIT"}).First(&HybridCounter{}, id).Error
		})
		if !hasRowLocks(db) {
			assert.Zero(t, forUpdates(log), "FOR UPDATE in %q", log.sqls)
			return
		}
		assert.Equal(t, 1, forUpdates(log), "FOR UPDATE clauses in %q", log.sqls)
		assert.Contains(t, strings.ToUpper(log.find("SELECT")), "FOR UPDATE NOWAIT")
	})
}

// Preload's reads are reads of their own model: in a locking attempt they lock the rows they read too.
func TestLockingAttemptLocksPreloadedRows(t *testing.T) {
	eachDB(t, hybridModels, func(t *testing.T, db *gorm.DB) {
		order := HybridOrder{Version: 1, Lines: []HybridLine{{Qty: 1, Version: 1}, {Qty: 2, Version: 1}}}
		require.NoError(t, db.Create(&order).Error)
		var read HybridOrder
		log := readInLockingAttempt(t, db, func(tx *gorm.DB) error { return tx.Preload("Lines").First(&read, order.ID).Error })
		assert.Len(t, read.Lines, 2)
		want := 0
		if hasRowLocks(db) {
			want = 2 // the order's read and its lines'
		}
		assert.Equal(t, want, forUpdates(log), "FOR UPDATE clauses in %q", log.sqls)
	})
}

// Outside a transaction a FOR UPDATE would lock nothing the write could use: Retry's locking
// attempts read as written.
func TestLockingAttemptOutsideATransactionLocksNothing(t *testing.T) {
	eachDB(t, hybridModels, func(t *testing.T, db *gorm.DB) {
		id := seedHybrid(t, db)
		rec, log := recording(db)
		err := optlock.Retry(context.Background(), func(ctx context.Context) error {
			require.True(t, optlock.LocksReads(ctx))
			var c HybridCounter
			if err := rec.WithContext(ctx).First(&c, id).Error; err != nil {
				return err
			}
			return optlock.UpdateSafely(rec.WithContext(ctx), &c, map[string]any{"value": c.Value + 1}).Error
		}, optlock.RetryLockAfter(0), optlock.RetryAttempts(1))
		require.NoError(t, err)
		assert.Zero(t, forUpdates(log), "FOR UPDATE in %q", log.sqls)
	})
}

// A locked read holds its row until the transaction ends: another connection cannot lock it
// (FOR UPDATE NOWAIT fails). An optimistic attempt's read holds nothing.
func TestLockedReadHoldsTheRowUntilTheTransactionEnds(t *testing.T) {
	cases := []struct {
		name string
		k    int
		held bool
	}{
		{"locking attempt", 0, true},
		{"optimistic attempt", 1, false},
	}
	eachDB(t, hybridModels, func(t *testing.T, db *gorm.DB) {
		if !hasRowLocks(db) {
			t.Skip("SQLite has no row locks")
		}
		id := seedHybrid(t, db)
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				var other error
				err := optlock.Transaction(context.Background(), db, func(tx *gorm.DB) error {
					if err := tx.First(&HybridCounter{}, id).Error; err != nil {
						return err
					}
					// db is another connection of the pool: the transaction holds its own.
					other = db.Clauses(clause.Locking{Strength: clause.LockingStrengthUpdate, Options: "NOWAIT"}).
						First(&HybridCounter{}, id).Error
					return nil
				}, optlock.RetryLockAfter(tc.k), optlock.RetryAttempts(1))
				require.NoError(t, err)
				if tc.held {
					assert.Error(t, other, "another connection locked the row the transaction read")
				} else {
					assert.NoError(t, other)
				}
			})
		}
	})
}
