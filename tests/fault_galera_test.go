package tests

// A Galera node killed (kill -9) under writers on every node, and rejoining by IST (scripts/galera.sh):
//
//	scripts/galera.sh start && eval "$(scripts/galera.sh env)"   # OPTLOCK_GALERA_DSNS
//	go test -run TestFaultGalera -v .
//
// The test runs scripts/galera.sh itself (kill 2, then start, which rejoins the dead node); it inherits
// OPTLOCK_CLUSTER_DIR and the port variables, and refuses to run unless the script, with them, names
// the nodes of OPTLOCK_GALERA_DSNS. It leaves the cluster whole (all three nodes Synced), also when it
// fails. Without the variable it skips; with OPTLOCK_REQUIRE_CLUSTERS=1 it fails instead.

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	mysqldriver "github.com/go-sql-driver/mysql"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gorm.io/driver/mysql"
	"gorm.io/gorm"
)

const (
	faultGaleraVictim  = 2               // the node killed: its number in scripts/galera.sh, its place in OPTLOCK_GALERA_DSNS
	faultGaleraPerNode = 4               // writers per node
	faultGaleraBefore  = 5 * time.Second // writers on the healthy cluster before the kill
	faultGaleraDown    = 4 * time.Second // how long the node stays dead before it is started again
	faultGaleraAfter   = 6 * time.Second // writers go on this long after the node is Synced again
)

// faultGaleraRun runs scripts/galera.sh with args and returns its standard output and error.
func faultGaleraRun(args ...string) (stdout, stderr string, err error) {
	return faultGaleraRunEnv(nil, args...)
}

// faultGaleraRunEnv is faultGaleraRun with variables added to the environment.
func faultGaleraRunEnv(env []string, args ...string) (stdout, stderr string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", append([]string{"../scripts/galera.sh"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	return strings.TrimSpace(out.String()), strings.TrimSpace(errb.String()), err
}

// faultGaleraDSNs returns the nodes' DSNs, or skips (fails when required) unless they are the nodes
// of the cluster scripts/galera.sh manages with this environment, all three Synced.
func faultGaleraDSNs(t *testing.T) []string {
	t.Helper()
	env := os.Getenv("OPTLOCK_GALERA_DSNS")
	if env == "" {
		scaleUnavailable(t, "Galera fault test: OPTLOCK_GALERA_DSNS is not set; to run it, %s", scaleGaleraHow)
	}
	out, _, err := faultGaleraRun("env")
	require.NoError(t, err, "scripts/galera.sh env")
	if want := fmt.Sprintf("export OPTLOCK_GALERA_DSNS='%s'", env); out != want {
		scaleUnavailable(t, "Galera fault test: it kills and restarts a node with scripts/galera.sh, but OPTLOCK_GALERA_DSNS is not the cluster the script manages with this environment (OPTLOCK_CLUSTER_DIR, OPTLOCK_GALERA_*_BASE): the script says %q", out)
	}
	if status, _, err := faultGaleraRun("status"); err != nil {
		scaleUnavailable(t, "Galera fault test: the cluster is not whole:\n%s\n%s", status, scaleGaleraHow)
	}
	return strings.Split(env, ",")
}

// faultGaleraOpen opens a pool on one node, with the driver timeouts an application on a cluster
// whose nodes can die should set: connect 2 s, and reads and writes bounded (a COMMIT has no context
// in database/sql, so only readTimeout ends one that hangs).
func faultGaleraOpen(t *testing.T, dsn string, maxOpen int) *gorm.DB {
	t.Helper()
	cfg, err := mysqldriver.ParseDSN(strings.TrimSpace(dsn))
	require.NoError(t, err)
	cfg.Timeout, cfg.ReadTimeout, cfg.WriteTimeout = 2*time.Second, 8*time.Second, 8*time.Second
	db, err := gorm.Open(mysql.Open(cfg.FormatDSN()), scaleGormConfig())
	require.NoError(t, err)
	scaleClose(t, db)
	conn, err := db.DB()
	require.NoError(t, err)
	conn.SetMaxOpenConns(maxOpen)
	conn.SetConnMaxIdleTime(time.Second)
	return db
}

