package tests

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/go-optlock/optlock"
)

// Every GORM write of a guarded model, and what the model gets: one case per line of the table in
// docs/api.md ("Every write of a guarded model"), which TestGuardedWritePathsTableMatchesTheDocs
// keeps one to one with these cases.

// GpAccount is guarded, and so are its cards.
type GpAccount struct {
	ID      uint `gorm:"primaryKey"`
	Owner   string
	Balance int
	Version int64
	Cards   []GpCard `gorm:"foreignKey:GpAccountID"`
}

func (GpAccount) TableName() string { return "gp_accounts" }

// GpCard belongs to an account, or to none.
type GpCard struct {
	ID          uint `gorm:"primaryKey"`
	GpAccountID *uint
	Number      string
	Version     int64
}

func (GpCard) TableName() string { return "gp_cards" }

// GpAccountView is another struct mapped to the guarded table, as read models often are.
type GpAccountView struct {
	ID      uint `gorm:"primaryKey"`
	Balance int
}

func (GpAccountView) TableName() string { return "gp_accounts" }

// GpAccountCopy is another struct mapped to the guarded table that has the lock column: it carries the
// version it read, and is checked by it.
type GpAccountCopy struct {
	ID      uint `gorm:"primaryKey"`
	Balance int
	Version int64
}

func (GpAccountCopy) TableName() string { return "gp_accounts" }

// guardedOutcome is what a write of a guarded model gets.
type guardedOutcome string

const (
	gpChecked    guardedOutcome = "checked"     // against the rows the caller read: a stale one is refused
	gpAdvanced   guardedOutcome = "advanced"    // not checkable; the lock of every row written advances
	gpRefused    guardedOutcome = "refused"     // ErrInvalidLock, nothing written
	gpNotChecked guardedOutcome = "not checked" // an insert, or a delete of rows not read: nothing to overwrite
	gpNotCovered guardedOutcome = "not covered" // raw SQL: the plugin never sees it
)

// gpEnv is one case's database and fresh reads: accounts 0, 1 and 2 (version 1), cards 0 and 1 of
// account 0, card 2 of no account. Deletes remove accounts 1 and 2, which no card references.
type gpEnv struct {
	db    *gorm.DB
	accs  []GpAccount
	cards []GpCard
}

// gpRow names the row a case writes: the one whose lock it checks or advances.
type gpRow struct {
	table string // "gp_accounts" or "gp_cards"
	index int
}

type guardedPath struct {
	call  string // as in docs/api.md
	gets  guardedOutcome
	row   gpRow // the row checked, advanced or (not checked) deleted; unused otherwise
	write func(e *gpEnv) *gorm.DB
}

var (
	account0 = gpRow{"gp_accounts", 0}
	account1 = gpRow{"gp_accounts", 1}
	card0    = gpRow{"gp_cards", 0}
	card2    = gpRow{"gp_cards", 2}
	noRow    = gpRow{}
)

