package optlock

import (
	"errors"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/callbacks"
	"gorm.io/gorm/clause"
)

// The GORM behaviour gormcompat.go lists, one test each, on plain GORM (no plugin registered): a GORM
// upgrade that changes one fails here, by name, before it shows as a wrong write elsewhere.

type compatOwner struct {
	ID      uint `gorm:"primaryKey"`
	Name    string
	Version int64
	Pets    []compatPet `gorm:"foreignKey:OwnerID"`
}

type compatPet struct {
	ID      uint `gorm:"primaryKey"`
	OwnerID uint
	Name    string
}

type compatSoft struct {
	ID        uint `gorm:"primaryKey"`
	Name      string
	DeletedAt gorm.DeletedAt
}

func compatDB(t *testing.T, cfg *gorm.Config) *gorm.DB {
	t.Helper()
	db, err := gorm.Open(sqlite.Open(filepath.Join(t.TempDir(), "compat.db")), cfg)
	require.NoError(t, err)
	t.Cleanup(func() {
		if conn, err := db.DB(); err == nil {
			_ = conn.Close()
		}
	})
	require.NoError(t, db.AutoMigrate(&compatOwner{}, &compatPet{}, &compatSoft{}))
	return db
}

// seeUpdate registers see just after gorm:update (before GORM's commit, which puts the statement
// back on the pool).
func seeUpdate(t *testing.T, db *gorm.DB, see func(*gorm.DB)) {
	t.Helper()
	require.NoError(t, db.Callback().Update().After("gorm:update").Before("gorm:after_update").Register("compat:see", see))
}

func TestGORMCallbackNamesThePluginPlacesBy(t *testing.T) {
	db := compatDB(t, &gorm.Config{})
	chains := map[string]interface{ Get(string) func(*gorm.DB) }{
		"update": db.Callback().Update(), "delete": db.Callback().Delete(), "create": db.Callback().Create(),
	}
	names := map[string][]string{
		"update": {gormBeginTransaction, "gorm:setup_reflect_value", "gorm:before_update", "gorm:save_before_associations", "gorm:update", "gorm:save_after_associations", "gorm:after_update", gormCommitOrRollback},
		"delete": {gormBeginTransaction, "gorm:before_delete", "gorm:delete_before_associations", "gorm:delete", "gorm:after_delete", gormCommitOrRollback},
		"create": {"gorm:create", "gorm:after_create"},
	}
	for chain, list := range names {
		for _, name := range list {
			assert.NotNil(t, chains[chain].Get(name), "%s chain has %s", chain, name)
		}
	}

	skip := compatDB(t, &gorm.Config{SkipDefaultTransaction: true})
	for _, chain := range []interface{ Get(string) func(*gorm.DB) }{skip.Callback().Update(), skip.Callback().Delete()} {
		assert.Nil(t, chain.Get(gormBeginTransaction), "SkipDefaultTransaction leaves out begin_transaction")
		assert.Nil(t, chain.Get(gormCommitOrRollback), "SkipDefaultTransaction leaves out commit_or_rollback")
	}
}

func TestGORMTellsTheTransactionItStarted(t *testing.T) {
	cases := []struct {
		name     string
		cfg      *gorm.Config
		callerTx bool
		want     bool
	}{
		{"GORM's own transaction", &gorm.Config{}, false, true},
		{"SkipDefaultTransaction", &gorm.Config{SkipDefaultTransaction: true}, false, false},
		{"the caller's transaction", &gorm.Config{}, true, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			db := compatDB(t, tc.cfg)
			var started []bool
			seeUpdate(t, db, func(db *gorm.DB) {
				_, ok := db.InstanceGet(gormStartedTransaction)
				assert.Equal(t, ok, gormStartedTx(db.Statement), "gormStartedTx disagrees with InstanceGet")
				started = append(started, ok)
			})
			owner := compatOwner{Name: "a"}
			require.NoError(t, db.Create(&owner).Error)
			write := func(tx *gorm.DB) error { return tx.Model(&owner).Update("name", "b").Error }
			if tc.callerTx {
				require.NoError(t, db.Transaction(write))
			} else {
				require.NoError(t, write(db))
			}
			assert.Equal(t, []bool{tc.want}, started)
		})
	}
}

func TestGORMSoftDeleteMarksTheStatement(t *testing.T) {
	db := compatDB(t, &gorm.Config{})
	var marked []bool
	seeUpdate(t, db, func(db *gorm.DB) {
		_, ok := db.Statement.Clauses[softDeleteMark]
		marked = append(marked, ok)
	})
	row := compatSoft{Name: "a"}
	require.NoError(t, db.Create(&row).Error)
	require.NoError(t, db.Model(&row).Update("name", "b").Error)
	assert.Equal(t, []bool{true}, marked)
}

func TestGORMUpdateRefusesAStatementWithoutAWhereClause(t *testing.T) {
	db := compatDB(t, &gorm.Config{})
	err := db.Model(&compatOwner{}).Updates(map[string]any{"name": "x"}).Error
	require.ErrorIs(t, err, gorm.ErrMissingWhereClause)
	err = db.Model(&compatOwner{}).Clauses(clause.Where{Exprs: []clause.Expression{clause.Expr{SQL: "1 = 1"}}}).Updates(map[string]any{"name": "x"}).Error
	require.NoError(t, err, "a WHERE clause of 1 = 1 passes the check")
}

