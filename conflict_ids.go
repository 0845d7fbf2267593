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
	matched, err := matchingKeys(db, st)
	if err != nil {
		_ = db.AddError(err)
		return
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

// matchingKeys returns the keys of the given rows that still match the statement's WHERE clause.
// The query is built with GORM's clauses and sent on the statement's own connection, bypassing query
// callbacks that could route it elsewhere (to a read replica, say).
func matchingKeys(db *gorm.DB, st *lockState) (map[any]bool, error) {
	stmt := db.Statement
	q := &gorm.Statement{
		DB:        db,
		ConnPool:  stmt.ConnPool,
		Context:   stmt.Context,
		Table:     stmt.Table,
		TableExpr: stmt.TableExpr,
		Schema:    stmt.Schema,
		Clauses:   map[string]clause.Clause{},
	}
	columns := make([]clause.Column, len(st.spec.keys))
	for i, k := range st.spec.keys {
		columns[i] = clause.Column{Name: k.field.DBName}
	}
	q.AddClause(clause.Select{Columns: columns})
	q.AddClause(clause.From{})
	if where, ok := stmt.Clauses["WHERE"]; ok {
		q.Clauses["WHERE"] = where
	}
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
		return nil, err
	}
	defer rows.Close()

	matched := make(map[any]bool)
	dest := make([]any, len(st.spec.keys))
	for rows.Next() {
		for i, k := range st.spec.keys {
			dest[i] = reflect.New(k.field.FieldType).Interface()
		}
		if err = rows.Scan(dest...); err != nil {
			return nil, err
		}
		key := make([]any, len(dest))
		for i, d := range dest {
			key[i] = reflect.ValueOf(d).Elem().Interface()
		}
		matched[rowKey(key)] = true
		found++
	}
	err = rows.Err()
	return matched, err
}
