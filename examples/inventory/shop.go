package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/go-optlock/optlock"
)

// tableName is the demo's own table. It is created (replacing a leftover of an interrupted run)
// and dropped at the end; no other table is touched.
const tableName = "optlock_demo_products"

// Product is what the buyers take from; Version is its lock field.
type Product struct {
	ID      uint `gorm:"primaryKey"`
	Name    string
	Stock   int
	Version int
}

// TableName keeps the demo away from the user's tables.
func (Product) TableName() string { return tableName }

// phase is one run of the demo over the same workload.
type phase int

const (
	phaseNaive   phase = iota // plain read-modify-write, no lock
	phaseLocked               // the same write, Product guarded by optlock, re-run by optlock.Retry
	phaseRestock              // as phaseLocked, while a restocker writes every row with UpdateEach
)

func (p phase) String() string {
	return [...]string{"no lock", "optlock", "restock"}[p]
}

// workload is what every phase runs: the same products, stock, buyers and purchases.
type workload struct {
	products, stock int
	// plan lists, per buyer, the product (an index) of each purchase the buyer makes, in order.
	plan [][]int
	// think is the longest a buyer (or the restocker) spends between reading and writing.
	think time.Duration
	// restocks is how many deliveries the restock phase makes, spread over the buying.
	restocks int
}

// newWorkload draws the purchases: each buyer buys purchases items, each from a product picked at
// random among those with stock left, so no product is ever sold out.
func newWorkload(cfg config, r *rand.Rand) (workload, error) {
	if err := cfg.check(); err != nil {
		return workload{}, err
	}
	left := make([]int, cfg.products)
	open := make([]int, cfg.products)
	for i := range left {
		left[i], open[i] = cfg.stock, i
	}
	w := workload{products: cfg.products, stock: cfg.stock, plan: make([][]int, cfg.buyers), think: cfg.think, restocks: cfg.restocks}
	for range cfg.purchases {
		for b := range w.plan {
			k := r.IntN(len(open))
			i := open[k]
			w.plan[b] = append(w.plan[b], i)
			if left[i]--; left[i] == 0 {
				open = append(open[:k], open[k+1:]...)
			}
		}
	}
	return w, nil
}

// check refuses a workload that cannot run: the purchases must fit the stock.
func (cfg config) check() error {
	switch {
	case cfg.buyers < 1 || cfg.products < 1 || cfg.stock < 1 || cfg.purchases < 1:
		return errors.New("-buyers, -products, -stock and -purchases must be at least 1")
	case cfg.buyers*cfg.purchases > cfg.products*cfg.stock:
		return fmt.Errorf("%d buyers x %d purchases is more than the %d x %d items in stock: lower -purchases or raise -stock",
			cfg.buyers, cfg.purchases, cfg.products, cfg.stock)
	case cfg.restocks < 0 || cfg.think < 0:
		return errors.New("-restocks and -think must not be negative")
	}
	return nil
}

func (w workload) purchases() int {
	n := 0
	for _, p := range w.plan {
		n += len(p)
	}
	return n
}

// restockAmount is what one delivery adds to product i: its own amount, different per product.
func restockAmount(i int) int { return 10 * (i + 1) }

// stats are the running totals of a phase, shared by the buyers, the restocker and the progress line.
type stats struct {
	phase     phase
	planned   int
	started   time.Time
	purchases []atomic.Int64 // per product, as the buyers recorded them
	// conflicts counts writes optlock refused; retries counts re-runs of a read-modify-write. Each
	// refused write is re-run once (Retry gives up only after 1000 attempts), so the two are equal
	// unless a purchase gave up; they are counted apart to show that.
	conflicts, retries atomic.Int64
	retried            atomic.Int64 // purchases that needed at least one retry
	maxAttempts        atomic.Int64 // most attempts one purchase needed
	wasted             atomic.Int64 // nanoseconds buyers spent on refused attempts and backoff
	busy               atomic.Int64 // nanoseconds buyers spent on purchases, all attempts included
	restocksDone       atomic.Int64
}

func (s *stats) bought() int64 {
	var n int64
	for i := range s.purchases {
		n += s.purchases[i].Load()
	}
	return n
}

// line is the progress line: short enough for a 50-column terminal (the progress writer clips it).
func (s *stats) line() string {
	l := fmt.Sprintf("%-7s %5.1fs bought %d/%d", s.phase, time.Since(s.started).Seconds(), s.bought(), s.planned)
	switch s.phase {
	case phaseLocked:
		l += fmt.Sprintf(" conflicts %d", s.conflicts.Load())
	case phaseRestock:
		l += fmt.Sprintf(" restocks %d", s.restocksDone.Load())
	}
	return l
}

// report is the outcome of a phase.
type report struct {
	phase     phase
	buyers    int
	initial   int
	products  []Product // as stored at the end, in id order
	purchases []int64   // per product, recorded by the buyers
	restocked []int64   // per product, added by the restock phase's deliveries
	conflicts int64
	retries   int64
	retried   int64
	maxTries  int64
	wasted    time.Duration // buyers' time on refused attempts and backoff
	busy      time.Duration // buyers' time on purchases
	elapsed   time.Duration
	restock   restockReport
}

