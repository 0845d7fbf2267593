package tests

// A connection that hangs instead of failing: the caller's writes go through a TCP proxy of the
// test's own, which at a chosen point of a lock-checked bulk write stops forwarding. The caller must
// get a clear error within its deadline (plus a little), and nothing may be half-written.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mysqldriver "github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gorm.io/driver/mysql"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"

	"github.com/go-optlock/optlock"
	"github.com/go-optlock/optlock/internal/testenv"
)

// faultProxy forwards TCP connections to target until stalled: then it stops forwarding, in one
// direction or both, on every connection, open or new, without closing any (a network that hangs).
// release closes every connection, as a network that comes back with resets would.
type faultProxy struct {
	ln        net.Listener
	target    string
	up, down  atomic.Bool // stalled: client to server, server to client
	mu        sync.Mutex
	conns     []net.Conn
	closed    atomic.Bool
	forwarded atomic.Int64
}

func newFaultProxy(t *testing.T, target string) *faultProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &faultProxy{ln: ln, target: target}
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *faultProxy) addr() string { return p.ln.Addr().String() }

func (p *faultProxy) accept() {
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		server, err := net.Dial("tcp", p.target)
		if err != nil {
			client.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, client, server)
		p.mu.Unlock()
		go p.pipe(client, server, &p.up)
		go p.pipe(server, client, &p.down)
	}
}

// pipe copies src to dst; while stalled is set, what it read waits (and so, soon, does the sender).
func (p *faultProxy) pipe(src, dst net.Conn, stalled *atomic.Bool) {
	buf := make([]byte, 32*1024)
	for {
		n, err := src.Read(buf)
		for n > 0 && stalled.Load() {
			if p.closed.Load() {
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				src.Close()
				return
			}
			p.forwarded.Add(int64(n))
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				src.Close()
			}
			dst.Close()
			return
		}
	}
}

// stall stops forwarding: both directions, or (replies) only what the server sends.
func (p *faultProxy) stall(replies bool) {
	p.down.Store(true)
	if !replies {
		p.up.Store(true)
	}
}

// release closes every connection and forwards again.
func (p *faultProxy) release() {
	p.mu.Lock()
	conns := p.conns
	p.conns = nil
	p.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
	p.up.Store(false)
	p.down.Store(false)
}

func (p *faultProxy) close() {
	p.closed.Store(true)
	p.ln.Close()
	p.release()
}

// faultProxied opens dialect name's test database through a new proxy. MySQL gets the driver's
// readTimeout and writeTimeout: database/sql commits and rolls back without a context (driver.Tx has
// none), so without them a COMMIT on a hung connection waits for as long as the connection hangs,
// whatever the caller's deadline.
func faultProxied(t *testing.T, name string, ioTimeout time.Duration) (*gorm.DB, *faultProxy) {
	t.Helper()
	var dialector func(host string) gorm.Dialector
	var target string
	switch name {
	case "postgres":
		cfg, err := pgx.ParseConfig(testenv.PostgresDSN())
		require.NoError(t, err)
		target = fmt.Sprintf("%s:%d", cfg.Host, cfg.Port)
		dialector = func(addr string) gorm.Dialector {
			host, port, _ := net.SplitHostPort(addr)
			return postgres.Open(testenv.PostgresDSN() + " host=" + host + " port=" + port)
		}
	case "mysql":
		cfg, err := mysqldriver.ParseDSN(testenv.MySQLDSN())
		require.NoError(t, err)
		target = cfg.Addr
		dialector = func(addr string) gorm.Dialector {
			c := cfg.Clone()
			c.Addr = addr
			c.ReadTimeout, c.WriteTimeout = ioTimeout, ioTimeout
			return mysql.Open(c.FormatDSN())
		}
	}
	p := newFaultProxy(t, target)
	db, err := gorm.Open(dialector(p.addr()), gormConfig())
	require.NoError(t, err)
	scaleClose(t, db)
	require.NoError(t, db.Use(optlock.New()))
	return db, p
}

// faultStallAt registers a callback on db that stalls p once, inside the next update's callback
// chain: "before" the UPDATE is sent, or "after" it (the write is not yet committed).
func faultStallAt(t *testing.T, db *gorm.DB, p *faultProxy, at string, replies bool) {
	t.Helper()
	var armed atomic.Bool
	armed.Store(true)
	fire := func(*gorm.DB) {
		if armed.CompareAndSwap(true, false) {
			p.stall(replies)
		}
	}
	update := db.Callback().Update()
	if at == "before" {
		require.NoError(t, update.Before("gorm:update").After("optlock:build").Register("test:stall", fire))
	} else {
		require.NoError(t, update.After("gorm:update").Before("optlock:check").Register("test:stall", fire))
	}
}

