package tests

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"reflect"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gorm.io/gorm"
	"pgregory.net/rapid"

	"github.com/go-optlock/optlock"
)

// A model-based random test (issue 19). Random sequences of reads, checked writes, blind writes,
// deletes, caller's transactions and concurrent writers run over a few rows, in random
// configurations, and after every step the table as another pool sees it must equal an in-memory
// model of what must be stored.
//
// The rule the model encodes: a checked write of copies succeeds iff every copy's version equals the
// stored version of a row that still exists. On success the rows take the written values and
// version+1, and so do the caller's structs; on a conflict nothing is stored, the structs are exactly
// as before the call, and the error is an *OptimisticLockError whose ConflictIDs are exactly the
// stale or missing keys, in the order given.
//
// rapid shrinks a failing sequence and saves it under testdata/rapid/<test name>/; every run replays
// the saved files first, so keep them in the repository. Runs:
//
//	go test -run TestModelBased ./tests/                      # ~50 sequences per database
//	go test -short -run TestModelBased ./tests/               # ~20
//	OPTLOCK_RAPID_CHECKS=1000 go test -run TestModelBased -timeout 2h ./tests/
//	go test -run TestModelBased ./tests/ -rapid.failfile=testdata/rapid/.../x.fail -rapid.v
//
// OPTLOCK_RAPID_CHECKS is the number of sequences per database, shared among the four GORM
// configurations; -rapid.checks (per configuration) wins over it.

// MbtItem is the model-based test's row, locked by an integer version.
type MbtItem struct {
	ID      uint `gorm:"primaryKey;autoIncrement:false"`
	Qty     int
	Version int64
}

func (MbtItem) TableName() string { return "mbt_items" }

const mbtClients = 3

// mbtGormConfigs are the GORM configurations each database runs under, one rapid check each, so a
// failure under one does not hide the others.
var mbtGormConfigs = []struct {
	name string
	cfg  func() *gorm.Config
}{
	{"DefaultTransaction", func() *gorm.Config { return &gorm.Config{} }},
	{"SkipDefaultTransaction", func() *gorm.Config { return &gorm.Config{SkipDefaultTransaction: true} }},
	{"PrepareStmt", func() *gorm.Config { return &gorm.Config{PrepareStmt: true} }},
	{"SkipDefaultTransaction+PrepareStmt", func() *gorm.Config {
		return &gorm.Config{SkipDefaultTransaction: true, PrepareStmt: true}
	}},
}

// mbtBindVarLimits: 0 is the database's own limit; 5 splits every bulk write of more than one row
// into chunks (where rows are bound one parameter each).
var mbtBindVarLimits = []int{0, 5}

func TestModelBased(t *testing.T) {
	perConfig := mbtChecks()
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			env := openMbtEnv(t, d)
			for _, gc := range mbtGormConfigs {
				t.Run(gc.name, func(t *testing.T) {
					caller := env.caller(t, gc.name, gc.cfg)
					withChecks(perConfig, func() {
						rapid.Check(t, func(rt *rapid.T) {
							p := mbtPlugin{
								guard:        rapid.Bool().Draw(rt, "guard"),
								bindVarLimit: rapid.SampledFrom(mbtBindVarLimits).Draw(rt, "bindVarLimit"),
							}
							rows := rapid.IntRange(3, 5).Draw(rt, "rows")
							rt.Logf("configuration: %s, Guard=%v, WithBindVarLimit(%d), %d rows", gc.name, p.guard, p.bindVarLimit, rows)
							caller.renewIfLeaked()
							m := &mbtMachine{caller: caller, db: caller.handle(p), plugin: p}
							m.reset(rt, rows)
							rt.Repeat(m.actions())
						})
					})
				})
			}
		})
	}
}

