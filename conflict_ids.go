package optlock

import (
	"reflect"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
	"gorm.io/gorm/schema"
)

var deletedAtType = reflect.TypeOf(gorm.DeletedAt{})

// fillConflicts tells, for every row of a refused write, whether it still matches what was read, was
// changed (and to what), or is gone. It runs once nothing of the write is left, with one SELECT (per
// chunk of rows, if they need more bind parameters than one statement takes):
//
//	SELECT id, version, CASE WHEN <the write's WHERE> THEN 1 ELSE 0 END FROM items WHERE id IN (...)
//
// A given row the SELECT does not return, or returns soft-deleted, is gone; one whose flag is 0 was
// changed. The SELECT goes out on the statement's own connection, not through GORM's query callbacks,
// which could route it elsewhere (to a lagging read replica, say).
func (p *Plugin) fillConflicts(db *gorm.DB, st *lockState) {
	st.findConflicts = false
	rows := len(st.snapshot.rows)
	width := len(st.spec.keys) + st.spec.paramsPerRow()
	limit, base := p.bindVarLimitFor(st.spec.dialect), 0
	if rows*width > limit/2 {
		base = boundVars(db.Statement) // SET and WHERE as sent, predicate included: an overestimate
	}
	perQuery := max(1, (limit-base)/width)
	found := make(map[any]storedRow, rows)
	for start := 0; start < rows; start += perQuery {
		c := chunk{start, min(start+perQuery, rows)}
		if err := readStoredRows(db, st, c, found); err != nil {
			_ = db.AddError(err)
			return
		}
	}
	for i := range st.snapshot.rows {
		id := st.snapshot.key(st.spec, i)
		stored, ok := found[st.snapshot.mapKey(st.spec, i)]
		switch {
		case !ok || stored.deleted:
			st.conflict.add(RowConflict{ID: id, Deleted: true})
		case !stored.matches || rows == 1: // a lone row that was refused conflicted, whatever it holds now
			st.conflict.add(RowConflict{ID: id, Current: stored.locks})
		}
	}
}

// storedRow is what the conflict query found of one row.
type storedRow struct {
	locks   map[string]any
	deleted bool
	matches bool
}

// readStoredRows reads the rows of chunk c into found, keyed by rowKey.
func readStoredRows(db *gorm.DB, st *lockState, c chunk, found map[any]storedRow) error {
	q := sibling(db)
	q.Clauses = map[string]clause.Clause{}
	softDelete := softDeleteField(q.Schema)

	var list []any
	for _, k := range st.spec.keys {
		list = append(list, clause.Column{Name: k.field.DBName})
	}
	for _, l := range st.spec.locks {
		list = append(list, clause.Column{Name: l.field.DBName})
	}
	if softDelete != nil {
		list = append(list, clause.Column{Name: softDelete.DBName})
	}
	sql := "?" + strings.Repeat(",?", len(list)-1) + ",CASE WHEN ? THEN 1 ELSE 0 END"
	list = append(list, clause.AndConditions{Exprs: whereFor(db.Statement, st, c).Exprs})
	q.AddClause(clause.Select{Expression: clause.Expr{SQL: sql, Vars: list}})
	q.AddClause(clause.From{})
	q.AddClause(clause.Where{Exprs: []clause.Expression{keysIn(st, c)}})
	q.Build("SELECT", "FROM", "WHERE")
	if _, inTx := q.ConnPool.(gorm.TxCommitter); inTx && st.spec.dialect == "mysql" {
		// Inside a REPEATABLE READ transaction a plain SELECT reads the transaction's old snapshot,
		// where the UPDATE read the latest rows: a locking read sees what the UPDATE saw.
		q.SQL.WriteString(" LOCK IN SHARE MODE")
	}

	begin := time.Now()
	var n int64
	rows, err := q.ConnPool.QueryContext(q.Context, q.SQL.String(), q.Vars...)
	defer func() {
		db.Logger.Trace(q.Context, begin, func() (string, int64) {
			return db.Dialector.Explain(q.SQL.String(), q.Vars...), n
		}, err)
	}()
	if err != nil {
		return err
	}
	defer rows.Close()

	keys, locks := len(st.spec.keys), len(st.spec.locks)
	for rows.Next() {
		dest := make([]any, 0, keys+locks+2)
		for _, k := range st.spec.keys {
			dest = append(dest, reflect.New(k.field.FieldType).Interface())
		}
		for _, l := range st.spec.locks {
			dest = append(dest, reflect.New(l.field.FieldType).Interface())
		}
		var deletedAt gorm.DeletedAt
		if softDelete != nil {
			dest = append(dest, &deletedAt)
		}
		var matches int
		dest = append(dest, &matches)
		if err = rows.Scan(dest...); err != nil {
			return err
		}
		key := make([]any, keys)
		for i := range key {
			key[i] = reflect.ValueOf(dest[i]).Elem().Interface()
		}
		row := storedRow{locks: make(map[string]any, locks), deleted: deletedAt.Valid, matches: matches == 1}
		for j, l := range st.spec.locks {
			row.locks[l.field.DBName] = reflect.ValueOf(dest[keys+j]).Elem().Interface()
		}
		found[rowKey(key)] = row
		n++
	}
	err = rows.Err()
	return err
}

// keysIn is the condition "key IN (the keys of chunk c)", for one or several key columns.
func keysIn(st *lockState, c chunk) clause.Expression {
	keys := len(st.spec.keys)
	w := keys + len(st.spec.locks)
	values := make([]any, 0, c.end-c.start)
	for i := c.start; i < c.end; i++ {
		key := st.snapshot.values[i*w : i*w+keys]
		if keys == 1 {
			values = append(values, key[0])
		} else {
			values = append(values, append([]any(nil), key...))
		}
	}
	if keys == 1 {
		return clause.IN{Column: clause.Column{Name: st.spec.keys[0].field.DBName}, Values: values}
	}
	columns := make([]clause.Column, keys)
	for i, k := range st.spec.keys {
		columns[i] = clause.Column{Name: k.field.DBName}
	}
	return clause.IN{Column: columns, Values: values}
}

// softDeleteField returns the model's gorm.DeletedAt field, if it has one.
func softDeleteField(s *schema.Schema) *schema.Field {
	if s == nil {
		return nil
	}
	for _, f := range s.Fields {
		if f.FieldType == deletedAtType && f.DBName != "" {
			return f
		}
	}
	return nil
}
