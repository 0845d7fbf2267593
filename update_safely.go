package optlock

import (
	"reflect"

	"gorm.io/gorm"
)

// UpdateSafely writes values to the rows in model, but only if none of them changed since they were
// read. model is a pointer to the struct, or to the slice of structs (or struct pointers), the caller
// read: its primary keys and lock fields are the snapshot the write is checked against. values is
// what gorm.DB.Updates takes: a map[string]any or a struct. The lock fields are those named by
// [WithLock] on db, or the model's version field (else its updated_at field) when db carries none.
//
// values may not set a lock field, here or on any lock-aware write: a map key naming one is refused,
// and so is a struct from which GORM would write a lock field with another value than the rows hold
// (a copy of the row read carries the value read, which is the check, and a zero value is left out as
// GORM leaves it out). Nor may a key name something that is not a column (a gorm:"-" field).
//
// The check and the write are one UPDATE covering all rows, so two writers holding the same snapshot
// can never both succeed. On success result.Error is nil, result.RowsAffected is the number of rows
// written, and every struct in model has its lock fields advanced to what is now stored (version+1, or
// the new updated_at), ready to be written again without a re-read. When any row changed or was deleted
// since it was read, no row is written, even inside the caller's own transaction, the structs are left
// as they were, and result.Error is an [*OptimisticLockError] naming the conflicting keys. Bad input
// gives an error wrapping [ErrInvalidLock] and writes nothing.
//
// An empty slice writes nothing and succeeds.
func UpdateSafely(db *gorm.DB, model any, values any) *gorm.DB {
	if db == nil {
		return &gorm.DB{Config: &gorm.Config{}, Error: invalidf("db is nil: pass the *gorm.DB (or transaction) to write with")}
	}
	tx := db.Model(model)
	if _, ok := db.Config.Plugins[pluginName]; !ok {
		_ = tx.AddError(errNotRegistered)
		return tx
	}
	rows, err := checkModel(model)
	if err == nil {
		err = checkValues(values)
	}
	if err != nil {
		_ = tx.AddError(err)
		return tx
	}
	if rows == 0 {
		return tx
	}
	tx.Statement.Settings.Store(settingSafely, lockRequest{stmt: tx.Statement})
	return tx.Updates(values)
}

// checkModel accepts a non-nil pointer to a struct or to a slice of structs or struct pointers, and
// returns how many rows it holds.
func checkModel(model any) (int, error) {
	if model == nil {
		return 0, invalidf("model is nil: pass a pointer to the struct or slice you read")
	}
	v := reflect.ValueOf(model)
	if v.Kind() != reflect.Ptr {
		return 0, invalidf("model is a %T, not a pointer: pass &rows so the lock fields can be advanced", model)
	}
	if v.IsNil() {
		return 0, invalidf("model is a nil %T: pass a pointer to the struct or slice you read", model)
	}
	elem := v.Elem()
	switch elem.Kind() {
	case reflect.Struct:
		return 1, nil
	case reflect.Slice, reflect.Array:
		t := elem.Type().Elem()
		for t.Kind() == reflect.Ptr {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct {
			return 0, invalidf("model is a %T: pass a pointer to a struct or to a slice of structs", model)
		}
		return elem.Len(), nil
	}
	return 0, invalidf("model is a %T: pass a pointer to a struct or to a slice of structs", model)
}

// checkValues accepts what Updates can write: a map[string]any, or a non-nil struct or struct pointer.
func checkValues(values any) error {
	if values == nil {
		return invalidf("values is nil: pass a map[string]any or a struct of the columns to write")
	}
	if _, ok := values.(map[string]any); ok {
		return nil
	}
	v := reflect.ValueOf(values)
	for v.Kind() == reflect.Ptr {
		if v.IsNil() {
			return invalidf("values is a nil %T: pass a map[string]any or a struct", values)
		}
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return invalidf("values is a %T: pass a map[string]any or a struct", values)
	}
	return nil
}