// mbtChecks is the number of sequences per GORM configuration: -rapid.checks or RAPID_CHECKS as
// given, else OPTLOCK_RAPID_CHECKS per database (default 20 with -short, 50 without) over the four
// configurations.
func mbtChecks() int {
	explicit := false
	flag.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "rapid.checks" })
	if _, env := os.LookupEnv("RAPID_CHECKS"); explicit || env {
		return 0
	}
	perDB := 50
	if testing.Short() {
		perDB = 20
	}
	if v := os.Getenv("OPTLOCK_RAPID_CHECKS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			panic(fmt.Sprintf("OPTLOCK_RAPID_CHECKS=%q: want a positive number of sequences per database", v))
		}
		perDB = n
	}
	return (perDB + len(mbtGormConfigs) - 1) / len(mbtGormConfigs)
}

// withChecks runs fn with rapid's number of checks set to n (0: leave it as given). rapid divides
// its count by five under -short, so the flag is set to what gives n.
func withChecks(n int, fn func()) {
	if n == 0 {
		fn()
		return
	}
	f := flag.Lookup("rapid.checks")
	old := f.Value.String()
	if testing.Short() {
		n *= 5
	}
	_ = f.Value.Set(strconv.Itoa(n))
	defer func() { _ = f.Value.Set(old) }()
	fn()
}

// mbtPlugin is how the plugin is registered on the caller's database.
type mbtPlugin struct {
	guard        bool // optlock.Guard(&MbtItem{}): plain GORM writes are checked
	bindVarLimit int  // optlock.WithBindVarLimit, 0 for the default
}

// mbtRow is what the model says is stored for one key.
type mbtRow struct {
	Qty     int
	Version int64
	Exists  bool
}

// mbtMachine is one sequence: the caller's database, the model of the table, and each client's
// private copies of the rows it read (index i holds key i+1).
type mbtMachine struct {
	caller  *mbtCaller
	db      *gorm.DB
	plugin  mbtPlugin
	stored  []mbtRow
	copies  [mbtClients][]MbtItem
	nextQty int
}

const mbtStepTimeout = 20 * time.Second

func (m *mbtMachine) reset(t *rapid.T, rows int) {
	ctx, cancel := m.ctx()
	defer cancel()
	obs := m.caller.observer.WithContext(ctx)
	require.NoError(t, obs.Exec("DELETE FROM mbt_items").Error)
	seed := make([]MbtItem, rows)
	m.stored = make([]mbtRow, rows)
	for i := range seed {
		seed[i] = MbtItem{ID: uint(i + 1), Qty: 10, Version: 1}
		m.stored[i] = mbtRow{Qty: 10, Version: 1, Exists: true}
	}
	require.NoError(t, obs.Create(&seed).Error)
	for c := range m.copies {
		m.copies[c] = append([]MbtItem(nil), seed...)
	}
	m.nextQty = 100
}

// qty is a fresh value to write, so every write is visible in the table.
func (m *mbtMachine) qty() int {
	m.nextQty++
	return m.nextQty
}

func (m *mbtMachine) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), mbtStepTimeout)
}

func (m *mbtMachine) actions() map[string]func(*rapid.T) {
	return map[string]func(*rapid.T){
		"":           m.check,
		"read":       m.read,
		"write":      m.write,
		"blind":      m.blind,
		"tx":         m.tx,
		"concurrent": m.concurrent,
	}
}

// check compares the table, as the observer pool reads it, with the model, and requires the caller's
// pool to be idle: no connection checked out, and on PostgreSQL no session of the pool left idle in
// a transaction.
func (m *mbtMachine) check(t *rapid.T) {
	got := m.table(t)
	want := m.want()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("stored rows differ from the model:\n got  %v\n want %v", got, want)
	}
	if inUse := m.caller.pool.Stats().InUse; inUse != 0 {
		t.Fatalf("the caller's pool has %d connection(s) checked out after the step (an open transaction?)", inUse)
	}
	if m.caller.env.name == "postgres" {
		var n int64
		require.NoError(t, m.caller.observer.Raw("SELECT count(*) FROM pg_stat_activity WHERE application_name = ? AND state LIKE 'idle in transaction%'", m.caller.app).Scan(&n).Error)
		if n != 0 {
			t.Fatalf("%d session(s) of the caller's pool are idle in a transaction after the step", n)
		}
	}
}