// restockReport is what the restocker did.
type restockReport struct {
	deliveries int64 // successful UpdateEach calls
	calls      int64 // UpdateEach calls, refused ones included
	rows       int64 // rows the successful calls wrote (their RowsAffected)
	statements int64 // UPDATE statements sent, refused ones included
	written    int64 // UPDATE statements of the successful calls
	// maxStatements is the most UPDATE statements one call sent.
	maxStatements int64
	conflicts     int64 // calls refused because some row changed since it was read
	retries       int64 // re-runs of the read-modify-write
}

// removed is how much stock product i lost over the phase: initial + restocked - final.
func (r report) removed(i int) int64 {
	return int64(r.initial) + r.restocked[i] - int64(r.products[i].Stock)
}

// lost is how many recorded purchases the stock does not show: writes that were overwritten.
func (r report) lost() int64 {
	var lost int64
	for i := range r.products {
		lost += r.purchases[i] - r.removed(i)
	}
	return lost
}

func sum(xs []int64) int64 {
	var t int64
	for _, x := range xs {
		t += x
	}
	return t
}

// setup (re)creates the demo's table with the workload's products, so every phase starts alike.
func setup(ctx context.Context, db *gorm.DB, w workload) ([]Product, error) {
	db = db.WithContext(ctx)
	if err := db.Migrator().DropTable(&Product{}); err != nil {
		return nil, err
	}
	if err := db.AutoMigrate(&Product{}); err != nil {
		return nil, err
	}
	products := make([]Product, w.products)
	for i := range products {
		products[i] = Product{Name: fmt.Sprintf("product-%d", i+1), Stock: w.stock, Version: 1}
	}
	return products, db.Create(&products).Error
}

// dropTable removes the demo's table.
func dropTable(db *gorm.DB) error {
	return db.Migrator().DropTable(&Product{})
}

// run sets up the products, lets the buyers loose on the plan (with the restocker in the restock
// phase) and reports. progress shows st.line while it runs.
func run(ctx context.Context, db *gorm.DB, w workload, ph phase, prog progress) (report, error) {
	if ph != phaseNaive {
		guarded, err := guardedDB(db)
		if err != nil {
			return report{}, err
		}
		db = guarded
	}
	products, err := setup(ctx, db, w)
	if err != nil {
		return report{}, err
	}
	st := &stats{phase: ph, planned: w.purchases(), purchases: make([]atomic.Int64, len(products))}
	restocked := make([]atomic.Int64, len(products))
	var rr restockReport

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg, buyers sync.WaitGroup
	var once sync.Once
	var firstErr error
	fail := func(err error) {
		once.Do(func() { firstErr = err; cancel() })
	}
	buy := buyChecked
	if ph == phaseNaive {
		buy = buyNaive
	}
	start := make(chan struct{}) // the doors open for every buyer at once
	for _, purchases := range w.plan {
		buyers.Go(func() {
			<-start
			for _, i := range purchases {
				bought, err := buy(ctx, db, products[i].ID, w.think, st)
				if err != nil {
					fail(err)
					return
				}
				if bought {
					st.purchases[i].Add(1)
				}
			}
		})
	}
	buyersDone := make(chan struct{})
	wg.Go(func() {
		buyers.Wait()
		close(buyersDone)
	})
	if ph == phaseRestock {
		wg.Go(func() {
			<-start
			var err error
			if rr, err = restock(ctx, db, w, st, restocked, buyersDone); err != nil {
				fail(err)
			}
		})
	}
	st.started = time.Now()
	stop := prog.show(st.line)
	close(start)
	wg.Wait()
	stop()
	if firstErr != nil {
		return report{}, firstErr
	}

	rep := report{
		phase: ph, buyers: len(w.plan), initial: w.stock, restock: rr, elapsed: time.Since(st.started),
		conflicts: st.conflicts.Load(), retries: st.retries.Load(), retried: st.retried.Load(),
		maxTries: st.maxAttempts.Load(), wasted: time.Duration(st.wasted.Load()),
		busy: time.Duration(st.busy.Load()),
	}
	if err := db.WithContext(ctx).Order("id").Find(&rep.products).Error; err != nil {
		return report{}, err
	}
	for i := range st.purchases {
		rep.purchases = append(rep.purchases, st.purchases[i].Load())
		rep.restocked = append(rep.restocked, restocked[i].Load())
	}
	return rep, nil
}

// think is the time a buyer spends between reading the stock and writing it back.
func think(upTo time.Duration) {
	if upTo > 0 {
		time.Sleep(rand.N(upTo))
	}
}

