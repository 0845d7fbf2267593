// Package bench compares optlock side by side with plain GORM and gorm.io/plugin/optimisticlock on
// SQLite, PostgreSQL and MariaDB/MySQL. It is a module of its own, so the official plugin and the
// drivers stay out of optlock's go.mod. Run it with ./run.sh (see docs/benchmarks.md).
package bench

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
	"gorm.io/plugin/optimisticlock"

	"github.com/go-optlock/optlock"
)

// Item is locked by optlock through its Version field.
type Item struct {
	ID      uint `gorm:"primaryKey"`
	Name    string
	Qty     int
	Version int64
}

func (Item) TableName() string { return "bench_items" }

// OfficialItem is the same row for gorm.io/plugin/optimisticlock.
type OfficialItem struct {
	ID      uint `gorm:"primaryKey"`
	Name    string
	Qty     int
	Version optimisticlock.Version
}

func (OfficialItem) TableName() string { return "bench_official_items" }

// seed recreates both tables with n rows each and returns them as read.
func seed(b *testing.B, db *gorm.DB, n int) ([]Item, []OfficialItem) {
	b.Helper()
	must(b, db.Migrator().DropTable(&Item{}, &OfficialItem{}))
	must(b, db.AutoMigrate(&Item{}, &OfficialItem{}))
	items := make([]Item, n)
	official := make([]OfficialItem, n)
	for i := range items {
		items[i] = Item{Name: "item", Qty: 1, Version: 1}
		official[i] = OfficialItem{Name: "item", Qty: 1}
	}
	must(b, db.CreateInBatches(&items, 5000).Error)
	must(b, db.CreateInBatches(&official, 5000).Error)
	return items, official
}

func must(b *testing.B, err error) {
	b.Helper()
	if err != nil {
		b.Fatal(err)
	}
}

// wrote fails the benchmark unless res wrote exactly n rows: every variant must do real work.
func wrote(b *testing.B, res *gorm.DB, n int64) {
	b.Helper()
	if res.Error != nil || res.RowsAffected != n {
		b.Fatalf("wrote %d rows (error %v), want %d", res.RowsAffected, res.Error, n)
	}
}

// bump is what every variant writes: a value that always changes, so MySQL, which reports changed
// rather than matched rows, counts every write. A new map each time: GORM and the official plugin
// write into the map they are given.
func bump() map[string]any { return map[string]any{"qty": gorm.Expr("qty + 1")} }

// variant is one way of doing the same write.
type variant struct {
	name  string
	write func()
}

// runVariants runs each variant as a sub-benchmark on the bench_items tables, counting allocations
// and round trips.
func runVariants(b *testing.B, t target, variants []variant) {
	runVariantsOn(b, t, variants, true, Item{}.TableName(), OfficialItem{}.TableName())
}

// runVariantsOn runs each variant as a sub-benchmark, the given tables vacuumed first, counting
// allocations and, when countTrips, round trips.
func runVariantsOn(b *testing.B, t target, variants []variant, countTrips bool, tables ...string) {
	for _, v := range variants {
		b.Run(v.name, func(b *testing.B) {
			vacuum(b, t, tables...)
			b.ReportAllocs()
			t.counter.Reset()
			b.ResetTimer()
			for range b.N {
				v.write()
			}
			b.StopTimer()
			if countTrips {
				reportRoundTrips(b, t)
			}
		})
	}
}

// vacuum lets each variant start from tables without the dead rows the variants before it left
// behind, on PostgreSQL, where they would slow every later variant down (its index scans visit them).
// SQLite and InnoDB update rows in place.
func vacuum(b *testing.B, t target, tables ...string) {
	if t.name != "postgres" {
		return
	}
	conn, err := t.db.DB()
	must(b, err)
	for _, table := range tables {
		_, err := conn.Exec("VACUUM ANALYZE " + table)
		must(b, err)
	}
}

