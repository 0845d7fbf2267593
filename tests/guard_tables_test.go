package tests

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/go-optlock/optlock"
)

// GtAccount is guarded; its table is also written by name and through GtSummary.
type GtAccount struct {
	ID      uint `gorm:"primaryKey"`
	Balance int
	Version int64
}

func (GtAccount) TableName() string { return "gt_accounts" }

// GtSummary is a second, unguarded struct mapped to the guarded table, as read models often are.
type GtSummary struct {
	ID      uint `gorm:"primaryKey"`
	Balance int
}

func (GtSummary) TableName() string { return "gt_accounts" }

// GtOther is an unguarded table with a version column: writes of it by name are left alone.
type GtOther struct {
	ID      uint `gorm:"primaryKey"`
	Balance int
	Version int64
}

func (GtOther) TableName() string { return "gt_others" }

// TestGuardedTableWrittenWithoutItsModel: a guard is keyed by its model's type, but GORM can write
// the guarded table by name (Table), or through another struct mapped to it. Such a write carries no
// rows the caller read, so it advances the lock on every row it touches (a holder of an older read is
// refused afterwards), and values that set the lock or name no field are refused; a plain delete by
// name is not checked (nothing of the row is left to overwrite).
func TestGuardedTableWrittenWithoutItsModel(t *testing.T) {
	cases := []struct {
		name    string
		write   func(db *gorm.DB, id uint) *gorm.DB
		balance int  // stored afterwards, when written
		invalid bool // refused with ErrInvalidLock, nothing written
		deleted bool
	}{
		{"Table Updates map", func(db *gorm.DB, id uint) *gorm.DB {
			return db.Table("gt_accounts").Where("id = ?", id).Updates(map[string]any{"balance": 5})
		}, 5, false, false},
		{"Table Update", func(db *gorm.DB, id uint) *gorm.DB {
			return db.Table("gt_accounts").Where("id = ?", id).Update("balance", 6)
		}, 6, false, false},
		{"Table UpdateColumn", func(db *gorm.DB, id uint) *gorm.DB {
			return db.Table("gt_accounts").Where("id = ?", id).UpdateColumn("balance", 7)
		}, 7, false, false},
		{"Table UpdateColumns with an expression", func(db *gorm.DB, id uint) *gorm.DB {
			return db.Table("gt_accounts").Where("id = ?", id).UpdateColumns(map[string]any{"balance": gorm.Expr("balance + 1")})
		}, 11, false, false},
		{"Table with an alias", func(db *gorm.DB, id uint) *gorm.DB {
			return db.Table("gt_accounts AS a").Where("a.id = ?", id).Updates(map[string]any{"balance": 15})
		}, 15, false, false},
		{"Table with its schema", func(db *gorm.DB, id uint) *gorm.DB {
			return db.Table(qualifierOf(db)+".gt_accounts").Where("id = ?", id).Updates(map[string]any{"balance": 16})
		}, 16, false, false},
		{"Unchecked Table Updates", func(db *gorm.DB, id uint) *gorm.DB {
			return db.Scopes(optlock.Unchecked()).Table("gt_accounts").Where("id = ?", id).Updates(map[string]any{"balance": 8})
		}, 8, false, false},
		{"another struct mapped to the table, by query", func(db *gorm.DB, id uint) *gorm.DB {
			return db.Model(&GtSummary{}).Where("id = ?", id).Updates(map[string]any{"balance": 9})
		}, 9, false, false},
		{"another struct mapped to the table, by key", func(db *gorm.DB, id uint) *gorm.DB {
			return db.Model(&GtSummary{ID: id}).Update("balance", 12)
		}, 12, false, false},
		{"another struct mapped to the table, Save", func(db *gorm.DB, id uint) *gorm.DB {
			return db.Save(&GtSummary{ID: id, Balance: 13})
		}, 13, false, false},
		{"upsert of named columns by table name", func(db *gorm.DB, id uint) *gorm.DB {
			return db.Table("gt_accounts").Clauses(clause.OnConflict{
				Columns:   []clause.Column{{Name: "id"}},
				DoUpdates: clause.AssignmentColumns([]string{"balance"}),
			}).Create(map[string]any{"id": id, "balance": 14, "version": 1})
		}, 14, false, false},
		{"Table Updates setting the lock", func(db *gorm.DB, id uint) *gorm.DB {
			return db.Table("gt_accounts").Where("id = ?", id).Updates(map[string]any{"balance": 5, "version": 99})
		}, 0, true, false},
		{"Table Update of the lock", func(db *gorm.DB, id uint) *gorm.DB {
			return db.Table("gt_accounts").Where("id = ?", id).Update("version", 1)
		}, 0, true, false},
		{"Table Updates naming no field", func(db *gorm.DB, id uint) *gorm.DB {
			return db.Table("gt_accounts").Where("id = ?", id).Updates(map[string]any{"balance": 5, "nope": 1})
		}, 0, true, false},
		{"upsert of every column by table name", func(db *gorm.DB, id uint) *gorm.DB {
			return db.Table("gt_accounts").Clauses(clause.OnConflict{UpdateAll: true}).Create(map[string]any{"id": id, "balance": 5, "version": 1})
		}, 0, true, false},
		{"Table Delete", func(db *gorm.DB, id uint) *gorm.DB {
			return db.Table("gt_accounts").Where("id = ?", id).Delete(map[string]any{})
		}, 0, false, true},
	}
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			c := openConfigured(t, d, &gorm.Config{}, []any{&GtAccount{}, &GtOther{}}, optlock.Guard(&GtAccount{}))
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					require.NoError(t, c.observer.Exec("DELETE FROM gt_accounts").Error)
					seeded := []GtAccount{{Balance: 10, Version: 1}, {Balance: 20, Version: 1}}
					require.NoError(t, c.observer.Create(&seeded).Error)
					var held GtAccount // an older read of the row
					require.NoError(t, c.db.First(&held, seeded[0].ID).Error)

					res := tc.write(c.db, held.ID)
					c.requireIdle(t)
					var stored []GtAccount
					require.NoError(t, c.observer.Order("id").Find(&stored).Error)
					if tc.invalid {
						require.ErrorIs(t, res.Error, optlock.ErrInvalidLock)
						assert.Equal(t, seeded, stored, "nothing written")
						return
					}
					require.NoError(t, res.Error)
					assert.Equal(t, seeded[1], stored[len(stored)-1], "the other row is untouched")
					if tc.deleted {
						require.Len(t, stored, 1)
					} else {
						require.Len(t, stored, 2)
						assert.Equal(t, GtAccount{ID: held.ID, Balance: tc.balance, Version: 2}, stored[0], "written, and the lock advanced")
					}

					// The holder of the older read cannot write over it.
					stale := held
					stale.Balance = 1
					requireConflict(t, c.db.Save(&stale).Error, held.ID)
					var after []GtAccount
					require.NoError(t, c.observer.Order("id").Find(&after).Error)
					assert.Equal(t, stored, after, "the stale Save wrote nothing")
					c.requireIdle(t)
				})
			}

			t.Run("an unguarded table by name is left alone", func(t *testing.T) {
				other := GtOther{Balance: 1, Version: 1}
				require.NoError(t, c.observer.Create(&other).Error)
				require.NoError(t, c.db.Table("gt_others").Where("id = ?", other.ID).Updates(map[string]any{"balance": 2, "version": 7}).Error)
				var stored GtOther
				require.NoError(t, c.observer.First(&stored, other.ID).Error)
				assert.Equal(t, GtOther{ID: other.ID, Balance: 2, Version: 7}, stored)
				c.requireIdle(t)
			})
		})
	}
}

// qualifierOf names the schema (PostgreSQL, SQLite) or database (MySQL) the tests' tables are in.
func qualifierOf(db *gorm.DB) string {
	switch db.Dialector.Name() {
	case "postgres":
		return "public"
	case "mysql":
		var name string
		db.Raw("SELECT DATABASE()").Scan(&name)
		return name
	}
	return "main"
}
