package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/go-optlock/optlock/internal/testenv"
)

// databases lists the demo's targets: SQLite always, the servers at the tests' DSNs when reachable
// (required under CI=true).
func databases(t *testing.T) map[string]config {
	dbs := map[string]config{
		"sqlite":   {dialect: "sqlite", dsn: testenv.SQLiteDSN(filepath.Join(t.TempDir(), "shop.db"))},
		"postgres": {dialect: "postgres", dsn: testenv.PostgresDSN()},
		"mysql":    {dialect: "mysql", dsn: testenv.MySQLDSN()},
	}
	return dbs
}

func openOrSkip(t *testing.T, cfg config) *gorm.DB {
	db, cleanup, err := open(cfg)
	if err == nil {
		var conn interface{ Ping() error }
		if conn, err = db.DB(); err == nil {
			err = conn.Ping()
		}
	}
	if err != nil {
		if testenv.Required(cfg.dialect) {
			t.Fatalf("%s unreachable: %v", cfg.dialect, err)
		}
		t.Skipf("skipping %s: %v", cfg.dialect, err)
	}
	t.Cleanup(func() {
		_ = db.Migrator().DropTable(&Product{})
		cleanup()
	})
	return db
}

func TestDemoLosesNoPurchaseWithOptlock(t *testing.T) {
	for name, cfg := range databases(t) {
		t.Run(name, func(t *testing.T) {
			cfg.buyers, cfg.products, cfg.stock = 8, 2, 40
			db := openOrSkip(t, cfg)
			var progress, out bytes.Buffer
			rep, err := run(context.Background(), db, cfg, &progress)
			require.NoError(t, err)
			rep.print(&out)

			assert.Zero(t, rep.lost())
			assert.EqualValues(t, 80, sum(rep.purchases))
			for _, p := range rep.products {
				assert.Zero(t, p.Stock)
			}
			assert.Contains(t, out.String(), "no update was lost")
			assert.Contains(t, progress.String(), "[optlock]")
		})
	}
}

// The naive mode runs the same workload unchecked; its report must account for every purchase,
// either in the stock or as a lost update.
func TestDemoNaiveModeAccountsForLostUpdates(t *testing.T) {
	cfg := databases(t)["sqlite"]
	cfg.buyers, cfg.products, cfg.stock, cfg.naive = 8, 2, 40, true
	db := openOrSkip(t, cfg)
	rep, err := run(context.Background(), db, cfg, &bytes.Buffer{})
	require.NoError(t, err)
	var out bytes.Buffer
	rep.print(&out)

	assert.GreaterOrEqual(t, rep.lost(), int64(0))
	assert.Equal(t, sum(rep.purchases)-80, rep.lost(), "every purchase beyond the stock is a lost update")
	if rep.lost() > 0 {
		assert.True(t, strings.Contains(out.String(), "purchases were lost"), out.String())
	}
}
