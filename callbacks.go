package optlock

import (
	"errors"

	"gorm.io/gorm"
	"gorm.io/gorm/callbacks"
	"gorm.io/gorm/clause"
)

// operation is the kind of statement a lock check guards.
type operation int

const (
	updating operation = iota
	deleting
)

// lockState carries one lock-checked statement through the plugin's callbacks.
//
// Its life follows the callbacks, in the order GORM runs them and this file reads: route notes the
// pool, prepare resolves the lock, snapshots the rows and decides who owns the write's transaction
// and how the write is undone (openUndo, undo.go), build writes SET and WHERE, check judges the rows
// affected, settle ends the savepoint or the plugin's own transaction once the whole call is done
// (endUndo, the one place that does), finish reads a conflict's details once GORM's transaction has
// ended and puts the rows back when nothing was written.
type lockState struct {
	op       operation
	spec     *lockSpec
	snapshot *snapshot
	// next holds, per lock field, the value every row gets (nil for counters).
	next []any
	// tx is who owns the write's transaction and how the write is undone (undo.go).
	tx undoScope
	// writePool is the connection pool the write was routed to (by dbresolver, say) before GORM's
	// transaction replaced it: the conflict details are read there after GORM's rollback.
	writePool gorm.ConnPool
	// beforeSettle is the call's error just before GORM commits or rolls back, which can flatten it.
	beforeSettle error
	// hasConditions says the statement has conditions of its own (the caller's Where) besides the
	// lock predicate: a refused write whose rows all hold what was read was excluded by them.
	hasConditions bool
	// each carries UpdateEach's columns and per-row values.
	each *eachState
	// advanceOnly marks a write that cannot be checked (no read rows, or Unchecked): its SET advances
	// the lock, and nothing else of the plugin applies.
	advanceOnly bool
	// conflict is the error reported when rows did not match; its keys are filled in by finish
	// when they can only be read after GORM's rollback.
	conflict *OptimisticLockError
	// findConflicts says the conflicting keys are still to be read.
	findConflicts bool
	// absent counts the rows the conflict query did not find at all (not even soft-deleted).
	absent int
	// chunks are the row ranges written by separate statements (one, unless the rows need more
	// bind parameters than one statement takes); the last is GORM's own UPDATE.
	chunks []chunk
	// pred is the lock predicate of the statement's own UPDATE or DELETE (its last chunk), which its
	// WHERE clause holds by address until finish puts the caller's clause back.
	pred lockPredicate
	// sortedValues is snapshot.values with the rows in key order, for a write split into chunks.
	sortedValues []any
	// earlierWritten counts the rows the plugin's own statements wrote for the earlier chunks.
	earlierWritten int64
	// before holds the WHERE, SET and FROM clauses as they were before build, to be put back by finish:
	// a *gorm.DB kept and reused (db.Scopes(...) in a repository) must not carry one call's
	// predicate into the next.
	before savedClauses
	// one holds the snapshot, chunk and next values of a write of one row (snapshot.go).
	one oneRow
}

// savedClauses is a copy of a statement's WHERE, SET and FROM clauses, of the mark that switches off
// gorm.io/plugin/optimisticlock's own clause, and of soft delete's mark.
type savedClauses struct {
	saved, hadWhere, hadSet, hadFrom, hadOfficial, hadSoftDelete bool
	where, set, from, official, softDelete                       clause.Clause
}

func (c *savedClauses) save(stmt *gorm.Statement) {
	c.saved = true
	c.where, c.hadWhere = stmt.Clauses["WHERE"]
	c.set, c.hadSet = stmt.Clauses["SET"]
	c.from, c.hadFrom = stmt.Clauses["FROM"]
	c.official, c.hadOfficial = stmt.Clauses[officialLockMark]
	c.softDelete, c.hadSoftDelete = stmt.Clauses[softDeleteMark]
	stmt.Clauses[officialLockMark] = clause.Clause{}
}

func (c *savedClauses) restore(stmt *gorm.Statement) {
	if !c.saved {
		return
	}
	restoreClause(stmt, "WHERE", c.hadWhere, c.where)
	restoreClause(stmt, "SET", c.hadSet, c.set)
	restoreClause(stmt, "FROM", c.hadFrom, c.from)
	restoreClause(stmt, officialLockMark, c.hadOfficial, c.official)
	restoreClause(stmt, softDeleteMark, c.hadSoftDelete, c.softDelete)
}