// BenchmarkSingleRow writes one row by primary key, five ways.
func BenchmarkSingleRow(b *testing.B) {
	for _, t := range targets(b) {
		b.Run(t.name, func(b *testing.B) {
			db := t.db
			items, official := seed(b, db, 1)
			item, off := items[0], official[0]
			raw := "UPDATE bench_items SET qty = qty + 1, version = version + 1 WHERE id = ? AND version = ?"
			if t.name == "postgres" {
				raw = "UPDATE bench_items SET qty = qty + 1, version = version + 1 WHERE id = $1 AND version = $2"
			}

			variants := []variant{
				{"raw-conditional-update", func() {
					res, err := t.counter.ExecContext(context.Background(), raw, item.ID, item.Version)
					must(b, err)
					if n, _ := res.RowsAffected(); n != 1 {
						b.Fatalf("raw update wrote %d rows", n)
					}
					item.Version++
				}},
				{"gorm-updates-unlocked", func() {
					wrote(b, db.Model(&item).Updates(bump()), 1)
				}},
				// The same columns written as optlock writes them, unchecked: what writing the lock
				// column costs by itself, apart from checking it.
				{"gorm-updates-version-unchecked", func() {
					wrote(b, db.Model(&item).Updates(map[string]any{"qty": gorm.Expr("qty + 1"), "version": gorm.Expr("version + 1")}), 1)
					item.Version++
				}},
				// The statement optlock sends, built by hand with plain GORM: what the check costs in SQL,
				// apart from the plugin's own work.
				{"gorm-same-checked-sql-by-hand", func() {
					wrote(b, db.Model(&item).Where("version = ?", item.Version).Updates(map[string]any{
						"qty": gorm.Expr("qty + 1"), "version": gorm.Expr("COALESCE(version, 0) + 1")}), 1)
					item.Version++
				}},
				{"official-plugin", func() {
					wrote(b, db.Model(&off).Updates(bump()), 1)
					off.Version.Int64++ // the official plugin does not advance it
				}},
				{"optlock-updatesafely", func() {
					wrote(b, optlock.UpdateSafely(db, &item, bump()), 1)
				}},
				{"optlock-scope-updates", func() {
					wrote(b, db.Scopes(optlock.WithLock()).Model(&item).Updates(bump()), 1)
				}},
			}
			runVariants(b, t, variants)
		})
	}
}

// bulkTableRows is the size of the table BenchmarkBulk writes blocks of: a bulk write touches a part
// of a table, and on PostgreSQL GORM's unchecked "id IN (...)" is planned differently when it covers
// the whole table (BenchmarkForms has both shapes).
const bulkTableRows = 100_000

// BenchmarkBulk writes N rows of a 100 000-row table (a block of consecutive keys in its middle): one
// unchecked UPDATE ... WHERE id IN ?, the official plugin row by row in one transaction, and one
// UpdateSafely of the slice.
func BenchmarkBulk(b *testing.B) {
	for _, t := range targets(b) {
		b.Run(t.name, func(b *testing.B) {
			db := t.db
			allItems, allOfficial := seed(b, db, bulkTableRows)
			for _, n := range []int{10, 100, 1000, 10000} {
				b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
					// Blocks share the slices' memory, so every N sees the versions the others wrote.
					first := bulkTableRows/2 - n/2
					items, official := allItems[first:first+n], allOfficial[first:first+n]
					ids := make([]uint, n)
					for i, it := range items {
						ids[i] = it.ID
					}
					variants := []variant{
						{"gorm-updates-id-in-unlocked", func() {
							wrote(b, db.Model(&Item{}).Where("id IN ?", ids).Updates(bump()), int64(n))
						}},
						{"official-plugin-loop-in-tx", func() {
							must(b, db.Transaction(func(tx *gorm.DB) error {
								for j := range official {
									res := tx.Model(&official[j]).Updates(bump())
									if res.Error != nil || res.RowsAffected != 1 {
										return fmt.Errorf("row %d: %v, %d rows", j, res.Error, res.RowsAffected)
									}
								}
								return nil
							}))
							for j := range official {
								official[j].Version.Int64++
							}
						}},
						{"optlock-updatesafely", func() {
							wrote(b, optlock.UpdateSafely(db, &items, bump()), int64(n))
						}},
					}
					runVariants(b, t, variants)
				})
			}
		})
	}
}

// ConflictItem is Item in a table of its own, for BenchmarkConflict.
type ConflictItem struct {
	ID      uint `gorm:"primaryKey"`
	Name    string
	Qty     int
	Version int64
}

func (ConflictItem) TableName() string { return "bench_conflict_items" }

// pathStats adds up one path's cost over the iterations of BenchmarkConflict.
type pathStats struct {
	ns, allocs, bytes, roundTrips int64
}

// measure runs call once and adds its wall time, allocations and round trips to s. Only call is
// timed; reading the memory statistics around it is not.
func (s *pathStats) measure(t target, call func()) {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	trips := t.counter.Count()
	begin := time.Now()
	call()
	s.ns += time.Since(begin).Nanoseconds()
	s.roundTrips += t.counter.Count() - trips
	runtime.ReadMemStats(&after)
	s.allocs += int64(after.Mallocs - before.Mallocs)
	s.bytes += int64(after.TotalAlloc - before.TotalAlloc)
}

