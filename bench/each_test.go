package bench

import (
	"errors"
	"fmt"
	"testing"

	"gorm.io/gorm"

	"github.com/go-optlock/optlock"
)

// EachItem is Item in a table of its own, for BenchmarkEach.
type EachItem struct {
	ID      uint `gorm:"primaryKey"`
	Name    string
	Qty     int
	Version int64
}

func (EachItem) TableName() string { return "bench_each_items" }

// readEachItems recreates bench_each_items with n rows and returns them as read back.
func readEachItems(b *testing.B, db *gorm.DB, n int) []EachItem {
	b.Helper()
	must(b, db.Migrator().DropTable(&EachItem{}))
	must(b, db.AutoMigrate(&EachItem{}))
	seeded := make([]EachItem, n)
	for i := range seeded {
		seeded[i] = EachItem{Name: "item", Qty: 1, Version: 1}
	}
	must(b, db.CreateInBatches(&seeded, 1000).Error)
	var rows []EachItem
	must(b, db.Order("id").Find(&rows).Error)
	if len(rows) != n {
		b.Fatalf("read %d rows, want %d", len(rows), n)
	}
	return rows
}

// changeEach gives every row a new qty, each its own: row j moves by 1 + j%7, so every write is real
// (MySQL counts changed rows only) and no two neighbours get the same change.
func changeEach(rows []EachItem) {
	for j := range rows {
		rows[j].Qty += 1 + j%7
	}
}

// sameAsStored fails the benchmark unless every row is stored with the qty and version rows hold.
func sameAsStored(b *testing.B, db *gorm.DB, rows []EachItem) {
	b.Helper()
	var stored []EachItem
	must(b, db.Order("id").Find(&stored).Error)
	if len(stored) != len(rows) {
		b.Fatalf("%d rows stored, want %d", len(stored), len(rows))
	}
	for j := range rows {
		if s, r := stored[j], rows[j]; s.ID != r.ID || s.Qty != r.Qty || s.Version != r.Version {
			b.Fatalf("row %d stored as qty %d version %d, in memory qty %d version %d", r.ID, s.Qty, s.Version, r.Qty, r.Version)
		}
	}
}

// maxEachRoundTrips is UpdateEach's statement budget for any N: BEGIN, at most 3 statements, COMMIT.
const maxEachRoundTrips = 5

