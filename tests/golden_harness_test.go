package tests

import (
	"database/sql"
	"database/sql/driver"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gorm.io/driver/mysql"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/go-optlock/optlock"
)

// The golden tests pin, byte for byte, the SQL text and bind variables of every form the plugin
// sends, per dialect, so that moving the dialect-specific SQL elsewhere can be shown to change
// nothing. They need no server: each case runs twice on every dialect,
//
//   - as a dry run through the real driver, on a server that is not there (PostgreSQL and MySQL at
//     127.0.0.1 port 1, SQLite on a new file): what GORM's DryRun returns, the plugin's fallback
//     when it cannot read the table's column types;
//   - for real, on the fake driver of golden_driver_test.go: every statement sent, in order, with
//     the catalog answered as for a table GORM's migrator made, and rows affected and rows read
//     back as the case scripts them.
//
// go test ./tests -run Golden -update rewrites the files under testdata/golden.

var updateGolden = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

var (
	// goldenZone is NowFunc's location: neither UTC nor the machine's, so a value that loses or
	// changes its location shows.
	goldenZone = time.FixedZone("UTC+2", 2*60*60)
	goldenNow  = time.Date(2026, 3, 4, 5, 6, 7, 123456789, goldenZone)
)

const (
	// goldenSQLiteVersion is what the fake answers GORM's sqlite_version(): 3.35 or later, as the
	// embedded SQLite is, gives UPDATE its FROM clause (TestGoldenSQLiteVersionBranch).
	goldenSQLiteVersion = "3.46.1"
	// goldenMySQLVersion is given to the MySQL dialector, which is told not to ask the server:
	// GORM's MySQL/MariaDB choices (RETURNING on MariaDB 10.5+) are then the same on every machine.
	goldenMySQLVersion = "8.0.36"
	// Servers that are never there: nothing listens on port 1, and the env's DSNs are never read.
	goldenPostgresDSN = "host=127.0.0.1 port=1 user=golden dbname=golden sslmode=disable connect_timeout=2"
	goldenMySQLDSN    = "golden:golden@tcp(127.0.0.1:1)/golden?parseTime=true&timeout=2s"
)

// goldenDialect opens one dialect on the fake driver, and for the dry run on its real driver.
type goldenDialect struct {
	name string
	fake func(conn *sql.DB) gorm.Dialector
	real func(t *testing.T) gorm.Dialector
}

var goldenDialects = []goldenDialect{
	{
		"sqlite",
		func(conn *sql.DB) gorm.Dialector { return sqliteOn(conn) },
		func(t *testing.T) gorm.Dialector { return sqliteOpen(filepath.Join(t.TempDir(), "golden.db")) },
	},
	{
		"postgres",
		func(conn *sql.DB) gorm.Dialector { return postgres.New(postgres.Config{Conn: conn}) },
		func(*testing.T) gorm.Dialector { return postgres.New(postgres.Config{DSN: goldenPostgresDSN}) },
	},
	{
		"mysql",
		func(conn *sql.DB) gorm.Dialector {
			return mysql.New(mysql.Config{Conn: conn, SkipInitializeWithVersion: true, ServerVersion: goldenMySQLVersion})
		},
		func(*testing.T) gorm.Dialector {
			return mysql.New(mysql.Config{DSN: goldenMySQLDSN, SkipInitializeWithVersion: true, ServerVersion: goldenMySQLVersion})
		},
	},
}

// goldenCase is one write, pinned on every dialect.
type goldenCase struct {
	name string // the golden file's name
	doc  string // what the case pins, the golden file's first line
	opts []optlock.Option
	// script is what the fake database answers on dialect; nil: nothing (no write is expected).
	script func(dialect string) goldenScript
	// callerTx marks a case that opens its own transaction: no dry run (that would need a server).
	callerTx bool
	// write runs the case on db and returns the write's result; it makes its rows itself, so every
	// run starts from the same rows.
	write func(db *gorm.DB) *gorm.DB
}

func goldenConfig() *gorm.Config {
	return &gorm.Config{
		NowFunc:              func() time.Time { return goldenNow },
		DisableAutomaticPing: true,
		Logger:               logger.Discard,
	}
}

// goldenOutput renders case c on dialect d: the dry run, then everything sent to the fake driver.
func goldenOutput(t *testing.T, c goldenCase, d goldenDialect) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "# %s on %s: %s\n", c.name, d.name, c.doc)
	if !c.callerTx {
		b.WriteString("\n== dry run: the real driver, no server (column types not read)\n")
		goldenDryRun(t, &b, c, d)
	}
	b.WriteString("\n== sent: every statement, on the fake driver\n")
	goldenSentRun(t, &b, c, d)
	return b.String()
}

