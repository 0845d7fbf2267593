package tests

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/go-optlock/optlock"
)

// Transaction runs the whole transaction again on what a retry can fix, and returns anything else at
// once, rolled back.
func TestTransactionRetriesWhatARetryCanFix(t *testing.T) {
	conflict := &optlock.OptimisticLockError{Table: "t", ConflictIDs: []any{1}}
	boom := errors.New("boom")
	cases := []struct {
		name      string
		results   []error
		wantCalls int
		wantErr   error
	}{
		{"success at once", []error{nil}, 1, nil},
		{"conflict, then success", []error{conflict, nil}, 2, nil},
		{"PostgreSQL serialization failure, then success", []error{&pgconn.PgError{Code: "40001"}, nil}, 2, nil},
		{"MySQL deadlock, then success", []error{&mysql.MySQLError{Number: 1213}, nil}, 2, nil},
		{"other error", []error{boom}, 1, boom},
		{"bad input", []error{optlock.ErrInvalidLock}, 1, optlock.ErrInvalidLock},
	}
	eachDB(t, []any{&LogEntry{}}, func(t *testing.T, db *gorm.DB) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				recreate(t, db, &LogEntry{})
				calls := 0
				err := optlock.Transaction(context.Background(), db, func(tx *gorm.DB) error {
					calls++
					require.NoError(t, tx.Create(&LogEntry{Note: "attempt"}).Error)
					return tc.results[calls-1]
				}, optlock.RetryBackoff(0, time.Millisecond))
				assert.Equal(t, tc.wantCalls, calls)
				var committed int64
				require.NoError(t, db.Model(&LogEntry{}).Count(&committed).Error)
				if tc.wantErr == nil {
					require.NoError(t, err)
					assert.EqualValues(t, 1, committed, "only the last attempt is committed")
				} else {
					require.ErrorIs(t, err, tc.wantErr)
					assert.Zero(t, committed, "a failed transaction is rolled back")
				}
			})
		}
	})
}

// A serialization failure reported by COMMIT itself (as Galera reports certification failures) runs
// the whole transaction again. On PostgreSQL a deferred constraint trigger fails the first COMMIT
// with 40001.
func TestTransactionRetriesAFailedCommit(t *testing.T) {
	eachDB(t, []any{&Item{}, &LogEntry{}}, func(t *testing.T, db *gorm.DB) {
		if db.Dialector.Name() != "postgres" {
			t.Skip("a COMMIT that fails with a serialization failure is staged with a PostgreSQL deferred trigger")
		}
		for _, stmt := range []string{
			`CREATE OR REPLACE FUNCTION core_fail_first_commit() RETURNS trigger AS $$
			BEGIN
				IF (SELECT count(*) FROM core_log_entries WHERE note = 'commit failed') = 0 THEN
					RAISE EXCEPTION 'staged certification failure' USING ERRCODE = '40001';
				END IF;
				RETURN NULL;
			END $$ LANGUAGE plpgsql`,
			`CREATE CONSTRAINT TRIGGER core_fail_first_commit AFTER UPDATE ON core_items
				DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION core_fail_first_commit()`,
		} {
			require.NoError(t, db.Exec(stmt).Error)
		}
		t.Cleanup(func() { db.Exec("DROP FUNCTION IF EXISTS core_fail_first_commit() CASCADE") })
		item := seedItems(t, db, 1)[0]

		calls := 0
		err := optlock.Transaction(context.Background(), db, func(tx *gorm.DB) error {
			calls++
			if calls == 2 {
				// Let the second COMMIT through (outside the transaction, so it stays).
				require.NoError(t, db.Create(&LogEntry{Note: "commit failed"}).Error)
			}
			var row Item
			if err := tx.First(&row, item.ID).Error; err != nil {
				return err
			}
			return optlock.UpdateSafely(tx, &row, map[string]any{"qty": row.Qty + 1}).Error
		}, optlock.RetryBackoff(0, time.Millisecond))
		require.NoError(t, err)
		assert.Equal(t, 2, calls, "the whole transaction ran again after the failed COMMIT")
		stored := loadItems(t, db)[item.ID]
		assert.Equal(t, item.Qty+1, stored.Qty, "exactly one increment committed")
		assert.EqualValues(t, item.Version+1, stored.Version)
	})
}
