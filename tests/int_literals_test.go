package tests

import (
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/go-optlock/optlock"
)

// LitSigned has signed integer keys, negative ones included, and a version of a narrower type.
type LitSigned struct {
	ID      int64 `gorm:"primaryKey;autoIncrement:false"`
	Qty     int
	Version int32
}

func (LitSigned) TableName() string { return "core_lit_signed" }

// LitUnsigned has unsigned keys above int64's range (MySQL and MariaDB store them in bigint unsigned).
type LitUnsigned struct {
	ID      uint64 `gorm:"primaryKey;autoIncrement:false"`
	Qty     int
	Version int64
}

func (LitUnsigned) TableName() string { return "core_lit_unsigned" }

// MySQL's bulk form writes integer keys and versions into the SQL as literals (int_literals.go): every
// integer must come out as the number it is, at both ends of its range and below zero, and a refused
// row must still be named. The rows are read back through a separate pool.
func TestBulkWriteOfIntegersAtTheEndsOfTheirRange(t *testing.T) {
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			observer := openDB(t, d, []any{&LitSigned{}, &LitUnsigned{}})
			caller := openCaller(t, d, observer, &gorm.Config{}, nil)

			signed := []LitSigned{{ID: math.MinInt64}, {ID: -7}, {ID: 1}, {ID: math.MaxInt64}}
			for i := range signed {
				signed[i].Version = math.MaxInt32 - 5
			}
			require.NoError(t, observer.Create(&signed).Error)
			written := optlock.UpdateSafely(caller.db, &signed, map[string]any{"qty": 1})
			require.NoError(t, written.Error)
			assert.EqualValues(t, len(signed), written.RowsAffected)
			var stored []LitSigned
			require.NoError(t, observer.Order("id").Find(&stored).Error)
			require.Len(t, stored, len(signed))
			for i := range stored {
				assert.Equal(t, LitSigned{ID: signed[i].ID, Qty: 1, Version: math.MaxInt32 - 4}, stored[i])
			}

			require.NoError(t, observer.Model(&LitSigned{}).Where("id = ?", -7).Update("version", 1).Error)
			requireConflict(t, optlock.UpdateSafely(caller.db, &signed, map[string]any{"qty": 2}).Error, int64(-7))
			var moved int64
			require.NoError(t, observer.Model(&LitSigned{}).Where("qty = ?", 2).Count(&moved).Error)
			assert.Zero(t, moved, "nothing written")

			if d.name == "mysql" { // the only database of the three whose integers go above int64
				unsigned := []LitUnsigned{{ID: 1<<63 + 1, Version: 3}, {ID: math.MaxUint64, Version: 3}, {ID: 2, Version: 3}}
				require.NoError(t, observer.Create(&unsigned).Error)
				require.NoError(t, optlock.UpdateSafely(caller.db, &unsigned, map[string]any{"qty": 1}).Error)
				var rows []LitUnsigned
				require.NoError(t, observer.Where("qty = 1 AND version = 4").Order("id").Find(&rows).Error)
				assert.Equal(t, []LitUnsigned{{2, 1, 4}, {1<<63 + 1, 1, 4}, {math.MaxUint64, 1, 4}}, rows)

				require.NoError(t, observer.Model(&LitUnsigned{}).Where("id = ?", uint64(math.MaxUint64)).Update("version", 9).Error)
				requireConflict(t, optlock.UpdateSafely(caller.db, &unsigned, map[string]any{"qty": 2}).Error, uint64(math.MaxUint64))
			}
			assert.Zero(t, caller.pool.Stats().InUse, "a connection is still checked out")
		})
	}
}

// Under GORM's PrepareStmt the bulk form binds its rows: literals would make one SQL text per call,
// and PrepareStmt keeps a prepared statement for every text it saw.
func TestBulkWriteUnderPrepareStmtKeepsOneStatementText(t *testing.T) {
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			observer := openDB(t, d, []any{&LitSigned{}})
			caller := openCaller(t, d, observer, &gorm.Config{PrepareStmt: true}, nil)
			rows := []LitSigned{{ID: 1, Version: 1}, {ID: 2, Version: 1}, {ID: 3, Version: 1}}
			require.NoError(t, observer.Create(&rows).Error)
			for qty := range 3 {
				require.NoError(t, optlock.UpdateSafely(caller.db, &rows, map[string]any{"qty": qty}).Error)
			}
			prepared, ok := caller.db.ConnPool.(*gorm.PreparedStmtDB)
			require.True(t, ok, "PrepareStmt: the pool is %T", caller.db.ConnPool)
			var updates []string
			for _, key := range prepared.Stmts.Keys() {
				if strings.HasPrefix(key, "UPDATE") {
					updates = append(updates, key)
				}
			}
			assert.Len(t, updates, 1, "one prepared UPDATE for three writes of the same rows: %q", updates)
			var stored []LitSigned
			require.NoError(t, observer.Order("id").Find(&stored).Error)
			assert.Equal(t, []LitSigned{{1, 2, 4}, {2, 2, 4}, {3, 2, 4}}, stored)
		})
	}
}

// LitTextKeyed keeps an integer key in a text column: the bulk forms that send keys as numbers must
// bind it instead, as it was stored.
type LitTextKeyed struct {
	ID      int64 `gorm:"primaryKey;autoIncrement:false;type:varchar(20)"`
	Qty     int
	Version int64
}

func (LitTextKeyed) TableName() string { return "core_lit_text_keyed" }

func TestBulkWriteOfAnIntegerKeyInATextColumn(t *testing.T) {
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			if d.name == "postgres" {
				t.Skip("pgx cannot encode an int64 into a varchar parameter: GORM cannot write this model on PostgreSQL at all")
			}
			observer := openDB(t, d, []any{&LitTextKeyed{}})
			caller := openCaller(t, d, observer, &gorm.Config{}, nil)
			rows := []LitTextKeyed{{ID: 5, Version: 1}, {ID: 40, Version: 1}, {ID: 300, Version: 1}}
			require.NoError(t, observer.Create(&rows).Error)

			require.NoError(t, optlock.UpdateSafely(caller.db, &rows, map[string]any{"qty": 1}).Error)
			var stored []LitTextKeyed
			require.NoError(t, observer.Where("qty = 1 AND version = 2").Find(&stored).Error)
			assert.Len(t, stored, 3)

			require.NoError(t, observer.Model(&LitTextKeyed{}).Where("id = ?", "40").Update("version", 7).Error)
			requireConflict(t, optlock.UpdateSafely(caller.db, &rows, map[string]any{"qty": 2}).Error, int64(40))
			assert.Zero(t, caller.pool.Stats().InUse, "a connection is still checked out")
		})
	}
}
