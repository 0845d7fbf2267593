package optlock

import (
	"strings"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
	"gorm.io/gorm/schema"
)

// guardedTable is a guarded model's table, as writes that name it without the model find it.
type guardedTable struct {
	schema *schema.Schema
	fields []string // the guard's lock field names (none: the default)
	// locks are the guard's lock fields, resolved on the model's schema (without the catalog), and
	// lockColumns their columns.
	locks       []lockField
	lockColumns []string
	// qualifier is the schema (PostgreSQL) or database (MySQL) the model's TableName names, or "".
	qualifier string
}

// guardedTables maps each guarded model's bare table name to its guard.
type guardedTables map[string]guardedTable

// add records the table of a guarded model; the first guard of a table wins.
func (g guardedTables) add(s *schema.Schema, fields []string, locks []lockField) {
	qualifier, table := splitQualified(s.Table)
	if _, taken := g[table]; !taken {
		t := guardedTable{schema: s, fields: fields, qualifier: qualifier, locks: locks}
		for _, lf := range locks {
			t.lockColumns = append(t.lockColumns, lf.field.DBName)
		}
		g[table] = t
	}
}

// carriedBy reports whether a struct of schema s has every lock column of the guard: such a struct,
// another one mapped to the guarded table, carries the lock values it read, and is checked by them as
// the guarded model is.
func (t guardedTable) carriedBy(s *schema.Schema) bool {
	if s == nil {
		return false
	}
	for _, column := range t.lockColumns {
		if f := s.LookUpField(column); f == nil || f.DBName != column {
			return false
		}
	}
	return true
}

// splitQualified splits "schema.table" into its parts ("", table when unqualified).
func splitQualified(name string) (qualifier, table string) {
	if i := strings.LastIndexByte(name, '.'); i >= 0 {
		return name[:i], name[i+1:]
	}
	return "", name
}

// guardedTablesOf returns the guarded tables, as the latest Initialize registered them.
func (p *Plugin) guardedTablesOf() guardedTables {
	if g := p.guardTables.Load(); g != nil {
		return *g
	}
	return nil
}

// tableWrite returns the guard of the table the statement writes when the statement does not write
// it as the guarded model: no model at all, or a model of another type.
//
// A guard is keyed by its model's type, but GORM can write a guarded table without that type:
// db.Table("accounts").Where(...).Updates(map[string]any{...}) has no schema at all, and a second
// struct mapped to the same table (an AccountSummary whose TableName is "accounts") has a schema the
// guard does not know. A struct that has the guard's lock columns carries the values it read and is
// checked by them, as the model is (guardOf). Any other such write carries no rows the caller read, so
// it is treated as a guarded model's write by a query: it advances the guard's lock on every row it
// touches, and values that set a lock column, or name no field of the guarded model, are refused. Raw
// SQL (db.Exec, db.Raw) is not a GORM write and bypasses every guard.
func (p *Plugin) tableWrite(stmt *gorm.Statement) (guardedTable, bool) {
	tables := p.guardedTablesOf()
	if len(tables) == 0 || stmt.Schema != nil && isGuarded(p, stmt) {
		return guardedTable{}, false
	}
	qualifier, table := writtenTable(stmt)
	t, ok := tables[table]
	if !ok || t.qualifier != "" && qualifier != "" && t.qualifier != qualifier {
		return guardedTable{}, false
	}
	if qualifier != "" && t.qualifier == "" && !t.hasLockColumns(p, stmt) {
		// An unqualified guard's table named in another schema (or database) may be the same table
		// (a tenant's schema) or another one with the same name: guarded only if it has the lock.
		return guardedTable{}, false
	}
	return t, true
}

// hasLockColumns reports whether the table the statement names has every lock column of the guard,
// as the database's catalog says (read once per table, columns.go); true when it cannot be read.
func (t guardedTable) hasLockColumns(p *Plugin, stmt *gorm.Statement) bool {
	columns := storedColumns(p, t.asGuardedModel(stmt))
	if columns == nil {
		return true
	}
	for _, name := range t.lockColumns {
		if _, ok := columns.column(name); !ok {
			return false
		}
	}
	return true
}

// writtenTable returns the table a statement writes, and its qualifier if it names one. GORM leaves
// the alias in Statement.Table when Table is given one (Table("accounts AS a")): the table is then the
// first word of Statement.TableExpr, unquoted.
func writtenTable(stmt *gorm.Statement) (qualifier, table string) {
	if e := stmt.TableExpr; e != nil && len(e.Vars) == 0 {
		if words := strings.Fields(e.SQL); len(words) > 0 {
			return splitQualified(strings.NewReplacer("`", "", `"`, "").Replace(words[0]))
		}
	}
	if stmt.Table != "" {
		return splitQualified(stmt.Table)
	}
	if stmt.Schema != nil {
		return splitQualified(stmt.Schema.Table)
	}
	return "", ""
}

// guardOf returns, for a statement that writes a guarded table, the statement its lock is resolved on
// and the lock field names: the statement itself for the guarded model, or for another struct mapped
// to the table that has the lock columns (its rows are checked by them); else, for a write by table
// name or through a struct without the lock columns, a statement that sees the table as the guarded
// model, which only its values (a map) are checked against. It reports false for a table no guard
// covers.
func (p *Plugin) guardOf(stmt *gorm.Statement) (*gorm.Statement, []string, bool) {
	if stmt.Schema != nil {
		if fields, ok := p.guardsOf()[stmt.Schema.ModelType]; ok {
			return stmt, fields, true
		}
	}
	t, ok := p.tableWrite(stmt)
	switch {
	case !ok:
		return stmt, nil, false
	case t.carriedBy(stmt.Schema):
		return stmt, t.lockColumns, true
	}
	return t.asGuardedModel(stmt), t.fields, true
}

// lockTarget is the statement the lock is resolved on (see guardOf).
func (p *Plugin) lockTarget(stmt *gorm.Statement) *gorm.Statement {
	target, _, _ := p.guardOf(stmt)
	return target
}

// asGuardedModel returns a statement that writes the guarded table as its model: the statement's
// values only when they are a map (a struct of another type has no lock column to check).
func (t guardedTable) asGuardedModel(stmt *gorm.Statement) *gorm.Statement {
	qualifier, table := writtenTable(stmt)
	target := &gorm.Statement{
		DB: stmt.DB, ConnPool: stmt.ConnPool, Context: stmt.Context,
		Table: table, Schema: t.schema,
		Selects: stmt.Selects, Omits: stmt.Omits,
	}
	if _, isMap := valuesMap(stmt.Dest); isMap {
		target.Dest = stmt.Dest
	}
	if qualifier != "" {
		// The catalog is read for the qualified table (columns.go's tableOf reads it from here).
		target.TableExpr = &clause.Expr{SQL: stmt.Quote(qualifier + "." + table)}
	}
	return target
}
