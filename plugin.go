// Package optlock is a GORM plugin for optimistic locking that holds under real concurrency.
//
// A write is made conditional on what the caller read: the UPDATE itself carries the primary key and
// the lock values (an integer version, or an updated_at timestamp) of every row, so the database checks
// and writes in one atomic statement. When any row changed since it was read, nothing is written and the
// caller gets an [*OptimisticLockError] naming the conflicting primary keys; it matches [ErrConflict].
//
// Register the plugin once, then lock-check statements with [WithLock] or write back read rows with
// [UpdateSafely]:
//
//	db.Use(optlock.New())
//	err := optlock.UpdateSafely(db.Scopes(optlock.WithLock("version")), &items, map[string]any{"qty": 0}).Error
//	if errors.Is(err, optlock.ErrConflict) {
//		// re-read and retry
//	}
//
// Or guard a model once with [Guard], and every write of it is lock-aware, with or without WithLock:
//
//	db.Use(optlock.New(optlock.Guard(&Account{})))
//	err := db.Model(&acc).Update("balance", 90).Error // checked; acc.Version advanced
//
// Statements without [WithLock] (or [UpdateSafely]), of models that are not guarded, are never changed
// by the plugin.
//
// Inside the caller's own transaction, errors.Is(err, [ErrConflict]) means the transaction is alive:
// nothing of this call was written, everything else is intact, and the caller may go on and commit.
// When the database has aborted the transaction (a deadlock or serialization failure) the error
// matches [ErrTxAborted] instead: roll back and run the whole transaction again, as [Transaction] does.
package optlock

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"

	"gorm.io/gorm"
)

// pluginName is the name GORM registers the plugin under; [WithLock] and [UpdateSafely] look for it.
const pluginName = "optlock"

// Plugin adds lock checks to GORM statements marked with [WithLock] or written by [UpdateSafely].
// Create it with [New] and register it with gorm.DB.Use. Its zero value is not usable.
type Plugin struct {
	// specs maps a fieldCacheKey to the resolved lockSpec, so the schema is looked up once per model,
	// dialect, field list and table rather than on every statement; the least recently used are
	// forgotten (cache.go).
	specs lru[fieldCacheKey, *lockSpec]
	// columns holds the column types of recently written tables (storedColumns).
	columns columnCache
	// bindings holds how recently used pools bind a time to a timestamp without time zone
	// (timeBindingOf).
	bindings  lru[bindingKey, timeBinding]
	resolveMu sync.Mutex
	// savepoints numbers the savepoints this plugin creates, so names never repeat.
	savepoints atomic.Uint64
	// bindVarLimit, when set, overrides the dialect's bind-parameter limit (WithBindVarLimit).
	bindVarLimit int
	// onConflict, when set, is told of every conflict (OnConflict).
	onConflict func(ctx context.Context, err *OptimisticLockError)
	// onTxAborted, when set, is told of every write that ended the caller's transaction (OnTxAborted).
	onTxAborted func(ctx context.Context, table string, err error)
	// guardRequests are the Guard options, checked by Initialize into guards.
	guardRequests []guardRequest
	// guards maps each guarded model type to its lock field names (none: the default). Initialize
	// publishes a new map, never changes one: one Plugin may be given to several *gorm.DB, whose
	// statements read it while another Initialize runs.
	guards atomic.Pointer[map[reflect.Type][]string]
	// guardTables maps the guarded models' tables to their guards, for writes that name a guarded
	// table without its model (guard_tables.go); published with guards.
	guardTables atomic.Pointer[guardedTables]
}

var _ gorm.Plugin = (*Plugin)(nil)

// Option configures a [Plugin]; pass options to [New].
type Option func(*Plugin)

// New returns a Plugin ready for gorm.DB.Use.
func New(opts ...Option) *Plugin {
	p := &Plugin{}
	for _, opt := range opts {
		opt(p)
	}
	return p
}

// Name returns "optlock", the name GORM registers the plugin under.
func (p *Plugin) Name() string { return pluginName }