func (m *mbtMachine) table(t *rapid.T) []MbtItem {
	var rows []MbtItem
	require.NoError(t, m.caller.observer.Order("id").Find(&rows).Error)
	return rows
}

func (m *mbtMachine) want() []MbtItem {
	return wantTable(m.stored)
}

func wantTable(stored []mbtRow) []MbtItem {
	rows := []MbtItem{}
	for i, r := range stored {
		if r.Exists {
			rows = append(rows, MbtItem{ID: uint(i + 1), Qty: r.Qty, Version: r.Version})
		}
	}
	return rows
}

// read: client c reads one row (First) or all rows (Find) into its copies; a row that is gone keeps
// the client's old copy. What is read must be what the model says is stored.
func (m *mbtMachine) read(t *rapid.T) {
	c := rapid.IntRange(0, mbtClients-1).Draw(t, "client")
	ctx, cancel := m.ctx()
	defer cancel()
	if rapid.Bool().Draw(t, "one") {
		i := rapid.IntRange(0, len(m.stored)-1).Draw(t, "row")
		t.Logf("client %d: First(&row, %d)", c, i+1)
		var row MbtItem
		err := m.db.WithContext(ctx).First(&row, i+1).Error
		if !m.stored[i].Exists {
			require.ErrorIs(t, err, gorm.ErrRecordNotFound)
			return
		}
		require.NoError(t, err)
		require.Equal(t, MbtItem{ID: uint(i + 1), Qty: m.stored[i].Qty, Version: m.stored[i].Version}, row, "read")
		m.copies[c][i] = row
		return
	}
	t.Logf("client %d: Find(&rows)", c)
	var rows []MbtItem
	require.NoError(t, m.db.WithContext(ctx).Order("id").Find(&rows).Error)
	require.Equal(t, m.want(), rows, "read")
	for _, r := range rows {
		m.copies[c][r.ID-1] = r
	}
}

// mbtWrite is one checked write of a client's copies.
type mbtWrite struct {
	kind   string
	keys   []uint // the rows written, in the order given
	qty    int    // the value written (UpdateEach: qty+i to the i-th row)
	scoped bool   // Scopes(optlock.WithLock()) although the model is guarded
	noCols bool   // UpdateEach without columns (its default: what Save writes)
}

var mbtWriteKinds = []string{
	"UpdateSafely(&row)",
	"UpdateSafely(&rows)",
	"Model(&row).Update",
	"Model(&row).Updates",
	"Save(&row)",
	"UpdateEach(&rows)",
	"Delete(&row)",
	"Delete(&rows)",
}

func (w mbtWrite) bulk() bool {
	switch w.kind {
	case "UpdateSafely(&rows)", "UpdateEach(&rows)", "Delete(&rows)":
		return true
	}
	return false
}

func (w mbtWrite) deletes() bool { return w.kind == "Delete(&row)" || w.kind == "Delete(&rows)" }

func (w mbtWrite) String() string {
	s := fmt.Sprintf("%s keys=%v qty=%d", w.kind, w.keys, w.qty)
	if w.scoped {
		s += " WithLock"
	}
	if w.noCols {
		s += " (default columns)"
	}
	return s
}

// drawWrite draws a write over distinct keys; over the given keys (in a drawn order) when keys is not
// nil.
func (m *mbtMachine) drawWrite(t *rapid.T, keys []uint) mbtWrite {
	w := mbtWrite{kind: rapid.SampledFrom(mbtWriteKinds).Draw(t, "kind")}
	if keys == nil {
		all := make([]uint, len(m.stored))
		for i := range all {
			all[i] = uint(i + 1)
		}
		keys = all
	}
	perm := rapid.Permutation(keys).Draw(t, "keys")
	n := 1
	if w.bulk() {
		n = rapid.IntRange(1, len(perm)).Draw(t, "n")
	}
	w.keys = perm[:n]
	w.qty = m.qty()
	if m.plugin.guard {
		w.scoped = rapid.Bool().Draw(t, "scoped")
	}
	if w.kind == "UpdateEach(&rows)" {
		w.noCols = rapid.Bool().Draw(t, "noCols")
	}
	return w
}

