package tests

// Scale-out tests: optlock on a 3-node MariaDB Galera cluster written to through every node at once,
// and on a PostgreSQL primary with a streaming hot-standby replica behind gorm.io/plugin/dbresolver.
//
// They run only when the clusters are there (scripts/galera.sh and scripts/pg-replica.sh start them):
//
//	scripts/galera.sh start && eval "$(scripts/galera.sh env)"          # OPTLOCK_GALERA_DSNS
//	scripts/pg-replica.sh start && eval "$(scripts/pg-replica.sh env)"  # OPTLOCK_PG_PRIMARY_DSN, ..._REPLICA_DSN, ..._LOG
//	go test -run 'Galera|Replica' -v .
//
// Without the variables they skip, saying how to enable them; with OPTLOCK_REQUIRE_CLUSTERS=1 a missing
// variable or an unreachable node fails them instead. Each workload runs for OPTLOCK_SCALE_DURATION
// (default 5s). Tables are prefixed scale_, created and dropped by the tests. Every helper, type and
// variable of this file starts with scale (or Scale), so it stays out of the way of the other test files.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mysqldriver "github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gorm.io/driver/mysql"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"gorm.io/plugin/dbresolver"

	"github.com/go-optlock/optlock"
)

// ScaleCounter is a hot row that writers on several servers increment.
type ScaleCounter struct {
	ID      uint `gorm:"primaryKey;autoIncrement:false"`
	Value   int
	Version int
}

func (ScaleCounter) TableName() string { return "scale_counters" }

// ScaleLog is the other work of a transaction that increments a counter: one row per committed
// transaction, named by the token of the call that committed it.
type ScaleLog struct {
	ID        uint   `gorm:"primaryKey"`
	Token     string `gorm:"size:64;index"`
	CounterID uint
	Value     int // the value the transaction wrote to the counter
}

func (ScaleLog) TableName() string { return "scale_log" }

const (
	scaleHotRows      = 3
	scaleRetryAttempt = 100 // attempts per call: generous, so a call gives up only under extreme contention
)

// --- environment -------------------------------------------------------------------------------------

func scaleRequired() bool { return os.Getenv("OPTLOCK_REQUIRE_CLUSTERS") == "1" }

// scaleUnavailable skips the test, or fails it when OPTLOCK_REQUIRE_CLUSTERS=1.
func scaleUnavailable(t *testing.T, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if scaleRequired() {
		t.Fatalf("%s (required: OPTLOCK_REQUIRE_CLUSTERS=1)", msg)
	}
	t.Skip(msg)
}