func restoreClause(stmt *gorm.Statement, name string, had bool, c clause.Clause) {
	if had {
		stmt.Clauses[name] = c
	} else {
		delete(stmt.Clauses, name)
	}
}

// stateKey stores a statement's lockState in its settings; unlike InstanceSet it needs no formatting.
type stateKey struct{ stmt *gorm.Statement }

// requested reports whether the statement is lock-checked, and with which field names. A request
// copied from another statement (GORM's association saving copies settings) does not count.
//
// Each key is passed as a constant: a string variable would be boxed into an interface, one allocation
// per statement the plugin sees.
func requested(db *gorm.DB) ([]string, bool) {
	if v, ok := db.Statement.Settings.Load(settingFields); ok {
		if r, ok := v.(lockRequest); ok && r.stmt == db.Statement {
			return r.fields, true
		}
	}
	if v, ok := db.Statement.Settings.Load(settingSafely); ok {
		if r, ok := v.(lockRequest); ok && r.stmt == db.Statement {
			return r.fields, true
		}
	}
	return nil, false
}

// stateOf returns the statement's lockState once prepare has taken its snapshot (a checked write),
// else nil.
func stateOf(db *gorm.DB) *lockState {
	if st := anyStateOf(db); st != nil && st.snapshot != nil {
		return st
	}
	return nil
}

// anyStateOf returns the statement's lockState, whatever it has come to.
func anyStateOf(db *gorm.DB) *lockState {
	if v, ok := db.Statement.Settings.Load(stateKey{db.Statement}); ok {
		return v.(*lockState)
	}
	return nil
}

// route notes, for a statement the plugin handles, the connection pool it was routed to before GORM's
// transaction replaces it.
func (p *Plugin) route(db *gorm.DB) {
	if _, mode, _ := p.lockMode(db); mode != notLocked {
		db.Statement.Settings.Store(stateKey{db.Statement}, &lockState{writePool: db.Statement.ConnPool})
	}
}

// prepare resolves the lock fields, snapshots the rows as the caller read them and, for a bulk
// write, makes sure it can be undone. It runs before BeforeUpdate hooks and associations.
func (p *Plugin) prepare(op operation) func(*gorm.DB) {
	return func(db *gorm.DB) { p.prepareFor(db, op) }
}

func (p *Plugin) prepareFor(db *gorm.DB, op operation) {
	names, mode, ifRows := p.lockMode(db)
	if mode == notLocked || db.Error != nil {
		return
	}
	stmt := db.Statement
	if ifRows && !carriesRows(stmt) {
		mode = blindAdvance // a guarded model written by a query: advance, as no read can be checked
	}
	if mode == blindAdvance {
		p.prepareAdvance(db, op, names)
		return
	}
	if stmt.Schema == nil {
		_ = db.AddError(invalidf("a lock-checked write needs a model: pass the row you read to Model(&row), Save(&row) or Delete(&row)"))
		return
	}
	if _, ok := stmt.Clauses["RETURNING"]; ok {
		_ = db.AddError(invalidf("Clauses(clause.Returning{}) is not supported on a lock-checked write: the rows it scans back are only those the database matched, in its order, not yours; the plugin already advances the lock fields in your structs; re-read the rows if you need other columns the database computed"))
		return
	}
	spec, err := p.lockSpec(stmt, names)
	if err != nil {
		_ = db.AddError(err)
		return
	}
	if op == updating {
		if err := checkWrittenValues(stmt, spec); err != nil {
			_ = db.AddError(err)
			return
		}
	}
	st := anyStateOf(db) // route's, when it ran
	var binding timeBinding
	if spec.hasWallClock() {
		var routed gorm.ConnPool
		if st != nil {
			routed = st.writePool
		}
		binding = p.timeBindingOf(stmt, routed)
	}
	if st == nil {
		st = &lockState{writePool: stmt.ConnPool}
		stmt.Settings.Store(stateKey{stmt}, st)
	}
	// The snapshot of one row is taken into the state (st.one); it counts once st.snapshot is set.
	snap, err := takeSnapshot(stmt.Context, spec, stmt.ReflectValue, binding, &st.one)
	if err != nil {
		_ = db.AddError(err)
		return
	}
	if len(snap.rows) == 0 {
		_ = db.AddError(invalidf("the model holds no rows: pass the rows you read"))
		return
	}
	st.op, st.spec, st.snapshot = op, spec, snap
	st.tx.owner = txOwnerOf(db)
	if !p.applyExpectation(db, st) { // lock values from ExpectLocks or ExpectRow (expect.go)
		return
	}
	if r, ok := eachRequestOf(db); ok {
		if err := p.prepareEach(db, st, r.columns); err != nil {
			_ = db.AddError(err)
			return
		}
	}
	p.openUndo(db, st, len(snap.rows) > 1 || mayWriteElsewhere(stmt))
}