// rowsOf is client c's copies of w's rows, in w's order.
func (m *mbtMachine) rowsOf(c int, w mbtWrite) []MbtItem {
	rows := make([]MbtItem, len(w.keys))
	for i, k := range w.keys {
		rows[i] = m.copies[c][k-1]
	}
	return rows
}

// prepare sets in the structs what the caller sets before the call (Save, UpdateEach write what the
// structs hold).
func (w mbtWrite) prepare(rows []MbtItem) {
	switch w.kind {
	case "Save(&row)":
		rows[0].Qty = w.qty
	case "UpdateEach(&rows)":
		for i := range rows {
			rows[i].Qty = w.qty + i
		}
	}
}

// run sends w with db; rows are the structs given (already prepared).
func (m *mbtMachine) run(db *gorm.DB, w mbtWrite, rows []MbtItem) *gorm.DB {
	locked := db
	if !m.plugin.guard || w.scoped {
		locked = db.Scopes(optlock.WithLock())
	}
	values := map[string]any{"qty": w.qty}
	switch w.kind {
	case "UpdateSafely(&row)":
		return optlock.UpdateSafely(db, &rows[0], values)
	case "UpdateSafely(&rows)":
		return optlock.UpdateSafely(db, &rows, values)
	case "Model(&row).Update":
		return locked.Model(&rows[0]).Update("qty", w.qty)
	case "Model(&row).Updates":
		return locked.Model(&rows[0]).Updates(values)
	case "Save(&row)":
		return locked.Save(&rows[0])
	case "UpdateEach(&rows)":
		if w.noCols {
			return optlock.UpdateEach(db, &rows)
		}
		return optlock.UpdateEach(db, &rows, "qty")
	case "Delete(&row)":
		return locked.Delete(&rows[0])
	case "Delete(&rows)":
		return locked.Delete(&rows)
	}
	panic("unknown write " + w.kind)
}

// mbtOutcome is what the model says a write must do.
type mbtOutcome struct {
	invalid bool      // refused as bad input (ErrInvalidLock), nothing written
	stale   []uint    // the keys to refuse, in the order given; none: success
	rows    []MbtItem // the structs after the call
	stored  []mbtRow  // the table after the call
}

// expect is w's outcome on the table stored, given the structs before (prepared), under a
// bind-parameter limit (0: the database's own).
func expect(w mbtWrite, before []MbtItem, stored []mbtRow, bindVarLimit int) mbtOutcome {
	out := mbtOutcome{stored: append([]mbtRow(nil), stored...), rows: append([]MbtItem(nil), before...)}
	// A delete is never split into chunks: one whose keys (GORM's list, the predicate's pairs and
	// the conflict query's list: 4 per row) exceed half the limit and the limit is refused
	// (docs/how-it-works.md, "Delete and Save").
	if w.kind == "Delete(&rows)" && bindVarLimit > 0 && len(w.keys)*4 > bindVarLimit {
		out.invalid = true
		return out
	}
	for _, r := range before {
		s := stored[r.ID-1]
		if !s.Exists || s.Version != r.Version {
			out.stale = append(out.stale, r.ID)
		}
	}
	if len(out.stale) > 0 {
		return out
	}
	for i, r := range before {
		if w.deletes() {
			out.stored[r.ID-1] = mbtRow{}
			continue
		}
		qty := w.qty
		if w.kind == "UpdateEach(&rows)" {
			qty = w.qty + i
		}
		out.rows[i].Qty = qty
		out.rows[i].Version = r.Version + 1
		out.stored[r.ID-1] = mbtRow{Qty: qty, Version: r.Version + 1, Exists: true}
	}
	return out
}