// BenchmarkEach writes back N rows that were read and each changed differently (a new qty per row),
// four ways, on one table (bench_each_items) and the same slice of rows:
//
//   - optlock-updatesafely-loop-in-tx: one optlock.UpdateSafely per row inside db.Transaction; every
//     call must write its row.
//   - gorm-save-loop-in-tx-unchecked: plain GORM Save per row inside a transaction, on a *gorm.DB
//     without the optlock plugin (same connections): the unchecked floor users write today.
//   - optlock-updateeach: optlock.UpdateEach(db, &rows, "qty"); it must write all N rows within
//     maxEachRoundTrips round trips.
//   - optlock-updateeach-conflict: the same call with one row (N/2) one version behind, paired call by
//     call with a successful call (alternating order), like BenchmarkConflict. The conflict must be an
//     *optlock.OptimisticLockError naming exactly that key, with nothing written. It reports each
//     path's time and round trips per call and conflict/success, the ratio of their times.
//
// Every iteration changes every row's qty first. After each variant the stored rows are compared with
// the slice (untimed). Round trips are counted at the connection (BEGIN and COMMIT included).
func BenchmarkEach(b *testing.B) {
	for _, t := range targets(b) {
		b.Run(t.name, func(b *testing.B) {
			db, plain := t.db, t.plain
			// Dropped here, not with the other tables in targets: a benchmark of another family running
			// at the same time (on the same servers) leaves this table alone.
			b.Cleanup(func() { _ = db.Migrator().DropTable(&EachItem{}) })
			for _, n := range []int{10, 100, 1000, 10000} {
				b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
					rows := readEachItems(b, db, n)
					// Untimed: the first UpdateEach of a model and table in a process reads the table's
					// column types (PostgreSQL), once; every call after it is what is measured.
					changeEach(rows)
					wrote(b, optlock.UpdateEach(db, &rows, "qty"), int64(n))
					variants := []variant{
						{"optlock-updatesafely-loop-in-tx", func() {
							changeEach(rows)
							must(b, db.Transaction(func(tx *gorm.DB) error {
								for j := range rows {
									res := optlock.UpdateSafely(tx, &rows[j], map[string]any{"qty": rows[j].Qty})
									if res.Error != nil || res.RowsAffected != 1 {
										return fmt.Errorf("row %d: %v, %d rows written", rows[j].ID, res.Error, res.RowsAffected)
									}
								}
								return nil
							}))
						}},
						{"gorm-save-loop-in-tx-unchecked", func() {
							changeEach(rows)
							must(b, plain.Transaction(func(tx *gorm.DB) error {
								for j := range rows {
									res := tx.Save(&rows[j])
									if res.Error != nil || res.RowsAffected != 1 {
										return fmt.Errorf("row %d: %v, %d rows written", rows[j].ID, res.Error, res.RowsAffected)
									}
								}
								return nil
							}))
						}},
						{"optlock-updateeach", func() {
							changeEach(rows)
							before := t.counter.Count()
							wrote(b, optlock.UpdateEach(db, &rows, "qty"), int64(n))
							if trips := t.counter.Count() - before; trips > maxEachRoundTrips {
								b.Fatalf("UpdateEach of %d rows took %d round trips, want at most %d", n, trips, maxEachRoundTrips)
							}
						}},
					}
					for _, v := range variants {
						b.Run(v.name, func(b *testing.B) {
							b.ReportAllocs()
							t.counter.Reset()
							b.ResetTimer()
							for range b.N {
								v.write()
							}
							b.StopTimer()
							reportRoundTrips(b, t)
							sameAsStored(b, db, rows)
						})
					}
					b.Run("optlock-updateeach-conflict", func(b *testing.B) {
						k := n / 2 // the stale row
						var success, conflict pathStats
						succeed := func() {
							wrote(b, optlock.UpdateEach(db, &rows, "qty"), int64(n))
						}
						fail := func() {
							res := optlock.UpdateEach(db, &rows, "qty")
							var lockErr *optlock.OptimisticLockError
							if !errors.As(res.Error, &lockErr) {
								b.Fatalf("want an *optlock.OptimisticLockError, got %v", res.Error)
							}
							_ = lockErr.Error()
							if len(lockErr.ConflictIDs) != 1 || lockErr.ConflictIDs[0] != any(rows[k].ID) {
								b.Fatalf("want the conflict to name exactly key %d, got %v", rows[k].ID, lockErr.ConflictIDs)
							}
							if res.RowsAffected != 0 {
								b.Fatalf("a refused write reports %d rows written", res.RowsAffected)
							}
						}
						stale := func() {
							changeEach(rows)
							rows[k].Version-- // one behind what is stored
							conflict.measure(t, fail)
							rows[k].Version++ // a refused write leaves the structs as they were
						}
						fresh := func() {
							changeEach(rows)
							success.measure(t, succeed)
						}
						b.ReportAllocs()
						t.counter.Reset()
						b.ResetTimer()
						for i := range b.N {
							if i%2 == 0 {
								fresh()
								stale()
							} else {
								stale()
								fresh()
							}
						}
						b.StopTimer()
						success.report(b, "success")
						conflict.report(b, "conflict")
						b.ReportMetric(float64(conflict.ns)/float64(success.ns), "conflict/success")
						// The refused calls wrote nothing: one more write makes memory and table agree.
						succeed()
						sameAsStored(b, db, rows)
					})
				})
			}
		})
	}
}