// scaleDuration is how long a workload runs: OPTLOCK_SCALE_DURATION ("5s", "1m", or seconds), 5s by default.
func scaleDuration(t *testing.T) time.Duration {
	t.Helper()
	v := os.Getenv("OPTLOCK_SCALE_DURATION")
	if v == "" {
		return 5 * time.Second
	}
	if d, err := time.ParseDuration(v); err == nil && d > 0 {
		return d
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil && s > 0 {
		return time.Duration(s * float64(time.Second))
	}
	t.Fatalf("OPTLOCK_SCALE_DURATION=%q is not a duration (e.g. 5s)", v)
	return 0
}

func scaleGormConfig() *gorm.Config {
	level := logger.Silent
	if os.Getenv("OPTLOCK_SQL_LOG") != "" {
		level = logger.Info
	}
	return &gorm.Config{Logger: logger.Default.LogMode(level)}
}

func scaleClose(t *testing.T, db *gorm.DB) {
	t.Cleanup(func() {
		if conn, err := db.DB(); err == nil {
			_ = conn.Close()
		}
	})
}

func scaleRandomSuffix() string { return strconv.FormatUint(rand.Uint64(), 36) }

// --- Galera ------------------------------------------------------------------------------------------

const scaleGaleraHow = `start the cluster with scripts/galera.sh start and eval "$(scripts/galera.sh env)"`

// scaleGaleraNode is one node of the cluster: its name, a *gorm.DB whose connections all go to it,
// and a second one whose reads wait until the node has applied every write committed anywhere.
type scaleGaleraNode struct {
	name   string
	db     *gorm.DB
	synced *gorm.DB
}

// scaleGaleraNodes opens every node of OPTLOCK_GALERA_DSNS, checks that each is Synced in one cluster
// of that size, and registers the plugin on db when withPlugin is set.
func scaleGaleraNodes(t *testing.T, withPlugin bool) []scaleGaleraNode {
	t.Helper()
	env := os.Getenv("OPTLOCK_GALERA_DSNS")
	if env == "" {
		scaleUnavailable(t, "Galera tests: OPTLOCK_GALERA_DSNS is not set; to run them, %s", scaleGaleraHow)
	}
	dsns := strings.Split(env, ",")
	if len(dsns) < 2 {
		t.Fatalf("OPTLOCK_GALERA_DSNS names %d node(s); the tests need at least 2", len(dsns))
	}
	nodes := make([]scaleGaleraNode, len(dsns))
	seen := map[string]bool{}
	for i, dsn := range dsns {
		cfg, err := mysqldriver.ParseDSN(strings.TrimSpace(dsn))
		require.NoError(t, err, "OPTLOCK_GALERA_DSNS entry %d", i+1)
		cfg.Timeout = 5 * time.Second
		db, err := gorm.Open(mysql.Open(cfg.FormatDSN()), scaleGormConfig())
		if err != nil {
			scaleUnavailable(t, "Galera node %s unreachable: %v; %s", cfg.Addr, err, scaleGaleraHow)
		}
		scaleClose(t, db)
		// Unknown DSN parameters are session variables: every read on these connections first waits
		// until the node has applied every write the cluster committed before it.
		syncCfg := cfg.Clone()
		if syncCfg.Params == nil {
			syncCfg.Params = map[string]string{}
		}
		syncCfg.Params["wsrep_sync_wait"] = "1"
		synced, err := gorm.Open(mysql.Open(syncCfg.FormatDSN()), scaleGormConfig())
		if err != nil {
			scaleUnavailable(t, "Galera node %s unreachable: %v; %s", cfg.Addr, err, scaleGaleraHow)
		}
		scaleClose(t, synced)

		var name, state, size string
		if err := db.Raw("SELECT @@wsrep_node_name").Scan(&name).Error; err != nil {
			scaleUnavailable(t, "%s is not a Galera node: %v", cfg.Addr, err)
		}
		state = scaleGaleraStatus(t, db, "wsrep_local_state_comment")
		size = scaleGaleraStatus(t, db, "wsrep_cluster_size")
		if state != "Synced" || size != strconv.Itoa(len(dsns)) {
			scaleUnavailable(t, "Galera node %s (%s) is %q in a cluster of %q, want Synced in a cluster of %d; %s",
				cfg.Addr, name, state, size, len(dsns), scaleGaleraHow)
		}
		if seen[name] {
			t.Fatalf("OPTLOCK_GALERA_DSNS names node %s twice", name)
		}
		seen[name] = true
		if withPlugin {
			require.NoError(t, db.Use(optlock.New()))
		}
		nodes[i] = scaleGaleraNode{name: fmt.Sprintf("%s (%s)", name, cfg.Addr), db: db, synced: synced}
	}
	return nodes
}

func scaleGaleraStatus(t *testing.T, db *gorm.DB, variable string) string {
	t.Helper()
	var value string
	row := db.Raw("SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = ?", strings.ToUpper(variable)).Row()
	if err := row.Scan(&value); err != nil {
		scaleUnavailable(t, "reading status %s: %v", variable, err)
	}
	return value
}

// scaleGaleraSetup creates scale_counters (scaleHotRows rows at 0) and an empty scale_log through the
// first node, waits until every node has them, and drops them when the test ends.
func scaleGaleraSetup(t *testing.T, nodes []scaleGaleraNode) {
	t.Helper()
	db := nodes[0].db
	require.NoError(t, db.Migrator().DropTable(&ScaleCounter{}, &ScaleLog{}))
	require.NoError(t, db.AutoMigrate(&ScaleCounter{}, &ScaleLog{}))
	t.Cleanup(func() { _ = db.Migrator().DropTable(&ScaleCounter{}, &ScaleLog{}) })
	rows := make([]ScaleCounter, scaleHotRows)
	for i := range rows {
		rows[i].ID = uint(i + 1)
	}
	require.NoError(t, db.Create(&rows).Error)
	for _, n := range nodes {
		var count int64
		require.NoError(t, n.synced.Model(&ScaleCounter{}).Count(&count).Error, n.name)
		require.EqualValues(t, scaleHotRows, count, "%s has the seeded rows", n.name)
	}
}

// scaleGaleraFinal reads the counters from every node (each read waits for the node to catch up),
// requires all nodes to agree, and returns them by id.
func scaleGaleraFinal(t *testing.T, nodes []scaleGaleraNode) map[uint]ScaleCounter {
	t.Helper()
	var first map[uint]ScaleCounter
	for _, n := range nodes {
		var rows []ScaleCounter
		require.NoError(t, n.synced.Order("id").Find(&rows).Error, n.name)
		got := map[uint]ScaleCounter{}
		for _, r := range rows {
			got[r.ID] = r
		}
		if first == nil {
			first = got
			continue
		}
		require.Equal(t, first, got, "%s agrees with %s", n.name, nodes[0].name)
	}
	return first
}

// scaleMode is one kind of read-modify-write the workers run.
type scaleMode string

const (
	scaleModeTx     scaleMode = "transaction (read + write + log row)"
	scaleModeSingle scaleMode = "single row, GORM's default transaction"
	scaleModeSkip   scaleMode = "single row, SkipDefaultTransaction"
	scaleModeBulk   scaleMode = "bulk, all rows in one UPDATE"
)

var scaleModes = []scaleMode{scaleModeTx, scaleModeSingle, scaleModeSkip, scaleModeBulk}

// scaleWorkersPerNode says how many goroutines per node run each mode.
var scaleWorkersPerNode = map[scaleMode]int{scaleModeTx: 2, scaleModeSingle: 1, scaleModeSkip: 1, scaleModeBulk: 1}

// scaleWriters is the number of writers per node.
func scaleWriters() int {
	n := 0
	for _, w := range scaleWorkersPerNode {
		n += w
	}
	return n
}

// scaleSession is the *gorm.DB a mode writes through.
func scaleSession(db *gorm.DB, mode scaleMode) *gorm.DB {
	if mode == scaleModeSkip {
		return db.Session(&gorm.Session{SkipDefaultTransaction: true})
	}
	return db
}

// scaleTally counts what one mode's calls did.
type scaleTally struct {
	calls, ok, failed atomic.Int64 // calls made; calls that succeeded; calls that returned an error
	retries           atomic.Int64 // attempts that failed and were run again
	// What the failed attempts were:
	stale        atomic.Int64 // *OptimisticLockError: the lock check refused a stale read
	dbConflict   atomic.Int64 // ErrConflict from the database's 1213 on a write outside a caller transaction
	aborted      atomic.Int64 // ErrTxAborted: the database aborted the caller's transaction mid-way
	certCommit   atomic.Int64 // a raw 1213 at COMMIT: Galera's certification failure
	certStmt     atomic.Int64 // a raw 1213 from another statement of the transaction (a brute-force abort)
	unknownRows  atomic.Int64 // conflicts whose details could not be read
	unknownWhy   atomic.Pointer[string]
	other        atomic.Int64 // errors of no kind above (counted without optlock only)
	otherWhy     atomic.Pointer[string]
	maxAttempts  atomic.Int64
	totalElapsed atomic.Int64 // nanoseconds spent in successful calls
	slowest      atomic.Int64 // nanoseconds of the slowest call
}

func (s *scaleTally) took(d time.Duration) {
	for {
		old := s.slowest.Load()
		if int64(d) <= old || s.slowest.CompareAndSwap(old, int64(d)) {
			return
		}
	}
}

func (s *scaleTally) attempts(n int64) {
	for {
		old := s.maxAttempts.Load()
		if n <= old || s.maxAttempts.CompareAndSwap(old, n) {
			return
		}
	}
}

// scaleProblems collects what workers found wrong, to be reported once they are done.
type scaleProblems struct {
	mu   sync.Mutex
	list []string
	n    int
}

func (p *scaleProblems) add(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n++
	if len(p.list) < 10 {
		p.list = append(p.list, fmt.Sprintf(format, args...))
	}
}

func (p *scaleProblems) report(t *testing.T) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range p.list {
		t.Error(s)
	}
	if p.n > len(p.list) {
		t.Errorf("... and %d more problems", p.n-len(p.list))
	}
}

// scaleClassifyMySQL files an error a caller saw under one of the kinds a retry is meant for, and
// reports what is wrong with it otherwise. committing says the attempt's function had returned nil,
// so the error came from COMMIT.
func scaleClassifyMySQL(tally *scaleTally, err error, committing bool) string {
	var myErr *mysqldriver.MySQLError
	hasDriverErr := errors.As(err, &myErr)
	var lockErr *optlock.OptimisticLockError
	switch {
	case errors.Is(err, optlock.ErrTxAborted):
		tally.aborted.Add(1)
		if errors.Is(err, optlock.ErrConflict) {
			return fmt.Sprintf("ErrTxAborted that also matches ErrConflict: %v", err)
		}
		if !hasDriverErr {
			return fmt.Sprintf("ErrTxAborted without the MySQL error reachable: %v", err)
		}
	case errors.As(err, &lockErr):
		tally.stale.Add(1)
		if lockErr.DetailsErr != nil {
			tally.unknownRows.Add(1)
			why := lockErr.DetailsErr.Error()
			tally.unknownWhy.CompareAndSwap(nil, &why)
		}
		if len(lockErr.ConflictIDs) == 0 || len(lockErr.Rows) != len(lockErr.ConflictIDs) {
			return fmt.Sprintf("conflict naming no row: %#v", lockErr)
		}
	case errors.Is(err, optlock.ErrConflict):
		tally.dbConflict.Add(1)
		if !hasDriverErr || myErr.Number != 1213 {
			return fmt.Sprintf("ErrConflict that is neither a lock conflict nor a reachable MySQL 1213: %v", err)
		}
	case hasDriverErr && myErr.Number == 1213 && optlock.IsRetryable(err):
		if committing {
			tally.certCommit.Add(1)
		} else {
			tally.certStmt.Add(1)
		}
	default:
		return fmt.Sprintf("unexpected error (%T): %v", err, err)
	}
	return ""
}

