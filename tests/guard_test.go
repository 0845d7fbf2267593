package tests

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/go-optlock/optlock"
)

// Wallet is guarded: every write of it is lock-aware.
type Wallet struct {
	ID      uint `gorm:"primaryKey"`
	Owner   string
	Balance int
	Version int64
}

func (Wallet) TableName() string { return "core_wallets" }

// Ledger is guarded on a field with another name.
type Ledger struct {
	ID       uint `gorm:"primaryKey"`
	Total    int
	Revision int
}

func (Ledger) TableName() string { return "core_ledgers" }

func TestGuardRefusesBadGuards(t *testing.T) {
	cases := []struct {
		name  string
		guard optlock.Option
	}{
		{"nil", optlock.Guard(nil)},
		{"not a pointer", optlock.Guard(Wallet{})},
		{"pointer to a non-struct", optlock.Guard(new(int))},
		{"nil pointer", optlock.Guard((*Wallet)(nil))},
		{"no such field", optlock.Guard(&Wallet{}, "revision")},
		{"model without a lock field", optlock.Guard(&Tag{})},
		{"malformed field name", optlock.Guard(&Wallet{}, "version; DROP TABLE x")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			db, err := openSQLite(t)
			require.NoError(t, err)
			err = db.Use(optlock.New(tc.guard))
			require.ErrorIs(t, err, optlock.ErrInvalidLock, "got %v", err)
		})
	}
}

// Every GORM write method on a guarded model, with the rows the caller read: checked as with
// WithLock, and the version advances in memory.
func TestGuardedWritesWithReadRowsAreChecked(t *testing.T) {
	writes := []struct {
		name  string
		write func(db *gorm.DB, w *Wallet) error
	}{
		{"Save", func(db *gorm.DB, w *Wallet) error { w.Balance++; return db.Save(w).Error }},
		{"Updates map", func(db *gorm.DB, w *Wallet) error {
			return db.Model(w).Updates(map[string]any{"balance": w.Balance + 1}).Error
		}},
		{"Updates struct", func(db *gorm.DB, w *Wallet) error { return db.Model(w).Updates(Wallet{Balance: w.Balance + 1}).Error }},
		{"Update", func(db *gorm.DB, w *Wallet) error { return db.Model(w).Update("balance", w.Balance+1).Error }},
		{"UpdateColumn", func(db *gorm.DB, w *Wallet) error { return db.Model(w).UpdateColumn("balance", w.Balance+1).Error }},
		{"UpdateColumns", func(db *gorm.DB, w *Wallet) error {
			return db.Model(w).UpdateColumns(map[string]any{"balance": w.Balance + 1}).Error
		}},
		{"UpdateSafely", func(db *gorm.DB, w *Wallet) error {
			return optlock.UpdateSafely(db, w, map[string]any{"balance": w.Balance + 1}).Error
		}},
	}
	eachDB(t, []any{&Wallet{}}, func(t *testing.T, db *gorm.DB) {
		for _, w := range writes {
			t.Run(w.name, func(t *testing.T) {
				recreate(t, db, &Wallet{})
				wallet := Wallet{Owner: "ann", Balance: 10, Version: 1}
				require.NoError(t, db.Create(&wallet).Error)
				stale := wallet

				require.NoError(t, w.write(db, &wallet))
				assert.EqualValues(t, 2, wallet.Version, "advanced in memory")
				var stored Wallet
				require.NoError(t, db.First(&stored, wallet.ID).Error)
				assert.Equal(t, wallet, stored)

				err := w.write(db, &stale)
				requireConflict(t, err, wallet.ID)
				require.NoError(t, db.First(&stored, wallet.ID).Error)
				assert.Equal(t, wallet, stored, "the stale write changed nothing and rewound nothing")
			})
		}
	}, optlock.Guard(&Wallet{}))
}

func TestGuardedDeleteWithReadRowsIsChecked(t *testing.T) {
	eachDB(t, []any{&Wallet{}}, func(t *testing.T, db *gorm.DB) {
		wallets := []Wallet{{Owner: "a", Version: 1}, {Owner: "b", Version: 1}}
		require.NoError(t, db.Create(&wallets).Error)
		fresh := wallets[0]
		require.NoError(t, db.Model(&fresh).Update("balance", 5).Error)

		requireConflict(t, db.Delete(&wallets[0]).Error, wallets[0].ID)
		requireConflict(t, db.Delete(&wallets).Error, wallets[0].ID)
		require.NoError(t, db.Delete(&fresh).Error)
		assert.EqualValues(t, 1, countRows(t, db, &Wallet{}))
	}, optlock.Guard(&Wallet{}))
}