func TestGORMAddErrorFlattensTheFirstError(t *testing.T) {
	db := compatDB(t, &gorm.Config{})
	first, then := errors.New("first"), errors.New("then")
	tx := db.Session(&gorm.Session{NewDB: true})
	_ = tx.AddError(first)
	_ = tx.AddError(then)
	assert.ErrorIs(t, tx.Error, then)
	assert.NotErrorIs(t, tx.Error, first, "the first error is text now: causes.go keeps both")
	assert.Equal(t, then, errors.Unwrap(tx.Error), "afterGORM unwraps once to the later error")
}

func TestGORMConvertToAssignmentsReadsTheReflectValue(t *testing.T) {
	db := compatDB(t, &gorm.Config{})
	rows := []compatOwner{{ID: 1, Name: "a"}, {ID: 2, Name: "b"}}
	stmt := db.Session(&gorm.Session{DryRun: true}).Model(&rows).Statement
	require.NoError(t, stmt.Parse(&rows))
	stmt.Dest = map[string]any{"name": "x"}
	stmt.ReflectValue = reflect.ValueOf(&rows).Elem().Index(0)
	set := callbacks.ConvertToAssignments(stmt)
	require.Len(t, set, 1)
	assert.Equal(t, "name", set[0].Column.Name)
	assert.Equal(t, "x", rows[0].Name, "assigned to the row ReflectValue shows")
	assert.Equal(t, "b", rows[1].Name, "and to no other")
}

func TestGORMSaveInsertsWhenItsUpdateMatchesNothing(t *testing.T) {
	db := compatDB(t, &gorm.Config{})
	require.NoError(t, db.Save(&compatOwner{ID: 42, Name: "new"}).Error)
	var stored compatOwner
	require.NoError(t, db.First(&stored, 42).Error, "Save of a key no row has inserts it")
}

func TestGORMAppendUpsertsTheChildsForeignKeyOnly(t *testing.T) {
	db := compatDB(t, &gorm.Config{})
	var upserts []clause.OnConflict
	require.NoError(t, db.Callback().Create().Before("gorm:create").Register("compat:see", func(db *gorm.DB) {
		if c, ok := db.Statement.Clauses["ON CONFLICT"]; ok {
			if oc, ok := c.Expression.(clause.OnConflict); ok {
				upserts = append(upserts, oc)
			}
		}
	}))
	owner := compatOwner{Name: "o"}
	require.NoError(t, db.Create(&owner).Error)
	pet := compatPet{Name: "p"}
	require.NoError(t, db.Create(&pet).Error)
	upserts = nil
	require.NoError(t, db.Model(&owner).Association("Pets").Append(&pet))
	require.Len(t, upserts, 1)
	assert.False(t, upserts[0].UpdateAll)
	require.Len(t, upserts[0].DoUpdates, 1)
	assert.Equal(t, "owner_id", upserts[0].DoUpdates[0].Column.Name)
}

// Table leaves the bare table name in Statement.Table, but the alias when it is given one: the table
// is then read from Statement.TableExpr (guard_tables.go).
func TestGORMTableNames(t *testing.T) {
	db := compatDB(t, &gorm.Config{})
	cases := []struct{ name, table, expr string }{
		{"compat_owners", "compat_owners", "`compat_owners`"},
		{"main.compat_owners", "compat_owners", "`main`.`compat_owners`"},
		{"compat_owners AS o", "o", "compat_owners AS o"},
		{"compat_owners o", "o", "compat_owners o"},
	}
	for _, tc := range cases {
		stmt := db.Table(tc.name).Statement
		assert.Equal(t, tc.table, stmt.Table, "Table(%q)", tc.name)
		require.NotNil(t, stmt.TableExpr, "Table(%q)", tc.name)
		assert.Equal(t, tc.expr, stmt.TableExpr.SQL, "Table(%q)", tc.name)
	}
}

func TestGORMPreparedStatementPools(t *testing.T) {
	db := compatDB(t, &gorm.Config{PrepareStmt: true})
	var pools []string
	seeUpdate(t, db, func(db *gorm.DB) {
		pool := reflect.TypeOf(db.Statement.ConnPool).String()
		switch p := db.Statement.ConnPool.(type) {
		case *gorm.PreparedStmtDB:
			pool += "{" + reflect.TypeOf(p.ConnPool).String() + "}"
		case *gorm.PreparedStmtTX:
			pool += "{" + reflect.TypeOf(p.Tx).String() + "}"
		}
		pools = append(pools, pool)
	})
	owner := compatOwner{Name: "a"}
	require.NoError(t, db.Create(&owner).Error)
	require.NoError(t, db.Session(&gorm.Session{SkipDefaultTransaction: true}).Model(&owner).Update("name", "b").Error)
	require.NoError(t, db.Model(&owner).Update("name", "c").Error)
	require.NoError(t, db.Transaction(func(tx *gorm.DB) error { return tx.Model(&owner).Update("name", "d").Error }))
	assert.Equal(t, []string{"*gorm.PreparedStmtDB{*sql.DB}", "*gorm.PreparedStmtTX{*sql.Tx}", "*gorm.PreparedStmtTX{*sql.Tx}"}, pools)
}