func (s pathStats) report(b *testing.B, path string) {
	n := float64(b.N)
	b.ReportMetric(float64(s.ns)/n, path+"-ns/op")
	b.ReportMetric(float64(s.allocs)/n, path+"-allocs/op")
	b.ReportMetric(float64(s.bytes)/n, path+"-B/op")
	b.ReportMetric(float64(s.roundTrips)/n, path+"-roundtrips/op")
}

// BenchmarkConflict sets the conflict path of a bulk UpdateSafely against its success path, on the
// same table and interleaved call by call, so drift on the machine falls on both alike. Every
// iteration makes one call of each, in alternating order:
//
//   - success: every one of the N rows as stored; all N are written.
//   - conflict: the same rows with one of them stale (its version one behind what is stored). The call
//     must fail with an *OptimisticLockError naming exactly that key, the row changed (not deleted)
//     and its stored version; nothing is written. Its time includes the rollback, the detail query
//     and formatting the error's message.
//
// It reports each path's time, allocations and round trips per call, and conflict/success, the ratio
// of their times. ns/op is one call of each, plus the untimed bookkeeping between them.
func BenchmarkConflict(b *testing.B) {
	for _, t := range targets(b) {
		b.Run(t.name, func(b *testing.B) {
			for _, n := range []int{1000, 10000} {
				b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
					db := t.db
					must(b, db.Migrator().DropTable(&ConflictItem{}))
					must(b, db.AutoMigrate(&ConflictItem{}))
					items := make([]ConflictItem, n)
					for i := range items {
						items[i] = ConflictItem{Name: "item", Qty: 1, Version: 1}
					}
					must(b, db.CreateInBatches(&items, 1000).Error)
					stale := make([]ConflictItem, n)
					k := n / 2 // the stale row

					var success, conflict pathStats
					succeed := func() {
						wrote(b, optlock.UpdateSafely(db, &items, bump()), int64(n))
					}
					fail := func() {
						res := optlock.UpdateSafely(db, &stale, bump())
						var lockErr *optlock.OptimisticLockError
						if !errors.As(res.Error, &lockErr) {
							b.Fatalf("want an *optlock.OptimisticLockError, got %v", res.Error)
						}
						_ = lockErr.Error()
						if len(lockErr.ConflictIDs) != 1 || lockErr.ConflictIDs[0] != any(stale[k].ID) || len(lockErr.Rows) != 1 {
							b.Fatalf("want the conflict to name exactly key %d, got %v", stale[k].ID, lockErr.ConflictIDs)
						}
						if row := lockErr.Rows[0]; lockErr.DetailsErr != nil || row.Deleted || row.Unknown ||
							row.Current["version"] != stale[k].Version+1 {
							b.Fatalf("want key %d changed to version %d, got %+v (details error %v)",
								stale[k].ID, stale[k].Version+1, row, lockErr.DetailsErr)
						}
						if res.RowsAffected != 0 {
							b.Fatalf("a refused write reports %d rows written", res.RowsAffected)
						}
					}
					b.ReportAllocs()
					t.counter.Reset()
					b.ResetTimer()
					// refresh makes the stale copy: every row as now stored, but row k one version behind.
					refresh := func() {
						copy(stale, items)
						stale[k].Version--
					}
					for i := range b.N {
						if i%2 == 0 {
							success.measure(t, succeed)
							refresh()
							conflict.measure(t, fail)
						} else {
							refresh()
							conflict.measure(t, fail)
							success.measure(t, succeed)
						}
					}
					b.StopTimer()
					success.report(b, "success")
					conflict.report(b, "conflict")
					b.ReportMetric(float64(conflict.ns)/float64(success.ns), "conflict/success")
				})
			}
		})
	}
}

// optlockIncrement is one increment with optlock: read, write back checked, retry on conflict with
// Retry's default backoff.
func optlockIncrement(db *gorm.DB) func(ctx context.Context, id uint, retries *atomic.Int64) error {
	return func(ctx context.Context, id uint, retries *atomic.Int64) error {
		return optlock.Retry(ctx, func(ctx context.Context) error {
			var it Item
			if err := db.WithContext(ctx).First(&it, id).Error; err != nil {
				return err
			}
			return optlock.UpdateSafely(db.WithContext(ctx), &it, map[string]any{"qty": it.Qty + 1}).Error
		}, optlock.RetryAttempts(10_000), optlock.RetryNotify(func(int, error) { retries.Add(1) }))
	}
}

