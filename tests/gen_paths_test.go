package tests

//go:generate go run ./internal/gengen

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/go-optlock/optlock"
	"github.com/go-optlock/optlock/tests/internal/genmodel"
	"github.com/go-optlock/optlock/tests/internal/genquery"
)

// Every write GORM Gen's generated code makes of a guarded model (package genquery, generated from
// genmodel.GenAccount by tests/internal/gengen and committed), and what the model gets, as
// TestGuardedWritePaths checks plain GORM calls: one case per line of the table in docs/api.md
// ("Every write through GORM Gen"), which TestGenWritePathsTableMatchesTheDocs keeps one to one.
// The outcomes are guard_paths_test.go's: checked, advanced, refused, not checked, not covered.

// genEnv is one case's database, through the generated code, and the caller's fresh reads of
// accounts 0, 1 and 2 (version 1), made with the generated Find.
type genEnv struct {
	q    *genquery.Query
	ctx  context.Context
	accs []*genmodel.GenAccount
}

// do is the generated query object of GenAccount, on the case's database.
func (e *genEnv) do() genquery.IGenAccountDo { return e.q.GenAccount.WithContext(e.ctx) }

// id is the key of account i.
func (e *genEnv) id(i int) uint { return e.accs[i].ID }

type genPath struct {
	call  string // as in docs/api.md
	gets  guardedOutcome
	row   int // the account checked, advanced or deleted (-1: none)
	write func(e *genEnv) error
}

