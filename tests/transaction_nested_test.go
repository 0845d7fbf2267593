package tests

import (
	"context"
	"testing"

	mysqldriver "github.com/go-sql-driver/mysql"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/go-optlock/optlock"
)

// TestTransactionInsideACallersTransactionRunsOnce: optlock.Transaction given a db inside the caller's
// transaction has nothing it can run again. After a deadlock MySQL/MariaDB have rolled the caller's
// whole transaction back and go on in autocommit: a retry there committed its writes one by one, and
// the caller's COMMIT then "succeeded" with its earlier work gone. It returns ErrTxAborted instead,
// after one run; a conflict is returned as it is, and the caller's transaction commits its other work.
func TestTransactionInsideACallersTransactionRunsOnce(t *testing.T) {
	ctx := context.Background()
	eachDB(t, []any{&MtxAudited{}, &MtxAudit{}}, func(t *testing.T, db *gorm.DB) {
		t.Run("deadlock", func(t *testing.T) {
			attempts := 0
			err := db.Transaction(func(tx *gorm.DB) error {
				require.NoError(t, tx.Create(&MtxAudit{Row: 1}).Error)
				return optlock.Transaction(ctx, tx, func(inner *gorm.DB) error {
					if attempts++; attempts == 1 {
						// What InnoDB does on a deadlock: the whole transaction is rolled back.
						require.NoError(t, inner.Exec("ROLLBACK").Error)
						return &mysqldriver.MySQLError{Number: 1213, Message: "Deadlock found when trying to get lock; try restarting transaction"}
					}
					return inner.Create(&MtxAudit{Row: 2}).Error
				})
			})
			require.ErrorIs(t, err, optlock.ErrTxAborted)
			var driverErr *mysqldriver.MySQLError
			require.ErrorAs(t, err, &driverErr, "the database's error is kept")
			assert.Equal(t, 1, attempts, "nothing is run again inside the caller's transaction")
			assert.Zero(t, countRows(t, db, &MtxAudit{}), "nothing of the caller's transaction is committed")
		})
		t.Run("conflict", func(t *testing.T) {
			row := MtxAudited{Qty: 1, Version: 1}
			require.NoError(t, db.Create(&row).Error)
			stale := row
			require.NoError(t, db.Model(&MtxAudited{}).Where("id = ?", row.ID).Update("version", 2).Error)
			audits := countRows(t, db, &MtxAudit{})
			attempts := 0
			err := db.Transaction(func(tx *gorm.DB) error {
				err := optlock.Transaction(ctx, tx, func(inner *gorm.DB) error {
					attempts++
					return optlock.UpdateSafely(inner, &stale, map[string]any{"qty": 5}).Error
				})
				requireConflict(t, err, row.ID)
				return tx.Create(&MtxAudit{Row: 99}).Error
			})
			require.NoError(t, err, "a conflict leaves the caller's transaction alive")
			assert.Equal(t, 1, attempts)
			var stored MtxAudited
			require.NoError(t, db.First(&stored, row.ID).Error)
			assert.Equal(t, 1, stored.Qty, "the refused write wrote nothing")
			// The hook's audit row of the refused write is gone; the caller's own row is committed.
			assert.Equal(t, audits+1, countRows(t, db, &MtxAudit{}))
		})
	})
}
