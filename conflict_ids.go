package optlock

import (
	"reflect"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// fillConflicts names the rows of a refused bulk write that no longer match what was read. It runs
// after the write was undone, with one SELECT under the same WHERE as the UPDATE: the rows it returns
// would have been written, every other row is a conflict.
func (p *Plugin) fillConflicts(db *gorm.DB, st *lockState) {
	st.findConflicts = false
	matched := make(map[any]bool, len(st.snapshot.rows))
	for _, c := range st.chunks {
		if err := matchingKeys(db, st, whereFor(db.Statement, st, c), matched); err != nil {
			_ = db.AddError(err)
			return
		}
	}
	for i := range st.snapshot.rows {
		key := st.snapshot.key(st.spec, i)
		var k any
		if composite, ok := key.([]any); ok {
			k = rowKey(composite)
		} else {
			k = rowKey([]any{key})
		}
		if !matched[k] {
			st.conflict.ConflictIDs = append(st.conflict.ConflictIDs, key)
		}
	}
}

// matchingKeys adds to matched the keys of the rows that still match where. The query is built with
// GORM's clauses and sent on the statement's own connection, bypassing query callbacks that could
// route it elsewhere (to a read replica, say).
func matchingKeys(db *gorm.DB, st *lockState, where clause.Where, matched map[any]bool) error {
	q := sibling(db)
	q.Clauses = map[string]clause.Clause{}
	columns := make([]clause.Column, len(st.spec.keys))
	for i, k := range st.spec.keys {
		columns[i] = clause.Column{Name: k.field.DBName}
	}
	q.AddClause(clause.Select{Columns: columns})
	q.AddClause(clause.From{})
	q.AddClause(where)
	q.Build("SELECT", "FROM", "WHERE")

	begin := time.Now()
	rows, err := q.ConnPool.QueryContext(q.Context, q.SQL.String(), q.Vars...)
	var found int64
	defer func() {
		db.Logger.Trace(q.Context, begin, func() (string, int64) {
			return db.Dialector.Explain(q.SQL.String(), q.Vars...), found
		}, err)
	}()
	if err != nil {
		return err
	}
	defer rows.Close()

	dest := make([]any, len(st.spec.keys))
	for rows.Next() {
		for i, k := range st.spec.keys {
			dest[i] = reflect.New(k.field.FieldType).Interface()
		}
		if err = rows.Scan(dest...); err != nil {
			return err
		}
		key := make([]any, len(dest))
		for i, d := range dest {
			key[i] = reflect.ValueOf(d).Elem().Interface()
		}
		matched[rowKey(key)] = true
		found++
	}
	err = rows.Err()
	return err
}
