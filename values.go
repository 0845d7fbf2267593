package optlock

import (
	"reflect"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// checkWrittenValues refuses the values of a lock-aware update that the plugin would otherwise drop
// without a word: a lock field set by hand (the plugin advances lock fields itself), and a key that
// names no column. Nothing has been written when it runs.
func checkWrittenValues(stmt *gorm.Statement, spec *lockSpec) error {
	if err := checkSetClause(stmt, spec); err != nil {
		return err
	}
	if values, ok := valuesMap(stmt.Dest); ok {
		return checkValuesMap(stmt, spec, values)
	}
	if _, expected := expectationOf(stmt); expected {
		// Under ExpectLocks or ExpectRow (an If-Match) the lock values come from there, whatever the
		// struct (a request body) holds; build leaves the struct's out of SET.
		return nil
	}
	return checkValuesStruct(stmt, spec)
}

// checkSetClause rejects a SET clause the caller gave (Clauses(clause.Set{...})) that assigns a lock
// column: the plugin would drop the assignment and advance the lock itself, silently.
func checkSetClause(stmt *gorm.Statement, spec *lockSpec) error {
	c, ok := stmt.Clauses["SET"]
	if !ok {
		return nil
	}
	set, ok := c.Expression.(clause.Set)
	if !ok {
		return nil
	}
	for _, a := range set {
		for _, lf := range spec.locks {
			if a.Column.Name == lf.field.DBName || a.Column.Name == lf.field.Name {
				return invalidf("a SET clause sets the lock field %q: leave it out, optlock advances it on every write", a.Column.Name)
			}
		}
	}
	return nil
}

// valuesMap returns the map an update writes, given as a map or a pointer to one.
func valuesMap(dest any) (map[string]any, bool) {
	switch values := dest.(type) {
	case map[string]any:
		return values, true
	case *map[string]any:
		if values != nil {
			return *values, true
		}
	}
	return nil, false
}

// checkValuesMap rejects a values map that sets a lock field (to any value: a key is always a request
// to write it), or names something that is not a column of the model: GORM would put an unknown key
// into SET as a column name, and a lock-checked write builds no SQL from unchecked strings; a field
// GORM does not map (gorm:"-"), named by its Go name, it would only assign in memory, writing nothing.
func checkValuesMap(stmt *gorm.Statement, spec *lockSpec, values map[string]any) error {
	s := stmt.Schema
	for name := range values {
		if _, isRelation := s.Relationships.Relations[name]; isRelation {
			continue
		}
		f := s.LookUpField(name)
		switch {
		case f == nil:
			return invalidf("values name %q, which is not a field of model %s: leave it out, or name a column or field of the model", name, s.Name)
		case f.DBName == "":
			return invalidf("values name %q, a field of model %s that is no column (gorm:\"-\"), which GORM would not write: leave it out", name, s.Name)
		}
		for _, lf := range spec.locks {
			if f == lf.field {
				return invalidf("values set the lock field %q: leave it out, optlock advances it on every write", name)
			}
		}
	}
	return nil
}

// checkValuesStruct rejects a struct of values that would set a lock field by hand. A struct always
// carries every field, so it sets a lock field only when GORM would write that field from it (a
// non-zero value, or any value Select names; not a field Omit or Select leaves out, nor an
// autoUpdateTime field, which GORM sets to now itself) with a value other than the one the rows being
// written hold: the row read, a copy of it, or the model itself (Save(&row), Updates(&row)) carries
// the value it was read with, which is what the write is checked against. A write without read rows
// (a guarded model written by a query, or Unchecked without a key) holds no such value: only zero is
// accepted there.
func checkValuesStruct(stmt *gorm.Statement, spec *lockSpec) error {
	values := reflect.ValueOf(stmt.Dest)
	for values.Kind() == reflect.Ptr {
		if values.IsNil() {
			return nil
		}
		values = values.Elem()
	}
	if values.Kind() != reflect.Struct {
		return nil
	}
	var rows []reflect.Value
	if carriesRows(stmt) {
		rows = modelRows(stmt.ReflectValue)
		if stmt.Dest == stmt.Model {
			return nil // the rows read are the values: they carry the values read
		}
	}
	valuesSchema := stmt.Schema
	if values.Type() != stmt.Schema.ModelType {
		// Another type of struct: GORM writes its fields that share a column name with the model's.
		parsed := &gorm.Statement{DB: stmt.DB}
		if err := parsed.Parse(stmt.Dest); err != nil {
			return nil // GORM refuses it itself
		}
		valuesSchema = parsed.Schema
	}
	selected, restricted := stmt.SelectAndOmitColumns(false, true)
	for _, lf := range spec.locks {
		f := valuesSchema.LookUpField(lf.field.DBName)
		if f == nil || f.DBName == "" || !f.Updatable || !stmt.SkipHooks && f.AutoUpdateTime > 0 {
			continue
		}
		named, ok := selected[f.DBName]
		if ok && !named || !ok && restricted {
			continue // left out by Select or Omit
		}
		rv := f.ReflectValueOf(stmt.Context, values)
		if !ok && rv.IsZero() {
			continue // GORM's Updates leaves zero values out
		}
		got := plainLockValue(lf.kind, rv)
		if len(rows) == 0 {
			if !isZeroLockValue(got) {
				return invalidf("values set the lock field %q to %v on a write without read rows: leave it out, optlock advances it on every write", f.Name, got)
			}
			continue
		}
		for _, row := range rows {
			if read := plainLockValue(lf.kind, lf.field.ReflectValueOf(stmt.Context, row)); !equalLockValues(got, read) {
				return invalidf("values set the lock field %q to %v, not to %v as read: leave it out (or as read), optlock advances it on every write", f.Name, got, read)
			}
		}
	}
	return nil
}

// modelRows lists the structs of a struct or slice model; nil elements are left out (the snapshot
// refuses them).
func modelRows(model reflect.Value) []reflect.Value {
	if model.Kind() == reflect.Struct {
		return []reflect.Value{model}
	}
	rows := make([]reflect.Value, 0, model.Len())
	for i := range model.Len() {
		row := model.Index(i)
		for row.Kind() == reflect.Ptr || row.Kind() == reflect.Interface {
			if row.IsNil() {
				break
			}
			row = row.Elem()
		}
		if row.Kind() == reflect.Struct {
			rows = append(rows, row)
		}
	}
	return rows
}

// equalLockValues compares two values of plainLockValue: times as instants.
func equalLockValues(a, b any) bool {
	if ta, ok := a.(time.Time); ok {
		tb, ok := b.(time.Time)
		return ok && ta.Equal(tb)
	}
	return a == b
}