// scaleCaseExpr is `CASE id WHEN 1 THEN v1+1 ... END`: every row's value read, plus one.
func scaleCaseExpr(rows []ScaleCounter) any {
	var b strings.Builder
	args := make([]any, 0, 2*len(rows))
	b.WriteString("CASE id")
	for _, r := range rows {
		b.WriteString(" WHEN ? THEN ?")
		args = append(args, r.ID, r.Value+1)
	}
	b.WriteString(" END")
	return gorm.Expr(b.String(), args...)
}

// scaleRun runs work on every node's workers until the deadline; each worker gets its node, its
// mode and a worker number unique across nodes.
func scaleRun(nodes []scaleGaleraNode, d time.Duration, work func(node scaleGaleraNode, mode scaleMode, worker int, deadline time.Time)) time.Duration {
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	worker := 0
	for _, n := range nodes {
		for _, mode := range scaleModes {
			for range scaleWorkersPerNode[mode] {
				worker++
				w := worker
				wg.Go(func() { work(n, mode, w, deadline) })
			}
		}
	}
	wg.Wait()
	return time.Since(start)
}

// Writers on every node of a Galera cluster increment a few hot counters at once, in a transaction
// with a log row (optlock.Transaction), and with optlock.Retry around one lock-checked write of one row
// or of all rows. Galera certifies transactions only at COMMIT and reports a lost certification as a
// deadlock (1213): the whole transaction must run again. At the end, every node holds exactly the
// increments that succeeded, and exactly the log rows of the transactions that committed.
func TestGaleraOptlockLosesNoUpdate(t *testing.T) {
	nodes := scaleGaleraNodes(t, true)
	d := scaleDuration(t)
	scaleGaleraSetup(t, nodes)

	tallies := map[scaleMode]*scaleTally{}
	for _, m := range scaleModes {
		tallies[m] = &scaleTally{}
	}
	var problems scaleProblems
	var mu sync.Mutex
	increments := map[uint]int{}   // successful increments per counter
	committed := map[string]uint{} // token of every committed transaction -> its counter

	elapsed := scaleRun(nodes, d, func(node scaleGaleraNode, mode scaleMode, worker int, deadline time.Time) {
		tally := tallies[mode]
		db := scaleSession(node.db, mode)
		for seq := 0; time.Now().Before(deadline); seq++ {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			id := uint(rand.IntN(scaleHotRows) + 1)
			token := fmt.Sprintf("w%d-%d", worker, seq)
			attempts := int64(1)
			committing := false
			notify := optlock.RetryNotify(func(_ int, err error) {
				attempts++
				tally.retries.Add(1)
				if p := scaleClassifyMySQL(tally, err, committing); p != "" {
					problems.add("%s on %s: %s", mode, node.name, p)
				}
			})
			opts := []optlock.RetryOption{optlock.RetryAttempts(scaleRetryAttempt), notify}
			var touched []uint
			began := time.Now()
			var err error
			switch mode {
			case scaleModeTx:
				touched = []uint{id}
				err = optlock.Transaction(ctx, db, func(tx *gorm.DB) error {
					committing = false
					var row ScaleCounter
					if err := tx.First(&row, id).Error; err != nil {
						return err
					}
					next := row.Value + 1
					if err := optlock.UpdateSafely(tx, &row, map[string]any{"value": next}).Error; err != nil {
						return err
					}
					if err := tx.Create(&ScaleLog{Token: token, CounterID: id, Value: next}).Error; err != nil {
						return err
					}
					committing = true
					return nil
				}, opts...)
			case scaleModeSingle, scaleModeSkip:
				touched = []uint{id}
				err = optlock.Retry(ctx, func(ctx context.Context) error {
					var row ScaleCounter
					if err := db.WithContext(ctx).First(&row, id).Error; err != nil {
						return err
					}
					err := optlock.UpdateSafely(db.WithContext(ctx), &row, map[string]any{"value": row.Value + 1}).Error
					var lockErr *optlock.OptimisticLockError
					if errors.As(err, &lockErr) && (len(lockErr.ConflictIDs) != 1 || lockErr.ConflictIDs[0] != any(id)) {
						problems.add("conflict on row %d names %v", id, lockErr.ConflictIDs)
					}
					return err
				}, opts...)
			case scaleModeBulk:
				for i := range scaleHotRows {
					touched = append(touched, uint(i+1))
				}
				err = optlock.Retry(ctx, func(ctx context.Context) error {
					var rows []ScaleCounter
					if err := db.WithContext(ctx).Order("id").Find(&rows).Error; err != nil {
						return err
					}
					if len(rows) != scaleHotRows {
						return fmt.Errorf("read %d rows, want %d", len(rows), scaleHotRows)
					}
					return optlock.UpdateSafely(db.WithContext(ctx), &rows, map[string]any{"value": scaleCaseExpr(rows)}).Error
				}, opts...)
			}
			cancel()
			tally.calls.Add(1)
			tally.attempts(attempts)
			tally.took(time.Since(began))
			if err != nil {
				tally.failed.Add(1)
				if !optlock.IsRetryable(err) {
					problems.add("%s on %s gave up with an error a retry is not meant for: %v", mode, node.name, err)
				}
				continue
			}
			tally.ok.Add(1)
			tally.totalElapsed.Add(int64(time.Since(began)))
			mu.Lock()
			for _, c := range touched {
				increments[c]++
			}
			if mode == scaleModeTx {
				committed[token] = id
			}
			mu.Unlock()
		}
	})
	problems.report(t)

	final := scaleGaleraFinal(t, nodes)
	var total scaleTally
	for _, m := range scaleModes {
		s := tallies[m]
		assert.Positive(t, s.ok.Load(), "%s: some calls succeeded", m)
		scaleLogTally(t, string(m), s, elapsed)
		total.calls.Add(s.calls.Load())
		total.ok.Add(s.ok.Load())
		total.failed.Add(s.failed.Load())
		total.retries.Add(s.retries.Load())
	}
	lost := 0
	for id := uint(1); id <= scaleHotRows; id++ {
		row := final[id]
		assert.Equal(t, increments[id], row.Value, "counter %d equals the increments that succeeded", id)
		assert.Equal(t, increments[id], row.Version, "counter %d: one version per increment", id)
		lost += increments[id] - row.Value
	}

	// Every committed transaction left its log row, once, on every node; no failed attempt left one.
	for _, n := range nodes {
		var logs []ScaleLog
		require.NoError(t, n.synced.Find(&logs).Error, n.name)
		assert.Len(t, logs, len(committed), "%s: one log row per committed transaction", n.name)
		seen := map[string]bool{}
		values := map[uint]map[int]bool{}
		for _, l := range logs {
			c, ok := committed[l.Token]
			assert.True(t, ok, "%s: log row %q belongs to a committed transaction", n.name, l.Token)
			assert.False(t, seen[l.Token], "%s: log row %q is there once", n.name, l.Token)
			assert.Equal(t, c, l.CounterID, "%s: log row %q names its counter", n.name, l.Token)
			seen[l.Token] = true
			if values[l.CounterID] == nil {
				values[l.CounterID] = map[int]bool{}
			}
			assert.False(t, values[l.CounterID][l.Value], "%s: two committed transactions wrote %d to counter %d: a lost update", n.name, l.Value, l.CounterID)
			values[l.CounterID][l.Value] = true
		}
	}
	t.Logf("Galera, %d nodes, %d writers, %d hot rows, %s with optlock: %d calls, %d succeeded, %d gave up, %d retries, %d lost updates (%.0f successful calls/s)",
		len(nodes), len(nodes)*scaleWriters(), scaleHotRows, elapsed.Round(10*time.Millisecond), total.calls.Load(), total.ok.Load(), total.failed.Load(),
		total.retries.Load(), lost, float64(total.ok.Load())/elapsed.Seconds())
}

