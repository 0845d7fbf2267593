package tests

import (
	"context"
	"errors"
	"testing"
	"time"

	mysqldriver "github.com/go-sql-driver/mysql"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gorm.io/driver/mysql"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/plugin/dbresolver"

	"github.com/go-optlock/optlock"
)

// The configuration matrix: every write path of the plugin, in every configuration applications run
// GORM in, on every database, for a version lock and a timestamp lock, in success and in conflict.
// After every call it checks, through a separate pool, that a success is committed exactly as the
// structs say (and that the structs can be written again without a re-read), that a refusal wrote
// nothing and left the structs as they were, and that the caller's pools hold no checked-out
// connection and no open transaction. The paths are in matrix_paths_test.go.

// MtxItem is the matrix's model: own table, both kinds of lock field.
type MtxItem struct {
	ID        uint `gorm:"primaryKey"`
	Qty       int
	Version   int64
	UpdatedAt time.Time
}

func (MtxItem) TableName() string { return "mtx_items" }

// matrixLock is the lock field under test, and the shape of its column.
type matrixLock struct {
	name  string
	field string
	// alter changes the column GORM created into one made by hand, per dialect ("" leaves it).
	alter map[string]string
}

var matrixLocks = []matrixLock{
	{name: "version", field: "version"},
	{name: "updated_at", field: "updated_at"},
	{name: "updated_at hand-made", field: "updated_at", alter: map[string]string{
		// Without a time zone: a wall clock, which the session's TimeZone must not move.
		"postgres": "ALTER TABLE mtx_items ALTER COLUMN updated_at TYPE timestamp(6) without time zone",
		// Whole seconds.
		"mysql": "ALTER TABLE mtx_items MODIFY updated_at datetime NULL",
	}},
}

// matrixConfig is one way an application configures GORM.
type matrixConfig struct {
	name string
	// only names the one dialect the configuration exists on ("": all).
	only   string
	config func() *gorm.Config
	// editDSN changes the caller's DSN (nil: unchanged).
	editDSN func(dsn string) string
	// resolver routes writes through dbresolver to a second pool of the same database.
	resolver bool
	// wrap is how a path's write is called: directly, inside a caller's transaction, dry.
	wrap wrapping
	// keep passes one *gorm.DB, kept from before, to every call of a path.
	keep bool
}

type wrapping int

const (
	direct wrapping = iota
	inCallerTx
	dryRun
)

var matrixConfigs = []matrixConfig{
	{name: "default", config: func() *gorm.Config { return &gorm.Config{} }},
	{name: "SkipDefaultTransaction", config: func() *gorm.Config { return &gorm.Config{SkipDefaultTransaction: true} }},
	{name: "PrepareStmt", config: func() *gorm.Config { return &gorm.Config{PrepareStmt: true} }},
	{name: "SkipDefaultTransaction+PrepareStmt", config: func() *gorm.Config {
		return &gorm.Config{SkipDefaultTransaction: true, PrepareStmt: true}
	}},
	{name: "caller's transaction", config: func() *gorm.Config { return &gorm.Config{} }, wrap: inCallerTx},
	{name: "caller's transaction+SkipDefaultTransaction", config: func() *gorm.Config { return &gorm.Config{SkipDefaultTransaction: true} }, wrap: inCallerTx},
	{name: "DryRun", config: func() *gorm.Config { return &gorm.Config{} }, wrap: dryRun},
	{name: "kept *gorm.DB", config: func() *gorm.Config { return &gorm.Config{} }, keep: true},
	{name: "dbresolver", config: func() *gorm.Config { return &gorm.Config{} }, resolver: true},
	{name: "simple protocol", only: "postgres", config: func() *gorm.Config { return &gorm.Config{} },
		editDSN: func(dsn string) string { return withPostgresParam(dsn, "default_query_exec_mode", "simple_protocol") }},
	{name: "TimeZone east", only: "postgres", config: func() *gorm.Config { return &gorm.Config{} },
		editDSN: func(dsn string) string { return withPostgresParam(dsn, "TimeZone", "Asia/Shanghai") }},
	{name: "TimeZone east+simple protocol", only: "postgres", config: func() *gorm.Config { return &gorm.Config{} },
		editDSN: func(dsn string) string {
			return withPostgresParam(withPostgresParam(dsn, "TimeZone", "Asia/Shanghai"), "default_query_exec_mode", "simple_protocol")
		}},
	{name: "TimeZone west", only: "postgres", config: func() *gorm.Config { return &gorm.Config{} },
		editDSN: func(dsn string) string { return withPostgresParam(dsn, "TimeZone", "America/New_York") }},
	{name: "interpolateParams", only: "mysql", config: func() *gorm.Config { return &gorm.Config{} },
		editDSN: func(dsn string) string {
			return editMySQLDSN(dsn, func(c *mysqldriver.Config) { c.InterpolateParams = true })
		}},
	{name: "loc=UTC", only: "mysql", config: func() *gorm.Config { return &gorm.Config{} },
		editDSN: func(dsn string) string { return editMySQLDSN(dsn, func(c *mysqldriver.Config) { c.Loc = time.UTC }) }},
}

