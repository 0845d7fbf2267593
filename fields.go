package optlock

import (
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
	"gorm.io/gorm/schema"
)

// lockKind says how a lock field advances on every write.
type lockKind int

const (
	// counterLock is an integer version: SET v = v + 1.
	counterLock lockKind = iota
	// timeLock is a time.Time column such as updated_at: SET t = a time strictly later than the old one.
	timeLock
	// unixLock is an integer column with GORM's autoUpdateTime (seconds, milli or nanoseconds).
	unixLock
)

// lockField is a lock column resolved against a model's schema, with what the dialect needs to
// compare and advance it exactly.
type lockField struct {
	field *schema.Field
	kind  lockKind
	// unit is the column's resolution: the step by which a timeLock or unixLock must at least advance.
	unit time.Duration
	// increment is the assignment "col = col + 1" of a counterLock, built once.
	increment clause.Assignment
	// castType, when set, wraps the snapshot value in CAST(? AS castType) so the database converts
	// it exactly as it converted the value when it stored it (rounding or truncating extra digits).
	castType string
	// step is the least a timeLock advances by on a write: unit, or 1 ms where values are compared
	// with julianday().
	step time.Duration
	// wallClock marks a column without a time zone (PostgreSQL timestamp), which stores a wall clock:
	// the snapshot is bound by the wall clock the column holds (timeBinding.storedWallClock), and now
	// is taken as a wall clock too.
	wallClock bool
	// julian compares the column as an instant with julianday() (SQLite, which stores text).
	julian bool
}

// keyField is a primary-key column, with the type a PostgreSQL VALUES list casts it to.
type keyField struct {
	field    *schema.Field
	castType string
	// rowCast is the cast its value needs in every row of a derived table: BINARY for a MySQL binary
	// string column (sqlDialect.binaryCast).
	rowCast string
}

// lockSpec is everything the plugin needs to lock-check one model: resolved once and cached.
type lockSpec struct {
	// dialect writes the forms of the statement's database.
	dialect sqlDialect
	keys    []keyField
	locks   []lockField
	// shared lists the column fields GORM reaches through a pointer (see behindPointer).
	shared []*schema.Field
	// stored are the table's column types as the database has them (storedColumns); nil when they
	// could not be read.
	stored *tableColumns
	// columns holds the key columns then the lock columns, each a clause.Column already in an
	// interface: WriteQuoted takes an interface, and boxing the column on every write would allocate.
	columns []any
}

// quotedColumn returns column i of a row (keys first, then lock fields) for WriteQuoted.
func (s *lockSpec) quotedColumn(i int) any { return s.columns[i] }

// hasWallClock reports whether a lock column stores a wall clock (a PostgreSQL timestamp without time
// zone), whose snapshot needs to know how the pool binds a time.
func (s *lockSpec) hasWallClock() bool {
	for _, lf := range s.locks {
		if lf.wallClock {
			return true
		}
	}
	return false
}

// fieldCacheKey identifies one resolution of lock fields.
type fieldCacheKey struct {
	schema  *schema.Schema
	dialect string
	fields  string
	table   tableKey
}

// defaultLockFields are tried in order when WithLock names no field: column names first, then the Go
// names, so a Version field renamed with gorm:"column:lock_version" is still found.
var defaultLockFields = []string{"version", "Version", "updated_at", "UpdatedAt"}

// validFieldName accepts column and Go field names; anything else is rejected before lookup so the
// error can say the name is malformed rather than merely unknown.
var validFieldName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// precisionInType finds the fractional-second precision in a column type such as "datetime(3)".
var precisionInType = regexp.MustCompile(`\((\d)\)`)

var timeType = reflect.TypeOf(time.Time{})

