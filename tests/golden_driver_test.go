package tests

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// The golden tests must see every statement the plugin sends (savepoints, chunks, the catalog read,
// the time-binding probe, the conflict read-back), not only the one GORM's dry run returns, and with
// no server at all. So GORM's real dialectors are handed a *sql.DB over this fake driver: database/sql,
// its transactions and GORM's type assertions on them (gorm.TxCommitter, gorm.TxBeginner) are the
// real ones; only the wire is replaced by a recorder that keeps what it is sent, bind variables as
// GORM passed them, and answers from a script.

// goldenRecorder keeps what the fake driver is sent, in order, and answers from its script.
type goldenRecorder struct {
	mu      sync.Mutex
	dialect string
	script  goldenScript
	sent    []goldenSent
	writes  int // INSERT, UPDATE and DELETE statements answered so far
	queries int // queries answered from the script so far
	// unscripted lists statements the script had no answer for: a case must script every write.
	unscripted []string
}

// goldenScript is what the fake database answers.
type goldenScript struct {
	// affected are the rows affected of the INSERT, UPDATE and DELETE statements, in order.
	affected []int64
	// answer returns the rows of the n-th query (from 0) that is neither a catalog read nor the
	// time-binding probe: a conflict read-back, or an INSERT ... RETURNING. nil: no rows.
	answer func(n int) [][]driver.Value
	// catalogFails makes every catalog read fail, as a server that refuses it would.
	catalogFails bool
}

// errCatalog answers a catalog read when the script says it fails.
var errCatalog = errors.New("golden: the catalog cannot be read")

// goldenSent is one thing the driver was asked to do.
type goldenSent struct {
	kind string // BEGIN, COMMIT, ROLLBACK, exec or query
	sql  string
	args []any
	// outcome is what the fake answered: rows affected, rows returned, or an error.
	outcome string
}

// errNoAnswer answers a write the script has no rows-affected count for.
var errNoAnswer = errors.New("golden: no rows-affected count scripted for this statement")

func (r *goldenRecorder) add(s goldenSent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sent = append(r.sent, s)
}

// reset forgets what was sent while the database was being opened.
func (r *goldenRecorder) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sent, r.writes, r.queries, r.unscripted = nil, 0, 0, nil
}

func (r *goldenRecorder) exec(query string, args []driver.NamedValue) (driver.Result, error) {
	var n int64
	var err error
	if isWrite(query) {
		n, err = r.nextAffected(query)
	}
	s := goldenSent{kind: "exec", sql: query, args: plainArgs(args)}
	if err != nil {
		s.outcome = "error: " + err.Error()
		r.add(s)
		return nil, err
	}
	s.outcome = fmt.Sprintf("rows affected: %d", n)
	r.add(s)
	return goldenResult(n), nil
}

// nextAffected returns the scripted rows-affected count of the next write.
func (r *goldenRecorder) nextAffected(query string) (int64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	defer func() { r.writes++ }()
	if r.writes < len(r.script.affected) {
		return r.script.affected[r.writes], nil
	}
	r.unscripted = append(r.unscripted, query)
	return 0, errNoAnswer
}

// goldenResult is an exec's result: rows affected, and no last insert ID (GORM then keeps the key
// the row was given).
type goldenResult int64

func (goldenResult) LastInsertId() (int64, error) { return 0, nil }

func (r goldenResult) RowsAffected() (int64, error) { return int64(r), nil }

// isWrite says whether a statement changes rows: its rows-affected count comes from the script.
func isWrite(query string) bool {
	q := strings.ToUpper(strings.TrimSpace(query))
	for _, w := range []string{"INSERT", "UPDATE", "DELETE"} {
		if strings.HasPrefix(q, w) {
			return true
		}
	}
	return false
}

func (r *goldenRecorder) query(query string, args []driver.NamedValue) (driver.Rows, error) {
	values := plainArgs(args)
	var rows [][]driver.Value
	switch {
	case isWrite(query):
		// INSERT ... RETURNING (PostgreSQL, SQLite): as many rows as the script says were written,
		// each returning 1 in every column.
		n, err := r.nextAffected(query)
		if err != nil {
			r.add(goldenSent{kind: "query", sql: query, args: values, outcome: "error: " + err.Error()})
			return nil, err
		}
		returned := &goldenRows{names: returningColumns(query)}
		for range n {
			cells := make([]driver.Value, len(returned.names))
			for i := range cells {
				cells[i] = int64(1)
			}
			returned.rows = append(returned.rows, cells)
		}
		r.add(goldenSent{kind: "query", sql: query, args: values, outcome: fmt.Sprintf("rows returned: %d", n)})
		return returned, nil
	case strings.HasPrefix(strings.TrimSpace(query), "select sqlite_version()"):
		return &goldenRows{rows: [][]driver.Value{{goldenSQLiteVersion}}}, nil // not part of any case
	case strings.Contains(query, "pg_catalog.pg_attribute"), strings.Contains(query, "information_schema.columns"):
		if r.script.catalogFails {
			r.add(goldenSent{kind: "query", sql: query, args: values, outcome: "error: " + errCatalog.Error()})
			return nil, errCatalog
		}
		rows = goldenCatalogRows(r.dialect, values)
	case strings.HasPrefix(query, "SELECT CAST($1 AS timestamp)"):
		rows = probeAnswer(values)
	default:
		r.mu.Lock()
		n := r.queries
		r.queries++
		answer := r.script.answer
		r.mu.Unlock()
		if answer != nil {
			rows = answer(n)
		}
	}
	r.add(goldenSent{kind: "query", sql: query, args: values, outcome: fmt.Sprintf("rows returned: %d", len(rows))})
	return &goldenRows{rows: rows}, nil
}

