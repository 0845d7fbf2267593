package optlock

import (
	"reflect"
	"strconv"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
	"gorm.io/gorm/schema"
)

// UpdateEach writes back many rows, each with its own values, checked, in one statement: rows is a
// pointer to a slice of structs (or struct pointers) the caller read and then changed in memory. Each
// row's current values of the columns written are written to that row, and only if every row's lock
// fields still hold what its struct holds.
//
// The columns written are what GORM's Save writes under db's Select and Omit, so columns a caller
// left out, or never read, keep what is stored:
//   - with no columns: every updatable column except the primary key, the lock fields, created_at and
//     deleted_at (the last two only when Select names them); Omit leaves columns out, and a Select
//     other than "*" writes only the columns it names;
//   - with columns (column or Go field names): exactly those that Select and Omit leave;
//   - a column with autoUpdateTime (updated_at, when it is not the lock) is set to now, as Save sets
//     it: when no columns are given it is written even under a Select that does not name it, unless
//     Omit names it; when columns are given, only if they name it.
//
// The primary key and the lock fields are never written from the structs: rows are matched by key,
// and the lock is checked and advanced whatever Select and Omit name (naming them is allowed, as for
// Save: the read's own Select("id", "qty", "version") may be reused for the write).
//
// The contract is UpdateSafely's: all or nothing (inside the caller's transaction too, where
// [ErrConflict] means the transaction is alive), an [*OptimisticLockError] naming every conflicting
// key, lock fields advanced in memory on success and the structs left as they were on a conflict, lock
// fields from [WithLock] on db or the model's default, guarded models honoured. Bad input (an unknown
// column in columns, Select or Omit; a key or lock column in columns; Select and Omit leaving nothing
// to write; rows of mixed types, zero or duplicate keys, rows that are not a pointer to a slice) gives
// an error wrapping [ErrInvalidLock] and writes nothing. BeforeSave, BeforeUpdate, AfterUpdate and
// AfterSave hooks run for every row, as GORM's Save runs them; values a Before hook sets in a column
// written are written.
//
// Rows are written with one UPDATE per chunk (chunks only when the rows need more bind parameters than
// one statement takes), joined to a list of per-row values and taking the row locks in primary-key
// order; see docs/how-it-works.md for the SQL on each database.
func UpdateEach(db *gorm.DB, rows any, columns ...string) *gorm.DB {
	if db == nil {
		return &gorm.DB{Config: &gorm.Config{}, Error: invalidf("db is nil: pass the *gorm.DB (or transaction) to write with")}
	}
	tx := db.Model(rows)
	if _, ok := db.Config.Plugins[pluginName]; !ok {
		_ = tx.AddError(errNotRegistered)
		return tx
	}
	n, err := checkModel(rows)
	if err == nil && reflect.Indirect(reflect.ValueOf(rows)).Kind() != reflect.Slice {
		err = invalidf("UpdateEach takes a pointer to a slice of the rows you read, not a %T: use UpdateSafely or Save for one row", rows)
	}
	if err != nil {
		_ = tx.AddError(err)
		return tx
	}
	if n == 0 {
		return tx
	}
	tx.Statement.Settings.Store(settingSafely, lockRequest{stmt: tx.Statement})
	tx.Statement.Settings.Store(settingEach, eachRequest{stmt: tx.Statement, columns: append([]string(nil), columns...)})
	return tx.Updates(map[string]any{})
}

// eachRequest marks a statement made by UpdateEach, with the columns asked for.
type eachRequest struct {
	stmt    *gorm.Statement
	columns []string
}

// eachState is what UpdateEach's statement carries through the callbacks.
type eachState struct {
	columns []*schema.Field
	// typeCasts are, per column, the types the first row of values is cast to where that types the
	// list (PostgreSQL); rowCasts, the casts every row's value needs (MySQL's BINARY for a binary
	// column).
	typeCasts, rowCasts []string
	// values holds, row after row in the caller's order, the values of columns.
	values []any
	// order lists the rows in primary-key order: chunks and row locks follow it.
	order []int
	// softDelete is the model's deleted_at field, unless the write is Unscoped: deleted rows are not
	// written.
	softDelete *schema.Field
}

