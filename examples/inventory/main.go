// Command inventory is optlock's job in miniature: many concurrent buyers take items from a small
// stock of products, on the same workload twice. First without a lock: each buyer reads the stock,
// thinks, and writes back stock-1, and buyers who read the same stock erase each other's purchases.
// Then with Product guarded by optlock (optlock.Guard): the same plain GORM write is checked, a stale
// one is refused (a conflict) and optlock.Retry re-runs the purchase on the fresh stock, so every
// purchase is in the stock. A third phase restocks every product in one checked statement with
// optlock.UpdateEach while the buyers keep buying. It ends with a comparison: purchases recorded
// against stock removed, and what the retries cost.
//
// The demo works in a table of its own, optlock_demo_products, and drops it at the end.
//
//	go run ./examples/inventory                    # embedded SQLite in a temporary directory
//	go run ./examples/inventory -naive             # only the run without a lock
//	go run ./examples/inventory -locked            # only the run with optlock
//	go run ./examples/inventory -dialect postgres  # OPTLOCK_POSTGRES_DSN, or the tests' local default
//	go run ./examples/inventory -dialect mysql -dsn "root:@tcp(127.0.0.1:3306)/test?parseTime=true"
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"time"

	"gorm.io/driver/mysql"
	"gorm.io/driver/postgres"
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/go-optlock/optlock/internal/testenv"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := realMain(ctx, os.Args[1:], os.Stdout, os.Stderr, progress{w: os.Stderr, tty: isTerminal(os.Stderr)})
	stop()
	os.Exit(code)
}

// config is what the flags choose.
type config struct {
	dialect, dsn                       string
	buyers, products, stock, purchases int
	restocks                           int
	think                              time.Duration
	naive, locked                      bool
}

const usageText = `Usage: go run ./examples/inventory [flags]

Concurrent buyers take items from a few products, on the same workload twice:
first with a plain read-modify-write (no lock), then the same write with the
product guarded by optlock (checked) and optlock.Retry. Then a restocker
writes every product in one checked statement (optlock.UpdateEach) while the
buyers keep buying. It ends with a comparison: purchases recorded against
stock removed, and what retries cost.

The demo works in a table of its own, optlock_demo_products: it creates it
(replacing one an interrupted run left), touches no other table, and drops it
at the end.

Flags:
`

// realMain runs the demo as the flags in args say and returns the exit status: 0 when optlock lost
// no purchase, 1 when it did, 2 when the demo could not run, 130 when it was interrupted.
func realMain(ctx context.Context, args []string, stdout, stderr io.Writer, prog progress) int {
	cfg := config{}
	fs := flag.NewFlagSet("inventory", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usageText)
		fs.PrintDefaults()
	}
	fs.StringVar(&cfg.dialect, "dialect", "sqlite", "database: sqlite, postgres or mysql")
	fs.StringVar(&cfg.dsn, "dsn", "", "data source name; default: for sqlite a file in a temporary\n"+
		"directory, for postgres $OPTLOCK_POSTGRES_DSN or\n"+testenv.DefaultPostgresDSN+
		",\nfor mysql $OPTLOCK_MYSQL_DSN or\n"+testenv.DefaultMySQLDSN)
	fs.IntVar(&cfg.buyers, "buyers", 16, "concurrent buyers")
	fs.IntVar(&cfg.purchases, "purchases", 50, "purchases each buyer makes")
	fs.IntVar(&cfg.products, "products", 3, "products on sale")
	fs.IntVar(&cfg.stock, "stock", 300, "initial stock of each product")
	fs.IntVar(&cfg.restocks, "restocks", 5, "deliveries in the restock phase")
	fs.DurationVar(&cfg.think, "think", 500*time.Microsecond, "longest a buyer thinks between reading and writing")
	fs.BoolVar(&cfg.naive, "naive", false, "run only the buyers without a lock")
	fs.BoolVar(&cfg.locked, "locked", false, "run only the buyers with optlock")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "inventory: unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return 2
	}
	if cfg.naive && cfg.locked {
		fmt.Fprintln(stderr, "inventory: -naive and -locked each choose one run: give one, or neither for the whole demo")
		return 2
	}
	if err := cfg.check(); err != nil {
		fmt.Fprintln(stderr, "inventory:", err)
		return 2
	}

	db, closeDB, err := open(cfg)
	if err != nil {
		fmt.Fprintln(stderr, "inventory:", err)
		return 2
	}
	defer closeDB()
	res, err := demo(ctx, db, cfg, stdout, prog)
	if err != nil && ctx.Err() != nil {
		if de := (dropError{}); errors.As(err, &de) {
			fmt.Fprintf(stderr, "inventory: interrupted; %v\n", de)
		} else {
			fmt.Fprintf(stderr, "inventory: interrupted (table %s dropped)\n", tableName)
		}
		return 130
	}
	if err != nil {
		fmt.Fprintln(stderr, "inventory:", err)
		return 2
	}
	if !res.ok() {
		return 1
	}
	return 0
}