var guardedPaths = []guardedPath{
	// Creating rows.
	{"Create(&row)", gpNotChecked, noRow, func(e *gpEnv) *gorm.DB { return e.db.Create(&GpAccount{Owner: "new", Balance: 1}) }},
	{"Create(&rows)", gpNotChecked, noRow, func(e *gpEnv) *gorm.DB {
		return e.db.Create(&[]GpAccount{{Owner: "new"}, {Owner: "newer"}})
	}},
	{"CreateInBatches(&rows, n)", gpNotChecked, noRow, func(e *gpEnv) *gorm.DB {
		return e.db.CreateInBatches(&[]GpAccount{{Owner: "new"}, {Owner: "newer"}, {Owner: "newest"}}, 2)
	}},
	{"Save(&row) with a zero key", gpNotChecked, noRow, func(e *gpEnv) *gorm.DB { return e.db.Save(&GpAccount{Owner: "new"}) }},
	{"Clauses(clause.OnConflict{DoNothing: true}).Create(&row)", gpNotChecked, noRow, func(e *gpEnv) *gorm.DB {
		// The existing row is left as it is; the new one is inserted.
		return e.db.Clauses(clause.OnConflict{DoNothing: true}).Create(&[]GpAccount{{ID: e.accs[0].ID, Owner: "over"}, {Owner: "new"}})
	}},
	// Upserts.
	{"Clauses(clause.OnConflict{DoUpdates: clause.AssignmentColumns(cols)}).Create(&row)", gpAdvanced, account0, func(e *gpEnv) *gorm.DB {
		return e.db.Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "id"}}, DoUpdates: clause.AssignmentColumns([]string{"balance"})}).
			Create(&GpAccount{ID: e.accs[0].ID, Owner: "x", Balance: 5, Version: 1})
	}},
	{"Clauses(clause.OnConflict{DoUpdates: clause.Assignments(values)}).Create(&row)", gpAdvanced, account0, func(e *gpEnv) *gorm.DB {
		return e.db.Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "id"}}, DoUpdates: clause.Assignments(map[string]any{"balance": 6})}).
			Create(&GpAccount{ID: e.accs[0].ID, Owner: "x", Version: 1})
	}},
	{"Clauses(clause.OnConflict{UpdateAll: true}).Create(&row)", gpRefused, noRow, func(e *gpEnv) *gorm.DB {
		return e.db.Clauses(clause.OnConflict{UpdateAll: true}).Create(&GpAccount{ID: e.accs[0].ID, Owner: "x", Version: 1})
	}},
	{"Clauses(clause.OnConflict{DoUpdates: ...lock column...}).Create(&row)", gpRefused, noRow, func(e *gpEnv) *gorm.DB {
		return e.db.Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "id"}}, DoUpdates: clause.AssignmentColumns([]string{"balance", "version"})}).
			Create(&GpAccount{ID: e.accs[0].ID, Owner: "x", Version: 1})
	}},
	{"Save(&rows)", gpRefused, noRow, func(e *gpEnv) *gorm.DB {
		e.accs[0].Balance, e.accs[1].Balance = 5, 6
		return e.db.Save(&e.accs)
	}},
	// Updates of rows the caller read.
	{"Save(&row)", gpChecked, account0, func(e *gpEnv) *gorm.DB {
		e.accs[0].Balance = 5
		return e.db.Save(&e.accs[0])
	}},
	{"Model(&row).Update(column, value)", gpChecked, account0, func(e *gpEnv) *gorm.DB {
		return e.db.Model(&e.accs[0]).Update("balance", 5)
	}},
	{"Model(&row).Updates(map)", gpChecked, account0, func(e *gpEnv) *gorm.DB {
		return e.db.Model(&e.accs[0]).Updates(map[string]any{"balance": 5})
	}},
	{"Model(&row).Updates(struct)", gpChecked, account0, func(e *gpEnv) *gorm.DB {
		return e.db.Model(&e.accs[0]).Updates(GpAccount{Balance: 5})
	}},
	{"Model(&row).UpdateColumn(column, value)", gpChecked, account0, func(e *gpEnv) *gorm.DB {
		return e.db.Model(&e.accs[0]).UpdateColumn("balance", 5)
	}},
	{"Model(&row).UpdateColumns(map)", gpChecked, account0, func(e *gpEnv) *gorm.DB {
		return e.db.Model(&e.accs[0]).UpdateColumns(map[string]any{"balance": 5})
	}},
	{"Model(&rows).Update(column, value)", gpChecked, account0, func(e *gpEnv) *gorm.DB {
		return e.db.Model(&e.accs).Update("balance", 5)
	}},
	{"optlock.UpdateSafely(db, &rows, values)", gpChecked, account0, func(e *gpEnv) *gorm.DB {
		return optlock.UpdateSafely(e.db, &e.accs, map[string]any{"balance": 5})
	}},
	{"optlock.UpdateEach(db, &rows)", gpChecked, account0, func(e *gpEnv) *gorm.DB {
		e.accs[0].Balance, e.accs[1].Balance = 5, 6
		return optlock.UpdateEach(e.db, &e.accs)
	}},
	{"Save(&parent) with loaded children", gpChecked, account0, func(e *gpEnv) *gorm.DB {
		parent := e.accs[0]
		parent.Balance = 5
		parent.Cards = []GpCard{e.cards[0]}
		return e.db.Save(&parent)
	}},
	{"Model(&row).Update(lock column, value)", gpRefused, noRow, func(e *gpEnv) *gorm.DB {
		return e.db.Model(&e.accs[0]).Update("version", 7)
	}},
	{"Model(&row).Updates(map with the lock column)", gpRefused, noRow, func(e *gpEnv) *gorm.DB {
		return e.db.Model(&e.accs[0]).Updates(map[string]any{"balance": 5, "version": 7})
	}},
	// Updates without read rows.
	{"Model(&Model{}).Where(cond).Updates(values)", gpAdvanced, account0, func(e *gpEnv) *gorm.DB {
		return e.db.Model(&GpAccount{}).Where("id = ?", e.accs[0].ID).Updates(map[string]any{"balance": 5})
	}},
	{"Model(&Model{}).Where(cond).Update(column, value)", gpAdvanced, account0, func(e *gpEnv) *gorm.DB {
		return e.db.Model(&GpAccount{}).Where("id = ?", e.accs[0].ID).Update("balance", 5)
	}},
	{"Model(&Model{}).Where(cond).UpdateColumn(column, value)", gpAdvanced, account0, func(e *gpEnv) *gorm.DB {
		return e.db.Model(&GpAccount{}).Where("id = ?", e.accs[0].ID).UpdateColumn("balance", 5)
	}},
	{"Scopes(optlock.Unchecked()).Model(&Model{ID: id}).Update(column, value)", gpAdvanced, account0, func(e *gpEnv) *gorm.DB {
		return e.db.Scopes(optlock.Unchecked()).Model(&GpAccount{ID: e.accs[0].ID}).Update("balance", 5)
	}},
	{"Table(name).Where(cond).Updates(map)", gpAdvanced, account0, func(e *gpEnv) *gorm.DB {
		return e.db.Table("gp_accounts").Where("id = ?", e.accs[0].ID).Updates(map[string]any{"balance": 5})
	}},
	{"Model(&OtherStructOnTheTable{}).Where(cond).Updates(values)", gpAdvanced, account0, func(e *gpEnv) *gorm.DB {
		return e.db.Model(&GpAccountView{}).Where("id = ?", e.accs[0].ID).Updates(map[string]any{"balance": 5})
	}},
	{"Save(&OtherStructOnTheTableWithTheLockColumn)", gpChecked, account0, func(e *gpEnv) *gorm.DB {
		copied := GpAccountCopy{ID: e.accs[0].ID, Balance: 5, Version: e.accs[0].Version}
		res := e.db.Save(&copied)
		e.accs[0].Version = copied.Version // the copy's version advanced in memory, checked below
		return res
	}},
	{"Table(name).Where(cond).Updates(map with the lock column)", gpRefused, noRow, func(e *gpEnv) *gorm.DB {
		return e.db.Table("gp_accounts").Where("id = ?", e.accs[0].ID).Updates(map[string]any{"balance": 5, "version": 7})
	}},
	// Associations: GORM writes the children's foreign keys.
	{"Model(&parent).Association(name).Append(&child)", gpAdvanced, card2, func(e *gpEnv) *gorm.DB {
		return errDB(e.db, e.db.Model(&e.accs[0]).Association("Cards").Append(&e.cards[2]))
	}},
	{"Model(&parent).Association(name).Replace(&children)", gpAdvanced, card0, func(e *gpEnv) *gorm.DB {
		return errDB(e.db, e.db.Model(&e.accs[0]).Association("Cards").Replace(&e.cards[2]))
	}},
	{"Model(&parent).Association(name).Delete(&child)", gpAdvanced, card0, func(e *gpEnv) *gorm.DB {
		return errDB(e.db, e.db.Model(&e.accs[0]).Association("Cards").Delete(&e.cards[0]))
	}},
	{"Model(&parent).Association(name).Clear()", gpAdvanced, card0, func(e *gpEnv) *gorm.DB {
		return errDB(e.db, e.db.Model(&e.accs[0]).Association("Cards").Clear())
	}},
	{"Session(&gorm.Session{FullSaveAssociations: true}).Save(&parent)", gpRefused, noRow, func(e *gpEnv) *gorm.DB {
		parent := e.accs[0]
		parent.Cards = []GpCard{e.cards[0]}
		parent.Cards[0].Number = "changed"
		return e.db.Session(&gorm.Session{FullSaveAssociations: true}).Save(&parent)
	}},
	// Deletes.
	{"Delete(&row)", gpChecked, account1, func(e *gpEnv) *gorm.DB { return e.db.Delete(&e.accs[1]) }},
	{"Delete(&rows)", gpChecked, account1, func(e *gpEnv) *gorm.DB {
		rows := e.accs[1:]
		return e.db.Delete(&rows)
	}},
	{"Delete(&Model{}, id)", gpNotChecked, account1, func(e *gpEnv) *gorm.DB { return e.db.Delete(&GpAccount{}, e.accs[1].ID) }},
	{"Where(cond).Delete(&Model{})", gpNotChecked, account1, func(e *gpEnv) *gorm.DB {
		return e.db.Where("id = ?", e.accs[1].ID).Delete(&GpAccount{})
	}},
	{"Table(name).Where(cond).Delete(map)", gpNotChecked, account1, func(e *gpEnv) *gorm.DB {
		return e.db.Table("gp_accounts").Where("id = ?", e.accs[1].ID).Delete(map[string]any{})
	}},
	// Raw SQL.
	{"Exec(sql)", gpNotCovered, account0, func(e *gpEnv) *gorm.DB {
		return e.db.Exec("UPDATE gp_accounts SET balance = 5 WHERE id = ?", e.accs[0].ID)
	}},
}

