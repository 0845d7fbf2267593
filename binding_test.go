package optlock

import (
	"database/sql"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"gorm.io/gorm"
)

// TestStoredWallClock: the wall clock a timestamp without time zone holds for a struct's value. On a
// pool that binds wall clocks, always the value's own. On one that binds instants (pgx's simple
// protocol), a value labelled as the driver reads (UTC, or its TimeZone) shows the stored one; any
// other was given to the driver, which sent its UTC wall clock.
func TestStoredWallClock(t *testing.T) {
	newYork, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Skip("no time zone database:", err)
	}
	readNewYork, _ := time.LoadLocation("America/New_York") // pgx loads its own, per connection
	east := time.FixedZone("east", 8*3600)
	wall := func(t time.Time) time.Time {
		return time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), time.UTC)
	}
	local := time.Date(2025, 1, 1, 14, 23, 0, 5000, time.Local)
	read := time.Date(2025, 1, 1, 6, 23, 0, 5000, readNewYork)
	given := time.Date(2025, 1, 1, 14, 23, 0, 5000, east)
	utc := time.Date(2025, 1, 1, 6, 23, 0, 5000, time.UTC)

	wallClocks := timeBinding{readZone: "America/New_York"}
	for _, v := range []time.Time{local, read, given, utc, time.Date(2025, 1, 1, 1, 0, 0, 0, newYork)} {
		assert.Equal(t, wall(v), wallClocks.storedWallClock(v), "%v on a wall-clock pool", v)
	}

	instants := timeBinding{instant: true, readZone: "America/New_York"}
	assert.Equal(t, wall(read), instants.storedWallClock(read), "a value as read")
	assert.Equal(t, utc, instants.storedWallClock(utc))
	assert.Equal(t, given.UTC(), instants.storedWallClock(given), "a value in a zone the driver does not read in")
	assert.Equal(t, local.UTC(), instants.storedWallClock(local), "NowFunc's local time")
	assert.True(t, instants.storedWallClock(time.Time{}).IsZero())

	// A driver that reads in time.Local itself: a local value cannot be told from one read.
	readsLocal := timeBinding{instant: true, readZone: time.Local.String(), readsLocal: true}
	assert.Equal(t, wall(local), readsLocal.storedWallClock(local))
	assert.Equal(t, given.UTC(), readsLocal.storedWallClock(given))

	// A pool reading in UTC (GORM's DSN without TimeZone): every labelled value was given.
	readsUTC := timeBinding{instant: true, readZone: "UTC"}
	assert.Equal(t, given.UTC(), readsUTC.storedWallClock(given))
	assert.Equal(t, wall(read).Add(5*time.Hour), readsUTC.storedWallClock(read))
}

// unhashablePool is a ConnPool that cannot be a map key.
type unhashablePool struct {
	gorm.ConnPool
	tags []string
}

// fakeTx is a transaction.
type fakeTx struct{ gorm.ConnPool }

func (fakeTx) Commit() error   { return nil }
func (fakeTx) Rollback() error { return nil }

// TestBindingKey: a pool is known by itself, and whether GORM prepares its statements; GORM's and
// dbresolver's prepared-statement wrappers (dbresolver makes one per statement) by the pool they wrap;
// a transaction by itself; a pool that cannot be a map key is not cached.
func TestBindingKey(t *testing.T) {
	pool := &sql.DB{}
	stmt := func(conn gorm.ConnPool) *gorm.Statement { return &gorm.Statement{ConnPool: conn} }
	key, ok := bindingKeyOf(stmt(pool), nil)
	assert.True(t, ok)
	assert.Equal(t, bindingKey{pool: pool}, key)

	one := &gorm.PreparedStmtDB{ConnPool: pool}
	two := &gorm.PreparedStmtDB{ConnPool: pool}
	k1, _ := bindingKeyOf(stmt(one), nil)
	k2, _ := bindingKeyOf(stmt(pool), two)
	assert.Equal(t, bindingKey{pool: pool, prepared: true}, k1)
	assert.Equal(t, k1, k2)
	k3, _ := bindingKeyOf(stmt(&gorm.PreparedStmtTX{PreparedStmtDB: one}), nil)
	assert.Equal(t, k1, k3, "GORM's transaction on a prepared pool")

	tx := &fakeTx{}
	k4, _ := bindingKeyOf(stmt(tx), pool)
	assert.Equal(t, bindingKey{pool: pool}, k4, "GORM's own transaction: the pool route noted")
	k5, _ := bindingKeyOf(stmt(tx), tx)
	assert.Equal(t, bindingKey{pool: tx}, k5, "the caller's transaction: itself")

	_, ok = bindingKeyOf(stmt(unhashablePool{}), nil)
	assert.False(t, ok)
}