// faultGaleraState is a node's wsrep state and cluster size, or the error reading them.
func faultGaleraState(db *gorm.DB) (state string, size string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	rows, err := db.WithContext(ctx).Raw("SELECT VARIABLE_NAME, VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME IN ('WSREP_LOCAL_STATE_COMMENT', 'WSREP_CLUSTER_SIZE')").Rows()
	if err != nil {
		return "", "", err
	}
	defer rows.Close()
	for rows.Next() {
		var name, value string
		if err := rows.Scan(&name, &value); err != nil {
			return "", "", err
		}
		if name == "WSREP_CLUSTER_SIZE" {
			size = value
		} else {
			state = value
		}
	}
	return state, size, rows.Err()
}

// faultGaleraTimeline is what the test and its pollers saw happen, in time.
type faultGaleraTimeline struct {
	mu                           sync.Mutex
	start, kill, killed, restart time.Time // kill: the script started; killed: it returned (the node is dead)
	synced                       time.Time // the victim seen Synced in a cluster of 3 again
	survivorsSawTwo              time.Time // a survivor first reported a cluster of 2
	states                       []string  // the victim's states as polled, each change once
	restartLog                   string
	killErr, restartErr          error
}

func (tl *faultGaleraTimeline) note(f func()) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	f()
}

// faultGaleraErrorKind names what a client saw, without addresses, ports and ids.
func faultGaleraErrorKind(msg string) string {
	for _, k := range []struct{ sub, kind string }{
		{"connection refused", "connect: connection refused (node down)"},
		{"WSREP has not yet prepared node", "1047 WSREP has not yet prepared node for application use (joining)"},
		{"Deadlock found", "1213 deadlock / certification failure"},
		{"invalid connection", "invalid connection (server gone mid-call)"},
		{"bad connection", "driver: bad connection"},
		{"unexpected EOF", "unexpected EOF"},
		{"broken pipe", "broken pipe"},
		{"connection reset", "connection reset by peer"},
		{"i/o timeout", "i/o timeout"},
		{"context deadline exceeded", "context deadline exceeded"},
		{"Lock wait timeout", "1205 lock wait timeout"},
		{"Unknown command", "1047 unknown command (node not ready)"},
	} {
		if strings.Contains(msg, k.sub) {
			return k.kind
		}
	}
	return regexp.MustCompile(`127\.0\.0\.1:\d+`).ReplaceAllString(msg, "ADDR")
}

