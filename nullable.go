package optlock

import (
	"database/sql"
	"reflect"
	"time"

	"gorm.io/gorm/schema"
)

// Lock fields may be nullable: a version column added to a table that already had rows is NULL until
// written, and models written for gorm.io/plugin/optimisticlock use its Version type, a sql.NullInt64.
// The plugin reads every lock value as a plain int64 or time.Time, NULL as the zero value, so a NULL
// is checked and advanced exactly like the zero value the caller read.
var (
	nullInt64Type = reflect.TypeOf(sql.NullInt64{})
	nullInt32Type = reflect.TypeOf(sql.NullInt32{})
	nullInt16Type = reflect.TypeOf(sql.NullInt16{})
	nullTimeType  = reflect.TypeOf(sql.NullTime{})
)

// lockValueKind says whether a field type can hold a counter (an integer, nullable or not) or a
// timestamp (time.Time, nullable or not), and is neither otherwise.
func lockValueKind(t reflect.Type) (counter, timestamp bool) {
	for t.Kind() == reflect.Ptr {
		t = t.Elem()
	}
	switch {
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Uint64 && t.Kind() != reflect.Uintptr:
		return true, false
	case t == timeType || t.ConvertibleTo(nullTimeType):
		return false, true
	case t.ConvertibleTo(nullInt64Type) || t.ConvertibleTo(nullInt32Type) || t.ConvertibleTo(nullInt16Type):
		return true, false
	}
	return false, false
}

// plainLockValue returns a lock field's value as an int64 (counters, unix times) or a time.Time,
// NULL or a nil pointer as the zero value.
func plainLockValue(kind lockKind, v reflect.Value) any {
	for v.Kind() == reflect.Ptr || v.Kind() == reflect.Interface {
		if v.IsNil() {
			v = reflect.Value{}
			break
		}
		v = v.Elem()
	}
	if kind == timeLock {
		switch {
		case !v.IsValid():
		case v.Type() == timeType:
			return v.Interface().(time.Time)
		case v.Type().ConvertibleTo(nullTimeType):
			if n := v.Convert(nullTimeType).Interface().(sql.NullTime); n.Valid {
				return n.Time
			}
		}
		return time.Time{}
	}
	switch {
	case !v.IsValid():
	case v.CanInt():
		return v.Int()
	case v.CanUint():
		return int64(v.Uint())
	case v.Type().ConvertibleTo(nullInt64Type):
		if n := v.Convert(nullInt64Type).Interface().(sql.NullInt64); n.Valid {
			return n.Int64
		}
	case v.Type().ConvertibleTo(nullInt32Type):
		if n := v.Convert(nullInt32Type).Interface().(sql.NullInt32); n.Valid {
			return int64(n.Int32)
		}
	case v.Type().ConvertibleTo(nullInt16Type):
		if n := v.Convert(nullInt16Type).Interface().(sql.NullInt16); n.Valid {
			return int64(n.Int16)
		}
	}
	return int64(0)
}

// setLockValue stores an int64 or a time.Time into a lock field of any accepted type, allocating a
// nil pointer and marking a nullable type valid.
func setLockValue(target reflect.Value, value any) {
	for target.Kind() == reflect.Ptr {
		if target.IsNil() {
			target.Set(reflect.New(target.Type().Elem()))
		}
		target = target.Elem()
	}
	switch v := value.(type) {
	case int64:
		switch t := target.Type(); {
		case target.CanInt():
			target.SetInt(v)
		case target.CanUint():
			target.SetUint(uint64(v))
		case t.ConvertibleTo(nullInt64Type):
			target.Set(reflect.ValueOf(sql.NullInt64{Int64: v, Valid: true}).Convert(t))
		case t.ConvertibleTo(nullInt32Type):
			target.Set(reflect.ValueOf(sql.NullInt32{Int32: int32(v), Valid: true}).Convert(t))
		case t.ConvertibleTo(nullInt16Type):
			target.Set(reflect.ValueOf(sql.NullInt16{Int16: int16(v), Valid: true}).Convert(t))
		}
	case time.Time:
		if t := target.Type(); t == timeType {
			target.Set(reflect.ValueOf(v))
		} else if t.ConvertibleTo(nullTimeType) {
			target.Set(reflect.ValueOf(sql.NullTime{Time: v, Valid: true}).Convert(t))
		}
	}
}

// isZeroLockValue reports a snapshot value that may be stored as NULL.
func isZeroLockValue(v any) bool {
	switch x := v.(type) {
	case int64:
		return x == 0
	case time.Time:
		return x.IsZero()
	}
	return false
}

// behindPointer lists the column fields GORM reaches through a pointer: a *T field, or any field of an
// embedded *struct. GORM assigns them in place, into memory that a copy of the struct shares, so a
// refused write must put their values back one by one, not by copying the struct.
func behindPointer(s *schema.Schema) []*schema.Field {
	var fields []*schema.Field
	for _, f := range s.Fields {
		if f.DBName == "" {
			continue
		}
		shared := f.FieldType.Kind() == reflect.Ptr
		for _, i := range f.StructField.Index {
			shared = shared || i < 0 // GORM's mark for a field of an embedded pointer
		}
		if shared {
			fields = append(fields, f)
		}
	}
	return fields
}