// eachRequestOf returns the UpdateEach request of the statement, if any.
func eachRequestOf(db *gorm.DB) (eachRequest, bool) {
	v, ok := db.Statement.Settings.Load(settingEach)
	r, isRequest := v.(eachRequest)
	return r, ok && isRequest && r.stmt == db.Statement
}

// prepareEach resolves the columns of an UpdateEach against the schema, Select and Omit (eachColumns).
func (p *Plugin) prepareEach(db *gorm.DB, st *lockState, names []string) error {
	s := db.Statement.Schema
	if whereExprCount(db.Statement) > 0 {
		return invalidf("UpdateEach writes the rows it is given, by key: it takes no Where conditions; filter the rows before the call")
	}
	fields, err := eachColumns(db.Statement, st.spec, names)
	if err != nil {
		return err
	}
	each := &eachState{columns: fields}
	if !db.Statement.Unscoped {
		each.softDelete = softDeleteField(s)
	}
	for _, f := range fields {
		cast, err := st.spec.dialect.castType(db.Statement, f, st.spec.stored)
		if err != nil {
			return err
		}
		stored, _ := st.spec.stored.column(f.DBName)
		each.typeCasts = append(each.typeCasts, cast)
		each.rowCasts = append(each.rowCasts, st.spec.dialect.binaryCast(stored, f))
	}
	st.each = each
	return nil
}

// buildEach writes UpdateEach's statement: the earlier chunks are sent here, the last is left in the
// statement for gorm:update to send.
func (p *Plugin) buildEach(db *gorm.DB, st *lockState) {
	stmt := db.Statement
	each := st.each
	now := db.NowFunc()
	// Columns with autoUpdateTime are set to now, as Save sets them.
	for _, f := range each.columns {
		if f.AutoUpdateTime == 0 {
			continue
		}
		var v any = now
		switch f.AutoUpdateTime {
		case schema.UnixNanosecond:
			v = now.UnixNano()
		case schema.UnixMillisecond:
			v = now.UnixMilli()
		case schema.UnixSecond:
			v = now.Unix()
		}
		for _, row := range st.snapshot.rows {
			_ = f.Set(stmt.Context, row, v)
		}
	}
	each.values = make([]any, 0, len(st.snapshot.rows)*len(each.columns))
	for _, row := range st.snapshot.rows {
		for _, f := range each.columns {
			v, _ := f.ValueOf(stmt.Context, row)
			each.values = append(each.values, v)
		}
	}
	each.order = st.snapshot.keyOrder(st.spec)
	for j, lf := range st.spec.locks {
		if lf.kind == counterLock {
			continue
		}
		if st.next == nil {
			st.next = make([]any, len(st.spec.locks))
		}
		st.next[j] = st.snapshot.nextValue(st.spec, j, now)
	}

	perRow := len(st.spec.keys) + len(st.spec.locks) + len(each.columns)
	if st.spec.dialect.locksInKeyOrder() {
		perRow += len(st.spec.keys) // the key-order lock
	}
	rows := len(st.snapshot.rows)
	perChunk := max(1, (p.bindVarLimitFor(st.spec.dialect)-len(st.spec.locks)*2)/perRow)
	for start := 0; start < rows; start += perChunk {
		st.chunks = append(st.chunks, chunk{start, min(start+perChunk, rows)})
	}
	last := len(st.chunks) - 1
	if !db.DryRun {
		for _, c := range st.chunks[:last] {
			s := sibling(db)
			eachWrite{st: st, c: c}.Build(s)
			written, err := execBuilt(db, s)
			if db.AddError(err) != nil {
				return
			}
			st.earlierWritten += written
		}
	}
	st.before.save(stmt)
	eachWrite{st: st, c: st.chunks[last]}.Build(stmt)
	// gorm:update sends the statement as built; it refuses one without WHERE, which this has in its SQL.
	stmt.AddClause(clause.Where{Exprs: []clause.Expression{clause.Expr{SQL: "1 = 1"}}})
	st.snapshot.advance(stmt.Context, st.spec, st.next)
}

