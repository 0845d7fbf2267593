package optlock

import (
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// chunk is the range of rows [start, end) one statement writes.
//
// A bulk write is one UPDATE unless its rows need more bind parameters than the database takes in one
// statement. Then the rows are split into chunks: the plugin sends all but the last chunk itself,
// with the same SET and WHERE, and GORM sends the last one. They run inside the same transaction or
// savepoint, so a shortfall in any chunk undoes all of them.
type chunk struct{ start, end int }

// chunkPredicate is the lock predicate of a write for the rows of c: rows in key order when the write
// is split, so two writers over the same rows take the chunks, and their row locks, in the same order
// (cut in the callers' orders, chunks deadlock against each other on PostgreSQL).
func (st *lockState) chunkPredicate(c chunk) lockPredicate {
	w := len(st.spec.keys) + len(st.spec.locks)
	values := st.snapshot.values
	if len(st.chunks) > 1 {
		if st.sortedValues == nil {
			st.sortedValues = st.snapshot.sortedByKey(st.spec)
		}
		values = st.sortedValues
	}
	return lockPredicate{spec: st.spec, values: values[c.start*w : c.end*w], lockInKeyOrder: true}
}

// planChunks splits the rows so that no statement exceeds the bind-parameter limit, counting the
// parameters SET and the caller's WHERE already use. It runs once SET is in place, before the
// predicate is added.
func (p *Plugin) planChunks(db *gorm.DB, st *lockState) []chunk {
	rows := len(st.snapshot.rows)
	whole := lockPredicate{spec: st.spec, values: st.snapshot.values, lockInKeyOrder: true}
	if whole.bindsConstant() {
		return append(st.one.chunks[:0], chunk{0, rows}) // in the state's own room
	}
	width := st.spec.paramsPerRow()
	limit := p.bindVarLimitFor(st.spec.dialect)
	perChunk := rows
	if rows*width > limit/2 {
		perChunk = max(1, (limit-boundVars(db.Statement))/width)
	}
	chunks := st.one.chunks[:0] // one chunk fits in the state's own room
	if perChunk < rows {
		chunks = make([]chunk, 0, (rows+perChunk-1)/perChunk)
	}
	for start := 0; start < rows; start += perChunk {
		chunks = append(chunks, chunk{start, min(start+perChunk, rows)})
	}
	return chunks
}

// boundVars counts the bind parameters of the statement's SET and WHERE clauses.
func boundVars(stmt *gorm.Statement) int {
	scratch := &gorm.Statement{DB: stmt.DB, Table: stmt.Table, Schema: stmt.Schema, Clauses: stmt.Clauses}
	scratch.Build("SET", "WHERE")
	return len(scratch.Vars)
}

// execChunk sends the UPDATE for one chunk on the statement's connection and returns the rows it wrote.
func execChunk(db *gorm.DB, st *lockState, c chunk) (int64, error) {
	stmt := db.Statement
	s := sibling(db)
	s.AddClause(clause.Update{})
	if stmt.Schema != nil {
		for _, modifier := range stmt.Schema.UpdateClauses { // soft delete's condition, for one
			s.AddClause(modifier)
		}
	}
	pred := st.chunkPredicate(c)
	addUpdatePredicate(s, &pred)
	s.Build(stmt.BuildClauses...)
	return execBuilt(db, s)
}

// execBuilt sends a statement the plugin built on the statement's connection, through GORM's logger,
// and returns the rows it wrote.
func execBuilt(db *gorm.DB, s *gorm.Statement) (int64, error) {
	begin := time.Now()
	var affected int64
	result, err := s.ConnPool.ExecContext(s.Context, s.SQL.String(), s.Vars...)
	if err == nil {
		affected, err = result.RowsAffected()
	}
	db.Logger.Trace(s.Context, begin, func() (string, int64) {
		return db.Dialector.Explain(s.SQL.String(), s.Vars...), affected
	}, err)
	return affected, err
}

// sibling returns a new statement for the same table and connection, with a copy of stmt's clauses.
func sibling(db *gorm.DB) *gorm.Statement {
	stmt := db.Statement
	s := &gorm.Statement{
		DB:        db,
		ConnPool:  stmt.ConnPool,
		Context:   stmt.Context,
		Table:     stmt.Table,
		TableExpr: stmt.TableExpr,
		Schema:    stmt.Schema,
		Unscoped:  stmt.Unscoped,
		Clauses:   make(map[string]clause.Clause, len(stmt.Clauses)),
	}
	for name, c := range stmt.Clauses {
		s.Clauses[name] = c
	}
	return s
}
