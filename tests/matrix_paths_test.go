package tests

import (
	"context"

	"gorm.io/gorm"

	"github.com/go-optlock/optlock"
)

// matrixPath is one way of writing rows the caller read.
type matrixPath struct {
	name string
	// setup is the plugin the path needs.
	setup pluginSetup
	// oneRow: the path writes the first row only.
	oneRow bool
	kind   pathKind
	// prepare changes the structs as the caller does before the call (for Save and UpdateEach).
	prepare func(rows []MtxItem)
	// write makes the call; lock is the lock field's name.
	write func(ctx context.Context, db *gorm.DB, lock string, rows *[]MtxItem) error
	// rereads: the path reads the rows again itself (Retry), so a stale read still succeeds.
	rereads bool
	// dry: the path means something under Session{DryRun: true} (a transaction of its own does not).
	dry bool
	// keep: the path works on a *gorm.DB kept from before, with a condition of the caller's; plain
	// GORM's Model(&row).Update on a kept statement does not (GORM adds each call's key conditions to
	// the shared statement), and UpdateEach takes no conditions.
	keep bool
}

// pluginSetup is how the plugin is registered for a path.
type pluginSetup struct {
	guarded      bool
	bindVarLimit int
}

type pathKind int

const (
	// checked writes are refused when a row changed since it was read.
	checked pathKind = iota
	// advances: a write without read rows, or a deliberate blind one: never refused, always advances
	// the lock of every row it writes.
	advances
	// deletes are checked deletes.
	deletes
)

var (
	plain   = pluginSetup{}
	guarded = pluginSetup{guarded: true}
	// chunked forces bulk writes into several statements where the form splits at all.
	chunked = pluginSetup{bindVarLimit: 8}
)

func setQty7(rows []MtxItem) {
	for i := range rows {
		rows[i].Qty = 7
	}
}

func qty7() map[string]any { return map[string]any{"qty": 7} }

func ids(rows []MtxItem) []uint {
	out := make([]uint, len(rows))
	for i, r := range rows {
		out[i] = r.ID
	}
	return out
}

