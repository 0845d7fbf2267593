package optlock

import (
	"cmp"
	"context"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"time"
)

// snapshot is what the caller read: the rows passed as the model, their keys and lock values, and
// copies of the structs to put back if the write does not happen.
type snapshot struct {
	rows []reflect.Value // addressable structs, in the caller's order
	// values holds, row after row, the key values then the lock values, as the predicate binds them.
	values []any
	// originals are copies of rows taken before GORM or hooks assigned anything to them.
	originals []reflect.Value
	// shared holds, row after row, copies of the values of spec.shared: fields behind a pointer,
	// which copying the struct does not copy.
	shared []reflect.Value
}

// oneRowValues is how many key and lock values oneRow holds: two keys and two locks, or fewer.
const oneRowValues = 4

// oneRow is the room a write of one row needs for its snapshot and its chunk, kept inside the
// lockState so that the state, the snapshot and the chunk are one allocation. It lives as long as the
// state, which finish removes from the statement: nothing of it is kept past the call.
type oneRow struct {
	snap      snapshot
	rows      [1]reflect.Value
	originals [1]reflect.Value
	values    [oneRowValues]any
	chunks    [1]chunk
}

// takeSnapshot reads the rows of a struct or slice model. It refuses a row without a primary key and
// two rows with the same key, which could only be written once. binding is how the write's pool binds
// a time to a timestamp without time zone (wall-clock locks only). The snapshot of one row is taken
// into room (a write of more rows allocates its own).
func takeSnapshot(ctx context.Context, spec *lockSpec, model reflect.Value, binding timeBinding, room *oneRow) (*snapshot, error) {
	rows, err := structRows(model, room.rows[:0])
	if err != nil {
		return nil, err
	}
	width := len(spec.keys) + len(spec.locks)
	var s *snapshot
	if len(rows) == 1 && width <= len(room.values) {
		room.snap = snapshot{rows: rows, values: room.values[:0]}
		s = &room.snap
	} else {
		s = &snapshot{rows: rows, values: make([]any, 0, len(rows)*width)}
	}
	// Rows with one integer key, as read in key order, are told apart by their order alone; the map
	// of keys seen is built only for rows out of that order.
	var seen map[any]int
	ascending := len(spec.keys) == 1 && isIntegerKey(spec.keys[0].field)
	var last int64
	for i, row := range rows {
		start := len(s.values)
		for _, k := range spec.keys {
			v, zero := k.field.ValueOf(ctx, row)
			if zero {
				return nil, invalidf("row %d has a zero primary key %s: lock-checked writes need the rows as read, with their keys", i, k.field.Name)
			}
			s.values = append(s.values, v)
		}
		inOrder := false
		if ascending {
			if key := intOf(s.values[start]); i == 0 || key > last {
				last, inOrder = key, true
			} else {
				ascending = false
			}
		}
		if !inOrder && i > 0 && seen == nil {
			seen = make(map[any]int, len(rows))
			for j := range i {
				seen[rowKey(s.values[j*width:j*width+len(spec.keys)])] = j
			}
		}
		if !inOrder && seen != nil {
			key := rowKey(s.values[start : start+len(spec.keys)])
			if first, dup := seen[key]; dup {
				return nil, invalidf("rows %d and %d have the same primary key %v: pass each row once", first, i, key)
			}
			seen[key] = i
		}
		for _, l := range spec.locks {
			v := plainLockValue(l.kind, l.field.ReflectValueOf(ctx, row))
			if l.wallClock {
				v = binding.storedWallClock(v.(time.Time))
			}
			s.values = append(s.values, v)
		}
		for _, f := range spec.shared {
			s.shared = append(s.shared, copyValue(f.ReflectValueOf(ctx, row)))
		}
	}
	if len(rows) == 1 {
		s.originals = room.originals[:1]
		s.originals[0] = copyValue(rows[0])
	} else {
		s.originals = copyRows(rows)
	}
	return s, nil
}

// copyValue copies v, and the value a non-nil pointer points to rather than the pointer.
func copyValue(v reflect.Value) reflect.Value {
	if v.Kind() == reflect.Ptr {
		if v.IsNil() {
			return reflect.Zero(v.Type())
		}
		v = v.Elem()
	}
	c := reflect.New(v.Type()).Elem()
	c.Set(v)
	return c
}

