package optlock

import (
	"context"
	"database/sql"
	"errors"
	"strconv"
	"time"

	"gorm.io/gorm"
)

// makeUndoable makes sure a write can be undone, before hooks or associations write anything. A bulk
// write must write all its rows or none. When GORM opened a transaction for the statement, a conflict
// rolls it back. Inside the caller's transaction the plugin wraps the write in a savepoint, so a
// caller that catches the conflict and commits still wrote nothing. A session that skips GORM's
// default transaction gets one from the plugin. A one-row UPDATE matches or does not, and needs none,
// unless hooks or associations may write other rows in the same call.
func (p *Plugin) makeUndoable(db *gorm.DB, st *lockState) {
	if db.DryRun {
		return
	}
	if _, inTx := db.Statement.ConnPool.(gorm.TxCommitter); !inTx {
		tx := db.Begin()
		if tx.Error != nil {
			_ = db.AddError(tx.Error)
			return
		}
		st.outerPool = db.Statement.ConnPool
		db.Statement.ConnPool = tx.Statement.ConnPool
		return
	}
	if st.gormTx {
		return
	}
	st.savepoint = p.savepointName()
	if err := execRaw(db, db.Statement.Context, st.spec.dialect.savepoint(st.savepoint)); err != nil {
		st.savepoint = ""
		_ = db.AddError(err)
	}
}

// savepointName returns a savepoint name no other statement of this plugin uses.
func (p *Plugin) savepointName() string {
	return "optlock_" + strconv.FormatUint(p.savepoints.Add(1), 10)
}

// settleSavepoint ends the savepoint around a bulk write in the caller's transaction: released on
// success, rolled back to and released on failure. It runs in the check callback. A failure means the
// write may not be undone, and the transaction cannot go on: it is kept in st.undoErr.
func settleSavepoint(db *gorm.DB, st *lockState, failed bool) {
	if st.savepoint == "" {
		return
	}
	name := st.savepoint
	st.savepoint = ""
	if failed {
		if !st.undo(db, st.spec.dialect.rollbackTo(name)) {
			return
		}
	}
	// Release even after a rollback: PostgreSQL slows every session down once a transaction holds
	// more than 64 open subtransactions.
	st.undo(db, st.spec.dialect.release(name))
}

// undo runs a savepoint command that must run even once the caller's context has ended, and keeps
// its error in st.undoErr. It reports whether the command succeeded.
func (st *lockState) undo(db *gorm.DB, sql string) bool {
	ctx, cancel := undoContext(db.Statement.Context)
	defer cancel()
	if err := execRaw(db, ctx, sql); err != nil {
		st.undoErr = joinCauses(st.undoErr, err)
		return false
	}
	return true
}

// settleOwnTransaction commits or rolls back the transaction makeUndoable opened, and puts the
// statement back on the connection pool it came with.
func settleOwnTransaction(db *gorm.DB, st *lockState) {
	if st.outerPool == nil {
		return
	}
	tx, _ := db.Statement.ConnPool.(gorm.TxCommitter)
	if db.Error != nil {
		// sql.ErrTxDone means database/sql rolled it back already, when the context ended.
		if err := tx.Rollback(); err != nil && !errors.Is(err, sql.ErrTxDone) {
			db.Error = joinCauses(db.Error, err)
		}
	} else {
		_ = db.AddError(tx.Commit())
	}
	db.Statement.ConnPool = st.outerPool
	st.outerPool = nil
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
