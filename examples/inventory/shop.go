package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"gorm.io/gorm"

	"github.com/go-optlock/optlock"
)

// Product is what the buyers take from; Version is its lock field.
type Product struct {
	ID      uint `gorm:"primaryKey"`
	Name    string
	Stock   int
	Version int
}

// TableName keeps the demo's table apart from the tests' tables.
func (Product) TableName() string { return "inventory_products" }

// stats are the running totals, shared by the buyers and the progress line.
type stats struct {
	mode      string
	purchases []atomic.Int64 // per product, as the buyers recorded them
	conflicts atomic.Int64
	retries   atomic.Int64
	started   time.Time
}

func (s *stats) line() string {
	var b strings.Builder
	total := int64(0)
	for i := range s.purchases {
		total += s.purchases[i].Load()
	}
	fmt.Fprintf(&b, "[%s] %6.1fs  purchases %5d  conflicts %5d  retries %5d", s.mode,
		time.Since(s.started).Seconds(), total, s.conflicts.Load(), s.retries.Load())
	return b.String()
}

// report is the outcome of a run, per product.
type report struct {
	mode      string
	products  []Product // as stored at the end
	initial   int
	purchases []int64
	conflicts int64
	retries   int64
	elapsed   time.Duration
}

// lost is how many recorded purchases the stock does not show: updates that were overwritten.
func (r report) lost() int64 {
	var lost int64
	for i, p := range r.products {
		lost += r.purchases[i] - int64(r.initial-p.Stock)
	}
	return lost
}

func (r report) print(w io.Writer) {
	fmt.Fprintf(w, "\n%s run: %d purchases in %s, %d conflicts, %d retries\n\n",
		r.mode, sum(r.purchases), r.elapsed.Round(time.Millisecond), r.conflicts, r.retries)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "product\tinitial\tpurchases\tfinal stock\tstock taken\tlost updates\t")
	for i, p := range r.products {
		taken := int64(r.initial - p.Stock)
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t\n", p.Name, r.initial, r.purchases[i], p.Stock, taken, r.purchases[i]-taken)
	}
	tw.Flush()
	if lost := r.lost(); lost == 0 {
		fmt.Fprintln(w, "\ncheck: every purchase is in the stock, no update was lost")
	} else {
		fmt.Fprintf(w, "\ncheck: %d purchases were lost: their writes were overwritten by buyers holding stale reads\n", lost)
	}
}

func sum(xs []int64) int64 {
	var t int64
	for _, x := range xs {
		t += x
	}
	return t
}

// run sets up the products, lets the buyers loose until every product is sold out, and reports.
func run(ctx context.Context, db *gorm.DB, cfg config, progress io.Writer) (report, error) {
	if cfg.buyers < 1 || cfg.products < 1 || cfg.stock < 1 {
		return report{}, errors.New("-buyers, -products and -stock must be at least 1")
	}
	if _, ok := db.Config.Plugins["optlock"]; !ok {
		if err := db.Use(optlock.New()); err != nil {
			return report{}, err
		}
	}
	if err := db.Migrator().DropTable(&Product{}); err != nil {
		return report{}, err
	}
	if err := db.AutoMigrate(&Product{}); err != nil {
		return report{}, err
	}
	products := make([]Product, cfg.products)
	for i := range products {
		products[i] = Product{Name: fmt.Sprintf("product-%d", i+1), Stock: cfg.stock, Version: 1}
	}
	if err := db.Create(&products).Error; err != nil {
		return report{}, err
	}

	mode := "optlock"
	if cfg.naive {
		mode = "naive"
	}
	st := &stats{mode: mode, purchases: make([]atomic.Int64, len(products)), started: time.Now()}
	stop, drawn := make(chan struct{}), make(chan struct{})
	go live(progress, st, stop, drawn)

	buy := buyChecked
	if cfg.naive {
		buy = buyNaive
	}
	var wg sync.WaitGroup
	errs := make(chan error, cfg.buyers)
	for range cfg.buyers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			soldOut := make([]bool, len(products))
			for remaining := len(products); remaining > 0; {
				i := rand.IntN(len(products))
				if soldOut[i] {
					continue
				}
				bought, err := buy(ctx, db, products[i].ID, st)
				if err != nil {
					errs <- err
					return
				}
				if bought {
					st.purchases[i].Add(1)
				} else {
					soldOut[i] = true
					remaining--
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	<-drawn
	close(errs)
	if err := <-errs; err != nil {
		return report{}, err
	}

	rep := report{mode: mode, initial: cfg.stock, conflicts: st.conflicts.Load(), retries: st.retries.Load(), elapsed: time.Since(st.started)}
	if err := db.Order("id").Find(&rep.products).Error; err != nil {
		return report{}, err
	}
	for i := range st.purchases {
		rep.purchases = append(rep.purchases, st.purchases[i].Load())
	}
	return rep, nil
}

// think is the time a buyer spends between reading the stock and writing it back.
func think() { time.Sleep(time.Duration(rand.IntN(500)) * time.Microsecond) }

// buyChecked takes one item with a lock-checked write, re-reading and retrying on conflict.
// It reports false when the product is sold out.
func buyChecked(ctx context.Context, db *gorm.DB, id uint, st *stats) (bool, error) {
	bought := false
	err := optlock.Retry(ctx, func(ctx context.Context) error {
		var p Product
		if err := db.WithContext(ctx).First(&p, id).Error; err != nil {
			return err
		}
		if p.Stock == 0 {
			bought = false
			return nil
		}
		think()
		err := optlock.UpdateSafely(db.WithContext(ctx), &p, map[string]any{"stock": p.Stock - 1}).Error
		if errors.Is(err, optlock.ErrConflict) {
			st.conflicts.Add(1)
		}
		bought = err == nil
		return err
	}, optlock.RetryAttempts(1000), optlock.RetryNotify(func(int, error) { st.retries.Add(1) }))
	return bought, err
}

// buyNaive is the same purchase without a check: the last writer wins.
func buyNaive(ctx context.Context, db *gorm.DB, id uint, _ *stats) (bool, error) {
	var p Product
	if err := db.WithContext(ctx).First(&p, id).Error; err != nil {
		return false, err
	}
	if p.Stock == 0 {
		return false, nil
	}
	think()
	err := db.WithContext(ctx).Model(&p).Update("stock", p.Stock-1).Error
	return err == nil, err
}
