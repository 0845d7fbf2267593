package optlock

import (
	"reflect"

	"gorm.io/gorm"
)

// startLocks gives the zero counter lock fields (version) of a guarded model's new rows the value 1
// before GORM inserts them. A row read back then never holds 0, so a Save whose lock values are zero
// is a new row (which Save inserts), never a stale copy of a row another writer deleted in the
// meantime, which it would otherwise re-insert. A value the caller or a BeforeCreate hook set is kept;
// timestamp locks need nothing (GORM sets updated_at on insert).
func (p *Plugin) startLocks(db *gorm.DB) {
	stmt := db.Statement
	if db.Error != nil || stmt.Schema == nil {
		return
	}
	if _, guarded := p.guardsOf()[stmt.Schema.ModelType]; !guarded {
		return
	}
	_, table := splitQualified(stmt.Schema.Table)
	guard, ok := p.guardedTablesOf()[table]
	if !ok || guard.schema.ModelType != stmt.Schema.ModelType {
		return // another guarded model has the table: its lock fields are not this schema's
	}
	selected, restricted := stmt.SelectAndOmitColumns(true, false)
	inserted := func(column string) bool {
		v, named := selected[column]
		return named && v || !named && !restricted
	}
	start := func(row reflect.Value) {
		if !row.CanAddr() {
			return
		}
		for _, lf := range guard.locks {
			if lf.kind != counterLock || !inserted(lf.field.DBName) {
				continue // a column Select or Omit leaves out keeps the table's default: say nothing
			}
			field := lf.field.ReflectValueOf(stmt.Context, row)
			if plainLockValue(lf.kind, field) == int64(0) {
				setLockValue(field, int64(1))
			}
		}
	}
	if stmt.ReflectValue.Kind() == reflect.Struct {
		start(stmt.ReflectValue) // one row: modelRows would allocate a list for it
		return
	}
	for _, row := range modelRows(stmt.ReflectValue) {
		start(row)
	}
}