// A write of a guarded model without read rows cannot be checked; it advances the version of every
// row it touches, so holders of older reads are refused. Setting the version by hand is refused.
func TestGuardedWritesWithoutReadRowsAdvanceTheLock(t *testing.T) {
	eachDB(t, []any{&Wallet{}}, func(t *testing.T, db *gorm.DB) {
		wallets := []Wallet{{Owner: "a", Version: 1}, {Owner: "a", Version: 5}, {Owner: "b", Version: 1}}
		require.NoError(t, db.Create(&wallets).Error)
		held := wallets[0]

		res := db.Model(&Wallet{}).Where("owner = ?", "a").Updates(map[string]any{"balance": 7})
		require.NoError(t, res.Error)
		assert.EqualValues(t, 2, res.RowsAffected)
		stored := map[uint]Wallet{}
		var rows []Wallet
		require.NoError(t, db.Order("id").Find(&rows).Error)
		for _, r := range rows {
			stored[r.ID] = r
		}
		assert.EqualValues(t, 2, stored[wallets[0].ID].Version)
		assert.EqualValues(t, 6, stored[wallets[1].ID].Version)
		assert.EqualValues(t, 1, stored[wallets[2].ID].Version, "untouched")
		requireConflict(t, db.Model(&held).Update("balance", 1).Error, held.ID)

		err := db.Model(&Wallet{}).Where("owner = ?", "b").Update("version", 0).Error
		require.ErrorIs(t, err, optlock.ErrInvalidLock, "the version cannot be set by hand")
		err = db.Save(&[]Wallet{stored[wallets[2].ID]}).Error
		require.ErrorIs(t, err, optlock.ErrInvalidLock, "Save of a slice is an upsert")

		// A delete by query cannot be checked either; the rows it removes have no lock left to advance.
		require.NoError(t, db.Where("owner = ?", "b").Delete(&Wallet{}).Error)
		assert.EqualValues(t, 2, countRows(t, db, &Wallet{}))
	}, optlock.Guard(&Wallet{}))
}

// Unchecked is a blind write by key: not checked, lock still advanced.
func TestUncheckedWritesByKeyAndAdvances(t *testing.T) {
	eachDB(t, []any{&Wallet{}}, func(t *testing.T, db *gorm.DB) {
		wallet := Wallet{Owner: "a", Version: 3}
		require.NoError(t, db.Create(&wallet).Error)
		held := wallet

		require.NoError(t, db.Scopes(optlock.Unchecked()).Model(&Wallet{ID: wallet.ID}).Update("balance", 42).Error)
		var stored Wallet
		require.NoError(t, db.First(&stored, wallet.ID).Error)
		assert.Equal(t, 42, stored.Balance)
		assert.EqualValues(t, 4, stored.Version)
		requireConflict(t, db.Model(&held).Update("balance", 1).Error, held.ID)
	}, optlock.Guard(&Wallet{}))
}

// A guarded model with a named lock field, and a timestamp-locked guarded model written by a query:
// updated_at moves strictly later even with a frozen clock.
func TestGuardWithNamedFieldAndTimestamp(t *testing.T) {
	eachDB(t, []any{&Ledger{}, &Doc{}}, func(t *testing.T, db *gorm.DB) {
		ledger := Ledger{Total: 1, Revision: 1}
		require.NoError(t, db.Create(&ledger).Error)
		stale := ledger
		require.NoError(t, db.Model(&ledger).Update("total", 2).Error)
		assert.Equal(t, 2, ledger.Revision)
		requireConflict(t, db.Model(&stale).Update("total", 3).Error, ledger.ID)

		frozen := time.Now().Truncate(time.Second)
		stopped := db.Session(&gorm.Session{NowFunc: func() time.Time { return frozen }})
		doc := Doc{Title: "a"}
		require.NoError(t, stopped.Create(&doc).Error)
		held := loadDoc(t, db, doc.ID)
		require.NoError(t, stopped.Model(&Doc{}).Where("id = ?", doc.ID).Update("title", "b").Error)
		after := loadDoc(t, db, doc.ID)
		assert.True(t, after.UpdatedAt.After(held.UpdatedAt), "updated_at moved on: %v then %v", held.UpdatedAt, after.UpdatedAt)
		requireConflict(t, stopped.Model(&held).Update("title", "c").Error, doc.ID)
	}, optlock.Guard(&Ledger{}, "revision"), optlock.Guard(&Doc{}))
}