func goldenDryRun(t *testing.T, b *strings.Builder, c goldenCase, d goldenDialect) {
	t.Helper()
	db, err := gorm.Open(d.real(t), goldenConfig())
	require.NoError(t, err)
	t.Cleanup(func() {
		if conn, err := db.DB(); err == nil {
			_ = conn.Close()
		}
	})
	require.NoError(t, db.Use(optlock.New(c.opts...)))
	// GORM's default transaction would need a server; a dry run of the plugin does not begin one.
	res := c.write(db.Session(&gorm.Session{DryRun: true, SkipDefaultTransaction: true}))
	writeStatement(b, res.Statement.SQL.String(), res.Statement.Vars)
	writeResult(b, res, false)
}

func goldenSentRun(t *testing.T, b *strings.Builder, c goldenCase, d goldenDialect) {
	t.Helper()
	rec := &goldenRecorder{dialect: d.name}
	if c.script != nil {
		rec.script = c.script(d.name)
	}
	conn := openGoldenPool(rec)
	t.Cleanup(func() { _ = conn.Close() })
	db, err := gorm.Open(d.fake(conn), goldenConfig())
	require.NoError(t, err)
	require.NoError(t, db.Use(optlock.New(c.opts...)))
	rec.reset()

	res := c.write(db)
	for i, s := range rec.sent {
		switch s.kind {
		case "exec", "query":
			fmt.Fprintf(b, "-- %d %s: %s\n", i+1, s.kind, s.outcome)
			writeStatement(b, s.sql, s.args)
		default:
			fmt.Fprintf(b, "-- %d %s\n", i+1, s.kind)
		}
	}
	writeResult(b, res, true)
	assert.Empty(t, rec.unscripted, "writes the script has no rows-affected count for")
	assert.Equal(t, len(rec.script.affected), rec.writes, "writes scripted and writes sent")
}

// writeStatement writes a statement's SQL, then its bind variables one per line.
func writeStatement(b *strings.Builder, sqlText string, vars []any) {
	b.WriteString(sqlText)
	b.WriteByte('\n')
	for i, v := range vars {
		fmt.Fprintf(b, "  %d: %s\n", i+1, goldenVar(v))
	}
}

func writeResult(b *strings.Builder, res *gorm.DB, affected bool) {
	switch {
	case res.Error != nil:
		fmt.Fprintf(b, "-- result: error: %v\n", res.Error)
	case affected:
		fmt.Fprintf(b, "-- result: ok, rows affected: %d\n", res.RowsAffected)
	default:
		b.WriteString("-- result: ok\n")
	}
}

// goldenVar renders a bind variable with its Go type. A value of the plugin's own type is rendered by
// what it gives the driver: the type's name is not behaviour, and moves with the code.
func goldenVar(v any) string {
	switch x := v.(type) {
	case nil:
		return "nil"
	case time.Time:
		return "time.Time " + goldenTime(x)
	case string:
		return "string " + strconv.Quote(x)
	case []byte:
		return "[]byte " + strconv.Quote(string(x))
	}
	if valuer, ok := v.(driver.Valuer); ok && strings.HasPrefix(reflect.TypeOf(v).PkgPath(), "github.com/go-optlock/optlock") {
		value, err := valuer.Value()
		if err != nil {
			return "driver.Valuer failing: " + err.Error()
		}
		return "driver.Valuer giving " + goldenVar(value)
	}
	return fmt.Sprintf("%T %v", v, v)
}

// goldenTime renders a time with its location's name. A time in time.Local, which depends on the
// machine, is rendered as its instant in UTC, marked.
func goldenTime(t time.Time) string {
	const layout = "2006-01-02 15:04:05.000000000 -07:00"
	if t.Location() == time.Local {
		return t.UTC().Format(layout) + " (time.Local, shown in UTC)"
	}
	return t.Format(layout) + " " + t.Location().String()
}

// goldenPath is where case name's output on dialect is kept.
func goldenPath(dialect, name string) string {
	return filepath.Join("testdata", "golden", dialect, name+".golden")
}

// compareGolden compares got with the golden file, or rewrites the file under -update.
func compareGolden(t *testing.T, path, got string) {
	t.Helper()
	if *updateGolden {
		require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
		require.NoError(t, os.WriteFile(path, []byte(got), 0o644))
		return
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "no golden file: run go test ./tests -run Golden -update")
	assert.Equal(t, string(want), got, "%s differs: the SQL or variables sent changed (go test ./tests -run Golden -update rewrites it)", path)
}