var genPaths = []genPath{
	// Creating rows.
	{"Create(&row)", gpNotChecked, -1, func(e *genEnv) error {
		return e.do().Create(&genmodel.GenAccount{Owner: "new", Balance: 1})
	}},
	{"Create(rows...)", gpNotChecked, -1, func(e *genEnv) error {
		return e.do().Create(&genmodel.GenAccount{Owner: "new"}, &genmodel.GenAccount{Owner: "newer"})
	}},
	{"CreateInBatches(rows, n)", gpNotChecked, -1, func(e *genEnv) error {
		return e.do().CreateInBatches([]*genmodel.GenAccount{{Owner: "new"}, {Owner: "newer"}, {Owner: "newest"}}, 2)
	}},
	{"Where(cond).FirstOrCreate() of a missing row", gpNotChecked, -1, func(e *genEnv) error {
		a := e.q.GenAccount
		_, err := e.do().Where(a.Owner.Eq("nobody")).Attrs(a.Balance.Value(3)).FirstOrCreate()
		return err
	}},
	// Gen's Save is an upsert that sets every column (OnConflict{UpdateAll: true}), the lock included.
	{"Save(&row)", gpRefused, -1, func(e *genEnv) error {
		e.accs[0].Balance = 5
		return e.do().Save(e.accs[0])
	}},
	{"Save(&row) with a zero key", gpRefused, -1, func(e *genEnv) error {
		return e.do().Save(&genmodel.GenAccount{Owner: "new"})
	}},
	// Gen's updates write a fresh struct of the model (Model(new(GenAccount))) filtered by the
	// caller's conditions: they carry no read row.
	{"Where(cond).Update(field, value)", gpAdvanced, 0, func(e *genEnv) error {
		a := e.q.GenAccount
		_, err := e.do().Where(a.ID.Eq(e.id(0))).Update(a.Balance, 5)
		return err
	}},
	{"Where(cond).Update(field, field expression)", gpAdvanced, 0, func(e *genEnv) error {
		a := e.q.GenAccount
		_, err := e.do().Where(a.ID.Eq(e.id(0))).Update(a.Balance, a.Balance.Add(5))
		return err
	}},
	{"Where(cond).UpdateSimple(assignments...)", gpAdvanced, 0, func(e *genEnv) error {
		a := e.q.GenAccount
		_, err := e.do().Where(a.ID.Eq(e.id(0))).UpdateSimple(a.Balance.Add(5), a.Owner.Value("x"))
		return err
	}},
	{"Where(cond).Updates(map)", gpAdvanced, 0, func(e *genEnv) error {
		a := e.q.GenAccount
		_, err := e.do().Where(a.ID.Eq(e.id(0))).Updates(map[string]any{"balance": 5})
		return err
	}},
	{"Where(cond).Updates(&struct of values)", gpAdvanced, 0, func(e *genEnv) error {
		a := e.q.GenAccount
		_, err := e.do().Where(a.ID.Eq(e.id(0))).Updates(&genmodel.GenAccount{Balance: 5})
		return err
	}},
	{"Where(cond).Updates(struct of values)", gpAdvanced, 0, func(e *genEnv) error {
		a := e.q.GenAccount
		_, err := e.do().Where(a.ID.Eq(e.id(0))).Updates(genmodel.GenAccount{Balance: 5})
		return err
	}},
	{"Where(cond).Updates(&row read)", gpRefused, -1, func(e *genEnv) error {
		a := e.q.GenAccount
		e.accs[0].Balance = 5
		_, err := e.do().Where(a.ID.Eq(e.id(0))).Updates(e.accs[0])
		return err
	}},
	{"Where(cond).UpdateColumn(field, value)", gpAdvanced, 0, func(e *genEnv) error {
		a := e.q.GenAccount
		_, err := e.do().Where(a.ID.Eq(e.id(0))).UpdateColumn(a.Balance, 5)
		return err
	}},
	{"Where(cond).UpdateColumnSimple(assignments...)", gpAdvanced, 0, func(e *genEnv) error {
		a := e.q.GenAccount
		_, err := e.do().Where(a.ID.Eq(e.id(0))).UpdateColumnSimple(a.Balance.Add(5))
		return err
	}},
	{"Where(cond).UpdateColumns(map)", gpAdvanced, 0, func(e *genEnv) error {
		a := e.q.GenAccount
		_, err := e.do().Where(a.ID.Eq(e.id(0))).UpdateColumns(map[string]any{"balance": 5})
		return err
	}},
	{"Where(cond).Assign(assignments...).FirstOrCreate() of an existing row", gpAdvanced, 0, func(e *genEnv) error {
		a := e.q.GenAccount
		_, err := e.do().Where(a.ID.Eq(e.id(0))).Assign(a.Balance.Value(5)).FirstOrCreate()
		return err
	}},
	{"Where(cond).Update(lock field, value)", gpRefused, -1, func(e *genEnv) error {
		a := e.q.GenAccount
		_, err := e.do().Where(a.ID.Eq(e.id(0))).Update(a.Version, 99)
		return err
	}},
	{"Where(cond).UpdateSimple(lock field assignment)", gpRefused, -1, func(e *genEnv) error {
		a := e.q.GenAccount
		_, err := e.do().Where(a.ID.Eq(e.id(0))).UpdateSimple(a.Version.Value(99))
		return err
	}},
	// Deletes.
	{"Delete(&row)", gpChecked, 1, func(e *genEnv) error {
		_, err := e.do().Delete(e.accs[1])
		return err
	}},
	{"Delete(rows...)", gpChecked, 1, func(e *genEnv) error {
		_, err := e.do().Delete(e.accs[1], e.accs[2])
		return err
	}},
	{"Where(cond).Delete()", gpNotChecked, 1, func(e *genEnv) error {
		a := e.q.GenAccount
		_, err := e.do().Where(a.ID.Eq(e.id(1))).Delete()
		return err
	}},
	// Checked writes of the rows read, from generated code: the plain GORM calls under it.
	{"UnderlyingDB().Model(&row).Update(column, value)", gpChecked, 0, func(e *genEnv) error {
		return e.do().UnderlyingDB().Model(e.accs[0]).Update("balance", 5).Error
	}},
	{"UnderlyingDB().Model(&row).Updates(&row)", gpChecked, 0, func(e *genEnv) error {
		e.accs[0].Balance = 5
		return e.do().UnderlyingDB().Model(e.accs[0]).Updates(e.accs[0]).Error
	}},
	// The generated code's *gorm.DB carries a fresh struct of the model as its Model: a struct the
	// caller read, given as the values, holds a lock value the Model does not (see Updates below).
	{"UnderlyingDB().Save(&row)", gpRefused, -1, func(e *genEnv) error {
		e.accs[0].Balance = 5
		return e.do().UnderlyingDB().Save(e.accs[0]).Error
	}},
	// A query interface method: Gen runs its SQL as it is.
	{"annotated SQL method (// UPDATE @@table SET ...)", gpNotCovered, 0, func(e *genEnv) error {
		_, err := e.do().SetBalanceRaw(e.id(0), 5)
		return err
	}},
}

// genStored reads the accounts as another process sees them: owner/balance/version by key.
func genStored(t *testing.T, observer *gorm.DB) map[uint]string {
	t.Helper()
	var accs []genmodel.GenAccount
	require.NoError(t, observer.Order("id").Find(&accs).Error)
	s := map[uint]string{}
	for _, a := range accs {
		s[a.ID] = strings.Join([]string{a.Owner, itoa(uint(a.Balance)), itoa(uint(a.Version))}, "/")
	}
	return s
}

func genVersion(t *testing.T, observer *gorm.DB, id uint) (int64, bool) {
	t.Helper()
	var versions []int64
	require.NoError(t, observer.Model(&genmodel.GenAccount{}).Where("id = ?", id).Pluck("version", &versions).Error)
	if len(versions) == 0 {
		return 0, false
	}
	return versions[0], true
}

// seedGen recreates the accounts and reads them as the caller, through the generated code.
func seedGen(t *testing.T, c configured) *genEnv {
	t.Helper()
	require.NoError(t, c.observer.Exec("DELETE FROM core_gen_accounts").Error)
	accs := []genmodel.GenAccount{{Owner: "a", Balance: 10, Version: 1}, {Owner: "b", Balance: 20, Version: 1}, {Owner: "c", Balance: 30, Version: 1}}
	require.NoError(t, c.observer.Create(&accs).Error)
	e := &genEnv{q: genquery.Use(c.db), ctx: context.Background()}
	read, err := e.do().Order(e.q.GenAccount.ID).Find()
	require.NoError(t, err)
	require.Len(t, read, 3)
	e.accs = read
	return e
}