func scaleLogTally(t *testing.T, what string, s *scaleTally, elapsed time.Duration) {
	t.Helper()
	mean := time.Duration(0)
	if n := s.ok.Load(); n > 0 {
		mean = time.Duration(s.totalElapsed.Load() / n)
	}
	t.Logf("  %-38s calls %5d  ok %5d  failed %3d  retries %5d  [stale refused %5d, db conflict 1213 %4d, tx aborted %4d, certification failed at COMMIT %4d, raw 1213 elsewhere %4d, details unknown %3d, other %d]  max attempts %3d  mean %s  slowest %s",
		what, s.calls.Load(), s.ok.Load(), s.failed.Load(), s.retries.Load(), s.stale.Load(), s.dbConflict.Load(), s.aborted.Load(),
		s.certCommit.Load(), s.certStmt.Load(), s.unknownRows.Load(), s.other.Load(), s.maxAttempts.Load(),
		mean.Round(100*time.Microsecond), time.Duration(s.slowest.Load()).Round(time.Millisecond))
	if why := s.unknownWhy.Load(); why != nil {
		t.Logf("  %-38s conflict details could not be read, e.g.: %s", "", *why)
	}
	if why := s.otherWhy.Load(); why != nil {
		t.Logf("  %-38s other error, e.g.: %s", "", *why)
	}
}

// The same workload without optlock: a plain read, then db.Model(&row).Update("value", read+1) (or one
// UPDATE of all rows), no version check, no retry. Galera's certification stops some concurrent
// writes across nodes, but a stale read followed by a write that certifies overwrites an increment:
// the figure is logged, not asserted.
func TestGaleraWithoutOptlockLosesUpdates(t *testing.T) {
	nodes := scaleGaleraNodes(t, false)
	d := scaleDuration(t)
	scaleGaleraSetup(t, nodes)

	tallies := map[scaleMode]*scaleTally{}
	for _, m := range scaleModes {
		tallies[m] = &scaleTally{}
	}
	var mu sync.Mutex
	increments := map[uint]int{}
	committed := 0
	elapsed := scaleRun(nodes, d, func(node scaleGaleraNode, mode scaleMode, worker int, deadline time.Time) {
		tally := tallies[mode]
		db := scaleSession(node.db, mode)
		for seq := 0; time.Now().Before(deadline); seq++ {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			id := uint(rand.IntN(scaleHotRows) + 1)
			var touched []uint
			committing := false
			began := time.Now()
			var err error
			switch mode {
			case scaleModeTx:
				touched = []uint{id}
				err = db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
					var row ScaleCounter
					if err := tx.First(&row, id).Error; err != nil {
						return err
					}
					if err := tx.Model(&row).Update("value", row.Value+1).Error; err != nil {
						return err
					}
					if err := tx.Create(&ScaleLog{Token: fmt.Sprintf("w%d-%d", worker, seq), CounterID: id, Value: row.Value}).Error; err != nil {
						return err
					}
					committing = true
					return nil
				})
			case scaleModeSingle, scaleModeSkip:
				touched = []uint{id}
				var row ScaleCounter
				if err = db.WithContext(ctx).First(&row, id).Error; err == nil {
					err = db.WithContext(ctx).Model(&row).Update("value", row.Value+1).Error
				}
			case scaleModeBulk:
				var rows []ScaleCounter
				if err = db.WithContext(ctx).Order("id").Find(&rows).Error; err == nil {
					for _, r := range rows {
						touched = append(touched, r.ID)
					}
					ids := slices.Clone(touched)
					err = db.WithContext(ctx).Model(&ScaleCounter{}).Where("id IN ?", ids).Update("value", scaleCaseExpr(rows)).Error
				}
			}
			cancel()
			tally.calls.Add(1)
			tally.took(time.Since(began))
			if err != nil {
				tally.failed.Add(1)
				if p := scaleClassifyMySQL(tally, err, committing); p != "" {
					// Without optlock nothing is promised: count it, show one.
					tally.other.Add(1)
					tally.otherWhy.CompareAndSwap(nil, &p)
				}
				continue
			}
			tally.ok.Add(1)
			tally.attempts(1)
			tally.totalElapsed.Add(int64(time.Since(began)))
			mu.Lock()
			for _, c := range touched {
				increments[c]++
			}
			if mode == scaleModeTx {
				committed++
			}
			mu.Unlock()
		}
	})

	final := scaleGaleraFinal(t, nodes)
	lost, succeeded := 0, 0
	for id := uint(1); id <= scaleHotRows; id++ {
		lost += increments[id] - final[id].Value
		succeeded += increments[id]
		assert.GreaterOrEqual(t, increments[id], final[id].Value, "counter %d: never more than the increments made", id)
	}
	var total scaleTally
	for _, m := range scaleModes {
		s := tallies[m]
		scaleLogTally(t, string(m)+", no optlock", s, elapsed)
		total.calls.Add(s.calls.Load())
		total.ok.Add(s.ok.Load())
	}
	var logs int64
	require.NoError(t, nodes[0].synced.Model(&ScaleLog{}).Count(&logs).Error)
	assert.EqualValues(t, committed, logs, "one log row per committed transaction")
	pct := 0.0
	if succeeded > 0 {
		pct = 100 * float64(lost) / float64(succeeded)
	}
	t.Logf("Galera, %d nodes, %d writers, %d hot rows, %s WITHOUT optlock: %d calls, %d reported success, %d increments lost of %d (%.1f%%)",
		len(nodes), len(nodes)*scaleWriters(), scaleHotRows, elapsed.Round(10*time.Millisecond), total.calls.Load(), total.ok.Load(), lost, succeeded, pct)
}

