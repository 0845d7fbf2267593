package tests

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gorm.io/driver/mysql"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"

	"github.com/go-optlock/optlock"
	"github.com/go-optlock/optlock/internal/testenv"
)

// The model-based test's databases and pools. A write that leaves a transaction open (a library bug
// the test exists to find) must not hang the rest of the run: the observer waits for locks at most
// 10 s, the server ends a caller's session left idle in a transaction after a few seconds, and a pool
// that leaked a connection is replaced (on SQLite, with a fresh database file) before the next
// sequence.

// mbtEnv is one database under test.
type mbtEnv struct {
	name     string
	dir      string   // SQLite: where the database files go
	observer *gorm.DB // PostgreSQL, MySQL: the observer pool, shared by the configurations
}

func openMbtEnv(t *testing.T, d dialect) *mbtEnv {
	t.Helper()
	// Whether the server is reachable, with openDB's skip-or-fail rule.
	if _, err := d.open(t); err != nil {
		if testenv.Required(d.name) {
			t.Fatalf("%v (required: CI=true or OPTLOCK_REQUIRE_DBS)", err)
		}
		t.Skipf("skipping %s: %v", d.name, err)
	}
	env := &mbtEnv{name: d.name}
	if d.name == "sqlite" {
		env.dir = t.TempDir()
		return env
	}
	app := fmt.Sprintf("mbt_observer_%d", os.Getpid())
	conn, err := sql.Open(env.driver(), env.dsn(app, true))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	env.observer, err = gorm.Open(env.dialector(conn), gormConfig())
	require.NoError(t, err)
	recreate(t, env.observer, &MbtItem{})
	t.Cleanup(func() { _ = env.observer.Migrator().DropTable(&MbtItem{}) })
	return env
}

func (e *mbtEnv) driver() string {
	switch e.name {
	case "sqlite":
		return sqlDriverName
	case "postgres":
		return "pgx"
	}
	return "mysql"
}

// dsn is the database's DSN for a pool named app: the observer's waits for a lock at most 10 s; a
// caller's session left idle in a transaction is ended by the server after 5 s.
func (e *mbtEnv) dsn(app string, observer bool) string {
	switch e.name {
	case "sqlite":
		return sqliteDSN(filepath.Join(e.dir, app+".db"), 5000)
	case "postgres":
		params := []string{"application_name=" + app}
		if observer {
			params = append(params, "lock_timeout=10000")
		} else {
			params = append(params, "idle_in_transaction_session_timeout=5000")
		}
		return withParams(testenv.PostgresDSN(), params)
	}
	if observer {
		return withParams(testenv.MySQLDSN(), []string{"innodb_lock_wait_timeout=10", "lock_wait_timeout=10"})
	}
	return withParams(testenv.MySQLDSN(), []string{"wait_timeout=5"})
}

// withParams adds key=value parameters to a URL DSN (MySQL's, or postgres://...) or to a PostgreSQL
// keyword/value DSN.
func withParams(dsn string, params []string) string {
	if strings.Contains(dsn, "://") || strings.Contains(dsn, "@tcp(") || strings.Contains(dsn, "@unix(") {
		sep := "?"
		if strings.Contains(dsn, "?") {
			sep = "&"
		}
		return dsn + sep + strings.Join(params, "&")
	}
	return dsn + " " + strings.Join(params, " ")
}

func (e *mbtEnv) dialector(conn *sql.DB) gorm.Dialector {
	switch e.name {
	case "sqlite":
		return sqliteOn(conn)
	case "postgres":
		return postgres.New(postgres.Config{Conn: conn})
	}
	return mysql.New(mysql.Config{Conn: conn})
}

// mbtCaller is the caller's side of one GORM configuration: a connection pool of its own (app names
// it in pg_stat_activity), a *gorm.DB per plugin registration on it, and the observer to check it
// with (on SQLite, one per database file).
type mbtCaller struct {
	t        *testing.T
	env      *mbtEnv
	name     string
	cfg      func() *gorm.Config
	pool     *sql.DB
	app      string
	observer *gorm.DB
	handles  map[mbtPlugin]*gorm.DB
	opened   int
}

func (e *mbtEnv) caller(t *testing.T, name string, cfg func() *gorm.Config) *mbtCaller {
	t.Helper()
	c := &mbtCaller{t: t, env: e, name: name, cfg: cfg}
	c.open()
	return c
}

// open opens a fresh pool (and on SQLite a fresh database file with its observer and table).
func (c *mbtCaller) open() {
	t := c.t
	c.opened++
	c.app = fmt.Sprintf("mbt_%d_%s_%d", os.Getpid(), strings.ToLower(strings.NewReplacer("+", "_").Replace(c.name)), c.opened)
	c.handles = map[mbtPlugin]*gorm.DB{}
	c.observer = c.env.observer
	if c.env.name == "sqlite" {
		obs, err := gorm.Open(sqliteOpen(c.env.dsn(c.app, true)), gormConfig())
		require.NoError(t, err)
		t.Cleanup(func() {
			if conn, err := obs.DB(); err == nil {
				_ = conn.Close()
			}
		})
		require.NoError(t, obs.AutoMigrate(&MbtItem{}))
		c.observer = obs
	}
	pool, err := sql.Open(c.env.driver(), c.env.dsn(c.app, false))
	require.NoError(t, err)
	pool.SetMaxOpenConns(4)
	pool.SetConnMaxIdleTime(2 * time.Second)
	c.pool = pool
	app := c.app
	t.Cleanup(func() {
		_ = pool.Close()
		c.terminate(app)
	})
}

// terminate ends, on PostgreSQL, the server sessions of the pool named app that are still open (a
// connection the pool lost to a leaked transaction). MySQL ends them itself (wait_timeout).
func (c *mbtCaller) terminate(app string) {
	if c.env.name != "postgres" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = c.env.observer.WithContext(ctx).Exec("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = ?", app).Error
}

// renewIfLeaked replaces the pool when the last sequence left a connection checked out: it would
// hold its locks, and count in Stats().InUse, for the rest of the run.
func (c *mbtCaller) renewIfLeaked() {
	if c.pool.Stats().InUse == 0 {
		return
	}
	c.terminate(c.app)
	c.open()
}

// handle is the caller's *gorm.DB with the plugin registered as p, on the current pool.
func (c *mbtCaller) handle(p mbtPlugin) *gorm.DB {
	if db, ok := c.handles[p]; ok {
		return db
	}
	cfg := c.cfg()
	cfg.Logger = gormConfig().Logger
	db, err := gorm.Open(c.env.dialector(c.pool), cfg)
	require.NoError(c.t, err)
	opts := []optlock.Option{}
	if p.guard {
		opts = append(opts, optlock.Guard(&MbtItem{}))
	}
	if p.bindVarLimit > 0 {
		opts = append(opts, optlock.WithBindVarLimit(p.bindVarLimit))
	}
	require.NoError(c.t, db.Use(optlock.New(opts...)))
	c.handles[p] = db
	return db
}