// inCallerGen runs a path's write inside a transaction of the caller's, begun and committed through
// the generated code: a refused write leaves that transaction alive, with nothing of the write in it.
func inCallerGen(t *testing.T, callerTx bool, e *genEnv, write func(*genEnv) error) error {
	t.Helper()
	if !callerTx {
		return write(e)
	}
	q := e.q
	tx := q.Begin()
	require.NoError(t, tx.Error)
	e.q = tx.Query
	err := write(e)
	e.q = q
	require.NoError(t, tx.Commit(), "the caller's transaction is alive after the write (%v)", err)
	return err
}

func runGenPath(t *testing.T, c configured, callerTx bool, path genPath) {
	e := seedGen(t, c)
	held := make([]genmodel.GenAccount, len(e.accs))
	for i, a := range e.accs {
		held[i] = *a
	}
	before := genStored(t, c.observer)

	if path.gets == gpChecked {
		// Another writer moves the row on first: the write is refused and writes nothing.
		require.NoError(t, c.observer.Model(&genmodel.GenAccount{}).Where("id = ?", e.id(path.row)).
			UpdateColumn("version", gorm.Expr("version + 1")).Error)
		moved := genStored(t, c.observer)
		requireConflict(t, inCallerGen(t, callerTx, e, path.write), e.id(path.row))
		assert.Equal(t, moved, genStored(t, c.observer), "a stale write wrote nothing")
		c.requireIdle(t)
		e = seedGen(t, c)
		for i, a := range e.accs {
			held[i] = *a
		}
		before = genStored(t, c.observer)
	}

	err := inCallerGen(t, callerTx, e, path.write)
	c.requireIdle(t)
	after := genStored(t, c.observer)
	if path.gets == gpRefused {
		require.ErrorIs(t, err, optlock.ErrInvalidLock)
		assert.Equal(t, before, after, "nothing written")
		return
	}
	require.NoError(t, err)
	assert.NotEqual(t, before, after, "the write is stored")
	if path.row < 0 {
		for id, row := range after {
			if _, old := before[id]; !old {
				assert.True(t, strings.HasSuffix(row, "/1"), "a new row starts at version 1: %s", row)
			}
		}
		return
	}
	id := held[path.row].ID
	version, exists := genVersion(t, c.observer, id)
	switch path.gets {
	case gpChecked, gpAdvanced:
		if exists {
			assert.EqualValues(t, 2, version, "the lock of account %d advanced", id)
		}
		if path.gets == gpChecked && exists {
			assert.EqualValues(t, 2, e.accs[path.row].Version, "the struct's version advanced")
		}
	case gpNotChecked:
		assert.False(t, exists, "deleted")
	case gpNotCovered:
		assert.EqualValues(t, 1, version, "raw SQL: the lock did not move")
	}

	// The holder of the older read, written back with GORM's Save.
	stale := held[path.row]
	stale.Owner = "stale"
	err = c.db.Save(&stale).Error
	if path.gets == gpNotCovered {
		require.NoError(t, err, "raw SQL bypasses the guard: the older read overwrites it")
		return
	}
	requireConflict(t, err, id)
	c.requireIdle(t)
}

// TestGenWritePaths runs every write GORM Gen's generated code makes of a guarded model, on every
// database, with GORM's default transaction, without it, and inside a transaction of the caller's
// begun through the generated code, and checks from another pool what the model gets, as
// TestGuardedWritePaths does for plain GORM calls.
func TestGenWritePaths(t *testing.T) {
	configs := []struct {
		name     string
		config   gorm.Config
		callerTx bool
	}{
		{"default", gorm.Config{}, false},
		{"SkipDefaultTransaction", gorm.Config{SkipDefaultTransaction: true}, false},
		{"caller's transaction", gorm.Config{}, true},
	}
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			for _, cfg := range configs {
				t.Run(cfg.name, func(t *testing.T) {
					config := cfg.config
					c := openConfigured(t, d, &config, []any{&genmodel.GenAccount{}}, optlock.Guard(&genmodel.GenAccount{}))
					for _, path := range genPaths {
						t.Run(path.call, func(t *testing.T) { runGenPath(t, c, cfg.callerTx, path) })
					}
				})
			}
		})
	}
}

// TestGenWritePathsTableMatchesTheDocs: the Gen table in docs/api.md lists exactly the cases above,
// each with the outcome the test checks.
func TestGenWritePathsTableMatchesTheDocs(t *testing.T) {
	documented := documentedOutcomes(t, "### Every write through GORM Gen")
	tested := map[string]string{}
	for _, p := range genPaths {
		tested[p.call] = string(p.gets)
	}
	assert.Equal(t, tested, documented, "docs/api.md's Gen table and genPaths, one to one")
}