// errDB carries an Association call's error as a *gorm.DB's, so every case returns the same shape.
func errDB(db *gorm.DB, err error) *gorm.DB {
	tx := db.Session(&gorm.Session{NewDB: true})
	tx.Error = err
	return tx
}

// gpState is both tables as another process sees them: each row's version (0: gone) and a digest of
// the rest.
type gpState map[string]map[uint]string

func gpStored(t *testing.T, observer *gorm.DB) gpState {
	t.Helper()
	var accs []GpAccount
	var cards []GpCard
	require.NoError(t, observer.Order("id").Find(&accs).Error)
	require.NoError(t, observer.Order("id").Find(&cards).Error)
	s := gpState{"gp_accounts": {}, "gp_cards": {}}
	for _, a := range accs {
		s["gp_accounts"][a.ID] = strings.Join([]string{a.Owner, itoa(uint(a.Balance)), itoa(uint(a.Version))}, "/")
	}
	for _, c := range cards {
		owner := uint(0)
		if c.GpAccountID != nil {
			owner = *c.GpAccountID
		}
		s["gp_cards"][c.ID] = strings.Join([]string{c.Number, itoa(owner), itoa(uint(c.Version))}, "/")
	}
	return s
}

func gpVersion(t *testing.T, observer *gorm.DB, row gpRow, id uint) (int64, bool) {
	t.Helper()
	var versions []int64
	require.NoError(t, observer.Table(row.table).Where("id = ?", id).Pluck("version", &versions).Error)
	if len(versions) == 0 {
		return 0, false
	}
	return versions[0], true
}

