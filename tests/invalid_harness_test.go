package tests

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
	"gorm.io/gorm/schema"

	"github.com/go-optlock/optlock"
)

// Bad input, written through the caller's own connection pool and judged through a separate one: a
// refusal must wrap ErrInvalidLock, say what to do, write nothing, leave the caller's structs as they
// were and give every connection back outside any transaction.

// InvAccount is the bad-input tests' model: a version lock, a field GORM does not map, and GORM's
// soft delete.
type InvAccount struct {
	ID        uint `gorm:"primaryKey"`
	Qty       int
	Note      string `gorm:"-"`
	Version   int64
	DeletedAt gorm.DeletedAt
}

func (InvAccount) TableName() string { return "core_inv_accounts" }

// InvFlagged is soft-deleted the way gorm.io/plugin/soft_delete does it with
// `softDelete:flag,DeletedAtField:DeletedAt`: a flag column whose type gives GORM the delete clause,
// and a plain integer column that the clause stamps with the deletion time.
type InvFlagged struct {
	ID        uint `gorm:"primaryKey"`
	Qty       int
	Version   int64
	IsDel     flagDeleted `gorm:"softDelete:flag,DeletedAtField:DeletedAt"`
	DeletedAt int64
}

func (InvFlagged) TableName() string { return "core_inv_flagged" }

// flagDeleted stands in for gorm.io/plugin/soft_delete's DeletedAt, which this module does not
// depend on: an integer type that hands GORM a delete clause naming its field (and the field it
// stamps), as that plugin's type does. Only the method set matters here: these tests never delete.
type flagDeleted uint

func (flagDeleted) DeleteClauses(f *schema.Field) []clause.Interface {
	c := flagDeleteClause{Field: f}
	if name := schema.ParseTagSetting(f.TagSettings["SOFTDELETE"], ",")["DELETEDATFIELD"]; name != "" {
		c.DeleteAtField = f.Schema.LookUpField(name)
	}
	return []clause.Interface{c}
}

// flagDeleteClause has the fields of gorm.io/plugin/soft_delete's SoftDeleteDeleteClause that matter.
type flagDeleteClause struct {
	Field         *schema.Field
	DeleteAtField *schema.Field
}

func (flagDeleteClause) Name() string                    { return "" }
func (flagDeleteClause) Build(clause.Builder)            {}
func (flagDeleteClause) MergeClause(*clause.Clause)      {}
func (flagDeleteClause) ModifyStatement(*gorm.Statement) {}

// invRows are the rows a bad-input case writes, as read through the caller's database.
type invRows struct {
	acc     []InvAccount
	flagged []InvFlagged
}

// invCase is one bad write and the part of its error message that tells the caller what to do.
type invCase struct {
	name string
	// guarded runs the write on the caller whose plugin guards InvAccount; else on a plain one.
	guarded bool
	write   func(db *gorm.DB, r *invRows) *gorm.DB
	want    string
}

// runRefusals runs every case on every database, each on fresh rows, and checks its refusal.
func runRefusals(t *testing.T, cases []invCase) {
	t.Helper()
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			plain := openConfigured(t, d, &gorm.Config{}, []any{&InvAccount{}, &InvFlagged{}})
			guarded := openCaller(t, d, plain.observer, &gorm.Config{}, nil, optlock.Guard(&InvAccount{}))
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					c := plain
					if tc.guarded {
						c = guarded
					}
					recreate(t, c.observer, &InvAccount{}, &InvFlagged{})
					r := seedInvRows(t, c)
					held := invRows{acc: append([]InvAccount(nil), r.acc...), flagged: append([]InvFlagged(nil), r.flagged...)}
					before := storedInvRows(t, c)

					var res *gorm.DB
					require.NotPanics(t, func() { res = tc.write(c.db, r) })
					require.Error(t, res.Error)
					assert.ErrorIs(t, res.Error, optlock.ErrInvalidLock)
					assert.NotErrorIs(t, res.Error, optlock.ErrConflict)
					assert.Contains(t, res.Error.Error(), tc.want)
					assert.Equal(t, before, storedInvRows(t, c), "nothing written")
					assert.Equal(t, held, *r, "the structs are as they were")
					c.requireIdle(t)
				})
			}
		})
	}
}

// seedInvRows creates three rows of each model (qty 10, version 1) through the observer and reads
// them back through the caller's database.
func seedInvRows(t *testing.T, c configured) *invRows {
	t.Helper()
	acc := []InvAccount{{Qty: 10, Version: 1}, {Qty: 10, Version: 1}, {Qty: 10, Version: 1}}
	flagged := []InvFlagged{{Qty: 10, Version: 1}, {Qty: 10, Version: 1}, {Qty: 10, Version: 1}}
	require.NoError(t, c.observer.Create(&acc).Error)
	require.NoError(t, c.observer.Create(&flagged).Error)
	r := &invRows{}
	require.NoError(t, c.db.Order("id").Find(&r.acc).Error)
	require.NoError(t, c.db.Order("id").Find(&r.flagged).Error)
	return r
}

// storedInvRows reads every row, soft-deleted ones included, as another process sees them.
func storedInvRows(t *testing.T, c configured) invRows {
	t.Helper()
	var r invRows
	require.NoError(t, c.observer.Unscoped().Order("id").Find(&r.acc).Error)
	require.NoError(t, c.observer.Unscoped().Order("id").Find(&r.flagged).Error)
	return r
}
