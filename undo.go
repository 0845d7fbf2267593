package optlock

import (
	"context"
	"database/sql"
	"errors"
	"strconv"
	"time"

	"gorm.io/gorm"
)

// txOwner says who opened the transaction a checked write runs in, and so who ends it.
type txOwner int

const (
	// noTx: the write runs on its own (autocommit). Only a one-row write that cannot write anything
	// else in the same call runs so: it matches or it does not, and leaves nothing to undo.
	noTx txOwner = iota
	// gormsTx: GORM's default transaction. GORM commits or rolls it back, after settle; a conflict's
	// details are read after its rollback, in finish.
	gormsTx
	// callersTx: the caller's own transaction, which the plugin never ends. A write that may need
	// undoing runs under a savepoint of the plugin's, which settle releases (or rolls back to).
	callersTx
	// pluginsTx: a transaction the plugin opened because the session skips GORM's default one
	// (SkipDefaultTransaction); settle commits or rolls it back.
	pluginsTx
)

// undoScope is what lets one checked write be undone. openUndo decides it before hooks and
// associations write anything; endUndo, in settle, is the one place that ends it.
type undoScope struct {
	owner txOwner
	// savepoint names the savepoint around the write in the caller's transaction ("" for none).
	savepoint string
	// rewound says the write was rolled back to its savepoint already (check does, to read a
	// conflict's details): ending it only releases the savepoint.
	rewound bool
	// outerPool is the connection pool to go back to once the plugin's own transaction ends.
	outerPool gorm.ConnPool
	// err is why a savepoint command failed: the write may not be undone, and the caller's
	// transaction cannot go on.
	err error
}

// openUndo decides who owns the write's transaction and, when the write may need undoing (a bulk
// write must write all its rows or none; hooks and associations may write other rows or fail after
// it), makes sure it can be undone before anything is written: inside GORM's transaction nothing is
// needed, GORM rolls back on an error; inside the caller's, a savepoint, so a caller that catches
// the conflict and commits still wrote nothing; with no transaction, one of the plugin's own.
//
// st.tx.owner is txOwnerOf's answer, taken when the rows were snapshot.
func (p *Plugin) openUndo(db *gorm.DB, st *lockState, needsUndo bool) {
	if !needsUndo || db.DryRun {
		return
	}
	switch st.tx.owner {
	case noTx:
		tx := db.Begin()
		if tx.Error != nil {
			_ = db.AddError(tx.Error)
			return
		}
		st.tx.owner, st.tx.outerPool = pluginsTx, db.Statement.ConnPool
		db.Statement.ConnPool = tx.Statement.ConnPool
	case callersTx:
		name := p.savepointName()
		if err := execRaw(db, db.Statement.Context, st.spec.dialect.savepoint(name)); err != nil {
			_ = db.AddError(err)
			return
		}
		st.tx.savepoint = name
	}
}

// txOwnerOf tells who opened the transaction the statement runs in, if any. GORM's mark is only
// looked for inside a transaction.
func txOwnerOf(db *gorm.DB) txOwner {
	if _, ok := db.Statement.ConnPool.(gorm.TxCommitter); !ok {
		return noTx
	}
	if gormStartedTx(db.Statement) {
		return gormsTx
	}
	return callersTx
}

// inCallersTx reports whether the write runs inside the caller's own transaction.
func (st *lockState) inCallersTx() bool { return st.tx.owner == callersTx }

// inOwnOrGORMTx reports whether the write runs in a transaction GORM or the plugin opened for it.
func (st *lockState) inOwnOrGORMTx() bool { return st.tx.owner == gormsTx || st.tx.owner == pluginsTx }

// rewind rolls the write back to its savepoint, which stays open (a Save of a new row inserts under
// it next). It reports whether the rollback succeeded.
func (st *lockState) rewind(db *gorm.DB) bool {
	st.tx.rewound = true
	return st.runUndo(db, st.spec.dialect.rollbackTo(st.tx.savepoint))
}