// open connects to the chosen database; SQLite gets a file in a temporary directory by default, the
// servers the same local defaults as the tests.
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
			dsn = testenv.SQLiteDSN(filepath.Join(dir, "shop.db")) // WAL, busy timeout: concurrent buyers queue for the write lock
		}
		dialector = sqlite.Open(dsn)
	case "postgres":
		dialector = postgres.Open(dsnFor(cfg))
	case "mysql":
		dialector = mysql.Open(dsnFor(cfg))
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

// dsnFor is -dsn, or for a server the tests' DSN: $OPTLOCK_POSTGRES_DSN or $OPTLOCK_MYSQL_DSN, else
// the local default.
func dsnFor(cfg config) string {
	switch {
	case cfg.dsn != "":
		return cfg.dsn
	case cfg.dialect == "postgres":
		return testenv.PostgresDSN()
	case cfg.dialect == "mysql":
		return testenv.MySQLDSN()
	}
	return ""
}

// dropError is the failure to drop the demo's table at the end.
type dropError struct{ err error }

func (e dropError) Error() string { return "dropping " + tableName + ": " + e.err.Error() }
func (e dropError) Unwrap() error { return e.err }

// result holds the reports of the phases that ran.
type result struct {
	naive, locked, restock *report
}

// ok reports whether optlock lost no purchase (losing them without a lock is the demo's point).
func (r result) ok() bool {
	return (r.locked == nil || r.locked.lost() == 0) && (r.restock == nil || r.restock.lost() == 0)
}

// demo runs the phases cfg asks for on one workload, writes what happened to out, and drops the
// demo's table at the end.
func demo(ctx context.Context, db *gorm.DB, cfg config, out io.Writer, prog progress) (res result, err error) {
	w, err := newWorkload(cfg, rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())))
	if err != nil {
		return res, err
	}
	defer func() {
		// Also after an interrupt: the table is dropped with a context of its own.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if derr := dropTable(db.WithContext(dctx)); derr != nil {
			err = errors.Join(err, dropError{derr})
		}
	}()

	phases := []phase{phaseNaive, phaseLocked, phaseRestock}
	switch {
	case cfg.restocks == 0 && !cfg.naive && !cfg.locked:
		phases = phases[:2]
	case cfg.naive:
		phases = []phase{phaseNaive}
	case cfg.locked:
		phases = []phase{phaseLocked}
	}
	printHeader(out, cfg, w)
	for n, ph := range phases {
		rep, err := run(ctx, db, w, ph, prog)
		if err != nil {
			return res, fmt.Errorf("%s run: %w", ph, err)
		}
		switch ph {
		case phaseNaive:
			res.naive = &rep
		case phaseLocked:
			res.locked = &rep
		case phaseRestock:
			res.restock = &rep
		}
		printPhase(out, n+1, rep, len(phases) == 1)
	}
	if res.naive != nil && res.locked != nil {
		printComparison(out, res)
	} else {
		printDetails(out, res)
	}
	return res, nil
}