// structRows lists the addressable structs of a struct or slice value; a struct's is one, appended to
// one (which has room for it).
func structRows(model reflect.Value, one []reflect.Value) ([]reflect.Value, error) {
	switch model.Kind() {
	case reflect.Struct:
		if !model.CanAddr() {
			return nil, invalidf("model is not addressable: pass a pointer to the struct you read")
		}
		return append(one, model), nil
	case reflect.Slice, reflect.Array:
		rows := make([]reflect.Value, model.Len())
		for i := range rows {
			row := model.Index(i)
			for row.Kind() == reflect.Ptr || row.Kind() == reflect.Interface {
				if row.IsNil() {
					return nil, invalidf("row %d of the model is nil", i)
				}
				row = row.Elem()
			}
			if row.Kind() != reflect.Struct || !row.CanAddr() {
				return nil, invalidf("row %d of the model is a %s, not a struct", i, row.Type())
			}
			if i > 0 && row.Type() != rows[0].Type() {
				return nil, invalidf("row %d of the model is a %s, row 0 a %s: pass rows of one type", i, row.Type(), rows[0].Type())
			}
			rows[i] = row
		}
		return rows, nil
	}
	return nil, invalidf("model is a %s: pass a pointer to a struct or to a slice of structs", model.Type())
}

// rowKey makes a map key of a row's primary key: the value itself for one comparable column.
func rowKey(key []any) any {
	if len(key) == 1 && key[0] != nil && reflect.TypeOf(key[0]).Comparable() {
		return key[0]
	}
	return fmt.Sprintf("%#v", key)
}

func copyRows(rows []reflect.Value) []reflect.Value {
	copies := make([]reflect.Value, len(rows))
	if len(rows) == 0 {
		return copies
	}
	backing := reflect.MakeSlice(reflect.SliceOf(rows[0].Type()), len(rows), len(rows))
	for i, row := range rows {
		copies[i] = backing.Index(i)
		copies[i].Set(row)
	}
	return copies
}

// restore puts every row back as it was when the snapshot was taken, fields behind pointers included.
func (s *snapshot) restore(ctx context.Context, spec *lockSpec) {
	for i, row := range s.rows {
		row.Set(s.originals[i])
		for j, f := range spec.shared {
			saved := s.shared[i*len(spec.shared)+j]
			target := f.ReflectValueOf(ctx, row)
			switch {
			case target.Kind() != reflect.Ptr:
				target.Set(saved)
			case saved.Kind() == reflect.Ptr: // it was nil
				target.Set(saved)
			case target.IsNil():
				target.Set(reflect.New(saved.Type()))
				fallthrough
			default:
				target.Elem().Set(saved)
			}
		}
	}
}

// key returns row i's primary key as ConflictIDs reports it.
func (s *snapshot) key(spec *lockSpec, i int) any {
	width := len(spec.keys) + len(spec.locks)
	if len(spec.keys) == 1 {
		return s.values[i*width]
	}
	return append([]any(nil), s.values[i*width:i*width+len(spec.keys)]...)
}

// mapKey returns row i's primary key as rowKey makes it, for matching rows read back.
func (s *snapshot) mapKey(spec *lockSpec, i int) any {
	width := len(spec.keys) + len(spec.locks)
	return rowKey(s.values[i*width : i*width+len(spec.keys)])
}

// lockValue returns row i's snapshot value of lock field j.
func (s *snapshot) lockValue(spec *lockSpec, i, j int) any {
	width := len(spec.keys) + len(spec.locks)
	return s.values[i*width+len(spec.keys)+j]
}

