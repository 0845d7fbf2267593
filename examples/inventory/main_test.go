package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/go-optlock/optlock/internal/testenv"
)

// TestMain lets a test run the command itself: the test binary, started again with
// OPTLOCK_INVENTORY_MAIN=1, is the demo, so its stdout and stderr are real files (pipes here) and
// its exit status is main's.
func TestMain(m *testing.M) {
	if os.Getenv("OPTLOCK_INVENTORY_MAIN") == "1" {
		main()
	}
	os.Exit(m.Run())
}

// databases lists the demo's targets: SQLite always, the servers at the tests' DSNs when reachable
// (required under CI=true).
func databases(t *testing.T) map[string]config {
	return map[string]config{
		"sqlite":   {dialect: "sqlite", dsn: testenv.SQLiteDSN(filepath.Join(t.TempDir(), "shop.db"))},
		"postgres": {dialect: "postgres", dsn: testenv.PostgresDSN()},
		"mysql":    {dialect: "mysql", dsn: testenv.MySQLDSN()},
	}
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

// small is a workload that runs in a second or two under -race: 8 buyers, 10 purchases each, on 2
// products. Buyers think up to 2ms between read and write, while a read and a write take well under
// that, so without a lock buyers who picked the same product (half of them, on average) read the
// same stock and overwrite each other's writes: a run that loses no purchase would need every read
// to land after every earlier write to the same row, 80 times in a row.
func small(cfg config) config {
	cfg.buyers, cfg.purchases, cfg.products, cfg.stock = 8, 10, 2, 60
	cfg.restocks, cfg.think = 3, 2*time.Millisecond
	return cfg
}

// checkOptlockRun asserts the invariant of a run with optlock: every recorded purchase is in the stock.
func checkOptlockRun(t *testing.T, r *report, purchases int) {
	t.Helper()
	require.NotNil(t, r)
	assert.EqualValues(t, purchases, sum(r.purchases), "%s: every planned purchase is recorded", r.phase)
	assert.Zero(t, r.lost(), "%s: no purchase lost", r.phase)
	for i, p := range r.products {
		assert.Equal(t, r.purchases[i], r.removed(i), "%s: %s: the stock went down by its purchases", r.phase, p.Name)
	}
	assert.Equal(t, r.conflicts, r.retries, "%s: each refused write is re-run once", r.phase)
	assert.LessOrEqual(t, r.retried, r.retries)
	assert.LessOrEqual(t, r.wasted, r.busy)
}

// checkRestock asserts what the restock phase did: every row written, with one statement per call.
func checkRestock(t *testing.T, r *report, cfg config) {
	t.Helper()
	rr := r.restock
	assert.EqualValues(t, cfg.restocks, rr.deliveries, "every delivery made")
	assert.EqualValues(t, cfg.restocks*cfg.products, rr.rows, "every delivery wrote every row")
	assert.EqualValues(t, cfg.restocks, rr.written, "one statement per successful call")
	assert.Equal(t, rr.calls, rr.statements, "one statement per call, refused calls included")
	assert.EqualValues(t, 1, rr.maxStatements)
	assert.Equal(t, rr.calls, rr.deliveries+rr.conflicts, "every call either wrote or was refused as a conflict")
	assert.Equal(t, rr.conflicts, rr.retries)
	for i := range r.products {
		assert.EqualValues(t, cfg.restocks*restockAmount(i), r.restocked[i], "product %d restocked by its own amount", i+1)
	}
}

// checkOutput asserts the report is one screen: at most 25 lines of at most 80 columns, and no
// carriage return (it is not written to a terminal).
func checkOutput(t *testing.T, out string) {
	t.Helper()
	assert.NotContains(t, out, "\r")
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	assert.LessOrEqual(t, len(lines), 25, "one screen:\n%s", out)
	for _, line := range lines {
		assert.LessOrEqual(t, utf8.RuneCountInString(line), 80, "line too wide: %q", line)
	}
}

// The default run, on every database: without a lock purchases are lost, with optlock none, and the
// restock phase writes every row with one statement per UpdateEach call.
func TestDemoComparesUnlockedAndOptlock(t *testing.T) {
	for name, cfg := range databases(t) {
		t.Run(name, func(t *testing.T) {
			cfg = small(cfg)
			db := openOrSkip(t, cfg)
			var out, progressOut bytes.Buffer
			res, err := demo(context.Background(), db, cfg, &out, progress{w: &progressOut})
			require.NoError(t, err)
			t.Logf("\n%s", out.String())

			require.NotNil(t, res.naive)
			assert.EqualValues(t, 80, sum(res.naive.purchases))
			assert.Positive(t, res.naive.lost(), "the unlocked run loses purchases")
			assert.Zero(t, res.naive.conflicts)
			checkOptlockRun(t, res.locked, 80)
			checkOptlockRun(t, res.restock, 80)
			checkRestock(t, res.restock, cfg)
			assert.True(t, res.ok())

			checkOutput(t, out.String())
			assert.Empty(t, progressOut.String(), "no progress frames when not on a terminal")
			for _, want := range []string{"lost purchases", "conflict is a buyer's write refused", "Restock: 6 rows in 3 statements (1 per call)", "no purchase lost"} {
				assert.Contains(t, out.String(), want)
			}
			assert.False(t, db.Migrator().HasTable(tableName), "the demo drops its table at the end")
		})
	}
}

// The command itself, run as `go run ./examples/inventory -dsn ...` would, with the default workload,
// stdout and stderr not a terminal: exit status 0, one screen of report, no progress frames, and a
// table of the user's named like the old demo's table left as it was.
func TestCommandLeavesOtherTablesAndWritesPlainOutput(t *testing.T) {
	path := filepath.Join(t.TempDir(), "shop.db")
	cfg := config{dialect: "sqlite", dsn: testenv.SQLiteDSN(path)}
	db := openOrSkip(t, cfg)
	require.NoError(t, db.Exec("CREATE TABLE inventory_products (id integer PRIMARY KEY, name text)").Error)
	require.NoError(t, db.Exec("INSERT INTO inventory_products (id, name) VALUES (1, 'the user''s own row')").Error)

	cmd := exec.Command(os.Args[0], "-dsn", cfg.dsn)
	cmd.Env = append(os.Environ(), "OPTLOCK_INVENTORY_MAIN=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	t.Logf("\n%s", stdout.String())
	require.NoError(t, err, "stderr: %s", stderr.String())

	checkOutput(t, stdout.String())
	assert.Empty(t, stderr.String(), "no progress frames when stderr is not a terminal")
	assert.Contains(t, stdout.String(), "1. no lock")
	assert.Contains(t, stdout.String(), "2. optlock")
	assert.Contains(t, stdout.String(), "3. restock")
	assert.Regexp(t, `lost purchases +\d+ +0\n`, stdout.String())
	assert.Contains(t, stdout.String(), "Restock: 15 rows in 5 statements (1 per call)")

	var names []string
	require.NoError(t, db.Raw("SELECT name FROM inventory_products").Scan(&names).Error)
	assert.Equal(t, []string{"the user's own row"}, names, "a table not the demo's own is left alone")
	assert.False(t, db.Migrator().HasTable(tableName), "the demo drops its table at the end")
}

// -naive runs only the unlocked buyers, -locked only the optlock ones; both at once is refused.
func TestOneRunFlags(t *testing.T) {
	for _, tc := range []struct {
		flag      string
		want, not string
	}{
		{"-naive", "no lock:", "optlock:"},
		{"-locked", "optlock:", "no lock:"},
	} {
		t.Run(tc.flag, func(t *testing.T) {
			dsn := testenv.SQLiteDSN(filepath.Join(t.TempDir(), "shop.db"))
			var stdout, stderr bytes.Buffer
			code := realMain(context.Background(), []string{tc.flag, "-dsn", dsn, "-buyers", "4", "-purchases", "5", "-think", "1ms"},
				&stdout, &stderr, progress{w: &stderr})
			assert.Zero(t, code, stderr.String())
			assert.Contains(t, stdout.String(), tc.want)
			assert.NotContains(t, stdout.String(), tc.not)
			assert.NotContains(t, stdout.String(), "restock")
			checkOutput(t, stdout.String())
			assert.Empty(t, stderr.String())
		})
	}
	var stderr bytes.Buffer
	assert.Equal(t, 2, realMain(context.Background(), []string{"-naive", "-locked"}, &bytes.Buffer{}, &stderr, progress{}))
	assert.Contains(t, stderr.String(), "-naive and -locked")
}

// The usage text names the demo's own table and says it is dropped.
func TestUsageNamesTheTable(t *testing.T) {
	var stdout, stderr bytes.Buffer
	assert.Zero(t, realMain(context.Background(), []string{"-help"}, &stdout, &stderr, progress{}))
	assert.Contains(t, stderr.String(), tableName)
	assert.Contains(t, stderr.String(), "drops it")
	for _, line := range strings.Split(stderr.String(), "\n") {
		assert.LessOrEqual(t, columns(line), 80, "%q", line)
	}
}

// columns is how wide line shows on a terminal, tabs stopping every 8 columns.
func columns(line string) int {
	n := 0
	for _, r := range line {
		if r == '\t' {
			n += 8 - n%8
		} else {
			n++
		}
	}
	return n
}

// -dialect postgres or mysql without -dsn uses the tests' DSNs, environment variables first.
func TestServerDSNDefaults(t *testing.T) {
	t.Setenv("OPTLOCK_POSTGRES_DSN", "")
	t.Setenv("OPTLOCK_MYSQL_DSN", "")
	assert.Equal(t, testenv.DefaultPostgresDSN, dsnFor(config{dialect: "postgres"}))
	assert.Equal(t, testenv.DefaultMySQLDSN, dsnFor(config{dialect: "mysql"}))
	t.Setenv("OPTLOCK_MYSQL_DSN", "me:secret@tcp(db:3306)/shop")
	assert.Equal(t, "me:secret@tcp(db:3306)/shop", dsnFor(config{dialect: "mysql"}))
	assert.Equal(t, "given", dsnFor(config{dialect: "mysql", dsn: "given"}))
}

// On a terminal the progress line is redrawn with carriage returns, each frame at most 50 columns
// even when the line it is given is longer; elsewhere nothing is written.
func TestProgressFitsFiftyColumns(t *testing.T) {
	st := &stats{phase: phaseRestock, planned: 1_000_000, started: time.Now(), purchases: make([]atomic.Int64, 3)}
	st.purchases[0].Store(999_999)
	st.conflicts.Store(1_234_567)
	st.restocksDone.Store(12_345)
	for _, line := range []func() string{st.line, func() string { return strings.Repeat("x", 120) }} {
		var buf bytes.Buffer
		stop := progress{w: &buf, tty: true}.show(line)
		time.Sleep(250 * time.Millisecond)
		stop()
		out := buf.String()
		require.Contains(t, out, "\r")
		for _, f := range strings.Split(out, "\r") {
			assert.LessOrEqual(t, utf8.RuneCountInString(f), 50, "frame %q", f)
			assert.NotContains(t, f, "\n")
		}
	}

	var buf bytes.Buffer
	stop := progress{w: &buf, tty: false}.show(st.line)
	time.Sleep(150 * time.Millisecond)
	stop()
	assert.Empty(t, buf.String())
}

// A workload larger than the stock is refused before anything is written.
func TestWorkloadMustFitTheStock(t *testing.T) {
	var stderr bytes.Buffer
	code := realMain(context.Background(), []string{"-buyers", "10", "-purchases", "10", "-products", "1", "-stock", "99"},
		&bytes.Buffer{}, &stderr, progress{})
	assert.Equal(t, 2, code)
	assert.Contains(t, stderr.String(), "more than the 1 x 99 items in stock")
}
