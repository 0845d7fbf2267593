package tests

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	mysqldriver "github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
	"gorm.io/gorm"

	"github.com/go-optlock/optlock/internal/testenv"
)

// TestMain runs the tests, then says in one line what each database of dialects did in this run
// (ran, skipped and why, or not used by the tests run): without -v, `go test` shows nothing else that
// tells a run on SQLite alone from one that reached the servers. See summaryOut for where it goes.
func TestMain(m *testing.M) {
	code := m.Run()
	out, done := summaryOut(code)
	fmt.Fprintln(out, runSummary.line())
	done()
	os.Exit(code)
}

// runSummary records what the run did with each database.
var runSummary = &dbSummary{opened: map[string]int{}, failed: map[string]error{}}

// dbSummary counts, per dialect name, the opens that worked and keeps the last error of one that did
// not.
type dbSummary struct {
	mu     sync.Mutex
	opened map[string]int
	failed map[string]error
}

// tracked wraps a dialect's open function so that runSummary sees every open, by any test.
func tracked(name string, open func(testing.TB) (*gorm.DB, error)) func(testing.TB) (*gorm.DB, error) {
	return func(t testing.TB) (*gorm.DB, error) {
		db, err := open(t)
		runSummary.mu.Lock()
		defer runSummary.mu.Unlock()
		if err != nil {
			runSummary.failed[name] = err
		} else {
			runSummary.opened[name]++
		}
		return db, err
	}
}

// line is the summary: "optlock tests: sqlite (mattn driver) ran; postgres ran (127.0.0.1:5432/test); mysql skipped:
// ...".
func (s *dbSummary) line() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	parts := make([]string, 0, len(dialects))
	for _, d := range dialects {
		label := d.name
		if d.name == "sqlite" {
			label += " (" + sqliteDriver + " driver)"
		}
		err, failed := s.failed[d.name]
		switch {
		case failed && testenv.Required(d.name):
			parts = append(parts, fmt.Sprintf("%s FAILED (required): %v", label, err))
		case failed:
			parts = append(parts, fmt.Sprintf("%s skipped: %v", label, err))
		case s.opened[d.name] > 0:
			parts = append(parts, label+" ran"+where(d.name))
		default:
			parts = append(parts, label+" not used by the tests run")
		}
	}
	return "optlock tests: " + strings.Join(parts, "; ")
}

// where names the server a dialect reached, as " (host:port/database)"; "" for SQLite.
func where(name string) string {
	switch name {
	case "postgres":
		if cfg, err := pgconn.ParseConfig(testenv.PostgresDSN()); err == nil {
			return fmt.Sprintf(" (%s:%d/%s)", cfg.Host, cfg.Port, cfg.Database)
		}
	case "mysql":
		if cfg, err := mysqldriver.ParseDSN(testenv.MySQLDSN()); err == nil {
			return fmt.Sprintf(" (%s/%s)", cfg.Addr, cfg.DBName)
		}
	}
	return ""
}