func editMySQLDSN(dsn string, edit func(*mysqldriver.Config)) string {
	cfg, err := mysqldriver.ParseDSN(dsn)
	if err != nil {
		panic(err) // the tests' own DSN
	}
	edit(cfg)
	return cfg.FormatDSN()
}

// matrixRows is how many rows a bulk path writes; a one-row path writes the first.
const matrixRows = 3

// TestConfigurationMatrix runs every path in every configuration.
func TestConfigurationMatrix(t *testing.T) {
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			shared := openObserver(t, d)
			for _, lock := range matrixLocks {
				if lock.alter != nil && lock.alter[d.name] == "" {
					continue
				}
				t.Run(lock.name, func(t *testing.T) {
					recreate(t, shared, &MtxItem{})
					t.Cleanup(func() { _ = shared.Migrator().DropTable(&MtxItem{}) })
					if sql := lock.alter[d.name]; sql != "" {
						require.NoError(t, shared.Exec(sql).Error)
					}
					// A pool of its own, opened after the table: a pool that cached statements on the
					// table as it was before would fail on its new column types.
					observer := openCaller(t, d, shared, &gorm.Config{}, nil).db
					for _, cfg := range matrixConfigs {
						if cfg.only != "" && cfg.only != d.name {
							continue
						}
						leaked := false
						t.Run(cfg.name, func(t *testing.T) {
							leaked = runMatrixConfig(t, d, observer, lock, cfg)
						})
						if leaked {
							// Every later cell would wait behind the leaked transaction's locks.
							t.Fatalf("stopped after %s: a call left a connection checked out, holding its transaction", cfg.name)
						}
					}
				})
			}
		})
	}
}

// matrixEnv is one configuration opened for one kind of path: the caller's database and the pools
// whose connections must all come back.
type matrixEnv struct {
	configured
	cfg   matrixConfig
	lock  matrixLock
	pools []configured
}

// runMatrixConfig runs every path in one configuration. It stops, and reports leaked, as soon as a
// call leaves a connection checked out: its open transaction may hold locks every later call waits on.
func runMatrixConfig(t *testing.T, d dialect, observer *gorm.DB, lock matrixLock, cfg matrixConfig) (leaked bool) {
	envs := map[pluginSetup]*matrixEnv{}
	// Opened on the configuration's t: the pools live until its last path has run.
	env := func(setup pluginSetup) *matrixEnv {
		if e, ok := envs[setup]; ok {
			return e
		}
		var opts []optlock.Option
		if setup.guarded {
			opts = append(opts, optlock.Guard(&MtxItem{}, lock.field))
		}
		if setup.bindVarLimit > 0 {
			opts = append(opts, optlock.WithBindVarLimit(setup.bindVarLimit))
		}
		c := openCaller(t, d, observer, cfg.config(), cfg.editDSN, opts...)
		e := &matrixEnv{configured: c, cfg: cfg, lock: lock, pools: []configured{c}}
		if cfg.resolver {
			e.pools = append(e.pools, routeWrites(t, d, c, cfg))
		}
		t.Cleanup(func() {
			for _, p := range e.pools {
				endLeftTransactions(observer, p.pool, p.appName)
			}
		})
		envs[setup] = e
		return e
	}
	for _, path := range matrixPaths {
		if cfg.wrap == dryRun && !path.dry || cfg.keep && !path.keep {
			continue // not a combination an application can have: see matrixPath
		}
		e := env(path.setup)
		t.Run(path.name, func(t *testing.T) {
			for _, stale := range []bool{false, true} {
				e.runPath(t, path, stale)
			}
		})
		for _, p := range e.pools {
			if p.pool.Stats().InUse > 0 {
				return true
			}
		}
	}
	return false
}