// mismatch says how a write's result differs from the outcome the model expects ("" when it does
// not); before are the structs before the call, got after it.
func mismatch(w mbtWrite, res *gorm.DB, before, got []MbtItem, want mbtOutcome) string {
	err := res.Error
	if want.invalid {
		if !errors.Is(err, optlock.ErrInvalidLock) || errors.Is(err, optlock.ErrConflict) {
			return fmt.Sprintf("%v: got error %v, want one wrapping ErrInvalidLock", w, err)
		}
		if !reflect.DeepEqual(got, before) {
			return fmt.Sprintf("%v refused: structs %v, want them as before the call %v", w, got, before)
		}
		return ""
	}
	if len(want.stale) == 0 {
		if err != nil {
			return fmt.Sprintf("%v: got error %v (%T), want success", w, err, err)
		}
		if !reflect.DeepEqual(got, want.rows) {
			return fmt.Sprintf("%v succeeded: structs %v, want %v", w, got, want.rows)
		}
		switch w.kind {
		case "UpdateSafely(&row)", "UpdateSafely(&rows)", "UpdateEach(&rows)":
			if res.RowsAffected != int64(len(w.keys)) {
				return fmt.Sprintf("%v succeeded: RowsAffected %d, want %d", w, res.RowsAffected, len(w.keys))
			}
		}
		return ""
	}
	var lockErr *optlock.OptimisticLockError
	switch {
	case err == nil:
		return fmt.Sprintf("%v: succeeded (RowsAffected %d), want a conflict on %v", w, res.RowsAffected, want.stale)
	case !errors.Is(err, optlock.ErrConflict) || errors.Is(err, optlock.ErrInvalidLock) || !errors.As(err, &lockErr):
		return fmt.Sprintf("%v: got error %v (%T), want an *OptimisticLockError on %v", w, err, err, want.stale)
	}
	wantKeys := want.stale
	if lockErr.DetailsErr != nil {
		// The details could not be read: the documented fallback names every key of the write, each
		// Unknown.
		wantKeys = w.keys
		for _, r := range lockErr.Rows {
			if !r.Unknown {
				return fmt.Sprintf("%v: details unreadable (%v) but row %v is not Unknown", w, lockErr.DetailsErr, r.ID)
			}
		}
	}
	if gotIDs, wantIDs := fmt.Sprint(lockErr.ConflictIDs), fmt.Sprint(wantKeys); gotIDs != wantIDs {
		return fmt.Sprintf("%v: ConflictIDs %s, want %s (%v)", w, gotIDs, wantIDs, err)
	}
	if !reflect.DeepEqual(got, before) {
		return fmt.Sprintf("%v refused: structs %v, want them as before the call %v", w, got, before)
	}
	return ""
}

// apply records a write's result: the table and client c's structs.
func (m *mbtMachine) apply(c int, stored []mbtRow, rows []MbtItem) {
	m.stored = stored
	for _, r := range rows {
		m.copies[c][r.ID-1] = r
	}
}

// write: client c writes back some of its copies, outside any transaction of its own.
func (m *mbtMachine) write(t *rapid.T) {
	c := rapid.IntRange(0, mbtClients-1).Draw(t, "client")
	w := m.drawWrite(t, nil)
	t.Logf("client %d: %v", c, w)
	ctx, cancel := m.ctx()
	defer cancel()
	m.writeWith(t, m.db.WithContext(ctx), c, w, m.stored)
}

// writeWith runs w for client c on db against the table stored, checks it, and records it.
func (m *mbtMachine) writeWith(t *rapid.T, db *gorm.DB, c int, w mbtWrite, stored []mbtRow) {
	rows := m.rowsOf(c, w)
	w.prepare(rows)
	before := append([]MbtItem(nil), rows...)
	want := expect(w, before, stored, m.plugin.bindVarLimit)
	res := m.run(db, w, rows)
	if msg := mismatch(w, res, before, rows, want); msg != "" {
		t.Fatalf("client %d: %s", c, msg)
	}
	m.apply(c, want.stored, rows)
}

