package optlock

import (
	"reflect"
	"strings"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// lockReads adds FOR UPDATE to a read in an attempt that locks its reads (RetryLockAfter), when the
// lock is both useful and valid SQL: inside a transaction (in autocommit the lock would end with the
// read), on a database with row locks, and a plain read of rows of a model the plugin can lock-check.
// Anything else is left as it is: an unlocked read stays correct, its write is still checked. Every
// read pays one context lookup; only a marked read pays for the rest.
func (p *Plugin) lockReads(db *gorm.DB) {
	stmt := db.Statement
	// A sub-query (a *gorm.DB passed as a value) is built by running the query callbacks on it in a
	// dry run: it must not lock inside a statement that is not locked itself (a Count, an UPDATE, a
	// read of another model). A dry run of the caller's own runs nothing, so it needs no lock either.
	if !LocksReads(stmt.Context) || db.Error != nil || db.DryRun {
		return
	}
	if d, ok := dialectNamed(db.Dialector.Name()); !ok || !d.rowLocks() || !inCallersTransaction(db) {
		return
	}
	if isPlainRowRead(stmt) && p.hasLockField(db) {
		stmt.AddClause(clause.Locking{Strength: clause.LockingStrengthUpdate})
	}
}

// isPlainRowRead reports whether stmt selects rows of its model into that model's structs, in SQL
// FOR UPDATE may follow: not raw SQL, not a Count or Pluck (their Dest is a number or a column), no
// locking clause already, and nothing PostgreSQL refuses to lock (DISTINCT, GROUP BY, an aggregate
// or any expression in Select, the nullable side of an outer join, a subquery or a FROM clause of the
// caller's).
func isPlainRowRead(stmt *gorm.Statement) bool {
	if stmt.SQL.Len() > 0 || stmt.Schema == nil || !holdsModelRows(stmt) {
		return false
	}
	if _, locked := stmt.Clauses["FOR"]; locked {
		return false
	}
	if _, grouped := stmt.Clauses["GROUP BY"]; grouped || stmt.Distinct || len(stmt.Joins) > 0 {
		return false
	}
	if _, from := stmt.Clauses["FROM"]; from {
		return false
	}
	if t := stmt.TableExpr; t != nil && (len(t.Vars) > 0 || strings.ContainsAny(t.SQL, " (")) {
		return false
	}
	if c, ok := stmt.Clauses["SELECT"]; ok && c.Expression != nil {
		return false // Select with arguments: an expression of the caller's
	}
	for _, names := range stmt.Selects {
		for _, name := range strings.Split(names, ",") {
			if stmt.Schema.LookUpField(strings.TrimSpace(name)) == nil {
				return false
			}
		}
	}
	return true
}

// holdsModelRows reports whether the statement's destination is a struct, or a slice or array of
// structs (or of pointers to them), of the statement's model type.
func holdsModelRows(stmt *gorm.Statement) bool {
	v := stmt.ReflectValue
	if !v.IsValid() {
		return false
	}
	t := v.Type()
	if k := t.Kind(); k == reflect.Slice || k == reflect.Array {
		t = t.Elem()
		if t.Kind() == reflect.Ptr {
			t = t.Elem()
		}
	}
	return t == stmt.Schema.ModelType
}

// hasLockField reports whether the statement's model has a lock field the plugin knows: it is guarded,
// the read carries WithLock, or it has one of the default lock fields.
func (p *Plugin) hasLockField(db *gorm.DB) bool {
	if _, ok := requested(db); ok {
		return true
	}
	s := db.Statement.Schema
	if _, guarded := p.guardsOf()[s.ModelType]; guarded {
		return true
	}
	for _, name := range defaultLockFields {
		if f := s.LookUpField(name); f != nil && f.DBName != "" {
			return true
		}
	}
	return false
}
