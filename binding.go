package optlock

import (
	"database/sql"
	"reflect"
	"time"

	"gorm.io/gorm"
)

// timeBinding is how a pool's driver binds a time.Time to a timestamp without time zone, and labels
// one it reads.
//
// A PostgreSQL timestamp without time zone keeps a wall clock and drops any offset it is given. What
// wall clock a time.Time becomes there is up to the driver, and pgx answers in two ways: over the
// extended protocol it knows the parameter is a timestamp and sends the value's own wall clock; over
// the simple protocol (default_query_exec_mode=simple_protocol, GORM's PreferSimpleProtocol, or its
// exec mode) it sends the instant as text in UTC, '… 06:23:00Z', and the column keeps the UTC wall
// clock. A row GORM has just created from NowFunc's local time then holds another wall clock than its
// struct shows, while a row read back shows the stored one, labelled with the zone the driver reads the
// column in (UTC, or the TimeZone of GORM's DSN). So the snapshot of a lock on such a column depends
// on how the pool binds a time, learnt once per pool by asking the database (probeTimeBinding), and on
// whether the struct's value was read or given to the driver, told by its location (storedWallClock).
type timeBinding struct {
	// instant says the driver sends a time.Time as an instant, so the column keeps its UTC wall clock;
	// otherwise it keeps the value's own wall clock, whatever its location.
	instant bool
	// readZone names the location the driver labels the column's values with when it reads them;
	// readsLocal says that location is time.Local itself.
	readZone   string
	readsLocal bool
}

// storedWallClock returns, labelled UTC, the wall clock a timestamp without time zone holds for the
// lock value t of a struct (which the snapshot is bound and compared by): for a value as the driver
// read it, the one it shows; for one the driver was given (NowFunc's time, which GORM's Create or a
// plain update stored, or one the caller set), the one the driver sent. Every value the plugin itself
// stores is labelled UTC, for which the two are the same.
func (b timeBinding) storedWallClock(t time.Time) time.Time {
	if b.instant && !t.IsZero() && !b.asRead(t) {
		return t.UTC()
	}
	return wallClockAsUTC(t)
}

// asRead reports whether t is labelled as the driver labels what it reads. A value in time.Local (as
// NowFunc gives it) was given to the driver, unless the driver reads in time.Local too: then the two
// cannot be told apart, and t is taken as read, as before the binding was known.
func (b timeBinding) asRead(t time.Time) bool {
	switch loc := t.Location(); loc {
	case time.UTC:
		return true
	case time.Local:
		return b.readsLocal
	default:
		return loc.String() == b.readZone
	}
}

// timeBindingProbe is a timestamp without time zone made from one bound time.Time, as a column stores it.
const timeBindingProbe = `SELECT CAST($1 AS timestamp)`

// probeTime is a time whose own wall clock (04:05:06) and UTC wall clock (22:35:06 the day before)
// differ, in a zone no driver reads in.
var probeTime = time.Date(2001, 2, 3, 4, 5, 6, 0, time.FixedZone("optlock_probe", 5*3600+30*60))

// maxCachedPools bounds the pools whose time binding is remembered.
const maxCachedPools = 64

// bindingKey identifies a connection pool as far as binding goes: the pool, and whether GORM runs its
// statements as prepared statements there (pgx binds those by their described parameter types, the
// way of the extended protocol, even in simple protocol mode).
type bindingKey struct {
	pool     gorm.ConnPool
	prepared bool
}

// timeBindingOf returns how the statement's pool binds a time, from the plugin's cache or else by
// asking the database on the statement's own connection (its transaction, if it is in one), dry runs
// included, so a dry run's SQL is the SQL a real write sends. routed is the pool the write was routed
// to before GORM's transaction replaced it (nil: the statement's). When the probe fails, the binding
// is not known (the value's own wall clock is used) and the probe is tried again on the next write.
func (p *Plugin) timeBindingOf(stmt *gorm.Statement, routed gorm.ConnPool) timeBinding {
	key, cacheable := bindingKeyOf(stmt, routed)
	if cacheable {
		if b, ok := p.bindings.get(key); ok {
			return b
		}
	}
	b, ok := probeTimeBinding(stmt)
	if ok && cacheable {
		b = p.bindings.add(key, b, maxCachedPools)
	}
	return b
}

// bindingKeyOf returns the key of the pool a statement runs on: routed, which route noted before
// GORM's own transaction for the write began. The caller's own transaction is not a pool, and
// database/sql does not tell which pool it came from (not necessarily the one the *gorm.DB was opened
// on: dbresolver begins it on a source of its own): the answer is kept for that transaction, which
// then asks once. It reports false for a pool that cannot be a map key.
func bindingKeyOf(stmt *gorm.Statement, routed gorm.ConnPool) (bindingKey, bool) {
	pool := routed
	if pool == nil {
		pool = stmt.ConnPool
	}
	key := bindingKey{pool: pool}
	switch p := pool.(type) {
	case *gorm.PreparedStmtTX:
		key.prepared = true
		if p.PreparedStmtDB != nil {
			key.pool = p.PreparedStmtDB.ConnPool
		}
	case *gorm.PreparedStmtDB:
		// dbresolver makes a new PreparedStmtDB around the same pool for every statement.
		key.pool, key.prepared = p.ConnPool, true
	}
	if key.pool == nil || !reflect.ValueOf(key.pool).Comparable() {
		return bindingKey{}, false
	}
	return key, true
}

// probeTimeBinding binds probeTime to a timestamp without time zone on the statement's connection, as
// the write will bind its values, and reads what the column would store: probeTime's own wall clock,
// or its UTC wall clock. The query cannot fail on a connection the write itself could use, so inside
// the caller's transaction it needs no savepoint. It reports false when the query fails.
func probeTimeBinding(stmt *gorm.Statement) (timeBinding, bool) {
	var got any
	err := queryCatalog(stmt, stmt.ConnPool, timeBindingProbe, []any{probeTime}, func(rows *sql.Rows) error {
		return rows.Scan(&got)
	})
	if err != nil {
		return timeBinding{}, false
	}
	stored, ok := got.(time.Time)
	if !ok {
		// A driver that reads a timestamp as text: nothing to tell the binding by, and nothing
		// to be learnt by asking again.
		return timeBinding{}, true
	}
	b := timeBinding{readZone: stored.Location().String(), readsLocal: stored.Location() == time.Local}
	// Any other answer (a driver that sends a typed timestamptz, which the server converts to the
	// session's zone) keeps the value's own wall clock, as before the binding was known.
	b.instant = wallClockAsUTC(stored).Equal(probeTime.UTC())
	return b, true
}
