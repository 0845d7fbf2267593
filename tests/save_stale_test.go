package tests

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/go-optlock/optlock"
)

// Save of a row the caller read.

// A row created through the guarded model, read, then deleted by another writer: the stale holder's
// Save(&row) is refused ("a stale Save of a deleted row is refused, it never re-inserts",
// docs/api.md). The plugin takes a Save whose lock values are zero and whose row is absent for a new
// row with a client key, and inserts it; so a guarded model's Create starts the version at 1, and a
// row read back never holds 0. (Rows stored with version 0 some other way, before the guard or by raw
// SQL, keep the ambiguity: docs/how-it-works.md says so.)
func TestStaleSaveDoesNotResurrectADeletedRow(t *testing.T) {
	eachDB(t, []any{&RvAccount{}}, func(t *testing.T, db *gorm.DB) {
		acc := RvAccount{Owner: "a", Balance: 10}
		require.NoError(t, db.Create(&acc).Error)
		var mine RvAccount
		require.NoError(t, db.First(&mine, acc.ID).Error)
		require.EqualValues(t, 1, mine.Version, "a guarded model's Create starts the version at 1")
		require.EqualValues(t, 1, acc.Version, "and says so in the caller's struct")

		var theirs RvAccount
		require.NoError(t, db.First(&theirs, acc.ID).Error)
		require.NoError(t, db.Delete(&theirs).Error, "another writer deletes the row it read")

		mine.Balance = 11
		err := db.Save(&mine).Error
		var count int64
		require.NoError(t, db.Model(&RvAccount{}).Where("id = ?", acc.ID).Count(&count).Error)
		assert.Zero(t, count, "the deleted row was not re-inserted by a stale Save")
		assert.ErrorIs(t, err, optlock.ErrConflict)
	}, optlock.Guard(&RvAccount{}))
}

// A guarded Create starts a zero version at 1 only where it inserts the version: under a Select that
// leaves it out, or an Omit of it, the table's default is stored and the struct keeps what it had, so
// the struct says what is stored and its next checked write is not a false conflict.
func TestGuardedCreateStartsTheVersionOnlyWhereItInsertsIt(t *testing.T) {
	eachDB(t, []any{&RvAccount{}}, func(t *testing.T, db *gorm.DB) {
		cases := []struct {
			name   string
			create func(row *RvAccount) error
		}{
			{"Create", func(row *RvAccount) error { return db.Create(row).Error }},
			{"Select without the version", func(row *RvAccount) error { return db.Select("Owner", "Balance").Create(row).Error }},
			{"Omit of the version", func(row *RvAccount) error { return db.Omit("Version").Create(row).Error }},
			{"Select with the version", func(row *RvAccount) error { return db.Select("Owner", "Version").Create(row).Error }},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				row := RvAccount{Owner: "a", Balance: 1}
				require.NoError(t, tc.create(&row))
				var stored RvAccount
				require.NoError(t, db.First(&stored, row.ID).Error)
				assert.Equal(t, stored.Version, row.Version, "the struct says what is stored")
				require.NoError(t, db.Model(&row).Update("balance", 2).Error, "no false conflict")
			})
		}
	}, optlock.Guard(&RvAccount{}))
}