// probeAnswer answers the time-binding probe as pgx does over the extended protocol: the column
// keeps the bound value's own wall clock, read back labelled UTC.
func probeAnswer(args []any) [][]driver.Value {
	t, ok := args[0].(time.Time)
	if !ok {
		return nil
	}
	return [][]driver.Value{{time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), time.UTC)}}
}

// plainArgs are the bind variables as GORM passed them (CheckNamedValue lets every value through).
func plainArgs(args []driver.NamedValue) []any {
	values := make([]any, len(args))
	for i, a := range args {
		values[i] = a.Value
	}
	return values
}

// openGoldenPool returns a *sql.DB whose connections all report to rec.
func openGoldenPool(rec *goldenRecorder) *sql.DB {
	return sql.OpenDB(goldenConnector{rec: rec})
}

type goldenConnector struct{ rec *goldenRecorder }

func (c goldenConnector) Connect(context.Context) (driver.Conn, error) {
	return &goldenConn{rec: c.rec}, nil
}

func (goldenConnector) Driver() driver.Driver { return goldenDriver{} }

type goldenDriver struct{}

func (goldenDriver) Open(string) (driver.Conn, error) {
	return nil, errors.New("golden: open the fake driver through its connector")
}

// goldenConn is one fake connection. It implements ExecerContext and QueryerContext, so database/sql
// never prepares a statement, and NamedValueChecker, so the values reach the recorder unconverted.
type goldenConn struct{ rec *goldenRecorder }

var (
	_ driver.ExecerContext     = (*goldenConn)(nil)
	_ driver.QueryerContext    = (*goldenConn)(nil)
	_ driver.ConnBeginTx       = (*goldenConn)(nil)
	_ driver.NamedValueChecker = (*goldenConn)(nil)
)

func (c *goldenConn) Prepare(string) (driver.Stmt, error) {
	return nil, errors.New("golden: prepared statements are not recorded")
}

func (c *goldenConn) Close() error { return nil }

func (c *goldenConn) Begin() (driver.Tx, error) {
	return c.BeginTx(context.Background(), driver.TxOptions{})
}

func (c *goldenConn) BeginTx(context.Context, driver.TxOptions) (driver.Tx, error) {
	c.rec.add(goldenSent{kind: "BEGIN"})
	return goldenTx{rec: c.rec}, nil
}

func (c *goldenConn) ExecContext(_ context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	return c.rec.exec(query, args)
}

func (c *goldenConn) QueryContext(_ context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	return c.rec.query(query, args)
}

func (c *goldenConn) CheckNamedValue(*driver.NamedValue) error { return nil }

type goldenTx struct{ rec *goldenRecorder }

func (t goldenTx) Commit() error {
	t.rec.add(goldenSent{kind: "COMMIT"})
	return nil
}

func (t goldenTx) Rollback() error {
	t.rec.add(goldenSent{kind: "ROLLBACK"})
	return nil
}

// returningColumns are the names after a statement's RETURNING, unquoted: GORM scans what an
// INSERT returns by name.
func returningColumns(query string) []string {
	i := strings.LastIndex(query, " RETURNING ")
	if i < 0 {
		return nil
	}
	names := strings.Split(query[i+len(" RETURNING "):], ",")
	for j, name := range names {
		names[j] = strings.Trim(strings.TrimSpace(name), "\"`")
	}
	return names
}

// goldenRows are scripted rows. The plugin reads its own queries' columns by position: they are
// named only where GORM scans by name (names).
type goldenRows struct {
	names []string
	rows  [][]driver.Value
	next  int
}

func (r *goldenRows) Columns() []string {
	if r.names != nil {
		return r.names
	}
	width := 1
	if len(r.rows) > 0 {
		width = len(r.rows[0])
	}
	names := make([]string, width)
	for i := range names {
		names[i] = fmt.Sprintf("c%d", i+1)
	}
	return names
}

func (r *goldenRows) Close() error { return nil }

func (r *goldenRows) Next(dest []driver.Value) error {
	if r.next >= len(r.rows) {
		return io.EOF
	}
	copy(dest, r.rows[r.next])
	r.next++
	return nil
}