// --- PostgreSQL primary + streaming replica behind dbresolver ----------------------------------------

const scalePGHow = `start them with scripts/pg-replica.sh start and eval "$(scripts/pg-replica.sh env)"`

// scalePG is the primary and the replica, each opened directly (for setup, checks and pausing replay),
// under an application_name of their own so the statement-log checks never see them.
type scalePG struct {
	primaryDSN, replicaDSN string
	primary, replica       *gorm.DB
}

func scalePGServers(t *testing.T) *scalePG {
	t.Helper()
	primaryDSN, replicaDSN := os.Getenv("OPTLOCK_PG_PRIMARY_DSN"), os.Getenv("OPTLOCK_PG_REPLICA_DSN")
	if primaryDSN == "" || replicaDSN == "" {
		scaleUnavailable(t, "replica tests: OPTLOCK_PG_PRIMARY_DSN and OPTLOCK_PG_REPLICA_DSN are not both set; to run them, %s", scalePGHow)
	}
	pg := &scalePG{primaryDSN: primaryDSN, replicaDSN: replicaDSN}
	admin := "optlock_scale_admin_" + scaleRandomSuffix()
	var err error
	if pg.primary, err = gorm.Open(postgres.Open(scaleWithApp(primaryDSN, admin)), scaleGormConfig()); err != nil {
		scaleUnavailable(t, "PostgreSQL primary unreachable: %v; %s", err, scalePGHow)
	}
	scaleClose(t, pg.primary)
	if pg.replica, err = gorm.Open(postgres.Open(scaleWithApp(replicaDSN, admin)), scaleGormConfig()); err != nil {
		scaleUnavailable(t, "PostgreSQL replica unreachable: %v; %s", err, scalePGHow)
	}
	scaleClose(t, pg.replica)
	var primaryInRecovery, replicaInRecovery bool
	require.NoError(t, pg.primary.Raw("SELECT pg_is_in_recovery()").Scan(&primaryInRecovery).Error)
	require.NoError(t, pg.replica.Raw("SELECT pg_is_in_recovery()").Scan(&replicaInRecovery).Error)
	if primaryInRecovery || !replicaInRecovery {
		scaleUnavailable(t, "OPTLOCK_PG_PRIMARY_DSN must be a primary and OPTLOCK_PG_REPLICA_DSN a hot standby (in recovery: %v, %v); %s",
			primaryInRecovery, replicaInRecovery, scalePGHow)
	}
	return pg
}

// scaleWithApp adds connect_timeout and application_name to a keyword/value or URL DSN.
func scaleWithApp(dsn, app string) string {
	if strings.Contains(dsn, "://") {
		sep := "?"
		if strings.Contains(dsn, "?") {
			sep = "&"
		}
		return dsn + sep + "connect_timeout=5&application_name=" + app
	}
	return dsn + " connect_timeout=5 application_name=" + app
}

// scaleRouted opens what an application behind dbresolver has: gorm.Open given the REPLICA, with the
// primary as the only source and the replica as the only replica; optlock registered before or after
// the resolver. Every connection carries application_name app.
func (pg *scalePG) scaleRouted(t *testing.T, app string, pluginFirst bool) *gorm.DB {
	t.Helper()
	db, err := gorm.Open(postgres.Open(scaleWithApp(pg.replicaDSN, app)), scaleGormConfig())
	require.NoError(t, err)
	scaleClose(t, db)
	resolver := dbresolver.Register(dbresolver.Config{
		Sources:  []gorm.Dialector{postgres.Open(scaleWithApp(pg.primaryDSN, app))},
		Replicas: []gorm.Dialector{postgres.Open(scaleWithApp(pg.replicaDSN, app))},
	})
	plugins := []gorm.Plugin{resolver, optlock.New()}
	if pluginFirst {
		plugins[0], plugins[1] = plugins[1], plugins[0]
	}
	for _, p := range plugins {
		require.NoError(t, db.Use(p))
	}
	t.Cleanup(func() {
		_ = resolver.Call(func(pool gorm.ConnPool) error {
			if c, ok := pool.(io.Closer); ok {
				_ = c.Close()
			}
			return nil
		})
	})
	return db
}

