package tests

// The writers of the fault runs: clients that read FaultRows, add to them and write them back with
// every kind of call optlock offers, each call recorded in a histLog for histCheck. A fault run starts
// the writers, does something bad to the servers while they run, and checks the history at the end.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/go-optlock/optlock"
)

// faultKind is one kind of call the writers make.
type faultKind string

const (
	faultSingle   faultKind = "single"      // UpdateSafely of one row, in GORM's default transaction
	faultSkip     faultKind = "single-skip" // the same with SkipDefaultTransaction
	faultBulk     faultKind = "bulk"        // UpdateSafely of three rows, one UPDATE
	faultEach     faultKind = "each"        // UpdateEach: three rows, each its own values
	faultGuard    faultKind = "guard"       // plain GORM Model(&row).Updates on a guarded model
	faultTx       faultKind = "tx"          // optlock.Transaction: read two rows inside it, write them with UpdateEach
	faultCallerTx faultKind = "caller-tx"   // the caller's transaction: a stale write (a conflict), then a fresh one, then COMMIT
	faultStale    faultKind = "stale"       // the stale write of caller-tx: must be a conflict
)

// faultKinds is every kind a writer cycles through.
var faultKinds = []faultKind{faultSingle, faultSkip, faultBulk, faultEach, faultGuard, faultTx, faultCallerTx}

const (
	faultRows        = 6               // rows the writers share: few, so they conflict
	faultCallTimeout = 5 * time.Second // each call's own deadline
)