// runPath seeds rows, reads them through the caller's database, moves the last one (stale) or none
// through the observer, calls the path and checks the outcome from outside.
func (e *matrixEnv) runPath(t *testing.T, path matrixPath, stale bool) {
	t.Helper()
	seeded := make([]MtxItem, matrixRows)
	for i := range seeded {
		seeded[i] = MtxItem{Qty: 10, Version: 1, UpdatedAt: time.Now().Add(-time.Hour)}
	}
	require.NoError(t, e.observer.Create(&seeded).Error)
	ids := make([]uint, len(seeded))
	for i, r := range seeded {
		ids[i] = r.ID
	}
	var rows []MtxItem
	require.NoError(t, e.db.Where("id IN ?", ids).Order("id").Find(&rows).Error)
	require.Len(t, rows, matrixRows)
	if path.oneRow {
		rows = rows[:1]
	}
	moved := rows[len(rows)-1].ID
	if stale {
		require.NoError(t, e.observer.Model(&MtxItem{}).Where("id = ?", moved).UpdateColumns(map[string]any{
			"qty": 99, "version": gorm.Expr("version + 5"), "updated_at": time.Now().Add(time.Hour),
		}).Error)
	}
	if path.prepare != nil {
		path.prepare(rows)
	}
	before := e.read(t, ids)
	given := append([]MtxItem(nil), rows...)

	db := e.db
	if e.cfg.keep {
		db = e.kept(t)
	}
	ctx := context.Background()
	var err error
	marker := 0
	switch e.cfg.wrap {
	case dryRun:
		err = path.write(ctx, db.Session(&gorm.Session{DryRun: true}), e.lock.field, &rows)
	case inCallerTx:
		// The caller's own transaction goes on after the call and commits: a marker row written after
		// the call must be committed with whatever the call left.
		marker = 1000 + int(moved)
		txErr := db.Transaction(func(tx *gorm.DB) error {
			err = path.write(ctx, tx, e.lock.field, &rows)
			if err != nil && !errors.Is(err, optlock.ErrConflict) {
				return err
			}
			return tx.Create(&MtxItem{Qty: marker, Version: 1}).Error
		})
		if err == nil || errors.Is(err, optlock.ErrConflict) {
			require.NoError(t, txErr, "a conflict leaves the caller's transaction alive: it commits")
		}
	default:
		err = path.write(ctx, db, e.lock.field, &rows)
	}
	e.requireIdle(t)

	after := e.read(t, ids)
	if marker != 0 {
		var n int64
		require.NoError(t, e.observer.Model(&MtxItem{}).Where("qty = ?", marker).Count(&n).Error)
		assert.EqualValues(t, 1, n, "the caller's transaction committed its own write after the call")
	}
	switch {
	case e.cfg.wrap == dryRun:
		require.NoError(t, err)
		assert.Equal(t, before, after, "a dry run writes nothing")
		assert.Equal(t, given, rows, "a dry run leaves the structs as they were")
	case stale && path.kind != advances && !path.rereads:
		lockErr := requireConflict(t, err, moved)
		assert.Len(t, lockErr.Rows, 1)
		assert.Equal(t, before, after, "a refused write writes nothing")
		assert.Equal(t, given, rows, "a refused write leaves the structs as they were")
	case path.kind == deletes:
		require.NoError(t, err)
		for _, r := range rows {
			assert.NotContains(t, after, r.ID, "deleted, as another pool sees it")
		}
	default:
		require.NoError(t, err)
		e.requireWritten(t, path, stale, before, after, rows)
	}
}

