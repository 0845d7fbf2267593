package tests

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/go-optlock/optlock"
)

// MtxAudited writes an audit row from its BeforeUpdate and BeforeDelete hooks, through the
// statement's own connection: a write whose hooks may write elsewhere is never a lone statement, so
// the plugin opens a transaction (or a savepoint) of its own for it, in every configuration.
type MtxAudited struct {
	ID      uint `gorm:"primaryKey"`
	Qty     int
	Version int64
}

func (MtxAudited) TableName() string { return "mtx_audited" }

// MtxAudit is the audit row the hooks write.
type MtxAudit struct {
	ID  uint `gorm:"primaryKey"`
	Row uint
}

func (MtxAudit) TableName() string { return "mtx_audits" }

func (a *MtxAudited) BeforeUpdate(tx *gorm.DB) error {
	return tx.Session(&gorm.Session{NewDB: true}).Create(&MtxAudit{Row: a.ID}).Error
}

func (a *MtxAudited) BeforeDelete(tx *gorm.DB) error {
	return tx.Session(&gorm.Session{NewDB: true}).Create(&MtxAudit{Row: a.ID}).Error
}

// TestHookWritesInEveryTransactionConfiguration: a checked write whose hooks write audit rows commits
// them with the write, and a refused one leaves neither, with GORM's default transaction, without it
// (gorm.Config.SkipDefaultTransaction), with prepared statements, and inside a caller's transaction.
func TestHookWritesInEveryTransactionConfiguration(t *testing.T) {
	configs := []struct {
		name     string
		config   gorm.Config
		callerTx bool
	}{
		{"default", gorm.Config{}, false},
		{"SkipDefaultTransaction", gorm.Config{SkipDefaultTransaction: true}, false},
		{"PrepareStmt", gorm.Config{PrepareStmt: true}, false},
		{"SkipDefaultTransaction+PrepareStmt", gorm.Config{SkipDefaultTransaction: true, PrepareStmt: true}, false},
		{"caller's transaction", gorm.Config{}, true},
		{"caller's transaction+SkipDefaultTransaction", gorm.Config{SkipDefaultTransaction: true}, true},
	}
	paths := []struct {
		name    string
		oneRow  bool
		deletes bool
		write   func(db *gorm.DB, rows *[]MtxAudited) error
	}{
		{"UpdateSafely one row", true, false, func(db *gorm.DB, rows *[]MtxAudited) error {
			return optlock.UpdateSafely(db, &(*rows)[0], map[string]any{"qty": 7}).Error
		}},
		{"UpdateSafely bulk", false, false, func(db *gorm.DB, rows *[]MtxAudited) error {
			return optlock.UpdateSafely(db, rows, map[string]any{"qty": 7}).Error
		}},
		{"Save", true, false, func(db *gorm.DB, rows *[]MtxAudited) error {
			return db.Scopes(optlock.WithLock()).Save(&(*rows)[0]).Error
		}},
		{"Delete of a slice", false, true, func(db *gorm.DB, rows *[]MtxAudited) error {
			return db.Scopes(optlock.WithLock()).Delete(rows).Error
		}},
	}
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			for _, cfg := range configs {
				t.Run(cfg.name, func(t *testing.T) {
					config := cfg.config
					c := openConfigured(t, d, &config, []any{&MtxAudited{}, &MtxAudit{}})
					for _, path := range paths {
						t.Run(path.name, func(t *testing.T) {
							for _, stale := range []bool{false, true} {
								rows := []MtxAudited{{Qty: 1, Version: 1}, {Qty: 1, Version: 1}}
								require.NoError(t, c.observer.Create(&rows).Error)
								if path.oneRow {
									rows = rows[:1]
								}
								last := rows[len(rows)-1].ID
								if stale {
									require.NoError(t, c.observer.Model(&MtxAudited{}).Where("id = ?", last).Update("version", 9).Error)
								}
								rows[0].Qty = 7 // what Save writes; the other paths write their own values
								audits := countRows(t, c.observer, &MtxAudit{})
								given := append([]MtxAudited(nil), rows...)
								var err error
								if cfg.callerTx {
									require.NoError(t, c.db.Transaction(func(tx *gorm.DB) error {
										err = path.write(tx, &rows)
										return nil // a conflict leaves the transaction alive: commit it
									}))
								} else {
									err = path.write(c.db, &rows)
								}
								c.requireIdle(t)
								if stale {
									requireConflict(t, err, last)
									assert.Equal(t, audits, countRows(t, c.observer, &MtxAudit{}), "a refused write's hooks wrote nothing")
									assert.Equal(t, given, rows, "the structs are as they were")
									continue
								}
								require.NoError(t, err)
								assert.Greater(t, countRows(t, c.observer, &MtxAudit{}), audits, "the hooks' rows are committed with the write")
								for _, r := range rows {
									var stored []MtxAudited
									require.NoError(t, c.observer.Where("id = ?", r.ID).Find(&stored).Error)
									if path.deletes {
										assert.Empty(t, stored, "deleted")
										continue
									}
									require.Len(t, stored, 1)
									assert.Equal(t, r, stored[0], "committed as the struct says")
								}
							}
						})
					}
				})
			}
		})
	}
}