// prepareAdvance readies an update that cannot be checked to advance the lock. A delete without read
// rows needs nothing: the rows it removes have no lock left to advance.
func (p *Plugin) prepareAdvance(db *gorm.DB, op operation, names []string) {
	stmt := db.Statement
	target := p.lockTarget(stmt) // a guarded table written without its model: seen as the model
	if op == deleting || target.Schema == nil {
		return
	}
	spec, err := p.lockSpec(target, names)
	if err != nil {
		if len(names) == 0 && !isGuarded(p, target) {
			return // Unchecked on a model without a lock field: nothing to advance
		}
		_ = db.AddError(err)
		return
	}
	if err := checkWrittenValues(target, spec); err != nil {
		_ = db.AddError(err)
		return
	}
	st := anyStateOf(db)
	if st == nil {
		st = &lockState{}
		stmt.Settings.Store(stateKey{stmt}, st)
	}
	st.op, st.spec, st.advanceOnly = op, spec, true
}

// isGuarded reports whether the statement's model is guarded.
func isGuarded(p *Plugin, stmt *gorm.Statement) bool {
	_, ok := p.guardsOf()[stmt.Schema.ModelType]
	return ok
}

// mayWriteElsewhere reports whether hooks or associations may write other rows, or fail after the
// write, in the same call: then even a one-row write needs a savepoint (or a transaction), so a
// conflict undoes their writes too, and a failing After hook undoes the write.
func mayWriteElsewhere(stmt *gorm.Statement) bool {
	s := stmt.Schema
	hooks := s.BeforeSave || s.BeforeUpdate || s.BeforeDelete || s.AfterSave || s.AfterUpdate || s.AfterDelete
	return !stmt.SkipHooks && hooks || len(s.Relationships.Relations) > 0
}

// build adds the lock columns to SET and the lock predicate to WHERE. It runs last before
// gorm:update (or gorm:delete), so the values BeforeUpdate hooks set are in.
func (p *Plugin) build(db *gorm.DB) {
	if st := anyStateOf(db); st != nil && st.advanceOnly && db.Error == nil {
		p.buildAdvance(db, st)
		return
	}
	st := stateOf(db)
	if st == nil || db.Error != nil {
		return
	}
	stmt := db.Statement
	if st.op == deleting {
		p.buildDelete(db, st)
		return
	}
	if st.each != nil {
		p.buildEach(db, st)
		return
	}
	st.before.save(stmt)
	set, ok := existingSet(stmt)
	if ok {
		set = append(clause.Set(nil), set...) // the caller's clause is not ours to edit
	} else {
		set = convertToAssignments(stmt, st)
		if db.Error != nil {
			return
		}
	}
	set = withoutLockColumns(set, st.spec)
	st.hasConditions = whereExprCount(stmt) > 0

	now := db.NowFunc()
	for j, lf := range st.spec.locks {
		if lf.kind == counterLock {
			set = append(set, lf.increment)
			continue
		}
		if st.next == nil {
			st.next = make([]any, len(st.spec.locks))
		}
		st.next[j] = st.snapshot.nextValue(st.spec, j, now)
		set = append(set, clause.Assignment{Column: clause.Column{Name: lf.field.DBName}, Value: st.next[j]})
	}
	setClause(stmt, set)
	st.chunks = p.planChunks(db, st)
	last := len(st.chunks) - 1
	if !db.DryRun {
		for _, c := range st.chunks[:last] {
			written, err := execChunk(db, st, c)
			if db.AddError(err) != nil {
				return
			}
			st.earlierWritten += written
		}
	}
	st.pred = st.chunkPredicate(st.chunks[last])
	addUpdatePredicate(stmt, &st.pred)
	// AfterUpdate hooks see the advanced lock fields; finish puts the rows back if the write fails.
	st.snapshot.advance(stmt.Context, st.spec, st.next)
}