// optlockTransactionIncrement is one increment as optlock.Transaction runs it, with opts: read with
// tx.First, write with UpdateSafely(tx, ...), the whole transaction again on a conflict.
func optlockTransactionIncrement(db *gorm.DB, opts ...optlock.RetryOption) func(ctx context.Context, id uint, retries *atomic.Int64) error {
	return func(ctx context.Context, id uint, retries *atomic.Int64) error {
		opts := append([]optlock.RetryOption{optlock.RetryAttempts(10_000), optlock.RetryNotify(func(int, error) { retries.Add(1) })}, opts...)
		return optlock.Transaction(ctx, db, func(tx *gorm.DB) error {
			var it Item
			if err := tx.First(&it, id).Error; err != nil {
				return err
			}
			return optlock.UpdateSafely(tx, &it, map[string]any{"qty": it.Qty + 1}).Error
		}, opts...)
	}
}

// BenchmarkContention has 8 goroutines increment one hot row; an op is one increment. The final
// value is checked: no variant may lose an update.
func BenchmarkContention(b *testing.B) {
	const goroutines = 8
	for _, t := range targets(b) {
		b.Run(t.name, func(b *testing.B) {
			db := t.db
			variants := []struct {
				name      string
				pessimist bool
				increment func(ctx context.Context, id uint, retries *atomic.Int64) error
			}{
				{name: "optlock-retry", increment: optlockIncrement(db)},
				// A single UPDATE is atomic on its own: without GORM's BEGIN and COMMIT an attempt is two
				// round trips, and the window in which another writer can get in is shorter.
				{name: "optlock-retry-skipdefaulttx", increment: optlockIncrement(db.Session(&gorm.Session{SkipDefaultTransaction: true}))},
				// The read and the write in one transaction of optlock.Transaction's, run again whole.
				{name: "optlock-transaction", increment: optlockTransactionIncrement(db)},
				// The hybrid: after one conflict the attempt reads with FOR UPDATE (not on SQLite, which has
				// no row locks), so its write cannot conflict.
				{name: "optlock-transaction-lock-after-1", increment: optlockTransactionIncrement(db, optlock.RetryLockAfter(1))},
				// Every attempt reads with FOR UPDATE: what the locked path costs through optlock, the floor of
				// any hybrid that still starts optimistic.
				{name: "optlock-transaction-lock-after-0", increment: optlockTransactionIncrement(db, optlock.RetryLockAfter(0))},
				// The hybrid with memory: one Contention shared by the goroutines' calls, so the calls after
				// a conflict start locked and only one in ContendedCalls+1 tries optimistically.
				{name: "optlock-transaction-lock-when-contended", increment: optlockTransactionIncrement(db, optlock.RetryLockWhenContended(&optlock.Contention{}))},
				{name: "official-plugin-naive-retry", increment: func(ctx context.Context, id uint, retries *atomic.Int64) error {
					for {
						var it OfficialItem
						if err := db.WithContext(ctx).First(&it, id).Error; err != nil {
							return err
						}
						res := db.WithContext(ctx).Model(&it).Updates(map[string]any{"qty": it.Qty + 1})
						if res.Error != nil {
							return res.Error
						}
						if res.RowsAffected == 1 {
							return nil
						}
						retries.Add(1)
					}
				}},
				{name: "select-for-update", pessimist: true, increment: func(ctx context.Context, id uint, _ *atomic.Int64) error {
					return db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
						var it Item
						if err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).First(&it, id).Error; err != nil {
							return err
						}
						return tx.Model(&it).UpdateColumn("qty", it.Qty+1).Error
					})
				}},
			}
			for _, v := range variants {
				if v.pessimist && t.name == "sqlite" {
					continue // SQLite has no row locks: SELECT ... FOR UPDATE is not SQL it knows
				}
				b.Run(v.name, func(b *testing.B) {
					items, official := seed(b, db, 1)
					id := items[0].ID
					if v.name == "official-plugin-naive-retry" {
						id = official[0].ID
					}
					var retries atomic.Int64
					b.ReportAllocs()
					t.counter.Reset()
					b.ResetTimer()
					var wg sync.WaitGroup
					errs := make(chan error, goroutines)
					for g := range goroutines {
						share := b.N / goroutines
						if g < b.N%goroutines {
							share++
						}
						wg.Add(1)
						go func() {
							defer wg.Done()
							for range share {
								if err := v.increment(context.Background(), id, &retries); err != nil {
									errs <- err
									return
								}
							}
						}()
					}
					wg.Wait()
					b.StopTimer()
					close(errs)
					for err := range errs {
						b.Fatal(err)
					}
					var qty int
					must(b, db.Table(map[bool]string{true: "bench_official_items", false: "bench_items"}[v.name == "official-plugin-naive-retry"]).Select("qty").Where("id = ?", id).Scan(&qty).Error)
					if qty != 1+b.N {
						b.Fatalf("lost updates: qty %d after %d increments", qty, b.N)
					}
					reportRoundTrips(b, t)
					b.ReportMetric(float64(retries.Load())/float64(b.N), "retries/op")
				})
			}
		})
	}
}