// TestGuardedWritePaths runs every GORM write of a guarded model on every database, in every
// configuration of the configuration matrix that writes (dry runs and kept *gorm.DB aside), and checks
// what the model gets, from another pool: checked (a fresh read writes and advances, a stale one is
// refused with nothing written), advanced (the row's lock moves on, and a holder of an older read is
// refused afterwards), refused (ErrInvalidLock, nothing written), not checked (an insert or a delete
// of rows not read), not covered (raw SQL: the older read then overwrites it, unchecked).
func TestGuardedWritePaths(t *testing.T) {
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			observer := openObserver(t, d)
			recreate(t, observer, &GpAccount{}, &GpCard{})
			t.Cleanup(func() { _ = observer.Migrator().DropTable(&GpCard{}, &GpAccount{}) })
			for _, cfg := range matrixConfigs {
				if cfg.wrap == dryRun || cfg.keep || cfg.only != "" && cfg.only != d.name {
					continue
				}
				t.Run(cfg.name, func(t *testing.T) {
					c := openCaller(t, d, observer, cfg.config(), cfg.editDSN, optlock.Guard(&GpAccount{}), optlock.Guard(&GpCard{}))
					pools := []configured{c}
					if cfg.resolver {
						pools = append(pools, routeWrites(t, d, c, cfg))
					}
					t.Cleanup(func() {
						for _, p := range pools {
							endLeftTransactions(observer, p.pool, p.appName)
						}
					})
					for _, path := range guardedPaths {
						t.Run(path.call, func(t *testing.T) {
							runGuardedPath(t, c, cfg.wrap == inCallerTx, path)
							for _, p := range pools[1:] {
								p.requireIdle(t)
							}
						})
					}
				})
			}
		})
	}
}

