package bench

import (
	"path/filepath"
	"testing"

	"gorm.io/driver/mysql"
	"gorm.io/driver/postgres"
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/go-optlock/optlock"
	"github.com/go-optlock/optlock/internal/roundtrip"
	"github.com/go-optlock/optlock/internal/testenv"
)

// target is one database under benchmark, with its round-trip counter.
type target struct {
	name    string
	db      *gorm.DB
	counter *roundtrip.Counter
	// plain is plain GORM on the same connections (through counter), without the optlock plugin.
	plain *gorm.DB
	// over opens the same dialect on connections already open (the counter's), for a gorm.DB of
	// another configuration.
	over func(conn gorm.ConnPool) gorm.Dialector
}

// targets opens SQLite (a file in a temporary directory), PostgreSQL and MariaDB/MySQL at the same
// DSNs the tests use; a server that cannot be reached is left out, with a note in the output.
func targets(b *testing.B) []target {
	b.Helper()
	dialectors := []struct {
		name string
		open func() gorm.Dialector
		// over opens the same dialect on connections already open.
		over func(conn gorm.ConnPool) gorm.Dialector
	}{
		{"sqlite", func() gorm.Dialector {
			return sqlite.Open(testenv.SQLiteDSN(filepath.Join(b.TempDir(), "bench.db")))
		}, func(conn gorm.ConnPool) gorm.Dialector {
			return sqlite.New(sqlite.Config{Conn: conn})
		}},
		{"postgres", func() gorm.Dialector {
			return postgres.Open(testenv.PostgresDSN())
		}, func(conn gorm.ConnPool) gorm.Dialector {
			return postgres.New(postgres.Config{Conn: conn})
		}},
		{"mysql", func() gorm.Dialector {
			return mysql.Open(testenv.MySQLDSN())
		}, func(conn gorm.ConnPool) gorm.Dialector {
			return mysql.New(mysql.Config{Conn: conn})
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
		plain, err := gorm.Open(d.over(counter), &gorm.Config{Logger: logger.Discard})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() {
			_ = db.Migrator().DropTable(&Item{}, &OfficialItem{}, &ConflictItem{})
			if conn, err := db.DB(); err == nil {
				conn.Close()
			}
		})
		out = append(out, target{d.name, db, counter, plain, d.over})
	}
	return out
}

// reportRoundTrips adds round trips per operation to the benchmark's output.
func reportRoundTrips(b *testing.B, t target) {
	b.ReportMetric(float64(t.counter.Count())/float64(b.N), "roundtrips/op")
}
