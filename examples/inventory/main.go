// Command inventory is optlock's job in miniature: many concurrent buyers take items from a small
// stock of products. With optlock every purchase is a checked write, retried on conflict, and the
// stock goes down by exactly the number of purchases. With -naive the same buyers read, think and
// write back without a check, and the stock shows the updates that were lost.
//
//	go run ./examples/inventory                    # embedded SQLite in a temporary directory
//	go run ./examples/inventory -naive             # the same workload without optlock
//	go run ./examples/inventory -dialect postgres -dsn "host=127.0.0.1 user=root dbname=test sslmode=disable"
//	go run ./examples/inventory -dialect mysql -dsn "root:@tcp(127.0.0.1:3306)/test?parseTime=true"
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"gorm.io/driver/mysql"
	"gorm.io/driver/postgres"
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

func main() {
	cfg := config{}
	flag.StringVar(&cfg.dialect, "dialect", "sqlite", "database: sqlite, postgres or mysql")
	flag.StringVar(&cfg.dsn, "dsn", "", "data source name (default: a SQLite file in a temporary directory)")
	flag.IntVar(&cfg.buyers, "buyers", 16, "concurrent buyers")
	flag.IntVar(&cfg.products, "products", 3, "products on sale")
	flag.IntVar(&cfg.stock, "stock", 300, "initial stock of each product")
	flag.BoolVar(&cfg.naive, "naive", false, "buy without optlock: read, think, write back unchecked")
	flag.Parse()

	db, cleanup, err := open(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "inventory:", err)
		os.Exit(2)
	}
	defer cleanup()

	rep, err := run(context.Background(), db, cfg, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "inventory:", err)
		os.Exit(1)
	}
	rep.print(os.Stdout)
	if !cfg.naive && rep.lost() != 0 {
		os.Exit(1)
	}
}

// config is what the flags choose.
type config struct {
	dialect, dsn            string
	buyers, products, stock int
	naive                   bool
}

// open connects to the chosen database; SQLite gets a file in a temporary directory by default.
func open(cfg config) (*gorm.DB, func(), error) {
	gcfg := &gorm.Config{Logger: logger.Discard}
	cleanup := func() {}
	var dialector gorm.Dialector
	switch cfg.dialect {
	case "sqlite":
		dsn := cfg.dsn
		if dsn == "" {
			dir, err := os.MkdirTemp("", "optlock-inventory")
			if err != nil {
				return nil, nil, err
			}
			cleanup = func() { os.RemoveAll(dir) }
			dsn = "file:" + filepath.Join(dir, "shop.db") + "?_journal_mode=WAL&_busy_timeout=10000&_txlock=immediate" // concurrent buyers queue for the write lock
		}
		dialector = sqlite.Open(dsn)
	case "postgres":
		dialector = postgres.Open(cfg.dsn)
	case "mysql":
		dialector = mysql.Open(cfg.dsn)
	default:
		return nil, nil, fmt.Errorf("unknown -dialect %q: use sqlite, postgres or mysql", cfg.dialect)
	}
	db, err := gorm.Open(dialector, gcfg)
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	return db, func() {
		if conn, err := db.DB(); err == nil {
			conn.Close()
		}
		cleanup()
	}, nil
}

// live redraws one progress line on w until stop is closed.
func live(w io.Writer, stats *stats, stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			fmt.Fprintf(w, "\r%s\n", stats.line())
			return
		case <-tick.C:
			fmt.Fprintf(w, "\r%s", stats.line())
		}
	}
}
