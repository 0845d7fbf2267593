package optlock

import (
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
	"gorm.io/gorm/schema"
)

// comparesInSQL reports whether st's conflict query can return only the refused rows.
//
// On SQLite, for the rows the JSON form carries (one integer key, one integer version), the conflict
// query lets SQLite compare and returns only the rows that no longer hold what was read: those found
// changed (or soft-deleted), then the keys not found at all.
//
//	SELECT "t"."id","t"."version",1 FROM "t" JOIN (SELECT CAST(key AS INTEGER) AS optlock_key,
//	  value AS optlock_lock FROM json_each(?)) AS optlock_rows ON "t"."id" = optlock_rows.optlock_key
//	  WHERE COALESCE("t"."version",0) <> optlock_rows.optlock_lock
//	UNION ALL SELECT optlock_key,NULL,0 FROM (SELECT ...json_each(?)) AS optlock_rows
//	  WHERE NOT EXISTS (SELECT 1 FROM "t" WHERE "t"."id" = optlock_rows.optlock_key)
//
// A refused write of N rows usually has a few stale ones: scanning those instead of all N rows (and
// binding one JSON object instead of N keys) keeps the conflict path within twice the write's own cost.
// The comparison is exact: both sides are integers, NULL counts as 0 as in the write.
func (st *lockState) comparesInSQL() bool {
	return lockPredicate{spec: st.spec, values: st.snapshot.values}.usesJSON()
}

// buildChangedRows writes that query on q; the columns are the key, the lock, the soft-delete column
// (when softDelete is set) and whether the row was found.
func buildChangedRows(q *gorm.Statement, st *lockState, softDelete *schema.Field) {
	rows := lockPredicate{spec: st.spec, values: st.snapshot.values}.jsonRows()
	key := clause.Column{Table: clause.CurrentTable, Name: st.spec.keys[0].field.DBName}
	lock := clause.Column{Table: clause.CurrentTable, Name: st.spec.locks[0].field.DBName}
	joined := func() {
		q.WriteString("(SELECT CAST(key AS INTEGER) AS optlock_key,value AS optlock_lock FROM json_each(")
		q.AddVar(q, rows)
		q.WriteString(")) AS " + joinedRowsAlias)
	}
	q.WriteString("SELECT ")
	q.WriteQuoted(key)
	q.WriteByte(',')
	q.WriteQuoted(lock)
	if softDelete != nil {
		q.WriteByte(',')
		q.WriteQuoted(clause.Column{Table: clause.CurrentTable, Name: softDelete.DBName})
	}
	q.WriteString(",1 FROM ")
	q.WriteQuoted(clause.Table{Name: clause.CurrentTable})
	q.WriteString(" JOIN ")
	joined()
	q.WriteString(" ON ")
	q.WriteQuoted(key)
	q.WriteString(" = " + joinedRowsAlias + ".optlock_key WHERE COALESCE(")
	q.WriteQuoted(lock)
	q.WriteString(",0) <> " + joinedRowsAlias + ".optlock_lock")
	if softDelete != nil {
		q.WriteString(" OR ")
		q.WriteQuoted(clause.Column{Table: clause.CurrentTable, Name: softDelete.DBName})
		q.WriteString(" IS NOT NULL")
	}
	q.WriteString(" UNION ALL SELECT optlock_key,NULL")
	if softDelete != nil {
		q.WriteString(",NULL")
	}
	q.WriteString(",0 FROM ")
	joined()
	q.WriteString(" WHERE NOT EXISTS (SELECT 1 FROM ")
	q.WriteQuoted(clause.Table{Name: clause.CurrentTable})
	q.WriteString(" WHERE ")
	q.WriteQuoted(key)
	q.WriteString(" = " + joinedRowsAlias + ".optlock_key)")
}
