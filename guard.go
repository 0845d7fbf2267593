package optlock

import (
	"fmt"
	"reflect"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/callbacks"
	"gorm.io/gorm/clause"
	"gorm.io/gorm/schema"
)

// Guard registers model's type as guarded: every write of it is lock-aware, with or without
// [WithLock], so no repository method can forget the lock. fields name its lock fields (column or Go
// names); with none, its version field is used, else its updated_at field, as with WithLock.
//
//	db.Use(optlock.New(optlock.Guard(&Account{}), optlock.Guard(&Invoice{}, "revision")))
//
// A write that carries the rows the caller read (Model(&row).Updates, Update, UpdateColumn(s),
// Save(&row), Delete(&row) or Delete(&rows), UpdateSafely) is checked exactly as with WithLock: a stale
// row is refused with an [*OptimisticLockError], and the lock fields advance. A write that carries no
// read rows (Model(&Account{}).Where(...).Updates(...)) cannot be checked, but it always advances the
// lock on every row it touches (version + 1, updated_at to a strictly later value), so no holder of an
// older read can overwrite it. Setting a lock field by hand is refused (see [UpdateSafely] for what
// that is); Save(&row) carries the value read, the one it is checked against, so it never rewinds one;
// Save of a slice, an upsert, is refused. For a deliberate blind write by key, use [Unchecked].
// WithLock on a guarded model may name other lock fields for one statement. Create starts a zero
// version at 1, so a Save of version 0 is always a new row, never a stale copy of a deleted one. A write of the guarded
// table without the model (db.Table("accounts"), or another struct mapped to the table) carries no
// read rows and advances the lock too. Raw SQL (db.Exec, db.Raw) bypasses every guard.
//
// A bad guard (nil, not a pointer to a struct, no such field, no lock field, a soft delete's field)
// makes db.Use return an error wrapping [ErrInvalidLock]. Guards belong to the plugin instance: no global state.
func Guard(model any, fields ...string) Option {
	request := guardRequest{model: model, fields: append([]string(nil), fields...)}
	return func(p *Plugin) { p.guardRequests = append(p.guardRequests, request) }
}

// guardRequest is a Guard option waiting for Initialize, which can check it against a schema.
type guardRequest struct {
	model  any
	fields []string
}

// Unchecked marks a statement as a deliberate blind write, for use with gorm.DB.Scopes: it is not
// checked against any read, but the lock is still advanced on every row it writes, so holders of
// older reads are refused afterwards. It is the one way to write a guarded model without reading it:
//
//	db.Scopes(optlock.Unchecked()).Model(&Account{ID: id}).Update("frozen", true)
//
// The struct passed to Model does not learn the new lock value: re-read it before a checked write.
func Unchecked() func(*gorm.DB) *gorm.DB {
	return func(db *gorm.DB) *gorm.DB {
		if _, ok := db.Config.Plugins[pluginName]; !ok {
			_ = db.AddError(errNotRegistered)
			return db
		}
		tx := db.Set(settingUnchecked, nil)
		tx.Statement.Settings.Store(settingUnchecked, lockRequest{stmt: tx.Statement})
		return tx
	}
}

// registerGuards checks every Guard against the model's schema and records the guarded types.
func (p *Plugin) registerGuards(db *gorm.DB) error {
	guards := make(map[reflect.Type][]string, len(p.guardRequests))
	tables := make(guardedTables, len(p.guardRequests))
	for _, g := range p.guardRequests {
		v := reflect.ValueOf(g.model)
		if g.model == nil || v.Kind() != reflect.Ptr || v.IsNil() || v.Elem().Kind() != reflect.Struct {
			return invalidf("Guard(%T): pass a pointer to a model struct, such as Guard(&Account{})", g.model)
		}
		stmt := &gorm.Statement{DB: db, Context: db.Statement.Context}
		if err := stmt.Parse(g.model); err != nil {
			return fmt.Errorf("%w: Guard(%T): %w", ErrInvalidLock, g.model, err)
		}
		p.resolveMu.Lock()
		locks, err := resolveLockFields(stmt, g.fields, nil)
		p.resolveMu.Unlock()
		if err != nil {
			return fmt.Errorf("Guard(%T): %w", g.model, err)
		}
		guards[stmt.Schema.ModelType] = g.fields
		tables.add(stmt.Schema, g.fields, locks)
	}
	p.guards.Store(&guards)
	p.guardTables.Store(&tables)
	return nil
}

// guardsOf returns the guarded model types, as the latest Initialize registered them.
func (p *Plugin) guardsOf() map[reflect.Type][]string {
	if g := p.guards.Load(); g != nil {
		return *g
	}
	return nil
}

// writeMode is how the plugin treats one statement.
type writeMode int

const (
	notLocked    writeMode = iota
	checked                // lock-checked against the rows the caller read
	blindAdvance           // not checkable (no read rows, or Unchecked): the lock is advanced
)