// The stalled-connection cases. Each stalls a 20-row UpdateSafely written three ways (GORM's
// default transaction, SkipDefaultTransaction so optlock opens its own, and inside the caller's
// transaction) at one point, with a 1 s deadline on the call.
func TestFaultStalledConnectionEndsInAClearErrorWithinTheDeadline(t *testing.T) {
	const deadline = time.Second
	// What may pass after the deadline: the drivers giving up, and inside the caller's transaction
	// the undo, which the library gives the deadline plus 1 s (undoGrace in causes.go).
	const grace = 2500 * time.Millisecond
	points := []struct {
		name, at string
		replies  bool // only the server's replies stall: what the client sent still arrives
	}{
		{"both ways, before the UPDATE", "before", false},
		{"both ways, after the UPDATE (COMMIT hangs)", "after", false},
		{"replies only, after the UPDATE (COMMIT arrives, its answer does not)", "after", true},
	}
	shapes := []string{"gorm transaction", "SkipDefaultTransaction", "caller's transaction"}
	for _, d := range dialects {
		if d.name == "sqlite" {
			continue
		}
		t.Run(d.name, func(t *testing.T) {
			direct := openDB(t, d, []any{&FaultRow{}})
			for _, pt := range points {
				for _, shape := range shapes {
					t.Run(pt.name+"/"+shape, func(t *testing.T) {
						faultStallCase(t, direct, d.name, pt.at, pt.replies, shape, deadline, grace)
					})
				}
			}
		})
	}
}

func faultStallCase(t *testing.T, direct *gorm.DB, dialect, at string, replies bool, shape string, deadline, grace time.Duration) {
	items := make([]FaultRow, 20)
	for i := range items {
		items[i] = FaultRow{ID: uint(i + 1), Value: 10, Version: 1}
	}
	require.NoError(t, direct.Exec("DELETE FROM fault_rows").Error)
	require.NoError(t, direct.Create(&items).Error)
	read := append([]FaultRow(nil), items...)
	before := faultRead(t, direct)
	db, proxy := faultProxied(t, dialect, deadline)
	require.NoError(t, db.Exec("SELECT 1").Error, "the proxy forwards")
	faultStallAt(t, db, proxy, at, replies)

	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	write := func() error {
		values := map[string]any{"value": 7}
		switch shape {
		case "SkipDefaultTransaction":
			return optlock.UpdateSafely(db.WithContext(ctx).Session(&gorm.Session{SkipDefaultTransaction: true}), &items, values).Error
		case "caller's transaction":
			return db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
				return optlock.UpdateSafely(tx, &items, values).Error
			})
		}
		return optlock.UpdateSafely(db.WithContext(ctx), &items, values).Error
	}
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- write() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(deadline + 10*time.Second):
		proxy.release() // let it return, then fail
		err = <-done
		t.Fatalf("the call hung %s past its %s deadline (returned %v once the connections were closed)",
			time.Since(start).Round(time.Millisecond)-deadline, deadline, err)
	}
	took := time.Since(start)
	t.Logf("%s after %s: %v", dialect, took.Round(time.Millisecond), err)
	require.Error(t, err)
	assert.NotErrorIs(t, err, optlock.ErrConflict, "a stalled connection is no conflict")
	assert.Less(t, took, deadline+grace, "the error comes within the caller's deadline")
	// The deadline, or on MySQL the driver's own timeout (readTimeout, set to the same length), which
	// it reports as mysql.ErrInvalidConn ("invalid connection") and which can fire first.
	assert.True(t, errors.Is(err, context.DeadlineExceeded) || errors.Is(err, mysqldriver.ErrInvalidConn),
		"the error says the deadline passed or the connection is gone: %v", err)
	assert.Equal(t, read, items, "structs as read: the write was not acknowledged")

	// Nothing half-written, read directly: while the server may still hold the stalled transaction,
	// the rows hold what they held, or (replies only: the COMMIT arrived) all of the write.
	after := faultRead(t, direct)
	stored := after[items[0].ID].Value == 7
	for _, it := range items {
		if stored {
			assert.Equal(t, 7, after[it.ID].Value, "row %d: all of the write or none of it", it.ID)
			assert.Equal(t, before[it.ID].Version+1, after[it.ID].Version)
		} else {
			assert.Equal(t, before[it.ID], after[it.ID], "row %d: all of the write or none of it", it.ID)
		}
	}
	if !replies {
		assert.False(t, stored, "the COMMIT never reached the server")
	}

	// Recovery: the network comes back as resets. The server rolls back what it held and the rows
	// take writes again; a write from the structs the caller kept is checked against what is stored:
	// a conflict if the unacknowledged write was stored, never an overwrite of it.
	proxy.release()
	recovered := time.Now()
	var retryErr error
	for {
		wctx, wcancel := context.WithTimeout(context.Background(), 2*time.Second)
		retryErr = optlock.UpdateSafely(direct.WithContext(wctx), &items, map[string]any{"value": 9}).Error
		wcancel()
		if retryErr == nil || errors.Is(retryErr, optlock.ErrConflict) || time.Since(recovered) > 15*time.Second {
			break
		}
		items = append(items[:0], read...)
	}
	t.Logf("%s: stored=%v; the rows took writes again %s after the connections were reset; the caller's next write: %v",
		dialect, stored, time.Since(recovered).Round(time.Millisecond), retryErr)
	if stored {
		assert.ErrorIs(t, retryErr, optlock.ErrConflict, "the caller's copy is older than the stored write")
	} else {
		assert.NoError(t, retryErr)
	}
}