// Initialize registers the plugin's update, delete, create and query callbacks on db. A dialect the plugin
// has no SQL for (any but mysql, postgres and sqlite) is refused with an error wrapping
// [ErrInvalidLock], as is a bad [Guard]. GORM calls it from
// gorm.DB.Use. It is idempotent: registering again replaces the callbacks instead of adding a second set.
func (p *Plugin) Initialize(db *gorm.DB) error {
	if err := checkDialect(db.Dialector.Name()); err != nil {
		return err
	}
	if err := p.registerGuards(db); err != nil {
		return err
	}
	update, del, create, query := db.Callback().Update(), db.Callback().Delete(), db.Callback().Create(), db.Callback().Query()
	// Every anchor below is a callback GORM registers in every configuration but GORM's own
	// transaction, which it leaves out under gorm.Config.SkipDefaultTransaction: a callback placed by
	// a name GORM did not register lands wherever the sort puts it (the end of the chain).
	first, txEnd, afterTx := placement(db, update, "gorm:setup_reflect_value")
	firstDel, txEndDel, afterTxDel := placement(db, del, "gorm:before_delete")
	hooks := []struct {
		processor interface {
			Get(name string) func(*gorm.DB)
			Replace(name string, fn func(*gorm.DB)) error
		}
		name     string
		register func(name string, fn func(*gorm.DB)) error
		fn       func(*gorm.DB)
	}{
		// Note the connection the write is routed to (dbresolver's choice) before GORM's transaction
		// replaces it: the conflict details are read there once that transaction is rolled back.
		{update, "optlock:route", update.Before(first).Register, p.route},
		// Snapshot rows and open a savepoint before hooks and associations can write anything.
		{update, "optlock:prepare", update.After("gorm:setup_reflect_value").Before("gorm:before_update").Register, p.prepare(updating)},
		// Build SET and WHERE last, so BeforeUpdate hooks and SetColumn still shape the values.
		{update, "optlock:build", update.Before("gorm:update").After("gorm:save_before_associations").Register, p.build},
		// Judge the result inside the transaction, so a conflict rolls it back and stops Save's upsert.
		{update, "optlock:check", update.After("gorm:update").Before("gorm:save_after_associations").Register, p.check},
		// Keep the call's error as it is before GORM's ROLLBACK can flatten it into text.
		{update, "optlock:settle", update.After("gorm:after_update").Before(txEnd).Register, settle},
		// Report and put rows back only once the transaction GORM opened is committed or rolled back.
		{update, "optlock:finish", update.After(afterTx).Register, p.finish},

		{del, "optlock:route", del.Before(firstDel).Register, p.route},
		{del, "optlock:prepare", del.After("optlock:route").Before("gorm:before_delete").Register, p.prepare(deleting)},
		{del, "optlock:build", del.Before("gorm:delete").After("gorm:delete_before_associations").Register, p.build},
		{del, "optlock:check", del.After("gorm:delete").Before("gorm:after_delete").Register, p.check},
		{del, "optlock:settle", del.After("gorm:after_delete").Before(txEndDel).Register, settle},
		{del, "optlock:finish", del.After(afterTxDel).Register, p.finish},

		// An upsert overwrites rows it never read: refuse it, or for a guarded model's named columns,
		// advance the lock of the rows it overwrites (upsert.go); then put the caller's clause back.
		{create, "optlock:refuse_upsert", create.Before("gorm:create").Register, p.guardUpsert},
		{create, "optlock:restore_upsert", create.After("gorm:after_create").Register, restoreUpsert},
		// A Save under ExpectLocks or ExpectRow of a row without a key would insert it: refuse (expect.go).
		{create, "optlock:refuse_expected", create.Before("gorm:before_create").Register, refuseExpectedInsert},
		// A guarded model's new rows start at version 1, so a Save of version 0 is always a new row.
		{create, "optlock:start_locks", create.After("gorm:before_create").Before("gorm:create").Register, p.startLocks},

		// In an attempt that locks its reads (RetryLockAfter), read lock-checked rows with FOR UPDATE.
		{query, "optlock:lock_reads", query.Before("gorm:query").Register, p.lockReads},
	}
	for _, h := range hooks {
		if h.processor.Get(h.name) != nil {
			if err := h.processor.Replace(h.name, h.fn); err != nil {
				return fmt.Errorf("optlock: replace callback %s: %w", h.name, err)
			}
			continue
		}
		if err := h.register(h.name, h.fn); err != nil {
			return fmt.Errorf("optlock: register callback %s: %w", h.name, err)
		}
	}
	return nil
}

// placement returns where the plugin's first callback goes (before GORM's transaction begins), what
// its settle callback precedes (GORM's commit or rollback) and what its finish callback follows, for a
// chain whose first callback after the transaction begins is firstAfterBegin. Without GORM's
// transaction callbacks (SkipDefaultTransaction in gorm.Config: callbacks.RegisterDefaultCallbacks
// matches them on it) they are placed by callbacks that are always registered: first before
// firstAfterBegin, settle with nothing after it, finish after the plugin's own settle.
func placement(db *gorm.DB, chain interface{ Get(string) func(*gorm.DB) }, firstAfterBegin string) (first, settleBefore, finishAfter string) {
	if db.Config.SkipDefaultTransaction || chain.Get(gormBeginTransaction) == nil || chain.Get(gormCommitOrRollback) == nil {
		return firstAfterBegin, "", "optlock:settle"
	}
	return gormBeginTransaction, gormCommitOrRollback, gormCommitOrRollback
}