// convertToAssignments is GORM's callbacks.ConvertToAssignments, which also assigns the values to the
// rows in memory. The key conditions it adds to WHERE are dropped: the predicate carries the keys.
// For a slice it is shown only the first row, and the values are then set on the others here:
// otherwise GORM would build, and the plugin throw away, a key list costing several allocations a row.
func convertToAssignments(stmt *gorm.Statement, st *lockState) clause.Set {
	// The WHERE clause as it was: GORM's MergeClause appends to a copy, so putting it back drops what
	// GORM added without building a new clause.
	where, hadWhere := stmt.Clauses["WHERE"]
	rows := st.snapshot.rows
	whole := stmt.ReflectValue
	if len(rows) > 1 {
		stmt.ReflectValue = rows[0]
	}
	set := callbacks.ConvertToAssignments(stmt)
	stmt.ReflectValue = whole
	restoreClause(stmt, "WHERE", hadWhere, where)
	if len(rows) > 1 && whole.CanAddr() {
		for _, a := range set {
			if f := stmt.Schema.LookUpField(a.Column.Name); f != nil {
				for _, row := range rows[1:] {
					_ = f.Set(stmt.Context, row, a.Value) // GORM ignores values it cannot set (expressions) too
				}
			}
		}
	}
	return set
}

// setClause makes set the statement's SET clause. Unlike AddClause it does not copy set, which must
// be the plugin's own (a copy of the caller's clause, or the one ConvertToAssignments returned).
func setClause(stmt *gorm.Statement, set clause.Set) {
	c := stmt.Clauses["SET"]
	c.Name, c.Expression = "SET", set
	stmt.Clauses["SET"] = c
}

func existingSet(stmt *gorm.Statement) (clause.Set, bool) {
	if c, ok := stmt.Clauses["SET"]; ok {
		if set, ok := c.Expression.(clause.Set); ok {
			return set, true
		}
	}
	return nil, false
}

func whereExprCount(stmt *gorm.Statement) int {
	if c, ok := stmt.Clauses["WHERE"]; ok {
		if where, ok := c.Expression.(clause.Where); ok {
			return len(where.Exprs)
		}
	}
	return 0
}

// withoutLockColumns drops assignments to lock columns (Save and struct values carry the old ones),
// in place.
func withoutLockColumns(set clause.Set, spec *lockSpec) clause.Set {
	kept := set[:0]
	for _, a := range set {
		isLock := false
		for _, lf := range spec.locks {
			if a.Column.Name == lf.field.DBName {
				isLock = true
				break
			}
		}
		if !isLock {
			kept = append(kept, a)
		}
	}
	return kept
}

// buildDelete adds the lock predicate to a DELETE (or to the UPDATE of deleted_at that GORM's soft
// delete turns it into). GORM adds its own key list inside gorm:delete, so a delete is never split:
// rows beyond one statement's bind parameters are refused.
func (p *Plugin) buildDelete(db *gorm.DB, st *lockState) {
	stmt := db.Statement
	st.before.save(stmt)
	rows := len(st.snapshot.rows)
	// GORM's key list, the predicate, and the conflict query's own key list.
	width := len(st.spec.keys)*2 + st.spec.paramsPerRow()
	if limit := p.bindVarLimitFor(st.spec.dialect); rows*width > limit/2 {
		if base := boundVars(stmt); rows*width+base > limit {
			_ = db.AddError(invalidf("%d rows need more bind parameters than one lock-checked %s delete takes (%d): delete them in batches of %d", rows, db.Dialector.Name(), limit, max(1, (limit-base)/width)))
			return
		}
	}
	st.chunks = append(st.one.chunks[:0], chunk{0, rows})
	st.hasConditions = whereExprCount(stmt) > 0
	st.pred = st.chunkPredicate(st.chunks[0])
	addCheck(stmt, &st.pred)
}