// buyNaive takes one item with a plain read-modify-write: the last writer wins, and a buyer who
// read the same stock as another overwrites that buyer's purchase. It reports false when the
// product is sold out.
func buyNaive(ctx context.Context, db *gorm.DB, id uint, upTo time.Duration, _ *stats) (bool, error) {
	var p Product
	if err := db.WithContext(ctx).First(&p, id).Error; err != nil {
		return false, err
	}
	if p.Stock == 0 {
		return false, nil
	}
	think(upTo)
	err := db.WithContext(ctx).Model(&p).Update("stock", p.Stock-1).Error
	return err == nil, err
}

// buyChecked takes one item with a lock-checked write. When optlock refuses the write (a conflict:
// the row changed since it was read, nothing was written), optlock.Retry re-runs the whole
// read-modify-write (a retry) with the fresh stock.
func buyChecked(ctx context.Context, db *gorm.DB, id uint, upTo time.Duration, st *stats) (bool, error) {
	bought := false
	began := time.Now()
	var attempts int64
	var lastBegan time.Time
	err := optlock.Retry(ctx, func(ctx context.Context) error {
		if attempts++; attempts > 1 {
			st.retries.Add(1)
		}
		lastBegan = time.Now()
		var p Product
		if err := db.WithContext(ctx).First(&p, id).Error; err != nil {
			return err
		}
		if p.Stock == 0 {
			bought = false
			return nil
		}
		think(upTo)
		// buyNaive's write, word for word: checked here because db guards Product (guardedDB).
		err := db.WithContext(ctx).Model(&p).Update("stock", p.Stock-1).Error
		if errors.Is(err, optlock.ErrConflict) {
			st.conflicts.Add(1)
		}
		bought = err == nil
		return err
	}, optlock.RetryAttempts(1000))
	st.busy.Add(int64(time.Since(began)))
	if attempts > 1 {
		st.retried.Add(1)
		st.wasted.Add(int64(lastBegan.Sub(began)))
	}
	for m := st.maxAttempts.Load(); attempts > m && !st.maxAttempts.CompareAndSwap(m, attempts); m = st.maxAttempts.Load() {
	}
	return bought, err
}

// restock makes w.restocks deliveries while the buyers buy. Each reads every product, adds each its
// own amount, and writes all of them back with optlock.UpdateEach: one checked statement that writes
// every row or, if any row changed since it was read, none; then optlock.Retry re-reads and writes
// again.
func restock(ctx context.Context, db *gorm.DB, w workload, st *stats, restocked []atomic.Int64, buyersDone <-chan struct{}) (restockReport, error) {
	var rr restockReport
	counter := &updateCounter{}
	rdb := db.Session(&gorm.Session{Logger: counter}) // counts the UPDATE statements the restocker sends
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for n := range w.restocks {
		// Delivery n comes when the buyers are (n+1)/(restocks+1) of the way through their purchases
		// (or done).
	wait:
		for due := int64(st.planned * (n + 1) / (w.restocks + 1)); st.bought() < due; {
			select {
			case <-ctx.Done():
				return rr, ctx.Err()
			case <-buyersDone:
				break wait
			case <-tick.C:
			}
		}
		attempts := 0
		err := optlock.Retry(ctx, func(ctx context.Context) error {
			if attempts++; attempts > 1 {
				rr.retries++
			}
			var products []Product
			if err := rdb.WithContext(ctx).Order("id").Find(&products).Error; err != nil {
				return err
			}
			for i := range products {
				products[i].Stock += restockAmount(i)
			}
			before := counter.updates.Load()
			res := optlock.UpdateEach(rdb.WithContext(ctx), &products, "stock")
			sent := counter.updates.Load() - before
			rr.calls++
			rr.statements += sent
			rr.maxStatements = max(rr.maxStatements, sent)
			if errors.Is(res.Error, optlock.ErrConflict) {
				rr.conflicts++
			}
			if res.Error != nil {
				return res.Error
			}
			rr.deliveries++
			rr.written += sent
			rr.rows += res.RowsAffected
			for i := range products {
				restocked[i].Add(int64(restockAmount(i)))
			}
			return nil
		}, optlock.RetryAttempts(1000))
		if err != nil {
			return rr, err
		}
		st.restocksDone.Add(1)
	}
	return rr, nil
}

// updateCounter is a GORM logger that logs nothing and counts the UPDATE statements sent through it
// (GORM traces every statement, and optlock traces each statement it sends itself).
type updateCounter struct{ updates atomic.Int64 }

func (c *updateCounter) LogMode(logger.LogLevel) logger.Interface { return c }
func (c *updateCounter) Info(context.Context, string, ...any)     {}
func (c *updateCounter) Warn(context.Context, string, ...any)     {}
func (c *updateCounter) Error(context.Context, string, ...any)    {}
func (c *updateCounter) Trace(_ context.Context, _ time.Time, fc func() (string, int64), _ error) {
	if sql, _ := fc(); strings.HasPrefix(strings.ToUpper(strings.TrimSpace(sql)), "UPDATE") {
		c.updates.Add(1)
	}
}
