// Command rest is a small JSON API over optlock: GET, PUT, PATCH and DELETE of /items/{id} on Go's
// pattern ServeMux, with ETag and If-Match carrying each item's version (package optlockhttp). A PUT
// of a stale copy is 412 Precondition Failed with the current ETag, a write without If-Match is 428,
// and nothing is ever lost or inserted by mistake.
//
//	go run ./examples/rest                       # SQLite in a temporary directory, on :8080
//	go run ./examples/rest -dialect postgres     # $OPTLOCK_POSTGRES_DSN, or the local default
//
//	curl -i localhost:8080/items/1 -X PUT -H 'If-None-Match: *' -d '{"name":"pen","qty":3}'
//	curl -i localhost:8080/items/1                                    # ETag: "1"
//	curl -i localhost:8080/items/1 -X PATCH -H 'If-Match: "1"' -d '{"qty":4}'
//	curl -i localhost:8080/items/1 -X PATCH -H 'If-Match: "1"' -d '{"qty":5}'  # 412, ETag: "2"
//
// -naive serves the same API without the lock (If-Match ignored), to see updates lost.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"time"

	"gorm.io/driver/postgres"
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/go-optlock/optlock"
	"github.com/go-optlock/optlock/internal/testenv"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		log.Fatal(err)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("rest", flag.ContinueOnError)
	dialect := fs.String("dialect", "sqlite", "sqlite or postgres")
	dsn := fs.String("dsn", "", "the database: for sqlite a file DSN (default: a temporary file), for postgres $OPTLOCK_POSTGRES_DSN or "+testenv.DefaultPostgresDSN)
	addr := fs.String("addr", "localhost:8080", "the address to listen on")
	naive := fs.Bool("naive", false, "serve without the lock: If-Match ignored, updates lost")
	if err := fs.Parse(args); err != nil {
		return err
	}
	db, cleanup, err := open(*dialect, *dsn, !*naive)
	if err != nil {
		return err
	}
	defer cleanup()
	srv := &http.Server{Addr: *addr, Handler: newServer(db, !*naive), ReadHeaderTimeout: 5 * time.Second, MaxHeaderBytes: 1 << 16}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	log.Printf("serving /items/{id} on %s (%s, locked: %v)", *addr, *dialect, !*naive)
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// open connects to the database, registers optlock (guarding Item when locked), and creates the table.
func open(dialect, dsn string, locked bool) (*gorm.DB, func(), error) {
	cleanup := func() {}
	var dialector gorm.Dialector
	switch dialect {
	case "sqlite":
		if dsn == "" {
			dir, err := os.MkdirTemp("", "optlock-rest")
			if err != nil {
				return nil, nil, err
			}
			cleanup = func() { _ = os.RemoveAll(dir) }
			dsn = testenv.SQLiteDSN(filepath.Join(dir, "rest.db"))
		}
		dialector = sqlite.Open(dsn)
	case "postgres":
		if dsn == "" {
			dsn = testenv.PostgresDSN()
		}
		dialector = postgres.Open(dsn)
	default:
		return nil, nil, fmt.Errorf("unknown -dialect %q: use sqlite or postgres", dialect)
	}
	// TranslateError: a create-only PUT (If-None-Match: *) of an existing item is gorm.ErrDuplicatedKey,
	// which optlockhttp.WriteError answers with 412.
	db, err := gorm.Open(dialector, &gorm.Config{Logger: logger.Discard, TranslateError: true})
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	// Naive or not, the plugin gives the ETags; only the guard makes every write of Item lock-aware.
	var opts []optlock.Option
	if locked {
		opts = append(opts, optlock.Guard(&Item{}))
	}
	if err := db.Use(optlock.New(opts...)); err != nil {
		cleanup()
		return nil, nil, err
	}
	if err := db.AutoMigrate(&Item{}); err != nil {
		cleanup()
		return nil, nil, err
	}
	return db, cleanup, nil
}