// check judges the write inside the transaction: fewer rows than given means a conflict, which
// becomes an error here so GORM rolls back (and Save does not fall back to an insert).
func (p *Plugin) check(db *gorm.DB) {
	st := stateOf(db)
	if st == nil || db.DryRun {
		return
	}
	if db.Error != nil {
		return // settle undoes the write
	}
	expected := int64(len(st.snapshot.rows))
	db.RowsAffected += st.earlierWritten
	switch {
	case db.RowsAffected == expected:
		// The savepoint stays until settle: associations saved after the write (has-many, has-one)
		// and After hooks may still fail, and inside the caller's transaction the write must then be
		// undone with them, or a refused call would leave its first half for the caller to commit.
		return
	case db.RowsAffected > expected:
		_ = db.AddError(invalidf("the update matched %d rows for %d given: the primary key of table %s is not unique", db.RowsAffected, expected, db.Statement.Table))
		return
	}
	st.conflict = &OptimisticLockError{Table: db.Statement.Table}
	db.RowsAffected = 0
	if db.Statement.Result != nil {
		db.Statement.Result.RowsAffected = 0
	}
	st.findConflicts = true
	// The conflict is read once the write is undone: here after rolling back to its savepoint, or in
	// finish after the transaction's rollback. A lone row's UPDATE wrote nothing, so its conflict can
	// be read right away. The savepoint itself is ended by settle, with the call.
	if name := st.tx.savepoint; name != "" {
		if st.rewind(db) {
			p.fillConflicts(db, st, db.Statement.ConnPool, name)
		}
		if st.tx.err == nil && st.isSaveOfNewRow(db.Statement) {
			st.tx.rewound = false // the insert is undone with the call if an After hook fails
			p.insertNewRow(db, st)
			return
		}
	} else if expected == 1 && (st.inCallersTx() || !st.inOwnOrGORMTx() || st.mayBeSaveOfNewRow(db.Statement)) {
		// Inside GORM's (or the plugin's) own transaction the details wait for its rollback: a
		// database that aborted that transaction (a Galera certification failure) would refuse them.
		p.fillConflicts(db, st, db.Statement.ConnPool, "")
		if st.isSaveOfNewRow(db.Statement) {
			p.insertNewRow(db, st)
			return
		}
	}
	_ = db.AddError(st.refusal())
}

// mayBeSaveOfNewRow reports a Save of one row whose lock values are all zero: if the row does not
// exist, it is inserted in the same transaction, so its details are needed before the rollback.
func (st *lockState) mayBeSaveOfNewRow(stmt *gorm.Statement) bool {
	if st.op != updating || len(st.snapshot.rows) != 1 || len(stmt.Selects) != 1 || stmt.Selects[0] != "*" {
		return false
	}
	for j := range st.spec.locks {
		if !isZeroLockValue(st.snapshot.lockValue(st.spec, 0, j)) {
			return false
		}
	}
	return true
}

// isSaveOfNewRow reports a Save of one row that does not exist and whose lock values are all zero: a
// new row with a key the client chose (a UUID, say). Save inserts it.
func (st *lockState) isSaveOfNewRow(stmt *gorm.Statement) bool {
	return st.absent == 1 && st.mayBeSaveOfNewRow(stmt) && !insertForbidden(stmt)
}

// insertNewRow inserts the row of a Save that found no row to update, with a plain INSERT (not GORM's
// upsert, which would overwrite a row another writer inserted in the meantime: that insert fails on the
// primary key instead). The lock fields are already advanced, so the row starts at version 1.
func (p *Plugin) insertNewRow(db *gorm.DB, st *lockState) {
	st.conflict, st.findConflicts = nil, false
	insert := db.Session(&gorm.Session{NewDB: true, SkipHooks: true, Context: db.Statement.Context})
	insert.Statement.ConnPool = db.Statement.ConnPool
	res := insert.Table(db.Statement.Table).Create(st.snapshot.rows[0].Addr().Interface())
	if db.AddError(res.Error) == nil {
		db.RowsAffected = res.RowsAffected
		if db.Statement.Result != nil {
			db.Statement.Result.RowsAffected = res.RowsAffected
		}
	}
}

// refusal is the error for a refused write: the conflict; or, once the details show that every row
// still holds what was read, ErrNotMatched when the statement had conditions of its own that excluded
// the rows. Without such conditions the rows only hold what was read again: a commit became visible
// between the write and the read of its details (a read replica ahead of its primary shows this).
// That is a conflict, and a retry succeeds.
func (st *lockState) refusal() error {
	if st.findConflicts || len(st.conflict.ConflictIDs) > 0 {
		return st.conflict
	}
	if !st.hasConditions {
		st.conflict.unknown(st, errHeldWhatWasRead)
		return st.conflict
	}
	ids := make([]any, len(st.snapshot.rows))
	for i := range ids {
		ids[i] = st.snapshot.key(st.spec, i)
	}
	return &notMatchedError{table: st.conflict.Table, ids: ids}
}

// errHeldWhatWasRead explains a conflict whose rows held what was read again by the time their
// details were read.
var errHeldWhatWasRead = errors.New("every refused row held what was read again when its details were read: a concurrent commit became visible between the write and that read")

