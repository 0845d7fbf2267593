package bench

import (
	"os"
	"path/filepath"
	"testing"

	"gorm.io/driver/mysql"
	"gorm.io/driver/postgres"
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/go-optlock/optlock"
	"github.com/go-optlock/optlock/internal/roundtrip"
)

// target is one database under benchmark, with its round-trip counter.
type target struct {
	name    string
	db      *gorm.DB
	counter *roundtrip.Counter
}

func envOr(key, fallback string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return fallback
}

// targets opens SQLite (a file in a temporary directory), PostgreSQL and MariaDB/MySQL at the same
// DSNs the tests use; a server that cannot be reached is left out, with a note in the output.
func targets(b *testing.B) []target {
	b.Helper()
	dialectors := []struct {
		name string
		open func() gorm.Dialector
	}{
		{"sqlite", func() gorm.Dialector {
			return sqlite.Open("file:" + filepath.Join(b.TempDir(), "bench.db") + "?_journal_mode=WAL&_busy_timeout=10000&_txlock=immediate")
		}},
		{"postgres", func() gorm.Dialector {
			return postgres.Open(envOr("OPTLOCK_POSTGRES_DSN", "host=127.0.0.1 port=5432 user=root dbname=test sslmode=disable"))
		}},
		{"mysql", func() gorm.Dialector {
			return mysql.Open(envOr("OPTLOCK_MYSQL_DSN", "root:@tcp(127.0.0.1:3306)/test?charset=utf8mb4&parseTime=True&loc=Local"))
		}},
	}
	var out []target
	for _, d := range dialectors {
		db, err := gorm.Open(d.open(), &gorm.Config{Logger: logger.Discard})
		if err == nil {
			var conn interface{ Ping() error }
			if conn, err = db.DB(); err == nil {
				err = conn.Ping()
			}
		}
		if err != nil {
			b.Logf("skipping %s: %v", d.name, err)
			continue
		}
		if err := db.Use(optlock.New()); err != nil {
			b.Fatal(err)
		}
		counter, err := roundtrip.Install(db)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() {
			_ = db.Migrator().DropTable(&Item{}, &OfficialItem{})
			if conn, err := db.DB(); err == nil {
				conn.Close()
			}
		})
		out = append(out, target{d.name, db, counter})
	}
	return out
}

// reportRoundTrips adds round trips per operation to the benchmark's output.
func reportRoundTrips(b *testing.B, t target) {
	b.ReportMetric(float64(t.counter.Count())/float64(b.N), "roundtrips/op")
}