// Models that are not guarded keep GORM's behaviour exactly.
func TestUnguardedModelsAreUntouched(t *testing.T) {
	eachDB(t, []any{&Item{}}, func(t *testing.T, db *gorm.DB) {
		item := seedItems(t, db, 1)[0]
		stale := item
		require.NoError(t, db.Model(&item).Update("qty", 1).Error)
		stale.Qty = 2
		require.NoError(t, db.Save(&stale).Error, "a stale Save of an unguarded model is GORM's to do")
		assert.EqualValues(t, 1, loadItems(t, db)[item.ID].Version, "GORM does not advance it")
	}, optlock.Guard(&Wallet{}))
}

// Hot is written by checked, query-based and Unchecked writers at once.
type Hot struct {
	ID        uint `gorm:"primaryKey"`
	Checked   int
	Blind     int
	Unchecked int
	Version   int64
}

func (Hot) TableName() string { return "core_hot" }

// Goroutines mix checked read-modify-writes (with Retry), query-based increments and Unchecked writes
// on the same hot rows for a bounded time. Every checked success is in the final state (no lost
// update), every row's version is 1 + the writes that touched it, and no version ever goes back.
func TestGuardedSoakMixedWriters(t *testing.T) {
	duration := 2 * time.Second
	if testing.Short() {
		duration = 300 * time.Millisecond
	}
	eachDB(t, []any{&Hot{}}, func(t *testing.T, db *gorm.DB) {
		rows := make([]Hot, 3)
		for i := range rows {
			rows[i].Version = 1
		}
		require.NoError(t, db.Create(&rows).Error)
		ids := []uint{rows[0].ID, rows[1].ID, rows[2].ID}
		var checked, blind, unchecked [3]atomic.Int64
		var conflicts atomic.Int64
		var failures []error
		var mu sync.Mutex
		fail := func(err error) {
			mu.Lock()
			failures = append(failures, err)
			mu.Unlock()
		}
		deadline := time.Now().Add(duration)
		var wg sync.WaitGroup
		stop := make(chan struct{})
		var backwards atomic.Int64
		go func() { // the monitor: versions never go back
			last := map[uint]int64{}
			for {
				select {
				case <-stop:
					return
				default:
				}
				var seen []Hot
				if db.Find(&seen).Error == nil {
					for _, h := range seen {
						if h.Version < last[h.ID] {
							backwards.Add(1)
						}
						last[h.ID] = h.Version
					}
				}
				time.Sleep(5 * time.Millisecond)
			}
		}()
		for w := range 6 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Now().Before(deadline) {
					i := rand.IntN(len(ids))
					id := ids[i]
					var err error
					switch w % 3 {
					case 0:
						err = optlock.Retry(context.Background(), func(ctx context.Context) error {
							var h Hot
							if err := db.WithContext(ctx).First(&h, id).Error; err != nil {
								return err
							}
							err := db.WithContext(ctx).Model(&h).Update("checked", h.Checked+1).Error
							if errors.Is(err, optlock.ErrConflict) {
								conflicts.Add(1)
							}
							return err
						}, optlock.RetryAttempts(10_000))
						if err == nil {
							checked[i].Add(1)
						}
					case 1:
						err = db.Model(&Hot{}).Where("id = ?", id).Update("blind", gorm.Expr("blind + 1")).Error
						if err == nil {
							blind[i].Add(1)
						}
					case 2:
						err = db.Scopes(optlock.Unchecked()).Model(&Hot{ID: id}).Update("unchecked", gorm.Expr("unchecked + 1")).Error
						if err == nil {
							unchecked[i].Add(1)
						}
					}
					if err != nil && !optlock.IsRetryable(err) {
						fail(err)
					}
				}
			}()
		}
		wg.Wait()
		close(stop)
		require.Empty(t, failures)
		var final []Hot
		require.NoError(t, db.Order("id").Find(&final).Error)
		total := int64(0)
		for i, h := range final {
			assert.EqualValues(t, checked[i].Load(), h.Checked, "row %d: every checked success is there", h.ID)
			assert.EqualValues(t, blind[i].Load(), h.Blind, "row %d", h.ID)
			assert.EqualValues(t, unchecked[i].Load(), h.Unchecked, "row %d", h.ID)
			writes := checked[i].Load() + blind[i].Load() + unchecked[i].Load()
			assert.EqualValues(t, 1+writes, h.Version, "row %d: version is 1 + the writes that touched it", h.ID)
			total += writes
		}
		assert.Zero(t, backwards.Load(), "no version went backwards")
		t.Logf("%s: %d writes in %s (checked %d, query-based %d, unchecked %d), %d conflicts retried, 0 lost",
			db.Dialector.Name(), total, duration, checked[0].Load()+checked[1].Load()+checked[2].Load(),
			blind[0].Load()+blind[1].Load()+blind[2].Load(), unchecked[0].Load()+unchecked[1].Load()+unchecked[2].Load(), conflicts.Load())
	}, optlock.Guard(&Hot{}))
}