var matrixPaths = []matrixPath{
	{name: "UpdateSafely one row", oneRow: true, dry: true, keep: true,
		write: func(_ context.Context, db *gorm.DB, lock string, rows *[]MtxItem) error {
			return optlock.UpdateSafely(db.Scopes(optlock.WithLock(lock)), &(*rows)[0], qty7()).Error
		}},
	{name: "UpdateSafely bulk", dry: true, keep: true,
		write: func(_ context.Context, db *gorm.DB, lock string, rows *[]MtxItem) error {
			return optlock.UpdateSafely(db.Scopes(optlock.WithLock(lock)), rows, qty7()).Error
		}},
	{name: "UpdateSafely bulk chunked", setup: chunked, dry: true, keep: true,
		write: func(_ context.Context, db *gorm.DB, lock string, rows *[]MtxItem) error {
			return optlock.UpdateSafely(db.Scopes(optlock.WithLock(lock)), rows, qty7()).Error
		}},
	{name: "WithLock Updates map", oneRow: true, dry: true,
		write: func(_ context.Context, db *gorm.DB, lock string, rows *[]MtxItem) error {
			return db.Scopes(optlock.WithLock(lock)).Model(&(*rows)[0]).Updates(qty7()).Error
		}},
	{name: "WithLock Updates struct", oneRow: true, dry: true,
		write: func(_ context.Context, db *gorm.DB, lock string, rows *[]MtxItem) error {
			return db.Scopes(optlock.WithLock(lock)).Model(&(*rows)[0]).Updates(MtxItem{Qty: 7}).Error
		}},
	{name: "WithLock Update", oneRow: true, dry: true,
		write: func(_ context.Context, db *gorm.DB, lock string, rows *[]MtxItem) error {
			return db.Scopes(optlock.WithLock(lock)).Model(&(*rows)[0]).Update("qty", 7).Error
		}},
	{name: "WithLock UpdateColumn", oneRow: true, dry: true,
		write: func(_ context.Context, db *gorm.DB, lock string, rows *[]MtxItem) error {
			return db.Scopes(optlock.WithLock(lock)).Model(&(*rows)[0]).UpdateColumn("qty", 7).Error
		}},
	{name: "WithLock UpdateColumns", oneRow: true, dry: true,
		write: func(_ context.Context, db *gorm.DB, lock string, rows *[]MtxItem) error {
			return db.Scopes(optlock.WithLock(lock)).Model(&(*rows)[0]).UpdateColumns(qty7()).Error
		}},
	{name: "WithLock Updates of a slice", dry: true,
		write: func(_ context.Context, db *gorm.DB, lock string, rows *[]MtxItem) error {
			return db.Scopes(optlock.WithLock(lock)).Model(rows).Updates(qty7()).Error
		}},
	{name: "WithLock Save", oneRow: true, prepare: setQty7, dry: true,
		write: func(_ context.Context, db *gorm.DB, lock string, rows *[]MtxItem) error {
			return db.Scopes(optlock.WithLock(lock)).Save(&(*rows)[0]).Error
		}},
	{name: "WithLock Delete one row", oneRow: true, kind: deletes, dry: true,
		write: func(_ context.Context, db *gorm.DB, lock string, rows *[]MtxItem) error {
			return db.Scopes(optlock.WithLock(lock)).Delete(&(*rows)[0]).Error
		}},
	{name: "WithLock Delete of a slice", kind: deletes, dry: true,
		write: func(_ context.Context, db *gorm.DB, lock string, rows *[]MtxItem) error {
			return db.Scopes(optlock.WithLock(lock)).Delete(rows).Error
		}},
	{name: "UpdateEach", prepare: setQty7, dry: true,
		write: func(_ context.Context, db *gorm.DB, lock string, rows *[]MtxItem) error {
			return optlock.UpdateEach(db.Scopes(optlock.WithLock(lock)), rows, "qty").Error
		}},
	{name: "UpdateEach chunked", setup: chunked, prepare: setQty7, dry: true,
		write: func(_ context.Context, db *gorm.DB, lock string, rows *[]MtxItem) error {
			return optlock.UpdateEach(db.Scopes(optlock.WithLock(lock)), rows, "qty").Error
		}},
	{name: "Transaction", keep: true,
		write: func(ctx context.Context, db *gorm.DB, lock string, rows *[]MtxItem) error {
			// Stale rows stay stale: it gives up after two attempts, still a conflict.
			return optlock.Transaction(ctx, db, func(tx *gorm.DB) error {
				return optlock.UpdateSafely(tx.Scopes(optlock.WithLock(lock)), rows, qty7()).Error
			}, optlock.RetryAttempts(2))
		}},
	{name: "Retry re-reading", rereads: true, keep: true,
		write: func(ctx context.Context, db *gorm.DB, lock string, rows *[]MtxItem) error {
			attempt := 0
			return optlock.Retry(ctx, func(ctx context.Context) error {
				if attempt++; attempt > 1 {
					var fresh []MtxItem
					if err := db.WithContext(ctx).Where("id IN ?", ids(*rows)).Order("id").Find(&fresh).Error; err != nil {
						return err
					}
					*rows = fresh
				}
				return optlock.UpdateSafely(db.WithContext(ctx).Scopes(optlock.WithLock(lock)), rows, qty7()).Error
			})
		}},

	{name: "guarded Update", setup: guarded, oneRow: true, dry: true,
		write: func(_ context.Context, db *gorm.DB, _ string, rows *[]MtxItem) error {
			return db.Model(&(*rows)[0]).Update("qty", 7).Error
		}},
	{name: "guarded UpdateColumns", setup: guarded, oneRow: true, dry: true,
		write: func(_ context.Context, db *gorm.DB, _ string, rows *[]MtxItem) error {
			return db.Model(&(*rows)[0]).UpdateColumns(qty7()).Error
		}},
	{name: "guarded Updates of a slice", setup: guarded, dry: true,
		write: func(_ context.Context, db *gorm.DB, _ string, rows *[]MtxItem) error {
			return db.Model(rows).Updates(qty7()).Error
		}},
	{name: "guarded Save", setup: guarded, oneRow: true, prepare: setQty7, dry: true,
		write: func(_ context.Context, db *gorm.DB, _ string, rows *[]MtxItem) error {
			return db.Save(&(*rows)[0]).Error
		}},
	{name: "guarded Delete of a slice", setup: guarded, kind: deletes, dry: true,
		write: func(_ context.Context, db *gorm.DB, _ string, rows *[]MtxItem) error {
			return db.Delete(rows).Error
		}},
	{name: "guarded UpdateSafely bulk", setup: guarded, dry: true, keep: true,
		write: func(_ context.Context, db *gorm.DB, _ string, rows *[]MtxItem) error {
			return optlock.UpdateSafely(db, rows, qty7()).Error
		}},
	{name: "guarded UpdateEach", setup: guarded, prepare: setQty7, dry: true,
		write: func(_ context.Context, db *gorm.DB, _ string, rows *[]MtxItem) error {
			return optlock.UpdateEach(db, rows, "qty").Error
		}},
	{name: "guarded write without read rows", setup: guarded, kind: advances, dry: true,
		write: func(_ context.Context, db *gorm.DB, _ string, rows *[]MtxItem) error {
			return db.Model(&MtxItem{}).Where("id IN ?", ids(*rows)).Update("qty", 7).Error
		}},
	{name: "guarded Unchecked", setup: guarded, oneRow: true, kind: advances, dry: true,
		write: func(_ context.Context, db *gorm.DB, _ string, rows *[]MtxItem) error {
			return db.Scopes(optlock.Unchecked()).Model(&MtxItem{ID: (*rows)[0].ID}).Update("qty", 7).Error
		}},
}
