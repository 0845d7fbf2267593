package optlock

import (
	"strconv"
	"time"

	"gorm.io/gorm"
)

// A bulk write must write all its rows or none. When GORM opened a transaction for the statement, a
// conflict rolls it back. Inside the caller's transaction the plugin wraps the write in a savepoint,
// so a caller that catches the conflict and commits still wrote nothing. A session that skips GORM's
// default transaction gets one from the plugin. A one-row UPDATE matches or does not, and needs none,
// unless hooks or associations may write other rows in the same call.

// guardBulk makes sure a write can be undone, before hooks or associations write anything.
func (p *Plugin) guardBulk(db *gorm.DB, st *lockState) {
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
	if _, ours := db.InstanceGet("gorm:started_transaction"); ours {
		return
	}
	st.savepoint = "optlock_" + strconv.FormatUint(p.savepoints.Add(1), 10)
	_ = db.AddError(execRaw(db, "SAVEPOINT "+st.savepoint))
}

// settleSavepoint ends the savepoint around a bulk write in the caller's transaction: released on
// success, rolled back to and released on failure. It runs in the check callback.
func settleSavepoint(db *gorm.DB, st *lockState, failed bool) error {
	if st.savepoint == "" {
		return nil
	}
	name := st.savepoint
	st.savepoint = ""
	if failed {
		if err := execRaw(db, "ROLLBACK TO SAVEPOINT "+name); err != nil {
			return err
		}
	}
	// Release even after a rollback: PostgreSQL slows every session down once a transaction holds
	// more than 64 open subtransactions.
	return execRaw(db, "RELEASE SAVEPOINT "+name)
}

// settleOwnTransaction commits or rolls back the transaction guardBulk opened, and puts the
// statement back on the connection pool it came with.
func settleOwnTransaction(db *gorm.DB, st *lockState) {
	if st.outerPool == nil {
		return
	}
	tx, _ := db.Statement.ConnPool.(gorm.TxCommitter)
	if db.Error != nil {
		_ = tx.Rollback()
	} else {
		_ = db.AddError(tx.Commit())
	}
	db.Statement.ConnPool = st.outerPool
	st.outerPool = nil
}

// execRaw runs a statement the plugin made up itself (a savepoint command with a generated name) on
// the statement's connection, through GORM's logger. Savepoints cannot be prepared statements.
func execRaw(db *gorm.DB, sql string) error {
	pool := db.Statement.ConnPool
	if prepared, ok := pool.(*gorm.PreparedStmtTX); ok {
		pool = prepared.Tx
	}
	begin := time.Now()
	_, err := pool.ExecContext(db.Statement.Context, sql)
	db.Logger.Trace(db.Statement.Context, begin, func() (string, int64) { return sql, 0 }, err)
	return err
}