// settle ends what made the write undoable (endUndo: the savepoint in the caller's transaction, or
// the plugin's own transaction) once the whole call is done, undoing the write when a later step of
// the call failed (an association saved after it, an After hook), and notes the call's error before
// GORM's commit or rollback, which joins a failure of its own to it as text.
func settle(db *gorm.DB) {
	if st := stateOf(db); st != nil {
		st.endUndo(db, db.Error != nil)
		if st.tx.err != nil {
			// Not AddError: GORM would flatten the call's error (a deadlock in a hook) into text.
			db.Error = joinCauses(db.Error, st.tx.err)
		}
		st.beforeSettle = db.Error
	}
}

// finish runs after GORM's commit or rollback: it reads the conflicting keys once the failed write is
// undone, and puts the rows back if nothing was written.
func (p *Plugin) finish(db *gorm.DB) {
	defer db.Statement.Settings.Delete(stateKey{db.Statement})
	if st := anyStateOf(db); st != nil && st.advanceOnly {
		st.before.restore(db.Statement)
		return
	}
	st := stateOf(db)
	if st == nil {
		return
	}
	if db.Error != st.beforeSettle && st.beforeSettle != nil {
		db.Error = afterGORM(st.beforeSettle, db.Error)
	}
	if st.findConflicts {
		pool := st.writePool
		if pool == nil {
			pool = db.Statement.ConnPool
		}
		p.fillConflicts(db, st, pool, "")
		if refusal := st.refusal(); refusal != error(st.conflict) {
			db.Error = replaceCause(db.Error, st.conflict, refusal)
		}
	}
	st.refusedByDatabase(db)
	if st.conflict != nil && len(st.conflict.ConflictIDs) > 0 && p.onConflict != nil {
		p.onConflict(db.Statement.Context, st.conflict)
	}
	if db.Error != nil || db.DryRun {
		st.snapshot.restore(db.Statement.Context, st.spec) // nothing was written
	}
	db.Error = st.outcome(db)
	if p.onTxAborted != nil && errors.Is(db.Error, ErrTxAborted) {
		p.onTxAborted(db.Statement.Context, db.Statement.Table, db.Error)
	}
	if db.Statement.Result != nil {
		db.Statement.Result.Error = db.Error
	}
	st.before.restore(db.Statement)
}

// refusedByDatabase makes a database's deadlock or serialization failure outside the caller's
// transaction the conflict it is: an *OptimisticLockError naming every row of the write (all were
// refused, nothing was written), the database's error kept in DatabaseErr. Inside the caller's
// transaction the same error is ErrTxAborted (see outcome).
func (st *lockState) refusedByDatabase(db *gorm.DB) {
	if st.inCallersTx() || st.conflict != nil || db.Error == nil || txKillingError(db.Error) == nil {
		return
	}
	cause := db.Error
	if errors.Is(cause, ErrTxAborted) {
		// A write nested in this call (a hook's) ran inside this call's transaction, which the
		// database rolled back: that is this call's refusal, and there is no caller's transaction to
		// roll back, so the error must not say so. The database's own error is the cause.
		cause = txKillingError(cause)
	}
	st.conflict = &OptimisticLockError{Table: db.Statement.Table, DatabaseErr: cause}
	for i := range st.snapshot.rows {
		st.conflict.add(RowConflict{ID: st.snapshot.key(st.spec, i), Unknown: true})
	}
	db.Error = st.conflict
}

// outcome is the call's final error, every cause kept: a caller's transaction that cannot go on is
// reported as ErrTxAborted (never as a conflict it could commit after).
func (st *lockState) outcome(db *gorm.DB) error {
	err := db.Error
	if err == nil {
		return nil
	}
	switch fatal := txKillingError(err); {
	case st.inCallersTx() && st.tx.err != nil:
		// The call's own error stays reachable (a deadlock in a hook, say), unless it is a conflict:
		// ErrTxAborted never matches ErrConflict.
		cause := st.tx.err
		switch {
		case errors.Is(err, ErrConflict):
		case errors.Is(err, st.tx.err):
			cause = err
		default:
			cause = joinCauses(err, st.tx.err)
		}
		err = &txAbortedError{reason: "the write could not be undone inside the transaction", err: cause}
	case st.inCallersTx() && fatal != nil:
		err = &txAbortedError{reason: "the database aborted the transaction", err: fatal}
	}
	if ctxErr := db.Statement.Context.Err(); ctxErr != nil && !errors.Is(err, ctxErr) {
		err = joinCauses(err, ctxErr) // GORM joins errors with %v, losing ctxErr
	}
	return err
}
