package optlock

import (
	"reflect"

	"gorm.io/gorm/schema"
)

var (
	deleteClausesType = reflect.TypeOf((*schema.DeleteClausesInterface)(nil)).Elem()
	fieldPointerType  = reflect.TypeOf((*schema.Field)(nil))
)

// isSoftDeleteField reports whether f is how model s marks a row deleted, which can never be a lock:
// a lock field is advanced on every write, and advancing this one deletes the row, or stamps a live
// row as deleted, on every write.
//
// GORM knows a soft delete only by what the field's type provides: a type with DeleteClauses turns
// Delete into an UPDATE of its field (gorm.DeletedAt; gorm.io/plugin/soft_delete's DeletedAt, a plain
// integer underneath, which the plugin cannot name without depending on it). That plugin's flag mode
// also stamps a deletion-time field named in the tag (softDelete:flag,DeletedAtField:DeletedAt), a
// field of any type: it is found as a *schema.Field that one of the model's delete clauses holds.
func isSoftDeleteField(s *schema.Schema, f *schema.Field) bool {
	if reflect.PointerTo(f.IndirectFieldType).Implements(deleteClausesType) {
		return true
	}
	for _, c := range s.DeleteClauses {
		v := reflect.Indirect(reflect.ValueOf(c))
		if v.Kind() != reflect.Struct {
			continue
		}
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() && v.Field(i).Type() == fieldPointerType && v.Field(i).Interface().(*schema.Field) == f {
				return true
			}
		}
	}
	return false
}