// seedGuarded recreates the rows and reads them as the caller.
func seedGuarded(t *testing.T, c configured) *gpEnv {
	t.Helper()
	require.NoError(t, c.observer.Exec("DELETE FROM gp_cards").Error)
	require.NoError(t, c.observer.Exec("DELETE FROM gp_accounts").Error)
	accs := []GpAccount{{Owner: "a", Balance: 10, Version: 1}, {Owner: "b", Balance: 20, Version: 1}, {Owner: "c", Balance: 30, Version: 1}}
	require.NoError(t, c.observer.Omit("Cards").Create(&accs).Error)
	cards := []GpCard{{GpAccountID: &accs[0].ID, Number: "c0", Version: 1}, {GpAccountID: &accs[0].ID, Number: "c1", Version: 1}, {Number: "c2", Version: 1}}
	require.NoError(t, c.observer.Create(&cards).Error)
	e := &gpEnv{db: c.db}
	require.NoError(t, c.db.Order("id").Find(&e.accs).Error)
	require.NoError(t, c.db.Order("id").Find(&e.cards).Error)
	return e
}

func (e *gpEnv) id(row gpRow) uint {
	if row.table == "gp_cards" {
		return e.cards[row.index].ID
	}
	return e.accs[row.index].ID
}

// inCaller runs a path's write inside a transaction of the caller's, which it then commits: a refused
// write leaves that transaction alive, with nothing of the write in it.
func inCaller(t *testing.T, c configured, callerTx bool, e *gpEnv, write func(*gpEnv) *gorm.DB) *gorm.DB {
	t.Helper()
	if !callerTx {
		return write(e)
	}
	tx := c.db.Begin()
	require.NoError(t, tx.Error)
	e.db = tx
	res := write(e)
	e.db = c.db
	require.NoError(t, tx.Commit().Error, "the caller's transaction is alive after the write (%v)", res.Error)
	return res
}