// eachWrite is the UPDATE of UpdateEach for the rows of chunk c (positions in key order).
type eachWrite struct {
	st *lockState
	c  chunk
}

// Build writes the statement in the dialect's form (sqlDialect.buildEach):
//
//	PostgreSQL: UPDATE t SET c=v.c0, version=COALESCE(t.version,0)+1 FROM (VALUES (CAST(? AS int8),…),…) AS v(k0,l0,c0)
//	            WHERE id = ANY(ARRAY(SELECT id … ORDER BY id FOR UPDATE)) AND t.id=v.k0 AND t.version=v.l0
//	SQLite:     UPDATE t SET c=v.c0, … FROM (SELECT column1 AS k0, … FROM (VALUES (?,…),…)) AS v WHERE t.id=v.k0 AND …
//	MySQL:      UPDATE (SELECT ? AS k0, ? AS l0, ? AS c0 UNION ALL SELECT ?,?,? …) AS v STRAIGHT_JOIN t
//	            ON t.id=v.k0 AND t.version=v.l0 SET t.c=v.c0, t.version=COALESCE(t.version,0)+1
func (w eachWrite) Build(b clause.Builder) { w.st.spec.dialect.buildEach(b, w) }

// width is the number of values per row: keys, locks, then columns.
func (w eachWrite) width() int {
	return len(w.st.spec.keys) + len(w.st.spec.locks) + len(w.st.each.columns)
}

// alias names value i of a row: k0…, l0…, c0…; generated, never from the caller.
func (w eachWrite) alias(i int) string {
	k, l := len(w.st.spec.keys), len(w.st.spec.locks)
	switch {
	case i < k:
		return "k" + strconv.Itoa(i)
	case i < k+l:
		return "l" + strconv.Itoa(i-k)
	}
	return "c" + strconv.Itoa(i-k-l)
}

func (w eachWrite) writeAliases(b clause.Builder) {
	for i := range w.width() {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteQuoted(w.alias(i))
	}
}

// value returns value i of row r (in the caller's order).
func (w eachWrite) value(r, i int) any {
	spec, each := w.st.spec, w.st.each
	k, l := len(spec.keys), len(spec.locks)
	sw := k + l
	switch {
	case i < sw:
		return w.st.snapshot.values[r*sw+i]
	}
	return each.values[r*len(each.columns)+i-sw]
}

// column returns the table column value i is matched with or written to.
func (w eachWrite) column(i int) *schema.Field {
	spec := w.st.spec
	k, l := len(spec.keys), len(spec.locks)
	switch {
	case i < k:
		return spec.keys[i].field
	case i < k+l:
		return spec.locks[i-k].field
	}
	return w.st.each.columns[i-k-l]
}

// writeValue binds value i of row r, cast where its row needs it (a key's or column's rowCast); typeRow
// casts every value to its column's type, which types a VALUES list (PostgreSQL), and castTimes casts
// a timestamp lock's value to the column's type.
func (w eachWrite) writeValue(b clause.Builder, r, i int, typeRow, castTimes bool) {
	spec, each := w.st.spec, w.st.each
	k, l := len(spec.keys), len(spec.locks)
	cast := ""
	switch {
	case i < k:
		switch {
		case spec.keys[i].rowCast != "":
			cast = spec.keys[i].rowCast
		case typeRow:
			cast = spec.keys[i].castType
		}
	case i < k+l:
		if lf := spec.locks[i-k]; lf.kind == timeLock && castTimes || typeRow {
			cast = lf.castType
		}
	default:
		cast = each.rowCasts[i-k-l]
		if typeRow && each.typeCasts[i-k-l] != "" {
			cast = each.typeCasts[i-k-l]
		}
	}
	writeBound(b, []any{w.value(r, i)}, cast)
}

