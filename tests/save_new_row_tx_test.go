package tests

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/go-optlock/optlock"
)

// the savepoint of a checked write is settled once the whole call is done (keepError), so a
// later failure in the same call undoes the write inside the caller's transaction.

// RvKeyedHooked has a key the client chooses and an AfterUpdate hook that fails on demand.
type RvKeyedHooked struct {
	ID      string `gorm:"primaryKey;size:36"`
	Title   string
	Version int64
	fail    bool
}

func (RvKeyedHooked) TableName() string { return "rv_keyed_hooked" }

var errRvAfterHook = errors.New("rv: after hook failed")

func (r *RvKeyedHooked) AfterUpdate(*gorm.DB) error {
	if r.fail {
		return errRvAfterHook
	}
	return nil
}

// Save of a new row with a client key (the plugin inserts it itself when the UPDATE finds no row) whose
// AfterUpdate hook then fails: the call reports the hook's error, and inside the caller's transaction
// the inserted row must be undone with it, as the updated row is for an existing one. check() settles
// the savepoint right after insertNewRow, before the After hooks run.
func TestSaveOfNewRowUndoneWhenAfterHookFailsInCallersTx(t *testing.T) {
	eachDB(t, []any{&RvKeyedHooked{}}, func(t *testing.T, db *gorm.DB) {
		for _, name := range []string{"guarded", "WithLock"} {
			t.Run(name, func(t *testing.T) {
				require.NoError(t, db.Exec("DELETE FROM rv_keyed_hooked").Error)
				tx := db.Begin()
				require.NoError(t, tx.Error)
				defer tx.Rollback()
				w := tx
				if name == "WithLock" {
					w = tx.Scopes(optlock.WithLock())
				}
				row := RvKeyedHooked{ID: "rv-new-" + name, Title: "new", fail: true}
				err := w.Save(&row).Error
				require.ErrorIs(t, err, errRvAfterHook)

				var inTx int64
				require.NoError(t, tx.Model(&RvKeyedHooked{}).Where("id = ?", row.ID).Count(&inTx).Error)
				require.NoError(t, tx.Commit().Error, "the caller's transaction is alive")
				var committed int64
				require.NoError(t, db.Model(&RvKeyedHooked{}).Where("id = ?", row.ID).Count(&committed).Error)
				assert.Zero(t, inTx, "the failed Save left its insert in the caller's transaction")
				assert.Zero(t, committed, "the failed Save's row was committed by the caller")
			})
		}
	}, optlock.Guard(&RvKeyedHooked{}))
}