// nextValue returns the value lock field j takes on every row, or nil for a counter, which each row
// advances on its own (version + 1). A timestamp moves to now at the column's precision, and always
// strictly past the latest value any row might hold, so a write within one clock tick still changes it.
func (s *snapshot) nextValue(spec *lockSpec, j int, now time.Time) any {
	lf := spec.locks[j]
	switch lf.kind {
	case timeLock:
		if lf.wallClock {
			// The column stores a wall clock, which reads back as UTC: now's wall clock, as UTC.
			now = time.Date(now.Year(), now.Month(), now.Day(), now.Hour(), now.Minute(), now.Second(), now.Nanosecond(), time.UTC)
		}
		next := now.Truncate(lf.unit)
		for i := range s.rows {
			old := s.lockValue(spec, i, j).(time.Time)
			// What is stored may be the snapshot rounded up to the column's precision.
			stored := old.Truncate(lf.unit)
			if !stored.Equal(old) {
				stored = stored.Add(lf.unit)
			}
			if next.Before(stored.Add(lf.step)) {
				next = stored.Add(lf.step).In(now.Location())
			}
		}
		return next
	case unixLock:
		next := now.UnixNano() / int64(lf.unit)
		for i := range s.rows {
			if old := reflect.ValueOf(s.lockValue(spec, i, j)); asInt64(old) >= next {
				next = asInt64(old) + 1
			}
		}
		return next
	}
	return nil
}

// advance sets every row's lock fields to what the write stores.
func (s *snapshot) advance(ctx context.Context, spec *lockSpec, next []any) {
	for i, row := range s.rows {
		for j, lf := range spec.locks {
			var value any
			if lf.kind == counterLock {
				value = s.lockValue(spec, i, j).(int64) + 1
			} else {
				value = next[j]
			}
			setLockValue(lf.field.ReflectValueOf(ctx, row), value)
		}
	}
}

// intOf returns an integer value held in an interface, without reflection for the common types.
func intOf(v any) int64 {
	switch x := v.(type) {
	case int64:
		return x
	case uint:
		return int64(x)
	case int:
		return int64(x)
	case uint64:
		return int64(x)
	case int32:
		return int64(x)
	case uint32:
		return int64(x)
	}
	return asInt64(reflect.ValueOf(v))
}

func asInt64(v reflect.Value) int64 {
	if v.CanInt() {
		return v.Int()
	}
	return int64(v.Uint())
}

// sortedByKey returns a copy of values with the rows in primary-key order.
func (s *snapshot) sortedByKey(spec *lockSpec) []any {
	w := len(spec.keys) + len(spec.locks)
	sorted := make([]any, 0, len(s.values))
	for _, i := range s.keyOrder(spec) {
		sorted = append(sorted, s.values[i*w:(i+1)*w]...)
	}
	return sorted
}

// keyOrder returns the row indices in primary-key order.
func (s *snapshot) keyOrder(spec *lockSpec) []int {
	w, k := len(spec.keys)+len(spec.locks), len(spec.keys)
	order := make([]int, len(s.rows))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool {
		ka, kb := s.values[order[a]*w:order[a]*w+k], s.values[order[b]*w:order[b]*w+k]
		for i := range ka {
			if c := compareKeys(ka[i], kb[i]); c != 0 {
				return c < 0
			}
		}
		return false
	})
	return order
}

// compareKeys orders two key values of one column: numbers, strings and times by value, anything else
// by its printed form (a stable order is all that is needed).
func compareKeys(a, b any) int {
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	switch {
	case va.CanInt() && vb.CanInt():
		return cmp.Compare(va.Int(), vb.Int())
	case va.CanUint() && vb.CanUint():
		return cmp.Compare(va.Uint(), vb.Uint())
	case va.Kind() == reflect.String && vb.Kind() == reflect.String:
		return strings.Compare(va.String(), vb.String())
	}
	if ta, ok := a.(time.Time); ok {
		if tb, ok := b.(time.Time); ok {
			return ta.Compare(tb)
		}
	}
	return strings.Compare(fmt.Sprint(a), fmt.Sprint(b))
}

// wallClockAsUTC returns t's wall clock, in its own location, labelled UTC. A PostgreSQL timestamp
// without time zone stores a wall clock: a value the driver read shows the stored one (pgx reads the
// column labelled with the session's TimeZone, as GORM's driver sets it up, or UTC). pgx binds a
// time.Time by that wall clock over the extended protocol, but as a UTC instant over the simple
// protocol (PgBouncer's), which for any other label is a different wall clock: labelled UTC, the two
// are the same, so a value as read is bound, and compared, by the wall clock it shows on every
// protocol (binding.go tells a value as read from one the driver was given).
func wallClockAsUTC(t time.Time) time.Time {
	if t.IsZero() || t.Location() == time.UTC {
		return t
	}
	return time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), time.UTC)
}