// lockSpec resolves the requested names (or the defaults) for the statement's model, once per model,
// dialect, name list and table (schema included). The key and column types come from the table as
// the database has it, for every model: a cast or comparison built from the type GORM would create
// fails or misjudges on a table made by hand (a uuid or char(n) key, a coarser timestamp).
func (p *Plugin) lockSpec(stmt *gorm.Statement, names []string) (*lockSpec, error) {
	key := fieldCacheKey{schema: stmt.Schema, dialect: stmt.Dialector.Name(), fields: strings.Join(names, "\x00"), table: tableOf(stmt)}
	if cached, ok := p.specs.get(key); ok {
		return cached, nil
	}
	// The table's column types are read before taking the mutex: a query made while holding it could
	// wait for a connection that a goroutine waiting for the mutex holds.
	d, ok := dialectNamed(key.dialect)
	if !ok {
		return nil, checkDialect(key.dialect)
	}
	columns := storedColumns(p, stmt)
	// Resolving is rare, and MySQL's DataTypeOf writes to the shared schema field: do it one at a time.
	p.resolveMu.Lock()
	defer p.resolveMu.Unlock()
	locks, err := resolveLockFields(stmt, names, columns)
	if err != nil {
		return nil, err
	}
	spec := &lockSpec{dialect: d, locks: locks, shared: behindPointer(stmt.Schema), stored: columns}
	for _, f := range stmt.Schema.PrimaryFields {
		if f.Serializer != nil {
			// GORM hands such a key over wrapped; the keys the conflict query reads back could not be
			// matched with it, and a conflict would name the wrong rows.
			return nil, invalidf("primary key %s of model %s has a GORM serializer: lock-checked writes need keys stored as they are in Go", f.Name, stmt.Schema.Name)
		}
		cast, err := d.castType(stmt, f, columns)
		if err != nil {
			return nil, err
		}
		stored, _ := columns.column(f.DBName)
		spec.keys = append(spec.keys, keyField{field: f, castType: cast, rowCast: d.binaryCast(stored, f)})
	}
	for i := range spec.locks {
		if spec.locks[i].castType == "" {
			if spec.locks[i].castType, err = d.castType(stmt, spec.locks[i].field, columns); err != nil {
				return nil, err
			}
		}
	}
	for _, k := range spec.keys {
		spec.columns = append(spec.columns, clause.Column{Name: k.field.DBName})
	}
	for _, l := range spec.locks {
		spec.columns = append(spec.columns, clause.Column{Name: l.field.DBName})
	}
	if columns == nil && d.columnReader() != nil {
		return spec, nil // not cached: the types are read again on the next write
	}
	return p.specs.add(key, spec, maxCachedSpecs), nil
}

// resolveLockFields resolves names (or the defaults) against the schema; columns are the table's
// column types as stored, which timestamp locks need.
func resolveLockFields(stmt *gorm.Statement, names []string, columns *tableColumns) ([]lockField, error) {
	s := stmt.Schema
	if len(s.PrimaryFields) == 0 {
		return nil, invalidf("model %s has no primary key: optimistic locking needs one to name each row", s.Name)
	}
	if len(names) == 0 {
		for _, name := range defaultLockFields {
			if f := s.LookUpField(name); f != nil && f.DBName != "" {
				lf, err := newLockField(stmt, f, columns)
				if err != nil {
					return nil, err
				}
				return []lockField{lf}, nil
			}
		}
		return nil, invalidf("model %s has no lock field: add an integer Version or a time.Time UpdatedAt field, or name one with optlock.WithLock(\"column\")", s.Name)
	}

	fields := make([]lockField, 0, len(names))
	seen := make(map[*schema.Field]bool, len(names))
	for _, name := range names {
		switch {
		case name == "":
			return nil, invalidf("empty lock field name for model %s: pass a column such as \"version\"", s.Name)
		case !validFieldName.MatchString(name):
			return nil, invalidf("malformed lock field name %q for model %s: use a column or Go field name", name, s.Name)
		}
		f := s.LookUpField(name)
		if f == nil || f.DBName == "" {
			return nil, invalidf("unknown lock field %q: model %s has no such column or field", name, s.Name)
		}
		if seen[f] {
			return nil, invalidf("lock field %q named twice for model %s", name, s.Name)
		}
		seen[f] = true
		lf, err := newLockField(stmt, f, columns)
		if err != nil {
			return nil, err
		}
		fields = append(fields, lf)
	}
	return fields, nil
}

