// Package roundtrip counts the round trips GORM sends to the database: every statement, prepare,
// BEGIN, COMMIT and ROLLBACK. Tests and benchmarks use it to count statements instead of guessing.
package roundtrip

import (
	"context"
	"database/sql"
	"sync/atomic"

	"gorm.io/gorm"
)

// Counter wraps a *sql.DB as a gorm.ConnPool that counts round trips.
type Counter struct {
	db *sql.DB
	n  atomic.Int64
}

var (
	_ gorm.ConnPool         = (*Counter)(nil)
	_ gorm.ConnPoolBeginner = (*Counter)(nil)
)

// Install routes db's statements through a new Counter and returns it.
func Install(db *gorm.DB) (*Counter, error) {
	sqlDB, err := db.DB()
	if err != nil {
		return nil, err
	}
	c := &Counter{db: sqlDB}
	db.Config.ConnPool = c
	db.Statement.ConnPool = c
	return c, nil
}

// Count returns the round trips counted so far.
func (c *Counter) Count() int64 { return c.n.Load() }

// Reset sets the count back to zero.
func (c *Counter) Reset() { c.n.Store(0) }

// GetDBConn lets gorm.DB.DB() find the *sql.DB underneath.
func (c *Counter) GetDBConn() (*sql.DB, error) { return c.db, nil }

func (c *Counter) PrepareContext(ctx context.Context, query string) (*sql.Stmt, error) {
	c.n.Add(1)
	return c.db.PrepareContext(ctx, query)
}

func (c *Counter) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	c.n.Add(1)
	return c.db.ExecContext(ctx, query, args...)
}

func (c *Counter) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	c.n.Add(1)
	return c.db.QueryContext(ctx, query, args...)
}

func (c *Counter) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	c.n.Add(1)
	return c.db.QueryRowContext(ctx, query, args...)
}

// BeginTx counts BEGIN and returns a transaction that counts its statements and its end.
func (c *Counter) BeginTx(ctx context.Context, opts *sql.TxOptions) (gorm.ConnPool, error) {
	c.n.Add(1)
	tx, err := c.db.BeginTx(ctx, opts)
	if err != nil {
		return nil, err
	}
	return &Tx{tx: tx, n: &c.n}, nil
}

// Tx is a counted transaction.
type Tx struct {
	tx *sql.Tx
	n  *atomic.Int64
}

var (
	_ gorm.ConnPool    = (*Tx)(nil)
	_ gorm.TxCommitter = (*Tx)(nil)
)

func (t *Tx) Commit() error   { t.n.Add(1); return t.tx.Commit() }
func (t *Tx) Rollback() error { t.n.Add(1); return t.tx.Rollback() }

func (t *Tx) PrepareContext(ctx context.Context, query string) (*sql.Stmt, error) {
	t.n.Add(1)
	return t.tx.PrepareContext(ctx, query)
}

func (t *Tx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	t.n.Add(1)
	return t.tx.ExecContext(ctx, query, args...)
}

func (t *Tx) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	t.n.Add(1)
	return t.tx.QueryContext(ctx, query, args...)
}

func (t *Tx) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	t.n.Add(1)
	return t.tx.QueryRowContext(ctx, query, args...)
}