// lockMode says how the statement is treated and with which lock field names. A guarded model's write
// without read rows is only known once the model's value is set up: carriesRows decides in prepare.
func (p *Plugin) lockMode(db *gorm.DB) ([]string, writeMode, bool) {
	fields, explicit := requested(db)
	var guardFields []string
	guarded := false
	if guards := p.guardsOf(); db.Statement.Schema != nil && len(guards) > 0 {
		guardFields, guarded = guards[db.Statement.Schema.ModelType]
	}
	table, tableWrite := p.tableWrite(db.Statement)
	switch {
	case tableWrite && explicit:
	case tableWrite && table.carriedBy(db.Statement.Schema):
		// Another struct with the lock columns: checked when it carries rows, as the model is.
		guardFields, guarded = table.lockColumns, true
	case tableWrite:
		guardFields = table.fields
	}
	switch {
	case explicit && len(fields) == 0 && guarded:
		return guardFields, checked, false
	case explicit && guarded:
		// WithLock may add lock fields for one statement, never drop the guard's: a write that
		// neither checks nor advances the guarded version lets an older read of it write over it.
		return withGuardLocks(db.Statement.Schema, fields, guardFields), checked, false
	case explicit:
		return fields, checked, false
	case isUnchecked(db):
		return guardFields, blindAdvance, false
	case guarded:
		return guardFields, checked, true
	case tableWrite:
		// A guarded table written without its model: no read rows to check, so advance.
		return guardFields, blindAdvance, false
	}
	return nil, notLocked, false
}

// withGuardLocks returns the fields WithLock named, followed by the guard's lock fields (its default
// one when it names none) that they leave out.
func withGuardLocks(s *schema.Schema, named, guardFields []string) []string {
	if len(guardFields) == 0 {
		for _, name := range defaultLockFields {
			if f := s.LookUpField(name); f != nil && f.DBName != "" {
				guardFields = []string{name}
				break
			}
		}
	}
	all := append([]string(nil), named...)
	for _, g := range guardFields {
		gf := s.LookUpField(g)
		included := false
		for _, n := range named {
			included = included || n == g || gf != nil && s.LookUpField(n) == gf
		}
		if !included {
			all = append(all, g)
		}
	}
	return all
}

// isUnchecked reports whether the statement carries the Unchecked scope.
func isUnchecked(db *gorm.DB) bool {
	v, ok := db.Statement.Settings.Load(settingUnchecked)
	r, isRequest := v.(lockRequest)
	return ok && isRequest && r.stmt == db.Statement
}

// carriesRows reports whether the statement's model holds rows the caller read: a struct whose
// primary key is set, or a non-empty slice.
func carriesRows(stmt *gorm.Statement) bool {
	v := stmt.ReflectValue
	switch v.Kind() {
	case reflect.Struct:
		for _, f := range stmt.Schema.PrimaryFields {
			if _, zero := f.ValueOf(stmt.Context, v); zero {
				return false
			}
		}
		return len(stmt.Schema.PrimaryFields) > 0
	case reflect.Slice, reflect.Array:
		return v.Len() > 0
	}
	return false
}

// buildAdvance sets a write that cannot be checked to advance the lock on every row it touches. The
// statement keeps GORM's own WHERE (the model's key, for an Unchecked write by key).
func (p *Plugin) buildAdvance(db *gorm.DB, st *lockState) {
	stmt := db.Statement
	st.before.save(stmt)
	set, ok := existingSet(stmt)
	if ok {
		set = append(clause.Set(nil), set...)
	} else {
		set = callbacks.ConvertToAssignments(stmt)
		if db.Error != nil {
			return
		}
	}
	set = withoutLockColumns(set, st.spec)
	now := db.NowFunc()
	for _, lf := range st.spec.locks {
		set = append(set, clause.Assignment{Column: clause.Column{Name: lf.field.DBName}, Value: lf.advanceBlind(st.spec.dialect, "", now)})
	}
	setClause(stmt, set)
}

// advanceBlind is the new value of a lock column on a row whose old value the plugin never saw:
// version + 1, or now, but always strictly later than the old value. table qualifies the old value's
// column ("": unqualified), as an upsert's DO UPDATE needs on PostgreSQL.
func (lf lockField) advanceBlind(dialect sqlDialect, table string, now time.Time) clause.Expression {
	col := clause.Column{Table: table, Name: lf.field.DBName}
	switch lf.kind {
	case counterLock:
		if table == "" {
			return lf.increment.Value.(clause.Expression)
		}
		return clause.Expr{SQL: "COALESCE(?, 0) + 1", Vars: []any{col}}
	case unixLock:
		return dialect.advanceUnix(now.UnixNano()/int64(lf.unit), col)
	}
	if lf.wallClock {
		now = time.Date(now.Year(), now.Month(), now.Day(), now.Hour(), now.Minute(), now.Second(), now.Nanosecond(), time.UTC)
	}
	return dialect.advanceTime(lf, now.Truncate(lf.unit), col)
}
