package bench

import (
	"testing"

	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/go-optlock/optlock"
)

// GuardedItem is guarded (optlock.Guard): every write of it is lock-checked, as users run it by default.
type GuardedItem struct {
	ID      uint `gorm:"primaryKey"`
	Name    string
	Qty     int
	Version int64
}

func (GuardedItem) TableName() string { return "bench_guarded_items" }

// PlainItem has the same shape and is not guarded: the same calls on it are plain GORM's, with the
// plugin registered or not.
type PlainItem struct {
	ID      uint `gorm:"primaryKey"`
	Name    string
	Qty     int
	Version int64
}

func (PlainItem) TableName() string { return "bench_plain_items" }

// guardedRows is the number of rows in each table; the calls cycle through them.
const guardedRows = 1000

// guardedConfigs are the gorm.Config variants users run: GORM's default, prepared statements, and
// no default transaction.
var guardedConfigs = []struct {
	name string
	cfg  gorm.Config
}{
	{"default", gorm.Config{}},
	{"prepare-stmt", gorm.Config{PrepareStmt: true}},
	{"skip-default-tx", gorm.Config{SkipDefaultTransaction: true}},
}

// BenchmarkGuarded measures what a guarded model costs, and what the plugin costs where it does
// nothing. Per database, per configuration and per call (Save of a read row, Updates of a map,
// First, Create then Delete), three variants on the same connections:
//
//   - plain: GORM without the plugin, on PlainItem (the baseline);
//   - registered: the plugin registered (guarding GuardedItem), the same call on PlainItem;
//   - guarded: the plugin registered, the same call on GuardedItem, lock-checked.
func BenchmarkGuarded(b *testing.B) {
	for _, t := range targets(b) {
		b.Run(t.name, func(b *testing.B) {
			must(b, t.db.Migrator().DropTable(&GuardedItem{}, &PlainItem{}))
			must(b, t.db.AutoMigrate(&GuardedItem{}, &PlainItem{}))
			b.Cleanup(func() { _ = t.db.Migrator().DropTable(&GuardedItem{}, &PlainItem{}) })
			guarded := make([]GuardedItem, guardedRows)
			plain := make([]PlainItem, guardedRows)
			for i := range guarded {
				guarded[i] = GuardedItem{Name: "item", Qty: 1, Version: 1}
				plain[i] = PlainItem{Name: "item", Qty: 1, Version: 1}
			}
			must(b, t.db.CreateInBatches(&guarded, 500).Error)
			must(b, t.db.CreateInBatches(&plain, 500).Error)
			for _, c := range guardedConfigs {
				b.Run(c.name, func(b *testing.B) {
					without := openOver(b, t, c.cfg, false)
					with := openOver(b, t, c.cfg, true)
					for _, call := range guardedCalls(b, guarded, plain) {
						runVariantsOn(b, t, []variant{
							{call.name + "/plain", call.plain(without)},
							{call.name + "/registered", call.plain(with)},
							{call.name + "/guarded", call.guarded(with)},
						}, !c.cfg.PrepareStmt, GuardedItem{}.TableName(), PlainItem{}.TableName())
					}
				})
			}
		})
	}
}

// openOver opens GORM with cfg on the target's counted connections, with the plugin (guarding
// GuardedItem) or without it. With PrepareStmt it opens on the *sql.DB under the counter: GORM's
// prepared statements run inside a transaction only on a *sql.Tx (PreparedStmtTX), and the counter's
// transaction is not one (SQLite then reports "database is locked"), so those variants count no round
// trips.
func openOver(b *testing.B, t target, cfg gorm.Config, plugin bool) *gorm.DB {
	b.Helper()
	cfg.Logger = logger.Discard
	var pool gorm.ConnPool = t.counter
	if cfg.PrepareStmt {
		sqlDB, err := t.counter.GetDBConn()
		must(b, err)
		pool = sqlDB
	}
	db, err := gorm.Open(t.over(pool), &cfg)
	must(b, err)
	if plugin {
		must(b, db.Use(optlock.New(optlock.Guard(&GuardedItem{}))))
	}
	return db
}

// guardedCall is one call, written once for PlainItem and once for GuardedItem.
type guardedCall struct {
	name    string
	plain   func(db *gorm.DB) func()
	guarded func(db *gorm.DB) func()
}

// guardedCalls are the calls BenchmarkGuarded compares. Each cycles through the rows it is given,
// and fails the benchmark unless it wrote (or read) exactly one row.
func guardedCalls(b *testing.B, guarded []GuardedItem, plain []PlainItem) []guardedCall {
	next := func(i *int) int { *i = (*i + 1) % guardedRows; return *i }
	return []guardedCall{
		{"save",
			func(db *gorm.DB) func() {
				i := 0
				return func() { r := &plain[next(&i)]; r.Qty++; wrote(b, db.Save(r), 1) }
			},
			func(db *gorm.DB) func() {
				i := 0
				return func() { r := &guarded[next(&i)]; r.Qty++; wrote(b, db.Save(r), 1) }
			}},
		{"updates",
			func(db *gorm.DB) func() {
				i := 0
				return func() { wrote(b, db.Model(&plain[next(&i)]).Updates(bump()), 1) }
			},
			func(db *gorm.DB) func() {
				i := 0
				return func() { wrote(b, db.Model(&guarded[next(&i)]).Updates(bump()), 1) }
			}},
		{"first",
			func(db *gorm.DB) func() {
				i := 0
				return func() { var r PlainItem; wrote(b, db.First(&r, plain[next(&i)].ID), 1) }
			},
			func(db *gorm.DB) func() {
				i := 0
				return func() { var r GuardedItem; wrote(b, db.First(&r, guarded[next(&i)].ID), 1) }
			}},
		{"create-delete",
			func(db *gorm.DB) func() {
				return func() {
					r := PlainItem{Name: "new", Qty: 1}
					wrote(b, db.Create(&r), 1)
					wrote(b, db.Delete(&r), 1)
				}
			},
			func(db *gorm.DB) func() {
				return func() {
					r := GuardedItem{Name: "new", Qty: 1}
					wrote(b, db.Create(&r), 1)
					wrote(b, db.Delete(&r), 1)
				}
			}},
	}
}