// blind: a writer that read nothing changes a row: plain SQL through the observer pool (update,
// delete, or re-insert of a deleted row with a drawn version), or, on a guarded model, the caller's
// optlock.Unchecked write by key or plain GORM write without read rows (both advance the version).
func (m *mbtMachine) blind(t *rapid.T) {
	i := rapid.IntRange(0, len(m.stored)-1).Draw(t, "row")
	kinds := []string{"SQL UPDATE", "SQL DELETE", "SQL INSERT"}
	if m.plugin.guard {
		kinds = append(kinds, "Unchecked Update", "Where Update")
	}
	kind := rapid.SampledFrom(kinds).Draw(t, "blind")
	id, qty := uint(i+1), m.qty()
	ctx, cancel := m.ctx()
	defer cancel()
	obs := m.caller.observer.WithContext(ctx)
	s := &m.stored[i]
	switch kind {
	case "SQL UPDATE":
		t.Logf("blind: UPDATE mbt_items SET qty = %d, version = version + 1 WHERE id = %d", qty, id)
		require.NoError(t, obs.Exec("UPDATE mbt_items SET qty = ?, version = version + 1 WHERE id = ?", qty, id).Error)
		if s.Exists {
			s.Qty, s.Version = qty, s.Version+1
		}
	case "SQL DELETE":
		t.Logf("blind: DELETE FROM mbt_items WHERE id = %d", id)
		require.NoError(t, obs.Exec("DELETE FROM mbt_items WHERE id = ?", id).Error)
		*s = mbtRow{}
	case "SQL INSERT":
		if s.Exists {
			t.Logf("blind: (no insert, row %d exists)", id)
			return
		}
		version := rapid.Int64Range(1, 4).Draw(t, "version")
		t.Logf("blind: INSERT INTO mbt_items (id, qty, version) VALUES (%d, %d, %d)", id, qty, version)
		require.NoError(t, obs.Exec("INSERT INTO mbt_items (id, qty, version) VALUES (?, ?, ?)", id, qty, version).Error)
		*s = mbtRow{Qty: qty, Version: version, Exists: true}
	case "Unchecked Update":
		t.Logf("blind: Scopes(Unchecked()).Model(&MbtItem{ID: %d}).Update(qty, %d)", id, qty)
		require.NoError(t, m.db.WithContext(ctx).Scopes(optlock.Unchecked()).Model(&MbtItem{ID: id}).Update("qty", qty).Error)
		if s.Exists {
			s.Qty, s.Version = qty, s.Version+1
		}
	case "Where Update":
		t.Logf("blind: Model(&MbtItem{}).Where(id = %d).Update(qty, %d)", id, qty)
		require.NoError(t, m.db.WithContext(ctx).Model(&MbtItem{}).Where("id = ?", id).Update("qty", qty).Error)
		if s.Exists {
			s.Qty, s.Version = qty, s.Version+1
		}
	}
}

var errMbtRollback = errors.New("mbt: the caller rolls back")

// tx: client c runs one to three writes inside its own db.Transaction, then commits or rolls back.
// Inside it a conflict leaves the transaction alive: the writes before it stay, and commit.
func (m *mbtMachine) tx(t *rapid.T) {
	c := rapid.IntRange(0, mbtClients-1).Draw(t, "client")
	n := rapid.IntRange(1, 3).Draw(t, "writes")
	rollback := rapid.Bool().Draw(t, "rollback")
	before := append([]mbtRow(nil), m.stored...)
	ctx, cancel := m.ctx()
	defer cancel()
	t.Logf("client %d: db.Transaction {", c)
	err := m.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		for range n {
			w := m.drawWrite(t, nil)
			t.Logf("  %v", w)
			m.writeWith(t, tx, c, w, m.stored)
		}
		if rollback {
			return errMbtRollback
		}
		return nil
	})
	if rollback {
		t.Logf("} rolled back")
		require.ErrorIs(t, err, errMbtRollback)
		m.stored = before
		return
	}
	t.Logf("} committed")
	require.NoError(t, err, "commit")
}