// waitForReplica waits until the replica has replayed everything the primary has written so far.
func (pg *scalePG) waitForReplica(t *testing.T) {
	t.Helper()
	var lsn string
	require.NoError(t, pg.primary.Raw("SELECT pg_current_wal_lsn()::text").Scan(&lsn).Error)
	deadline := time.Now().Add(30 * time.Second)
	for {
		var caughtUp bool
		require.NoError(t, pg.replica.Raw("SELECT pg_wal_lsn_diff(pg_last_wal_replay_lsn(), ?::pg_lsn) >= 0", lsn).Scan(&caughtUp).Error)
		if caughtUp {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the replica did not replay up to %s within 30s", lsn)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// pauseReplay stops the replica from applying WAL until resume is called (or the test ends), so
// whatever is written on the primary meanwhile is stale on the replica.
func (pg *scalePG) pauseReplay(t *testing.T) (resume func()) {
	t.Helper()
	require.NoError(t, pg.replica.Exec("SELECT pg_wal_replay_pause()").Error)
	var once sync.Once
	resume = func() {
		once.Do(func() {
			if err := pg.replica.Exec("SELECT pg_wal_replay_resume()").Error; err != nil {
				t.Errorf("resuming WAL replay on the replica: %v", err)
			}
		})
	}
	t.Cleanup(resume)
	deadline := time.Now().Add(10 * time.Second)
	for {
		var state string
		require.NoError(t, pg.replica.Raw("SELECT pg_get_wal_replay_pause_state()").Scan(&state).Error)
		if state == "paused" {
			return resume
		}
		if time.Now().After(deadline) {
			t.Fatalf("WAL replay on the replica is %q, not paused, after 10s", state)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// scaleSeedPG recreates scale_counters on the primary with rows 1..n (value 0, version 1), waits for
// the replica to have them, and drops the table when the test ends.
func (pg *scalePG) scaleSeed(t *testing.T, n int) {
	t.Helper()
	require.NoError(t, pg.primary.Migrator().DropTable(&ScaleCounter{}))
	require.NoError(t, pg.primary.AutoMigrate(&ScaleCounter{}))
	t.Cleanup(func() { _ = pg.primary.Migrator().DropTable(&ScaleCounter{}) })
	rows := make([]ScaleCounter, n)
	for i := range rows {
		rows[i] = ScaleCounter{ID: uint(i + 1), Version: 1}
	}
	require.NoError(t, pg.primary.Create(&rows).Error)
	pg.waitForReplica(t)
}

// scaleErrTreatedAsConflict marks an ErrNotMatched the replica workload retries as a conflict.
var scaleErrTreatedAsConflict = fmt.Errorf("ErrNotMatched for a write without conditions, retried as a %w", optlock.ErrConflict)

// Readers read from the replica, which lags the primary (replication is asynchronous), and write back
// with UpdateSafely, which dbresolver sends to the primary. A stale read is refused, its conflict
// details (read on the primary) name the row's version there, and Retry converges: no increment is
// lost. Half the writers re-read from the replica on every attempt, half from the primary once an
// attempt was refused. Two writers have a row of their own: every conflict they see is the replica's
// lag (their own previous write not replayed yet).
func TestReplicaStaleReadsAreRefusedAndRetried(t *testing.T) {
	pg := scalePGServers(t)
	d := scaleDuration(t)
	const soloReplica, soloPrimary = scaleHotRows + 1, scaleHotRows + 2
	pg.scaleSeed(t, soloPrimary)
	app := "optlock_scale_" + scaleRandomSuffix()
	// Half the writers use a *gorm.DB with dbresolver registered first, half one with optlock first.
	dbs := []*gorm.DB{pg.scaleRouted(t, app, false), pg.scaleRouted(t, app, true)}

	type group struct {
		name    string
		writers int
		row     uint // 0: a random hot row
		primary bool // re-read from the primary once an attempt was refused
		calls   int
		ok      int
		retries int
		stale   int // refused: the row changed since it was read
		ahead   int // of which the replica had shown a commit the primary's next statement did not yet see
		// notMatched counts ErrNotMatched for a write with no condition but its lock: the replica had
		// shown a commit the primary's UPDATE did not yet see, and its conflict query, a moment later,
		// did. optlock wrongly reports that as "not a conflict" (not retryable); the writers here
		// treat it as a conflict, as an application reading from a replica has to.
		notMatched int
		canceled   int // replica reads cancelled by a conflict with recovery (40001)
		most       int // most attempts one call needed
	}
	groups := []*group{
		{name: "hot rows, re-read from the replica", writers: 3},
		{name: "hot rows, re-read from the primary", writers: 3, primary: true},
		{name: "own row, re-read from the replica", writers: 1, row: soloReplica},
		{name: "own row, re-read from the primary", writers: 1, row: soloPrimary, primary: true},
	}
	var (
		mu         sync.Mutex
		increments = map[uint]int{}
		problems   scaleProblems
		wg         sync.WaitGroup
	)
	start := time.Now()
	deadline := start.Add(d)
	w := 0
	for _, g := range groups {
		for range g.writers {
			db := dbs[w%2]
			w++
			wg.Go(func() {
				for time.Now().Before(deadline) {
					id := g.row
					if id == 0 {
						id = uint(rand.IntN(scaleHotRows) + 1)
					}
					ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
					var c group
					attempts := 0
					err := optlock.Retry(ctx, func(ctx context.Context) error {
						attempts++
						reader := db.WithContext(ctx)
						if g.primary && attempts > 1 {
							reader = reader.Clauses(dbresolver.Write)
						}
						var row ScaleCounter
						if err := reader.First(&row, id).Error; err != nil {
							return err
						}
						err := optlock.UpdateSafely(db.WithContext(ctx), &row, map[string]any{"value": row.Value + 1}).Error
						var lockErr *optlock.OptimisticLockError
						if errors.As(err, &lockErr) {
							// The details come from the primary: a version other than the one read.
							switch {
							case len(lockErr.Rows) != 1 || lockErr.Rows[0].ID != any(id):
								problems.add("conflict on row %d names %v", id, lockErr.ConflictIDs)
							case lockErr.Rows[0].Unknown && lockErr.DetailsErr != nil && !errors.As(lockErr.DetailsErr, new(*pgconn.PgError)):
								// The row held what was read again when its details were read: a commit the
								// replica showed first became visible on the primary in between. A conflict,
								// with the reason; the details query itself did not fail.
								c.ahead++
							case lockErr.Rows[0].Unknown || lockErr.Rows[0].Deleted:
								problems.add("conflict on row %d without its current state: %v", id, err)
							default:
								v, ok := lockErr.Rows[0].Current["version"].(int)
								switch {
								case !ok || v == row.Version:
									problems.add("conflict on row %d read at version %d says the version is now %#v", id, row.Version, lockErr.Rows[0].Current["version"])
								case v < row.Version:
									// PostgreSQL makes a commit visible on the primary only after its WAL is
									// flushed, and the replica may replay and show it first.
									c.ahead++
								}
							}
						}
						if errors.Is(err, optlock.ErrNotMatched) {
							c.notMatched++
							return fmt.Errorf("%w: %w", scaleErrTreatedAsConflict, err)
						}
						return err
					}, optlock.RetryAttempts(scaleRetryAttempt), optlock.RetryNotify(func(_ int, err error) {
						c.retries++
						var pgErr *pgconn.PgError
						switch {
						case errors.Is(err, scaleErrTreatedAsConflict):
							// counted as notMatched
						case errors.As(err, new(*optlock.OptimisticLockError)):
							c.stale++
						case errors.As(err, &pgErr) && pgErr.Code == "40001":
							c.canceled++
						default:
							problems.add("unexpected error on row %d: %v", id, err)
						}
					}))
					cancel()
					mu.Lock()
					g.calls++
					g.retries += c.retries
					g.stale += c.stale
					g.ahead += c.ahead
					g.notMatched += c.notMatched
					g.canceled += c.canceled
					g.most = max(g.most, attempts)
					if err == nil {
						g.ok++
						increments[id]++
					} else {
						problems.add("a read-modify-write of row %d did not converge: %v", id, err)
					}
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	elapsed := time.Since(start)
	problems.report(t)

	var final []ScaleCounter
	require.NoError(t, pg.primary.Order("id").Find(&final).Error)
	lost := 0
	for _, row := range final {
		assert.Equal(t, increments[row.ID], row.Value, "row %d on the primary equals the increments that succeeded", row.ID)
		assert.Equal(t, 1+increments[row.ID], row.Version, "row %d: one version per increment", row.ID)
		lost += increments[row.ID] - row.Value
	}
	ok, stale, notMatched := 0, 0, 0
	for _, g := range groups {
		assert.Positive(t, g.ok, g.name)
		ok += g.ok
		stale += g.stale
		notMatched += g.notMatched
		t.Logf("  %-36s writers %d  calls %5d  ok %5d  retries %5d  [stale read refused %5d, of which the replica was ahead of the primary %3d; ErrNotMatched retried as a conflict %d; replica read cancelled (40001) %d]  max attempts %d",
			g.name, g.writers, g.calls, g.ok, g.retries, g.stale, g.ahead, g.notMatched, g.canceled, g.most)
	}
	assert.Positive(t, stale, "some reads from the replica were stale and refused")
	assert.Zero(t, notMatched, "writes with no condition but their lock refused with ErrNotMatched (a commit the replica showed before the primary's UPDATE saw it must be a conflict)")
	t.Logf("PostgreSQL, reads from the streaming replica, writes to the primary, %d writers, %s: %d increments, %d stale reads refused, %d lost updates (%.0f increments/s)",
		w, elapsed.Round(10*time.Millisecond), ok, stale, lost, float64(ok)/elapsed.Seconds())
}

// A deliberately stale write through a *gorm.DB opened on the replica, with dbresolver routing writes
// to the primary: replay on the replica is paused, the primary's row 1 moves on (and row 3 is deleted),
// the caller reads the stale rows from the replica and writes them back. In every transaction mode
// (optlock.Transaction included), whichever plugin is registered first, the conflict names the rows
// with the primary's state (as read on the replica it would say nothing changed), and the servers'
// own statement logs show that the UPDATE and the conflict-detail SELECT ran on the primary, never on
// the replica.
func TestReplicaConflictDetailsComeFromThePrimary(t *testing.T) {
	pg := scalePGServers(t)
	primaryLog, replicaLog := os.Getenv("OPTLOCK_PG_PRIMARY_LOG"), os.Getenv("OPTLOCK_PG_REPLICA_LOG")
	if primaryLog == "" || replicaLog == "" {
		scaleUnavailable(t, "replica log test: OPTLOCK_PG_PRIMARY_LOG and OPTLOCK_PG_REPLICA_LOG (the servers' statement logs) are not both set; to run it, %s", scalePGHow)
	}
	primaryFrom, replicaFrom := scaleLogSize(t, primaryLog), scaleLogSize(t, replicaLog)

	modes := []struct {
		name  string
		write func(db *gorm.DB, fn func(tx *gorm.DB) error) error
	}{
		{"default transaction", func(db *gorm.DB, fn func(*gorm.DB) error) error { return fn(db) }},
		{"SkipDefaultTransaction", func(db *gorm.DB, fn func(*gorm.DB) error) error {
			return fn(db.Session(&gorm.Session{SkipDefaultTransaction: true}))
		}},
		{"caller transaction", func(db *gorm.DB, fn func(*gorm.DB) error) error {
			var inner error
			// The caller catches the conflict and commits its transaction.
			if err := db.Clauses(dbresolver.Write).Transaction(func(tx *gorm.DB) error { inner = fn(tx); return nil }); err != nil {
				return fmt.Errorf("COMMIT after the caught conflict: %w", err)
			}
			return inner
		}},
		{"optlock.Transaction", func(db *gorm.DB, fn func(*gorm.DB) error) error {
			var inner error
			err := optlock.Transaction(context.Background(), db.Clauses(dbresolver.Write), func(tx *gorm.DB) error {
				inner = fn(tx)
				return nil
			}, optlock.RetryAttempts(1))
			if err != nil {
				return fmt.Errorf("COMMIT after the caught conflict: %w", err)
			}
			return inner
		}},
	}
	for _, pluginFirst := range []bool{false, true} {
		order := "dbresolver registered first"
		if pluginFirst {
			order = "optlock registered first"
		}
		for _, mode := range modes {
			t.Run(order+"/"+mode.name, func(t *testing.T) {
				app := "optlock_scale_" + scaleRandomSuffix()
				db := pg.scaleRouted(t, app, pluginFirst)
				for _, n := range []int{1, 3} {
					pg.scaleSeed(t, n)
					resume := pg.pauseReplay(t)
					// On the primary only: row 1 moves to version 2, row 3 is deleted.
					require.NoError(t, pg.primary.Exec("UPDATE scale_counters SET value = 7, version = 2 WHERE id = 1").Error)
					if n == 3 {
						require.NoError(t, pg.primary.Exec("DELETE FROM scale_counters WHERE id = 3").Error)
					}
					var rows []ScaleCounter
					require.NoError(t, db.Order("id").Find(&rows).Error)
					require.Len(t, rows, n, "read from the paused replica")
					for _, r := range rows {
						require.Equal(t, 1, r.Version, "row %d read from the paused replica is the stale one", r.ID)
					}

					err := mode.write(db, func(tx *gorm.DB) error {
						if n == 1 {
							return optlock.UpdateSafely(tx, &rows[0], map[string]any{"value": 100}).Error
						}
						return optlock.UpdateSafely(tx, &rows, map[string]any{"value": 100}).Error
					})
					var lockErr *optlock.OptimisticLockError
					require.ErrorAs(t, err, &lockErr, "%d row(s): a conflict", n)
					require.NoError(t, lockErr.DetailsErr, "%d row(s): details read", n)
					want := []optlock.RowConflict{{ID: uint(1), Current: map[string]any{"version": 2}, Locks: []optlock.LockValue{{Column: "version", Int: 2}}}}
					if n == 3 {
						want = append(want, optlock.RowConflict{ID: uint(3), Deleted: true})
					}
					assert.Equal(t, want, lockErr.Rows, "%d row(s): the primary's state, not the replica's", n)
					for _, r := range lockErr.Rows {
						assert.False(t, r.Unknown, "%d row(s): row %v known", n, r.ID)
					}

					resume()
					var stored []ScaleCounter
					require.NoError(t, pg.primary.Order("id").Find(&stored).Error)
					for _, r := range stored {
						assert.NotEqual(t, 100, r.Value, "%d row(s): row %d was not written", n, r.ID)
					}
				}

				// The servers' own logs: this connection's UPDATEs and conflict-detail SELECTs ran on the
				// primary and not on the replica; its plain reads ran on the replica.
				update := regexp.MustCompile(`^UPDATE "scale_counters" `)
				details := regexp.MustCompile(`^SELECT "[^*]*FROM "scale_counters" WHERE "id" (=|IN) `)
				read := regexp.MustCompile(`^SELECT \* FROM "scale_counters"`)
				var onPrimary, onReplica []string
				deadline := time.Now().Add(5 * time.Second)
				for {
					onPrimary = scaleLoggedStatements(t, primaryLog, primaryFrom, app)
					onReplica = scaleLoggedStatements(t, replicaLog, replicaFrom, app)
					if (scaleCount(onPrimary, update) >= 2 && scaleCount(onPrimary, details) >= 2 && scaleCount(onReplica, read) >= 2) ||
						time.Now().After(deadline) {
						break
					}
					time.Sleep(50 * time.Millisecond)
				}
				assert.GreaterOrEqual(t, scaleCount(onPrimary, update), 2, "the UPDATEs are in the primary's log:\n%s", strings.Join(onPrimary, "\n"))
				assert.GreaterOrEqual(t, scaleCount(onPrimary, details), 2, "the conflict-detail SELECTs are in the primary's log:\n%s", strings.Join(onPrimary, "\n"))
				assert.Zero(t, scaleCount(onPrimary, read), "the plain reads are not in the primary's log")
				assert.Zero(t, scaleCount(onReplica, update), "no UPDATE in the replica's log:\n%s", strings.Join(onReplica, "\n"))
				assert.Zero(t, scaleCount(onReplica, details), "no conflict-detail SELECT in the replica's log:\n%s", strings.Join(onReplica, "\n"))
				assert.GreaterOrEqual(t, scaleCount(onReplica, read), 2, "the plain reads are in the replica's log (the check sees it)")
				t.Logf("statement logs for application_name=%s: primary %d UPDATE, %d conflict-detail SELECT, %d plain read; replica %d UPDATE, %d conflict-detail SELECT, %d plain read",
					app, scaleCount(onPrimary, update), scaleCount(onPrimary, details), scaleCount(onPrimary, read),
					scaleCount(onReplica, update), scaleCount(onReplica, details), scaleCount(onReplica, read))
				if t.Failed() {
					t.Logf("primary ran:\n  %s", strings.Join(onPrimary, "\n  "))
					t.Logf("replica ran:\n  %s", strings.Join(onReplica, "\n  "))
				}
			})
		}
	}
}

func scaleLogSize(t *testing.T, path string) int64 {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		scaleUnavailable(t, "statement log %s unreadable: %v; %s", path, err, scalePGHow)
	}
	return info.Size()
}

// scaleStatementLine is a statement line of log_line_prefix '%m [%p] %qapp=%a user=%u db=%d '.
var scaleStatementLine = regexp.MustCompile(`^\S+ \S+ \S+ \[\d+\] app=(\S*) user=\S* db=\S* LOG:  (?:statement|execute [^:]*): (.*)$`)

// scaleLoggedStatements returns the statements the server logged after offset from for application
// app, in order.
func scaleLoggedStatements(t *testing.T, path string, from int64, app string) []string {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	info, err := f.Stat()
	require.NoError(t, err)
	if info.Size() < from {
		from = 0 // the log was truncated or replaced since the test started
	}
	_, err = f.Seek(from, io.SeekStart)
	require.NoError(t, err)
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64*1024), 16*1024*1024)
	for sc.Scan() {
		if m := scaleStatementLine.FindStringSubmatch(sc.Text()); m != nil && m[1] == app {
			out = append(out, m[2])
		}
	}
	require.NoError(t, sc.Err())
	return out
}

func scaleCount(statements []string, re *regexp.Regexp) int {
	n := 0
	for _, s := range statements {
		if re.MatchString(s) {
			n++
		}
	}
	return n
}

// The window the replica workload hits by chance, made deterministic. PostgreSQL makes a commit
// visible on the primary only after its WAL is flushed (and, with synchronous replication, after the
// standby confirmed it), while an asynchronous replica replays and shows it as soon as it arrives.
// Writer B's COMMIT is held in that window by naming a synchronous standby that does not exist (for
// B's session only: everyone else commits with synchronous_commit=local meanwhile). The caller reads
// B's row from the replica, already at B's version, and writes it back: the primary's UPDATE does not
// see B's version yet and matches nothing. B is released before the conflict query, which then finds
// the row holding exactly what the caller read. That is a conflict (a retry succeeds), not
// ErrNotMatched: the write has no condition but its lock.
func TestReplicaCommitVisibleOnReplicaFirstIsAConflict(t *testing.T) {
	if os.Getenv("OPTLOCK_SCALE_REPRO") != "1" {
		t.Skip("stages a commit visible on the replica before the primary by reconfiguring the primary and waiting for it to reload (timing-sensitive, so not run by default); set OPTLOCK_SCALE_REPRO=1 to run it")
	}
	pg := scalePGServers(t)
	pg.scaleSeed(t, 1)
	app := "optlock_scale_" + scaleRandomSuffix()
	db := pg.scaleRouted(t, app, false)

	system := func(sql string) {
		t.Helper()
		require.NoError(t, pg.primary.Exec(sql).Error)
		require.NoError(t, pg.primary.Exec("SELECT pg_reload_conf()").Error)
	}
	system("ALTER SYSTEM SET synchronous_commit = 'local'")
	t.Cleanup(func() {
		_ = pg.primary.Exec("ALTER SYSTEM RESET synchronous_standby_names").Error
		_ = pg.primary.Exec("ALTER SYSTEM RESET synchronous_commit").Error
		_ = pg.primary.Exec("SELECT pg_reload_conf()").Error
	})
	system("ALTER SYSTEM SET synchronous_standby_names = 'optlock_scale_nobody'")
	// The checkpointer, not the backend, tells committers that a synchronous standby is configured.
	time.Sleep(300 * time.Millisecond)

	// B commits version 2 and waits for the standby that never answers.
	committed := make(chan error, 1)
	go func() {
		committed <- pg.primary.Connection(func(tx *gorm.DB) error {
			// A backend reads a reloaded configuration between commands: wait until this one has.
			for deadline := time.Now().Add(10 * time.Second); ; {
				var names string
				if err := tx.Raw("SHOW synchronous_standby_names").Scan(&names).Error; err != nil {
					return err
				}
				if names == "optlock_scale_nobody" {
					break
				}
				if time.Now().After(deadline) {
					return fmt.Errorf("synchronous_standby_names is still %q", names)
				}
				time.Sleep(10 * time.Millisecond)
			}
			if err := tx.Exec("SET synchronous_commit = on").Error; err != nil {
				return err
			}
			return tx.Exec("UPDATE scale_counters SET value = 1, version = 2 WHERE id = 1").Error
		})
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var v int
		require.NoError(t, pg.replica.Raw("SELECT version FROM scale_counters WHERE id = 1").Scan(&v).Error)
		if v == 2 {
			break
		}
		require.True(t, time.Now().Before(deadline), "the replica shows B's commit")
		time.Sleep(10 * time.Millisecond)
	}
	var onPrimary int
	require.NoError(t, pg.primary.Raw("SELECT version FROM scale_counters WHERE id = 1").Scan(&onPrimary).Error)
	require.Equal(t, 1, onPrimary, "the primary does not show B's commit yet")

	// Release B between the caller's UPDATE and optlock's conflict query.
	release := func(*gorm.DB) {
		system("ALTER SYSTEM RESET synchronous_standby_names")
		select {
		case err := <-committed:
			require.NoError(t, err)
		case <-time.After(10 * time.Second):
			t.Error("B's COMMIT was not released")
		}
	}
	var once sync.Once
	require.NoError(t, db.Callback().Update().After("gorm:update").Before("optlock:check").
		Register("scale:release_b", func(*gorm.DB) { once.Do(func() { release(nil) }) }))

	var row ScaleCounter
	require.NoError(t, db.First(&row, 1).Error)
	require.Equal(t, 2, row.Version, "read from the replica: B's version")
	err := optlock.UpdateSafely(db, &row, map[string]any{"value": row.Value + 1}).Error
	assert.NotErrorIs(t, err, optlock.ErrNotMatched, "the write has no condition but its lock")
	assert.ErrorIs(t, err, optlock.ErrConflict, "a retry succeeds")
	assert.True(t, optlock.IsRetryable(err), "%v", err)
}