// faultDuration is how long writers run: OPTLOCK_FAULT_DURATION ("10s", or seconds), 10s by default.
func faultDuration(t *testing.T) time.Duration {
	t.Helper()
	v := os.Getenv("OPTLOCK_FAULT_DURATION")
	if v == "" {
		return 10 * time.Second
	}
	if d, err := time.ParseDuration(v); err == nil && d > 0 {
		return d
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil && s > 0 {
		return time.Duration(s * float64(time.Second))
	}
	t.Fatalf("OPTLOCK_FAULT_DURATION=%q is not a duration (e.g. 10s)", v)
	return 0
}

// faultOpen registers the plugin, guarding FaultRow, on db.
func faultPlugin(t *testing.T, db *gorm.DB) *gorm.DB {
	t.Helper()
	require.NoError(t, db.Use(optlock.New(optlock.Guard(&FaultRow{}))))
	return db
}

// faultSeed creates fault_rows through db (a pool without the plugin) with faultRows rows at version
// 1, drops the table when the test ends, and returns the rows as stored.
func faultSeed(t *testing.T, db *gorm.DB) map[uint]FaultRow {
	t.Helper()
	require.NoError(t, db.Migrator().DropTable(&FaultRow{}))
	require.NoError(t, db.AutoMigrate(&FaultRow{}))
	t.Cleanup(func() { _ = db.Migrator().DropTable(&FaultRow{}) })
	rows := make([]FaultRow, faultRows)
	for i := range rows {
		rows[i] = FaultRow{ID: uint(i + 1), Version: 1}
	}
	require.NoError(t, db.Create(&rows).Error)
	return faultRead(t, db)
}

// faultRead reads every FaultRow by id.
func faultRead(t *testing.T, db *gorm.DB) map[uint]FaultRow {
	t.Helper()
	var rows []FaultRow
	require.NoError(t, db.Order("id").Find(&rows).Error)
	out := map[uint]FaultRow{}
	for _, r := range rows {
		out[r.ID] = r
	}
	return out
}

// faultOutcome files the error a call returned.
func faultOutcome(err error) histOutcome {
	switch {
	case err == nil:
		return histOK
	case errors.Is(err, optlock.ErrTxAborted):
		return histAborted
	case errors.Is(err, optlock.ErrConflict):
		return histConflict
	case optlock.IsRetryable(err):
		// A deadlock or serialization failure the library did not wrap: a Galera certification
		// failure at COMMIT of GORM's own transaction. Nothing was committed.
		return histAborted
	default:
		return histError
	}
}

// faultClient is one writer: its number, the *gorm.DB it writes through (plugin registered), and the
// log it records its calls in.
type faultClient struct {
	id  int
	db  *gorm.DB
	log *histLog
	rnd *rand.Rand
}

// faultPick returns n distinct row ids, in random order.
func (c *faultClient) pick(n int) []uint {
	ids := c.rnd.Perm(faultRows)[:n]
	out := make([]uint, n)
	for i, id := range ids {
		out[i] = uint(id + 1)
	}
	return out
}

// change adds a delta and the token to each row in memory and returns the writes, as read.
func (c *faultClient) change(token string, rows []FaultRow) []histWrite {
	writes := make([]histWrite, len(rows))
	for i := range rows {
		d := 1 + c.rnd.IntN(3)
		writes[i] = histWrite{Row: rows[i].ID, Read: rows[i].Version, Delta: d}
		rows[i].Value += d
		rows[i].Trail += token + ","
	}
	return writes
}

// acknowledge copies the versions the library left in the rows into the writes.
func acknowledge(writes []histWrite, rows []FaultRow) {
	for i := range writes {
		for _, r := range rows {
			if r.ID == writes[i].Row {
				writes[i].NewVersion = r.Version
			}
		}
	}
}

// read reads rows ids through db, in id order; ok is false if the read failed or found fewer rows.
func faultReadRows(ctx context.Context, db *gorm.DB, ids []uint) ([]FaultRow, error) {
	var rows []FaultRow
	if err := db.WithContext(ctx).Where("id IN ?", ids).Order("id").Find(&rows).Error; err != nil {
		return nil, err
	}
	if len(rows) != len(ids) {
		return nil, fmt.Errorf("read %d of %d rows", len(rows), len(ids))
	}
	return rows, nil
}

// call makes one call of kind k and records it (and, for caller-tx, the stale write inside it).
// It returns false when it made no write (the read failed).
func (c *faultClient) call(ctx context.Context, k faultKind) bool {
	// The call's own deadline, not the run's: a call the end of the run cut short would be an
	// error of the test's making.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), faultCallTimeout)
	defer cancel()
	db := c.db.WithContext(ctx)
	n := map[faultKind]int{faultBulk: 3, faultEach: 3, faultTx: 2}[k]
	if n == 0 {
		n = 1
	}
	ids := c.pick(n)
	op := histOp{Token: c.log.token(c.id), Client: c.id, Kind: string(k), Start: time.Now()}
	var rows []FaultRow
	var err error
	switch k {
	case faultTx:
		err = optlock.Transaction(ctx, c.db, func(tx *gorm.DB) error {
			got, err := faultReadRows(ctx, tx, ids)
			if err != nil {
				return err
			}
			rows = got
			op.Writes = c.change(op.Token, rows)
			return optlock.UpdateEach(tx, &rows, "value", "trail").Error
		})
		if op.Writes == nil {
			c.log.unread(c.id, err)
			return false // never read
		}
	case faultCallerTx:
		return c.callerTx(ctx, ids[0])
	default:
		if rows, err = faultReadRows(ctx, db, ids); err != nil {
			c.log.unread(c.id, err)
			return false
		}
		op.Writes = c.change(op.Token, rows)
		err = c.write(db, k, rows)
	}
	op.End = time.Now()
	op.Outcome = faultOutcome(err)
	if err != nil {
		op.Err = err.Error()
	} else {
		acknowledge(op.Writes, rows)
	}
	c.log.add(op)
	return true
}

// write writes rows, changed in memory, with a call of kind k.
func (c *faultClient) write(db *gorm.DB, k faultKind, rows []FaultRow) error {
	switch k {
	case faultSingle:
		return optlock.UpdateSafely(db, &rows[0], map[string]any{"value": rows[0].Value, "trail": rows[0].Trail}).Error
	case faultSkip:
		return optlock.UpdateSafely(db.Session(&gorm.Session{SkipDefaultTransaction: true}), &rows[0],
			map[string]any{"value": rows[0].Value, "trail": rows[0].Trail}).Error
	case faultGuard:
		return db.Model(&rows[0]).Updates(map[string]any{"value": rows[0].Value, "trail": rows[0].Trail}).Error
	case faultEach, faultBulk:
		// Bulk is UpdateEach's all-or-nothing UPDATE over rows of different values too; what differs
		// is the session: bulk skips GORM's default transaction, so the plugin opens its own.
		if k == faultBulk {
			db = db.Session(&gorm.Session{SkipDefaultTransaction: true})
		}
		return optlock.UpdateEach(db, &rows, "value", "trail").Error
	}
	panic("unknown kind " + k)
}

// callerTx is a transaction of the caller's own: it writes a stale copy of row stale (read, then
// given the version before, as if another writer had moved it since), which must be a conflict that
// leaves the transaction alive, then reads another row and writes it, and commits.
func (c *faultClient) callerTx(ctx context.Context, stale uint) bool {
	staleOp := histOp{Token: c.log.token(c.id), Client: c.id, Kind: string(faultStale), Start: time.Now()}
	op := histOp{Token: c.log.token(c.id), Client: c.id, Kind: string(faultCallerTx)}
	fresh := uint(stale%faultRows) + 1
	var rows []FaultRow
	var staleErr error
	err := c.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		old, err := faultReadRows(ctx, tx, []uint{stale})
		if err != nil {
			return err
		}
		old[0].Version-- // what it held before its last write: stale
		staleOp.Writes = c.change(staleOp.Token, old)
		staleErr = optlock.UpdateSafely(tx, &old[0], map[string]any{"value": old[0].Value, "trail": old[0].Trail}).Error
		staleOp.End = time.Now()
		if staleErr != nil && !errors.Is(staleErr, optlock.ErrConflict) {
			return staleErr // not alive: roll back
		}
		op.Start = time.Now()
		if rows, err = faultReadRows(ctx, tx, []uint{fresh}); err != nil {
			return err
		}
		op.Writes = c.change(op.Token, rows)
		return optlock.UpdateSafely(tx, &rows[0], map[string]any{"value": rows[0].Value, "trail": rows[0].Trail}).Error
	})
	if staleOp.Writes == nil {
		c.log.unread(c.id, err)
		return false
	}
	staleOp.Outcome = faultOutcome(staleErr)
	if staleErr != nil {
		staleOp.Err = staleErr.Error()
	} else if err != nil {
		// It wrote, and then the transaction failed: indeterminate like the transaction.
		staleOp.Outcome, staleOp.Err = faultOutcome(err), err.Error()
	}
	if staleErr == nil && err == nil {
		acknowledge(staleOp.Writes, []FaultRow{}) // a stale write that succeeded: the checker says so
	}
	c.log.add(staleOp)
	if op.Writes != nil {
		op.End = time.Now()
		op.Outcome = faultOutcome(err)
		if err != nil {
			op.Err = err.Error()
		} else {
			acknowledge(op.Writes, rows)
		}
		c.log.add(op)
	}
	return true
}

// faultWriters runs clients writers per db (each cycling through faultKinds from a different start)
// until ctx ends or d has passed, and returns how many reads failed (calls not made). A client whose
// call could not even read sleeps a little, as an application backing off would.
func faultWriters(ctx context.Context, dbs []*gorm.DB, perDB int, d time.Duration, log *histLog) int {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var wg sync.WaitGroup
	var mu sync.Mutex
	unread := 0
	id := 0
	for _, db := range dbs {
		for range perDB {
			id++
			c := &faultClient{id: id, db: db, log: log, rnd: rand.New(rand.NewPCG(uint64(id), uint64(time.Now().UnixNano())))}
			wg.Go(func() {
				for i := c.id; ctx.Err() == nil; i++ {
					if !c.call(ctx, faultKinds[i%len(faultKinds)]) {
						mu.Lock()
						unread++
						mu.Unlock()
						select {
						case <-ctx.Done():
						case <-time.After(20 * time.Millisecond):
						}
					}
				}
			})
		}
	}
	wg.Wait()
	return unread
}