// Writers on all three nodes; node 2 is killed with SIGKILL, stays dead, is started again and
// rejoins by IST; the writers on it resume. The history must check out: 0 lost, 0 contradictions.
func TestFaultGaleraNodeKilledAndRejoining(t *testing.T) {
	dsns := faultGaleraDSNs(t)
	require.Len(t, dsns, 3, "scripts/galera.sh runs 3 nodes")
	nodes := scaleGaleraNodes(t, false)
	victim := faultGaleraVictim - 1

	initial := faultSeed(t, nodes[0].db)
	for _, n := range nodes {
		var count int64
		require.NoError(t, n.synced.Model(&FaultRow{}).Count(&count).Error, n.name)
		require.EqualValues(t, faultRows, count, "%s has the seeded rows", n.name)
	}
	// Runs before faultSeed's drop: whatever happened, the cluster is whole again for what follows.
	t.Cleanup(func() {
		if _, _, err := faultGaleraRun("status"); err == nil {
			return
		}
		if _, stderr, err := faultGaleraRun("start"); err != nil {
			t.Errorf("scripts/galera.sh start after the test: %v\n%s", err, stderr)
		}
	})

	writers := make([]*gorm.DB, len(dsns))
	for i, dsn := range dsns {
		writers[i] = faultPlugin(t, faultGaleraOpen(t, dsn, 2*faultGaleraPerNode))
	}
	victimStatus := faultGaleraOpen(t, dsns[victim], 1)
	survivorStatus := faultGaleraOpen(t, dsns[0], 1)

	var tl faultGaleraTimeline
	var log histLog
	ctx, stopWriters := context.WithCancel(context.Background())
	defer stopWriters()
	pollCtx, stopPolling := context.WithCancel(context.Background())
	defer stopPolling()
	tl.start = time.Now()

	// Pollers: the victim's state every 100 ms (Synced again when?), and a survivor's view.
	var polls sync.WaitGroup
	polls.Go(func() {
		last := ""
		for pollCtx.Err() == nil {
			state, size, err := faultGaleraState(victimStatus)
			seen := state
			if err != nil {
				seen = "unreachable (" + faultGaleraErrorKind(err.Error()) + ")"
			}
			tl.note(func() {
				if seen != last {
					tl.states = append(tl.states, fmt.Sprintf("%s at %.1fs", seen, time.Since(tl.start).Seconds()))
					last = seen
				}
				if !tl.restart.IsZero() && tl.synced.IsZero() && state == "Synced" && size == "3" {
					tl.synced = time.Now()
				}
			})
			time.Sleep(100 * time.Millisecond)
		}
	})
	polls.Go(func() {
		for pollCtx.Err() == nil {
			_, size, err := faultGaleraState(survivorStatus)
			tl.note(func() {
				if err == nil && size == "2" && !tl.kill.IsZero() && tl.survivorsSawTwo.IsZero() {
					tl.survivorsSawTwo = time.Now()
				}
			})
			time.Sleep(100 * time.Millisecond)
		}
	})

	// The fault: kill, wait, start; the writers stop a while after the node is Synced again.
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer stopWriters()
		time.Sleep(faultGaleraBefore)
		tl.note(func() { tl.kill = time.Now() })
		if _, stderr, err := faultGaleraRun("kill", fmt.Sprint(faultGaleraVictim)); err != nil {
			tl.note(func() { tl.killErr = fmt.Errorf("%w: %s", err, stderr) })
			return
		}
		tl.note(func() { tl.killed = time.Now() })
		time.Sleep(faultGaleraDown)
		tl.note(func() { tl.restart = time.Now() })
		// Bounded: the node must be Synced within 60 s, or the script fails.
		_, stderr, err := faultGaleraRunEnv([]string{"OPTLOCK_GALERA_NODE_TIMEOUT=60"}, "start")
		tl.note(func() { tl.restartLog, tl.restartErr = stderr, err })
		if err != nil {
			return
		}
		// The script returns once it saw the node Synced; the poller sees it within 100 ms.
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			var synced bool
			tl.note(func() { synced = !tl.synced.IsZero() })
			if synced {
				break
			}
		}
		time.Sleep(faultGaleraAfter)
	}()
	unread := faultWriters(ctx, writers, faultGaleraPerNode, 3*time.Minute, &log)
	<-done
	elapsed := time.Since(tl.start)
	stopPolling()
	polls.Wait()

	require.NoError(t, tl.killErr, "scripts/galera.sh kill %d", faultGaleraVictim)
	require.NoError(t, tl.restartErr, "scripts/galera.sh start:\n%s", tl.restartLog)
	require.False(t, tl.synced.IsZero(), "node %d seen Synced in a cluster of 3 again; its states: %q", faultGaleraVictim, tl.states)

	// The final state: every node, each read waiting until it applied everything, must agree.
	final := faultRead(t, nodes[0].synced)
	for _, n := range nodes[1:] {
		require.Equal(t, final, faultRead(t, n.synced), "%s agrees with %s", n.name, nodes[0].name)
	}
	ops := log.all()
	r := histCheck(ops, initial, final)

	// Per node: what its writers saw, and when.
	nodeOf := func(client int) int { return (client - 1) / faultGaleraPerNode }
	type nodeFigures struct {
		ok, conflict, aborted, errors, unread int
		okWhileOut                            int            // acknowledged between the kill and Synced again
		seen                                  map[string]int // error kinds, errors and failed reads
		firstAckAfterKill                     time.Time
		ops                                   []histOp
	}
	per := make([]nodeFigures, len(dsns))
	for i := range per {
		per[i].seen = map[string]int{}
	}
	for _, op := range ops {
		f := &per[nodeOf(op.Client)]
		f.ops = append(f.ops, op)
		switch op.Outcome {
		case histOK:
			f.ok++
			if op.End.After(tl.killed) && op.End.Before(tl.synced) {
				f.okWhileOut++
			}
			if op.Start.After(tl.killed) && (f.firstAckAfterKill.IsZero() || op.End.Before(f.firstAckAfterKill)) {
				f.firstAckAfterKill = op.End
			}
		case histConflict:
			f.conflict++
		case histAborted:
			f.aborted++
			f.seen["aborted: "+faultGaleraErrorKind(op.Err)]++
		case histError:
			f.errors++
			f.seen["error: "+faultGaleraErrorKind(op.Err)]++
		}
	}
	for _, u := range log.allUnread() {
		f := &per[nodeOf(u.Client)]
		f.unread++
		f.seen["read failed: "+faultGaleraErrorKind(u.Err)]++
	}
	at := func(x time.Time) string { return fmt.Sprintf("%.1fs", x.Sub(tl.start).Seconds()) }
	transfer := "?"
	if m := regexp.MustCompile(`caught up by (.*)`).FindStringSubmatch(tl.restartLog); m != nil {
		transfer = m[1]
	}
	var survivors []histOp
	for i, f := range per {
		if i != victim {
			survivors = append(survivors, f.ops...)
		}
	}
	v := per[victim]
	t.Logf("Galera, %d clients (%d per node) for %s; node %d killed with SIGKILL at %s (dead by %s), started again at %s, Synced in a cluster of 3 at %s (%s after the restart began, %s after the kill), caught up by %s; the survivors reported a cluster of 2 at %s; first acknowledged write through node %d at %s (%s after the restart began, %s after Synced)",
		len(dsns)*faultGaleraPerNode, faultGaleraPerNode, elapsed.Round(time.Millisecond),
		faultGaleraVictim, at(tl.kill), at(tl.killed), at(tl.restart), at(tl.synced),
		tl.synced.Sub(tl.restart).Round(100*time.Millisecond), tl.synced.Sub(tl.kill).Round(100*time.Millisecond), transfer,
		faultGaleraOptional(tl.survivorsSawTwo, at), faultGaleraVictim, faultGaleraOptional(v.firstAckAfterKill, at),
		v.firstAckAfterKill.Sub(tl.restart).Round(100*time.Millisecond), v.firstAckAfterKill.Sub(tl.synced).Round(10*time.Millisecond))
	t.Logf("history: %s; reads that failed (no call made): %d", r, unread)
	t.Logf("longest time without an acknowledged write on the surviving nodes: %s", faultOutage(survivors).Round(time.Millisecond))
	t.Logf("node %d's states as polled: %s", faultGaleraVictim, strings.Join(tl.states, ", "))
	for i, f := range per {
		role := "survivor"
		if i == victim {
			role = "killed"
		}
		t.Logf("node %d (%s): ok %d (%d between the kill and Synced again), conflict %d, aborted %d, error %d, failed reads %d",
			i+1, role, f.ok, f.okWhileOut, f.conflict, f.aborted, f.errors, f.unread)
		kinds := make([]string, 0, len(f.seen))
		for k := range f.seen {
			kinds = append(kinds, k)
		}
		sort.Slice(kinds, func(a, b int) bool { return f.seen[kinds[a]] > f.seen[kinds[b]] })
		for _, k := range kinds {
			t.Logf("    x%d %s", f.seen[k], k)
		}
	}
	for _, line := range strings.Split(tl.restartLog, "\n") {
		if strings.Contains(line, "node ") {
			t.Logf("scripts/galera.sh start: %s", line)
		}
	}

	assert.True(t, r.ok(), "the history and the database disagree: %q", r.Contradictions)
	assert.Zero(t, r.Lost, "no acknowledged write lost")
	assert.Positive(t, v.errors+v.unread, "the writers on the killed node saw errors")
	for i, f := range per {
		if i != victim {
			assert.Positive(t, f.okWhileOut, "node %d acknowledged writes while node %d was out", i+1, faultGaleraVictim)
		}
	}
	assert.False(t, v.firstAckAfterKill.IsZero(), "writes through node %d resumed after it rejoined", faultGaleraVictim)
	stale := r.ByKind[string(faultStale)]
	assert.Zero(t, stale[histOK], "no stale write in a caller's transaction succeeded")
}

func faultGaleraOptional(x time.Time, at func(time.Time) string) string {
	if x.IsZero() {
		return "never"
	}
	return at(x)
}