func runGuardedPath(t *testing.T, c configured, callerTx bool, path guardedPath) {
	e := seedGuarded(t, c)
	held := gpEnv{accs: append([]GpAccount(nil), e.accs...), cards: append([]GpCard(nil), e.cards...)}
	before := gpStored(t, c.observer)

	if path.gets == gpChecked {
		// Another writer moves the row on first: the write is refused and writes nothing.
		other := c.observer.Table(path.row.table).Where("id = ?", e.id(path.row)).UpdateColumn("version", gorm.Expr("version + 1"))
		require.NoError(t, other.Error)
		moved := gpStored(t, c.observer)
		requireConflict(t, inCaller(t, c, callerTx, e, path.write).Error, e.id(path.row))
		assert.Equal(t, moved, gpStored(t, c.observer), "a stale write wrote nothing")
		c.requireIdle(t)
		e = seedGuarded(t, c)
		held = gpEnv{accs: append([]GpAccount(nil), e.accs...), cards: append([]GpCard(nil), e.cards...)}
		before = gpStored(t, c.observer)
	}

	res := inCaller(t, c, callerTx, e, path.write)
	c.requireIdle(t)
	after := gpStored(t, c.observer)
	if path.gets == gpRefused {
		require.ErrorIs(t, res.Error, optlock.ErrInvalidLock)
		assert.Equal(t, before, after, "nothing written")
		return
	}
	require.NoError(t, res.Error)
	assert.NotEqual(t, before, after, "the write is stored")
	if path.row == noRow {
		return
	}
	id := held.id(path.row)
	version, exists := gpVersion(t, c.observer, path.row, id)
	switch path.gets {
	case gpChecked, gpAdvanced:
		if exists {
			assert.EqualValues(t, 2, version, "the lock of %s %d advanced", path.row.table, id)
		}
	case gpNotChecked:
		assert.False(t, exists, "deleted")
	case gpNotCovered:
		assert.EqualValues(t, 1, version, "raw SQL: the lock did not move")
	}
	if path.gets == gpChecked {
		if exists && path.row.table == "gp_accounts" && path.call != "Save(&parent) with loaded children" {
			// The caller's struct holds what is stored: it writes again without a re-read.
			for _, a := range e.accs {
				if a.ID == id {
					assert.EqualValues(t, 2, a.Version, "the struct's version advanced")
				}
			}
		}
	}

	// The holder of the older read, written back.
	stale := held.save(c.db, path.row)
	if path.gets == gpNotCovered {
		require.NoError(t, stale, "raw SQL bypasses the guard: the older read overwrites it")
		return
	}
	requireConflict(t, stale, id)
	c.requireIdle(t)
}

// save writes back the held read of row with Save.
func (e *gpEnv) save(db *gorm.DB, row gpRow) error {
	if row.table == "gp_cards" {
		card := e.cards[row.index]
		card.Number = "stale"
		return db.Save(&card).Error
	}
	acc := e.accs[row.index]
	acc.Owner = "stale"
	return db.Omit("Cards").Save(&acc).Error
}

// TestGuardedWritePathsTableMatchesTheDocs: the table in docs/api.md lists exactly the cases above,
// each with the outcome the test checks.
func TestGuardedWritePathsTableMatchesTheDocs(t *testing.T) {
	documented := documentedOutcomes(t, "### Every write of a guarded model")
	tested := map[string]string{}
	for _, p := range guardedPaths {
		tested[p.call] = string(p.gets)
	}
	assert.Equal(t, tested, documented, "docs/api.md's table and guardedPaths, one to one")
}

// documentedOutcomes reads the table under heading in docs/api.md: each row's call (in backquotes) and
// its outcome (in bold), up to the next heading.
func documentedOutcomes(t *testing.T, heading string) map[string]string {
	t.Helper()
	doc, err := os.ReadFile("../docs/api.md")
	require.NoError(t, err)
	text := string(doc)
	start := strings.Index(text, heading)
	require.GreaterOrEqual(t, start, 0, "docs/api.md has the section %q", heading)
	section := text[start:]
	if end := strings.Index(section[4:], "\n#"); end >= 0 {
		section = section[:end+4]
	}
	line := regexp.MustCompile("(?m)^\\| `([^`]+)` \\| \\*\\*([a-z ]+)\\*\\*")
	documented := map[string]string{}
	for _, m := range line.FindAllStringSubmatch(section, -1) {
		documented[m[1]] = m[2]
	}
	return documented
}