// requireWritten checks a successful write: every written row holds qty 7 and an advanced lock, the
// structs (where the path reports them) say exactly what is stored, and they write again as they are.
func (e *matrixEnv) requireWritten(t *testing.T, path matrixPath, stale bool, before, after map[uint]MtxItem, rows []MtxItem) {
	t.Helper()
	written := rows
	if path.kind == advances || path.rereads {
		written = nil
		for _, r := range rows {
			written = append(written, after[r.ID])
		}
	}
	for _, r := range written {
		got, old := after[r.ID], before[r.ID]
		assert.Equal(t, 7, got.Qty, "row %d written", r.ID)
		if e.lock.field == "version" {
			assert.Equal(t, old.Version+1, got.Version, "row %d: version advanced once", r.ID)
		} else {
			assert.True(t, got.UpdatedAt.After(old.UpdatedAt), "row %d: updated_at advanced from %v to %v", r.ID, old.UpdatedAt, got.UpdatedAt)
		}
		if path.kind == checked && !path.rereads {
			assert.Equal(t, got.Qty, r.Qty, "row %d: the struct says what is stored", r.ID)
			if e.lock.field == "version" {
				assert.Equal(t, got.Version, r.Version, "row %d: the struct's version is the stored one", r.ID)
			}
		}
	}
	if path.kind != checked || path.rereads || e.cfg.wrap == inCallerTx {
		return
	}
	// The structs carry what is stored: the next checked write from them needs no re-read.
	again := append([]MtxItem(nil), rows...)
	require.NoError(t, optlock.UpdateSafely(e.db.Scopes(optlock.WithLock(e.lock.field)), &again, map[string]any{"qty": 8}).Error,
		"the structs a write returned write again without a re-read")
	e.requireIdle(t)
	for _, r := range again {
		assert.Equal(t, 8, e.read(t, []uint{r.ID})[r.ID].Qty)
	}
}

// read returns the rows as another process sees them.
func (e *matrixEnv) read(t *testing.T, ids []uint) map[uint]MtxItem {
	t.Helper()
	var rows []MtxItem
	require.NoError(t, e.observer.Where("id IN ?", ids).Find(&rows).Error)
	byID := make(map[uint]MtxItem, len(rows))
	for _, r := range rows {
		byID[r.ID] = r
	}
	return byID
}

// requireIdle checks every pool of the configuration.
func (e *matrixEnv) requireIdle(t *testing.T) {
	t.Helper()
	for _, p := range e.pools {
		p.requireIdle(t)
	}
}

// kept is a *gorm.DB kept from before and reused, as a repository keeps one: its statement is shared
// by every call made with it.
func (e *matrixEnv) kept(t *testing.T) *gorm.DB {
	t.Helper()
	return e.db.Where("qty >= ?", 0)
}

// routeWrites registers dbresolver on c, routing writes to a second pool on the same database, and
// returns that pool.
func routeWrites(t *testing.T, d dialect, c configured, cfg matrixConfig) configured {
	t.Helper()
	source := openCaller(t, d, c.observer, cfg.config(), cfg.editDSN)
	var dialector gorm.Dialector
	switch d.name {
	case "sqlite":
		dialector = sqliteOn(source.pool)
	case "postgres":
		dialector = postgres.New(postgres.Config{Conn: source.pool})
	case "mysql":
		dialector = mysql.New(mysql.Config{Conn: source.pool})
	}
	require.NoError(t, c.db.Use(dbresolver.Register(dbresolver.Config{Sources: []gorm.Dialector{dialector}})))
	return source
}