// concurrent: two clients write overlapping rows at once, each from its own copies (with fresh,
// both read every row first, so both hold the same versions), each outside any transaction or each
// inside its own db.Transaction (committed after a conflict, which leaves it alive). The result must
// be that of one of the two serial orders: each write succeeds or is refused as it would be in that
// order, never both succeed from the same read. Inside a transaction a write may instead end with
// ErrTxAborted (a deadlock): its transaction is rolled back and it counts as not written.
func (m *mbtMachine) concurrent(t *rapid.T) {
	a := rapid.IntRange(0, mbtClients-1).Draw(t, "client a")
	b := (a + rapid.IntRange(1, mbtClients-1).Draw(t, "client b offset")) % mbtClients
	ctx, cancel := m.ctx()
	defer cancel()
	if rapid.Bool().Draw(t, "fresh") {
		var rows []MbtItem
		require.NoError(t, m.db.WithContext(ctx).Order("id").Find(&rows).Error)
		for _, c := range []int{a, b} {
			for _, r := range rows {
				m.copies[c][r.ID-1] = r
			}
		}
	}
	wa := m.drawWrite(t, nil)
	wb := m.drawWrite(t, wa.keys)
	inTx := rapid.Bool().Draw(t, "in own transactions")
	t.Logf("concurrently (in own transactions: %v): client %d: %v; client %d: %v", inTx, a, wa, b, wb)

	clients := [2]int{a, b}
	writes := [2]mbtWrite{wa, wb}
	var rows, before [2][]MbtItem
	var res [2]*gorm.DB
	var txErr [2]error
	for k := range 2 {
		rows[k] = m.rowsOf(clients[k], writes[k])
		writes[k].prepare(rows[k])
		before[k] = append([]MbtItem(nil), rows[k]...)
	}
	start := make(chan struct{})
	var wg sync.WaitGroup
	for k := range 2 {
		wg.Go(func() {
			<-start
			if !inTx {
				res[k] = m.run(m.db.WithContext(ctx), writes[k], rows[k])
				return
			}
			txErr[k] = m.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
				res[k] = m.run(tx, writes[k], rows[k])
				if errors.Is(res[k].Error, optlock.ErrTxAborted) {
					return res[k].Error
				}
				return nil
			})
		})
	}
	close(start)
	wg.Wait()
	if inUse := m.caller.pool.Stats().InUse; inUse != 0 {
		t.Fatalf("the caller's pool has %d connection(s) checked out after the concurrent writes (errors: %v; %v)", inUse, res[0].Error, res[1].Error)
	}
	var aborted [2]bool
	for k := range 2 {
		aborted[k] = inTx && errors.Is(res[k].Error, optlock.ErrTxAborted)
		switch {
		case aborted[k] && errors.Is(res[k].Error, optlock.ErrConflict):
			t.Fatalf("client %d: %v: error matches both ErrTxAborted and ErrConflict: %v", clients[k], writes[k], res[k].Error)
		case aborted[k]:
			t.Logf("client %d: transaction aborted: %v", clients[k], res[k].Error)
		case txErr[k] != nil:
			t.Fatalf("client %d: %v: commit after the write (error %v) failed: %v", clients[k], writes[k], res[k].Error, txErr[k])
		}
	}

	table := m.table(t)
	var failures []string
	for _, order := range [][2]int{{0, 1}, {1, 0}} {
		stored := m.stored
		var outs [2]mbtOutcome
		msg := ""
		for _, k := range order {
			outs[k] = expect(writes[k], before[k], stored, m.plugin.bindVarLimit)
			if aborted[k] { // rolled back: nothing written, whatever the structs now say
				outs[k].stored = stored
				continue
			}
			stored = outs[k].stored
			if msg == "" {
				msg = mismatch(writes[k], res[k], before[k], rows[k], outs[k])
			}
		}
		if msg == "" && !reflect.DeepEqual(table, wantTable(stored)) {
			msg = fmt.Sprintf("stored rows %v, want %v", table, wantTable(stored))
		}
		if msg == "" {
			for _, k := range order {
				m.apply(clients[k], outs[k].stored, rows[k])
			}
			m.stored = stored
			return
		}
		failures = append(failures, fmt.Sprintf("in the order client %d, then client %d: %s", clients[order[0]], clients[order[1]], msg))
	}
	t.Fatalf("concurrent writes match neither serial order (errors: %v; %v):\n %s\n %s", res[0].Error, res[1].Error, failures[0], failures[1])
}