// newLockField checks that f can be a lock field, and works out how it advances.
func newLockField(stmt *gorm.Statement, f *schema.Field, columns *tableColumns) (lockField, error) {
	if f.PrimaryKey {
		return lockField{}, invalidf("lock field %q of model %s is its primary key: use a version or updated_at column", f.Name, stmt.Schema.Name)
	}
	if isSoftDeleteField(stmt.Schema, f) {
		return lockField{}, invalidf("lock field %q of model %s belongs to its soft delete: a lock advances on every write, and advancing this field deletes the row; use a version or updated_at column", f.Name, stmt.Schema.Name)
	}
	counter, timestamp := lockValueKind(f.FieldType)
	switch {
	case counter:
		switch f.AutoUpdateTime {
		case schema.UnixSecond:
			return lockField{field: f, kind: unixLock, unit: time.Second}, nil
		case schema.UnixMillisecond:
			return lockField{field: f, kind: unixLock, unit: time.Millisecond}, nil
		case schema.UnixNanosecond:
			return lockField{field: f, kind: unixLock, unit: time.Nanosecond}, nil
		}
		// COALESCE: a NULL version (a column added to a table that had rows) advances to 1, as 0 would.
		col := clause.Column{Name: f.DBName}
		return lockField{field: f, kind: counterLock, increment: clause.Assignment{Column: col, Value: incremented{column: col}}}, nil
	case timestamp:
		return newTimeLockField(stmt, f, columns), nil
	}
	return lockField{}, invalidf("lock field %q of model %s has type %s: use an integer version or a time.Time (nullable types such as sql.NullInt64, *int64 and sql.NullTime are fine)", f.Name, stmt.Schema.Name, f.FieldType)
}

// newTimeLockField works out the column's precision and how to compare a snapshot with what is stored,
// from the column as the database has it (columns, from storedColumns) or else as GORM would create it.
//
// PostgreSQL and MySQL convert a bound value to the column type when they store it (PostgreSQL rounds
// to microseconds or the column's precision; MySQL rounds and MariaDB truncates extra digits), so the
// snapshot is cast to that same type and the server converts it the same way: a row just made by
// Create, whose in-memory time has nanoseconds, then matches what was stored. A PostgreSQL timestamp
// without time zone stores a wall clock, which pgx reads back as UTC: such a lock works in wall-clock
// time throughout. SQLite keeps whatever text the driver or SQL wrote (with or without an offset or
// fraction), so it compares instants with julianday(), which tells apart values 1 ms apart; a write
// therefore moves the timestamp on by at least 1 ms, keeping the clock's nanoseconds.
func newTimeLockField(stmt *gorm.Statement, f *schema.Field, columns *tableColumns) lockField {
	columnType := strings.ToLower(stmt.Dialector.DataTypeOf(f))
	digits := -1
	if m := precisionInType.FindStringSubmatch(columnType); m != nil {
		digits, _ = strconv.Atoi(m[1])
	} else if f.Precision > 0 {
		digits = f.Precision
	}
	typeName := strings.TrimSpace(columnType)
	if i := strings.IndexByte(typeName, '('); i >= 0 {
		typeName = typeName[:i]
	}
	if stored, ok := columns.column(f.DBName); ok {
		typeName, digits = stored.typeName, stored.precision
	}
	lf := lockField{field: f, kind: timeLock}
	if d, ok := dialectNamed(stmt.Dialector.Name()); ok {
		digits = d.timeLock(&lf, typeName, digits)
	} else if digits < 0 {
		digits = 9
	}
	lf.unit = time.Duration(pow10(9 - digits))
	lf.step = lf.unit
	if lf.julian {
		lf.step = time.Millisecond
	}
	return lf
}

func pow10(n int) int64 {
	v := int64(1)
	for range n {
		v *= 10
	}
	return v
}

// incremented is the value "COALESCE(col, 0) + 1" of a counter lock, as
// clause.Expr{SQL: "COALESCE(?, 0) + 1", Vars: []any{col}} writes it, without the allocation GORM's
// Expr.Build makes for each of its variables.
type incremented struct{ column any }

// Build implements clause.Expression.
func (e incremented) Build(b clause.Builder) {
	b.WriteString("COALESCE(")
	b.WriteQuoted(e.column)
	b.WriteString(", 0) + 1")
}