// writeValueRows writes "(…),(…)" for the rows of the chunk, in key order; castFirst types the list
// by its first row, castTimes casts timestamp locks in every row (writeValue).
func (w eachWrite) writeValueRows(b clause.Builder, castFirst, castTimes bool) {
	for pos := w.c.start; pos < w.c.end; pos++ {
		if pos > w.c.start {
			b.WriteByte(',')
		}
		r := w.st.each.order[pos]
		b.WriteByte('(')
		for i := range w.width() {
			if i > 0 {
				b.WriteByte(',')
			}
			w.writeValue(b, r, i, castFirst && pos == w.c.start, castTimes)
		}
		b.WriteByte(')')
	}
}

// tableColumn writes t.column.
func tableColumn(b clause.Builder, f *schema.Field) {
	b.WriteQuoted(clause.Column{Table: clause.CurrentTable, Name: f.DBName})
}

// vColumn writes v.alias.
func (w eachWrite) vColumn(b clause.Builder, i int) {
	b.WriteQuoted(clause.Column{Table: "v", Name: w.alias(i)})
}

// writeMatch writes the join condition: keys equal, lock columns still as read (NULL as zero,
// timestamps as the dialect compares instants; with castTimes, a timestamp's joined value cast to the
// column's type, which the rows' values are not), and not soft-deleted.
func (w eachWrite) writeMatch(b clause.Builder, castTimes bool) {
	spec := w.st.spec
	k := len(spec.keys)
	pred := w.predicate()
	for i := range k + len(spec.locks) {
		if i > 0 {
			b.WriteString(" AND ")
		}
		f := w.column(i)
		if i < k {
			tableColumn(b, f)
			b.WriteString(" = ")
			w.vColumn(b, i)
			continue
		}
		lf := spec.locks[i-k]
		writeLockColumn(b, spec.dialect, lf, clause.Column{Table: clause.CurrentTable, Name: f.DBName}, pred.nullable(i-k))
		b.WriteString(" = ")
		open, closing := spec.dialect.instant(lf)
		b.WriteString(open)
		if castTimes && lf.kind == timeLock {
			b.WriteString("CAST(")
			w.vColumn(b, i)
			b.WriteString(" AS " + lf.castType + ")")
		} else {
			w.vColumn(b, i)
		}
		b.WriteString(closing)
	}
	if sd := w.st.each.softDelete; sd != nil {
		b.WriteString(" AND ")
		tableColumn(b, sd)
		b.WriteString(" IS NULL")
	}
}

// writeSet writes the assignments: each column from v, the lock columns advanced.
func (w eachWrite) writeSet(b clause.Builder, qualify bool) {
	spec := w.st.spec
	k, l := len(spec.keys), len(spec.locks)
	target := func(f *schema.Field) {
		if qualify {
			tableColumn(b, f)
		} else {
			b.WriteQuoted(clause.Column{Name: f.DBName})
		}
	}
	for j, f := range w.st.each.columns {
		if j > 0 {
			b.WriteByte(',')
		}
		target(f)
		b.WriteString(" = ")
		w.vColumn(b, k+l+j)
	}
	for j, lf := range spec.locks {
		b.WriteByte(',')
		target(lf.field)
		b.WriteString(" = ")
		if lf.kind == counterLock {
			b.WriteString("COALESCE(")
			tableColumn(b, lf.field)
			b.WriteString(", 0) + 1")
			continue
		}
		b.AddVar(b, w.st.next[j])
	}
}

// predicate is the lock predicate over the chunk's rows, for the key-order lock and NULL detection.
func (w eachWrite) predicate() lockPredicate {
	sw := len(w.st.spec.keys) + len(w.st.spec.locks)
	values := make([]any, 0, (w.c.end-w.c.start)*sw)
	for pos := w.c.start; pos < w.c.end; pos++ {
		r := w.st.each.order[pos]
		values = append(values, w.st.snapshot.values[r*sw:(r+1)*sw]...)
	}
	return lockPredicate{spec: w.st.spec, values: values, lockInKeyOrder: true}
}