// endUndo ends what openUndo opened, once the whole call is done (it runs in settle, after
// associations and After hooks): the savepoint is released, after rolling back to it if the call
// failed; the plugin's own transaction is committed or rolled back, and the statement goes back to
// its pool. GORM's transaction, and the caller's, are not the plugin's to end.
func (st *lockState) endUndo(db *gorm.DB, failed bool) {
	switch st.tx.owner {
	case callersTx:
		name := st.tx.savepoint
		if name == "" {
			return
		}
		st.tx.savepoint = ""
		if failed && !st.tx.rewound && !st.runUndo(db, st.spec.dialect.rollbackTo(name)) {
			return
		}
		// Release even after a rollback: PostgreSQL slows every session down once a transaction
		// holds more than 64 open subtransactions.
		st.runUndo(db, st.spec.dialect.release(name))
	case pluginsTx:
		if st.tx.outerPool == nil {
			return
		}
		tx, _ := db.Statement.ConnPool.(gorm.TxCommitter)
		if failed {
			// sql.ErrTxDone means database/sql rolled it back already, when the context ended.
			if err := tx.Rollback(); err != nil && !errors.Is(err, sql.ErrTxDone) {
				db.Error = joinCauses(db.Error, err)
			}
		} else {
			_ = db.AddError(tx.Commit())
		}
		db.Statement.ConnPool = st.tx.outerPool
		st.tx.outerPool = nil
	}
}

// runUndo runs a savepoint command that must run even once the caller's context has ended, and keeps
// its error in st.tx.err. It reports whether the command succeeded.
func (st *lockState) runUndo(db *gorm.DB, sql string) bool {
	ctx, cancel := undoContext(db.Statement.Context)
	defer cancel()
	if err := execRaw(db, ctx, sql); err != nil {
		st.tx.err = joinCauses(st.tx.err, err)
		return false
	}
	return true
}

// readUnderSavepoint runs read, a query of the plugin's own (a catalog read, a conflict's details),
// so that its failure cannot abort the caller's transaction on a database where an error aborts it
// (PostgreSQL): under the savepoint given (the write's), or under one of its own, rolled back to on
// failure. Elsewhere read runs as it is. It returns read's error (or the SAVEPOINT's, when read could
// not run), and the error of a rollback or release that failed.
func (p *Plugin) readUnderSavepoint(db *gorm.DB, d sqlDialect, inCallersTx bool, savepoint string, read func() error) (readErr, undoErr error) {
	if !inCallersTx || !d.errorAbortsTx() {
		return read(), nil
	}
	own := ""
	if savepoint == "" {
		own = p.savepointName()
		if err := execRaw(db, db.Statement.Context, d.savepoint(own)); err != nil {
			return err, nil
		}
		savepoint = own
	}
	readErr = read()
	ctx, cancel := undoContext(db.Statement.Context)
	defer cancel()
	if readErr != nil {
		undoErr = execRaw(db, ctx, d.rollbackTo(savepoint))
	}
	if own != "" {
		undoErr = joinCauses(undoErr, execRaw(db, ctx, d.release(own)))
	}
	return readErr, undoErr
}

// savepointName returns a savepoint name no other statement of this plugin uses.
func (p *Plugin) savepointName() string {
	return "optlock_" + strconv.FormatUint(p.savepoints.Add(1), 10)
}

// execRaw runs a statement the plugin made up itself (a savepoint command with a generated name) on
// the statement's connection, through GORM's logger. Savepoints cannot be prepared statements.
func execRaw(db *gorm.DB, ctx context.Context, sql string) error {
	pool := db.Statement.ConnPool
	if prepared, ok := pool.(*gorm.PreparedStmtTX); ok {
		pool = prepared.Tx
	}
	begin := time.Now()
	_, err := pool.ExecContext(ctx, sql)
	db.Logger.Trace(ctx, begin, func() (string, int64) { return sql, 0 }, err)
	return err
}
